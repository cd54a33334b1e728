"""Notebook 01: L-MVAE, the lifelong mixture of VAEs, against a fine-tuned and a jointly trained VAE."""
from __future__ import annotations

import time
from dataclasses import asdict

import numpy as np
import torch

from ...continual import JointVAE, LMVAELearner, SequentialVAE, from_train_config, pack, restore, run_stream
from ...continual.driver import StreamTask
from ...data.preprocess import binarize_fixed
from ...data.streams import DataConfig, Split, load_split
from ...metrics import TaskMatrix, iwae_log_likelihood
from ...metrics.significance import mean_ci
from ...models.lmvae import LMVAE, LMVAEConfig
from ...models.vae import VAE, VAEConfig
from ...results.cache import cached
from ...training.loop import TrainConfig
from ...experiments.common import Run

def expert_config(s: dict, capacity: bool = False) -> VAEConfig:
    rgb = s.get("size") == 32 and s["arch"] == "conv"
    return VAEConfig(input_shape=(3, 32, 32) if rgb else (1, 28, 28), latent_dim=s["latent"], arch=s["arch"],
                     hidden=(s["hidden"],), channels=tuple(s["channels"]),
                     activation="leaky_relu" if s["arch"] == "conv" else "relu", likelihood=s["likelihood"],
                     gaussian_std=s["gaussian_std"],
                     capacity=0.5 if capacity else None,
                     gamma=s["capacity_gamma"] if capacity else 1.0)


def model_config(s: dict, threshold: float | None = None, n_experts: int | None = None, capacity: bool = False,
                 rule: str = "probe", epochs: int | None = None) -> LMVAEConfig:
    """epochs: the tasks' epochs (default: the main sequence's); the probe gets as many unless probe_epochs says."""
    return LMVAEConfig(expert=expert_config(s, capacity), n_experts=n_experts or s["n_experts"],
                       reuse_threshold=s["threshold"] if threshold is None else threshold, reuse_rule=rule,
                       probe_epochs=s["probe_epochs"] or epochs or s["epochs"], probe_batch=s["batch"],
                       probe_size=s["probe"],
                       capacity_increase=s["capacity_increase"])


def train_config(s: dict, run: Run, epochs: int | None = None) -> TrainConfig:
    return TrainConfig(epochs=s["epochs"] if epochs is None else epochs, batch_size=s["batch"],
                       binarize="dynamic" if s["likelihood"] == "bernoulli" else None, progress=run.progress)


def data_for(run: Run) -> DataConfig:
    s = run.settings
    extra = {"size": 32, "rgb": True} if s.get("size") == 32 else {}
    return run.data(**extra)


def _key(**parts) -> dict:
    drop = {TrainConfig: {"progress": None}, DataConfig: {"device": None}}
    return {k: asdict(v) | drop.get(type(v), {}) if hasattr(v, "__dataclass_fields__") else v
            for k, v in parts.items()}


# -- data --------------------------------------------------------------------------------------------
def train_images(name: str, data: DataConfig, limit: int | None) -> torch.Tensor:
    x = load_split(name, "train", data).x
    if limit is not None and limit < x.shape[0]:
        g = torch.Generator().manual_seed(0)
        x = x[torch.randperm(x.shape[0], generator=g)[:limit].to(x.device)]
    return x


def test_images(name: str, data: DataConfig, n: int | None, likelihood: str) -> Split:
    """The first n test images, binarised once with a fixed seed for a Bernoulli decoder."""
    test = load_split(name, "test", data)
    x, y = test.x[:n], test.y[:n]
    return Split(binarize_fixed(x) if likelihood == "bernoulli" else x, y)


# -- evaluation ----------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate_vae(vae: VAE, x: torch.Tensor, k: int) -> tuple[float, float]:
    vae.eval()
    return float(vae.reconstruction_error(x).mean()), float(iwae_log_likelihood(vae, x, k=k).mean())


