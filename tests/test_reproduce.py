"""The reproduction pipeline on two tiny notebooks: one fails, the other still runs and is summarised."""
import json
import os

import nbformat
import pytest

from lmvae_core.reproduce import reproduce


def write_notebook(path, body: str):
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('profile = "auto"\nout_dir = None\nprogress = True')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_failing_notebook_is_reported_and_the_others_still_run(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    write_notebook(nbs / "00_mixture_of_vaes.ipynb", "raise ValueError('boom')")
    write_notebook(nbs / "01_lmvae.ipynb", """
from lmvae_core.results import Outputs, Claim, AtLeast
Outputs(out_dir + '/01_lmvae').claims([Claim('runs', 'yes', 1.0, AtLeast(0.5), profile, kind='sanity')])
""")
    lines = []
    results = reproduce("smoke", out=str(tmp_path / "figs"), executed_dir=str(tmp_path / "executed"),
                        notebook_dir=nbs, echo=lambda *a, **k: lines.append(" ".join(map(str, a))))
    assert [r.status for r in results] == ["failed", "ok"]
    assert "ValueError" in results[0].error and "boom" in results[0].error
    assert (tmp_path / "executed" / "00_mixture_of_vaes.ipynb").exists()
    assert results[1].verdicts == {"reproduced": 1}
    info = json.loads((tmp_path / "figs" / "01_lmvae" / "run_info.json").read_text())
    assert info["profile"] == "smoke"
    summary = json.loads((tmp_path / "executed" / "summary.json").read_text())
    assert [s["status"] for s in summary] == ["failed", "ok"]
    assert any("executed notebook" in line for line in lines)


def test_in_place_run_keeps_outputs_but_pins_no_parameters(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    write_notebook(nbs / "00_mixture_of_vaes.ipynb", "print('ran with', profile)")
    results = reproduce("smoke", out=str(tmp_path / "figs"), in_place=True, notebook_dir=nbs,
                        executed_dir=str(tmp_path / "executed"), echo=lambda *a, **k: None)
    assert results[0].status == "ok"
    nb = nbformat.read(nbs / "00_mixture_of_vaes.ipynb", as_version=4)
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    assert "ran with smoke" in nb.cells[-1].outputs[0]["text"]
    assert "input_path" not in nb.metadata["papermill"] and "output_path" not in nb.metadata["papermill"]


def test_committed_notebook_keeps_no_machine_path_and_no_widget_notice(tmp_path):
    from lmvae_core.results.notebook_outputs import clean_for_commit

    path = tmp_path / "nb.ipynb"
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("stream", name="stderr", text=f"{tmp_path}/.venv/tqdm/auto.py:21: "
                                           "TqdmWarning: IProgress not found. Please update jupyter"),
                    nbformat.v4.new_output("stream", name="stdout", text=f"out={tmp_path}/figures/00\n"),
                    nbformat.v4.new_output("execute_result", data={"text/plain": f"'{tmp_path}/figures'"})]
    nb.cells = [cell]
    nb.metadata["papermill"] = {"input_path": str(path), "output_path": str(path),
                                "parameters": {"data_root": "/datasets", "profile": "quick"}}
    nbformat.write(nb, path)
    clean_for_commit(path, repo=tmp_path)
    nb = nbformat.read(path, as_version=4)
    outputs = nb.cells[0].outputs
    assert [o["output_type"] for o in outputs] == ["stream", "execute_result"]  # the widget notice is gone
    assert outputs[0]["text"] == "out=figures/00\n" and outputs[1]["data"]["text/plain"] == "'figures'"
    assert nb.metadata["papermill"] == {"parameters": {"profile": "quick"}}


def cleaned(tmp_path, outputs):
    """The outputs of a one-cell notebook after clean_for_commit, as (output_type, name, text or data) triples."""
    from lmvae_core.results.notebook_outputs import clean_for_commit

    path = tmp_path / "nb.ipynb"
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("stream", name=name, text=text) if kind == "stream"
                    else nbformat.v4.new_output(kind, data=text) for kind, name, text in outputs]
    nb.cells = [cell]
    nbformat.write(nb, path)
    clean_for_commit(path, repo=tmp_path / "repo")
    return [(o["output_type"], o.get("name"), o["text"] if "text" in o else dict(o["data"]))
            for o in nbformat.read(path, as_version=4).cells[0].outputs]


