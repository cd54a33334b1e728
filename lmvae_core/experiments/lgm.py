"""Notebook 02: Lifelong Generative Modeling (student-teacher VAE) against its baselines on task streams.

Every method is the same code (lmvae_core.continual.lgm.LGMLearner) with switches, run by the package's
stream driver with the same real-data budget per task for every method (teacher replay and stored images
come on top). One cached run trains a method on a whole stream and evaluates it after every task: -ELBO
per task and on the cumulative test set, the IWAE bound on a class-balanced subset of the cumulative test
set, consistency with the previous model, FID of prior samples against the cumulative test set in a
feature classifier's space, how much the discrete code z_d says about the task (mutual information between
the category an image is assigned to and its task, on the cumulative test set) and how much z_d changes the
decoder's output. After the last task, the classes the prior samples cover, counted with the feature
classifier at a confidence threshold calibrated on real test images (metrics/coverage.py), and the share
of the samples that belong to the last task's classes. The claims are in `lgm_claims`.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..continual import Budget, LGMLearner, LifelongConfig, pack, restore, run_stream
from ..data.preprocess import binarize_fixed
from ..data.streams import DataConfig, TaskStream, class_split_stream, load_split, permuted_stream
from ..metrics import TaskMatrix, fid, iwae_log_likelihood, negative_elbo
from ..metrics.fid import classifier_check, real_fid
from ..training.classifier import epochs_for, feature_classifier
from ..metrics.coverage import confidence_threshold, mutual_information, sample_coverage
from ..models.lgm import LGM, LGMConfig
from ..results.runner import Call, GridRun
from ..runtime import cpu_threads
from .calibration import JointVAE, calibrate
from .common import Run, paper_shape
from .settings import Settings

METHOD_LABELS = {"lgm": "LGM (replay + consistency)", "replay": "replay only (gamma_c=0)", "naive": "naive sequential",
                 "ewc": "EWC", "full": "full data (upper bound)"}


@dataclass(frozen=True, eq=False)
class LGMSettings(Settings):
    """Notebook 02's settings for one profile."""
    datasets: tuple[str, ...]  # the split (class-incremental) streams' datasets
    methods: tuple[str, ...]  # the methods run on them (METHOD_LABELS)
    hidden: tuple[int, ...]  # the LGM's hidden layers
    latent: int  # its continuous latent dimension
    epochs: int  # passes over each task's real data (`budget`)
    batch: int  # real rows per step
    ewc_gamma: float  # EWC's penalty weight
    fisher_samples: int  # images of EWC's Fisher estimate
    iwae_k: int  # importance samples of the IWAE bound
    iwae_n: int  # cumulative test images it is scored on (a class-balanced subset)
    fid_n: int  # samples and real test images of each FID
    fid_train: int | None  # the feature classifier's training images (None: all)
    fid_epochs: int  # its epochs (at least clf_min_passes image passes)
    clf_min_passes: int
    gammas: tuple[float, ...]  # gamma_c values of the ablation
    ablation_dataset: str  # its split stream
    perm_tasks: int  # tasks of permuted MNIST
    perm_train: int  # its training images per task
    perm_test: int  # its test images per task
    perm_methods: tuple[str, ...]  # the methods run on it
    seeds: tuple[int, ...]
    sample_n: int  # prior samples whose classes are counted after the last task
    pass_rate: float  # a sample counts for a class when the classifier is as sure as on this share of real images
    joint: JointVAE  # the jointly trained VAE of calibration.py
    study: dict | None  # the regulariser study's overrides of these settings (`study_settings`; None: none)
    lr: float = 1e-3  # Adam's learning rate
    max_steps: int | None = None  # at most this many steps per task (None: no cap)
    task_share: float = 1.0  # the share of each task's steps a run gets (below 1 only in `half_budget`'s runs)
    eval_every_task: bool = True  # False: evaluate after the last task only (the study)


