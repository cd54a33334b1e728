"""Notebook 01's fidelity evidence (read with `lmvae_core.papers.evidence("lmvae", name)`):

- growth_selection: the old ratio rule and the probe rule, on experts trained on one domain each, scored on full
  test sets.

Run as a module: `python -m lmvae_core.papers.lmvae.fidelity.growth_selection --data-root ROOT`.
"""
