"""The `lmvae` command: reproduce the notebooks, regenerate the README's results section."""
from __future__ import annotations

import argparse
import sys

from .runtime import PROFILES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lmvae", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("reproduce", help="run the notebooks through papermill and regenerate figures/")
    rep.add_argument("--profile", default="auto", choices=(*PROFILES, "auto"),
                     help="smoke | quick | paper | auto (paper on a GPU, quick otherwise)")
    rep.add_argument("--only", default=None, help="comma-separated notebook prefixes, e.g. 00,01")
    rep.add_argument("--out", default=None, help="figures folder (default: figures/, or a git-ignored one for smoke)")
    rep.add_argument("--executed", default=None, help="folder for executed notebooks (default: .lmvae/executed/)")
    rep.add_argument("--in-place", action="store_true", help="write executed notebooks back into notebooks/")
    rep.add_argument("--executor", default=None,
                     help="run the grids of notebooks 02-05 on Dask: 'local' (one worker per core, or per GPU), "
                          "'local:N', or a scheduler address such as tcp://host:8786 "
                          "(default: serial, or $LMVAE_DASK_SCHEDULER)")
    sub.add_parser("readme", help="regenerate the README's results section from figures/*/claims.csv")
    args = parser.parse_args(argv)

    if args.command == "reproduce":
        from .reproduce import reproduce

        try:
            results = reproduce(args.profile, args.only, args.out, args.executed, args.in_place,
                                executor=args.executor)
        except ValueError as err:
            print(f"lmvae reproduce: {err}", file=sys.stderr)
            return 2
        if args.out is None and args.profile != "smoke":
            from .readme import update_readme

            update_readme()
        return 0 if all(r.status == "ok" for r in results) else 1
    if args.command == "readme":
        from .readme import update_readme

        print(f"updated {update_readme()}")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
