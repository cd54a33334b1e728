"""The paper-cost counting on settings whose steps are counted by hand, and its docs section (no timing here)."""
import importlib.util
import json
import sys
from pathlib import Path

from lmvae_core.docs import paper_cost as docs_cost
from lmvae_core.experiments import paper_steps as steps_mod
from lmvae_core.training.op_count import eager_step_ops

ROOT = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


cost = load("paper_cost")  # here, not in a test: its imports take a second or two


def written(root: Path, results: dict, gpu: dict | None = None) -> str:
    """A page with the paper-cost markers after `lmvae readme`'s writer ran over root/benchmarks/results/ holding these
    files."""
    from lmvae_core.paths import benchmark_results
    from lmvae_core.readme import write_pages

    bench = benchmark_results(root)
    bench.mkdir(parents=True, exist_ok=True)
    (bench / "paper_cost.json").write_text(json.dumps(results))
    (bench / "train_speed_gpu.json").unlink(missing_ok=True)
    if gpu is not None:
        (bench / "train_speed_gpu.json").write_text(json.dumps(gpu))
    page = root / "page.md"
    page.write_text("a\n<!-- paper-cost:start -->\nold\n<!-- paper-cost:end -->\nb\n")
    write_pages(root, only=page)
    return page.read_text()


def by_what(jobs):
    out = {}
    for j in jobs:
        out[j.what] = out.get(j.what, 0) + j.units
    return out


def test_notebook_00_counts_by_hand():
    s = dict(datasets=("mnist",), n_experts=2, hidden=8, latent=2, epochs=2, batch=25_000, iwae_k=3, iwae_n=10,
             ablation_seeds=(0,), ablation_epochs=1, ablation_train=50_000, beyond_components=(10,), beyond_epochs=1,
             joint=dict(hidden=(8,), latent=2, epochs=1, batch_size=30_000, iwae_k=4))
    from lmvae_core.papers.mixture_of_vaes.steps import count

    got = by_what(count(s))
    # 60,000 images in batches of 25,000: 3 steps per epoch (the last one short)
    assert got["mixture on mnist"] == 6 and got["plain VAE on mnist"] == 6
    assert got["IWAE of the mixture on mnist"] == 2 * 2 * 10 * 3  # two draws x 2 experts x 10 images x k=3
    assert got["calibration: joint VAE"] == 2 and got["calibration: IWAE"] == 10_000 * 4
    assert got["balancing ablation (with and without)"] == 2 * 1 * 2  # 2 balances x 1 seed x ceil(50,000/25,000)
    assert got["mixture-prior VAE, 10 components"] == 3


def test_lmvae_stream_trains_fewer_experts_each_task_and_probes_after_the_first():
    s = dict(arch="mlp", size=None, latent=2, hidden=8, likelihood="bernoulli", gaussian_std=0.1, batch=20_000,
             channels=(32, 64), probe=64)
    from lmvae_core.papers.lmvae.steps import lmvae_stream

    c = steps_mod.Counter("t")
    lmvae_stream(c, s, "run", ["mnist", "fashion", "kmnist", "mnist"], n_experts=2, epochs=1, probe_epochs=1,
                 threshold=0.1)
    tasks = [(j.kind.label.split(" stacked")[0], j.units) for j in c.jobs if j.what == "run: tasks"]
    # 2 experts stacked, then the one left, then a grown one; the repeat reuses (no training)
    assert tasks == [("L-MVAE 2", 3), ("L-MVAE 1", 3), ("L-MVAE 1", 3)]
    probes = [j.units for j in c.jobs if j.what == "run: probe experts"]
    assert probes == [3, 3, 3]  # ceil((60,000 - 64) / 20,000) for tasks 1, 2 and 3
    c = steps_mod.Counter("t")
    lmvae_stream(c, s, "run", ["mnist", "fashion"], 1, 1, 1, rule="ratio")
    assert not [j for j in c.jobs if "probe" in j.what]  # the ratio rule trains no probe


