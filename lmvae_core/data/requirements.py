"""Which datasets and splits each notebook needs per profile, whether they are on disk, and fetching the rest.

The lists are computed from the same SETTINGS dicts the experiments read, plus the datasets a notebook names
itself; setup() declares them to the loader, which refuses (smoke profile, so CI catches it) or warns about
any split a notebook loads without declaring it. `lmvae data` and the fail-fast check of `lmvae reproduce`
read them from here.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..runtime import uses_sample
from .datasets import DATASETS, DataMissingError, canonical_name, downloads_allowed, expected_files, is_present

SPLITS = ("train", "test")
# notebook 05's streams and the datasets each is cut from (experiments/benchmark.py: build_stream)
BENCHMARK_STREAMS = {"split_mnist": ("mnist",), "taskfree_mnist": ("mnist",), "split_fashion": ("fashion",),
                     "mnist_fashion": ("mnist", "fashion")}


def _ocm(s: dict) -> list[str]:
    from ..experiments.ocm import STREAMS

    # Table 1 streams, the cross-domain stream of Table 3 and the ablations on MNIST (notebook cells)
    return [d for stream in (*s["streams"], "cross", "mnist") for d in STREAMS[stream]]


# notebook -> (experiments module, datasets as a function of that module's SETTINGS[profile])
NEEDS = {
    # the balancing ablation runs on MNIST (notebook cell)
    "00_mixture_of_vaes": ("mixture_of_vaes", lambda s: [*s["datasets"], "mnist"]),
    "01_lmvae": ("lmvae", lambda s: [*s["sequence"], *s["growth_sequence"]]),
    # permuted MNIST and its classifier use MNIST in every profile
    "02_lifelong_generative_modeling": ("lgm", lambda s: [*s["datasets"], s["ablation_dataset"], "mnist"]),
    # the overhead measurement and generative replay run on MNIST
    "03_binarized_regularization": ("binarized", lambda s: [*s["datasets"], "mnist"]),
    "04_ocm": ("ocm", _ocm),
    "05_benchmark": ("benchmark", lambda s: [d for st in s["streams"] for d in BENCHMARK_STREAMS[st]]),
}


@dataclass(frozen=True)
class Need:
    notebook: str
    dataset: str
    split: str
    source: str  # 'sample' (smoke) or 'data root'
    present: bool
    paths: tuple[Path, ...]  # where the files are expected


def datasets_for(notebook: str, profile: str) -> list[str]:
    """The datasets (canonical names, in first-use order) a notebook loads in a profile."""
    if notebook not in NEEDS:
        raise ValueError(f"unknown notebook {notebook!r}; known: {', '.join(NEEDS)}")
    module, needs = NEEDS[notebook]
    settings = importlib.import_module(f"lmvae_core.experiments.{module}").SETTINGS[profile]
    return list(dict.fromkeys(canonical_name(d) for d in needs(settings)))


def pairs_for(notebook: str, profile: str) -> set[tuple[str, str]]:
    return {(d, split) for d in datasets_for(notebook, profile) for split in SPLITS}


def check(notebooks: list[str], profile: str, root: str | Path | None = None) -> list[Need]:
    """One row per notebook, dataset and split: present or not, and the paths expected."""
    rows = []
    for nb in notebooks:
        for d in datasets_for(nb, profile):
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


def ensure(notebooks: list[str], profile: str, root: str | Path | None = None, download: bool | None = None,
           echo=print) -> None:
    """Raise DataMissingError (one message for everything) unless every needed split is on disk or fetched."""
    rows = check(notebooks, profile, root)
    if all(r.present for r in rows):
        return
    download = downloads_allowed() if download is None else download
    reasons = ""
    if download and not uses_sample(profile):
        reasons = "; ".join(dict.fromkeys(fetch_missing(rows, root, echo).values()))
        rows = check(notebooks, profile, root)
    missing = [r for r in rows if not r.present]
    if missing:
        raise DataMissingError(missing_message(missing, profile, root, reasons))
