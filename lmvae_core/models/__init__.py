"""Models: the VAE core, the batched expert mixture, and one module per paper's method.

Importing this package registers every model, so `load_checkpoint` can rebuild any of them.
"""
from .binarized import BinarizedVAE, BinarizedVAEConfig
from .lgm import LGM, LGMConfig
from .lmvae import LMVAE, LMVAEConfig
from .mixture import ExpertMixture
from .moe_vae import MoEVAE, MoEVAEConfig
from .mog_vae import MoGVAE, MoGVAEConfig
from .ocm import OCM, OCMConfig
from .vae import VAE, VAEConfig, count_parameters

__all__ = ["BinarizedVAE", "BinarizedVAEConfig", "LGM", "LGMConfig", "LMVAE", "LMVAEConfig",
           "ExpertMixture", "MoEVAE", "MoEVAEConfig", "MoGVAE", "MoGVAEConfig", "OCM", "OCMConfig", "VAE",
           "VAEConfig", "count_parameters"]
