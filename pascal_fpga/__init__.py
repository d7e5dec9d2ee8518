"""pascal-fpga: QCFS networks trained with Brevitas, converted to PASCAL spiking accelerators."""

__version__ = "0.1.0"
