"""What the paper profile of each notebook trains and evaluates, counted from the experiment modules' settings.

Each notebook's counter walks the calls its notebook source makes (notebooks/src/NN_*.py) in the `paper` profile
and returns `Job`s: a kind of step (network, batch, samples per step, stacked experts) and how many of them.
Training jobs count optimiser steps; evaluation jobs count image-samples (one image through one network with one
latent draw: an IWAE-k estimate of n images is n*k of them). The numbers come from SETTINGS and the package's own
helpers (training.loop.steps_per_epoch, ocm_claims.official_steps, training.classifier.epochs_for), so the counts follow
the settings. Where a count depends on what a run decides (L-MVAE's reuse test, Dynamic-OCM's expansions, early
stopping), the counter takes the expected outcome and says so in the job's `note`.

Used by benchmarks/paper_cost.py; tests/test_paper_cost.py checks the counting on hand-countable settings.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

from lmvae_core.papers.benchmark import experiments as bench_exp
from lmvae_core.papers.binarized import experiments as bin_exp, settings as bin_settings
from lmvae_core.papers.lgm import settings as lgm_settings
from lmvae_core.papers.lmvae import experiments as lmvae_exp, settings as lmvae_settings
from lmvae_core.papers.mixture_of_vaes import experiments as moe_exp, settings as moe_settings
from lmvae_core.experiments import ocm as ocm_exp
from lmvae_core.experiments.ocm_claims import TRAIN_IMAGES as OCM_TRAIN_IMAGES
from lmvae_core.training.classifier import epochs_for
from lmvae_core.training.loop import steps_per_epoch

# Full training / test split sizes: the paper profile trains on whole datasets (train_limit None). Omniglot: the
# OCM notebook trains on drawers 1-15 of the 32,460 images of both sets (24,345) and tests on drawers 16-20.
TRAIN = {"mnist": 60_000, "fashion": 60_000, "kmnist": 60_000, "cifar10": 50_000,
         "omniglot": OCM_TRAIN_IMAGES["omniglot"]}
TEST = {"mnist": 10_000, "fashion": 10_000, "kmnist": 10_000, "cifar10": 10_000,
        "omniglot": 32_460 - OCM_TRAIN_IMAGES["omniglot"]}
CLASSIFIER_BATCH = 128  # training.classifier.classifier_state trains with TrainConfig()'s default batch


@dataclass(frozen=True)
class Kind:
    """One kind of step: `build` names a builder of benchmarks/paper_cost.py, `args` its arguments (JSON), `train`
    whether it is an optimiser step (else a forward pass, counted per image-sample)."""
    build: str
    args: str
    label: str
    train: bool = True


def kind(build: str, label: str, train: bool = True, **args) -> Kind:
    return Kind(build, json.dumps(args, sort_keys=True), label, train)


@dataclass
class Job:
    notebook: str
    what: str
    kind: Kind
    units: int  # optimiser steps (train kinds) or image-samples (eval kinds)
    note: str = ""


@dataclass
class Counter:
    notebook: str
    jobs: list[Job] = field(default_factory=list)

    def add(self, what: str, k: Kind, units: float, note: str = "") -> None:
        if units > 0:
            self.jobs.append(Job(self.notebook, what, k, int(units), note))


def steps(n: int, batch: int, epochs: float) -> int:
    """Optimiser steps of `epochs` passes over n images in batches (the last batch short, as training.loop)."""
    return int(epochs * steps_per_epoch(n, batch))


# ---- kinds -----------------------------------------------------------------------------------------------------
def vae(hidden, latent, batch, shape=(1, 28, 28), binarized: bool = False, replay: bool = False) -> Kind:
    net = f"{'x'.join(map(str, shape))}-{'-'.join(map(str, hidden))}-{latent}"
    name = f"{'BinarizedVAE' if binarized else 'VAE'} {net}"
    return kind("vae", f"{name}, batch {batch}{' real + replay' if replay else ''}", hidden=list(hidden),
                latent=latent, batch=batch, shape=list(shape), binarized=binarized, replay=replay)


def iwae_vae(hidden, latent, shape=(1, 28, 28), binarized: bool = False) -> Kind:
    name = "BinarizedVAE" if binarized else "VAE"
    return kind("vae", f"IWAE forward, {name} {'-'.join(map(str, hidden))}-{latent}", train=False,
                hidden=list(hidden), latent=latent, batch=0, shape=list(shape), binarized=binarized, replay=False)


def classifier(batch: int = CLASSIFIER_BATCH, mlp: bool = False) -> Kind:
    name = "MLP classifier (fitting capacity)" if mlp else "feature classifier CNN"
    return kind("classifier", f"{name}, batch {batch}", batch=batch, mlp=mlp)


def calibration(c: Counter, spec) -> None:
    """experiments/calibration.py: a JointVAE trained on its dataset, IWAE-k on its test split."""
    n = min(TRAIN[spec.dataset], spec.train_limit or TRAIN[spec.dataset])
    c.add("calibration: joint VAE", vae(spec.hidden, spec.latent, spec.batch_size),
          steps(n, spec.batch_size, spec.epochs))
    t = min(TEST[spec.dataset], spec.test_limit or TEST[spec.dataset])
    c.add("calibration: IWAE", iwae_vae(spec.hidden, spec.latent), t * spec.iwae_k)


# ---- 00 ----------------------------------------------------------------------------------------------------------
def count_00(s: dict | None = None) -> list[Job]:
    s = s or moe_settings.SETTINGS["paper"]
    c = Counter("00_mixture_of_vaes")
    h, z, b, k = (s["hidden"],), s["latent"], s["batch"], s["n_experts"]
    moe = kind("moe", f"MoE-VAE {k} experts 784-{s['hidden']}-{z} + manager, batch {b}", n_experts=k,
               hidden=s["hidden"], latent=z, batch=b)
    for d in s["datasets"]:
        c.add(f"mixture on {d}", moe, steps(TRAIN[d], b, s["epochs"]))
        c.add(f"plain VAE on {d}", vae(h, z, b), steps(TRAIN[d], b, s["epochs"]))
        # MoEVAE.likelihoods: every expert's IWAE-k, drawn twice (best re-drawn)
        c.add(f"IWAE of the mixture on {d}", iwae_vae(h, z), 2 * k * min(s["iwae_n"], TEST[d]) * s["iwae_k"],
              "2 draws x every expert")
    calibration(c, moe_exp.joint_spec(s))
    n_abl = min(TRAIN["mnist"], s["ablation_train"] or TRAIN["mnist"])
    c.add("balancing ablation (with and without)", moe,
          2 * len(s["ablation_seeds"]) * steps(n_abl, b, s["ablation_epochs"]))
    for comps in s["beyond_components"]:
        c.add(f"mixture-prior VAE, {comps} components",
              kind("mog", f"MoG-prior VAE 784-{s['hidden']}-{z}, {comps} components, batch {b}", hidden=s["hidden"],
                   latent=z, components=comps, batch=b), steps(TRAIN["mnist"], b, s["beyond_epochs"]))
    return c.jobs


# ---- 01 ----------------------------------------------------------------------------------------------------------
def _lmvae_kinds(s: dict) -> tuple[dict, int]:
    cfg = lmvae_exp.expert_config(s)
    expert = dict(shape=list(cfg.input_shape), latent=cfg.latent_dim, arch=cfg.arch, hidden=list(cfg.hidden),
                  channels=list(cfg.channels), activation=cfg.activation, likelihood=cfg.likelihood,
                  gaussian_std=cfg.gaussian_std)
    return expert, s["batch"]


def lmvae_kind(s: dict, experts: int) -> Kind:
    expert, b = _lmvae_kinds(s)
    return kind("lmvae", f"L-MVAE {experts} stacked {expert['arch']} experts {'x'.join(map(str, expert['shape']))}, "
                         f"batch {b}", experts=experts, batch=b, **expert)


def lmvae_iwae(s: dict) -> Kind:
    expert, _ = _lmvae_kinds(s)
    return kind("lmvae", f"IWAE forward, {expert['arch']} expert {'x'.join(map(str, expert['shape']))}", train=False,
                experts=1, batch=0, **expert)


def lmvae_stream(c: Counter, s: dict, what: str, names, n_experts: int, epochs: int, probe_epochs: float | None,
                 rule: str = "probe", threshold: float | None = 0.1, limit: int | None = None,
                 eval_k: int = 0, eval_n: int | None = None) -> None:
    """One run_lmvae: a new domain trains every trainable expert stacked (grows one when none is left); a repeated
    domain is expected to reuse its expert (no training). Tasks after the first train a probe expert (rule
    'probe'). eval_k > 0: after task t the selected expert's IWAE on the test images of tasks 0..t."""
    trainable, seen = n_experts, set()
    for t, d in enumerate(names):
        n = min(TRAIN[d], limit or TRAIN[d])
        if t and rule == "probe" and threshold is not None:
            rest = n - s["probe"]
            c.add(f"{what}: probe experts", lmvae_kind(s, 1), math.ceil(probe_epochs * rest / s["batch"]))
        if d not in seen:
            trainable = trainable or 1
            c.add(f"{what}: tasks", lmvae_kind(s, trainable), steps(n, s["batch"], epochs),
                  "new domains train, repeats reuse (the expected decisions)")
            trainable -= 1
        seen.add(d)
        if eval_k:
            c.add(f"{what}: IWAE after each task", lmvae_iwae(s),
                  sum(min(eval_n or TEST[e], TEST[e]) for e in names[:t + 1]) * eval_k)


