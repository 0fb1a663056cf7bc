"""Command line of smplora_nb.

``python -m smplora_nb notebooks [--profile tiny] [--only 01 ...] [-p NAME VALUE ...]`` executes the notebooks.
``python -m smplora_nb reproduce [--profile tiny|paper] [--only 02,04 ...] [--seeds 3] [--shard I/N]`` executes them
too, skipping notebooks whose last run had the same code and parameters (training runs and audits are cached either
way), and writes ``outputs/REPORT.md``.
"""
from __future__ import annotations

import argparse
import sys

from . import runner


def _common(p) -> None:
    p.add_argument("--profile", default="tiny", help="config profile: tiny (CPU default) or paper (GPU)")
    p.add_argument("--only", nargs="*", default=[], help="notebook numbers or stems, e.g. --only 01 02 or 02,04")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="notebook parameter (repeatable); VALUE is read as a Python literal when possible")
    p.add_argument("--no-progress", action="store_true", help="hide papermill's cell progress bar")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m smplora_nb", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    _common(sub.add_parser("notebooks", help="execute the notebook series with papermill"))
    rep = sub.add_parser("reproduce", help="execute the series (cached, resumable) and write outputs/REPORT.md")
    _common(rep)
    rep.add_argument("--seeds", type=int, default=None, help="seeds per method (notebooks with n_seeds; paper: 3)")
    rep.add_argument("--shard", default=None, metavar="I/N",
                     help="train only every N-th run (the I-th of each N) and stop; rerun without it to finish")
    rep.add_argument("--force", action="store_true", help="re-execute notebooks even when their result is cached")
    args = ap.parse_args(argv)
    params = {name: runner.parse_value(value) for name, value in args.parameter}
    try:
        if args.command == "notebooks":
            runner.run(only=args.only, profile=args.profile, params=params, progress=not args.no_progress)
            return 0
        if args.seeds is not None and args.seeds < 1:
            raise ValueError("--seeds must be at least 1")
        runner.run(only=args.only, profile=args.profile, params=params, progress=not args.no_progress,
                   cache=not args.force, shard=args.shard,
                   optional={} if args.seeds is None else {"n_seeds": args.seeds})
        if args.shard is None:
            from . import report

            path = report.write(command="python -m smplora_nb " + " ".join(argv if argv is not None
                                                                          else sys.argv[1:]))
            print(f"[smplora_nb] report: {path}", flush=True)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
