"""The speed benchmark's FLOP count and docs sections (no timing here: speed is measured by the script)."""
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from lmvae_core.docs import grid_speed, speed
from lmvae_core.models import VAE

ROOT = Path(__file__).resolve().parents[1] / "benchmarks"


def load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cpu_result(**measures) -> dict:
    """A CPU result of train_speed.py with the given measures (rates of 1 img/s where the README reads none)."""
    return {"device": "cpu", "torch": "x", "threads": 2, "load_average_start_end": [[0.5, 0.4, 0.3], [0.6, 0.5, 0.4]],
            "settings": {"rounds": 3},
            "img_per_s": {"vae_project": 1, "vae_dataloader_reference": 1, "mixture10_batched": 1, "mixture10_loop": 1,
                          "ensemble5_stacked_member_images": 1, "ensemble5_separate_member_images": 1}, **measures}


def test_flops_per_image_of_the_784_400_20_vae():
    bench = load("train_speed")
    # forward 784*400 + 400*40 + 20*400 + 400*784 MACs; backward: every weight gradient, and the input
    # gradient of every layer but the first (the data needs none); 2 FLOPs per MAC
    macs = [784 * 400, 400 * 40, 20 * 400, 400 * 784]
    assert bench.step_flops_per_image(VAE(hidden=(400,), latent_dim=20)) == 2 * (2 * sum(macs) + sum(macs[1:]))
    assert bench.step_flops_per_image(bench.ExamplesVAE()) == 2 * (2 * sum(macs) + sum(macs[1:]))


