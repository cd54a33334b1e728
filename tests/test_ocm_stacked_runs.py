"""Notebook 04's runs with `stack_seeds` (the paper profile): each run draws its own noise, and on a GPU the runs
that share a stream and a step (seeds, methods, selection values) train as one StackedOCM, whose members' results
land in the separate runs' cache entries. On the CPU (smoke sizes, the committed sample) the stacked call is forced: its results equal the separate
runs', and the grid of the separate runs loads them."""
import pytest
import torch

from lmvae_core.experiments.common import Run
from lmvae_core.papers.ocm import runs
from lmvae_core.papers.ocm.settings import SETTINGS
from lmvae_core.results.cache import is_cached


def smoke_run(**changes) -> Run:
    s = SETTINGS["smoke"].replace(**({"stack_seeds": True, "seeds": (0, 1)} | changes))
    return Run("04_ocm", "smoke", 0, torch.device("cpu"), None, None, progress=False, settings=s)


def assert_same_run(a: dict, b: dict) -> None:
    assert (a["memory_size"], a["steps"], a["components"], a["expansions"]) == \
        (b["memory_size"], b["steps"], b["components"], b["expansions"])
    assert [h["loss"] for h in a["history"]] == pytest.approx([h["loss"] for h in b["history"]], abs=1e-4)
    for key in ("ll_best", "ll_mixture"):
        assert a["metrics"][key] == pytest.approx(b["metrics"][key], abs=1e-3)


def test_a_stack_of_seeds_gives_the_separate_runs_results():
    run = smoke_run()
    calls = [runs.stream_call(run, "mnist", "VAE-ELBO-OCM", seed) for seed in (0, 1)]
    assert all(c.config["own_noise"] for c in calls)
    assert runs.stacked_calls(run, calls) == ([], set())  # on the CPU, unless forced
    others = [runs.stream_call(run, "mnist", "Dynamic-ELBO-OCM", 1),  # another method, the same step: stacks
              runs.stream_call(run, "mnist", "VAE-ELBO-OCM", 0, lambda1=0.8),  # an ablation's value: stacks
              runs.stream_call(run, "mnist", "VAE-IWVAE50-OCM", 0),  # another objective: alone
              runs.stream_call(run, "fashion", "VAE-ELBO-OCM", 0)]  # another stream: alone
    stacks, covered = runs.stacked_calls(run, calls + others, True)
    assert len(stacks) == 1 and covered == {0, 1, 2, 3}
    assert [(m["method"], m["seed"], m.get("lambda1")) for m in stacks[0].cell["members"]] == [
        ("VAE-ELBO-OCM", 0, None), ("VAE-ELBO-OCM", 1, None), ("Dynamic-ELBO-OCM", 1, None), ("VAE-ELBO-OCM", 0, 0.8)]
    stacked = stacks[0].fn(*stacks[0].args)
    for call, result in zip(calls + others[:2], stacked):
        assert_same_run(call.fn(*call.args), result)
    quick = Run("04_ocm", "smoke", 0, torch.device("cpu"), None, None, settings=SETTINGS["smoke"])
    assert "own_noise" not in runs.stream_call(quick, "mnist", "VAE-ELBO-OCM", 0).config  # keys as before


def test_the_grid_trains_stacks_first_and_loads_their_members(monkeypatch):
    """Reservoir runs of different sizes per seed stack too; the results come back in the calls' order, each
    member's result is in its separate run's cache entry, and no separate run trains again."""
    run = smoke_run()
    ocm = [runs.stream_call(run, "mnist", "VAE-ELBO-OCM", seed) for seed in (0, 1)]
    grid = runs.run_grid(run, ocm, "OCM runs", stack=True)
    assert all(is_cached(c.name, c.config) for c in ocm) and not grid.failures
    reservoir = [runs.stream_call(run, "mnist", "VAE-ELBO-Random", seed) for seed in (0, 1)]
    calls = [reservoir[1], ocm[0], reservoir[0]]
    trained = []
    real = runs.fit_stacked

    def recording(run_, members):
        trained.append([m[3] for m in members])
        return real(run_, members)

    monkeypatch.setattr(runs, "fit_stacked", recording)
    grid = runs.run_grid(run, calls, "OCM reservoir runs", stack=True)
    assert trained == [[1, 0]]  # the two reservoir runs as one stack; the cached OCM run not again
    many = [runs.stream_call(run, "mnist", "VAE-ELBO-OCM", 0, lambda1=0.05 * i) for i in range(runs.MAX_STACK + 3)]
    assert [len(c.cell["members"]) for c in runs.stacked_calls(run, many, True)[0]] == [runs.MAX_STACK, 3]
    assert [r["memory_size"] for r in grid.results] == [
        runs.run_stream(run, "mnist", m, seed, force=False)["memory_size"]
        for m, seed in (("VAE-ELBO-Random", 1), ("VAE-ELBO-OCM", 0), ("VAE-ELBO-Random", 0))]
    assert grid.results[0]["train_seconds"] == grid.results[2]["train_seconds"]  # a shared stack's time
