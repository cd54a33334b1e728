"""Notebook 01: L-MVAE, the lifelong mixture of VAEs (Ye & Bors), against a fine-tuned and a jointly trained VAE.

settings.py: the profiles; experiments.py: the main sequence, its baselines and the figures' data; growth.py: the
reuse-or-grow decisions (threshold sweep, both domain orders); selection.py: which expert scores a test image, and
what a wrong choice costs; claims.py: the claims and their schedules; fidelity/: both growth rules measured on
full test sets.
"""
from .settings import PAPER_SHAPE, PAPER_SHAPE_CHANGED, SETTINGS, datasets_needed

__all__ = ["PAPER_SHAPE", "PAPER_SHAPE_CHANGED", "SETTINGS", "datasets_needed"]
