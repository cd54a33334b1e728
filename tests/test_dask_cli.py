"""The Dask recipe of docs/dask.md as a user types it: a real `dask scheduler` and one `dask worker` started as
processes (today's single `dask` command; `dask-scheduler` and `dask-worker` are gone), and a smoke grid of
notebook 05 run through `executor="tcp://..."`, the address `lmvae reproduce --executor` passes to the notebooks.
The unreachable-scheduler error tells the user the same commands."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
DASK = shutil.which("dask", path=str(BIN) + os.pathsep + os.environ.get("PATH", ""))
pytestmark = pytest.mark.skipif(DASK is None, reason="the `dask` command is not installed")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    # a session of its own, so that teardown ends the command and the processes it spawned (the nanny's worker)
    return subprocess.Popen([DASK, *args], stdout=log.open("w"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture
def dask_cluster(tmp_path, monkeypatch):
    """`dask scheduler` and `dask worker ADDRESS --nworkers 1 --nthreads 1` on free ports; both ended in teardown.
    The worker shares this test's $LMVAE_CACHE (a worker on the same machine, or on a shared disk)."""
    import distributed

    monkeypatch.setenv("LMVAE_CACHE", str(tmp_path / "cache"))
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [start(["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                   tmp_path / "scheduler.log")]
    try:
        procs.append(start(["worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                            "--host", "127.0.0.1"], tmp_path / "worker.log"))
        deadline = time.time() + 60
        while True:  # the scheduler takes a moment to listen
            try:
                client = distributed.Client(address, timeout=5)
                break
            except OSError:
                if time.time() > deadline or any(p.poll() is not None for p in procs):
                    raise
                time.sleep(0.5)
        with client:
            client.wait_for_workers(1, timeout=60)
            worker_pids = set(client.run(os.getpid).values())
        yield address, worker_pids
    finally:
        for p in reversed(procs):
            stop(p)
        for log in ("scheduler.log", "worker.log"):
            if (tmp_path / log).exists():
                print(f"--- {log}\n{(tmp_path / log).read_text()[-3000:]}")


def test_smoke_grid_on_dask_scheduler_and_worker_processes(dask_cluster, tmp_path):
    from lmvae_core.papers.benchmark import experiments as B
    from lmvae_core.experiments.common import setup
    from lmvae_core.results.runner import run_grid

    address, worker_pids = dask_cluster
    assert len(worker_pids) == 1 and os.getpid() not in worker_pids
    run = setup("05_benchmark", "smoke", device="cpu", out_dir=str(tmp_path / "out"), progress=False,
                settings=B.SETTINGS, executor=address)
    run = run.with_settings(run.settings.replace(streams=("split_mnist",), methods=("Fine-tune VAE", "Replay VAE")))
    calls = B.grid_calls(run)
    assert len(calls) == 2
    t0 = time.time()
    grid = run_grid(calls, run.executor, progress=False)
    assert grid.executor == address
    assert not grid.failures, [f.report() for f in grid.failures]
    assert len(grid.results) == 2 and all(r is not None for r in grid.results)
    assert all(r["method"] == c.cell["method"] for r, c in zip(grid.results, calls))
    # the worker computed them: the entries are in the cache, and a second pass submits nothing
    assert len(list((Path(os.environ["LMVAE_CACHE"]) / "benchmark").rglob("*.pt"))) == 2
    again = run_grid(calls, "tcp://127.0.0.1:9", progress=False)  # nothing to submit: no scheduler needed
    assert not again.failures and len(again.results) == 2
    assert time.time() - t0 < 60


def test_unreachable_scheduler_names_todays_commands(monkeypatch):
    import dask

    from lmvae_core.results.cluster import dask_client

    address = f"tcp://127.0.0.1:{free_port()}"
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        with pytest.raises(ConnectionError) as err:
            with dask_client(address):
                pass
    message = str(err.value)
    assert f"dask scheduler --port {address.rsplit(':', 1)[1]}" in message
    assert f"dask worker {address} --nthreads 1" in message
    assert "dask-scheduler" not in message and "dask-worker" not in message
