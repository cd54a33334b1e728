"""Notebook 00's fidelity evidence. Each script measures one question on full data and writes its JSON beside it
(read with `lmvae_core.papers.evidence("mixture_of_vaes", name)`):

- ceiling: is the mixture's clustering accuracy a bug, the schedule, or the objective's ceiling?
- beyond_the_post: the mixture prior in one latent space against k-means baselines.

Run one as a module: `python -m lmvae_core.papers.mixture_of_vaes.fidelity.ceiling --data-root ROOT`.
"""