@torch.no_grad()
def evaluate_lmvae(model: LMVAE, x: torch.Tensor, k: int) -> tuple[float, float]:
    model.eval()
    choice = model.select(x)
    return float(model.reconstruction_error(x, choice).mean()), float(model.log_likelihood(x, k, choice).mean())


def tracker(names, data: DataConfig, eval_n: int | None, likelihood: str, evaluate) -> tuple:
    """(recon matrix, IWAE matrix, on_boundary): after task t, row t of both task matrices holds
    evaluate(learner)(x) = (reconstruction error, IWAE) on the test images of every task seen so far."""
    tests = [test_images(n, data, eval_n, likelihood).x for n in names]
    recon, ll = TaskMatrix(list(names), False), TaskMatrix(list(names), True)

    def on_boundary(t: int, learner) -> None:
        for j in range(t + 1):
            r, l = evaluate(learner)(tests[j])
            recon.record(t, j, r)
            ll.record(t, j, l)

    return recon, ll, on_boundary


def _tasks(names, data: DataConfig, limit: int | None) -> list[StreamTask]:
    return [StreamTask(n, train_images(n, data, limit)) for n in names]


# -- the three learners, through the package's stream driver ------------------------------------------------
def run_lmvae(names, cfg: LMVAEConfig, tcfg: TrainConfig, data: DataConfig, seed: int, limit: int | None,
              eval_n: int | None, iwae_k: int, likelihood: str, evaluate: bool = True, force: bool = False) -> dict:
    """Train L-MVAE task by task; after each task evaluate it on every task seen so far. Cached."""
    key = _key(names=list(names), model=cfg, train=tcfg, data=data, seed=seed, limit=limit, eval_n=eval_n,
               iwae_k=iwae_k, evaluate=evaluate)

    def fit():
        torch.manual_seed(seed)
        budget, optim = from_train_config(tcfg)
        learner = LMVAELearner(cfg, device=data.device, **optim)
        recon, ll, on_boundary = tracker(names, data, eval_n, likelihood,
                                         lambda lr: (lambda x: evaluate_lmvae(lr.model, x, iwae_k)))
        result = run_stream(learner, _tasks(names, data, limit), budget, on_boundary if evaluate else None)
        return pack(learner.model) | {"decisions": [r["info"] for r in result.tasks],
                                      "train_seconds": [r["seconds"] for r in result.tasks],
                                      "steps": [r["steps"] for r in result.tasks],
                                      "real_rows": [r["real_rows"] for r in result.tasks],
                                      "probe_rows": [r["info"].get("probe_steps", 0) * cfg.probe_batch
                                                     for r in result.tasks],
                                      "recon": recon.to_dict(), "iwae": ll.to_dict()}

    return cached("lmvae", key, fit, force=force)


def run_vae(names, cfg: VAEConfig, tcfg: TrainConfig, data: DataConfig, seed: int, limit: int | None,
            eval_n: int | None, iwae_k: int, likelihood: str, joint: bool = False, force: bool = False) -> dict:
    """One VAE trained task after task (joint=False: catastrophic forgetting, with its task matrices) or on the
    union of the distinct tasks at once (joint=True: the upper bound a single model of this size reaches)."""
    key = _key(names=list(names), model=cfg, train=tcfg, data=data, seed=seed, limit=limit, eval_n=eval_n,
               iwae_k=iwae_k)

    def fit():
        torch.manual_seed(seed)
        budget, optim = from_train_config(tcfg)
        learner = (JointVAE if joint else SequentialVAE)(cfg, device=data.device, **optim)
        evaluate = lambda lr: (lambda x: evaluate_vae(lr.model, x, iwae_k))  # noqa: E731
        recon, ll, on_boundary = tracker(names, data, eval_n, likelihood, evaluate)
        tasks = _tasks(dict.fromkeys(names) if joint else names, data, limit)
        result = run_stream(learner, tasks, budget, None if joint else on_boundary)
        spent = {"steps": [r["steps"] for r in result.tasks], "real_rows": [r["real_rows"] for r in result.tasks]}
        if not joint:
            return {"recon": recon.to_dict(), "iwae": ll.to_dict()} | spent
        rows = [evaluate(learner)(test_images(n, data, eval_n, likelihood).x) for n in names]
        return {"recon": [r for r, _ in rows], "iwae": [l for _, l in rows]} | spent

    return cached("lmvae_joint" if joint else "lmvae_finetune", key, fit, force=force)


