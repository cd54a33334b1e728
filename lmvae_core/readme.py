"""`lmvae readme`: the one writer of every generated section of README.md and docs/*.md (never typed by hand).

A generated section lies between `<!-- NAME:start -->` and `<!-- NAME:end -->` and may sit on any page: SECTIONS
maps each NAME to what writes it. This module formats the claims-based sections (headline, results, paper-shape);
lmvae_core/docs/ formats those read from benchmarks/results/*.json.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from . import paths
from .docs import grid_speed, paper_cost, speed
from .experiments import registry
from .results.atomic import write_text
from .results.writers import markdown_table
from .results.claims import NOT_COMPARABLE, NOT_REPRODUCED, PARTLY, REPRODUCED

START, END = "<!-- results:start -->", "<!-- results:end -->"
SHAPE_START, SHAPE_END = "<!-- paper-shape:start -->", "<!-- paper-shape:end -->"
MARKER = re.compile(r"<!-- ([\w-]+):start -->")
# The budget for a cold `lmvae reproduce --profile quick --executor local` on 2 CPU cores (issue 34: room for
# half-budget runs and schedules long enough to decide what the CPU can decide).
QUICK_BUDGET_S = {"notebook": 60 * 60, "all": 4 * 3600}
DECIDED = (REPRODUCED, PARTLY, NOT_REPRODUCED)


def claims_table(figures: Path, paper_logs: Path | None = None) -> tuple[pd.DataFrame | None, dict[str, dict]]:
    """Every notebook's claims (with the paper-profile verdict beside each) and its run_info.json, where present."""
    paper_logs = paper_logs if paper_logs is not None else paths.benchmark_logs("gpu", figures.parent)
    frames, infos = [], {}
    for name in registry.notebooks():
        claims = figures / name / "claims.csv"
        if not claims.exists():
            continue
        df = pd.read_csv(claims, keep_default_na=False)
        if "kind" not in df:  # a table written before claims said what they test
            df["kind"] = "not stated"
        df["notebook"] = name[:2]  # claims.csv may carry the full name; the table uses the number
        df["paper profile"] = paper_verdicts(df, paper_claims_file(figures, paper_logs, name))
        frames.append(df[["notebook", "kind", "claim", "paper", "ours", "criterion", "verdict", "paper profile"]])
        info = figures / name / "run_info.json"
        if info.exists():
            infos[name] = json.loads(info.read_text())
    return (pd.concat(frames, ignore_index=True) if frames else None), infos


def headline_section(figures: Path) -> str:
    """The headline counts as a short list (the README's front page; docs/results.md has them as one sentence)."""
    table, _ = claims_table(figures)
    if table is None:
        return "No results yet: run `make reproduce`.\n"
    title, decided, others = headline_parts(table)
    return "\n".join([f"{title}:", *(f"- {part}" for part in decided), "", f"Not counted as reproductions: {others}.", ""])


def results_section(figures: Path, paper_logs: Path | None = None, page_dir: Path | None = None) -> str:
    """The full results: headline, claims table, run table, notebook 05's benchmark and the gallery (image links
    relative to page_dir, the folder of the page that shows them; default: the repository root)."""
    table, infos = claims_table(figures, paper_logs)
    if table is None:
        return "No results yet: run `make reproduce`.\n"
    provenance = [run_row(name, info, table.loc[table["notebook"] == name[:2], "verdict"]) for name, info in infos.items()]
    lines = [headline(table), "", markdown_table(table, index=False), "",
             "*verdict*: the committed (quick, CPU) run; *paper profile*: the verdict of the notebook's paper-profile "
             "run on a GPU where one was made (`figures/paper/<notebook>/`, else `benchmarks/logs/gpu/paper_<notebook>/`), "
             "'-' where none was.", ""]
    if provenance:
        lines += ["Run per notebook. *Last run*: the wall time of the run that wrote these results (models already in "
                  "the on-disk cache are reloaded, not retrained). *Cold*: the last `lmvae reproduce --cold` run, from "
                  "an empty cache, with the commit, executor and CPU count it ran on, and, where measured, the machine probe "
                  "(784-200-20 VAE training steps per second on one thread, taken before the run: machines with the "
                  "same core count differ, so cold times of two machines compare through their probes).", "",
                  markdown_table(pd.DataFrame(provenance), index=False), "", budget_sentence(infos), ""]
    benchmark = figures / "05_benchmark"
    if (benchmark / "benchmark.md").exists():
        lines += ["### Every method on the same streams (notebook 05, mean ± std over seeds)", "",
                  (benchmark / "benchmark.md").read_text().strip(), ""]
        if (benchmark / "ranking.md").exists():
            lines += ["Ranking, computed from the table:", "", (benchmark / "ranking.md").read_text().strip(), ""]
    gallery = [(n, f) for n, f in registry.gallery().items() if (figures / n / f).exists()]
    if gallery:
        link = (lambda n, f: Path(os.path.relpath(figures / n / f, page_dir)).as_posix()) if page_dir else \
            (lambda n, f: f"figures/{n}/{f}")
        lines += ["### Gallery", ""]
        lines += [f"**{n}**\n\n![{n}]({link(n, f)})\n" for n, f in gallery]
    return "\n".join(lines).rstrip() + "\n"