def test_stream_steps_by_hand_and_as_the_official_count():
    from lmvae_core.papers.ocm.settings import TRAIN_IMAGES, official_steps
    from lmvae_core.papers.ocm.steps import stream_steps

    assert stream_steps(60_000, 64, 512, 100, 14, 2560) == official_steps(60_000) == 1_556_300
    # 4 batches of 64, STM 128, one pass, a reservoir of 64: (128+0) + (192+64) + (64+64) + (128+64) rows
    assert stream_steps(256, 64, 128, 1, 14, 2560, reservoir=64) == 2 + 4 + 2 + 3
    assert steps_mod.TRAIN["omniglot"] == TRAIN_IMAGES["omniglot"]  # the counts' Omniglot is the stream's


def test_counts_follow_the_settings():
    from lmvae_core.papers.binarized import settings as binarized
    from lmvae_core.papers.binarized.steps import count

    s = dict(binarized.SETTINGS["paper"])
    base = sum(j.units for j in count(s) if j.kind.build == "ensemble")
    more = sum(j.units for j in count(s | {"epochs": 2 * s["epochs"]}) if j.kind.build == "ensemble")
    assert more == 2 * base > 0


def test_projection_and_docs_section(tmp_path):
    assert cost.gpu_seconds(1e9, 10, True) == max(1e9 / cost.GPU_RATE, 10 * cost.LAUNCH_S)
    assert cost.gpu_seconds(1e9, 10**6, False) == 1e9 / cost.GPU_RATE  # evaluation: no launch floor
    kind = {"kind": "VAE step", "train": True, "units": 10, "gpu_hours": 2.0, "cpu_hours": 5.0}
    nb = {"train_steps": 10, "eval_image_samples": 0, "cpu_hours": 5.0, "gpu_hours": 2.0, "kinds": [kind]}
    r = {"notebooks": {"00_mixture_of_vaes": nb}, "total": {"train_steps": 10, "cpu_hours": 5.0, "gpu_hours": 2.0},
         "assumptions": {"gpu_rate_flops": 2e13, "launch_s_per_op": 5e-6, "cpu": "one thread"}, "torch": "x",
         "threads": 1,
         "device": "cpu", "load_average_start_end": [[1.0, 1.0, 1.0], [2.0, 2.0, 2.0]]}
    text = written(tmp_path, r)
    assert "old" not in text and "| 00_mixture_of_vaes | 10 | 0 | 5.0 | 2.0 | - | VAE step (100%) |" in text
    assert text.startswith("a\n") and text.endswith("b\n") and "GPU measurement" not in text
    assert "busy with other runs (load average up to 2.0), so they are inflated" in text  # one thread, load 2
    idle = r | {"load_average_start_end": [[0.2, 0.2, 0.2], [1.0, 1.0, 1.0]]}  # the run's own thread only
    assert "with nothing else running (load average up to 1.0)" in written(tmp_path, idle)
    # with a GPU measurement: an eager step of 10 us per counted operation is twice the assumed 5 us
    ops = eager_step_ops()
    steps = 469  # ceil(60000 / 128)
    gpu = {"device": "GPU", "gpu_epoch_images": 60000,
           "gpu_epoch_ms": {"eager": ops * 10e-3 * steps, "compiled_graph": ops * 2.5e-3 * steps}}
    text = written(tmp_path, r, gpu)
    assert "as the current code counts them" in text and "upper estimate" in text  # no count beside the timing
    assert f"), {ops} operations" in text and "10.0 us per operation" in text
    assert "about 2.0 times the projected time" in text and "0.5 times the projection's floor" in text
    # the count recorded beside the timing (train_speed.py on a GPU) is the divisor, whatever today's code counts
    text = written(tmp_path, r, gpu | {"eager_step_ops": 2 * ops})
    assert f"dispatches {2 * ops} operations" in text and "5.0 us per operation" in text and "upper estimate" not in text