def test_a_progress_bar_is_committed_at_its_final_state(tmp_path):
    updates = ["\rtrain:   0%|          | 0/4 [00:00<?, ?it/s]", "\rtrain:  50%|#####     | 2/4 [00:01<00:01]",
               "\rtrain: 100%|##########| 4/4 [00:02<00:00] \rtrain: 100%|##########| 4/4 [00:02<00:00, loss=1.5]",
               "\n", "done\n"]
    assert cleaned(tmp_path, [("stream", "stderr", u) for u in updates]) == [
        ("stream", "stderr", "train: 100%|##########| 4/4 [00:02<00:00, loss=1.5]\ndone\n")]


def test_a_bar_that_clears_itself_leaves_no_empty_stderr(tmp_path):
    """leave=False: tqdm blanks the line with spaces and returns; the next bar then writes over the same line."""
    inner = ["\rtask 1:   0%|     | 0/9", "\rtask 1: 100%|#####| 9/9", "\r                        ", "\r"]
    assert cleaned(tmp_path, [("stream", "stderr", u) for u in inner]) == []
    after = inner + ["\rtask 2: 100%|#####| 9/9", "\n"]
    assert cleaned(tmp_path, [("stream", "stderr", u) for u in after]) == [
        ("stream", "stderr", "task 2: 100%|#####| 9/9\n")]
    empty = [("stream", "stderr", ""), ("stream", "stdout", "kept\n"), ("stream", "stderr", "\n")]
    assert cleaned(tmp_path, empty) == [("stream", "stdout", "kept\n")]


def test_a_bar_interleaved_with_printed_lines_ends_as_one_line_after_them(tmp_path):
    outputs = [("stream", "stderr", "\rgrid:   0%| | 0/2"), ("stream", "stderr", "\rgrid:  50%|#| 1/2"),
               ("stream", "stdout", "run a: 3.0 s\n"), ("stream", "stderr", "\rgrid: 100%|##| 2/2"),
               ("stream", "stdout", "run b: 4.0 s\n"), ("stream", "stderr", "\n")]
    assert cleaned(tmp_path, outputs) == [("stream", "stdout", "run a: 3.0 s\nrun b: 4.0 s\n"),
                                          ("stream", "stderr", "grid: 100%|##| 2/2\n")]


def test_warnings_go_with_their_source_line_and_errors_stay(tmp_path):
    venv = f"{tmp_path}/venv/lib/python3.11/site-packages"
    text = (f"{venv}/tqdm/auto.py:21: TqdmWarning: IProgress not found. Please update jupyter and ipywidgets.\n"
            "  from .autonotebook import tqdm as notebook_tqdm\n"
            "\rrefs:   0%| | 0/3lmvae_core/metrics/fid.py:149: LinAlgWarning: Matrix is singular.\n"
            "  root = linalg.sqrtm(s_a @ s_b)\n\rrefs: 100%|###| 3/3\n"
            f"{venv}/distributed/client.py:3429: UserWarning: Sending large graph of size 12.79 MiB.\n"
            "This may cause some slowdown.\nSee also https://docs.dask.org for more information.\n  warnings.warn(\n"
            "Traceback (most recent call last):\n"
            f'  File "{venv}/distributed/client.py", line 3, in f\n'
            "ValueError: bad input: x.py:1: not a warning\n")
    assert cleaned(tmp_path, [("stream", "stderr", text)]) == [("stream", "stderr", (
        "refs: 100%|###| 3/3\nTraceback (most recent call last):\n"
        '  File ".../site-packages/distributed/client.py", line 3, in f\n'
        "ValueError: bad input: x.py:1: not a warning\n"))]


def test_machine_paths_are_shortened_and_data_other_than_text_is_untouched(tmp_path):
    png = "iVBORw0KGgo/tmp/AAAA"  # base64 may hold '/tmp/': only text is rewritten
    outputs = [("stream", "stdout", f"wrote {tmp_path}/repo/figures/00/a.png, cache /tmp/lmvae-cache/x.pt, "
                "data /home/alice/datasets/mnist, /root/.cache/torch, "
                "/usr/lib/python3/dist-packages/scipy/linalg.py\n"),
               ("display_data", None, {"image/png": png, "text/plain": "<Figure at /tmp/f.png>"})]
    assert cleaned(tmp_path, outputs) == [
        ("stream", "stdout", "wrote figures/00/a.png, cache .../lmvae-cache/x.pt, data ~/datasets/mnist, "
         "~/.cache/torch, .../dist-packages/scipy/linalg.py\n"),
        ("display_data", None, {"image/png": png, "text/plain": "<Figure at .../f.png>"})]


