"""Build notebooks/*.ipynb from their readable sources notebooks/src/*.py, a jupytext pair.

The sources are jupytext's percent format ('# %%' code cells, '# %% [markdown]' cells of '# '-prefixed lines,
'# %% tags=["parameters"]'), read by jupytext itself, and every notebook declares the pair in its metadata
(`PAIRING`): with jupytext installed (the dev extra), `jupytext --sync notebooks/NN.ipynb` or JupyterLab's jupytext
extension keeps the two in step from either side, and the .py files carry no run metadata (only cell tags).
Building keeps the outputs of an existing notebook whose cell sources are unchanged (with the run's cell metadata
and the notebook's papermill and language metadata), so committed quick-profile outputs survive a rebuild.
Usage: python tools/build_notebooks.py [NAME ...]
"""
import sys
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
PAIRING = {"formats": "ipynb,src//py:percent", "cell_metadata_filter": "tags,-all", "notebook_metadata_filter": "-all"}


def parse(text: str):
    """The cells of a percent-format source (jupytext's reader), with only their tags as metadata."""
    cells = jupytext.reads(text, fmt="py:percent").cells
    for c in cells:
        c.metadata = {"tags": c.metadata["tags"]} if c.metadata.get("tags") else {}
    return cells


# What JupyterLab 4 writes into a notebook when its kernel starts: a notebook that already holds the same
# opens unmodified. The display name is ipykernel's; language_info is the kernel's reply (Python's version
# included), so an executed notebook's own is kept and one never executed gets this interpreter's.
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def language_info() -> dict:
    return {"codemirror_mode": {"name": "ipython", "version": 3}, "file_extension": ".py",
            "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
            "pygments_lexer": "ipython3", "version": ".".join(map(str, sys.version_info[:3]))}


def build(src: Path) -> Path:
    target = ROOT / "notebooks" / f"{src.stem}.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.cells = parse(src.read_text())
    old_meta = {}
    if target.exists():
        old_nb = nbformat.read(target, as_version=4)
        old_meta = old_nb.metadata
        old = {c.source: c for c in old_nb.cells if c.cell_type == "code"}
        for c in nb.cells:  # an unchanged code cell keeps its outputs and the run's record of it
            if c.cell_type == "code" and c.source in old:
                kept = old[c.source]
                c.outputs, c.execution_count = kept.get("outputs", []), kept.get("execution_count")
                tags = c.metadata.get("tags")  # the source's tags, not the run's
                c.metadata = {k: v for k, v in kept.get("metadata", {}).items() if k != "tags"}
                if tags:
                    c.metadata["tags"] = tags
    nb.metadata.update({k: v for k, v in old_meta.items() if k not in ("kernelspec", "language_info")})
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    nb.metadata["jupytext"] = dict(PAIRING)
    nb.metadata["language_info"] = old_meta.get("language_info") or language_info()
    for i, c in enumerate(nb.cells):
        c["id"] = f"{src.stem[:2]}-{i:02d}"
    nbformat.write(nb, target)
    return target


if __name__ == "__main__":
    names = sys.argv[1:]
    for src in sorted((ROOT / "notebooks" / "src").glob("*.py")):
        if not names or any(src.stem.startswith(n) for n in names):
            print("built", build(src).relative_to(ROOT))