def test_docs_report_a_paper_run_against_its_projection(tmp_path):
    """A paper-profile notebook run on a GPU (gpu_run.sh's paper_run.json and the notebook's claims.csv) is set
    against the projected seconds, with the verdicts counted from the claims; a run that stopped says so."""
    r = {"notebooks": {"00_mixture_of_vaes": {"gpu_hours": 0.1}}}
    logs = tmp_path / "logs" / "gpu"
    run = logs / "paper_00_mixture_of_vaes"
    run.mkdir(parents=True)
    (run / "paper_run.json").write_text(json.dumps({"notebook": "00_mixture_of_vaes", "rc": 0, "seconds": 400,
                                                     "device": "H200", "commit": "abc1234"}))
    (run / "claims.csv").write_text("claim,verdict\na,reproduced\nb,not comparable\nc,reproduced\n")
    text = docs_cost.paper_runs(r, logs, tmp_path)  # the sentence names the run's folder relative to the root
    assert "(`logs/gpu/paper_00_mixture_of_vaes/claims.md`" in text
    assert "paper profile ran in 400 s from an empty cache on an H200 (commit abc1234), against 360 s projected" in text
    assert "2 reproduced, 1 not comparable as that run judged them, before claims needed a half-budget value" in text
    (run / "claims.csv").write_text("claim,verdict,half budget\na,reproduced,0.7\n")
    assert "tables): 1 reproduced. " in docs_cost.paper_runs(r, logs, tmp_path)  # a run under the rule is counted as it is
    assert "before claims needed" not in docs_cost.paper_runs(r, logs, tmp_path)
    (run / "paper_run.json").write_text(json.dumps(
        {"notebook": "00_mixture_of_vaes", "rc": 124, "seconds": 336, "device": "H200", "commit": "abc1234"}))
    assert "stopped (exit code 124) after 336 s" in docs_cost.paper_runs(r, logs, tmp_path)
    assert docs_cost.paper_runs(r, tmp_path / "none", tmp_path) == ""