def test_readme_section_marks_met_and_missed_targets(tmp_path):
    result = cpu_result(vae_vs_dataloader=3.2, roofline_fraction=0.41, mixture_vs_loop=1.6, ensemble_vs_separate=0.9,
                        matmul_gflops=60.0, vae_gflops=24.6, vae_step_mflop_per_image=3.28)
    (tmp_path / "train_speed_cpu.json").write_text(json.dumps(result))
    text = speed.speed_section(tmp_path)
    rows = {line.split("|")[1].strip()[:20]: line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| measure |")}
    assert [r.rstrip(" |").endswith(v) for r, v in zip(rows.values(), ["yes", "**no**", "yes", "**no**"])] == [True] * 4
    assert "3.20x" in text and "0.41" in text and "No GPU run" in text


def test_readme_table_shows_each_measure_over_the_rounds(tmp_path):
    result = cpu_result(vae_vs_dataloader=2.0, roofline_fraction=0.4, mixture_vs_loop=1.2, ensemble_vs_separate=1.0,
                        matmul_gflops=100.0, vae_gflops=40.0, vae_step_mflop_per_image=4.0,
                        rounds={"project": [10000, 20000, 15000], "reference": [10000, 5000, 6000], "matmul": [100, 100, 50],
                                "mixture": [30, 36, 24], "loop": [20, 30, 24], "ensemble": [9, 10, 11],
                                "separate": [10, 10, 10]})
    (tmp_path / "train_speed_cpu.json").write_text(json.dumps(result))
    assert speed.round_ratios(result, "vae_vs_dataloader") == [1.0, 2.5, 4.0]
    assert speed.round_ratios(result, "roofline_fraction") == [0.4, 0.8, 1.2]  # img/s * MFLOP / 1000 / GFLOP/s
    assert speed.round_ratios(result, "mnist_epoch_ms") == []
    rows = [line for line in speed.speed_section(tmp_path).splitlines() if line.startswith("| ")]
    assert rows[1].endswith("| 2.00x | 1.00x to 4.00x | 3x | **no** |")
    assert rows[2].endswith("| 0.40 | 0.40 to 1.20 | 0.60 | **no** |")
    assert rows[3].endswith("| 1.20x | 1.00x to 1.50x | 1.50x | **no** |")
    assert rows[4].endswith("| 1.00x | 0.90x to 1.10x | 1x | yes |")
    spread = speed._spread(result)[1]  # each contender's fastest round over its slowest; the matmul is no contender
    assert "project 2.00x, reference 2.00x, mixture 1.50x, loop 1.50x, ensemble 1.22x, separate 1.00x." in spread
    assert "matmul" not in spread and speed._spread(cpu_result()) == []


def test_readme_gpu_table_judges_the_epoch_time_as_a_ceiling(tmp_path):
    base = {"roofline_fraction": 0.05, "matmul_gflops": 1.0, "vae_gflops": 1.0, "vae_step_mflop_per_image": 3.28,
            "device": "gpu", "torch": "x", "threads": 16, "load_average_start_end": [[0.1] * 3, [0.1] * 3],
            "settings": {"rounds": 3}, "gpu_epoch_images": 60000, "gpu_epoch_ms": {"eager": 900.0, "compiled_graph": 30.0},
            "img_per_s": {"vae_project": 1, "vae_dataloader_reference": 1, "mixture10_batched": 1, "mixture10_loop": 1,
                          "ensemble5_stacked_member_images": 1, "ensemble5_separate_member_images": 1}}
    cpu = base | {"vae_vs_dataloader": 3.2, "mixture_vs_loop": 1.6, "ensemble_vs_separate": 1.1, "mnist_epoch_ms": 7000.0}
    gpu = base | {"vae_vs_dataloader": 120.0, "mixture_vs_loop": 4.0, "ensemble_vs_separate": 4.5, "mnist_epoch_ms": 30.0}
    (tmp_path / "train_speed_cpu.json").write_text(json.dumps(cpu))
    (tmp_path / "train_speed_gpu.json").write_text(json.dumps(gpu))
    text = speed.speed_section(tmp_path)
    cpu_part, gpu_part = text.split("**GPU**")
    assert "MNIST epoch" not in cpu_part.split("Raw rates")[0]  # a GPU-only target
    epoch_row = next(line for line in gpu_part.splitlines() if "MNIST epoch (60,000 images)" in line)
    assert epoch_row.endswith("| 30.0 | - | 35.0 | yes |")
    mixture_row = next(line for line in gpu_part.splitlines() if line.startswith("| mixture of 10"))
    assert mixture_row.endswith("| 4.00x | - | 5x | **no** |")
    assert "eager 900.0 ms" in gpu_part and "No GPU run" not in text


def test_readme_gpu_table_shows_the_graphed_mixture_and_where_a_step_goes(tmp_path):
    gpu = {"vae_vs_dataloader": 50.0, "roofline_fraction": 0.05, "mixture_vs_loop": 4.0, "mixture_vs_loop_graphed": 6.5,
           "ensemble_vs_separate": 3.0, "mnist_epoch_ms": 93.8, "matmul_gflops": 1.0, "vae_gflops": 1.0,
           "vae_step_mflop_per_image": 3.28, "device": "gpu", "torch": "x", "threads": 16,
           "load_average_start_end": [[0.1] * 3, [0.1] * 3], "settings": {"rounds": 3}, "gpu_epoch_images": 60000,
           "gpu_epoch_ms": {"compiled": 938.0, "compiled_graph": 93.8},
           "gpu_step_kernels": {"compiled": {"kernels_per_step": 31, "kernel_us_per_step": 120.0,
                                             "top": [{"kernel": "Optimizer.step#Adam.step", "calls_per_step": 1,
                                                      "us_per_step": 20.0},
                                                     {"kernel": "void at::native::(anonymous namespace)::multi_tensor_apply_kernel<at::x>(int)",
                                                      "calls_per_step": 1, "us_per_step": 15.0},
                                                     {"kernel": "gemm", "calls_per_step": 7, "us_per_step": 50.0}]},
                                "compiled_graph": {"error": "RuntimeError: no profiler"}},
           "img_per_s": {"vae_project": 1, "vae_dataloader_reference": 1, "mixture10_batched": 1, "mixture10_loop": 1,
                         "mixture10_batched_graphed": 650, "mixture10_loop_graphed": 100,
                         "ensemble5_stacked_member_images": 1, "ensemble5_separate_member_images": 1}}
    (tmp_path / "train_speed_gpu.json").write_text(json.dumps(gpu))
    text = speed.speed_section(tmp_path)
    graphed = next(line for line in text.splitlines() if line.startswith("| the same pair"))
    assert graphed.endswith("| 6.50x | - | 5x | yes |")
    # 469 steps per epoch: 938 ms -> 2000 us a step, of which the kernels take 100 us (5%): the annotation range
    # (its kernels are among the others) is not counted; the failed profile is left out
    assert ("compiled: 30 kernels, 100 us of kernel time in a 2000 us step (5%; the largest: "
            "multi_tensor_apply_kernel 15.0 us, gemm 50.0 us)") in text
    assert "compiled graph:" not in text and "Graphed mixture 650 vs graphed loop 100 img/s" in text


def test_readme_grid_speed_paragraph_is_written_from_the_results(tmp_path):
    r = {"grid": {"streams": ["split_mnist"], "methods": ["a", "b"], "seeds": [0], "runs": 2}, "serial_seconds": 100.0,
         "local_seconds": 50.0, "speedup_local_vs_serial": 2.0, "executor": "local", "workers": 2, "cores": 2,
         "serial_torch_threads": 2, "same_results": True, "load_average_before": [0.1, 0.1, 0.1],
         "load_average_after": [2.5, 1.0, 0.5], "torch": "x", "finished": "today"}
    text = grid_speed.grid_section(r)
    assert "**2.00x** against the 1.7x target: met" in text and "identical results" in text
    assert "nothing else running" in text and "not measured here" not in text
    slow = grid_speed.grid_section(r | {"speedup_local_vs_serial": 0.8, "same_results": False, "load_average_before": [3.0] * 3})
    assert "**0.80x**" in slow and "missed" in slow and "other processes on the cores" in slow and "different" in slow
    timed = r | {"run_seconds": {"serial": {"a": 10.0, "b": 20.0, "c": 40.0}, "local": {"a": 11.0, "b": 30.0, "c": 40.0}},
                 "worker_utilisation": 0.8}
    bounds = {"finished": "2026-12-04 15:00:00", "parallel": {"784-200-20, batch 64 (notebook 05 quick)": {"parallel_bound": 1.6}}}
    text = grid_speed.grid_section(timed, bounds)
    assert "took 1.10x its serial time (median; 1.00x to 1.50x)" in text and "busy 80%" in text and "1.60x at the" in text
    assert "Below 0.5x" not in text
    first = timed | {"run_seconds": {"serial": {"a": 90.0, "b": 20.0}, "local": {"a": 9.0, "b": 21.0}}}
    assert "Below 0.5x: a; serially such a run also trains" in grid_speed.grid_section(first, bounds)
    bounds["parallel"]["784-200-20, batch 64 (notebook 05 quick)"]["rounds"] = {
        "one_process_2_threads": [3.0, 4.0], "two_processes_1_thread": [5.0, 4.0]}
    assert "1.60x at the median of its rounds, 1.50x from each side's fastest round" in grid_speed.grid_section(timed, bounds)
    threads = {"finished": "today", "vae_784_200_20_2_epochs": {"identical": True, "max_abs_parameter_difference": 0.0},
               "split_mnist_feature_classifier": {"identical": False, "max_abs_parameter_difference": 0.2153,
                                                  "fid_2000_train_vs_test": {"1": 23.47, "2": 21.44}}}
    differ = r | {"same_results": False}
    traced = grid_speed.grid_section(differ, None, threads)
    assert "not checked" not in traced and "VAE trained with 1 and with 2 threads comes out bitwise the same" in traced
    assert "classifier comes out not the same (parameters up to 0.22 apart)" in traced
    assert "23.5 with 1 thread against 21.4 with 2 threads" in traced
    assert "not checked" in grid_speed.grid_section(differ)  # no check committed: the guess says it is a guess
    # after the fix: the serial grid runs each run on one thread; the classifier is pinned, the raw training is not
    fixed = threads | {"result_threads": 1,
                       "split_mnist_feature_classifier": {"identical": True, "max_abs_parameter_difference": 0.0,
                                                          "fid_2000_train_vs_test": {"1": 23.47, "2": 23.47}},
                       "split_mnist_feature_classifier_unpinned": {"identical": False,
                                                                   "max_abs_parameter_difference": 0.2153}}
    bounds["parallel"]["784-200-20, batch 64 (notebook 05 quick)"]["two_threads_speedup"] = 1.25
    now = grid_speed.grid_section(r | {"serial_torch_threads": 1, "process_torch_threads": 2}, bounds, fixed)
    assert "serially (each run on 1 torch thread in a 2-thread process)" in now and "identical results" in now
    assert "trained at the caller's thread count, comes out not the same (parameters up to 0.22 apart)" in now
    assert "on 1 thread (`runtime.RESULT_THREADS`), it comes out bitwise the same" in now
    assert "23.5 with 1 thread against 23.5 with 2 threads" in now
    assert "speeds one run up 1.25x" in now and "would gain about 1.60x: the target, like for like, missed" in now
    assert "not like for like" in now  # 2.00 / 1.25 = 1.60 < 1.7
    assert "would gain" not in grid_speed.grid_section(r, bounds, fixed)  # an older run: the serial side had 2 threads


def test_thread_invariance_compares_every_parameter_bitwise():
    inv = load("thread_invariance")
    a = {"w": torch.ones(3), "b": torch.zeros(2)}
    assert inv.compare(a, {k: v.clone() for k, v in a.items()}) == {"identical": True, "max_abs_parameter_difference": 0.0}
    moved = inv.compare(a, {"w": torch.tensor([1.0, 1.0, 1.5]), "b": torch.zeros(2)})
    assert not moved["identical"] and moved["max_abs_parameter_difference"] == 0.5


def test_cpu_bounds_times_exactly_the_products_of_the_step():
    """cpu_bounds.py's list of matrix products is the step train_speed.py counts: the same FLOPs."""
    bounds, bench = load("cpu_bounds"), load("train_speed")
    gemms = bounds.step_gemms(bounds.vae_layers(400, 20), 128)
    assert len(gemms) == 4 + 4 + 3  # forward, weight gradients, input gradients of all but the first layer
    assert 2 * sum(m * k * n for m, k, n in gemms) == 128 * bench.step_flops_per_image(VAE(hidden=(400,), latent_dim=20))
    assert bounds.gemm_rate(gemms[:1], experts=2, batched=True, reps=1) > 0


def test_tight_mixture_bound_counts_only_the_products_and_adam():
    """T / (G + A) per round: G from the batched rate, with the first layer at the faster of its two ways."""
    bounds = load("cpu_bounds")
    # 3e9 FLOPs of products, 1e9 of them the first layer's; 100 GFLOP/s batched: 20 ms + 10 ms, or 20 + 4 ms wide
    rates = {"bmm10": [100.0, 100.0], "first_layer10_best_ms": [4.0, 50.0], "adam10_ms": [2.0, 3.0],
             "loop10_step_ms": [39.0, 66.0]}
    tight = bounds.tight_mixture_bound(rates, 3e9, 1e9)
    assert tight["gemm_ms"] == pytest.approx([24.0, 30.0])
    assert tight["rounds"] == pytest.approx([39.0 / 26.0, 66.0 / 33.0])
    assert tight["fastest"] == pytest.approx(39.0 / (24.0 + 2.0))
    layers = bounds.vae_layers(400, 20)
    assert bounds.step_gemms(layers[:1], 128) == [(128, 784, 400), (400, 128, 784)]  # forward, weight gradient
    assert bounds.first_layer_ms(layers, 8, experts=2, reps=1) > 0
    assert bounds.adam_ms([torch.nn.Parameter(torch.zeros(3))], reps=1) > 0


def test_tight_roofline_bound_counts_the_products_and_adam():
    """flops / (G + A) over the square rate, per round; a 0.6 step's time and what G and A leave of it."""
    bounds = load("cpu_bounds")
    # 4e8 FLOPs at 400 GFLOP/s: G = 1 ms; A = 0.25 ms; square 400: 320 GFLOP/s over 400 = 0.8; at 0.6, 1.667 ms
    rates = {"step": [400.0, 200.0], "adam_vae_ms": [0.25, 0.5], "square": [400.0, 400.0]}
    t = bounds.tight_roofline_bound(rates, 4e8)
    assert t["rounds"] == pytest.approx([0.8, 4e8 / 2.5e-3 / 1e9 / 400])
    assert t["ms"]["step_at_target"] == pytest.approx(1e3 * 4e8 / (0.6 * 400e9))
    assert t["ms"]["left_at_target"] == pytest.approx(t["ms"]["step_at_target"] - 1.5 - 0.375)


def test_readme_bounds_state_the_tight_roofline_and_what_a_target_step_leaves():
    b = {"roofline_tight_bound": 0.66, "roofline_tight_bound_rounds": [0.7, 0.64, 0.66],
         "roofline_ms": {"gemms": 1.32, "adam": 0.27, "step_at_target": 1.75, "left_at_target": 0.16}}
    text = speed._tight_roofline(b)
    assert "the step could reach at most 0.66 (0.64 to 0.70 over the rounds): target 0.6, within reach" in text
    assert "A step at 0.6 takes 1.75 ms and leaves 160 us of it for everything else" in text
    b |= {"roofline_tight_bound": 0.55, "roofline_tight_bound_rounds": [0.5, 0.55, 0.58]}
    b["roofline_ms"]["left_at_target"] = -0.1
    text = speed._tight_roofline(b)
    assert "target 0.6, **out of reach on this CPU**" in text and "leaves nothing for anything else" in text
    assert speed._tight_roofline({}) == ""


def test_cpu_modes_probe_times_each_optimizer_step_and_leaves_training_unchanged():
    """The probe repeats every step and undoes the repeat: the trained weights are bitwise those without it."""
    from lmvae_core.training import TrainConfig, train
    from lmvae_core.training.optim import FusedAdam

    modes = load("cpu_modes")
    x = (torch.rand(96, 1, 28, 28, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    cfg = TrainConfig(epochs=2, batch_size=32, binarize=None, progress=False)
    runs = []
    for probed in (False, True):
        torch.manual_seed(0)
        model = VAE(hidden=(16,), latent_dim=2)
        if probed:
            with modes.probed_optimizer() as (first, repeat, probe):
                train(model, x, cfg)
            assert len(first) == len(repeat) == len(probe) == 6 and min(first + repeat) > 0
        else:
            train(model, x, cfg)
        runs.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(runs[0], runs[1])
    assert FusedAdam.step.__name__ == "step"  # restored
    assert modes.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert modes.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    rounds = [{"first_step_ms": f, "repeat_step_ms": r, "img_per_s": v}
              for f, r, v in ((0.3, 0.2, 30000), (1.2, 0.2, 19000), (0.32, 0.2, 31000), (1.3, 0.2, 18000))]
    fast, slow = modes.split_at_widest_gap(rounds)
    assert (fast["rounds"], slow["rounds"]) == (2, 2) and (fast["img_per_s"], slow["img_per_s"]) == (30500, 18500)
    assert fast["ratio_max"] == pytest.approx(1.6) and slow["ratio_min"] == pytest.approx(6.0)
    m = {"finished": "2026-12-05 02:00:00", "processes": 2, "threads": 2, "groups": [fast, slow]}
    text = "\n".join(speed._modes(m))
    assert "2 fresh processes of 2 rounds, 2 threads" in text and "2 rounds at 1.5x to 1.6x ran at 30,500 img/s" in text
    assert "2 rounds at 6.0x to 6.5x ran at 18,500 img/s (18,000 to 19,000), first step 1.25 ms, repeat 0.20 ms" in text
    assert "two speeds" in text and speed.two_speeds(m)
    # one cloud of rounds (a machine without the slow mode): the widest gap splits off one round, not a second speed
    one = [{"first_step_ms": 0.28, "repeat_step_ms": r, "img_per_s": v}
           for r, v in ((0.27, 44000), (0.28, 43000), (0.27, 44500), (0.283, 43200))]
    m1 = m | {"groups": list(modes.split_at_widest_gap(one))}
    assert not speed.two_speeds(m1)
    text = "\n".join(speed._modes(m1))
    assert "One speed for the CPU step on this machine" in text and "no second, slower speed" in text
    assert "0.99x to 1.04x the repeat" in text and "43,000 to 44,500 img/s" in text and "two speeds" not in text


def test_readme_bounds_rule_a_target_out_only_when_every_round_misses_it():
    par = {"parallel_bound": 1.5, "two_threads_speedup": 1.3, "side_by_side_slowdown": 1.0,
           "rounds": {"one_process_2_threads": [6.0, 6.0, 6.0], "two_processes_1_thread": [8.0, 8.0, 8.0]}}
    b = {"finished": "2026-12-04 16:00:00", "rounds": {"square": [1, 2, 3]}, "step_gemm_fraction": 0.8,
         "gflops": {"vae_step_gemms": 120, "square_1024": 150}, "mixture_gemm_bound": 1.1, "mixture_bound": 1.4,
         "mixture_ms": {"loop_step_batch1": 20.0, "loop_step": 55.0}, "parallel": {"784-200-20 (quick)": par}}
    text = "\n".join(speed._bounds(b))
    assert "0.80 of the 1024x1024 rate" in text and "target 0.6, within reach" in text
    assert "at most 1.40x the loop: target 1.5x, **out of reach on this CPU**" in text
    assert "1.50x to 1.50x over the rounds" in text and "target 1.7x, **out of reach on this CPU**" in text
    assert "Counting only what no batched step can skip" not in text  # a results file from before the tight bound
    b |= {"mixture_tight_bound": 1.3, "mixture_tight_bound_rounds": [1.2, 1.3, 1.4], "mixture_tight_bound_fastest": 1.25,
          "mixture_ms": b["mixture_ms"] | {"batched_gemms": 30.0, "adam": 2.0}}
    text = "\n".join(speed._bounds(b))
    assert "(30.0 ms," in text and "(2.0 ms, back to back" in text and "loop's 55.0 ms step" in text
    assert "at most 1.30x the loop (1.20x to 1.40x over the rounds): target 1.5x, **out of reach on this CPU**" in text
    b["mixture_tight_bound_rounds"] = [1.2, 1.3, 1.6]  # one round overshoots, but the fastest rounds give 1.25x
    assert "over the rounds): target 1.5x, **out of reach on this CPU**: from each contender's fastest round it is " \
           "1.25x; the rounds that reached the target did so because their loop step was slower" in "\n".join(speed._bounds(b))
    b |= {"mixture_tight_bound": 1.6, "mixture_tight_bound_fastest": 1.45}  # the median reaches it, the fastest not
    assert "target 1.5x, reached at the median only: from each contender's fastest round it is 1.45x; the rounds " \
           "that reached the target did so because their loop step was slower" in "\n".join(speed._bounds(b))
    b |= {"mixture_tight_bound": 1.3, "mixture_tight_bound_fastest": 1.55}
    assert "target 1.5x, below it at the median, but not ruled out: from each contender's fastest round it is 1.55x" \
           in "\n".join(speed._bounds(b))
    par["rounds"]["two_processes_1_thread"][0] = 6.5  # the fastest rounds give 1.85x: not ruled out
    assert "not ruled out: from each contender's fastest round it is 1.85x" in "\n".join(speed._bounds(b))
    # a round at 1.75x only because its 2-thread run was slowed: the fastest rounds give 1.5x, so it is ruled out
    par["rounds"] = {"one_process_2_threads": [6.0, 7.0, 6.0], "two_processes_1_thread": [8.0, 8.0, 8.0]}
    text = "\n".join(speed._bounds(b))
    assert "target 1.7x, **out of reach on this CPU**: from each contender's fastest round it is 1.50x" in text


def test_pooled_runs_pool_every_process_rounds_and_keep_each_process_medians(monkeypatch):
    """--processes N: the medians are taken over the rounds of all N child processes together."""
    import argparse

    bench = load("train_speed")
    real_run = bench.subprocess.run

    # child i measures every contender at rate 1 in its rounds, except the project at 10 * (i + 1) img/s
    def fake_run(cmd, check=False, **kwargs):
        if "--json" not in cmd:  # another caller (platform.processor() runs uname)
            return real_run(cmd, check=check, **kwargs)
        i = fake_run.calls
        fake_run.calls += 1
        rounds = {k: [1.0, 1.0] for k in ("reference", "matmul", "mixture", "loop", "ensemble", "separate")}
        rounds["project"] = [10.0 * (i + 1)] * 2
        args = argparse.Namespace(images=1, mixture_steps=1, ensemble_images=1, rounds=2)
        child = bench.summarise(rounds, {}, {}, torch.device("cpu"), 0, args)
        child["load_average_start_end"] = [[i, 0, 0], [i + 0.5, 0, 0]]
        Path(cmd[cmd.index("--json") + 1]).write_text(json.dumps(child))
    fake_run.calls = 0
    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    args = argparse.Namespace(processes=3, rounds=2, images=1, mixture_steps=1, ensemble_images=1, data_root=None)
    r = bench.pooled(args)
    assert fake_run.calls == 3
    assert r["rounds"]["project"] == [10.0, 10.0, 20.0, 20.0, 30.0, 30.0]
    assert r["vae_vs_dataloader"] == 20.0  # the median of the pooled rounds, not of one process
    assert [p["vae_vs_dataloader"] for p in r["per_process"]] == [10.0, 20.0, 30.0]
    assert r["settings"]["rounds"] == 6 and r["settings"]["processes"] == 3 and r["settings"]["rounds_per_process"] == 2
    assert r["load_average_start_end"] == [[0, 0, 0], [2.5, 0, 0]]


def test_readme_says_when_the_rounds_were_pooled_from_several_processes(tmp_path):
    result = cpu_result(vae_vs_dataloader=2.0, roofline_fraction=0.4, mixture_vs_loop=1.2, ensemble_vs_separate=1.0,
                        matmul_gflops=100.0, vae_gflops=40.0, vae_step_mflop_per_image=4.0,
                        per_process=[{"vae_vs_dataloader": 2.5, "roofline_fraction": 0.5, "mixture_vs_loop": 1.1,
                                      "ensemble_vs_separate": 0.9},
                                     {"vae_vs_dataloader": 1.9, "roofline_fraction": 0.3, "mixture_vs_loop": 1.4,
                                      "ensemble_vs_separate": 1.3}])
    result["settings"] |= {"processes": 2, "rounds_per_process": 4}
    (tmp_path / "train_speed_cpu.json").write_text(json.dumps(result))
    text = speed.speed_section(tmp_path)
    assert "from 2 fresh processes run one after the other, 4 rounds each, pooled" in text
    assert ("VAE vs DataLoader 1.90 to 2.50; roofline fraction 0.30 to 0.50; mixture vs loop 1.10 to 1.40; "
            "ensemble vs separate 0.90 to 1.30.") in text
    assert speed._processes(cpu_result()) == []


def test_fused_references_are_shown_beside_the_targets_without_one(tmp_path):
    """The mixture against a loop of fused VAEs, and the ensemble against runs of train(): rows with no target (n/a),
    their per-round ratios from their own contenders, and their rates in the raw line; older files without them
    show neither."""
    result = cpu_result(vae_vs_dataloader=2.0, roofline_fraction=0.4, mixture_vs_loop=1.5, ensemble_vs_separate=1.4,
                        mixture_vs_own_loss_loop=1.25, ensemble_vs_train_runs=1.2,
                        matmul_gflops=100.0, vae_gflops=40.0, vae_step_mflop_per_image=4.0,
                        rounds={"mixture": [30, 36], "loop": [20, 24], "own_loss_loop": [24, 30],
                                "ensemble": [12, 14], "separate": [10, 10], "train_runs": [10, 14]})
    result["img_per_s"] |= {"mixture10_own_loss_loop": 4321, "ensemble5_train_runs_member_images": 8765}
    (tmp_path / "train_speed_cpu.json").write_text(json.dumps(result))
    assert speed.round_ratios(result, "mixture_vs_own_loss_loop") == [1.2, 1.25]
    assert speed.round_ratios(result, "ensemble_vs_train_runs") == [1.0, 1.2]
    text = speed.speed_section(tmp_path)
    row = next(line for line in text.splitlines() if "through its own fused loss" in line)
    assert row.split("|")[2].strip() == "1.25x" and row.rstrip(" |").endswith("n/a")
    row = next(line for line in text.splitlines() if "runs of `train()`" in line)
    assert row.split("|")[2].strip() == "1.20x" and row.rstrip(" |").endswith("n/a")
    assert "loop of fused VAEs 4,321" in text and "runs of train() 8,765" in text
    for key in ("mixture_vs_own_loss_loop", "ensemble_vs_train_runs"):
        del result[key]
    (tmp_path / "train_speed_cpu.json").write_text(json.dumps(result))
    assert "own fused loss" not in speed.speed_section(tmp_path).split("Raw rates")[0]


def test_uncompiled_vae_rows_and_the_compile_cost_are_shown_beside_the_compiled_step(tmp_path):
    """On a CPU the target reads the compiled step (how long runs train); the uncompiled step (train()'s way in
    shorter runs) gets its own rows without a target, with per-round ratios from its own contender, and the
    compile's cost is stated. Files without them show neither."""
    result = cpu_result(vae_vs_dataloader=3.2, vae_eager_vs_dataloader=2.8, roofline_fraction=0.42,
                        roofline_fraction_eager=0.37, mixture_vs_loop=1.5, ensemble_vs_separate=1.4,
                        matmul_gflops=100.0, vae_gflops=42.0, vae_step_mflop_per_image=1000.0,
                        rounds={"reference": [10, 10], "project": [32, 30], "project_eager": [28, 27],
                                "matmul": [100, 100]},
                        cpu_first_compiled_call_s=[13.4, 2.1])
    result["img_per_s"] |= {"vae_project_eager": 27500}
    (tmp_path / "train_speed_cpu.json").write_text(json.dumps(result))
    assert speed.round_ratios(result, "vae_eager_vs_dataloader") == [2.7, 2.8]
    assert speed.round_ratios(result, "roofline_fraction_eager") == pytest.approx([0.27, 0.28])
    assert speed.round_ratios(result, "roofline_fraction") == pytest.approx([0.30, 0.32])
    text = speed.speed_section(tmp_path)
    target = next(line for line in text.splitlines() if "as long runs train it" in line)
    assert target.split("|")[2].strip() == "3.20x" and target.rstrip(" |").endswith("yes")
    row = next(line for line in text.splitlines() if "the same step uncompiled" in line)
    assert row.split("|")[2].strip() == "2.80x" and row.split("|")[3].strip() == "2.70x to 2.80x"
    assert row.rstrip(" |").endswith("n/a")
    assert "(27,500 uncompiled)" in text and "took 13.4, 2.1 s per process" in text
    for key in ("vae_eager_vs_dataloader", "roofline_fraction_eager", "cpu_first_compiled_call_s"):
        del result[key]
    (tmp_path / "train_speed_cpu.json").write_text(json.dumps(result))
    assert "uncompiled" not in speed.speed_section(tmp_path).split("Raw rates")[0]
    assert "took" not in speed.speed_section(tmp_path)
