"""Notebook 02: Lifelong Generative Modeling (Ramapuram et al.), a student-teacher VAE, against its baselines.

settings.py: the profiles, the regulariser study's settings and the half-budget settings; experiments.py: every
method on the task streams through the one driver, and what the figures read; claims.py: the claims; fidelity/:
what the discrete code carries, before and after matching the official code, on full split MNIST.
"""
from .settings import PAPER_SHAPE, PAPER_SHAPE_CHANGED, SETTINGS, datasets_needed

__all__ = ["PAPER_SHAPE", "PAPER_SHAPE_CHANGED", "SETTINGS", "datasets_needed"]
