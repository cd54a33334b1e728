"""Which executor runs a grid, and the Dask client behind it.

executor (argument wins over the environment):
- None: $LMVAE_DASK_SCHEDULER when set, else serial in this process;
- "serial": in this process, whatever the environment says;
- "local" or "local:N": a dask.distributed LocalCluster on this machine, one single-threaded worker process
  per core (N workers if given); on a CUDA machine one worker per GPU, each seeing only its GPU;
- "tcp://host:port" (any address with "://"): an existing scheduler (`dask scheduler`, dask-jobqueue, ...);
- a distributed.Client: used as it is (and not closed).
"""
from __future__ import annotations

import atexit
import contextlib
import os

ENV_SCHEDULER = "LMVAE_DASK_SCHEDULER"
# Environment a local worker needs to find the same data and cache as the notebook that started it.
FORWARDED_ENV = ("LMVAE_DATA", "LMVAE_CACHE", "LMVAE_WORK", "LMVAE_PROFILE", "LMVAE_OFFLINE", "LMVAE_CHECKPOINT_S")


def resolve_executor(executor=None) -> str | object:
    """'serial', 'local', 'local:N', a scheduler address, or a Client passed through (see module docstring)."""
    if executor is None:
        executor = os.environ.get(ENV_SCHEDULER) or "serial"
    if not isinstance(executor, str):
        if type(executor).__name__ == "Client":
            return executor
        raise TypeError(f"executor must be None, 'serial', 'local', 'local:N', a scheduler address such as "
                        f"'tcp://host:8786' or a distributed.Client, got {executor!r}")
    executor = executor.strip()
    if executor in ("serial", "local") or "://" in executor:
        return executor
    if executor.startswith("local:"):
        n = executor.split(":", 1)[1]
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"executor {executor!r}: expected 'local:N' with N >= 1 workers")
        return executor
    raise ValueError(f"unknown executor {executor!r}; expected None, 'serial', 'local', 'local:N' or a scheduler "
                     f"address such as 'tcp://host:8786' (or set ${ENV_SCHEDULER})")


def is_local(executor) -> bool:
    return isinstance(executor, str) and executor.startswith("local")


def _import_distributed():
    try:
        import distributed
    except ImportError as err:  # a dependency of the package; only a broken install gets here
        raise ImportError("executor other than 'serial' needs dask.distributed: pip install 'dask[distributed]'") \
            from err
    return distributed


def local_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def gpu_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


# Dask's nanny starts every worker with MALLOC_TRIM_THRESHOLD_=65536 (to hand freed memory back to the OS).
# Setting any malloc threshold switches off glibc's adaptive mmap threshold, so every tensor above 128 KiB is
# a fresh mmap, zero-filled page by page and unmapped when freed: the runs of notebook 05's grid spent most of
# their time in the kernel and took several times their serial time on a worker
# (benchmarks/logs/grid/grid_speed_cpu_before_malloc_fix.json; docs/dask.md).
# None keeps the nanny from setting it (distributed.nanny._get_env_variables), and it is also taken out of this
# process's environment, which the workers inherit: an earlier Dask cluster of this process (a nanny sets its
# pre-spawn variables in its own process) or the shell may have put it there. For `dask worker`, see docs/dask.md.
WORKER_CONFIG = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}


def local_cluster(n_workers: int | None = None):
    """One single-threaded worker process per core, or per GPU on a CUDA machine (CUDA_VISIBLE_DEVICES set per
    worker, so each run's device 'cuda' is its own GPU). The dashboard is off: nothing here serves web pages."""
    import dask

    distributed = _import_distributed()
    gpus = gpu_count()
    os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)  # read by glibc at start only: nothing changes for this process
    with dask.config.set(WORKER_CONFIG):  # read when the nannies are made, i.e. here
        if gpus:
            n = min(n_workers or gpus, gpus)
            spec = {f"gpu{i}": {"cls": distributed.Nanny,
                                "options": {"nthreads": 1, "env": {"CUDA_VISIBLE_DEVICES": str(i)},
                                            "silence_logs": 30}}
                    for i in range(n)}
            return distributed.SpecCluster(workers=spec, scheduler={"cls": distributed.Scheduler,
                                                                    "options": {"dashboard_address": None}})
        return distributed.LocalCluster(n_workers=n_workers or local_cores(), threads_per_worker=1, processes=True,
                                        dashboard_address=None)


# The local cluster of each 'local'/'local:N' executor this process started: a notebook runs several grids,
# and starting workers (processes importing torch) costs seconds, so one stays up until shutdown() or exit.
_LOCAL: dict[str, tuple[object, object]] = {}


def _local_client(executor: str):
    cluster, client = _LOCAL.get(executor, (None, None))
    if client is None or client.status != "running":
        distributed = _import_distributed()
        if not _LOCAL:
            # registered after distributed's own exit handlers, so it runs before them (atexit is LIFO)
            atexit.register(shutdown)
        n = int(executor.split(":", 1)[1]) if ":" in executor else None
        cluster = local_cluster(n)
        client = distributed.Client(cluster)
        _LOCAL[executor] = (cluster, client)
    return client


@contextlib.contextmanager
def dask_client(executor):
    """A connected Client for a resolved executor other than 'serial'. A local cluster is reused by later grids
    of this process; a connection to a scheduler is closed after the grid."""
    if not isinstance(executor, str):
        yield executor
        return
    if is_local(executor):
        yield _local_client(executor)
        return
    distributed = _import_distributed()
    try:
        client = distributed.Client(executor)  # waits distributed.comm.timeouts.connect (dask config)
    except OSError as err:
        raise ConnectionError(f"no Dask scheduler answered at {executor!r} (from the executor argument or "
                              f"${ENV_SCHEDULER}): {err}. Start one with `{scheduler_command(executor)}` and workers with "
                              f"`dask worker {executor} --nthreads 1`.") from err
    with client:
        yield client


def scheduler_command(address: str) -> str:
    """The command that starts a scheduler listening where `address` points (Dask's one `dask` command;
    the separate dask-scheduler / dask-worker commands are gone)."""
    port = address.rstrip("/").rsplit(":", 1)[-1]
    return f"dask scheduler --port {port}" if port.isdigit() else "dask scheduler"


def shutdown() -> None:
    """Close the local clusters this process started."""
    while _LOCAL:
        _, (cluster, client) = _LOCAL.popitem()
        client.close()
        cluster.close()
