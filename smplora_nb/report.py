"""``outputs/REPORT.md``: this reproduction's numbers next to the paper's, assembled from every notebook's
``metrics.json`` (nothing is recomputed here).

The paper's numbers (Luo et al., AAAI 2025, arXiv 2402.11989; Pokemon, SD v1.5) are transcribed from
``PAPER.md``: Table 1 (FID / KID / ASR / ``auc_dev`` = abs(AUC - 0.5) / 0.5 / TPR at 5% FPR, mean over 3 seeds) and
the ablations of Tables 6 (lam), 7 (learning rate) and 8 (LoRA rank). Its FIDs use 768-d Inception features; the
``tiny`` profile's use a digit CNN, so only directions and ratios compare.
"""
from __future__ import annotations

import datetime
from pathlib import Path

from . import paths, schema
from .claims import counted
from .labels import label
from .power import describe
from .profiles import CONFIRM_SEEDS, DEV_SEEDS
from .tables import frontier_rows, markdown, utility_table, versus_rows

COLUMNS = ("fid", "kid", "asr", "auc_dev", "tpr_at_5pct_fpr")
PAPER_TABLE1 = {                                                       # Pokemon; ASR and TPR as fractions
    "lora": dict(fid=0.20, kid=0.003, asr=0.8227, auc_dev=0.73, tpr_at_5pct_fpr=0.0444),
    "mp_lora": dict(fid=2.10, kid=0.121, asr=0.5167, auc_dev=0.07, tpr_at_5pct_fpr=0.0223),
    "smp_lora": dict(fid=0.32, kid=0.004, asr=0.5197, auc_dev=0.14, tpr_at_5pct_fpr=0.0445),
}
PAPER_TABLE6 = {1.0: dict(fid=1.633, kid=0.0576, asr=0.460, auc_dev=0.16),    # SMP-LoRA lam
                0.5: dict(fid=1.769, kid=0.0694, asr=0.462, auc_dev=0.08),
                0.1: dict(fid=0.361, kid=0.0063, asr=0.471, auc_dev=0.08),
                0.05: dict(fid=0.274, kid=0.0057, asr=0.503, auc_dev=0.16),
                0.01: dict(fid=0.214, kid=0.0048, asr=0.612, auc_dev=0.20)}
PAPER_TABLE7 = {1.0: dict(lr=1e-4, fid=0.274, asr=0.503), 0.1: dict(lr=1e-5, fid=0.436, asr=0.462),  # lr factor
                0.01: dict(lr=1e-6, fid=0.802, asr=0.459)}
PAPER_TABLE8 = {2.0: dict(rank=128, fid=0.337, asr=0.561), 1.0: dict(rank=64, fid=0.274, asr=0.503),  # rank factor
                0.5: dict(rank=32, fid=0.512, asr=0.540), 0.25: dict(rank=16, fid=0.541, asr=0.531),
                0.125: dict(rank=8, fid=0.661, asr=0.489)}


def _f(v, digits: int = 3) -> str:
    return "" if v is None else f"{v:.{digits}f}"


def _pm(mean: dict, sem: dict, k: str) -> str:
    if mean.get(k) is None:
        return "n/m"
    return _f(mean[k]) + (f" ± {_f(sem[k])}" if sem.get(k) is not None else "")


def _load(root: Path) -> dict:
    out = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name[:2].isdigit()
                         and not p.name.endswith(".failed")):
        if (folder / "metrics.json").exists():
            out[folder.name] = {"metrics": schema.read(folder.name, root),
                                "run": paths.read_json(folder / "run_key.json")
                                if (folder / "run_key.json").exists() else {},
                                "figures": sorted(p.name for p in folder.glob("*.png"))}
    return out


def table1(m: dict) -> list[str]:
    """Notebook 04's Table 1 analogue next to the paper's Pokemon row."""
    rows = [{"method": label(k), **{f"{c} (here)": _pm(m[k]["mean"], m[k]["sem"], c) for c in COLUMNS},
             "paper: " + " / ".join(COLUMNS): " / ".join(f"{PAPER_TABLE1[k][c]:g}" for c in COLUMNS)
             if k in PAPER_TABLE1 else ""}
            for k in (*PAPER_TABLE1, "smp_lora_two_forwards", "lora_early_stop") if k in m]
    return [markdown(rows, align={f"{c} (here)": "r" for c in COLUMNS})]


