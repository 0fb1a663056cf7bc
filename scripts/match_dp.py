"""Choose DP-LoRA's budget on the development seeds so that its held-out loss matches SMP-LoRA's (issue 27: the
utility-matched DP baseline of Aerni et al., CCS 2024). Development seeds only (``profiles.DEV_SEEDS``); the
confirmatory seeds play no part.

    python scripts/match_dp.py [--epsilons 8 32 128 512 2048] [--splits 2] [--dp-epochs 30] [--lam 3.0]

Trains SMP-LoRA and DP-LoRA at every epsilon on the first ``--splits`` member splits of the development split,
measures each model's held-out loss (the mean loss of D_te's non-members, the frontier's utility), and picks, by a
rule fixed before looking: the epsilon whose held-out loss (mean over the splits) is closest to SMP-LoRA's. Writes
``outputs/dev/dp_match.json`` (``dp_match_lam<lam>.json`` when SMP-LoRA's ``--lam`` is given) and prints a table.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epsilons", nargs="+", type=float, default=[8, 32, 128, 512, 2048])
    ap.add_argument("--splits", type=int, default=2)
    ap.add_argument("--dp-epochs", type=int, default=30)
    ap.add_argument("--lam", type=float, default=None, help="SMP-LoRA's lam (default: the profile's)")
    args = ap.parse_args(argv)
    from smplora_nb import config, paths, profiles

    os.environ.setdefault(paths.ENV_VAR, str(paths.outputs_root() / "dev"))
    from smplora_nb import grids, study
    from smplora_nb.bench import Bench

    cfg = config.make("tiny", **profiles.DEV_SEEDS)
    bench, ks = Bench(cfg), grids.splits(args.splits)
    hessian = dict(hessian_every=30, hessian_iters=12)                 # notebook 04's split-0 run, shared
    smp_cfg = cfg if args.lam is None else config.replace(cfg, lam=args.lam)
    jobs = {**grids.method_runs(smp_cfg, ["smp_lora"], ks, hessian), **grids.dp_runs(cfg, args.epsilons, args.dp_epochs, ks)}
    evals = bench.evaluate(bench.train(jobs), attacks=("loss_at_t",), mlp_epochs=100)
    loss = {m: u["heldout_loss"] for m, u in study.utilities(evals).items()}
    target = loss.pop("smp_lora")
    chosen = min(args.epsilons, key=lambda e: abs(loss[grids.dp_key(e)] - target))
    out = {"rule": "the epsilon whose held-out loss (mean over the splits) is closest to SMP-LoRA's",
           "seeds": profiles.DEV_SEEDS, "splits": ks, "dp_epochs": args.dp_epochs, "lam": smp_cfg.train.lam,
           "smp_lora": target,
           "dp_lora": {e: loss[grids.dp_key(e)] for e in args.epsilons}, "chosen_epsilon": chosen}
    name = "dp_match.json" if args.lam is None else f"dp_match_lam{args.lam:g}.json"
    paths.write_json(paths.outputs_root() / name, out)
    print(f"SMP-LoRA held-out loss {target:.5f} (development, splits {ks})")
    for e in args.epsilons:
        print(f"  DP-LoRA eps {e:g}: {loss[grids.dp_key(e)]:.5f}" + ("   <- chosen" if e == chosen else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
