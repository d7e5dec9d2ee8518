"""Training: spec + data set -> a run directory with a trained Brevitas QCFS network."""

from .trainer import TrainConfig, evaluate_run, load_run, train

__all__ = ["TrainConfig", "evaluate_run", "load_run", "train"]
