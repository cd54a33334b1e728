"""Results: the on-disk experiment cache, figure/table writers, claims tables and plot helpers."""
from .cache import cache_file, cached, config_key, is_cached, store
from .claims import AtLeast, AtMost, Claim, Within, claims_frame
from .writers import Outputs

__all__ = ["cache_file", "cached", "config_key", "is_cached", "store", "AtLeast", "AtMost", "Claim", "Within",
           "claims_frame", "Outputs"]
