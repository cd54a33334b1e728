"""lmvae: lifelong generative modelling with VAEs."""