def rebuild(result: dict, device) -> LMVAE:
    return restore(LMVAE, result, device)


def seeds(run: Run) -> list[int]:
    """The seeds of the main sequence: the notebook's seed and the n_seeds - 1 after it."""
    return [run.seed + i for i in range(run.settings["n_seeds"])]


def main_sequence(run: Run) -> dict:
    """L-MVAE, fine-tuned VAE and joint VAE on the main domain sequence, once per seed (each cached). 'runs': one
    dict per seed; the top-level 'lmvae', 'model', 'finetune', 'joint' and 'matrices' are the first seed's (the
    figures show one model)."""
    s = run.settings
    data, tcfg = data_for(run), train_config(s, run)
    names = list(s["sequence"])
    runs = []
    for seed in seeds(run):
        common = dict(data=data, seed=seed, limit=s["train_limit"], eval_n=s["eval_n"], iwae_k=s["iwae_k"],
                      likelihood=s["likelihood"], force=run.force)
        lm = run_lmvae(names, model_config(s), tcfg, **common)
        ft = run_vae(names, expert_config(s), tcfg, **common)
        jt = run_vae(names, expert_config(s), tcfg, joint=True, **common)
        runs.append({"seed": seed, "lmvae": lm, "finetune": ft, "joint": jt,
                     "matrices": {m: {"L-MVAE": TaskMatrix.from_dict(lm[m]),
                                      "fine-tuned VAE": TaskMatrix.from_dict(ft[m])} for m in ("recon", "iwae")}})
    return {"names": names, "seeds": seeds(run), "runs": runs, **{k: runs[0][k] for k in ("lmvae", "finetune",
            "joint", "matrices")}, "model": rebuild(runs[0]["lmvae"], run.device)}


METRICS = ("avg recon error (final)", "recon forgetting", "avg log-lik (final, nats)", "log-lik forgetting (nats)",
           "selection accuracy")


def seed_rows(run: Run, main: dict) -> list[dict]:
    """One row per seed and method: final averages and forgetting of both metrics, and L-MVAE's selection
    accuracy (by reconstruction error) on the test images; the claims pair these by seed."""
    rows = []
    for r in main["runs"]:
        acc = selection(run, rebuild(r["lmvae"], run.device), main["names"])["accuracy"]
        for method in ("L-MVAE", "fine-tuned VAE"):
            rc, ll = r["matrices"]["recon"][method], r["matrices"]["iwae"][method]
            rows.append({"seed": r["seed"], "method": method, METRICS[0]: rc.average(), METRICS[1]: rc.forgetting(),
                         METRICS[2]: ll.average(), METRICS[3]: ll.forgetting(),
                         METRICS[4]: acc if method == "L-MVAE" else float("nan")})
        rows.append({"seed": r["seed"], "method": "joint VAE", METRICS[0]: float(np.mean(r["joint"]["recon"])),
                     METRICS[1]: float("nan"), METRICS[2]: float(np.mean(r["joint"]["iwae"])),
                     METRICS[3]: float("nan"), METRICS[4]: float("nan")})
    return rows