def test_an_error_keeps_its_traceback_without_machine_paths(tmp_path):
    from lmvae_core.results.notebook_outputs import clean_for_commit

    path = tmp_path / "nb.ipynb"
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [nbformat.v4.new_output("error", ename="ValueError", evalue="boom", traceback=[
        "\x1b[0;31mValueError\x1b[0m Traceback (most recent call last)",
        f"File \x1b[0;32m{tmp_path}/repo/lmvae_core/x.py:3\x1b[0m, in \x1b[0;36mf\x1b[0m()",
        "File \x1b[0;32m/home/alice/env/lib/python3.11/site-packages/torch/nn/modules/module.py:9\x1b[0m"])]
    nb.cells = [cell]
    nbformat.write(nb, path)
    clean_for_commit(path, repo=tmp_path / "repo")
    out = nbformat.read(path, as_version=4).cells[0].outputs
    assert [o["output_type"] for o in out] == ["error"] and out[0]["evalue"] == "boom"
    assert out[0]["traceback"] == ["\x1b[0;31mValueError\x1b[0m Traceback (most recent call last)",
                                   "File \x1b[0;32mlmvae_core/x.py:3\x1b[0m, in \x1b[0;36mf\x1b[0m()",
                                   "File \x1b[0;32m.../site-packages/torch/nn/modules/module.py:9\x1b[0m"]


def test_summary_has_no_verdict_for_a_failing_notebook_only_this_runs_claims(tmp_path):
    """Claims tables left by an earlier run are never reported: the failing notebook shows its error instead,
    and a notebook that ran but wrote no claims this time shows none."""
    import io

    from lmvae_core.reproduce import summary_table

    nbs, figs = tmp_path / "notebooks", tmp_path / "figs"
    nbs.mkdir()
    write_notebook(nbs / "00_mixture_of_vaes.ipynb", "print('training')\nraise RuntimeError('diverged\\nat step 3')")
    write_notebook(nbs / "01_lmvae.ipynb", "print('ran, wrote nothing')")
    for name in ("00_mixture_of_vaes", "01_lmvae"):  # an older run's verdicts
        (figs / name).mkdir(parents=True)
        (figs / name / "claims.csv").write_text("claim,verdict\nold,reproduced\nold2,reproduced\n")
    stream = io.StringIO()
    results = reproduce("smoke", out=str(figs), executed_dir=str(tmp_path / "executed"), notebook_dir=nbs,
                        echo=lambda *a, **k: None, stream=stream)
    assert [r.status for r in results] == ["failed", "ok"]
    assert results[0].verdicts == {} and results[1].verdicts == {}
    assert results[0].error == "RuntimeError: diverged"
    table = summary_table(results)
    assert "reproduced" not in table
    failed_line = next(line for line in table.splitlines() if line.startswith("00_mixture_of_vaes"))
    assert "failed" in failed_line and "RuntimeError: diverged" in failed_line
    assert str(tmp_path / "executed" / "00_mixture_of_vaes.ipynb") in table
    # the kernel's output and a status line per cell reached the stream while the notebooks ran
    out = stream.getvalue()
    assert "training" in out and "ran, wrote nothing" in out and "[01_lmvae cell 2/" in out


def test_estimate_of_the_rest_from_the_previous_runs_cell_times():
    import io

    import nbformat

    from lmvae_core.progress import CellReporter

    stream = io.StringIO()
    reporter = CellReporter("nb", stream, cell_times=[1.0, 10.0, 100.0])
    reporter(nbformat.v4.new_markdown_cell("## 2. Training"), 0, 4)  # 4 cells: papermill injected one
    reporter(nbformat.v4.new_code_cell("train(model)"), 2, 4)
    line = stream.getvalue().strip()
    assert line.startswith("[nb cell 3/4, 0:00:00 elapsed, about 0:01:50 left")
    assert "2. Training" in line and line.endswith("train(model)")


