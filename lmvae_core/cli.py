"""The `lmvae` command: check and fetch data, reproduce the notebooks, rewrite the generated parts of README.md and docs/."""
from __future__ import annotations

import argparse
import os
import sys

from .runtime import PROFILES, uses_sample


def build_parser() -> argparse.ArgumentParser:
    """The `lmvae` command line (tests/test_readme.py parses the README's commands with it)."""
    parser = argparse.ArgumentParser(prog="lmvae", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("reproduce", help="run the notebooks through papermill and regenerate figures/")
    data = sub.add_parser("data", help="list the datasets each notebook needs, which are on disk; --fetch the rest")
    for p in (rep, data):
        p.add_argument("--profile", default="auto", choices=(*PROFILES, "auto"),
                       help="smoke | paper-shape (the paper's settings at toy sizes, on the committed sample) | quick | "
                            "paper | auto (paper on a GPU, quick otherwise)")
        p.add_argument("--only", default=None, help="comma-separated notebook prefixes, e.g. 00,01")
        p.add_argument("--data-root", default=None, help="dataset root (default: $LMVAE_DATA, else ./data)")
    rep.add_argument("--out", default=None, help="figures folder (default: figures/, or a git-ignored one for smoke and paper-shape)")
    rep.add_argument("--executed", default=None, help="folder for executed notebooks (default: .lmvae/executed/)")
    rep.add_argument("--in-place", action="store_true", help="write executed notebooks back into notebooks/")
    rep.add_argument("--executor", default=None,
                     help="run the grids of notebooks 02-05 on Dask: 'local' (one worker per core, or per GPU), "
                          "'local:N', or a scheduler address such as tcp://host:8786 "
                          "(default: serial, or $LMVAE_DASK_SCHEDULER)")
    rep.add_argument("--cold", action="store_true",
                     help="start from an empty cache (a fresh folder under the work root, shared by the notebooks of "
                          "this call) and record the wall time as `cold_seconds` in each run_info.json; the "
                          "cache is deleted at the end")
    rep.add_argument("--keep-cold-cache", action="store_true",
                     help="with --cold: keep the cold run's cache folder instead of deleting it at the end")
    rep.add_argument("--dry-run", action="store_true",
                     help="check data, settings, device and (paper) peak memory, print the projected time; run nothing")
    rep.add_argument("--offline", action="store_true",
                     help="never download (same as LMVAE_OFFLINE=1); missing data stops the run before it starts")
    data.add_argument("--fetch", action="store_true", help="download the missing datasets through torchvision")
    sub.add_parser("readme", help="rewrite every generated section of README.md and docs/*.md (from figures/*/claims.csv, "
                                   "the experiment modules and benchmarks/results/*.json)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    if args.command == "data":
        return data_command(args.profile, args.only, args.data_root, args.fetch)
    if args.command == "reproduce":
        from .data.datasets import DataMissingError
        from .reproduce import reproduce

        if args.dry_run:
            from .dry_run import dry_run

            try:
                report = dry_run(args.profile, args.only, args.data_root)
            except ValueError as err:
                print(f"lmvae reproduce: {err}", file=sys.stderr)
                return 2
            print(report.text())
            return 0 if report.ok else 1
        if args.offline:
            os.environ["LMVAE_OFFLINE"] = "1"  # the kernels inherit it too
        try:
            results = reproduce(args.profile, args.only, args.out, args.executed, args.in_place,
                                offline=args.offline, data_root=args.data_root, executor=args.executor,
                                cold=args.cold, keep_cold_cache=args.keep_cold_cache)
        except DataMissingError as err:
            print(f"lmvae reproduce: nothing was run.\n{err}", file=sys.stderr)
            return 3
        except ValueError as err:
            print(f"lmvae reproduce: {err}", file=sys.stderr)
            return 2
        if args.out is None and not uses_sample(args.profile):
            from .readme import update_readme

            update_readme()
        return 0 if all(r.status == "ok" for r in results) else 1
    if args.command == "readme":
        from . import paths
        from .readme import write_pages

        root = paths.repo_root()
        changed = write_pages(root)
        print(f"rewrote {', '.join(str(p.relative_to(root)) for p in changed)}" if changed
              else "README.md and docs/*.md: every generated section was already up to date")
        return 0
    return 2


def data_command(profile: str, only: str | None, data_root: str | None, fetch: bool) -> int:
    """Print per notebook which dataset splits it needs and which are present; with fetch, download the rest."""
    from . import paths
    from .data.datasets import DataMissingError
    from .data.requirements import table
    from .experiments.needs import check, ensure
    from .reproduce import select_notebooks
    from .runtime import resolve_profile

    resolved = resolve_profile(profile)
    try:
        names = select_notebooks(only, paths.repo_root() / "notebooks")
    except ValueError as err:
        print(f"lmvae data: {err}", file=sys.stderr)
        return 2
    where = "the committed sample" if uses_sample(resolved) else paths.data_root(data_root)
    print(f"profile {resolved}, data from {where}\n")
    rows = check(names, resolved, data_root)
    print(table(rows))
    if all(r.present for r in rows):
        print("\nall present")
        return 0
    if not fetch:
        print("\nmissing splits: `lmvae data --fetch" + (f" --profile {resolved}" if profile != "auto" else "")
              + "` downloads them (or see `lmvae reproduce`'s message for other fixes)")
        return 1
    try:
        ensure(names, resolved, data_root, download=True)
    except DataMissingError as err:
        print(f"\n{err}", file=sys.stderr)
        return 1
    print("\n" + table(check(names, resolved, data_root)) + "\n\nall present")
    return 0


if __name__ == "__main__":
    sys.exit(main())
