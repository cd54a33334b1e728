"""Notebook 03: binarized regularisation of a VAE's latent space (Hu & Rostami 2023).

settings.py: the profiles, the objectives regularised and the paper's budget; experiments.py: the r sweep (an
ensemble of seeds per setting), the collapse regime, traversals and the bound; replay.py: the overhead and
generative replay on split MNIST; grid.py: every training run as one grid; claims.py: the claims;
fidelity/: the capacity-VAE's C and the collapse regime measured on full MNIST.
"""
from .settings import PAPER_SHAPE, PAPER_SHAPE_CHANGED, SETTINGS, datasets_needed

__all__ = ["PAPER_SHAPE", "PAPER_SHAPE_CHANGED", "SETTINGS", "datasets_needed"]
