"""Notebook 05's fidelity evidence (read with `lmvae_core.papers.evidence("benchmark", name)`):

- feature_classifier: does the FID / fitting-capacity feature classifier reach its accuracy floor on full data?

Run as a module: `python -m lmvae_core.papers.benchmark.fidelity.feature_classifier --data-root ROOT`.
"""
