"""What the README, docs/ and benchmarks/README.md tell a user to type works as written; the pages are in step
with `lmvae readme`, their links resolve, and the README stays a front page.

The code blocks are read by pytest-codeblocks (`pytest_codeblocks.extract_from_file`), with its markers:
`<!--pytest-codeblocks:cont-->` joins a block to the one before it, and `<!--pytest.mark.skip(reason=...)-->` marks
a block that needs a cluster, a GPU or a network. The plugin's own runner (`pytest --codeblocks README.md`) would
execute the shell blocks as written, i.e. `make reproduce` (hours); this file runs them as follows instead:

- python: run on the committed smoke sample, in a temporary folder, with the substitutions of SMOKE (CPU instead
  of CUDA, one epoch, few importance samples); each substitution must still apply, so a changed snippet fails here
  until SMOKE follows it. A marked python block is compiled, its `lmvae_core` imports are run, and every attribute,
  function and keyword it uses from them must exist.
- bash: every command's executable must be on PATH (the virtual environment's bin first, where `make install`
  puts `lmvae` and `dask`); `lmvae` and `dask` subcommands run with `--help`; `lmvae` arguments are parsed by the
  real parser (`lmvae_core.cli.build_parser`); `make` targets are dry-run (`make -n`). Shell blocks are never run
  as written, marked or not: the marker says why a block cannot be (a cluster, a network).
- yaml: parsed, and every key path must be one of Dask's configuration keys.
- bibtex: the papers' entries name the same DOIs and arXiv ids as CITATION.cff's references.
- Blocks without a language (the layout tree) are text.

The generated sections (all written by `lmvae readme`) hold no code blocks: if one ever does, its generator must
write the markers too.
"""
from __future__ import annotations

import ast
import functools
import inspect
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_codeblocks  # a dev dependency (pyproject.toml): `make install` puts it in .venv


REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")), REPO / "benchmarks" / "README.md"]
BIN = str(Path(sys.executable).parent)
PATH = BIN + os.pathsep + os.environ.get("PATH", "")
SHELL, PYTHON, YAML, TEXT = ("bash", "sh", "shell", "console"), ("python", "py"), ("yaml", "yml"), ("", "text")
BIBTEX = ("bibtex", "bib")
README_MAX_LINES = 150  # issue 39: the README is a front page; the rest lives in docs/

# README snippet -> its smoke-sized variant (see the module docstring)
SMOKE = [
    ('DataConfig(device="cuda")', 'DataConfig(source="sample", device="cpu")'),
    ('.to("cuda")', '.to("cpu")'),
    ('device="cuda"', 'device="cpu"'),
    ("epochs=5", "epochs=1"),
    ("k=5000", "k=10"),
]


def blocks():
    out = []
    for doc in DOCS:
        for block in pytest_codeblocks.extract_from_file(doc):
            syntax = (block.syntax or "").strip().split()[0].lower() if (block.syntax or "").strip() else ""
            out.append(pytest.param(doc, block, syntax, id=f"{doc.relative_to(REPO)}:{block.lineno}-{syntax or 'text'}"))
    return out


BLOCKS = blocks()


def marked(block) -> bool:
    return any(m.startswith("pytest.mark.skip") for m in block.marks)


def test_blocks_found_and_known():
    """Every block has a language this file checks; the README's recipes are all there."""
    syntaxes = {p.values[2] for p in BLOCKS}
    assert syntaxes <= set(SHELL + PYTHON + YAML + TEXT + BIBTEX), syntaxes
    assert len([p for p in BLOCKS if p.values[2] in SHELL]) >= 4
    assert len([p for p in BLOCKS if p.values[2] in PYTHON]) >= 2


# ---- shell -------------------------------------------------------------------------------------------------------
def commands(code: str) -> list[list[str]]:
    """The commands of a shell block: continuation lines joined, comments dropped, leading VAR=value left out."""
    out = []
    for line in code.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        while words and "=" in words[0] and not words[0].startswith("-") \
                and words[0].split("=", 1)[0].isidentifier():
            words = words[1:]
        if words:
            out.append(words)
    return out