def spent(main: dict) -> dict[str, dict[str, float]]:
    """Per method of the main sequence, the training it cost, per seed on average: 'steps' (optimiser steps on
    real batches, as the stream driver counts them) and 'images' (real rows trained on: epochs x images); for
    L-MVAE also 'probe steps' and 'probe images', the probe expert's training in the reuse test (on the new task's
    own images; the probe is discarded after scoring), which its steps and images do not include."""
    def mean(key: str, method: str) -> float:
        return float(np.mean([sum(r[method][key]) for r in main["runs"]]))

    out = {name: {"steps": mean("steps", m), "images": mean("real_rows", m)}
           for name, m in (("L-MVAE", "lmvae"), ("fine-tuned VAE", "finetune"), ("joint VAE", "joint"))}
    out["L-MVAE"] |= {"probe steps": float(np.mean([sum(d.get("probe_steps", 0) for d in r["lmvae"]["decisions"])
                                                    for r in main["runs"]])),
                      "probe images": mean("probe_rows", "lmvae")}
    return out


def per_seed(rows: list[dict], method: str, metric: str) -> list[float]:
    """A metric of one method, ordered by seed (paired with another method's by position)."""
    return [r[metric] for r in sorted(rows, key=lambda r: r["seed"]) if r["method"] == method]


def summary_rows(rows: list[dict]) -> list[dict]:
    """Per method: each metric's mean over seeds and its 95% Student-t interval (n/a where undefined)."""
    out = []
    for method in dict.fromkeys(r["method"] for r in rows):
        row = {"method": method, "seeds": len(per_seed(rows, method, METRICS[0]))}
        for m in METRICS:
            ci = mean_ci(per_seed(rows, method, m))
            row[m] = ci.mean
            row[f"{m} 95% CI"] = f"[{ci.lo:.3g}, {ci.hi:.3g}]" if ci.n > 1 else "n/a"
        out.append(row)
    return out


# -- expert selection ------------------------------------------------------------------------------------
@torch.no_grad()
def selection(run: Run, model: LMVAE, names, criterion: str = "recon") -> dict:
    """Confusion domain -> selected expert on the test sets, and the share routed to the domain's own expert."""
    s = run.settings
    data = data_for(run)
    domains = list(dict.fromkeys(names))
    own = {n: model.task_expert[names.index(n)] for n in domains}
    conf = np.zeros((len(domains), len(model)), dtype=int)
    for i, n in enumerate(domains):
        choice = model.select(test_images(n, data, s["eval_n"], s["likelihood"]).x, criterion)
        conf[i] = np.bincount(choice.cpu().numpy(), minlength=len(model))
    per_domain = np.array([conf[i, own[n]] / conf[i].sum() for i, n in enumerate(domains)])
    return {"domains": domains, "confusion": conf, "own_expert": own, "per_domain": per_domain,
            "accuracy": float(per_domain.mean()), "criterion": criterion}


# -- pictures -------------------------------------------------------------------------------------------------
@torch.no_grad()
def reconstructions(run: Run, model: LMVAE, names, n: int = 8) -> tuple[torch.Tensor, list[str]]:
    """Rows: for each domain its test images, then their reconstruction by each assigned expert, then by the
    selected expert."""
    data = data_for(run)
    rows, labels = [], []
    for name in dict.fromkeys(names):
        x = load_split(name, "test", data).x[:n]
        rows.append(x)
        labels.append(f"{name}: input")
        for k in model.assigned:
            rows.append(model.experts.experts[k].reconstruct(x))
            labels.append(f"expert {k} ({model.task_names[int(model.expert_task[k])]})")
        rows.append(model.reconstruct(x))
        labels.append("selected expert")
    return torch.cat(rows), labels


@torch.no_grad()
def interpolation(run: Run, model: LMVAE, a: str, b: str, steps: int = 10) -> tuple[torch.Tensor, list[str]]:
    """One image of domain a and one of domain b: each expert encodes both, interpolates linearly between the
    posterior means in its latent space and decodes; last row: pixel-space blend for comparison."""
    data = data_for(run)
    xa, xb = load_split(a, "test", data).x[:1], load_split(b, "test", data).x[:1]
    t = torch.linspace(0, 1, steps, device=xa.device)[:, None]
    rows, labels = [], []
    for k in model.assigned:
        e = model.experts.experts[k]
        za, zb = e.encode(xa)[0], e.encode(xb)[0]
        rows.append(torch.sigmoid(e.decode((1 - t) * za + t * zb)))
        labels.append(f"expert {k} ({model.task_names[int(model.expert_task[k])]})")
    rows.append((1 - t[:, :, None, None]) * xa + t[:, :, None, None] * xb)
    labels.append("pixel blend")
    return torch.cat(rows), labels


