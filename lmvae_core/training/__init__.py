"""Training loop, optimiser set-up and checkpoints."""
from .checkpoint import MODEL_REGISTRY, load_checkpoint, register_model, save_checkpoint
from .loop import NonFiniteLossError, TrainConfig, binarized, check_finite, make_optimizer, train

__all__ = ["MODEL_REGISTRY", "load_checkpoint", "register_model", "save_checkpoint", "NonFiniteLossError",
           "TrainConfig", "binarized", "check_finite", "make_optimizer", "train"]
