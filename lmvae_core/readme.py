"""Regenerate the README's results section from the committed claims tables (never typed by hand)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from . import paths
from .experiments.common import NOTEBOOKS
from .results.atomic import write_text
from .results.claims import NOT_COMPARABLE, NOT_REPRODUCED, PARTLY, REPRODUCED

START, END = "<!-- results:start -->", "<!-- results:end -->"
SHAPE_START, SHAPE_END = "<!-- paper-shape:start -->", "<!-- paper-shape:end -->"
# The budget for a cold `lmvae reproduce --profile quick --executor local` on 2 CPU cores (issue 34: room for
# half-budget runs and schedules long enough to decide what the CPU can decide).
QUICK_BUDGET_S = {"notebook": 60 * 60, "all": 4 * 3600}
DECIDED = (REPRODUCED, PARTLY, NOT_REPRODUCED)
GALLERY = {  # key figure per notebook, shown under the table when present
    "00_mixture_of_vaes": "samples_per_expert_mnist.png",
    "01_lmvae": "task_matrices_iwae.png",
    "02_lifelong_generative_modeling": "cumulative_nelbo_iwae.png",
    "03_binarized_regularization": "r_sweep_metrics.png",
    "04_ocm": "memory_along_stream.png",
    "05_benchmark": "stream_split_mnist.png",
}


def results_section(figures: Path, paper_logs: Path | None = None) -> str:
    paper_logs = paper_logs if paper_logs is not None else figures.parent / "benchmarks" / "gpu_logs"
    frames, provenance, infos = [], [], {}
    for name in NOTEBOOKS:
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
            provenance.append(run_row(name, infos[name], df["verdict"]))
    if not frames:
        return "No results yet: run `make reproduce`."
    table = pd.concat(frames, ignore_index=True)
    lines = [headline(table), "", table.to_markdown(index=False), "",
             "*verdict*: the committed (quick, CPU) run; *paper profile*: the verdict of the notebook's paper-profile "
             "run on a GPU where one was made (`figures/paper/<notebook>/`, else `benchmarks/gpu_logs/paper_<notebook>/`), "
             "'-' where none was.", ""]
    if provenance:
        lines += ["Run per notebook. *Last run*: the wall time of the run that wrote these results (models already in "
                  "the on-disk cache are reloaded, not retrained). *Cold*: the last `lmvae reproduce --cold` run, from "
                  "an empty cache, with the commit, executor and CPU count it ran on, and, where measured, the machine probe "
                  "(784-200-20 VAE training steps per second on one thread, taken before the run: machines with the "
                  "same core count differ, so cold times of two machines compare through their probes).", "",
                  pd.DataFrame(provenance).to_markdown(index=False), "", budget_sentence(infos), ""]
    benchmark = figures / "05_benchmark"
    if (benchmark / "benchmark.md").exists():
        lines += ["### Every method on the same streams (notebook 05, mean ± std over seeds)", "",
                  (benchmark / "benchmark.md").read_text().strip(), ""]
        if (benchmark / "ranking.md").exists():
            lines += ["Ranking, computed from the table:", "", (benchmark / "ranking.md").read_text().strip(), ""]
    gallery = [(n, f) for n, f in GALLERY.items() if (figures / n / f).exists()]
    if gallery:
        lines += ["### Gallery", ""]
        lines += [f"**{n}**\n\n![{n}](figures/{n}/{f})\n" for n, f in gallery]
    return "\n".join(lines).rstrip() + "\n"


def paper_claims_file(figures: Path, paper_logs: Path, name: str) -> Path:
    """Where a notebook's paper-profile claims are: figures/paper/<nb>/ (a run of benchmarks/gpu_run.sh, unpacked
    there), else the script-run logs of benchmarks/gpu_logs/paper_<nb>/ from before the GPU ran notebooks."""
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


def headline(table: pd.DataFrame) -> str:
    """Counts of `paper` claims only: decided by the paper-profile run (GPU) where it decides, else by the quick
    run (CPU), else not decided. Derived, sanity and beyond-the-paper claims are counted apart."""
    paper = table[table["kind"] == "paper"]
    by_paper = paper["paper profile"].isin(DECIDED)
    by_quick = ~by_paper & paper["verdict"].isin(DECIDED)

    def counts(verdicts: pd.Series) -> str:
        c = verdicts.value_counts()
        return ", ".join(f"{v} {c[v]}" for v in DECIDED if v in c) or "none"

    rest = table[table["kind"] != "paper"]
    others = "; ".join(f"{kind} {len(part)} ({counts(part['verdict'])})" for kind, part in rest.groupby("kind"))
    return (f"**{len(paper)} claims the papers make** (kind `paper`): decided by quick (CPU): "
            f"{counts(paper.loc[by_quick, 'verdict'])}; decided by paper (GPU): "
            f"{counts(paper.loc[by_paper, 'paper profile'])}; not comparable in either: "
            f"{int((~by_paper & ~by_quick).sum())}. Not counted as reproductions: {others or 'none'}.")


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
    import importlib

    from .data.requirements import NEEDS

    lines = ["| notebook | scaled down (paper-shape value) | not the paper's, and why |", "|---|---|---|"]
    for nb in NOTEBOOKS:
        m = importlib.import_module(f"lmvae_core.experiments.{NEEDS[nb][0]}")
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


def update_readme(readme: Path | None = None, figures: Path | None = None) -> Path:
    readme = readme or paths.repo_root() / "README.md"
    figures = figures or paths.repo_root() / "figures"
    replace_section(readme, START, END, results_section(figures))
    if SHAPE_START in readme.read_text():  # the repository's README has it (tests/test_paper_shape.py checks)
        replace_section(readme, SHAPE_START, SHAPE_END, paper_shape_section())
    return readme


def replace_section(readme: Path, start: str, end: str, body: str) -> None:
    """Rewrite what lies between two marker lines of a generated README section (the benchmarks' writers too)."""
    text = readme.read_text()
    if start not in text or end not in text:
        raise ValueError(f"{readme} has no {start} ... {end} markers")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    write_text(readme, f"{head}{start}\n{body}{end}{tail}")
