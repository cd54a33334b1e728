"""benchmarks/gpu_run.sh runs a notebook as a notebook (papermill through `lmvae reproduce`), tested here on the CPU
with the same script and its fake device flag (FAKE_GPU=1) at the smoke profile."""
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_script_executes_the_notebook_and_packs_it_with_its_figures(tmp_path):
    out = tmp_path / "out"
    env = dict(os.environ, FAKE_GPU="1", SKIP_TESTS="1", SKIP_BENCH="1", PAPER_NOTEBOOK="00_mixture_of_vaes",
               PAPER_PROFILE="smoke", GPU_BUDGET_S="300", PYTHON=sys.executable, OMP_NUM_THREADS="1")
    done = subprocess.run(["bash", "benchmarks/gpu_run.sh", str(out), str(tmp_path / "no-data")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "FAKE_GPU" in (out / "gpu.txt").read_text()
    packed = out / "paper_00_mixture_of_vaes.tgz"
    with tarfile.open(packed) as tar:
        names = set(tar.getnames())
        tar.extractall(tmp_path / "unpacked", filter="data")
    nb_dir = tmp_path / "unpacked" / "00_mixture_of_vaes"
    assert {"00_mixture_of_vaes/claims.csv", "00_mixture_of_vaes/run_info.json",
            "00_mixture_of_vaes/00_mixture_of_vaes.ipynb", "00_mixture_of_vaes/run.log",
            "00_mixture_of_vaes/paper_run.json"} <= names
    run = json.loads((nb_dir / "paper_run.json").read_text())
    assert run["rc"] == 0 and run["profile"] == "smoke" and run["device"].startswith("cpu")
    assert "cold_seconds" in json.loads((nb_dir / "run_info.json").read_text())
    executed = nbformat.read(nb_dir / "00_mixture_of_vaes.ipynb", as_version=4)
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert code and all(c.get("execution_count") for c in code)  # every code cell ran, through papermill
    assert any(c.get("outputs") for c in code)


def test_gpu_script_runs_notebook_04s_table_1_from_a_carried_cache(tmp_path):
    """OCM_PAPER=1: the runs go into the cache folder given (the one a lease carries to the next) and the JSON says
    which are complete; here at the paper-shape profile on the committed sample, twice: the second start finds
    everything done in the carried cache."""
    out, cache = tmp_path / "out", tmp_path / "carried"
    env = dict(os.environ, FAKE_GPU="1", SKIP_TESTS="1", SKIP_BENCH="1", OCM_PAPER="1", OCM_PROFILE="paper-shape",
               OCM_CACHE=str(cache), GPU_BUDGET_S="120", PYTHON=sys.executable, OMP_NUM_THREADS="1")
    for _ in range(2):
        done = subprocess.run(["bash", "benchmarks/gpu_run.sh", str(out), str(tmp_path / "no-data")], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=200)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        runs = json.loads((out / "ocm_paper_runs_cuda.json").read_text())
        assert runs["profile"] == "paper-shape" and [(r["method"], r["state"]) for r in runs["runs"]] == [
            ("VAE-ELBO-OCM", "complete"), ("VAE-ELBO-Random", "complete")]
    assert (cache / "ocm").is_dir() and runs["seconds_this_session"] < 10  # the second start only loaded them
