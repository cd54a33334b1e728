"""Notebook 05's metric references: the feature classifier of each stream (FID and the labels of generated
images), real-against-real FID and real data's fitting capacity. They depend on the stream and the settings,
never on a method or seed, so they are computed once per stream, as small grids of their own on a cluster."""
from __future__ import annotations

from dataclasses import asdict
from typing import Sequence

import torch

from ...data.benchmark_streams import STREAM_DATASETS, build_stream
from ...data.streams import Split
from ...metrics.fid import classifier_check, real_fid
from ...training.classifier import classifier_key, classifier_state, epochs_for, feature_classifier
from ...metrics.fitting_capacity import fitting_set_size, real_fitting_capacity
from ...results.cache import is_cached
from ...results.cluster import resolve_executor
from ...results.runner import Call, run_grid
from ...experiments.common import Run


def classifier_name(stream_name: str) -> str:
    """Streams cut from the same datasets (split and task-free MNIST) share one feature classifier."""
    return "benchmark-" + "+".join(STREAM_DATASETS[stream_name])


def classifier_split(stream_name: str, s: dict, data) -> Split:
    """Every class of the stream with s['clf_train_per_task'] images per task (None: all of them). The task-free
    stream holds split MNIST's images in another order; its classifier trains on split MNIST's, so both streams
    share one cache entry instead of training the same classifier twice."""
    stream_name = {"taskfree_mnist": "split_mnist"}.get(stream_name, stream_name)
    return build_stream(stream_name, s | {"train_per_task": s["clf_train_per_task"]}, data).joint_train()


def clf_epochs(s: dict, n: int) -> int:
    """The feature classifier's epochs for n training images (training.classifier.epochs_for)."""
    return epochs_for(n, s["clf_epochs"], s["clf_min_passes"])


def stream_classifier(stream_name: str, s: dict, data, force: bool = False):
    joint = classifier_split(stream_name, s, data)
    return feature_classifier(classifier_name(stream_name), joint.x, joint.y, epochs=clf_epochs(s, len(joint.x)),
                              force=force)


def stream_features(run: Run, stream_name: str) -> dict:
    """What the stream's FID and fitting capacity are read against: the classifier's test accuracy per dataset
    against its floor, real-against-real FID at the generated sample size, and real data's fitting capacity."""
    s = run.settings
    stream = build_stream(stream_name, s, run.data())
    clf = stream_classifier(stream_name, s, run.data())
    datasets = STREAM_DATASETS[stream_name]
    groups = {datasets[0]: stream.tasks} if len(datasets) == 1 else dict(zip(datasets, ([t] for t in stream.tasks)))
    checks = [classifier_check(clf, d, torch.cat([t.test_grey for t in ts]), torch.cat([t.test_y for t in ts]))
              for d, ts in groups.items()]
    joint = stream.joint_train()
    _, test_grey, test_y = stream.union_test()
    n_fc = fitting_set_size(len(joint.x), s["fc_images"])
    fc = torch.randperm(len(joint.x), generator=torch.Generator().manual_seed(0))[:n_fc].to(joint.x.device)
    return {"stream": stream_name, "classifier": checks,
            "real_fid": real_fid(clf, joint.x, test_grey, s["n_generated"]), "n_fid": s["n_generated"],
            "real_fitting_capacity": real_fitting_capacity(joint.x[fc], joint.y[fc], test_grey, test_y,
                                                           stream.n_classes, max_epochs=s["fc_max_epochs"]),
            "n_fitting_capacity": n_fc, "n_train": len(joint.x)}


def feature_calls(run: Run) -> list[Call]:
    key = {"settings": run.settings, "data": asdict(run.data()) | {"device": None}}
    return [Call("benchmark_features", key | {"stream": name}, stream_features, (run, name),
                 {"stream": name, "method": "metric references"}) for name in run.settings["streams"]]


def features_all(run: Run) -> list[dict]:
    """stream_features of every stream, a grid on run.executor (serially: 10 minutes of a quick run)."""
    calls = feature_calls(run)
    train_classifiers_first(run, calls)
    return run_grid(calls, run.executor, force=run.force, progress=run.progress, desc="benchmark: references").done()


def fit_stream_classifier(run: Run, stream_name: str) -> dict:
    """The state stream_classifier caches for a stream (module level for Dask workers)."""
    joint = classifier_split(stream_name, run.settings, run.data())
    return classifier_state(joint.x, joint.y, clf_epochs(run.settings, len(joint.x)))


def classifier_calls(run: Run) -> list[Call]:
    """One call per classifier, under stream_classifier's own cache key (it depends on neither seed nor method)."""
    s, calls = run.settings, {}
    for stream in s["streams"]:
        joint = classifier_split(stream, s, run.data())
        key = classifier_key(classifier_name(stream), joint.x, clf_epochs(s, len(joint.x)))
        calls.setdefault(str(key), Call("feature_classifier", key, fit_stream_classifier, (run, stream),
                                        {"stream": stream, "method": "feature classifier"}))
    return list(calls.values())


def train_classifiers_first(run: Run, calls: list[Call], alongside: Sequence[Call] = ()) -> None:
    """On a cluster, with `calls` not all cached, the streams' feature classifiers train first as a small grid:
    otherwise the first calls of a stream, started together, would each train the same classifier.
    `alongside`: calls that need no classifier, run in the same stage so that no worker idles while the
    classifiers train (all MNIST streams share one); the grid after it loads them from the cache."""
    if resolve_executor(run.executor) != "serial" and not all(is_cached(c.name, c.config) for c in calls):
        todo = [c for c in classifier_calls(run) if not is_cached(c.name, c.config)]
        if todo:  # else `alongside` runs in the grid after, with the others
            run_grid(todo + list(alongside), run.executor, progress=run.progress, desc="benchmark: classifiers")
