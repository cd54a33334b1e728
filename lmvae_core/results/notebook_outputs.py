"""What an executed notebook keeps when it is committed (`lmvae reproduce --in-place`): its outputs as a reader
sees them, without warnings, progress-bar churn, empty stderr or this machine's paths (`clean_for_commit`)."""
from __future__ import annotations

import re
from pathlib import Path

from .. import paths


# A Python warning as `warnings.showwarning` prints it: "<file>:<line>: <Category>Warning: <message>", the message
# perhaps over several lines, then, where the source is readable, that line indented by two spaces. It may start
# mid-line, after a progress bar's last update. A traceback is never taken for a warning's continuation.
PY_WARNING = re.compile(r"(?:[\w.~+@%/\\-]+\.py|<[^>\n]+>):\d+: \w*Warning: [^\n]*(?:\n|$)"
                        r"(?:(?:(?!  |Traceback)[^\r\n]*\n){0,8}?  [^\n]*(?:\n|$))?")
# Absolute paths that say where this machine keeps things: an installed package's folder, a home, a temporary folder.
MACHINE_PATHS = (
    (re.compile(r"(?<![\w.~/-])/?(?:[\w.~+@%-]+/)*?(site-packages|dist-packages)/"), r".../\1/"),
    (re.compile(r"(?<![\w.~/-])(?:/home/[\w.@+-]+|/Users/[\w.@+-]+|/root)(?=/)"), "~"),
    (re.compile(r"(?<![\w.~/-])/(?:private/)?(?:var/)?tmp/"), ".../"),
)


# A terminal colour code (IPython colours its tracebacks): a path may start right after one.
ANSI_CODE = re.compile(r"(\x1b\[[0-9;]*m)")


def short_paths(text: str, root: str) -> str:
    """`text` with the repository's path made relative and other machine paths shortened (MACHINE_PATHS)."""
    parts = ANSI_CODE.split(text.replace(root, ""))
    for i in range(0, len(parts), 2):  # the text between colour codes
        for pattern, replacement in MACHINE_PATHS:
            parts[i] = pattern.sub(replacement, parts[i])
    return "".join(parts)


def shown_text(text: str) -> str:
    """What a terminal or JupyterLab shows of a stream: each `\r` returns to the line's start and what follows
    overwrites it, so a progress bar's hundreds of updates become its final state. A line that was only ever
    rewritten and ends blank (a `leave=False` bar clearing itself) is dropped with its newline."""
    lines = text.replace("\r\n", "\n").split("\n")
    kept = []
    for i, line in enumerate(lines):
        if "\r" in line:
            shown = ""
            for piece in line.split("\r"):
                shown = piece + shown[len(piece):]
            line = shown.rstrip()
            if not line:
                continue
        kept.append(line + ("\n" if i < len(lines) - 1 else ""))
    return "".join(kept)


def _merge_streams(outputs: list) -> list:
    """Consecutive outputs of one stream joined into one, as JupyterLab shows them."""
    merged = []
    for o in outputs:
        last = merged[-1] if merged else None
        if (o.get("output_type") == "stream" and last is not None and last.get("output_type") == "stream"
                and last["name"] == o["name"]):
            last["text"] += o["text"]
        else:
            merged.append(o)
    return merged


def clean_streams(outputs: list, root: str) -> list:
    """A code cell's outputs as a reader should see them in a committed notebook: stderr without Python
    warnings, each progress bar at its final state (a line left open is moved to the output of the same stream
    that continues or rewrites it, so a bar interleaved with printed lines ends as one line after them), no
    machine paths (in text, text data and tracebacks), and no stream output left empty."""
    outputs = _merge_streams(outputs)
    last_of = {}  # stream name -> its latest output, whose last line may still be rewritten
    for o in outputs:
        if o.get("output_type") != "stream":
            continue
        if o["name"] == "stderr":
            o["text"] = PY_WARNING.sub("", o["text"])
        held = last_of.get(o["name"])
        if held is not None:  # a line left open there is continued (or rewritten) here: it belongs here
            head, newline, tail = held["text"].rpartition("\n")
            held["text"], o["text"] = head + newline, tail + o["text"]
        last_of[o["name"]] = o
    for o in outputs:
        if o.get("output_type") == "stream":
            o["text"] = short_paths(shown_text(o["text"]), root)
        for mime, value in o.get("data", {}).items():
            if isinstance(value, str) and mime.startswith("text/"):
                o["data"][mime] = short_paths(value, root)
        if o.get("output_type") == "error":
            o["traceback"] = [short_paths(line, root) for line in o.get("traceback", [])]
    kept = [o for o in outputs if not (o.get("output_type") == "stream" and not o["text"].strip())]
    return _merge_streams(kept)


def clean_for_commit(path: Path, repo: Path | None = None) -> None:
    """Make a notebook executed in place fit to commit in notebooks/:
    - drop papermill's injected-parameters cell: left there, it would pin `profile` for every later run, nbval's
      smoke run included, whatever LMVAE_PROFILE says;
    - keep of the stream outputs what a reader needs (clean_streams): no warnings, bars at their final state,
      no empty stderr, and the repository's path written as relative, other machine paths shortened;
    - keep no machine path in papermill's metadata (input and output paths, the data root the run was given)."""
    import nbformat

    root = str(repo or paths.repo_root()) + "/"
    nb = nbformat.read(path, as_version=4)
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = clean_streams(cell.outputs, root)
    meta = nb.metadata.get("papermill", {})
    for key in ("input_path", "output_path"):
        meta.pop(key, None)
    meta.get("parameters", {}).pop("data_root", None)
    nbformat.write(nb, path)
