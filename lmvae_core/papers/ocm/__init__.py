"""Notebook 04: OCM, online cooperative memorization for task-free continual VAE learning (Ye & Bors 2022).

settings.py: the profiles, the poster's numbers, the official code's steps and the half-budget settings; runs.py:
one method's pass over a stream and Tables 1 and 3; studies.py: the ablations, the selection rules and the memory
study; experiments.py: what the notebook reads, and `sweep`; claims.py: the claims; fidelity/: short runs that
measure the selection rules and the official code's order, and the selection scores behind the lambda1 claim.
"""
from .settings import PAPER_SHAPE, PAPER_SHAPE_CHANGED, SETTINGS, datasets_needed

__all__ = ["PAPER_SHAPE", "PAPER_SHAPE_CHANGED", "SETTINGS", "datasets_needed"]
