"""Notebook 04's fidelity evidence (read with `lmvae_core.papers.evidence("ocm", name)`):

- selection, code_order and summary (`short_runs`): one short pass over split MNIST per variant, measuring the
  selection rules (Algorithm 2, the official code's setting, 'diverse') and the official code's order and
  expansion trigger;
- selection_scores (`selection_scores`): the selection scores of every round of one run, behind the lambda1 claim.

Run as modules: `python -m lmvae_core.papers.ocm.fidelity.short_runs selection --data-root ROOT`.
"""
