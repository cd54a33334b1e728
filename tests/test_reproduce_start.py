"""What `lmvae reproduce` says before and while it runs: the projected cost of a long run before anything starts,
and a log without the kernel's TCP warning or the cursor movements of nested progress bars."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lmvae_core import reproduce as R

REPO = Path(__file__).resolve().parents[1]
COST = json.loads((REPO / "benchmarks" / "results" / "paper_cost.json").read_text())
ESC_UP = "\x1b[A"
TCP_WARNING = "without encryption"


# ---- the projected cost --------------------------------------------------------------------------------------------
def test_paper_profile_on_a_cpu_states_its_hours_and_the_faster_choices():
    hours = COST["notebooks"]["04_ocm"]["cpu_hours"]
    message = R.cost_message(["04_ocm"], "paper", "cpu")
    assert "Projected time, profile paper on this CPU" in message
    assert f"{hours:,.0f} h" in message and "days" in message
    assert "more than 12 hours" in message
    gpu = COST["notebooks"]["04_ocm"]["gpu_hours"]
    assert f"a GPU (projected {gpu:,.0f} h" in message
    assert "`--profile quick`" in message
    # with several notebooks, leaving out the costliest with --only is named too
    every = R.cost_message(list(COST["notebooks"]), "paper", "cpu")
    assert f"{COST['total']['cpu_hours']:,.0f} h" in every.splitlines()[-2]  # the total line
    assert "`--only 00,01,02,03,05` leaves out 04_ocm" in every


def test_quick_profile_reads_the_committed_cold_times(tmp_path):
    for name, seconds in (("00_mixture_of_vaes", 1800.0), ("01_lmvae", 5400.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "run_info.json").write_text(json.dumps(
            {"profile": "quick", "seconds": 10.0, "cold_seconds": seconds, "cold_cpus": 2}))
    message = R.cost_message(["00_mixture_of_vaes", "01_lmvae", "02_lifelong_generative_modeling"], "quick", "cpu",
                             figures=tmp_path)
    lines = message.splitlines()
    assert "2-core CPU" in lines[0]
    assert lines[1].split()[-2:] == ["30", "min"] and lines[2].split()[-2:] == ["1.5", "h"]
    assert lines[3].endswith("no estimate")
    assert "2.0 h (notebooks without an estimate not counted)" in lines[4]
    assert "more than 12 hours" not in message  # a short run gets the projection, no warning
    long = {"00_mixture_of_vaes": 13 * 3600.0}
    (tmp_path / "00_mixture_of_vaes" / "run_info.json").write_text(json.dumps(
        {"profile": "quick", "cold_seconds": long["00_mixture_of_vaes"]}))
    message = R.cost_message(["00_mixture_of_vaes", "01_lmvae"], "quick", "cpu", figures=tmp_path)
    assert "more than 12 hours" in message and "`--only 01` leaves out 00_mixture_of_vaes" in message
    assert R.cost_message(["00_mixture_of_vaes"], "smoke", "cpu") == ""


def test_paper_projection_on_a_gpu_uses_gpu_hours():
    message = R.cost_message(["05_benchmark"], "paper", "cuda")
    assert f"{COST['notebooks']['05_benchmark']['gpu_hours']:,.1f} h" in message
    assert "on a GPU" in message and "a GPU (projected" not in message


def test_reproduce_prints_the_projection_before_it_runs_anything(monkeypatch, capsys):
    """`lmvae reproduce --profile paper --only 04` on a CPU: the projected hours come first, before the data check
    (which here stops the run, so nothing trains)."""
    from lmvae_core import cli
    from lmvae_core.experiments import needs

    events = []

    def stop_at_data_check(*args, **kwargs):
        events.append("data check")
        raise ValueError("stopped at the data check (test)")

    monkeypatch.setattr(R, "run_device", lambda: "cpu")
    monkeypatch.setattr(needs, "ensure", stop_at_data_check)
    assert cli.main(["reproduce", "--profile", "paper", "--only", "04"]) == 2
    out = capsys.readouterr()
    assert events == ["data check"]
    assert "Projected time, profile paper on this CPU" in out.out
    assert f"{COST['notebooks']['04_ocm']['cpu_hours']:,.0f} h" in out.out and "more than 12 hours" in out.out
    assert "stopped at the data check" in out.err


# ---- a quiet log ---------------------------------------------------------------------------------------------------
def test_plain_progress_refuses_nested_bars(monkeypatch):
    """The control for the log test below: tqdm's nested bars do write ESC[A; plain mode shows only the outer bar."""
    from lmvae_core import bars

    def draw() -> str:
        buf = io.StringIO()
        for _ in bars.bar(range(2), desc="outer", file=buf, mininterval=0):
            for _ in bars.bar(range(2), desc="inner", file=buf, leave=False, mininterval=0):
                pass
        return buf.getvalue()

    monkeypatch.setenv(bars.PLAIN_ENV, "0")
    assert ESC_UP in draw()
    monkeypatch.setenv(bars.PLAIN_ENV, "1")
    text = draw()
    assert ESC_UP not in text and "outer" in text and "inner" not in text
    assert ESC_UP not in draw()  # the closed outer bar no longer counts as open


