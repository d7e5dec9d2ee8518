"""The Brevitas QCFS network built from a spec (and its float ReLU twin)."""

from .network import QCFSNet, lambda_parameter, levels_of

__all__ = ["QCFSNet", "lambda_parameter", "levels_of"]
