"""The operation count that `train_speed.py` records beside its GPU timing (it imports it from here).

The paper-cost section itself is written by `lmvae readme` (lmvae_core/docs/paper_cost.py), which counts the same
way when a results file has no recorded count.
"""
from lmvae_core.docs.paper_cost import eager_step_ops

__all__ = ["eager_step_ops"]