NOTEBOOK = [
    ("parameters", "profile = 'smoke'\nprogress = True"),
    ("", """\
        import torch
        from lmvae_core.bars import bar
        from lmvae_core.data import DataConfig, load_split
        from lmvae_core.models import VAE, VAEConfig
        from lmvae_core.metrics import iwae_log_likelihood
        from lmvae_core.training import TrainConfig, train

        torch.set_num_threads(1)
        x = load_split("mnist", "test", DataConfig(source="sample")).x[:256]
        vae = VAE(VAEConfig(hidden=(32,), latent_dim=4))
        for task in bar(range(2), desc="tasks"):          # an outer bar, like a grid's
            train(vae, x, TrainConfig(epochs=2, batch_size=64, progress=progress))  # nested training bars
            print("log-lik.", iwae_log_likelihood(vae, x[:64].bernoulli(), k=4, batch_size=16, progress=progress).mean().item())
        """),
]


def test_reproduce_log_has_no_tcp_warning_and_no_cursor_movement(tmp_path):
    """A smoke-sized notebook with nested bars through reproduce(), in a fresh process whose output goes to a file
    (not a terminal): the log shows the run, and neither ipykernel's TCP warning nor ESC[A."""
    import nbformat

    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(textwrap.dedent(src), metadata={"tags": [tag]} if tag else {})
                for tag, src in NOTEBOOK]
    nbformat.write(nb, nb_dir / "00_mixture_of_vaes.ipynb")  # reproduce runs the notebooks it knows by name
    script = (f"from lmvae_core.reproduce import reproduce\n"
              f"r = reproduce('smoke', notebook_dir={str(nb_dir)!r}, executed_dir={str(tmp_path / 'executed')!r}, "
              f"out={str(tmp_path / 'out')!r})\n"
              f"raise SystemExit(0 if all(x.status == 'ok' for x in r) else 1)\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("LMVAE_PLAIN_PROGRESS", None)
    log = tmp_path / "reproduce.log"
    with log.open("w") as f:
        proc = subprocess.run([sys.executable, "-c", script], stdout=f, stderr=subprocess.STDOUT, env=env,
                              cwd=tmp_path, timeout=300)
    text = log.read_text()
    assert proc.returncode == 0, text[-3000:]
    assert "log-lik." in text and "tasks" in text, text[-3000:]  # the kernel's output and its bar reached the log
    assert TCP_WARNING not in text, text[-3000:]
    assert ESC_UP not in text and "\x1b[" not in text, repr(text[-3000:])
    assert "LMVAE_PLAIN_PROGRESS" not in os.environ  # reproduce() leaves the caller's environment as it was


def test_text_bars_where_reproduce_asks_for_them_and_tqdm_auto_elsewhere(monkeypatch):
    """With ipywidgets installed, tqdm.auto draws widgets in a kernel; an executed notebook would keep only their first
    frame. The kernels `lmvae reproduce` runs get text bars ($LMVAE_TEXT_BARS=1), every other caller tqdm.auto."""
    import tqdm.auto
    import tqdm.std

    from lmvae_core import bars

    monkeypatch.setenv(bars.PLAIN_ENV, "0")
    monkeypatch.setattr(tqdm.auto, "tqdm", type("Widget", (tqdm.std.tqdm,), {}))  # what a kernel with widgets gets
    monkeypatch.setenv(bars.TEXT_ENV, "1")
    assert type(bars.bar(range(1), file=io.StringIO())) is tqdm.std.tqdm
    monkeypatch.delenv(bars.TEXT_ENV)
    assert type(bars.bar(range(1), file=io.StringIO())).__name__ == "Widget"


def test_reproduce_sets_text_bars_for_its_kernels_only(monkeypatch, tmp_path):
    seen = []
    monkeypatch.delenv(R.TEXT_ENV, raising=False)
    monkeypatch.setattr(R, "run_device", lambda: "cpu")

    def execute(*args, **kwargs):
        seen.append(os.environ.get(R.TEXT_ENV))
        raise RuntimeError("stop (test)")

    import papermill

    monkeypatch.setattr(papermill, "execute_notebook", execute)
    R.reproduce("smoke", only="00", out=str(tmp_path), stream=io.StringIO())
    assert seen == ["1"] and R.TEXT_ENV not in os.environ