def test_cold_run_starts_from_an_empty_cache_and_its_time_survives_a_warm_run(tmp_path, monkeypatch):
    """--cold points the kernels at a new, empty cache and records cold_seconds; a later warm run keeps it."""
    monkeypatch.setenv("LMVAE_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("LMVAE_CACHE", str(tmp_path / "previous-cache"))
    nbs, figs = tmp_path / "notebooks", tmp_path / "figs"
    nbs.mkdir()
    write_notebook(nbs / "00_mixture_of_vaes.ipynb", """
import os, pathlib
cache = pathlib.Path(os.environ['LMVAE_CACHE'])
print('cache', cache, 'entries', len(list(cache.iterdir())) if cache.exists() else 0)
pathlib.Path(out_dir, '00_mixture_of_vaes').mkdir(parents=True, exist_ok=True)
""")
    run = lambda cold: reproduce("smoke", out=str(figs), executed_dir=str(tmp_path / "executed"),  # noqa: E731
                                 notebook_dir=nbs, echo=lambda *a, **k: None, cold=cold)
    assert run(True)[0].status == "ok"
    assert os.environ["LMVAE_CACHE"] == str(tmp_path / "previous-cache")  # the caller's cache is back
    out = nbformat.read(tmp_path / "executed" / "00_mixture_of_vaes.ipynb", as_version=4).cells[-1].outputs[0]["text"]
    assert "previous-cache" not in out and str(tmp_path / "work" / "cold-cache") in out and "entries 0" in out
    assert list((tmp_path / "work" / "cold-cache").iterdir()) == []  # the cold run deleted its cache
    cold = json.loads((figs / "00_mixture_of_vaes" / "run_info.json").read_text())
    assert cold["cold_seconds"] == cold["seconds"] and cold["cold_executor"] == "serial"
    assert run(False)[0].status == "ok"
    warm = json.loads((figs / "00_mixture_of_vaes" / "run_info.json").read_text())
    assert warm["cold_seconds"] == cold["cold_seconds"] and warm["finished"] >= cold["finished"]


def test_cold_cache_is_deleted_however_the_run_ends_and_orphans_go_at_the_next_cold_run(tmp_path, monkeypatch):
    """The cold cache goes when the run stops with an error too (and the caller's cache comes back); keep_cold_cache
    keeps it; a new cold run deletes the caches of killed runs (owner gone, or no owner) but not live or foreign ones."""
    import socket
    import subprocess
    import sys

    from lmvae_core import reproduce as rep

    monkeypatch.setenv("LMVAE_WORK", str(tmp_path / "work"))
    monkeypatch.setenv("LMVAE_CACHE", str(tmp_path / "previous-cache"))
    root = tmp_path / "work" / "cold-cache"
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    write_notebook(nbs / "00_mixture_of_vaes.ipynb", """
import os, pathlib
pathlib.Path(os.environ['LMVAE_CACHE'], 'entry.pt').write_bytes(b'x' * 1000)
""")
    run = lambda **kw: reproduce("smoke", out=str(tmp_path / "figs"), executed_dir=str(tmp_path / "executed"),  # noqa: E731
                                 notebook_dir=nbs, echo=lambda *a, **k: None, cold=True, **kw)

    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rep, "error_line", broken)
    write_notebook(nbs / "01_lmvae.ipynb", "raise RuntimeError('boom')")
    with pytest.raises(KeyboardInterrupt):
        run()
    assert list(root.iterdir()) == [] and os.environ["LMVAE_CACHE"] == str(tmp_path / "previous-cache")
    (nbs / "01_lmvae.ipynb").unlink()

    kept = run(keep_cold_cache=True)
    assert kept[0].status == "ok"
    (folder,) = [p for p in root.iterdir() if p.is_dir()]
    assert [p.name for p in folder.iterdir()] == ["entry.pt"] and rep._owner_file(folder).is_file()
    with pytest.raises(ValueError, match="cold"):
        reproduce("smoke", notebook_dir=nbs, keep_cold_cache=True)

    # the kept folder's owner (this process) still runs: it stays; orphans go
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    for name, owner in (("dead", f"{dead.stdout.strip()}@{host}"), ("no-owner", None),
                        ("live", f"{os.getpid()}@{host}"), ("foreign", f"1@{host}-elsewhere")):
        (root / name).mkdir()
        if owner:
            rep._owner_file(root / name).write_text(owner)
    assert sorted(p.name for p in rep.orphan_cold_caches(root)) == ["dead", "no-owner"]
    new = rep.new_cold_cache(echo=lambda *a, **k: None)
    assert rep.new_cold_cache(echo=lambda *a, **k: None) != new  # two in the same second get their own folders
    assert {folder.name, "live", "foreign", new.name} <= {p.name for p in root.iterdir() if p.is_dir()}
    assert not (root / "dead").exists() and not (root / "no-owner").exists()
    assert not (root / "dead.owner").exists() and list(new.iterdir()) == [] and rep._owner_file(new).is_file()
