"""Per-step cost of lora, mp_lora, smp_lora (one forward) and smp_lora (two forwards, as the official code).

Usage: ``python benchmarks/step_cost.py [--epochs 5] [--profile tiny]``. Trains each variant for a few epochs on the
tiny default (base model from the cache, pretrained if missing) in a temporary outputs folder and prints seconds per
step and the ratio to ``lora``. Goal (issue 4): ``smp_lora`` at most 1.3x a ``lora`` step. ``mp_lora`` also pays
for its per-term gradient diagnostics (two extra gradient computations per step).
"""
from __future__ import annotations

import argparse
import os
import tempfile

from smplora_nb import config, data, models, paths, train

VARIANTS = {"lora": {}, "mp_lora": {"method": "mp_lora"}, "smp_lora": {"method": "smp_lora"},
            "smp_lora (two forwards)": {"method": "smp_lora", "two_forwards": True},
            "smp_lora (calibrated proxy)": {"method": "smp_lora", "proxy_feature": "calibrated"}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--profile", default="tiny")
    args = ap.parse_args()
    cfg = config.make(args.profile, epochs=args.epochs)
    items, splits = data.prepare(cfg)
    base = models.base_model(cfg, splits, items)                        # cached in the usual outputs folder
    os.environ[paths.ENV_VAR] = tempfile.mkdtemp(prefix="step_cost_")     # runs go to a throwaway folder
    per_step = {}
    for name, overrides in VARIANTS.items():
        log = paths.read_json(train.train(config.replace(cfg, **overrides), splits, base, progress=False)
                              / "train_log.json")
        per_step[name] = log["seconds_this_session"] / log["steps"]
    print(f"{'variant':<30}{'s/step':>9}{'x lora':>9}")
    for name, sec in per_step.items():
        print(f"{name:<30}{sec:>9.4f}{sec / per_step['lora']:>9.2f}")


if __name__ == "__main__":
    main()