def paper_claims_file(figures: Path, paper_logs: Path, name: str) -> Path:
    """Where a notebook's paper-profile claims are: figures/paper/<nb>/ (a run of benchmarks/gpu_run.sh, unpacked
    there), else the script-run logs of benchmarks/logs/gpu/paper_<nb>/ from before the GPU ran notebooks."""
    unpacked = figures / "paper" / name / "claims.csv"
    return unpacked if unpacked.exists() else paper_logs / f"paper_{name}" / "claims.csv"


def paper_verdicts(quick: pd.DataFrame, paper_claims: Path) -> list[str]:
    """The paper-profile verdict of each quick claim, matched by the claim's text ('-': no paper run made it).
    A paper run whose table has no half-budget column predates the half-budget rule: its decided verdicts cannot
    stand under it, so they read 'not comparable (no half-budget measurement)'."""
    if not paper_claims.exists():
        return ["-"] * len(quick)
    paper = pd.read_csv(paper_claims, keep_default_na=False)
    ruled = "half budget" in paper
    verdicts = dict(zip(paper["claim"], paper["verdict"]))
    out = []
    for claim in quick["claim"]:
        v = verdicts.get(claim, "-")
        if v not in ("-", NOT_COMPARABLE) and not ruled:
            v = f"{NOT_COMPARABLE} (no half-budget measurement; was {v})"
        out.append(v)
    return out


def headline_parts(table: pd.DataFrame) -> tuple[str, list[str], str]:
    """Counts of `paper` claims only: decided by the paper-profile run (GPU) where it decides, else by the quick
    run (CPU), else not decided. Derived, sanity and beyond-the-paper claims are counted apart (the third part)."""
    paper = table[table["kind"] == "paper"]
    by_paper = paper["paper profile"].isin(DECIDED)
    by_quick = ~by_paper & paper["verdict"].isin(DECIDED)

    def counts(verdicts: pd.Series) -> str:
        c = verdicts.value_counts()
        return ", ".join(f"{v} {c[v]}" for v in DECIDED if v in c) or "none"

    rest = table[table["kind"] != "paper"]
    others = "; ".join(f"{kind} {len(part)} ({counts(part['verdict'])})" for kind, part in rest.groupby("kind"))
    return (f"**{len(paper)} claims the papers make** (kind `paper`)",
            [f"decided by quick (CPU): {counts(paper.loc[by_quick, 'verdict'])}",
             f"decided by paper (GPU): {counts(paper.loc[by_paper, 'paper profile'])}",
             f"not comparable in either: {int((~by_paper & ~by_quick).sum())}"],
            others or "none")


def headline(table: pd.DataFrame) -> str:
    title, decided, others = headline_parts(table)
    return f"{title}: {'; '.join(decided)}. Not counted as reproductions: {others}."


def run_row(name: str, info: dict, verdicts: pd.Series) -> dict:
    cold = info.get("cold_seconds")
    counts = verdicts.value_counts()
    return {"notebook": name, "profile": info["profile"], "commit": info["commit"],
            "last run (s)": round(info["seconds"]),
            "cold (s)": "not measured" if cold is None else
            f"{cold:.0f} (commit {info['cold_commit']}, {info['cold_executor']}, {info['cold_cpus']} CPUs"
            + (f", probe {info['cold_probe_steps_per_s']:.0f} steps/s)" if "cold_probe_steps_per_s" in info else ")"),
            "within budget": within_budget(info),
            "verdicts": ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))}


def within_budget(info: dict) -> str:
    """A quick run's cold time against the per-notebook budget ('-' for other profiles: they have none)."""
    cold = info.get("cold_seconds")
    if info["profile"] != "quick":
        return "-"
    if cold is None:
        return "not measured"
    over = minutes_over(cold)
    return "yes" if over <= 0 else f"no (+{over:.1f} min)"


def minutes_over(cold_seconds: float) -> float:
    """Minutes by which a cold quick run exceeds the per-notebook budget (<= 0: within it)."""
    return (cold_seconds - QUICK_BUDGET_S["notebook"]) / 60


