"""Notebook 05: every method of the package on the same task streams, one driver, one evaluation code, seeds.

settings.py: the profiles, the methods and streams compared, the half-budget settings; experiments.py: the
methods as learners, the shared evaluation and the grid; features.py: the feature classifier behind FID and
fitting capacity; report.py: tables, rankings and figures; claims.py: the claims and their schedules; fidelity/:
whether the feature classifier reaches its accuracy floor on full data. The streams are
lmvae_core.data.benchmark_streams.
"""
from .settings import PAPER_SHAPE, PAPER_SHAPE_CHANGED, SETTINGS, datasets_needed

__all__ = ["PAPER_SHAPE", "PAPER_SHAPE_CHANGED", "SETTINGS", "datasets_needed"]
