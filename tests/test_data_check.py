"""The data check: what each notebook needs, what is missing (with paths), failing fast offline, no hanging."""
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lmvae_core.data import DataMissingError, load_images
from lmvae_core.data.datasets import declare, downloads_allowed, set_offline
from lmvae_core.data.fetch import probe
from lmvae_core.data.requirements import missing_message
from lmvae_core.experiments.needs import check, datasets_for, ensure
from lmvae_core.experiments.common import setup
from lmvae_core.experiments.registry import notebooks

ROOT = Path(__file__).resolve().parents[1]


def test_every_notebook_and_profile_has_a_declaration():
    for profile in ("smoke", "quick", "paper"):
        for nb in notebooks():
            assert "mnist" in datasets_for(nb, profile)
    # derived from the experiments' settings, not typed twice: the paper profile of 01 adds CIFAR-10
    assert "cifar10" in datasets_for("01_lmvae", "paper") and "cifar10" not in datasets_for("01_lmvae", "quick")
    assert datasets_for("04_ocm", "quick") == ["mnist", "fashion", "omniglot"]


def test_check_lists_every_missing_split_with_the_paths_expected(tmp_path):
    (tmp_path / "npz").mkdir()
    x, y = load_images("mnist", "test", source="sample")
    np.savez(tmp_path / "npz" / "mnist-test.npz", images=x[:, 0].numpy(), labels=y.numpy())  # one split present
    rows = check(["00_mixture_of_vaes", "04_ocm"], "quick", tmp_path)
    missing = {(r.dataset, r.split) for r in rows if not r.present}
    assert missing == {("mnist", "train"), ("fashion", "train"), ("fashion", "test"), ("omniglot", "train"),
                       ("omniglot", "test")}
    msg = missing_message([r for r in rows if not r.present], "quick", tmp_path)
    for path in (tmp_path / "MNIST/raw/train-images-idx3-ubyte", tmp_path / "npz/fashion-mnist-test.npz",
                 tmp_path / "omniglot-py/images_background"):
        assert str(path) in msg
    assert "lmvae data --fetch" in msg and "LMVAE_DATA=" in msg and "make reproduce PROFILE=smoke" in msg
    with pytest.raises(DataMissingError, match="5 dataset split"):
        ensure(["00_mixture_of_vaes", "04_ocm"], "quick", tmp_path, download=False)


def test_smoke_reads_the_committed_sample_only(tmp_path):
    assert all(r.present and r.source == "sample" for r in check(list(notebooks()), "smoke", tmp_path))


def test_a_notebook_loading_an_undeclared_split_fails_in_smoke():
    setup("02_lifelong_generative_modeling", profile="smoke")  # smoke: MNIST only
    load_images("mnist", "train", source="sample")
    with pytest.raises(RuntimeError, match="does not declare"):
        load_images("fashion", "train", source="sample")
    declare(None)
    load_images("fashion", "train", source="sample")


def test_offline_switches(monkeypatch):
    monkeypatch.delenv("LMVAE_OFFLINE", raising=False)
    assert downloads_allowed()
    monkeypatch.setenv("LMVAE_OFFLINE", "1")
    assert not downloads_allowed()
    monkeypatch.setenv("LMVAE_OFFLINE", "0")
    set_offline(True)  # the notebook parameter
    assert not downloads_allowed()
    set_offline(None)
    assert downloads_allowed()


def test_an_unresolvable_host_fails_at_once():
    t0 = time.time()
    with pytest.raises(OSError, match="cannot reach"):
        probe("http://datasets.invalid/mnist/", timeout=2.0)  # .invalid never resolves (RFC 2606)
    assert time.time() - t0 < 30  # without the timeout a lookup can hang for minutes; generous under load


def test_a_stalled_server_makes_the_download_give_up_within_seconds(tmp_path, monkeypatch):
    """A server that accepts the connection and never answers (a dead proxy): only the socket timeout ends it."""
    import torchvision.datasets as tvd

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)  # connections complete in the backlog; nothing is ever accepted or sent
    try:
        monkeypatch.setattr(tvd.MNIST, "mirrors", [f"http://127.0.0.1:{server.getsockname()[1]}/"])
        monkeypatch.setenv("LMVAE_DOWNLOAD_TIMEOUT", "1")
        t0 = time.time()
        with pytest.raises(DataMissingError, match="download failed"):
            load_images("mnist", "train", root=tmp_path, download=True)
        assert time.time() - t0 < 30  # without the socket timeout this never returns
    finally:
        server.close()


def test_reproduce_offline_with_no_data_stops_before_any_kernel(tmp_path):
    """Fail fast is checked by what did not happen (no kernel, no executed notebook), not by a clock: a timed
    assertion fails on a loaded machine. The timeout only guards against a hang."""
    env = dict(os.environ, LMVAE_OFFLINE="1", LMVAE_DATA=str(tmp_path / "empty"), LMVAE_WORK=str(tmp_path / "work"),
               PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "lmvae_core.cli", "reproduce", "--profile", "quick"], env=env,
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 3
    err = proc.stderr
    for dataset in ("mnist (train)", "fashion (test)", "kmnist (train)", "omniglot (test)"):
        assert dataset in err
    assert str(tmp_path / "empty" / "KMNIST" / "raw" / "t10k-images-idx3-ubyte") in err
    assert "lmvae data --fetch" in err and "LMVAE_DATA=" in err and "make reproduce PROFILE=smoke" in err
    assert not (tmp_path / "work" / "executed").exists()  # no notebook was started
    assert "Executing" not in proc.stdout + err


def test_data_command_lists_each_notebook(tmp_path):
    env = dict(os.environ, LMVAE_DATA=str(tmp_path), PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "lmvae_core.cli", "data", "--profile", "quick", "--only", "01"],
                          env=env, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 1
    assert "01_lmvae" in proc.stdout and "kmnist" in proc.stdout and "MISSING" in proc.stdout
    assert str(tmp_path / "KMNIST" / "raw") in proc.stdout


def test_fetch_downloads_through_torchvision_and_the_loader_reads_it(tmp_path, monkeypatch):
    """The whole download path against a local HTTP mirror serving the sample as MNIST's gzipped IDX files."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    import torch
    import torchvision.datasets as tvd

    from lmvae_core.data.idx import write_idx
    from lmvae_core.data.requirements import fetch_missing

    mirror = tmp_path / "mirror"
    x, y = load_images("mnist", "train", source="sample")
    xt, yt = load_images("mnist", "test", source="sample")
    for prefix, (images, labels) in (("train", (x, y)), ("t10k", (xt, yt))):
        write_idx(mirror / f"{prefix}-images-idx3-ubyte", images[:, 0].numpy(), compress=True)
        write_idx(mirror / f"{prefix}-labels-idx1-ubyte", labels.numpy(), compress=True)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(mirror))
    handler.log_message = lambda *a: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setattr(tvd.MNIST, "mirrors", [f"http://127.0.0.1:{server.server_address[1]}/"])
        monkeypatch.setattr(tvd.MNIST, "resources", [(name, None) for name, _ in tvd.MNIST.resources])  # no md5
        root = tmp_path / "data"
        rows = check(["00_mixture_of_vaes"], "quick", root)
        failed = fetch_missing([r for r in rows if r.dataset == "mnist"], root, echo=lambda *a: None)
    finally:
        server.shutdown()
    assert failed == {}
    assert [r.present for r in check(["00_mixture_of_vaes"], "quick", root) if r.dataset == "mnist"] == [True, True]
    x2, y2 = load_images("mnist", "train", root=root, download=False)
    assert torch.equal(x2, x) and torch.equal(y2, y)
