"""Per-step cost of lora, mp_lora and smp_lora (one forward, two forwards; paper's and calibrated proxy feature).

Usage: ``python benchmarks/step_cost.py [--epochs 10] [--repeats 2] [--profile tiny] [-p NAME VALUE]``; on a GPU
it runs there (``scripts/gpu_check.sh`` passes ``-p mixed_precision bf16``). Trains each variant for a few
epochs (base model from the usual cache, pretrained if missing) in a temporary outputs folder, in this process with
torch's default threads, and prints seconds per step (the fastest of ``repeats`` runs, which damps a shared
machine's noise) and the ratio to ``lora``. Goal (issue 4): ``smp_lora`` at most 1.3x a ``lora`` step.

What each private step adds to a LoRA step: a U-Net forward without gradient on the proxy's balanced D_aux batch
(the proxy step, Algorithm 1 order; the MI gain reads the maps of the training forward); ``two forwards`` adds a second U-Net forward with gradient for the MI gain (official
code); ``calibrated`` adds one forward of a frozen base copy without gradient for the reference maps; ``mp_lora``
takes its gradient as two backward passes to log each term's scale (Fig. 2).
"""
from __future__ import annotations

import argparse
import os
import tempfile

from smplora_nb import config, models, paths, runs, sets

VARIANTS = {"lora": {},
            "mp_lora": {"method": "mp_lora"},
            "smp_lora (paper's raw-map feature)": {"method": "smp_lora", "proxy_feature": "paper"},
            "smp_lora (two forwards, raw map)": {"method": "smp_lora", "proxy_feature": "paper", "two_forwards": True},
            "smp_lora (calibrated feature)": {"method": "smp_lora", "proxy_feature": "calibrated"},
            "smp_lora (two forwards, calibrated)": {"method": "smp_lora", "proxy_feature": "calibrated",
                                                    "two_forwards": True}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--profile", default="tiny")
    ap.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="config field, e.g. -p mixed_precision bf16 (on a GPU)")
    args = ap.parse_args()
    from smplora_nb import runner

    extra = {name: runner.parse_value(value) for name, value in args.parameter}
    cfg = config.make(args.profile, epochs=args.epochs, **extra)
    items, splits = sets.prepare(cfg)
    base = models.base_model(cfg, splits, items)                        # cached in the usual outputs folder
    per_step = {name: float("inf") for name in VARIANTS}
    for _ in range(args.repeats):
        os.environ[paths.ENV_VAR] = tempfile.mkdtemp(prefix="step_cost_")  # runs go to a throwaway folder
        for name, overrides in VARIANTS.items():
            log = paths.read_json(runs.train(config.replace(cfg, **overrides), splits, base, progress=False)
                                  / "train_log.json")
            per_step[name] = min(per_step[name], log["seconds_this_session"] / log["steps"])
    import torch

    where = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    print(f"{args.profile} profile, {args.epochs} epochs, fastest of {args.repeats}, {where}, {extra or ''}")
    print(f"{'variant':<38}{'s/step':>9}{'x lora':>9}")
    for name, sec in per_step.items():
        print(f"{name:<38}{sec:>9.4f}{sec / per_step['lora']:>9.2f}")


if __name__ == "__main__":
    main()
