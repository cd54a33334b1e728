"""Continual learning: the Learner protocol, the one stream driver, and every method as a learner.

    learner = SequentialVAE(VAEConfig(), replay=True)
    result = run_stream(learner, stream, Budget(epochs=5, batch_size=64), on_boundary=evaluate)
    result.real_rows, result.replay_rows   # per task: what the learner was handed, what it replayed

Models (lmvae_core.models) hold the math: losses, sampling, likelihoods. The learners here hold the
procedures: which data a method trains on, when, and with which optimiser.
"""
from .base import (LEARNERS, BaseLearner, Budget, Learner, Resumable, TaskData, count_params, from_train_config,
                   frozen_copy, pack, restore, unpack)
from .driver import Checkpointing, StreamResult, StreamTask, run_stream, stream_tasks
from .lgm import LGMLearner, LifelongConfig
from .lmvae import LMVAELearner
from .ocm import OCMLearner
from .ocm_stacked import StackedOCM, own_noise_learners, run_stacked_streams
from .vae import JointVAE, MixtureOfVAEs, SequentialVAE, binarized_config

__all__ = ["LEARNERS", "BaseLearner", "Budget", "Learner", "TaskData", "count_params", "from_train_config", "frozen_copy", "pack",
           "restore", "unpack", "Resumable", "Checkpointing", "StreamResult", "StreamTask", "run_stream", "stream_tasks",
           "LGMLearner", "LifelongConfig", "LMVAELearner", "OCMLearner", "StackedOCM", "own_noise_learners", "run_stacked_streams",
           "JointVAE", "MixtureOfVAEs", "SequentialVAE", "binarized_config"]