def capacity_variant(run: Run) -> dict:
    """L-MVAE with capacity-controlled experts (recon + gamma |KL - C|, C growing each task)."""
    s = run.settings
    data = data_for(run)
    tcfg = train_config(s, run, s["capacity_epochs"])
    names = list(s["sequence"])
    # the probe (growth test of the second task) trains as long as the variant's tasks, not the main sequence's
    cfg = model_config(s, n_experts=1, capacity=True, epochs=s["capacity_epochs"])
    res = run_lmvae(names, cfg, tcfg, data, run.seed, s["capacity_train"],
                    s["eval_n"], s["iwae_k"], s["likelihood"], False, run.force)
    return {"names": names, "result": res, "model": rebuild(res, run.device)}


@torch.no_grad()
def traversals(run: Run, model: LMVAE, name: str, expert: int, n_dims: int = 8, steps: int = 9,
               span: float = 3.0) -> tuple[torch.Tensor, list[str], np.ndarray]:
    """Latent traversals of one expert around the posterior mean of a test image, for its n_dims latent
    dimensions with the largest mean KL on the domain's test images (the informative ones)."""
    s = run.settings
    data = data_for(run)
    e = model.experts.experts[expert]
    x = load_split(name, "test", data).x[: s["eval_n"]]
    mu, logvar = e.encode(x)
    kl = e.kl_per_dim(mu, logvar).mean(0)
    dims = kl.argsort(descending=True)[:n_dims]
    base = mu[:1]
    vals = torch.linspace(-span, span, steps, device=x.device)
    rows, labels = [], []
    for d in dims.tolist():
        z = base.repeat(steps, 1)
        z[:, d] = vals
        rows.append(torch.sigmoid(e.decode(z)))
        labels.append(f"z{d} (KL {float(kl[d]):.2f})")
    return torch.cat(rows), labels, kl.cpu().numpy()


# -- inference cost -----------------------------------------------------------------------------------------------
@torch.no_grad()
def inference_time(run: Run, model: LMVAE, names, repeats: int = 7) -> dict:
    """Seconds per image to estimate log p(x) (IWAE, k samples): selecting one expert (one deterministic pass of
    each expert) and running only it, against running the IWAE estimate of every assigned expert (batched). Both
    warm up, then alternate; the ratio is the median of `repeats` rounds' ratios (separate best-of-3s: 0.24-0.45)."""
    s = run.settings
    data = data_for(run)
    x = torch.cat([test_images(n, data, s["timing_n"] // len(set(names)), s["likelihood"]).x
                   for n in dict.fromkeys(names)])
    k, ids = s["timing_k"], model.assigned

    def one():
        model.log_likelihood(x, k)

    def every():
        def lw(xb, kk):
            return model.experts.all_experts(xb, op="log_weights", ids=ids, k=kk)  # [K, kk, B]
        iwae_log_likelihood(lambda xb, kk: torch.logsumexp(lw(xb, kk), 0), x, k=k)

    def seconds(fn):
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    one(), every()  # warm-up
    rounds = [(seconds(one), seconds(every)) for _ in range(repeats)]
    t_one, t_all = (float(np.median(t)) for t in zip(*rounds))
    ratios = sorted(a / b for a, b in rounds)
    return {"experts": len(ids), "images": x.shape[0], "k": k, "selected expert (s/image)": t_one / x.shape[0],
            "all experts (s/image)": t_all / x.shape[0], "ratio": float(np.median(ratios)),
            "ratio range": f"{ratios[0]:.3f}-{ratios[-1]:.3f}", "rounds": repeats}
