"""Notebook 01, issue 11 items 1, 2 and 12: the reuse test of L-MVAE in both orders, and what selecting one
expert per image costs in log-likelihood. Full MNIST, KMNIST and Fashion-MNIST, short schedules.

One expert per domain (the quick profile's 784-256-20 Bernoulli VAE, STEPS Adam steps (lr 1e-3) of random
batches of 128 dynamically binarised training images: the same steps for every domain, whose training sets here
differ in size). Then, for every ordered pair (expert of domain A, new domain B), on B's full test set:
- the old rule's score: err_A(B) / err_A(A) (reuse when <= 1 + threshold);
- the probe rule's score: err_A(B) / err_probe(B), the probe a fresh expert trained on B's training set by
  continual.lmvae.probe_error, for as many steps as an expert (full budget: the probe is then an expert of B with another
  seed) and for a quarter of them;
and the decisions of both rules at several thresholds/margins. A symmetric rule grows for every A != B and
reuses for A == B (the expert scored on its own domain's test set against a probe of that domain).

Selection cost: two-expert L-MVAEs (MNIST+Fashion, MNIST+KMNIST) scored on 1,000 fixed-binarised test images
per domain with IWAE k=K: selected expert, best expert per image (same draw and re-drawn), uniform mixture.

Usage: OMP_NUM_THREADS=1 python -m lmvae_core.papers.lmvae.fidelity.growth_selection --data-root ROOT (a torchvision
root with full MNIST, KMNIST and Fashion-MNIST). Writes growth_selection.json beside this file.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import time
from pathlib import Path

import torch

from lmvae_core.continual.lmvae import probe_error
from lmvae_core.data.preprocess import binarize_fixed
from lmvae_core.data.streams import DataConfig, load_split
from lmvae_core.models.lmvae import LMVAE, LMVAEConfig
from lmvae_core.models.vae import VAE, VAEConfig
from lmvae_core.training.loop import binarized, fit_batches

DOMAINS = ("mnist", "kmnist", "fashion")
EXPERT = VAEConfig(latent_dim=20, hidden=(256,))
STEPS, BATCH, K, N_LL = 800, 128, 100, 1000
RATIO_THRESHOLDS, MARGINS = (0.0, 0.5, 1.0), (0.0, 0.1, 0.25, 0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", required=True)
    args = ap.parse_args()
    torch.manual_seed(0)
    start = time.time()
    cfg = DataConfig(source="torchvision", root=args.data_root)
    train_x = {d: load_split(d, "train", cfg).x for d in DOMAINS}
    test_x = {d: load_split(d, "test", cfg).x for d in DOMAINS}
    experts = {d: fit_steps(train_x[d], STEPS) for d in DOMAINS}
    with torch.no_grad():
        err = {a: {b: float(experts[a].reconstruction_error(test_x[b]).mean()) for b in DOMAINS} for a in DOMAINS}
    probe = {}
    for name, n_steps in (("full", STEPS), ("quarter", STEPS // 4)):
        probe[name] = {}
        for b in DOMAINS:  # probe_epochs such that the probe takes n_steps steps on B's training set
            tool = LMVAE(LMVAEConfig(expert=EXPERT, probe_epochs=(n_steps - 0.5) * BATCH / train_x[b].shape[0],
                                     probe_batch=BATCH))
            probe[name][b], taken = probe_error(tool, test_x[b], train_x[b], "dynamic", 1e-3, seed=1)
            assert taken == n_steps, (taken, n_steps)
    pairs = []
    for a in DOMAINS:
        for b in DOMAINS:
            row = {"expert": a, "new domain": b, "err expert on new": err[a][b], "err expert on own": err[a][a],
                   "err own expert on new": err[b][b], "old ratio score": err[a][b] / err[a][a],
                   **{f"probe score ({p})": err[a][b] / probe[p][b] for p in probe}}
            row["old rule reuses at"] = [t for t in RATIO_THRESHOLDS if row["old ratio score"] <= 1 + t]
            row["probe rule (full) reuses at"] = [m for m in MARGINS if row["probe score (full)"] <= 1 + m]
            row["should reuse"] = a == b
            pairs.append(row)
    selection = [cost(pair, experts, test_x) for pair in (("mnist", "fashion"), ("mnist", "kmnist"))]
    out = {"script": "lmvae_core/papers/lmvae/fidelity/growth_selection.py", "commit": _commit(), "torch": torch.__version__,
           "expert": "784-256-20 Bernoulli VAE", "batch": BATCH, "steps per expert": STEPS,
           "train images per domain": {d: int(train_x[d].shape[0]) for d in DOMAINS},
           "test images per domain": {d: int(test_x[d].shape[0]) for d in DOMAINS},
           "probe error": probe, "errors (row: expert, column: test domain)": err, "pairs": pairs,
           "selection": selection, "iwae_k": K, "seconds": time.time() - start}
    path = Path(__file__).with_suffix(".json")
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))


def fit_steps(x: torch.Tensor, steps: int, seed: int = 0) -> VAE:
    """An expert trained `steps` Adam steps on random batches of x (as continual.lmvae.probe_error trains a probe)."""
    torch.manual_seed(seed)
    vae = VAE(EXPERT)
    idx = torch.randint(x.shape[0], (steps, BATCH))
    fit_batches(((0, binarized(x[i], "dynamic")) for i in idx), vae.loss, torch.optim.Adam(vae.parameters(), lr=1e-3),
                vae)
    return vae.eval()


@torch.no_grad()
def cost(pair, experts, test_x) -> dict:
    model = LMVAE(LMVAEConfig(expert=EXPERT, n_experts=2))
    for k, d in enumerate(pair):
        model.experts.experts[k].load_state_dict(experts[d].state_dict())
        model.assign(k, k, 1.0)
    model.eval()
    x = torch.cat([binarize_fixed(test_x[d][:N_LL]) for d in pair])
    own = torch.cat([torch.full((N_LL,), k) for k in range(2)])
    torch.manual_seed(2)
    r = model.likelihood_report(x, K)
    m = {e: float(r[e].mean()) for e in ("selected", "best (same draw)", "best (re-drawn)", "uniform mixture")}
    return {"pair": list(pair), **m, "selection cost": m["best (re-drawn)"] - m["selected"],
            "same-draw optimism": m["best (same draw)"] - m["best (re-drawn)"],
            "selected - mixture": m["selected"] - m["uniform mixture"],
            "selection accuracy": float((r["choice"] == own).float().mean()),
            "selection = best": float((r["choice"] == r["best"]).float().mean())}


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    main()