def ablations(m: dict) -> list[str]:
    """Notebook 05's ablation tables next to the paper's Tables 6-8 (matched by value or by factor)."""
    out, grid = [], m.get("grid", {})
    specs = (("lam", "Table 6 (lam)", None, PAPER_TABLE6),
             ("lr", "Table 7 (learning rate)", "lr_factors", PAPER_TABLE7),
             ("rank", "Table 8 (LoRA rank)", "rank_factors", PAPER_TABLE8))
    for family, title, factors, paper in specs:
        rows = m.get("ablations", {}).get(family)
        if not rows:
            continue
        keys = grid.get(factors, []) if factors else [r[family] for r in rows]
        table = []
        for key, r in zip(keys, rows):
            p = paper.get(key)
            setting = "" if p is None else (f"lam {key:g}" if family == "lam" else f"{family} {p[family]:g} (x{key:g})")
            table.append({family: f"{r[family]:g}", "ASR": _f(r["asr"]), "auc_dev": _f(r["auc_dev"]),
                          "FID": _f(r["fid"]), "KID": _f(r["kid"]), "paper: setting": setting,
                          "paper FID": "" if p is None else p["fid"], "paper ASR": "" if p is None else p["asr"]})
        out += [f"**{title}**, SMP-LoRA, seed {m.get('seed')}", "",
                markdown(table, align={c: "r" for c in (family, "ASR", "auc_dev", "FID", "KID", "paper FID",
                                                         "paper ASR")}), ""]
    return out


def attacks06(m: dict) -> list[str]:
    """AUC [95% interval] and verdict of every method against every attack, pooled over the member splits, and the
    comparisons with LoRA stopped early and with utility-matched DP-LoRA."""
    cell = lambda r: f"{r['auc']:.2f} [{r['ci']['auc'][0]:.2f}, {r['ci']['auc'][1]:.2f}] {r['verdict']}"  # noqa: E731
    rows = [{"method": label(model), **{label(a): cell(m["pooled"][model][a]) for a in m["attack_order"]},
             "FID": _f(m["utility"][model]["fid"], 2)} for model in m["model_order"]]
    power = next(iter(m["pooled"]["smp_lora"].values()))["power"] if "smp_lora" in m["pooled"] else None
    out = [f"AUC on `D_te` [95% interval] and verdict, pooled over member splits {m.get('splits')}; every knob fitted "
           "on `D_aux`. Full table with the power figures: `06_stronger_attacks_and_baselines/attack_matrix.md`; "
           "per-image scores: `06_stronger_attacks_and_baselines/scores.csv`.", ""]
    if power:
        out += [f"What the verdicts could detect: {describe(power)}.", ""]
    out += [markdown(rows, align={c: "r" for c in rows[0] if c != "method"})]
    if m.get("frontier"):
        out += ["", "Against LoRA stopped early (gap in auc_dev at the method's utility, paired 95% interval):", "",
                markdown(frontier_rows(m["frontier"]))]
    if m.get("vs_dp"):
        out += ["", "Against DP-LoRA at matched held-out loss:", "", markdown(versus_rows(m["vs_dp"]))]
    return out


def seeds(found: dict) -> list[str]:
    """Which seeds produced this report: the confirmatory ones (``profiles.CONFIRM_SEEDS``, no choice of knobs looked
    at them), the development ones (``profiles.DEV_SEEDS``, where the knobs were chosen) or others."""
    split = found.get("01_data_splitting", {}).get("metrics", {}).get("split_seed")
    train = next((found[s]["metrics"].get("seeds") for s in ("02_membership_inference_attack",
                                                               "06_stronger_attacks_and_baselines") if s in found), None)
    train = [train[k] for k in sorted(train, key=int)] if isinstance(train, dict) else train   # split 10 after 9
    kind = "other seeds"
    for name, ref in (("confirmatory", CONFIRM_SEEDS), ("development", DEV_SEEDS)):
        if split == ref["split_seed"] and train and train[0] == ref["seed"]:
            kind = name
    return [f"This report's runs: split seed {split}, training seeds {train} (split k: seed + k): **{kind}**. The "
            f"protocol "
            f"(`profiles.DEV_SEEDS`, `profiles.CONFIRM_SEEDS`): every knob of the tiny profile was chosen on the "
            f"development split seed {DEV_SEEDS['split_seed']} and training seeds {DEV_SEEDS['seed']}, "
            f"{DEV_SEEDS['seed'] + 1}, {DEV_SEEDS['seed'] + 2} (`reproduce --dev`, into `outputs/dev/`); the headline "
            f"numbers come from the confirmatory split seed {CONFIRM_SEEDS['split_seed']} and training seeds "
            f"{CONFIRM_SEEDS['seed']}, {CONFIRM_SEEDS['seed'] + 1}, {CONFIRM_SEEDS['seed'] + 2} (`make demo`), "
            f"which played no part in any choice."]