@functools.lru_cache(maxsize=None)
def runs_help(*argv: str) -> tuple[int, str]:
    exe = shutil.which(argv[0], path=PATH)
    proc = subprocess.run([exe, *argv[1:], "--help"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PATH": PATH, "OMP_NUM_THREADS": "1"})
    return proc.returncode, proc.stdout + proc.stderr


def check_command(words: list[str]) -> None:
    exe = words[0]
    assert shutil.which(exe, path=PATH), f"`{exe}` is not installed (PATH: {PATH})"
    if exe == "lmvae":
        from lmvae_core.cli import build_parser

        try:
            build_parser().parse_args(words[1:])
        except SystemExit as err:
            raise AssertionError(f"`{shlex.join(words)}`: the lmvae parser refuses these arguments") from err
        rc, out = runs_help("lmvae", words[1])
        assert rc == 0, f"`lmvae {words[1]} --help` failed:\n{out}"
    elif exe == "dask":
        rc, out = runs_help("dask", words[1])
        assert rc == 0 and "Usage" in out, f"`dask {words[1]} --help` failed: no such subcommand?\n{out}"
    elif exe == "make":
        targets = [w for w in words[1:] if not w.startswith("-")]
        proc = subprocess.run(["make", "-n", "-C", str(REPO), *targets], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, f"`{shlex.join(words)}`: {proc.stderr}"


@pytest.mark.parametrize("doc, block, syntax", [p for p in BLOCKS if p.values[2] in SHELL])
def test_shell_block(doc, block, syntax):
    cmds = commands(block.code)
    assert cmds, "an empty shell block"
    for words in cmds:
        check_command(words)


def test_commands_parser():
    assert commands("A=1 B=2 \\\n  lmvae reproduce --only 05   # comment\nmake test\n") == \
        [["lmvae", "reproduce", "--only", "05"], ["make", "test"]]


# ---- python ------------------------------------------------------------------------------------------------------
def smoke_variant(code: str) -> str:
    for old, new in SMOKE:
        code = code.replace(old, new)
    return code


def test_smoke_substitutions_still_apply():
    code = "".join(p.values[1].code for p in BLOCKS if p.values[2] in PYTHON and not marked(p.values[1]))
    for old, _ in SMOKE:
        assert old in code, f"SMOKE substitution {old!r} no longer matches a README snippet: update SMOKE"


def check_names(code: str) -> None:
    """Run the block's lmvae_core imports; every attribute, function and keyword it takes from them must exist."""
    tree = ast.parse(code)
    ns: dict = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("lmvae_core"):
            exec(compile(ast.Module([node], []), "<readme>", "exec"), ns)
        elif isinstance(node, ast.Import) and all(a.name.startswith("lmvae_core") for a in node.names):
            exec(compile(ast.Module([node], []), "<readme>", "exec"), ns)
    ns.pop("__builtins__", None)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ns \
                and inspect.ismodule(ns[node.value.id]):
            assert hasattr(ns[node.value.id], node.attr), f"{node.value.id}.{node.attr} does not exist"
        if isinstance(node, ast.Call):
            fn = None
            if isinstance(node.func, ast.Name) and node.func.id in ns:
                fn = ns[node.func.id]
            elif isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name) \
                    and inspect.ismodule(ns.get(node.func.value.id)):
                fn = getattr(ns[node.func.value.id], node.func.attr)
            if fn is None or not callable(fn):
                continue
            params = inspect.signature(fn).parameters
            if any(p.kind is p.VAR_KEYWORD for p in params.values()):
                continue
            for kw in node.keywords:
                assert kw.arg is None or kw.arg in params, f"{getattr(fn, '__name__', fn)}() takes no {kw.arg}="


@pytest.mark.parametrize("doc, block, syntax", [p for p in BLOCKS if p.values[2] in PYTHON])
def test_python_block(doc, block, syntax, tmp_path, monkeypatch):
    compile(block.code, f"{doc.name}:{block.lineno}", "exec")
    check_names(block.code)
    if marked(block):
        return  # needs a cluster or a GPU: checked for its names only
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LMVAE_OFFLINE", "1")
    exec(compile(smoke_variant(block.code), f"{doc.name}:{block.lineno}", "exec"), {"__name__": "__readme__"})


# ---- yaml --------------------------------------------------------------------------------------------------------
def key_paths(tree: dict, prefix: str = "") -> list[str]:
    out = []
    for k, v in tree.items():
        out += key_paths(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]
    return out


@pytest.mark.parametrize("doc, block, syntax", [p for p in BLOCKS if p.values[2] in YAML])
def test_yaml_block(doc, block, syntax):
    """The README's Dask config snippet: valid YAML whose sections are Dask's own configuration keys."""
    import dask
    import distributed  # noqa: F401  (loads distributed's defaults into dask.config)
    import yaml

    tree = yaml.safe_load(block.code)
    assert isinstance(tree, dict) and tree
    for path in key_paths(tree):
        section = path.rsplit(".", 1)[0]
        assert isinstance(dask.config.get(section, default=None), dict), f"{section} is not a Dask config section"


# ---- bibtex ------------------------------------------------------------------------------------------------------
def identifiers(text: str) -> set[str]:
    """DOIs and arXiv ids named in a text (as BibTeX fields, CFF values or links)."""
    import re

    dois = {d.rstrip(".,}") for d in re.findall(r"\b10\.\d{4,}/[^\s,}\")]+", text)}
    return dois | set(re.findall(r"\b\d{4}\.\d{4,5}\b", text))


def test_bibtex_names_the_papers_of_citation_cff_and_of_the_links():
    import yaml

    bib = [p.values[1].code for p in BLOCKS if p.values[2] in BIBTEX]
    assert len(bib) == 1, "the README has one BibTeX block"
    entries = bib[0].count("@")
    assert entries == 4 and bib[0].count("{") == bib[0].count("}"), "four balanced entries"
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and len(cff["references"]) == entries
    assert identifiers(bib[0]) == identifiers(yaml.safe_dump(cff["references"]))
    links = (REPO / "README.md").read_text().split("```bibtex")[0]
    assert identifiers(bib[0]) == identifiers(links), "the papers table links the same DOIs and arXiv ids"


# ---- the pages as a whole ----------------------------------------------------------------------------------------
def test_generated_sections_hold_no_code_blocks():
    """`lmvae readme` writes plain text between its markers: nothing there escapes this file's checks."""
    import re

    for doc in DOCS:
        for start, body in re.findall(r"<!-- ([\w-]+):start -->(.*?)<!-- \1:end -->", doc.read_text(), flags=re.S):
            assert "```" not in body, f"{doc.name}: the generated section {start} holds a code block"


def test_committed_pages_are_what_lmvae_readme_writes():
    """`lmvae readme` on the committed tree changes nothing: every generated section of README.md and docs/*.md is in
    step with its generator (run `lmvae readme` and commit when this fails), and each section is on exactly one page."""
    from lmvae_core.readme import SECTIONS, Page, pages, render

    found = []
    for page in pages(REPO):
        text = page.read_text()
        assert render(Page(page, REPO, REPO / "figures")) == text, f"{page.relative_to(REPO)} is stale: run `lmvae readme`"
        found += [name for name in SECTIONS if f"<!-- {name}:start -->" in text]
    assert sorted(found) == sorted(SECTIONS), "each generated section appears on exactly one page"


def test_a_page_with_an_unknown_section_is_refused(tmp_path):
    from lmvae_core.readme import Page, render

    page = tmp_path / "page.md"
    page.write_text("<!-- typo:start -->\n<!-- typo:end -->\n")
    with pytest.raises(ValueError, match="no writer for the generated section 'typo'"):
        render(Page(page, REPO, REPO / "figures"))


def test_readme_is_a_front_page():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: move the detail to docs/"
    long = [n for n, line in enumerate(lines, 1) if len(line) > 200 and not line.startswith("|")]
    assert not long, f"README.md lines over 200 characters (not table rows): {long}"


def test_relative_links_resolve():
    """Every relative link of the pages names a file that exists, and a #fragment a heading of that file."""
    import re

    def anchors(md: Path) -> set[str]:
        heads = re.findall(r"^#+\s+(.+?)\s*$", md.read_text(), flags=re.M)
        return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in heads}

    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            path, _, fragment = target.partition("#")
            dest = (doc.parent / path).resolve() if path else doc
            assert dest.exists(), f"{doc.relative_to(REPO)} links to a missing {target}"
            if fragment:
                assert fragment in anchors(dest), f"{doc.relative_to(REPO)}: no heading #{fragment} in {path or doc.name}"


def test_make_bench_rewrites_the_pages_with_lmvae_readme():
    """The benchmark's results reach docs/ through the one writer, not a script of its own."""
    proc = subprocess.run(["make", "-n", "-C", str(REPO), "bench"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    recipe = [line.split() for line in proc.stdout.splitlines() if line.strip() and not line.startswith("make")]
    assert Path(recipe[-1][0]).name == "lmvae" and recipe[-1][1:] == ["readme"], recipe[-1]


def test_readme_headline_counts_are_those_of_the_results_page():
    """The README lists the same counts that open docs/results.md (one headline computation, two layouts)."""
    import re

    def section(doc: Path, name: str) -> str:
        return re.search(rf"<!-- {name}:start -->(.*?)<!-- {name}:end -->", doc.read_text(), flags=re.S).group(1)

    listed = section(REPO / "README.md", "headline")
    sentence = section(REPO / "docs" / "results.md", "results").strip().splitlines()[0]
    parts = [line[2:] for line in listed.splitlines() if line.startswith("- ")]
    assert len(parts) == 3 and all(part in sentence for part in parts), (parts, sentence)
    assert listed.strip().splitlines()[0].rstrip(":") in sentence
