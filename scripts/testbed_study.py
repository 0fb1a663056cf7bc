"""The testbed study of issue 28, on the development seeds only (``profiles.DEV_SEEDS``; the confirmatory seeds play
no part): which tiny testbed puts plain LoRA in the paper's regime?

    python scripts/testbed_study.py [--arms digits/shared digits/descriptive emoji/shared emoji/descriptive
                                     digits/shared/x2] [--splits 3]

Each arm is a dataset, a caption scheme and a training dose (``x2``: twice the profile's epochs; the dose arm tests
whether training longer alone is enough, the cheaper alternative to a new testbed), run on the
development split over ``--splits`` member splits with the powered audit's machinery: the base model and plain LoRA
on every split, audited by every attack of the registry; the paper's attack and the strongest attack chosen on
plain LoRA's D_aux, pooled over the splits. For each arm: what fine-tuning buys (held-out loss gain with its paired
interval, FID with its sampling floor, sample accuracy where labels exist), plain LoRA's leakage, and the measured
time of its training and audits, from which the demo's time is estimated. Writes ``outputs/dev/testbeds/<arm>/``
(each dataset and caption scheme its own outputs root) and ``outputs/dev/testbed_study.json`` (arms not rerun keep their earlier rows), and prints the table and the rule's
decision (``RULE``, fixed before any arm was run).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RULE = ("adopt the arm with the highest lower end of the paper's attack's pooled AUC interval among those where (a) "
        "fine-tuning buys held-out fit (the paired interval of the held-out gain over the base model above 0) and "
        "quality (FID better than the base model's by more than the sampling floor on every split), (b) plain LoRA "
        "leaks to the paper's attack clearly (the lower end of its pooled AUC interval above 0.5) with an AUC in "
        "the paper's range (auc_dev >= 0.5, i.e. AUC >= 0.75; the paper's LoRA: auc_dev 0.73 to 0.94), and (c) the "
        "demo budget: a training run costs at most 1.1 times the current default's, in rows trained (a step costs in "
        "proportion to its rows; training and audits are the demo's time, and the audits' sizes are the same for "
        "every arm); if none passes, keep the digits")


def arm_config(arm: str):
    from smplora_nb import config, profiles

    dataset, captions, *dose = arm.split("/")
    cfg = config.make("tiny", dataset=dataset, captions=captions, **profiles.DEV_SEEDS)
    return config.replace(cfg, epochs=cfg.train.epochs * 2) if dose == ["x2"] else cfg


def run_arm(arm: str, n_splits: int) -> dict:
    """Train and audit one arm in its own outputs root; return its row."""
    from smplora_nb import attack, grids, paths, powered, runs, study
    from smplora_nb.bench import Bench

    name = "_".join(arm.split("/")[:2])                  # a dose arm shares its base model
    os.environ[paths.ENV_VAR] = str(ROOT.parent if name == "digits_shared" else ROOT / name)   # today's default:
    # the development series' own folder, whose base model and notebook-02 runs it reuses
    bench, ks = Bench(arm_config(arm)), grids.splits(n_splits)
    t0 = time.time()
    trained = bench.train(grids.method_runs(bench.cfg, ["lora"], ks, {}))
    t1 = time.time()
    audited = {**{("base", k): None for k in ks}, **trained}
    evals = bench.evaluate(audited, attacks=tuple(attack.ATTACKS))
    t2 = time.time()
    d = powered.draws(evals)
    by = {m: [(m, k) for k in ks] for m in ("base", "lora")}
    records, objs = powered.matrix(evals, by, list(attack.ATTACKS), d)
    strongest = powered.strongest(evals, by["lora"], study.THRESHOLD_ATTACKS)
    mc = bench.cfg.model
    from smplora_nb import evaluate

    floor = evaluate.fid_floor(bench.base, trained["lora", 0], bench.split(0), bench.extractor, mc.sample_steps,
                               mc.guidance_scale)["fid"]
    utility = study.utilities(evals, by=by)
    per = study.utility_per_split(evals, by=by)
    gain = powered.utility_versus(evals, by["lora"], by["base"], "heldout_loss", d)   # base - LoRA: > 0 = LoRA fits
    logs = runs.logs(trained)
    paper, best = records["lora"][attack.PAPER_ATTACK], records["lora"][strongest]
    return {"arm": arm, "splits": ks, "epochs": bench.cfg.train.epochs,
            "n_private_sets": sum(len(bench.split(0)[name]) for name in ("member_aux", "member_te", "nonmember_aux",
                                                                          "nonmember_te")),
            "n_members": len(bench.split(0)["member_aux"]) + len(bench.split(0)["member_te"]),
            "distinct_member_captions": len({it.caption for it in bench.split(0)["member_aux"] + bench.split(0)["member_te"]}),
            "heldout_gain": 1 - utility["lora"]["heldout_loss"] / utility["base"]["heldout_loss"],
            "heldout_gap_ci": gain["ci"], "fid_base": utility["base"]["fid"], "fid_lora": utility["lora"]["fid"],
            "fid_floor": floor, "fid_better_every_split": all(per["base"][s]["fid"] - r["fid"] > floor
                                                               for s, r in per["lora"].items()),
            "sample_accuracy_base": utility["base"].get("sample_accuracy"),
            "sample_accuracy_lora": utility["lora"].get("sample_accuracy"),
            "paper_auc": paper["auc"], "paper_ci": paper["ci"]["auc"], "strongest": strongest,
            "strongest_auc": best["auc"], "strongest_ci": best["ci"]["auc"],
            "lora_auc": {a: [r["auc"], *r["ci"]["auc"]] for a, r in records["lora"].items()},   # every attack, pooled
            "base_verdicts": {a: r["verdict"] for a, r in records["base"].items()},
            "train_seconds_per_run": sum(log["seconds_this_session"] for log in logs.values()) / len(logs),
            "wall_train": t1 - t0, "wall_audit": t2 - t1}


def decide(rows: list[dict], reference: dict) -> str:
    """``RULE`` applied to the rows; ``reference`` is the current default's row (digits/shared)."""
    def passes(r):
        buys = r["heldout_gap_ci"][0] > 0 and r["fid_better_every_split"]
        leaks = r["paper_ci"][0] > 0.5 and r["paper_auc"] >= 0.75
        cost = r["epochs"] * r["n_members"] <= 1.1 * reference["epochs"] * reference["n_members"]   # rows trained
        return buys and leaks and cost
    ok = [r for r in rows if passes(r)]
    return max(ok, key=lambda r: r["paper_ci"][0])["arm"] if ok else "digits/shared (none passes: keep the digits)"


