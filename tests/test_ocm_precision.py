"""The precision OCM's memory passes train in on a paper run, chosen from the measurement (issue 38, item 3).

The rule against hand-made measurement files (the format benchmarks/ocm_precision.py writes): the fastest way
measured within 0.3 nats of fp32 and faster than it, else fp32. Then what carries the choice: the learner (TF32 on
inside its passes only), notebook 04's cache keys and run arguments, and the claims' notes."""
import json

import pandas as pd
import pytest
import torch

from lmvae_core.continual.ocm import OCMLearner
from lmvae_core.experiments.common import Run
from lmvae_core.models.ocm import OCMConfig
from lmvae_core.papers.ocm import claims as cm
from lmvae_core.papers.ocm import precision as P
from lmvae_core.papers.ocm import runs
from lmvae_core.papers.ocm.settings import SETTINGS


def way(mean, lo, hi, speed, verdict=None):
    verdict = verdict or ("within" if -P.TOLERANCE < lo and hi < P.TOLERANCE else "cannot tell")
    return {"mean": mean, "lo": lo, "hi": hi, "seeds": 3, "verdict": verdict, "speed_vs_fp32": speed}


def write(folder, device_type, ways):
    data = {"epochs": 10, "device": "a test device", "differences_vs_fp32": ways}
    (folder / f"ocm_precision_{device_type}.json").write_text(json.dumps(data))


@pytest.fixture(autouse=True)
def a_test_device(monkeypatch):
    """Every device here is the one the hand-made measurements were taken on, unless a test says otherwise."""
    monkeypatch.setattr(P, "this_device", lambda device_type: "a test device")


def test_a_measurement_on_another_device_means_fp32(tmp_path, monkeypatch):
    write(tmp_path, "cuda", {"bf16": way(-0.05, -0.2, 0.1, 1.4)})
    monkeypatch.setattr(P, "this_device", lambda device_type: "another GPU")
    p = P.measured("cuda", tmp_path)
    assert p.name == "fp32" and "measured on a test device, not on this another GPU" in p.reason


def test_no_measurement_means_fp32(tmp_path):
    p = P.measured("cuda", tmp_path)
    assert p.name == "fp32" and "ocm_precision_cuda.json" in p.reason and p.learner_args == {}


@pytest.mark.parametrize("ways, chosen", [
    ({"bf16": way(-0.05, -0.2, 0.1, 1.4)}, "bf16"),
    ({"bf16": way(-0.05, -0.2, 0.1, 0.9)}, "fp32"),  # within, but slower
    ({"bf16": way(-0.2, -0.5, 0.1, 1.4)}, "fp32"),  # its interval reaches past -0.3: cannot tell
    ({"bf16": way(-0.9, -1.2, -0.6, 2.0, "outside")}, "fp32"),
    ({"bf16": way(0.0, -0.1, 0.1, 1.4), "tf32": way(0.0, -0.05, 0.05, 2.1)}, "tf32"),  # the faster of two
])
def test_the_fastest_way_within_tolerance_and_faster_than_fp32(tmp_path, ways, chosen):
    write(tmp_path, "cuda", ways)
    p = P.measured("cuda", tmp_path)
    assert p.name == chosen
    if chosen != "fp32":
        assert "within 0.3 nats" in p.reason and "a test device" in p.reason
    else:
        assert "no faster precision" in p.reason


def test_resolve_checks_the_setting_and_the_device(tmp_path):
    write(tmp_path, "cpu", {"bf16": way(0.0, -0.1, 0.1, 1.3)})
    assert P.resolve("measured", "cpu", tmp_path).name == "bf16"
    assert P.resolve("fp32", "cpu", tmp_path) is P.FP32
    assert P.resolve("bf16", "cpu").learner_args == {"autocast": "bf16"}
    with pytest.raises(ValueError, match="CUDA"):
        P.resolve("tf32", "cpu")
    with pytest.raises(ValueError, match="precision must be"):
        P.resolve("fp16", "cpu")


def test_a_tf32_learner_turns_tf32_on_for_its_passes_only(monkeypatch):
    """TF32 is a process-wide flag: the learner sets it around its memory passes and puts it back."""
    from lmvae_core.continual import ocm as ocm_module

    seen = []
    real = ocm_module.fit_batches

    def recording(*args, **kwargs):
        seen.append(torch.backends.cuda.matmul.allow_tf32)
        return real(*args, **kwargs)

    monkeypatch.setattr(ocm_module, "fit_batches", recording)
    cfg = OCMConfig(input_dim=16, image_shape=(1, 4, 4), hidden=8, latent_dim=2, stm_size=8, batch_size=4,
                    epochs_per_batch=1)
    before = torch.backends.cuda.matmul.allow_tf32
    learner = OCMLearner(config=cfg, tf32=True)
    learner.observe(torch.rand(4, 1, 4, 4))
    assert seen == [True] and torch.backends.cuda.matmul.allow_tf32 == before
    assert learner.init_args["tf32"] is True and "tf32" not in OCMLearner(config=cfg).init_args