def utilities(m: dict) -> list[str]:
    """Every model's utilities (means over seeds) with their seed sd (notebook 02 or 06)."""
    return [utility_table(m["utility"], m.get("utility_noise_floor", {}), m.get("utility_vs_lora"))]


def write(root: Path | None = None, command: str = "") -> Path:
    """Assemble ``outputs/REPORT.md`` from the notebooks' outputs under ``root`` and return its path."""
    root = Path(root) if root else paths.outputs_root()
    found = _load(root)
    lines = ["# Reproduction report", "",
             f"Assembled {datetime.datetime.now().isoformat(timespec='seconds')} from `{root}`"
             + (f" by `{command}`" if command else "") + ". Every number below is read from a notebook's "
             "`metrics.json`; the paper's numbers are Luo et al., AAAI 2025 (Pokemon, SD v1.5).", ""]
    if not found:
        lines.append("No notebook has finished yet: run `python -m smplora_nb reproduce`.")
    lines += ["## Seeds", ""] + seeds(found) + [""]
    lines += ["## Claims checked by each notebook", "", "| notebook | profile | claims held | run time |",
              "|---|---|---:|---:|"]
    for stem, d in found.items():
        claims = counted(d["metrics"].get("claims", []))
        secs = d["run"].get("seconds")
        lines.append(f"| [{stem}]({stem}/{stem}.ipynb) | {d['metrics'].get('profile', '')} | "
                     f"{sum(c['holds'] for c in claims)} / {len(claims)} | "
                     f"{'' if secs is None else f'{secs:.0f} s'} |")
    failed = [(stem, c) for stem, d in found.items() for c in counted(d["metrics"].get("claims", [])) if not c["holds"]]
    untestable = [(stem, c) for stem, d in found.items() for c in d["metrics"].get("claims", [])
                  if c.get("kind") == "not testable"]
    if failed:
        lines += ["", "Claims that did **not** hold:", ""]
        lines += [f"- `{stem}`: {c['claim']} (measured {_f(c['value'])}, target {c['op']} {c['target']})"
                  for stem, c in failed]
    if untestable:
        lines += ["", "Claims **not testable at this size** (neither held nor failed; what they would need):", ""]
        lines += [f"- `{stem}`: {c['claim']} ({c.get('power', '')})" for stem, c in untestable]
    m02 = found.get("02_membership_inference_attack", {}).get("metrics")
    if m02 and "utility" in m02:
        lines += ["", "## What fine-tuning buys (notebook 02)", "", "Means over member splits, sd over splits in brackets.",
                  ""] + utilities(m02)
    m04 = found.get("04_smp_lora_training", {}).get("metrics")
    if m04:
        lines += ["", "## Table 1 analogue (notebook 04)", "",
                  f"Mean ± s.e. over member splits {m04.get('splits')}; the paper's attack (loss-map MLP) on `D_te`. "
                  f"Quality features: {m04.get('feature_extractor', '')}.", ""] + table1(m04)
    m05 = found.get("05_ablations", {}).get("metrics")
    if m05:
        lines += ["", "## Ablations (notebook 05)", ""] + ablations(m05)
    m06 = found.get("06_stronger_attacks_and_baselines", {}).get("metrics")
    if m06:
        lines += ["", "## Other attacks, DP-LoRA and the early-stopping frontier (notebook 06)", ""] + attacks06(m06)
        lines += ["", "Utilities of notebook 06's models (means over splits; sd over splits; the verdict against LoRA is "
                  "\"no difference\" inside twice the larger sd):", ""] + utilities(m06)
    lines += ["", "## Figures", ""]
    for stem, d in found.items():
        if d["figures"]:
            lines.append(f"- **{stem}**: " + ", ".join(f"[{f[:-4]}]({stem}/{f})" for f in d["figures"]))
    return paths.atomic_write_bytes(root / "REPORT.md", ("\n".join(lines) + "\n").encode())