def count_01(s: dict | None = None) -> list[Job]:
    s = s or lmvae_settings.SETTINGS["paper"]
    c = Counter("01_lmvae")
    seq, e, k, n_ev = list(s["sequence"]), s["epochs"], s["iwae_k"], s["eval_n"]
    probe = lambda epochs: s["probe_epochs"] or epochs  # noqa: E731  (model_config's rule)
    lmvae_stream(c, s, "main sequence L-MVAE", seq, s["n_experts"], e, probe(e), threshold=s["threshold"],
                 limit=s["train_limit"], eval_k=k, eval_n=n_ev)
    ex = lmvae_kind(s, 1)
    for t, d in enumerate(seq):
        n = min(TRAIN[d], s["train_limit"] or TRAIN[d])
        c.add("fine-tuned VAE", ex, steps(n, s["batch"], e))
        c.add("fine-tuned VAE: IWAE after each task", lmvae_iwae(s),
              sum(min(n_ev or TEST[x], TEST[x]) for x in seq[:t + 1]) * k)
    c.add("joint VAE", ex, steps(sum(TRAIN[d] for d in dict.fromkeys(seq)), s["batch"], e))
    c.add("joint VAE: IWAE", lmvae_iwae(s), sum(min(n_ev or TEST[d], TEST[d]) for d in seq) * k)
    lmvae_stream(c, s, "capacity variant", seq, 1, s["capacity_epochs"], probe(e), threshold=s["threshold"],
                 limit=s["capacity_train"])
    g = s["growth_epochs"]
    for th in s["thresholds"]:
        lmvae_stream(c, s, "threshold sweep", list(s["growth_sequence"]), 1, g, probe(g), threshold=th,
                     limit=s["growth_train"])
    for names in s["directions"]:
        for rule, th in [("probe", s["threshold"])] + [("ratio", th) for th in s["ratio_thresholds"]]:
            lmvae_stream(c, s, "directions", list(names), 1, g, probe(g), rule, th, s["growth_train"])
    lmvae_stream(c, s, "hard pair", list(s["hard_pair"]), s["n_experts"], e, probe(e), threshold=s["threshold"],
                 limit=s["train_limit"])
    # likelihood_report: every assigned expert's IWAE, and a second draw for the best (main: 4 experts, hard: 2)
    for pair, names in (("main", seq), ("hard", list(s["hard_pair"]))):
        n_img = sum(min(n_ev or TEST[d], TEST[d]) for d in dict.fromkeys(names))
        c.add(f"likelihood cost ({pair})", lmvae_iwae(s), (len(dict.fromkeys(names)) + 1) * n_img * k)
    # inference_time: the selected expert once to warm up and 3 times, every assigned expert 3 times
    c.add("inference time (selected and all experts)", lmvae_iwae(s),
          (4 + 3 * len(seq)) * s["timing_n"] * s["timing_k"])
    calibration(c, s["calibration"])
    return c.jobs


