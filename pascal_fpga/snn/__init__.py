"""Spiking simulation: the integer form of a QCFS network, PASCAL neurons, the baseline conversion."""
