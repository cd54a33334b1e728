"""Models: the VAE core, the batched expert mixture, and one module per paper's method."""
from .mixture import ExpertMixture
from .moe_vae import MoEVAE, MoEVAEConfig
from .vae import VAE, VAEConfig, count_parameters

__all__ = ["ExpertMixture", "MoEVAE", "MoEVAEConfig", "VAE", "VAEConfig", "count_parameters"]
