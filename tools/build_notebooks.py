"""Build notebooks/*.ipynb from their readable sources notebooks/src/*.py (percent format).

Cells start with '# %%' (code), '# %% [markdown]' (markdown lines are '# '-prefixed) or
'# %% tags=["parameters"]'. Building keeps the outputs of an existing notebook whose cell
sources are unchanged, so committed quick-profile outputs survive a rebuild.
Usage: python tools/build_notebooks.py [NAME ...]
"""
import json
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
HEADER = re.compile(r"^# %%(?P<md> \[markdown\])?(?: tags=(?P<tags>\[.*\]))?\s*$")


def parse(text: str):
    cells, current = [], None
    for line in text.splitlines():
        m = HEADER.match(line)
        if m:
            current = {"md": bool(m.group("md")), "tags": json.loads(m.group("tags") or "[]"), "lines": []}
            cells.append(current)
        elif current is not None:
            current["lines"].append(line)
    out = []
    for c in cells:
        body = "\n".join(c["lines"]).strip("\n")
        if c["md"]:
            body = "\n".join(l[2:] if l.startswith("# ") else l.lstrip("#") for l in body.splitlines())
            cell = nbformat.v4.new_markdown_cell(body)
        else:
            cell = nbformat.v4.new_code_cell(body)
        if c["tags"]:
            cell.metadata["tags"] = c["tags"]
        out.append(cell)
    return out


def build(src: Path) -> Path:
    target = ROOT / "notebooks" / f"{src.stem}.ipynb"
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = parse(src.read_text())
    if target.exists():
        old = {c.source: c for c in nbformat.read(target, as_version=4).cells if c.cell_type == "code"}
        for c in nb.cells:
            if c.cell_type == "code" and c.source in old:
                c.outputs, c.execution_count = old[c.source].get("outputs", []), old[c.source].get("execution_count")
    for i, c in enumerate(nb.cells):
        c["id"] = f"{src.stem[:2]}-{i:02d}"
    nbformat.write(nb, target)
    return target


if __name__ == "__main__":
    names = sys.argv[1:]
    for src in sorted((ROOT / "notebooks" / "src").glob("*.py")):
        if not names or any(src.stem.startswith(n) for n in names):
            print("built", build(src).relative_to(ROOT))
