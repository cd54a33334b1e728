"""Notebook 00: a mixture of VAE experts with a manager, trained without labels (anotherdatum.com/vae-moe.html).

settings.py: the profiles; experiments.py: training, evaluation and claims; prior.py: the step beyond the post (a
mixture prior in one latent space); fidelity/: the ceiling and beyond-the-post measurements on full MNIST.
"""
from .settings import PAPER_SHAPE, PAPER_SHAPE_CHANGED, SETTINGS, datasets_needed

__all__ = ["PAPER_SHAPE", "PAPER_SHAPE_CHANGED", "SETTINGS", "datasets_needed"]
