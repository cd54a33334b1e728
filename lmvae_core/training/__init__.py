"""Training loop, optimiser set-up and checkpoints."""
from .checkpoint import MODEL_REGISTRY, load_checkpoint, register_model, save_checkpoint
from .compiled_step import CompiledStep
from .ensemble import train_ensemble
from .loop import (TrainConfig, binarized, epoch_batches, fit_batches, make_optimizer, should_compile, steps_per_epoch,
                   train)
from .optim import FusedAdam
from .precision import precision_gap
from .step import LossMonitor, NonFiniteLossError, train_step

__all__ = ["MODEL_REGISTRY", "load_checkpoint", "register_model", "save_checkpoint", "NonFiniteLossError",
           "TrainConfig", "binarized", "epoch_batches", "fit_batches", "make_optimizer", "steps_per_epoch", "train",
           "LossMonitor", "train_step", "FusedAdam", "train_ensemble", "should_compile", "precision_gap",
           "CompiledStep"]
