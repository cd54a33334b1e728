"""Does a result depend on torch's thread count? The serial grid runs with 2 threads, a Dask worker with 1.

Each contender runs in a fresh process with its thread count fixed before anything is computed:
1. vae: a 784-200-20 VAE trained 2 epochs on 6,400 MNIST images (batch 64, seed 0); compared parameter by parameter.
2. classifier: notebook 05's split-MNIST feature classifier at quick settings (the conv net its FID and fitting
   capacity read), trained through the package from an empty cache (which trains and reads classifiers on
   runtime.RESULT_THREADS threads whatever the caller's setting); compared parameter by parameter, and through the
   FID of 2,000 training images against the test images, the number the notebook reports for real data.
3. classifier_unpinned: the same training at the process's own thread count (fit_classifier without its
   one_thread wrapper): does torch itself give other bits with another thread count?
Bitwise equality is the question (a speed-up that changes results does not count as the same run); the largest
absolute parameter difference says how far apart the two ended.

Usage: LMVAE_DATA=/path/to/torchvision/root python benchmarks/thread_invariance.py [--json FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from lmvae_core import paths
from lmvae_core.runtime import RESULT_THREADS

THREADS = (1, 2)


def contender(threads: int, out: str) -> None:
    """Run in a fresh process: train both models with `threads` threads and save their parameters and the FID."""
    torch.set_num_threads(threads)
    os.environ["LMVAE_CACHE"] = tempfile.mkdtemp(prefix="lmvae_threads_")
    from lmvae_core.data import DataConfig, load_split
    from lmvae_core.papers.benchmark import experiments as B
    from lmvae_core.papers.benchmark import features as BF
    from lmvae_core.experiments.common import setup
    from lmvae_core.metrics.fid import FeatureClassifier, real_fid
    from lmvae_core.training.classifier import fit_classifier
    from lmvae_core.models import VAE
    from lmvae_core.training import TrainConfig, train

    x = load_split("mnist", "train", DataConfig(source="torchvision", device="cpu")).x[:6400].contiguous()
    torch.manual_seed(0)
    vae = VAE(hidden=(200,), latent_dim=20)
    train(vae, x, TrainConfig(epochs=2, batch_size=64, progress=False))

    run = setup("05_benchmark", "quick", out_dir=os.environ["LMVAE_CACHE"] + "/out", progress=False,
                settings=B.SETTINGS)
    stream = B.build_stream("split_mnist", run.settings, run.data(), seed=0)
    clf = B.stream_classifier("split_mnist", run.settings, run.data())
    train_x = torch.cat([t.train_x for t in stream.tasks])
    test_grey = torch.cat([t.test_grey for t in stream.tasks])
    fid = real_fid(clf, train_x, test_grey, n=2000)
    joint = BF.classifier_split("split_mnist", run.settings, run.data())
    torch.manual_seed(0)  # as training.classifier.train_classifier does
    free = FeatureClassifier(joint.x.shape[1], int(joint.y.max()) + 1, joint.x.shape[-1])
    cfg = TrainConfig()  # classifier_state's batch size and learning rate
    fit_classifier.__wrapped__(free, joint.x, joint.y, BF.clf_epochs(run.settings, len(joint.x)), cfg.batch_size,
                               cfg.lr, 0)
    state = lambda m: {k: v.clone() for k, v in m.state_dict().items()}  # noqa: E731
    torch.save({"vae": state(vae), "classifier": state(clf), "classifier_unpinned": state(free), "fid": fid}, out)


def compare(a: dict, b: dict) -> dict:
    diff = max((a[k].double() - b[k].double()).abs().max().item() for k in a)
    return {"identical": all(torch.equal(a[k], b[k]) for k in a), "max_abs_parameter_difference": diff}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", default=str(paths.benchmark_results() / "thread_invariance.json"))
    p.add_argument("--contender", nargs=2, metavar=("THREADS", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.contender:
        return contender(int(args.contender[0]), args.contender[1])
    if not os.environ.get("LMVAE_DATA"):
        raise SystemExit("set LMVAE_DATA to a torchvision data root (the quick profile needs the real datasets)")
    saved = {}
    with tempfile.TemporaryDirectory() as tmp:
        for threads in THREADS:
            out = str(Path(tmp) / f"{threads}.pt")
            t0 = time.perf_counter()
            subprocess.run([sys.executable, __file__, "--contender", str(threads), out], check=True)
            print(f"{threads} thread(s): {time.perf_counter() - t0:.0f} s", flush=True)
            saved[threads] = torch.load(out)
    one, two = (saved[t] for t in THREADS)
    result = {
        "threads": list(THREADS),
        "vae_784_200_20_2_epochs": compare(one["vae"], two["vae"]),
        "split_mnist_feature_classifier": compare(one["classifier"], two["classifier"])
        | {"fid_2000_train_vs_test": {str(t): saved[t]["fid"] for t in THREADS}},
        "split_mnist_feature_classifier_unpinned": compare(one["classifier_unpinned"], two["classifier_unpinned"]),
        # the control: at the package's own thread count the unpinned training is the package's, bit for bit
        f"unpinned_at_{RESULT_THREADS}_thread_equals_package": compare(saved[RESULT_THREADS]["classifier_unpinned"],
                                                                       saved[RESULT_THREADS]["classifier"])["identical"],
        "result_threads": RESULT_THREADS,
        "torch": torch.__version__, "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
