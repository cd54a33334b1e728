"""`lmvae reproduce --dry-run`: what a run would need and cost, in seconds and before any training.

For each selected notebook it checks that the profile's settings exist and that the datasets they name are on disk,
finds the device the notebooks would use, compares the estimated peak memory of the notebook's largest training step
at paper size (`peak_bytes` in benchmarks/results/paper_cost.json: resident tensors plus what autograd saves for backward;
no allocator cache or GPU context, hence the headroom below) with that device's memory, and prints the projected
time (reproduce.cost_message). Nothing is downloaded, trained or written.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from . import paths
from .experiments import registry
from .experiments.needs import check
from .reproduce import cost_message, run_device, select_notebooks
from .runtime import resolve_profile, uses_sample

# Share of the device's memory a step may use: the estimate leaves out the caching allocator, the CUDA context and
# library workspaces, which take several hundred MB to a few GB.
HEADROOM = 0.8


@dataclass
class DryRun:
    profile: str
    device: str
    device_memory: int  # bytes
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def text(self) -> str:
        verdict = ("nothing stands in the way" if self.ok else
                   f"{len(self.problems)} problem(s): " + "; ".join(self.problems))
        return "\n".join([*self.lines, f"Dry run: {verdict}."])


def device_memory(device: str) -> tuple[int, str]:
    """Bytes of memory on the device the notebooks would use, and its name."""
    if device == "cuda":
        import torch

        props = torch.cuda.get_device_properties(0)
        return int(props.total_memory), props.name
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")), "host memory (CPU)"


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**28 else f"{n / 2**20:.0f} MiB"


def memory_lines(names: list[str], cost: dict, memory: int, where: str) -> tuple[list[str], list[str]]:
    """Per notebook: the largest training step's estimated peak against the device's memory (paper sizes)."""
    lines, problems = [f"Peak memory of the largest training step at paper size (estimate, benchmarks/results/paper_cost.json) "
                       f"against {where}, {_gib(memory)}:"], []
    for n in names:
        entry = cost.get("notebooks", {}).get(n, {})
        kinds = [k for k in entry.get("kinds", []) if k.get("train") and k.get("peak_bytes")]
        if not kinds:
            lines.append(f"  {n:34s} no estimate")
            continue
        top = max(kinds, key=lambda k: k["peak_bytes"])
        fits = top["peak_bytes"] <= HEADROOM * memory
        lines.append(f"  {n:34s} {_gib(top['peak_bytes']):>10s}  {'fits' if fits else 'DOES NOT FIT'}  ({top['kind']})")
        if not fits:
            problems.append(f"{n}: {top['kind']} needs about {_gib(top['peak_bytes'])}, more than "
                            f"{HEADROOM:.0%} of {_gib(memory)}")
    return lines, problems


def dry_run(profile: str | None = "auto", only: str | None = None, data_root: str | None = None,
            cost: dict | None = None, device: str | None = None, memory: int | None = None) -> DryRun:
    """Check data, settings, device and memory for the selected notebooks and project the time; `cost`, `device`
    and `memory` override what is read and found (for tests)."""
    resolved = resolve_profile(profile)
    names = select_notebooks(only, paths.repo_root() / "notebooks")
    device = device or run_device()
    found, where = device_memory(device) if memory is None else (memory, device)
    if cost is None:
        try:
            cost = json.loads((paths.benchmark_results() / "paper_cost.json").read_text())
        except (OSError, ValueError):
            cost = {}
    out = DryRun(resolved, device, found, lines=[f"Dry run: profile {resolved}, {len(names)} notebook(s), device "
                                                 f"{device} ({where}, {_gib(found)})"])
    for n in names:  # settings: the profile exists in the notebook's experiment module
        module = registry.experiment_module(n)
        if resolved not in module.SETTINGS:
            out.problems.append(f"{n}: no {resolved!r} settings in {registry.get(n).module}")
    rows = check(names, resolved, data_root)
    missing = [r for r in rows if not r.present]
    out.lines.append(f"Data ({'the committed sample' if uses_sample(resolved) else paths.data_root(data_root)}): "
                     f"{len(rows) - len(missing)} of {len(rows)} dataset splits present"
                     + (", missing: " + ", ".join(sorted({f'{r.dataset} {r.split}' for r in missing}))
                        if missing else ""))
    if missing:
        out.problems.append(f"{len(missing)} dataset split(s) missing (`lmvae data --fetch` downloads them)")
    if resolved == "paper":
        lines, problems = memory_lines(names, cost, found, where)
        out.lines += lines
        out.problems += problems
    precision = ocm_precision_line(names, resolved, device)
    if precision:
        out.lines.append(precision)
    message = cost_message(names, resolved, device, cost)
    if message:
        out.lines.append(message)
    return out


def ocm_precision_line(names: list[str], resolved: str, device: str) -> str | None:
    """The precision OCM's memory passes will train in on this device (papers/ocm/precision.py: the paper profile's
    is chosen from the committed measurement), for the notebooks whose settings name one."""
    from .papers.ocm.precision import resolve

    chosen = {}
    for n in names:
        s = registry.experiment_module(n).SETTINGS.get(resolved)
        if s is None:
            continue
        setting = s["precision"] if "precision" in s else dict(s.get("ocm") or {}).get("precision")
        if setting:
            chosen[n] = resolve(setting, device)
    same: dict = {}  # notebooks that train OCM in the same precision for the same reason
    for n, p in chosen.items():
        same.setdefault(p, []).append(n)
    return "; ".join(f"OCM's memory passes ({', '.join(ns)}): {p.name} ({p.reason})" for p, ns in same.items()) or None