def test_notebook_04_keys_and_trains_its_runs_in_the_resolved_precision(tmp_path, monkeypatch):
    """fp32 runs keep the keys they had before precision was a setting; a faster precision enters the key, so a
    measurement that changes the choice trains anew, and reaches the learner through the run's arguments."""
    base = dict(SETTINGS["quick"])
    run = Run("04_ocm", "quick", 0, torch.device("cpu"), None, None, settings=base)
    call = runs.stream_call(run, "mnist", "VAE-ELBO-OCM", 0)
    assert "precision" not in call.config and call.args[-1] is P.FP32
    monkeypatch.setattr(P, "benchmark_results", lambda: tmp_path)
    write(tmp_path, "cpu", {"bf16": way(0.0, -0.1, 0.1, 1.3)})
    measured = Run("04_ocm", "quick", 0, torch.device("cpu"), None, None, settings=base | {"precision": "measured"})
    call = runs.stream_call(measured, "mnist", "VAE-ELBO-OCM", 0)
    assert call.config["precision"] == "bf16" and call.args[-1].learner_args == {"autocast": "bf16"}
    assert runs.iid_call(measured, "mnist", 0, steps=10).config["precision"] == "bf16"
    assert SETTINGS["paper"]["precision"] == "measured" and SETTINGS["quick"]["precision"] == "fp32"


def test_the_claims_notes_name_a_faster_precision_and_its_evidence():
    rows = [dict(stream="mnist", method=m, seed=s, ll_best=-120.0 + s, ll_mixture=-121.0, memory=546, components=1,
                 steps=2862, stream_length=20000, precision=prec, precision_reason=why)
            for m in ("VAE-ELBO-OCM", "VAE-ELBO-Random") for s in (0, 1, 2)
            for prec, why in [("bf16", "within 0.3 nats of fp32 and 1.30x its speed")]]
    empty = pd.DataFrame(columns=["stream", "seed", "rule", "ll_best", "memory", "classes_in_memory", "steps",
                                  "stream_length", "lambda1", "passes"])
    out = cm.claims(pd.DataFrame(rows), empty, empty, "paper", True, 0.6)
    notes = [c.note for c in out if c.claim.startswith("Split MNIST")]
    assert notes and all("memory passes in bf16: within 0.3 nats of fp32 and 1.30x its speed" in n for n in notes)
    fp32 = pd.DataFrame(rows).assign(precision="fp32")
    assert all("memory passes" not in c.note for c in cm.claims(fp32, empty, empty, "paper", True, 0.6))


def test_notebook_05_keys_and_builds_its_ocm_learners_in_the_resolved_precision(tmp_path, monkeypatch):
    from lmvae_core.papers.benchmark import experiments as B
    from lmvae_core.papers.benchmark.settings import SETTINGS as BENCH

    monkeypatch.setattr(P, "benchmark_results", lambda: tmp_path)
    write(tmp_path, "cpu", {"bf16": way(0.0, -0.1, 0.1, 1.3)})
    s = dict(BENCH["smoke"])
    plain = Run("05_benchmark", "smoke", 0, "cpu", None, None, False, False, s, None, "cpu")
    assert "precision" not in B.run_key(plain, "split_mnist", "VAE-ELBO-OCM", 0)
    s_measured = s | {"ocm": dict(s["ocm"], precision="measured")}
    run = Run("05_benchmark", "smoke", 0, "cpu", None, None, False, False, s_measured, None, "cpu")
    assert B.run_key(run, "split_mnist", "VAE-ELBO-OCM", 0)["precision"] == "bf16"
    assert "precision" not in B.run_key(run, "split_mnist", "Replay VAE", 0)  # fp32: not an OCM learner
    torch.manual_seed(0)
    assert B.METHODS["Dynamic-OCM"](s_measured, 0, "cpu").autocast == "bf16"
    assert B.METHODS["Dynamic-OCM"](s, 0, "cpu").autocast is None
    assert BENCH["paper"]["ocm"]["precision"] == "measured" and "precision" not in BENCH["quick"]["ocm"]