def test_the_paper_count_includes_each_notebooks_half_budget_runs():
    """The paper profile runs its claims' experiments again at half the training budget: the counters add them, at
    about half the full runs' training steps (the halved schedules), never more than the full run's."""
    for nb, counted in steps_mod.counters().items():
        jobs = counted()
        half = [j for j in jobs if j.what.startswith("half-budget run: ")]
        full = [j for j in jobs if not j.what.startswith("half-budget run: ")]
        train = lambda js: sum(j.units for j in js if j.kind.train)  # noqa: E731
        assert half and 0 < train(half) <= train(full), nb
    from lmvae_core.papers.mixture_of_vaes.settings import SETTINGS

    moe = SETTINGS["paper"]
    jobs = steps_mod.counters()["00_mixture_of_vaes"]()
    mixture = {j.what: j.units for j in jobs if "mixture on mnist" in j.what}
    assert mixture["half-budget run: mixture on mnist"] == steps_mod.steps(60_000, moe["batch"], moe["epochs"] // 2)


def test_the_docs_count_the_eager_step_as_paper_cost_counts_a_step():
    """The docs' operation count (lmvae_core/docs/paper_cost.py) against paper_cost.py's own counter and stepper on the
    same step (training/op_count.py, which train_speed.py also records)."""
    import torch

    from lmvae_core.models import VAE, fused_vae

    model = VAE(hidden=(400,), latent_dim=20)
    run = cost.stepper(model, model.loss, torch.bernoulli(torch.rand(64, 1, 28, 28)))
    with fused_vae.disabled():
        run(1)
        with cost.OpCounter() as counter:
            run(1)
    assert counter.ops > 0 and eager_step_ops(64) == counter.ops


def test_ocm_paths_project_each_path_from_its_counts(monkeypatch):
    """Each path's step time is max(FLOPs / R, operations x the path's time per operation), with the per-operation
    times measured on the GPU (eager and uncompiled graph, per counted VAE operation) or the assumed L; the other
    kinds keep their projection. Checked by hand on counts given here."""
    counts = {"separate": {"ops": 100.0, "flops": 4e9}, "stacked": {"ops": 40.0, "flops": 4e9}}
    monkeypatch.setattr(cost, "ocm_counts", lambda samples: counts)
    ocm = {"kind": "OCM 50", "build": "ocm", "train": True, "args": {"samples": 50}, "units": 3600,
           "gpu_s_per_unit": 1.0, "flops_per_unit": 4e9}
    other = {"kind": "VAE", "build": "vae", "train": True, "args": {}, "units": 3600, "gpu_s_per_unit": 0.5,
             "flops_per_unit": 2e9}
    notebooks = {"04_ocm": {"kinds": [ocm, other]}}
    gpu = {"device": "GPU", "gpu_epoch_images": 1280, "settings": {"batch_size": 128}, "eager_step_ops": 80,
           "gpu_epoch_ms": {"eager": 10 * 80 * 40e-3, "graph": 10 * 80 * 1e-3}}  # 40 us and 1 us per operation
    o = cost.ocm_paths(notebooks, gpu)
    assert o["per_op"]["eager_s"] == 40e-6 and abs(o["per_op"]["graph_s"] - 1e-6) < 1e-15
    step = {p: v["step_s"]["OCM 50"] for p, v in o["paths"].items()}
    assert step["eager (the table's assumed L)"] == 100 * cost.LAUNCH_S  # 500 us > 4e9 / 2e13 = 200 us
    assert step["eager (measured time per operation)"] == 100 * 40e-6
    assert step["graphed (OCMLearner on CUDA)"] == 4e9 / cost.GPU_RATE  # 100 us of kernels < 200 us of arithmetic
    assert step["stacked, 3 seeds (StackedOCM, eager)"] == 40 * 40e-6
    hours = o["paths"]["eager (measured time per operation)"]["gpu_hours"]["04_ocm"]
    assert abs(hours - (3600 * 4e-3 + 3600 * 0.5) / 3600) < 1e-12  # the VAE kind keeps its 0.5 s a step
    assert abs(o["compute_floor_hours"]["04_ocm"] - 3600 * 6e9 / cost.GPU_RATE / 3600) < 1e-12
    assert cost.ocm_paths(notebooks, None) is None


def test_ocm_counts_stack_fewer_operations_for_the_same_flops():
    """On the real learners (a small memory): stacking 3 seeds divides the operations per seed's step, not the
    FLOPs, and one learner's pass dispatches at least the counted training step's operations."""
    c = cost.ocm_counts(samples=1, seeds=3, memory=128)
    assert c["member_steps"] == 3 * 2
    assert c["stacked"]["flops"] == c["separate"]["flops"] > 0
    assert c["stacked"]["ops"] < 0.7 * c["separate"]["ops"]  # 0.64 here; 0.43 on the 512-image pass
    by_size = c["stacked_ops_by_members"]  # larger stacks: fewer operations per member's step
    assert list(by_size) == ["3", "6", "12"] and by_size["3"] == c["stacked"]["ops"]
    assert by_size["3"] > by_size["6"] > by_size["12"]


def test_docs_set_the_ocm_paths_against_the_targets():
    """The committed count's OCM section: the table's hours and the arithmetic floor come from the JSON."""
    r = json.loads((ROOT / "results" / "paper_cost.json").read_text())
    text = docs_cost.ocm_paths_section(r)
    o = r["ocm_paths"]
    graphed = o["paths"]["graphed (OCMLearner on CUDA)"]
    assert f"| {docs_cost._hours(graphed['gpu_hours']['04_ocm'])} |" in text
    floor_04 = o["compute_floor_hours"]["04_ocm"]
    assert f"is {docs_cost._hours(floor_04)} h for notebook 04" in text
    needed = r["assumptions"]["gpu_rate_flops"] * floor_04 / 3.0 / 1e12
    assert f"04_ocm at most 3 h needs {needed:,.0f} TFLOP/s" in text


def test_docs_report_the_measured_ocm_step_and_precision(tmp_path):
    """The OCM benchmarks' JSON files as they write them: the stacked (and, on CUDA, graphed) speed-ups per case, and
    each precision's paired difference from fp32 with its interval and verdict."""
    assert docs_cost.ocm_measured(tmp_path) == ""
    case = {"seeds": 3, "speedup": 0.72, "ops_ratio": 2.33}
    (tmp_path / "ocm_stacked_cuda.json").write_text(json.dumps(
        {"device": "H100", "threads": 2, "rounds": 3,
         "cases": {"paper step": case | {"graphed_speedup": 9.5}, "paper step, bf16": case}}))
    (tmp_path / "ocm_precision_cpu.json").write_text(json.dumps(
        {"device": "cpu", "epochs": 10, "train_images": 60000, "test_images": 10000, "iwae_k": 500, "seeds": [0, 1, 2],
         "tolerance_nats": 0.3, "differences_vs_fp32": {"bf16": {"mean": 0.05, "lo": -0.1, "hi": 0.2,
                                                                  "verdict": "within", "speed_vs_fp32": 1.3}}}))
    text = docs_cost.ocm_measured(tmp_path)
    assert "H100" in text and "paper step 0.72x stacked, 9.50x graphed (2.33x fewer operations)" in text
    assert "paper step, bf16 0.72x stacked (2.33x" in text
    assert "bf16 minus fp32 +0.05 nats [-0.10, +0.20], within +-0.3, trained at 1.30x fp32's speed" in text


def stacked_json(device_type="cuda") -> dict:
    """benchmarks/ocm_stacked.py's JSON as it writes it on a GPU (the fields the projection reads)."""
    def case(samples, precision, scale):
        return {"train_samples": samples, "precision": precision, "separate_ms_per_step": 4.0 * scale,
                "stacked_ms_per_step": 2.0 * scale, "graphed_ms_per_step": 0.5 * scale,
                "graphed_stack_ms_per_step": 0.25 * scale}
    return {"device": "A GPU", "device_type": device_type,
            "cases": {"paper step": case(50, "fp32", 1.0), "quick step": case(1, "fp32", 0.5),
                      "paper step, bf16": case(50, "bf16", 0.5)}}


def test_ocm_steps_timed_on_a_gpu_join_the_paths_as_measured_rows(monkeypatch):
    """ocm_stacked_cuda.json's seconds per member step become rows of their own, per path and precision, for a path
    timed for every OCM kind of the count (bf16 here timed only at 50 samples, so not a row); a CPU's JSON is not a
    GPU measurement. Hours are the units times the measured seconds."""
    kinds = {"OCM 50": {"samples": 50}, "OCM 1": {"samples": 1}}
    steps = cost.measured_ocm_steps(kinds, stacked_json())
    assert set(steps) == {f"{p}, fp32 (measured)" for p in cost.MEASURED_PATHS}
    assert steps["stacked and graphed, fp32 (measured)"] == {"OCM 50": 0.25e-3, "OCM 1": 0.125e-3}
    assert cost.measured_ocm_steps(kinds, stacked_json("cpu")) == {}
    assert set(cost.measured_ocm_steps({"OCM 50": {"samples": 50}}, stacked_json())) == {
        f"{p}, {q} (measured)" for p in cost.MEASURED_PATHS for q in ("fp32", "bf16")}

    counts = {"separate": {"ops": 100.0, "flops": 4e9}, "stacked": {"ops": 40.0, "flops": 4e9}}
    monkeypatch.setattr(cost, "ocm_counts", lambda samples: counts)
    ocm = {"kind": "OCM 50", "build": "ocm", "train": True, "args": {"samples": 50}, "units": 3_600_000,
           "gpu_s_per_unit": 1.0, "flops_per_unit": 4e9}
    gpu = {"device": "GPU", "gpu_epoch_images": 1280, "settings": {"batch_size": 128}, "eager_step_ops": 80,
           "gpu_epoch_ms": {"eager": 10 * 80 * 40e-3, "graph": 10 * 80 * 1e-3}}
    o = cost.ocm_paths({"04_ocm": {"kinds": [ocm]}}, gpu, stacked_json())
    row = o["paths"]["graphed, bf16 (measured)"]
    assert row["basis"] == "measured on A GPU" and row["built"]
    assert abs(row["gpu_hours"]["04_ocm"] - 3_600_000 * 0.25e-3 / 3600) < 1e-9  # 0.25 h
    assert o["paths"]["graphed (OCMLearner on CUDA)"]["basis"] == "projected"


def test_docs_set_the_measured_rows_against_the_targets():
    """With measured rows the section says so, and sets the best measured path against each target."""
    r = json.loads((ROOT / "results" / "paper_cost.json").read_text())
    o = r["ocm_paths"]
    kind = next(iter(o["counts"]))
    fast = {"built": True, "basis": "measured on A GPU", "step_s": {k: 1e-4 for k in o["counts"]},
            "gpu_hours": {nb: 1.0 for nb in r["notebooks"]}, "total_gpu_hours": 6.5}
    fast["gpu_hours"]["04_ocm"] = 2.5
    o["paths"]["graphed, bf16 (measured)"] = fast
    text = docs_cost.ocm_paths_section(r)
    assert "| graphed, bf16 (measured) | yes | measured on A GPU |" in text and kind
    assert "04_ocm at best 2.5 h (graphed, bf16 (measured)), within the target of 3 h" in text
    assert "all six notebooks at best 6.5 h (graphed, bf16 (measured)), over the target of 6 h" in text
    assert "no OCM step has run on a GPU yet" not in text
    del o["paths"]["graphed, bf16 (measured)"]
    assert "On the measured rows" not in docs_cost.ocm_paths_section(r)


def test_measured_basis_brackets_each_notebook_between_graphed_and_eager():
    """By hand: a training kind of 100 operations and 4 GFLOP a step (200 us at R) takes max(200, 100 x 1) us graphed
    and max(200, 100 x 40) us eager; an evaluation kind takes FLOPs / R at both ends. The docs show both ends."""
    train = {"kind": "T", "train": True, "units": 360_000, "ops_per_step": 100, "flops_per_unit": 4e9}
    evaluation = {"kind": "E", "train": False, "units": 360, "ops_per_step": 34, "flops_per_unit": 2e13}
    gpu = {"device": "GPU", "gpu_epoch_images": 1280, "settings": {"batch_size": 128}, "eager_step_ops": 80,
           "gpu_epoch_ms": {"eager": 10 * 80 * 40e-3, "graph": 10 * 80 * 1e-3}}  # 40 us and 1 us per operation
    b = cost.measured_basis({"04_ocm": {"kinds": [train, evaluation]}}, gpu)
    h = b["hours"]["04_ocm"]
    assert abs(h["graphed"] - (360_000 * 200e-6 + 360 * 1.0) / 3600) < 1e-12  # 0.12 h
    assert abs(h["eager"] - (360_000 * 4000e-6 + 360 * 1.0) / 3600) < 1e-12  # 0.5 h
    assert b["total"] == h and cost.measured_basis({}, None) is None
    from lmvae_core import reproduce

    gpu, ranges = reproduce.measured_ranges({"measured_basis": b})
    assert gpu == "GPU" and ranges["04_ocm"] == (h["graphed"], h["eager"])
    message = reproduce.cost_message(["04_ocm"], "paper", "cuda", cost={"notebooks": {"04_ocm": {"gpu_hours": 2.0}},
                                                                       "measured_basis": b})
    assert "2.0 h (7 min to 30 min at the times per operation measured on GPU, graphed to eager)" in message
    assert reproduce.measured_ranges({}) == ("", {})
