"""Whether the datasets and splits a set of notebooks needs are on disk, and fetching the rest.

`needs` maps a notebook's name to the datasets it loads in a profile. Which those are is the experiments'
knowledge (experiments/needs.py computes them from the SETTINGS the experiments read); this module only looks
for the files (the committed sample in the smoke and paper-shape profiles, the data root otherwise), fetches what
is missing and words one message for everything still missing.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..runtime import uses_sample
from .datasets import DATASETS, DataMissingError, canonical_name, downloads_allowed, expected_files, is_present

SPLITS = ("train", "test")
@dataclass(frozen=True)
class Need:
    notebook: str
    dataset: str
    split: str
    source: str  # 'sample' (smoke) or 'data root'
    present: bool
    paths: tuple[Path, ...]  # where the files are expected


def pairs(datasets: Sequence[str]) -> set[tuple[str, str]]:
    """Every (dataset, split) of the given datasets."""
    return {(canonical_name(d), split) for d in datasets for split in SPLITS}


def check(needs: Mapping[str, Sequence[str]], profile: str, root: str | Path | None = None) -> list[Need]:
    """One row per notebook, dataset and split: present or not, and the paths expected."""
    rows = []
    for nb, datasets in needs.items():
        for d in dict.fromkeys(canonical_name(d) for d in datasets):
            for split in SPLITS:
                if uses_sample(profile):
                    file = paths.sample_root() / f"{DATASETS[d].stem}-{split}.npz"
                    rows.append(Need(nb, d, split, "sample", file.exists(), (file,)))
                    continue
                base = paths.data_root(root)
                where = tuple(base / f for f in expected_files(d, split))
                npz = base / "npz" / f"{DATASETS[d].stem}-{split}.npz"
                rows.append(Need(nb, d, split, "data root", is_present(d, split, base), (*where, npz)))
    return rows


def table(rows: list[Need]) -> str:
    lines = []
    for nb in dict.fromkeys(r.notebook for r in rows):
        lines.append(nb)
        for r in (r for r in rows if r.notebook == nb):
            where = str(r.paths[0])
            if len(r.paths) > 2:
                where = f"{r.paths[0].parent}/ ({len(r.paths) - 1} files)"
            if len(r.paths) > 1:
                where += f" or {r.paths[-1]}"
            lines.append(f"  {r.dataset:9s} {r.split:5s} {'present' if r.present else 'MISSING':8s} {where}")
    return "\n".join(lines)


def fetch_missing(rows: list[Need], root: str | Path | None = None, echo=print) -> dict[tuple[str, str], str]:
    """Download what is missing, once per dataset and split; return {(dataset, split): reason} of the failures."""
    from .fetch import fetch

    failed: dict[tuple[str, str], str] = {}
    todo = list(dict.fromkeys((r.dataset, r.split) for r in rows if not r.present and r.source != "sample"))
    for key in todo:
        echo(f"fetching {key[0]} ({key[1]}) into {paths.data_root(root)} ...")
        try:
            fetch(key[0], key[1], root)
        except (OSError, RuntimeError) as err:
            failed[key] = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
            echo(f"  failed: {failed[key]}")
            if "no network" in failed[key]:  # no host reachable: do not wait on every other dataset too
                for other in todo:
                    failed.setdefault(other, failed[key])
                break
    return failed


def missing_message(missing: list[Need], profile: str, root: str | Path | None = None,
                    reasons: str = "") -> str:
    """One message: every missing dataset with the paths expected, and the commands that fix it."""
    base = paths.data_root(root)
    lines = [f"{len({(m.dataset, m.split) for m in missing})} dataset split(s) needed by the selected notebooks "
             f"(profile {profile}) are not on disk under {base}:"]
    for key in dict.fromkeys((m.dataset, m.split) for m in missing):
        need = next(m for m in missing if (m.dataset, m.split) == key)
        users = ", ".join(dict.fromkeys(m.notebook[:2] for m in missing if (m.dataset, m.split) == key))
        lines.append(f"  {key[0]} ({key[1]}), needed by {users}; expected:")
        files = [f"      {p}" for p in need.paths]
        if len(files) > 1:  # the last path is the .npz copy, an alternative to torchvision's files
            files[-1] = f"    or {need.paths[-1]}"
        lines += files
    if reasons:
        lines.append(f"Download: {reasons}")
    elif not downloads_allowed():
        lines.append("Downloads are off (LMVAE_OFFLINE=1 or --offline).")
    lines += ["Fix it with one of:",
              f"  lmvae data --fetch --profile {profile}        # download through torchvision (needs network)",
              "  LMVAE_DATA=/path/to/datasets lmvae reproduce   # use datasets already on disk (torchvision layout"
              " or npz/<name>-<split>.npz)",
              "  make reproduce PROFILE=smoke                   # a demo on the committed sample in data/sample/"]
    return "\n".join(lines)


def ensure(needs: Mapping[str, Sequence[str]], profile: str, root: str | Path | None = None,
           download: bool | None = None, echo=print) -> None:
    """Raise DataMissingError (one message for everything) unless every needed split is on disk or fetched."""
    rows = check(needs, profile, root)
    if all(r.present for r in rows):
        return
    download = downloads_allowed() if download is None else download
    reasons = ""
    if download and not uses_sample(profile):
        reasons = "; ".join(dict.fromkeys(fetch_missing(rows, root, echo).values()))
        rows = check(needs, profile, root)
    missing = [r for r in rows if not r.present]
    if missing:
        raise DataMissingError(missing_message(missing, profile, root, reasons))
