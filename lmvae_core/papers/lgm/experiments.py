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
of the samples that belong to the last task's classes. The profiles are in `settings`, the claims in `claims`.
"""
from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import torch

from ...continual import Budget, LGMLearner, LifelongConfig, pack, restore, run_stream
from ...data.preprocess import binarize_fixed
from ...data.streams import DataConfig, TaskStream, class_split_stream, load_split, permuted_stream
from ...metrics import TaskMatrix, fid, iwae_log_likelihood, negative_elbo
from ...metrics.fid import classifier_check, real_fid
from ...training.classifier import epochs_for, feature_classifier
from ...metrics.coverage import confidence_threshold, mutual_information, sample_coverage, share_of
from ...models.lgm import LGM, LGMConfig
from ...results.runner import Call, GridRun
from ...runtime import cpu_threads
from ...experiments.calibration import calibrate
from ...experiments.common import Run
from .settings import half_budget, study_settings

METHOD_LABELS = {"lgm": "LGM (replay + consistency)", "replay": "replay only (gamma_c=0)", "naive": "naive sequential",
                 "ewc": "EWC", "full": "full data (upper bound)"}


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
        last = stream[len(stream) - 1]
        last_classes = sorted(set(last.test.y.cpu().tolist()))
        # the ceiling of the last task's share: what the classifier gives the last task's own test images
        real_last = share_of(sample_coverage(classifier, last.test.x, threshold)["argmax_shares"], last_classes)
    return pack(model) | {
        "log": log, "histories": [r["info"]["history"] for r in result.tasks],
        "seconds": result.train_seconds, "real_rows": result.real_rows, "replay_rows": result.replay_rows,
        "steps": [r["steps"] for r in result.tasks],
        "task_sizes": [len(t.train) for t in stream], "sample_classes": coverage["argmax_shares"],
        "coverage": coverage, "last_classes": last_classes, "real_last_share": real_last}


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
    return share_of(result["sample_classes"], result["last_classes"])


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


# The methods whose runs feed the `paper` claims (claims.py): the half-budget run repeats only these.
CLAIM_METHODS = ("lgm", "replay", "naive", "ewc")
CLAIM_PERM_METHODS = ("lgm", "naive")


def claim_experiments(run: Run, half: bool = False) -> dict:
    """The runs the claims are built from, as `claims.claims` takes them (keyword arguments): the split
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
