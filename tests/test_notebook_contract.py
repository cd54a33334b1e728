"""Every notebook keeps the contract of the spec: a papermill parameters cell first, no pinned profile,
and cell sources in sync with their readable sources in notebooks/src/."""
import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("0*.ipynb"))
REQUIRED = ("profile", "seed", "device", "data_root", "out_dir")


def build_module():
    spec = importlib.util.spec_from_file_location("build_notebooks", ROOT / "tools" / "build_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_all_six_notebooks_exist():
    assert [p.stem[:2] for p in NOTEBOOKS] == ["00", "01", "02", "03", "04", "05"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_first_and_nothing_pinned(path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    params = code[0]
    assert "parameters" in params.metadata.get("tags", [])
    names = {line.split("=")[0].strip() for line in params.source.splitlines() if "=" in line}
    assert set(REQUIRED) <= names
    assert 'os.environ.get("LMVAE_PROFILE", "auto")' in params.source
    # papermill skips a parameters line with a second '=' (e.g. in a trailing comment)
    assert all(line.count("=") <= 1 for line in params.source.splitlines() if not line.lstrip().startswith("#"))
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    assert not any(o.get("output_type") == "error" for c in code for o in c.get("outputs", []))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_matches_its_source(path):
    cells = build_module().parse((ROOT / "notebooks" / "src" / f"{path.stem}.py").read_text())
    nb = nbformat.read(path, as_version=4)
    assert [c.source for c in nb.cells] == [c.source for c in cells]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_opens_with_the_method_and_closes_with_its_deviations(path):
    nb = nbformat.read(path, as_version=4)
    opening, closing = nb.cells[0], nb.cells[-1]
    assert opening.cell_type == "markdown" and "$$" in opening.source  # the method's formulas, in LaTeX
    assert "## Claims this notebook tests" in opening.source
    assert closing.cell_type == "markdown" and closing.source.startswith("## Deviations")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_outputs_are_already_clean(path):
    """What `lmvae reproduce` commits has been through clean_for_commit: cleaning again changes nothing (no warning,
    no bar update, no empty stderr, no machine path is left), and a reader sees no raw progress stream."""
    import copy

    from lmvae_core.results.notebook_outputs import clean_streams

    nb = nbformat.read(path, as_version=4)
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        assert clean_streams(copy.deepcopy(cell.outputs), str(ROOT) + "/") == cell.outputs
        assert not any("\r" in o.get("text", "") for o in cell.outputs)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_holds_what_jupyterlab_writes_on_open(path):
    """JupyterLab 4 rewrites the kernel's display name and the language metadata when the kernel starts: a
    notebook that already holds the same values opens unmodified."""
    meta = nbformat.read(path, as_version=4).metadata
    ipykernel = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    assert meta["kernelspec"] == build_module().KERNELSPEC == ipykernel
    assert meta["language_info"]["name"] == "python" and meta["language_info"]["pygments_lexer"] == "ipython3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_and_source_are_a_jupytext_pair_that_syncs_without_change(path):
    """The notebook declares its pair (notebooks/src/<name>.py, percent format, only tags as cell metadata), and
    what `jupytext --sync` would write from the notebook side reads back as the committed source's cells."""
    import jupytext

    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["jupytext"] == build_module().PAIRING
    written = jupytext.writes(nb, fmt="py:percent")
    assert "papermill" not in written and "execution" not in written  # no run metadata in the source
    again = build_module().parse(written)
    source = build_module().parse((ROOT / "notebooks" / "src" / f"{path.stem}.py").read_text())
    assert [(c.cell_type, c.source, c.metadata) for c in again] == [(c.cell_type, c.source, c.metadata) for c in source]