SETTINGS = {
    "smoke": LGMSettings(
        datasets=("mnist",), methods=("lgm", "replay", "naive", "ewc", "full"), hidden=(32,),
        latent=4, epochs=1, max_steps=3, batch=50, ewc_gamma=10.0, fisher_samples=16, iwae_k=4, iwae_n=50,
        fid_n=150, fid_train=1000, fid_epochs=1, clf_min_passes=0, gammas=(0.0, 1.0),
        ablation_dataset="mnist",
        perm_tasks=2, perm_train=300, perm_test=100, perm_methods=("lgm", "naive"), seeds=(0,),
        sample_n=200, pass_rate=0.95, study=dict(seeds=(0, 1), methods=("lgm", "replay", "ewc")),
        joint=JointVAE("mnist", (32,), 4, epochs=1, batch_size=50, iwae_k=4, test_limit=100)),
    "quick": LGMSettings(
        datasets=("mnist", "fashion"), methods=("lgm", "replay", "naive", "ewc", "full"), hidden=(200,),
        latent=20, epochs=1, max_steps=None, batch=64, lr=2e-3, ewc_gamma=10.0, fisher_samples=128,
        iwae_k=50, iwae_n=500, fid_n=500, fid_train=None, fid_epochs=3,
        clf_min_passes=150_000, gammas=(0.0, 1.0, 10.0), ablation_dataset="mnist",
        perm_tasks=5, perm_train=12000, perm_test=1000, perm_methods=("lgm", "replay", "naive"),
        seeds=(0, 1, 2), sample_n=1000, pass_rate=0.95, joint=JointVAE("mnist", (200,), 20, epochs=10, iwae_k=500),
        study=dict(epochs=5, seeds=tuple(range(8)), methods=("lgm", "replay", "ewc"), gammas=(0.0, 1.0, 10.0),
                   eval_every_task=False)),
    "paper": LGMSettings(
        datasets=("mnist", "fashion"), methods=("lgm", "replay", "naive", "ewc", "full"),
        hidden=(512, 512), latent=40, epochs=50, batch=300, ewc_gamma=10.0, fisher_samples=1024,
        iwae_k=5000, iwae_n=2000, fid_n=5000, fid_train=None, fid_epochs=5, clf_min_passes=300_000,
        gammas=(0.0, 0.1, 1.0, 10.0), ablation_dataset="mnist", perm_tasks=5, perm_train=60000,
        perm_test=10000, perm_methods=("lgm", "replay", "naive", "ewc", "full"), seeds=(0, 1, 2),
        sample_n=5000, pass_rate=0.95, joint=JointVAE("mnist", (512, 512), 40, epochs=10, iwae_k=5000),
        study=dict(methods=("lgm", "replay", "ewc"))),
}
# paper-shape (CI): the paper's settings at toy sizes on the committed sample (`common.paper_shape`). The split
# streams take the whole sample (the paper has no image limit): one batch of 300 per task and epoch. Two epochs, so
# that half_budget halves the epochs as in the paper (at one epoch its task_share cap would still be one step).
def datasets_needed(s: dict) -> list[str]:
    """The datasets notebook 02 loads under settings s (experiments/needs.py): permuted MNIST and its classifier
    use MNIST in every profile."""
    return [*s["datasets"], s["ablation_dataset"], "mnist"]


PAPER_SHAPE = dict(epochs=2, seeds=(0,), fisher_samples=16, iwae_k=2, iwae_n=10, fid_n=30, fid_train=200,
                   fid_epochs=1, clf_min_passes=0, perm_tasks=2, perm_train=300, perm_test=100, sample_n=50,
                   joint=JointVAE("mnist", (512, 512), 40, epochs=1, iwae_k=2, train_limit=300, test_limit=100))
