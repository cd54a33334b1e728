"""Notebook 03's fidelity evidence (read with `lmvae_core.papers.evidence("binarized", name)`):

- capacity: the capacity-VAE's C, the official per-batch C against a per-image C of 10, beside the beta-VAE;
- collapse: posterior collapse in a latent-50 regime, counted three ways, and what one seed can decide.

common.py holds their shared pieces. Run one as a module:
`LMVAE_DATA=ROOT python -m lmvae_core.papers.binarized.fidelity.capacity`.
"""
