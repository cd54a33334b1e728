"""Active latent units (Burda et al. 2015): a unit is active if its posterior mean varies across inputs."""
from __future__ import annotations

import torch


@torch.no_grad()
def active_units(model, x: torch.Tensor, threshold: float = 0.01, batch_size: int = 1000) -> tuple[int, torch.Tensor]:
    """Number of units with Cov_x(E_q[z_u|x]) > threshold, and the per-unit variances."""
    means = torch.cat([model.encode(x[s:s + batch_size])[0] for s in range(0, x.shape[0], batch_size)])
    var = means.var(dim=0)
    return int((var > threshold).sum()), var