# 22 ten-task streams (main, gamma_c ablation, half budgets) of 3.5-4.5 s each on a CPU even at toy sizes, mostly
# per-task evaluation that no size scales: split MNIST alone and two gamma_c keep the notebook within CI's budget.
PAPER_SHAPE_CHANGED = {
    "datasets": (("mnist",), "split Fashion runs the same code on another dataset (its partial last batch aside), "
                             "and each ten-task stream costs about 4 s of evaluation on a CPU however small"),
    "gammas": ((0.0, 1.0), "the gamma_c ablation runs one ten-task stream per value: 0 (plain replay) and 1 (the "
                           "paper's) exercise both sides of the consistency term"),
}
SETTINGS["paper-shape"] = paper_shape(SETTINGS["paper"], PAPER_SHAPE, PAPER_SHAPE_CHANGED)
# The joint VAE of each profile is judged against this measured reference (784-200-20, 10 epochs, IWAE-500).
CALIBRATION_REFERENCE = "mnist_784-200-20_10ep"
EVAL_VERSION = 3  # bump when `evaluate` or the end-of-run metrics change, so cached runs are not reused


def model_config(s: dict, shape=(1, 28, 28)) -> LGMConfig:
    return LGMConfig(input_shape=tuple(shape), latent_dim=s["latent"], discrete_dim=1, grow=1, hidden=tuple(s["hidden"]))


def lifelong_config(s: dict, method: str) -> LifelongConfig:
    return LifelongConfig(method=method, ewc_gamma=s["ewc_gamma"], fisher_samples=s["fisher_samples"])


def budget(s: dict, stream: TaskStream | None = None) -> Budget:
    """Real data per task, the same for every method: s['epochs'] passes of s['batch'] rows, at most
    s['max_steps'] steps. s['task_share'] < 1 (the half-budget run of a one-epoch profile, `half_budget`) caps
    the steps per task at that share of the stream's mean steps per task (one cap for every task of the
    stream, as the driver takes one budget: tasks of unequal size get slightly unequal shares; the claims'
    schedules count the real images each task actually got)."""
    max_steps, share = s["max_steps"], s["task_share"]
    if share < 1.0:
        if stream is None:
            raise ValueError("a budget with task_share < 1 needs the stream (its tasks' sizes)")
        per_task = float(np.mean([math.ceil(len(t.train) / s["batch"]) for t in stream]))
        cap = max(1, round(share * s["epochs"] * per_task))
        max_steps = cap if max_steps is None else min(max_steps, cap)
    return Budget(epochs=s["epochs"], batch_size=s["batch"], max_steps=max_steps)


def study_settings(s: dict) -> dict:
    """The settings of the regulariser study (LGM against plain replay, EWC and other gamma_c): the profile's own,
    overridden by its `study` entry. Quick runs the study longer and with more seeds than the overview (5 epochs
    per task, 8 seeds: at 1 epoch and 3 seeds the replay-minus-LGM interval spanned 0 on both datasets) and
    evaluates only after the last task, which is all its claims read; paper's study is its main runs (the same
    cache keys)."""
    return s | dict(s.get("study") or {}) | {"study": None}


