"""Command line of smplora_nb.

``python -m smplora_nb notebooks [--profile tiny] [--only 01 ...] [-p NAME VALUE ...]`` executes the notebooks.
``python -m smplora_nb reproduce [--profile tiny|paper] [--only 02,04 ...] [--splits 3] [--shard I/N] [--dev]
[--powered]`` executes them too, skipping notebooks whose last run had the same code and parameters (training runs
and audits are cached either way), and writes ``outputs/REPORT.md``. ``--dev`` runs the tiny profile on its
development seeds (``profiles.DEV_SEEDS``) into ``outputs/dev/``: the runs on which knobs are chosen, apart from the
confirmatory ones. ``--powered`` runs the powered audit (notebooks 01 and 06 over ``profiles.POWERED``'s member splits)
into ``outputs/powered/``.
``python -m smplora_nb train [--profile paper] [-p method smp_lora ...]`` trains one run into the run cache, where
the notebooks find it. Under ``accelerate launch --multi_gpu --num_processes N -m smplora_nb train ...`` the run is
data-parallel over N processes (GPUs, or CPU processes over gloo on a machine without GPU).
``python -m smplora_nb speed`` measures this machine (a few seconds) and prints each notebook's expected minutes.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys

import torch

from . import config, models, paths, profiles, runner, runs, sets, speed


def _common(p) -> None:
    p.add_argument("--profile", default="tiny", help="config profile: tiny (CPU default) or paper (GPU)")
    p.add_argument("--only", nargs="*", default=[], help="notebook numbers or stems, e.g. --only 01 02 or 02,04")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="notebook parameter (repeatable); VALUE is read as a Python literal when possible")
    p.add_argument("--no-progress", action="store_true", help="hide papermill's cell progress bar")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m smplora_nb", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    _common(sub.add_parser("notebooks", help="execute the notebook series with papermill"))
    rep = sub.add_parser("reproduce", help="execute the series (cached, resumable) and write outputs/REPORT.md")
    _common(rep)
    rep.add_argument("--splits", type=int, default=None,
                     help="member splits per method (notebooks with n_splits; split k: member_seed k, seed + k)")
    rep.add_argument("--shard", default=None, metavar="I/N",
                     help="train only every N-th run (the I-th of each N) and stop; rerun without it to finish")
    rep.add_argument("--force", action="store_true", help="re-execute notebooks even when their result is cached")
    rep.add_argument("--dev", action="store_true",
                     help="the development seeds (profiles.DEV_SEEDS) into outputs/dev/, for choosing knobs")
    rep.add_argument("--powered", action="store_true",
                     help="the powered audit: notebooks 01 and 06 over profiles.POWERED's member splits into "
                          "outputs/powered/ (the README's headline verdicts)")
    sub.add_parser("speed", help="this machine's calibration and each notebook's expected minutes (tiny profile)")
    tr = sub.add_parser("train", help="train one run into the run cache (works under accelerate launch)")
    tr.add_argument("--profile", default="tiny", help="config profile: tiny, paper or colab")
    tr.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="config field (repeatable), e.g. -p method smp_lora -p epochs 2")
    return ap


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    params = {name: runner.parse_value(value) for name, value in getattr(args, "parameter", [])}
    try:
        if args.command == "train":
            return _train(args.profile, params)
        if args.command == "speed":
            print(speed.report(again=True))
            return 0
        if args.command == "notebooks":
            runner.run(only=args.only, profile=args.profile, params=params, progress=not args.no_progress)
            return 0
        _reproduce(args, params, argv)
    except (ValueError, FileNotFoundError) as e:         # known failures: bad input, missing or damaged files
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        message = _known_failure(e)
        if message is None:
            raise                                           # unexpected: the whole traceback
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


def _reproduce(args, params: dict, argv) -> None:
    """``reproduce``: the series (cached, resumable), then ``outputs/REPORT.md`` (unless a shard)."""
    if args.splits is not None and args.splits < 1:
        raise ValueError("--splits must be at least 1")
    if args.dev:
        _development(params)
    optional = {} if args.splits is None else {"n_splits": args.splits}
    if args.powered:
        optional = _powered(args, optional)
    runner.run(only=args.only, profile=args.profile, params=params, progress=not args.no_progress,
               cache=not args.force, shard=args.shard, optional=optional)
    if args.shard is None:
        from . import report                  # SciPy (through claims): loaded once the series has run, not at start

        path = report.write(command="python -m smplora_nb " + " ".join(argv if argv is not None else sys.argv[1:]))
        print(f"[smplora_nb] report: {path}", flush=True)


def _known_failure(e: Exception) -> str | None:
    """The one-line message of a known failure that is not a ``ValueError``: a full, read-only or forbidden disk,
    anywhere, or a known failure inside a notebook cell; None for anything unexpected."""
    notebook = type(e).__name__ == "PapermillExecutionError"
    disk = paths.disk_error(e) or (_disk_error_in_cell(e.ename, e.evalue) if notebook else None)
    if disk is not None:
        return paths.disk_message(disk)
    if notebook and e.ename in KNOWN:
        return (f"{e.evalue} (a {e.ename} in a notebook cell; its partial outputs are kept in the notebook's "
                f".failed/ folder)")
    return None


KNOWN = ("ValueError", "FileNotFoundError")
OS_ERRORS = ("OSError", "PermissionError", "NotADirectoryError", "FileExistsError", "IsADirectoryError")


def _disk_error_in_cell(ename: str, evalue: str):
    """The ``OSError`` a notebook cell raised, rebuilt from its name and text ("[Errno 28] No space left on device:
    '/path'"), when it is a failure of the file system (``paths.disk_error``); else None."""
    found = re.match(r"\[Errno (\d+)\] ([^:]+)(?:: '(.*)')?", evalue or "")
    if ename not in OS_ERRORS or found is None:
        return None
    return paths.disk_error(OSError(int(found.group(1)), found.group(2), found.group(3)))


def _development(params: dict) -> None:
    """``reproduce --dev``: the development split and training seeds, in their own outputs folder."""
    clash = sorted(set(params) & set(profiles.DEV_SEEDS))
    if clash:
        raise ValueError(f"--dev sets {clash} itself (profiles.DEV_SEEDS); drop -p {clash[0]}")
    params.update(profiles.DEV_SEEDS)
    os.environ.setdefault("SMPLORA_OUTPUTS", str(paths.outputs_root() / "dev"))
    print(f"[smplora_nb] development seeds {profiles.DEV_SEEDS} into {paths.outputs_root()}", flush=True)


def _powered(args, optional: dict) -> dict:
    """``reproduce --powered``: notebooks 01 and 06 (unless ``--only`` says otherwise) with the powered design's
    member splits (``profiles.POWERED``, or ``--splits``), in their own outputs folder ``powered/``."""
    os.environ["SMPLORA_OUTPUTS"] = str(paths.outputs_root() / "powered")
    args.only = args.only or ["01", "06"]
    out = {**profiles.POWERED, **optional}
    print(f"[smplora_nb] the powered audit: {out['n_splits']} member splits into {paths.outputs_root()}", flush=True)
    return out


def _train(profile: str, params: dict) -> int:
    """One run of ``config.make(profile, **params)``; every process of an ``accelerate launch`` runs this."""
    from accelerate import PartialState           # accelerate: heavy, only for the train command

    cfg = config.make(profile, **params)
    state = PartialState(cpu=not torch.cuda.is_available())
    items, splits = sets.prepare(cfg)
    with state.main_process_first():                     # one process builds (or converts) the base model
        base = models.base_model(cfg, splits, items)
    folder = runs.train(cfg, splits, base)
    if state.is_main_process:
        log = paths.read_json(folder / "train_log.json")
        print(json.dumps({"run": str(folder), "steps": log["steps"], "processes": log.get("processes", 1),
                          "proxy_consistent": log.get("proxy_consistent"),
                          "lora_consistent": log.get("lora_consistent")}), flush=True)
    state.destroy_process_group()                        # a clean exit (gloo aborts at teardown otherwise)
    return 0


if __name__ == "__main__":
    sys.exit(main())
