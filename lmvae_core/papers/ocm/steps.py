"""Notebook 04's paper-profile steps, counted (experiments/paper_steps.py): what the notebook trains and evaluates.

stream_steps, ocm_kind and expansion_test are notebook 05's OCM too. `count(settings)` and `half_budget(settings)` are
what experiments/paper_steps.counters() reads."""
from __future__ import annotations

from ...experiments.paper_steps import TEST, TRAIN, Counter, Job, Kind, calibration, kind
from .settings import JOINT, METHODS, PAPER, SELECTION_VARIANTS, SETTINGS, STREAMS, half_budget, official_steps


def stream_steps(n_train: int, batch: int, stm_size: int, epochs: int, per_round: int, ltm_capacity: int,
                 reservoir: int | None = None) -> int:
    """Optimiser steps of one pass over a task-free stream: after each arriving batch, `epochs` passes over
    STM u LTM, as settings.official_steps (which this equals for the OCM memory); with a reservoir memory of
    `reservoir` slots the memory holds min(seen, reservoir) images instead of the LTM."""
    if reservoir is None:
        return official_steps(n_train, batch, stm_size, per_round, ltm_capacity, epochs)
    stm, seen, total = batch, 0, 0
    for _ in range(n_train // batch):
        stm += batch
        total += epochs * ((stm + min(seen, reservoir)) // batch)
        seen += batch
        if stm > stm_size:
            stm = 0
    return total


def ocm_kind(s: dict, samples: int) -> Kind:
    return kind("ocm", f"OCM component 784-{s['hidden']}-{s['hidden']}-{s['latent']}, batch {s['batch_size']} x "
                       f"{samples} samples", hidden=s["hidden"], latent=s["latent"], batch=s["batch_size"],
                samples=samples)


def ocm_iwae(s: dict) -> Kind:
    return kind("ocm", f"IWAE forward, OCM component 784-{s['hidden']}-{s['hidden']}-{s['latent']}", train=False,
                hidden=s["hidden"], latent=s["latent"], batch=0, samples=1)


def ocm_run(c: Counter, s: dict, what: str, stream: str, method: str, test_n: int, **over) -> int:
    """One OCM run (or the i.i.d. baseline, same steps); returns its steps. Evaluation: every component's IWAE-k
    (eval_k) on the test images, twice (best re-drawn). Dynamic-OCM: R = IWAE-r_samples of STM u LTM over the
    components after every selection round; components taken as the paper's final count (PAPER), an upper bound."""
    s = s | over
    m = METHODS.get(method, {})
    n = sum(TRAIN[d] for d in STREAMS[stream])
    reservoir = s["random_memory"] if m.get("memory") == "reservoir" else None
    n_steps = stream_steps(n, s["batch_size"], s["stm_size"], s["epochs_per_batch"], s["per_round"],
                           s["ltm_capacity"], reservoir)
    samples = s["iwae_samples"] if m.get("objective") == "iwae" else s["train_samples"]
    c.add(what, ocm_kind(s, samples), n_steps, "upper estimate: the LTM grows by per_round every round")
    comps = PAPER.get(stream, {}).get(method, (None, None, 1))[2] if m.get("dynamic") else 1
    c.add(f"{what}: IWAE", ocm_iwae(s), 2 * comps * (s["eval_n"] or test_n) * s["eval_k"])
    if m.get("dynamic"):
        expansion_test(c, s, what, n, comps, "the paper's final count")
    return n_steps


def expansion_test(c: Counter, s: dict, what: str, n: int, comps: int, why: str) -> None:
    """Dynamic-OCM's R: IWAE-r_samples of STM u LTM for every component after each selection round (the STM fires
    at stm_size images, order 'paper', the default of OCMConfig; above it, order 'code': continual/ocm.stm_full)."""
    per_round = s["stm_size"] // s["batch_size"] + (s.get("order", "paper") == "code")
    rounds = (n // s["batch_size"]) // per_round
    c.add(f"{what}: R (expansion test)", ocm_iwae(s), rounds * (s["stm_size"] + s["ltm_capacity"]) * comps
          * s["r_samples"], f"{comps} components ({why}) and a full LTM: an upper estimate")


def count(s=None) -> list[Job]:
    s = s or SETTINGS["paper"]
    c = Counter("04_ocm")

    def table(streams, methods, seeds, what):
        for st in streams:
            test_n = sum(TEST[d] for d in STREAMS[st])
            for seed in seeds:
                for m in methods:
                    ocm_run(c, s, f"{what} {st}, {m}", st, m, test_n)
                if seed in s["iid_seeds"] and "VAE-ELBO-OCM" in methods:
                    ocm_run(c, s, f"{what} {st}, i.i.d. baseline", st, "VAE-ELBO-OCM", test_n)

    table(s["streams"], tuple(METHODS), s["seeds"], "Table 1:")
    table(["cross"], ("VAE-ELBO-Random", "VAE-ELBO-OCM", "Dynamic-ELBO-OCM"), s["cross_seeds"], "Table 3:")
    mnist_test = TEST["mnist"]
    for name, values, method in (("lambda1", s["ablation_lambda1"], "VAE-ELBO-OCM"),
                                 ("stm_size", s["ablation_stm"], "VAE-ELBO-OCM"),
                                 ("lambda2", s["ablation_lambda2"], "Dynamic-ELBO-OCM")):
        for v in values:
            over = {name: int(v)} if name == "stm_size" else {}  # the other values change no step count
            ocm_run(c, s, f"ablation {name}", "mnist", method, mnist_test, **over)
    # the 'paper (Algorithm 2)' rule is the Table 1 run's configuration (same cache key) where the seeds agree
    for st in s["streams"]:
        for seed in s["direction_seeds"]:
            for rule, over in SELECTION_VARIANTS.items():
                if seed not in s["selection_seeds"].get(rule, s["direction_seeds"]):
                    continue
                if seed in s["seeds"] and all(s[k] == v for k, v in over.items()):
                    continue
                ocm_run(c, s, f"selection rules {rule}", st, "VAE-ELBO-OCM", sum(TEST[d] for d in STREAMS[st]))
    calibration(c, JOINT)
    return c.jobs


__all__ = ["SETTINGS", "count", "half_budget", "expansion_test", "ocm_iwae", "ocm_kind", "ocm_run", "stream_steps"]