# ---- 02 ----------------------------------------------------------------------------------------------------------
def lgm_kind(s: dict, replay: bool, gamma: float, shape=(1, 28, 28)) -> Kind:
    rows = f"real + teacher replay, gamma_c {gamma:g}" if replay else "real"
    return kind("lgm", f"LGM 784-{'-'.join(map(str, s['hidden']))}-{s['latent']}, batch {s['batch']} {rows}",
                hidden=list(s["hidden"]), latent=s["latent"], batch=s["batch"], replay=replay,
                gamma=gamma if replay else 0.0, shape=list(shape))


def lgm_run(c: Counter, s: dict, what: str, method: str, task_sizes: list[int], gamma: float = 1.0) -> None:
    """One LGMLearner over a stream: tasks after the first replay teacher samples (lgm, replay) or stored
    images ('full', same rows) beside the full real batch; naive and EWC train on the real batch alone.
    Evaluation per boundary (lgm.evaluate): IWAE-k on iwae_n // tasks images of each task seen."""
    per = max(1, s["iwae_n"] // len(task_sizes))
    for t, n in enumerate(task_sizes):
        replay = t > 0 and method in ("lgm", "replay", "full")
        g = 0.0 if method in ("replay", "full") else gamma
        c.add(f"{what}: training", lgm_kind(s, replay, g), steps(n, s["batch"], s["epochs"]))
        c.add(f"{what}: IWAE after each task",
              kind("lgm", f"IWAE forward, LGM 784-{'-'.join(map(str, s['hidden']))}-{s['latent']}", train=False,
                   hidden=list(s["hidden"]), latent=s["latent"], batch=0, replay=False, gamma=0.0, shape=[1, 28, 28]),
              (t + 1) * per * s["iwae_k"])


def count_02(s: dict | None = None) -> list[Job]:
    s = s or lgm_settings.SETTINGS["paper"]
    c = Counter("02_lifelong_generative_modeling")
    split = {d: [TRAIN[d] // 10] * 10 for d in s["datasets"]}  # one class per task (about a tenth each)
    for d in s["datasets"]:
        for m in s["methods"]:
            for _ in s["seeds"]:
                lgm_run(c, s, f"split {d}, {m}", m, split[d])
        clf_epochs = epochs_for(TRAIN[d], s["fid_epochs"], s["clf_min_passes"])
        c.add(f"feature classifier {d}", classifier(), steps(TRAIN[d], CLASSIFIER_BATCH, clf_epochs))
    # lgm.gamma_ablation: gamma 0 is the 'replay' method and gamma 1 the 'lgm' method of the split experiment (the
    # same cache keys); only the other values train
    shared = {0.0: "replay", 1.0: "lgm"}
    for g in s["gammas"]:
        if shared.get(g) not in s["methods"]:
            for _ in s["seeds"]:
                lgm_run(c, s, f"gamma ablation {g}", "replay" if g == 0 else "lgm", split[s["ablation_dataset"]], g)
    perm = [min(TRAIN["mnist"], s["perm_train"] or TRAIN["mnist"])] * s["perm_tasks"]
    for m in s["perm_methods"]:
        for _ in s["seeds"]:
            lgm_run(c, s, f"permuted MNIST, {m}", m, perm)
    calibration(c, s["joint"])
    return c.jobs


# ---- 03 ----------------------------------------------------------------------------------------------------------
def ensemble_kind(s: dict, latent: int, members: int) -> Kind:
    return kind("ensemble",
                f"BinarizedVAE ensemble of {members} stacked 784-{s['hidden']}-{latent}, batch {s['batch']}",
                hidden=s["hidden"], latent=latent, members=members, batch=s["batch"])


def count_03(s: dict | None = None) -> list[Job]:
    s = s or bin_settings.SETTINGS["paper"]
    c = Counter("03_binarized_regularization")
    main = [(d, s["latent"]) for d in s["datasets"] for _ in s["objectives"] for _ in s["rs"]]
    collapse = [(s["datasets"][0], s["collapse_latent"]) for _ in s["collapse_objectives"] for _ in s["collapse_rs"]]
    for d, z in main + collapse:
        n = min(TRAIN[d], s["sweep_train"] or TRAIN[d])
        c.add(f"r sweep ({'main' if z == s['latent'] else 'collapse'})", ensemble_kind(s, z, s["seeds"]),
              steps(n, s["batch"], s["epochs"]))
        c.add("r sweep: IWAE per member", iwae_vae((s["hidden"],), z, binarized=True),
              s["seeds"] * min(s["eval_n"], TEST[d]) * s["iwae_k"])
    for d in s["datasets"]:
        n = min(TRAIN[d], s["clf_n"] or TRAIN[d])
        c.add(f"feature classifier {d}", classifier(), steps(n, CLASSIFIER_BATCH,
                                                             epochs_for(n, s["clf_epochs"], s["clf_min_passes"])))
    calibration(c, bin_exp.calibration_spec(s))
    # overhead: plain and binarized, overhead_steps per block, overhead_rounds + 1 blocks (one warm-up)
    c.add("overhead timing", vae((s["hidden"],), s["latent"], s["batch"], binarized=True),
          2 * s["overhead_steps"] * (s["overhead_rounds"] + 1))
    n_task = min(TRAIN["mnist"], s["cl_train_limit"] or TRAIN["mnist"]) // 5
    for _ in s["cl_rs"]:
        for _ in range(s["cl_seeds"]):
            for t in range(5):  # split MNIST, 5 tasks; generative replay from the second task on
                c.add("continual (generative replay)",
                      vae((s["hidden"],), s["latent"], s["batch"], binarized=True, replay=t > 0),
                      steps(n_task, s["batch"], s["cl_epochs"]))
                c.add("continual: IWAE after each task", iwae_vae((s["hidden"],), s["latent"], binarized=True),
                      (t + 1) * s["cl_eval_n"] * s["cl_k"])
    return c.jobs


# ---- 04 ----------------------------------------------------------------------------------------------------------
def stream_steps(n_train: int, batch: int, stm_size: int, epochs: int, per_round: int, ltm_capacity: int,
                 reservoir: int | None = None) -> int:
    """Optimiser steps of one pass over a task-free stream: after each arriving batch, `epochs` passes over
    STM u LTM, as ocm_claims.official_steps (which this equals for the OCM memory); with a reservoir memory of
    `reservoir` slots the memory holds min(seen, reservoir) images instead of the LTM."""
    if reservoir is None:
        from lmvae_core.experiments.ocm_claims import official_steps

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
    m = ocm_exp.METHODS.get(method, {})
    n = sum(TRAIN[d] for d in ocm_exp.STREAMS[stream])
    reservoir = s["random_memory"] if m.get("memory") == "reservoir" else None
    n_steps = stream_steps(n, s["batch_size"], s["stm_size"], s["epochs_per_batch"], s["per_round"],
                           s["ltm_capacity"], reservoir)
    samples = s["iwae_samples"] if m.get("objective") == "iwae" else s["train_samples"]
    c.add(what, ocm_kind(s, samples), n_steps, "upper estimate: the LTM grows by per_round every round")
    comps = ocm_exp.PAPER.get(stream, {}).get(method, (None, None, 1))[2] if m.get("dynamic") else 1
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


def count_04(s: dict | None = None) -> list[Job]:
    s = s or ocm_exp.SETTINGS["paper"]
    c = Counter("04_ocm")

    def table(streams, methods, seeds, what):
        for st in streams:
            test_n = sum(TEST[d] for d in ocm_exp.STREAMS[st])
            for seed in seeds:
                for m in methods:
                    ocm_run(c, s, f"{what} {st}, {m}", st, m, test_n)
                if seed in s["iid_seeds"] and "VAE-ELBO-OCM" in methods:
                    ocm_run(c, s, f"{what} {st}, i.i.d. baseline", st, "VAE-ELBO-OCM", test_n)

    table(s["streams"], tuple(ocm_exp.METHODS), s["seeds"], "Table 1:")
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
            for rule, over in ocm_exp.SELECTION_VARIANTS.items():
                if seed not in s["selection_seeds"].get(rule, s["direction_seeds"]):
                    continue
                if seed in s["seeds"] and all(s[k] == v for k, v in over.items()):
                    continue
                ocm_run(c, s, f"selection rules {rule}", st, "VAE-ELBO-OCM", sum(TEST[d] for d in ocm_exp.STREAMS[st]))
    calibration(c, ocm_exp.JOINT)
    return c.jobs


# ---- 05 ----------------------------------------------------------------------------------------------------------
BENCH_TASKS = {"split_mnist": ["mnist"] * 5, "split_fashion": ["fashion"] * 5, "taskfree_mnist": ["mnist"] * 5,
               "mnist_fashion": ["mnist", "fashion"]}


def count_05(s: dict | None = None) -> list[Job]:
    s = s or bench_exp.SETTINGS["paper"]
    c = Counter("05_benchmark")
    h, z, b, k = (s["hidden"],), s["latent"], s["batch"], s["iwae_k"]
    ocm_s = dict(s["ocm"], hidden=s["hidden"], latent=z)
    for stream in s["streams"]:
        datasets = BENCH_TASKS[stream]
        per_task = len(datasets) == 5  # split streams: 2 classes (a fifth of the dataset) per task
        sizes = [min(TRAIN[d] // 5 if per_task else TRAIN[d], s["train_per_task"] or TRAIN[d]) for d in datasets]
        tests = [min(s["test_per_task"], TEST[d]) for d in datasets]
        online = stream == "taskfree_mnist"
        for method in s["methods"]:
            for _ in s["seeds"]:
                epochs = (1 if online and method not in bench_exp.OFFLINE
                          else bench_exp.epochs_on(s, bench_exp.trained_on(stream, method)))
                what = f"{stream}, {method}"
                experts = 1
                if method in bench_exp.OFFLINE:
                    k_moe = s["moe_experts"]
                    kd = vae(h, z, b) if method == "Joint VAE" else kind(
                        "moe", f"MoE-VAE {k_moe} experts 784-{s['hidden']}-{z} + manager, batch {b}", n_experts=k_moe,
                        hidden=s["hidden"], latent=z, batch=b)
                    experts = 1 if method == "Joint VAE" else k_moe
                    c.add(what, kd, steps(sum(sizes), b, epochs))
                elif method in ("VAE-ELBO-OCM", "Dynamic-OCM"):
                    c.add(what, ocm_kind(ocm_s, ocm_s["train_samples"]),
                          stream_steps(sum(sizes), ocm_s["batch_size"], ocm_s["stm_size"], ocm_s["epochs_per_batch"],
                                       ocm_s["per_round"], ocm_s["ltm_capacity"]),
                          "upper estimate: the LTM grows by per_round every round")
                    experts = ocm_s["max_components"] if method == "Dynamic-OCM" else 1
                    if method == "Dynamic-OCM":
                        expansion_test(c, ocm_s, what, sum(sizes), experts, "the cap")
                else:
                    trainable = s["lmvae_experts"]
                    for t, n in enumerate(sizes):
                        if method == "L-MVAE":
                            trainable = trainable or 1
                            kd = lmvae_kind(dict(arch="mlp", size=None, latent=z, hidden=s["hidden"],
                                                 likelihood="bernoulli", gaussian_std=0.1, batch=b,
                                                 channels=(32, 64)), trainable)  # channels: unused by an MLP
                            trainable -= 1
                        elif method == "LGM":
                            kd = lgm_kind(dict(hidden=h, latent=z, batch=b), t > 0, s["lgm_gamma"])
                        else:
                            kd = vae(h, z, b, replay=t > 0 and method.startswith("Replay"),
                                     binarized="Binarized" in method)
                        c.add(what, kd, steps(n, b, epochs))
                    experts = len(sizes) if method == "L-MVAE" else 1
                # evaluation: after task t < T-1 every task seen, then the union; each expert/component's IWAE-k
                n_eval = sum(sum(tests[:t + 1]) for t in range(len(tests) - 1)) + sum(tests)
                c.add(f"{what}: IWAE", iwae_vae(h, z), experts * n_eval * k,
                      "Dynamic-OCM at its component cap: an upper estimate" if method == "Dynamic-OCM" else "")
                c.add(f"{what}: fitting capacity", classifier(100, mlp=True),
                      steps(int(s["n_generated"] * 0.9), 100, s["fc_max_epochs"]),
                      "at most fc_max_epochs (early stopped)")
        clf_n = sum(min(TRAIN[d] // 5 if per_task else TRAIN[d], s["clf_train_per_task"] or TRAIN[d]) for d in datasets)
        if stream != "taskfree_mnist":  # shares split MNIST's classifier
            c.add(f"{stream}: feature classifier", classifier(),
                  steps(clf_n, CLASSIFIER_BATCH, epochs_for(clf_n, s["clf_epochs"], s["clf_min_passes"])))
        c.add(f"{stream}: real fitting capacity", classifier(100, mlp=True),
              steps(int(sum(sizes) * 0.9), 100, s["fc_max_epochs"]), "at most fc_max_epochs (early stopped)")
    from lmvae_core.experiments.calibration import JointVAE

    calibration(c, JointVAE("mnist", h, z, **s["calibration"]))
    return c.jobs


# ---- the half-budget runs ----------------------------------------------------------------------------------------
# Every notebook runs its claims' experiments a second time at half the training budget (results/claims.py's
# half-budget rule): the experiment module's `half_budget` (05: `half_settings`, the methods whose half runs feed
# claims). The counter counts the whole notebook again at those settings, an upper estimate: the half runs repeat
# only what feeds the claims, and share calibration and classifiers with the full run.
HALF_SETTINGS = {"00_mixture_of_vaes": (moe_settings, moe_settings.half_budget),
                 "01_lmvae": (lmvae_settings, lmvae_settings.half_budget),
                 "02_lifelong_generative_modeling": (lgm_settings, lgm_settings.half_budget),
                 "03_binarized_regularization": (bin_settings, bin_settings.half_budget), "04_ocm": (ocm_exp, ocm_exp.half_budget),
                 "05_benchmark": (bench_exp, bench_exp.half_settings)}
HALF_NOTE = "the notebook counted again at its half-budget settings (an upper estimate)"


def with_half_runs(notebook: str, count):
    """A counter that adds the notebook's half-budget runs to `count`'s jobs at the paper settings."""
    module, halve = HALF_SETTINGS[notebook]

    def counted(s: dict | None = None) -> list[Job]:
        s = s or module.SETTINGS["paper"]
        half = [Job(j.notebook, f"half-budget run: {j.what}", j.kind, j.units, HALF_NOTE) for j in count(halve(s))]
        return count(s) + half

    return counted


COUNTERS = {nb: with_half_runs(nb, count) for nb, count in (
    ("00_mixture_of_vaes", count_00), ("01_lmvae", count_01), ("02_lifelong_generative_modeling", count_02),
    ("03_binarized_regularization", count_03), ("04_ocm", count_04), ("05_benchmark", count_05))}


def all_jobs() -> list[Job]:
    return [j for f in COUNTERS.values() for j in f()]