def half_budget(s: dict) -> dict:
    """The settings with the real data per task halved and nothing else changed (networks, evaluation, seeds,
    data, classifier): half the epochs when there are two or more (and half of a `max_steps` cap with them),
    else half of a `max_steps` cap, else (one full epoch) half of each task's steps through `task_share`."""
    max_steps = s["max_steps"]
    if s["epochs"] >= 2:
        changes = {"epochs": s["epochs"] // 2} | ({} if max_steps is None else {"max_steps": max(1, max_steps // 2)})
    elif max_steps is not None:
        changes = {"max_steps": max(1, max_steps // 2)}
    else:
        changes = {"task_share": 0.5 * s["task_share"]}
    return s | changes


def split_stream(run: Run, dataset: str) -> TaskStream:
    """10 tasks of one class each."""
    return class_split_stream(dataset, 10, run.data())


def perm_stream(run: Run) -> TaskStream:
    s = run.settings
    return permuted_stream(s["perm_tasks"], "mnist", run.seed, run.data(train_limit=s["perm_train"],
                                                                        test_limit=s["perm_test"]))


def classifier_data(run: Run, dataset: str):
    """The feature classifier's training images (fid_train of them, None: all, so that it reaches its accuracy
    floor, metrics/fid.py) and its epochs (at least clf_min_passes image passes)."""
    s = run.settings
    train = load_split(dataset, "train", run.data())
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(train), generator=g)[: s["fid_train"]].to(train.x.device)
    return train.x[idx], train.y[idx], epochs_for(len(idx), s["fid_epochs"], s["clf_min_passes"])


def classifier_for(run: Run, dataset: str):
    """The feature classifier (FID features, class coverage of samples)."""
    x, y, epochs = classifier_data(run, dataset)
    with cpu_threads(1, run.device):
        return feature_classifier(dataset, x, y, epochs=epochs, force=run.force)


def feature_check(run: Run, dataset: str) -> dict:
    """The classifier's test accuracy against its floor and the FID of fid_n real training images against the
    real test set (what a perfect generator would score at this sample size), printed beside the FIDs."""
    clf = classifier_for(run, dataset)
    test = load_split(dataset, "test", run.data())
    x, _, epochs = classifier_data(run, dataset)
    return classifier_check(clf, dataset, test.x, test.y) | {
        "train images": len(x), "epochs": epochs, "real-vs-real FID": real_fid(clf, x, test.x, run.settings["fid_n"]),
        "FID images": run.settings["fid_n"]}


@torch.no_grad()
def evaluate(model: LGM, prev: LGM | None, stream: TaskStream, tests: list[torch.Tensor], t: int, s: dict,
             classifier, seed: int) -> dict:
    model.eval()
    torch.manual_seed(seed)
    per_task = [negative_elbo(model, tests[j]) for j in range(t + 1)]
    sizes = np.array([tests[j].shape[0] for j in range(t + 1)])
    m = max(1, s["iwae_n"] // len(stream))
    sub = torch.cat([tests[j][:m] for j in range(t + 1)])
    iwae = float(iwae_log_likelihood(model, sub, k=s["iwae_k"]).mean())
    consistency = float("nan")
    if prev is not None:
        consistency = float((prev.assign(tests[t - 1]) == model.assign(tests[t - 1])).float().mean())
    cats = torch.cat([model.assign(tests[j]) for j in range(t + 1)]).cpu().numpy()
    task_of = np.repeat(np.arange(t + 1), sizes)
    info = mutual_information(task_of, cats)
    real = stream.cumulative_test(t).x
    real = real[torch.randperm(real.shape[0], generator=torch.Generator().manual_seed(seed))[: s["fid_n"]].to(real.device)]
    samples = model.sample(s["fid_n"], generator=_gen(real.device, seed))
    return {"task": t, "per_task_nelbo": per_task, "cum_nelbo": float(np.dot(per_task, sizes) / sizes.sum()),
            "cum_iwae": iwae, "consistency": consistency, "fid": fid(classifier, samples, real),
            "n_categories": model.n_categories, "task_mi": info["nats"], "task_nmi": info["normalised"],
            "code_effect": model.code_effect(200, _gen(real.device, seed))}


def _gen(device, seed):
    return torch.Generator(device=device).manual_seed(seed)


def _stream(run: Run, kind: str) -> TaskStream:
    """kind: a dataset name (split into 10 one-class tasks) or 'permuted' (permuted MNIST)."""
    return perm_stream(run) if kind == "permuted" else split_stream(run, kind)


def _clf_dataset(kind: str) -> str:
    return "mnist" if kind == "permuted" else kind


def _stream_data(run: Run, kind: str) -> DataConfig:
    s = run.settings
    return run.data(train_limit=s["perm_train"], test_limit=s["perm_test"]) if kind == "permuted" else run.data()


def _configs(run: Run, stream: TaskStream, method: str, gamma_c: float):
    s = run.settings
    if method == "replay":
        gamma_c = 0.0
    mcfg = model_config(s, stream[0].train.x.shape[1:])
    mcfg.gamma_c = gamma_c if method in ("lgm", "replay") else mcfg.gamma_c
    return mcfg, lifelong_config(s, method), gamma_c


def method_call(run: Run, kind: str, method: str, seed: int, gamma_c: float = 1.0,
                stream: TaskStream | None = None) -> Call:
    """One grid cell: a method trained on a whole stream, cached by everything it depends on."""
    s = run.settings
    stream = stream if stream is not None else _stream(run, kind)
    mcfg, lcfg, _ = _configs(run, stream, method, gamma_c)
    eval_keys = {k: s[k] for k in ("iwae_k", "iwae_n", "fid_n", "sample_n", "pass_rate")} | {"version": EVAL_VERSION}
    if not s["eval_every_task"]:
        eval_keys["every_task"] = False  # only then: the keys of runs evaluated after every task stay as they were
    key = {"stream": stream.name, "sizes": [len(t.train) for t in stream], "model": asdict(mcfg),
           "lifelong": asdict(lcfg), "budget": asdict(budget(s, stream)), "lr": s["lr"], "seed": seed,
           "data": asdict(_stream_data(run, kind)) | {"device": None}, "eval": eval_keys,
           "classifier": _clf_key(run, _clf_dataset(kind))}
    cell = {"stream": kind, "method": method, "seed": seed} | (
        {"gamma_c": mcfg.gamma_c} if method in ("lgm", "replay") else {})
    return Call("lgm_stream", key, fit_method, (run, kind, method, seed, gamma_c), cell)


def fit_method(run: Run, kind: str, method: str, seed: int, gamma_c: float = 1.0) -> dict:
    """Train one method on a stream through the driver, evaluating after every task (uncached; module level
    for Dask workers)."""
    s = run.settings
    stream = _stream(run, kind)
    classifier = classifier_for(run, _clf_dataset(kind))
    mcfg, lcfg, gamma_c = _configs(run, stream, method, gamma_c)
    tests = [binarize_fixed(task.test.x, 123 + j) for j, task in enumerate(stream)]
    log = []

    def on_boundary(t, learner):
        if not s["eval_every_task"] and t < len(stream) - 1:
            return  # the study reads only the final evaluation
        log.append(evaluate(learner.student, learner.teacher, stream, tests, t, s, classifier, seed + 7 * t))

    with cpu_threads(1, run.device):
        torch.manual_seed(seed)
        learner = LGMLearner(mcfg, lcfg, gamma_c=gamma_c, seed=seed, device=run.device, lr=s["lr"],
                             progress=run.progress)
        result = run_stream(learner, stream, budget(s, stream), on_boundary)
        model = learner.student
        samples = model.sample(s["sample_n"], generator=_gen(model.tau.device, seed))
        # a sample counts for a class when the classifier is as sure as it is on s['pass_rate'] of real images
        threshold = confidence_threshold(classifier, stream.cumulative_test(len(stream) - 1).x, s["pass_rate"])
        coverage = sample_coverage(classifier, samples, threshold)
    return pack(model) | {
        "log": log, "histories": [r["info"]["history"] for r in result.tasks],
        "seconds": result.train_seconds, "real_rows": result.real_rows, "replay_rows": result.replay_rows,
        "steps": [r["steps"] for r in result.tasks],
        "task_sizes": [len(t.train) for t in stream], "sample_classes": coverage["argmax_shares"],
        "coverage": coverage, "last_classes": sorted(set(stream[len(stream) - 1].test.y.cpu().tolist()))}


def rebuild(result: dict, device) -> LGM:
    return restore(LGM, result, device)


def _clf_key(run: Run, dataset: str) -> dict:
    s = run.settings
    return {"dataset": dataset, "n": s["fid_train"], "epochs": s["fid_epochs"], "min_passes": s["clf_min_passes"],
            "source": run.data().source}


def _by(grid: GridRun, field: str) -> dict:
    """Results grouped by one cell field, in grid order; failed cells are left out (see grid.missing()), and
    so is a group without any result."""
    out: dict = {}
    for call, result in zip(grid.calls, grid.results):
        if result is not None:
            out.setdefault(call.cell[field], []).append(result)
    return out


def split_experiments(run: Run, datasets, methods=None) -> dict[str, dict]:
    """All methods on split <dataset> (10 one-class tasks) for every dataset and seed of the profile, as one
    grid on run.executor. Each value: the stream, its classifier, runs[method] = results over seeds, and the
    grid (grid.missing() lists failed cells)."""
    s = run.settings
    streams = {d: split_stream(run, d) for d in datasets}
    calls = [method_call(run, d, m, seed, stream=streams[d]) for d in datasets for m in methods or s["methods"]
             for seed in s["seeds"]]
    grid = run.grid(calls, "LGM split streams")
    out = {}
    for d in datasets:
        sub = GridRun([c for c in calls if c.cell["stream"] == d],
                      [r for c, r in zip(calls, grid.results) if c.cell["stream"] == d], [], grid.executor)
        out[d] = {"stream": streams[d], "classifier": classifier_for(run, d), "runs": _by(sub, "method"),
                  "grid": grid}
    return out


def split_experiment(run: Run, dataset: str, methods=None) -> dict:
    return split_experiments(run, [dataset], methods)[dataset]


def gamma_ablation(run: Run, dataset: str | None = None) -> dict[float, list[dict]]:
    """LGM with gamma_c in the profile's list (0 = replay only; 1 = the main LGM runs, reused from the cache)."""
    s = run.settings
    dataset = dataset or s["ablation_dataset"]
    stream = split_stream(run, dataset)
    calls = [method_call(run, dataset, "replay" if g == 0 else "lgm", seed, gamma_c=g, stream=stream)
             for g in s["gammas"] for seed in s["seeds"]]
    return _by(run.grid(calls, "LGM gamma_c ablation"), "gamma_c")


def permuted_experiment(run: Run, methods=None) -> dict:
    s = run.settings
    stream = perm_stream(run)
    calls = [method_call(run, "permuted", m, seed, stream=stream) for m in methods or s["perm_methods"]
             for seed in s["seeds"]]
    grid = run.grid(calls, "LGM permuted MNIST")
    return {"stream": stream, "runs": _by(grid, "method"), "grid": grid}


# ---- summaries --------------------------------------------------------------------------------------------


def curve(results: list[dict], key: str) -> np.ndarray:
    """Mean over seeds of a per-task metric: array [n_tasks]."""
    return np.nanmean(np.array([[e[key] for e in r["log"]] for r in results], dtype=float), axis=0)


def nelbo_matrix(result: dict, names: list[str]) -> TaskMatrix:
    m = TaskMatrix(names, higher_is_better=False)
    for e in result["log"]:
        for j, v in enumerate(e["per_task_nelbo"]):
            m.record(e["task"], j, v)
    return m


def forgetting(results: list[dict], names: list[str]) -> float:
    """Mean over seeds of the TaskMatrix forgetting of -ELBO (nats: final minus best earlier, old tasks)."""
    return float(np.mean([nelbo_matrix(r, names).forgetting() for r in results]))


def classes_covered(result: dict, min_share: float = 0.02, calibrated: bool = True) -> int:
    """Classes with >= min_share of the prior samples: counted at the calibrated confidence (default), or by
    the classifier's argmax alone (which also counts blurred look-alikes)."""
    shares = result["coverage"]["confident_shares"] if calibrated else result["sample_classes"]
    return int((np.asarray(shares) >= min_share).sum())


def last_task_share(result: dict) -> float:
    """The share of prior samples the classifier puts in the last task's classes (argmax)."""
    return float(np.asarray(result["sample_classes"])[result["last_classes"]].sum())


def calibration(run: Run):
    """The profile's joint VAE against the reference (experiments/calibration.py); cached."""
    return calibrate(run, run.settings["joint"], CALIBRATION_REFERENCE)


def summary_rows(exp: dict, dataset: str) -> list[dict]:
    names = exp["stream"].names
    rows = []
    for method, results in exp["runs"].items():
        rows.append({"dataset": dataset, "method": METHOD_LABELS[method],
                     "-ELBO cumulative, final": curve(results, "cum_nelbo")[-1],
                     "IWAE log-lik. cumulative, final": curve(results, "cum_iwae")[-1],
                     "-ELBO forgetting (old tasks)": forgetting(results, names),
                     "-ELBO task 0, final": float(np.mean([r["log"][-1]["per_task_nelbo"][0] for r in results])),
                     "mean consistency": float(np.nanmean(curve(results, "consistency"))),
                     "FID final": curve(results, "fid")[-1],
                     "z_d-task MI, final (normalised)": curve(results, "task_nmi")[-1],
                     "z_d effect on decoder (per pixel)": curve(results, "code_effect")[-1],
                     "classes covered (calibrated)": float(np.mean([classes_covered(r) for r in results])),
                     "classes covered (argmax >= 2%)": float(np.mean([classes_covered(r, calibrated=False)
                                                                       for r in results])),
                     "last task's share of samples": float(np.mean([last_task_share(r) for r in results])),
                     "train s": float(np.mean([r["seconds"] for r in results]))})
    return rows


def regulariser_study(run: Run) -> tuple[dict, dict]:
    """LGM against plain replay and EWC on every split stream, and the gamma_c ablation, at the study's settings
    (`run` is already `run.with_settings(study_settings(...))`): (splits as `split_experiments` gives them, the
    ablation as `gamma_ablation` gives it). gamma_c 0 and 1 are the study's replay and LGM runs (the same keys)."""
    s = run.settings
    return split_experiments(run, s["datasets"]), gamma_ablation(run)


def study_rows(splits: dict, ablation: dict) -> list[dict]:
    """One row per run of the study: dataset, method (or gamma_c), seed and the final cumulative -ELBO."""
    rows = [{"dataset": d, "method": METHOD_LABELS[m], "seed": i, "-ELBO cumulative, final": r["log"][-1]["cum_nelbo"]}
            for d, e in splits.items() for m, rs in e["runs"].items() for i, r in enumerate(rs)]
    return rows + [{"dataset": "gamma_c ablation", "method": f"gamma_c = {g:g}", "seed": i,
                    "-ELBO cumulative, final": r["log"][-1]["cum_nelbo"]} for g, rs in ablation.items()
                   for i, r in enumerate(rs)]


# The methods whose runs feed the `paper` claims (lgm_claims): the half-budget run repeats only these.
CLAIM_METHODS = ("lgm", "replay", "naive", "ewc")
CLAIM_PERM_METHODS = ("lgm", "naive")


def claim_experiments(run: Run, half: bool = False) -> dict:
    """The runs the claims are built from, as `lgm_claims.claims` takes them (keyword arguments): the split
    streams of the claim methods and permuted MNIST at the profile's settings, and the regulariser study at its
    own. half: each at half its real data per task (`half_budget`), for the half-budget rule."""
    s = run.settings
    main = run.with_settings(half_budget(s)) if half else run
    study = study_settings(s)
    study = run.with_settings(half_budget(study) if half else study)
    ms = main.settings
    splits = split_experiments(main, ms["datasets"], [m for m in ms["methods"] if m in CLAIM_METHODS])
    perm = (permuted_experiment(main, [m for m in ms["perm_methods"] if m in CLAIM_PERM_METHODS])
            if ms["perm_tasks"] > 1 else None)
    study_splits, study_ablation = regulariser_study(study)
    return dict(splits=splits, perm=perm, study=study_splits, ablation=study_ablation)