def budget_sentence(infos: dict[str, dict]) -> str:
    """The quick profile's cold times (run_info.json per notebook) summed against the 4-hour budget, and which
    notebooks exceed 60 minutes."""
    quick = {n: i for n, i in infos.items() if i["profile"] == "quick"}
    measured = {n: i["cold_seconds"] for n, i in quick.items() if i.get("cold_seconds") is not None}
    if not measured:
        return "No cold quick run measured yet."
    total = sum(measured.values())
    over = [n[:2] for n, s in measured.items() if minutes_over(s) > 0]
    limit, minutes = QUICK_BUDGET_S["all"], QUICK_BUDGET_S["notebook"] // 60
    return (f"Quick profile from an empty cache: {total / 3600:.2f} h in all for the {len(measured)} of {len(quick)} "
            f"notebooks measured, {'within' if total <= limit else 'over'} the {limit / 3600:.0f}-hour budget for "
            f"all six; " + (f"over {minutes} min each: {', '.join(over)}." if over else f"each within {minutes} min."))


def paper_shape_section() -> str:
    """What the paper-shape profile scales in each notebook (its modules' PAPER_SHAPE) and the paper settings it
    could not keep (PAPER_SHAPE_CHANGED), with why: read from the modules, never typed."""
    lines = ["| notebook | scaled down (paper-shape value) | not the paper's, and why |", "|---|---|---|"]
    for nb in registry.notebooks():
        m = registry.experiment_module(nb)
        paper = m.SETTINGS["paper"]
        sizes = ", ".join(f"`{k}` {_scaled(paper[k], v)}" for k, v in m.PAPER_SHAPE.items())
        changed = "; ".join(f"`{k}` = {v!r} instead of {_dotted(paper, k)!r}: {why}"
                            for k, (v, why) in getattr(m, "PAPER_SHAPE_CHANGED", {}).items()) or "none"
        lines.append(f"| {nb} | {sizes} | {changed} |")
    return "\n".join(lines) + "\n"


def _dotted(settings: dict, key: str):
    outer, _, inner = key.partition(".")
    return settings[outer][inner] if inner else settings[outer]


def _scaled(paper, value) -> str:
    """A scaled setting as a short cell: of a dict or dataclass, only the fields that differ from the paper's."""
    import dataclasses

    if dataclasses.is_dataclass(value) and dataclasses.is_dataclass(paper):
        paper, value = dataclasses.asdict(paper), dataclasses.asdict(value)
    if isinstance(value, dict) and isinstance(paper, dict):
        return "{" + ", ".join(f"{k}: {v!r}" for k, v in value.items() if paper.get(k) != v) + "}"
    return repr(value)


@dataclass(frozen=True)
class Page:
    """A page being written, and where its sections read from."""
    path: Path     # README.md or docs/NAME.md: image links are made relative to its folder
    root: Path     # the repository: the benchmarks' results and logs are read from root/benchmarks/
    figures: Path  # the claims tables and run_info.json of each notebook


def _benchmarks(section):
    """A section read from the repository's benchmarks/results/ folder."""
    return lambda page: section(paths.benchmark_results(page.root))


SECTIONS = {  # NAME -> what writes the section between its markers
    "headline": lambda page: headline_section(page.figures),
    "results": lambda page: results_section(page.figures, page_dir=page.path.parent),
    "paper-shape": lambda page: paper_shape_section(),
    "paper-cost": lambda page: paper_cost.section(paths.benchmark_results(page.root),
                                                  paths.benchmark_logs("gpu", page.root), page.root),
    "speed": _benchmarks(speed.speed_section),
    "grid-speed": _benchmarks(grid_speed.section),
}


def pages(root: Path) -> list[Path]:
    """The pages whose generated sections `lmvae readme` writes: README.md and every docs/*.md."""
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def render(page: Page) -> str:
    """The page's text with every generated section rewritten; a marker no writer knows is an error."""
    text = page.path.read_text()
    for name in MARKER.findall(text):
        if name not in SECTIONS:
            raise ValueError(f"{page.path}: no writer for the generated section {name!r} (known: {', '.join(SECTIONS)})")
        text = replaced(text, f"<!-- {name}:start -->", f"<!-- {name}:end -->", SECTIONS[name](page), page.path)
    return text


def write_pages(root: Path, figures: Path | None = None, only: Path | None = None) -> list[Path]:
    """Rewrite the generated sections of every page (or of `only`); returns the pages whose text changed."""
    figures = figures or root / "figures"
    changed = []
    for path in [only] if only else pages(root):
        text = render(Page(path, root, figures))
        if text != path.read_text():
            write_text(path, text)
            changed.append(path)
    return changed


def update_readme(readme: Path | None = None, figures: Path | None = None) -> Path:
    """`lmvae reproduce` at its end: rewrite the generated sections of README.md and every docs/*.md, or of the one
    page given. Returns the page given, else README.md."""
    root = paths.repo_root()
    write_pages(root, figures, readme)
    return readme or root / "README.md"


def replaced(text: str, start: str, end: str, body: str, where: Path | str = "the page") -> str:
    """The text with what lies between two marker lines replaced by body."""
    if start not in text or end not in text:
        raise ValueError(f"{where} has no {start} ... {end} markers")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body}{end}{tail}"
