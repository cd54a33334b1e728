"""A reproduction can be trusted end to end (smoke profile, CPU, through the `lmvae` CLI and a real kernel):
two runs with the same seed write byte-identical claims, and a run killed after its first cached experiment
and started again resumes from the cache and ends with the same claims as an uninterrupted run."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# the quickest notebook in smoke whose claims hold no timings (measured: about 30 s on 2 CPU cores)
NOTEBOOK = "00_mixture_of_vaes"


def command(base: Path) -> tuple[list[str], dict]:
    cmd = [sys.executable, "-m", "lmvae_core.cli", "reproduce", "--profile", "smoke", "--only", NOTEBOOK[:2],
           "--out", str(base / "figures"), "--executed", str(base / "executed")]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", LMVAE_WORK=str(base / "work"))
    env.pop("LMVAE_CACHE", None)
    env.pop("LMVAE_OUT", None)
    return cmd, env


def run_to_end(base: Path) -> bytes:
    cmd, env = command(base)
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return (base / "figures" / NOTEBOOK / "claims.csv").read_bytes()


def cache_entries(base: Path) -> list[Path]:
    root = base / "work" / "cache"
    return sorted(p for p in root.rglob("*.pt") if not p.name.startswith(".")) if root.exists() else []


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> bytes:
    return run_to_end(tmp_path_factory.mktemp("uninterrupted"))


def test_two_runs_with_the_same_seed_give_identical_claims(uninterrupted, tmp_path):
    assert run_to_end(tmp_path) == uninterrupted


def test_a_killed_run_resumes_from_the_cache_with_the_same_claims(uninterrupted, tmp_path):
    cmd, env = command(tmp_path)
    # its own process group: the kill takes the papermill kernel down with the CLI, as Ctrl-C or a lost job would
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.time() + 300
        while not cache_entries(tmp_path) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, "the notebook finished before a cached experiment appeared"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    first = cache_entries(tmp_path)
    assert first, "no cached experiment appeared"
    assert not (tmp_path / "figures" / NOTEBOOK / "claims.csv").exists()
    stamps = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in first}

    assert run_to_end(tmp_path) == uninterrupted
    # resumed: the experiments cached before the kill were reloaded, not recomputed
    assert all((p.stat().st_ino, p.stat().st_mtime_ns) == s for p, s in stamps.items())
    assert len(cache_entries(tmp_path)) > len(first)
