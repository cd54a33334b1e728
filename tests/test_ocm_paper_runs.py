"""benchmarks/ocm_paper_runs.py on the paper-shape profile (the committed sample): a run stopped mid-stream is
reported partial with the batches its checkpoint holds, the reservoir waits for its OCM run, and the script started
again on the same cache finishes both from where they stopped."""
import importlib.util
import json
import sys
from pathlib import Path

from lmvae_core.continual import OCMLearner

ROOT = Path(__file__).resolve().parents[1] / "benchmarks"


def load_script():
    spec = importlib.util.spec_from_file_location("ocm_paper_runs", ROOT / "ocm_paper_runs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(module, tmp_path, monkeypatch):
    out = tmp_path / "runs.json"
    monkeypatch.setattr(sys, "argv", ["ocm_paper_runs.py", "--profile", "paper-shape", "--cache", str(tmp_path / "c"),
                                      "--checkpoint-s", "0", "--json", str(out)])
    module.main()
    return json.loads(out.read_text())


def test_a_stopped_run_is_reported_partial_and_finishes_when_started_again(tmp_path, monkeypatch):
    script = load_script()
    observe, seen = OCMLearner.observe, [0]

    def stops_at_the_third_batch(self, x, y=None):
        seen[0] += 1
        if seen[0] == 3:
            raise KeyboardInterrupt("the lease ended")
        return observe(self, x, y)

    monkeypatch.setattr(OCMLearner, "observe", stops_at_the_third_batch)
    first = run_script(script, tmp_path, monkeypatch)
    assert first["stopped"] == "the lease ended" and first["profile"] == "paper-shape"
    ocm, reservoir = first["runs"]
    assert ocm["state"] == "partial" and ocm["batches_done"] == 2 and ocm["batches"] == 3
    assert reservoir["state"] == "waiting for its VAE-ELBO-OCM run"
    monkeypatch.setattr(OCMLearner, "observe", observe)
    seen[0] = 0
    second = run_script(script, tmp_path, monkeypatch)
    assert second["stopped"] is None and [r["state"] for r in second["runs"]] == ["complete", "complete"]
    whole = run_script(script, tmp_path / "uninterrupted", monkeypatch)  # a fresh cache, never stopped
    for resumed, never_stopped in zip(second["runs"], whole["runs"]):  # Table 1's rows, bit for bit on the CPU
        assert {k: resumed[k] for k in ("ll_best", "memory", "steps")} == \
            {k: never_stopped[k] for k in ("ll_best", "memory", "steps")}


def test_seeds_in_a_stack_report_the_stacks_checkpoint(tmp_path, monkeypatch):
    """Two seeds of a method train as one stack on a GPU: their progress is the stack's checkpoint (here written by
    hand where the stacked call keeps it), read without training anything."""
    import torch

    from lmvae_core.experiments.common import Run
    from lmvae_core.papers.ocm import runs
    from lmvae_core.papers.ocm.settings import SETTINGS
    from lmvae_core.results.cache import cache_file, partial_dir

    script = load_script()
    monkeypatch.setenv("LMVAE_CACHE", str(tmp_path / "cache"))
    run = Run("04_ocm", "paper-shape", 0, torch.device("cpu"), None, None, settings=SETTINGS["paper-shape"])
    calls = [runs.stream_call(run, "mnist", "VAE-ELBO-OCM", seed) for seed in (0, 1)]
    (stack,), _ = runs.stacked_calls(run, calls, stack=True)
    folder = partial_dir(cache_file(stack.name, stack.config))
    folder.mkdir(parents=True)
    torch.save({"rounds": 2}, folder / "state.pt")
    rows = script.states(run, "mnist", ["VAE-ELBO-OCM", "VAE-ELBO-Random"], [0, 1], batches=3)
    assert [(r["state"], r.get("batches_done")) for r in rows] == [("partial (stacked)", 2)] * 2 + [
        ("waiting for its VAE-ELBO-OCM run", None)] * 2
