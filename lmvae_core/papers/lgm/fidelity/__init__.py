"""Notebook 02's fidelity evidence (read with `lmvae_core.papers.evidence("lgm", name)`):

- discrete_code (1 epoch per task) and discrete_code_3ep (3): does the discrete code z_d carry anything, before
  and after matching the official code?

Run as a module: `python -m lmvae_core.papers.lgm.fidelity.discrete_code --data-root ROOT`.
"""