def table(rows: list[dict]) -> str:
    """The study as a Markdown table (benchmarks/RESULTS.md)."""
    def ci(v):
        return f"[{v[0]:.3f}, {v[1]:.3f}]"
    head = ("| arm | distinct member captions | held-out gain (interval of base - LoRA) | FID base -> LoRA (floor; "
            "better every split) | sample accuracy base -> LoRA | paper's attack AUC [95%] | strongest (D_aux) AUC "
            "[95%] | s per LoRA run |\n|---|---|---|---|---|---|---|---|")
    lines = [head]
    for r in rows:
        acc = ("n/a" if r["sample_accuracy_lora"] is None else
               f"{r['sample_accuracy_base']:.2f} -> {r['sample_accuracy_lora']:.2f}")
        lines.append(f"| {r['arm']} | {r['distinct_member_captions']} | {r['heldout_gain']:+.1%} {ci(r['heldout_gap_ci'])}"
                     f" | {r['fid_base']:.2f} -> {r['fid_lora']:.2f} ({r['fid_floor']:.3f}; "
                     f"{'yes' if r['fid_better_every_split'] else 'no'}) | {acc} | {r['paper_auc']:.3f} "
                     f"{ci(r['paper_ci'])} | {r['strongest']} {r['strongest_auc']:.3f} {ci(r['strongest_ci'])} | "
                     f"{r['train_seconds_per_run']:.0f} |")
    return "\n".join(lines)


ROOT = Path()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arms", nargs="+", default=["digits/shared", "digits/descriptive", "emoji/shared",
                                                  "emoji/descriptive", "digits/shared/x2"])
    ap.add_argument("--splits", type=int, default=3)
    args = ap.parse_args(argv)
    from smplora_nb import paths

    global ROOT
    ROOT = paths.outputs_root() / "dev" / "testbeds"
    earlier = paths.read_json(ROOT.parent / "testbed_study.json") if (ROOT.parent / "testbed_study.json").exists() else {}
    rows = [r for r in earlier.get("rows", []) if r["arm"] not in args.arms]   # arms not rerun keep their rows
    for arm in args.arms:
        print(f"[testbed study] {arm}", flush=True)
        rows.append(run_arm(arm, args.splits))
        print(json.dumps(rows[-1], default=str), flush=True)
    order = ap.get_default("arms")
    rows.sort(key=lambda r: order.index(r["arm"]) if r["arm"] in order else len(order))
    reference = next((r for r in rows if r["arm"] == "digits/shared"), rows[0])
    out = {"rule": RULE, "rows": rows, "decision": decide(rows, reference)}
    paths.write_json(ROOT.parent / "testbed_study.json", out)
    print(table(rows))
    print(f"[testbed study] decision: {out['decision']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
