"""Command line: ``python -m smplora_nb notebooks [--profile tiny] [--only 01 ...] [-p NAME VALUE ...]``."""
from __future__ import annotations

import argparse
import sys

from . import runner


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m smplora_nb", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    nb = sub.add_parser("notebooks", help="execute the notebook series with papermill")
    nb.add_argument("--profile", default="tiny", help="config profile: tiny (CPU default) or paper (GPU)")
    nb.add_argument("--only", nargs="*", default=[], help="notebook numbers or stems, e.g. --only 01 02")
    nb.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="notebook parameter (repeatable); VALUE is read as a Python literal when possible")
    nb.add_argument("--no-progress", action="store_true", help="hide papermill's cell progress bar")
    args = ap.parse_args(argv)
    params = {name: runner.parse_value(value) for name, value in args.parameter}
    try:
        runner.run(only=args.only, profile=args.profile, params=params, progress=not args.no_progress)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
