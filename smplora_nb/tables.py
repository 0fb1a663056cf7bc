"""Markdown tables of the series, all written by one writer (``markdown``): split counts, metrics with their
standard errors, claims, and any list of records (smplora_nb, arXiv 2402.11989 companion)."""
from __future__ import annotations

import csv
import io

import numpy as np

from . import paths
from .labels import UTILITIES as UTILITY_LABELS, label


ROLES = {"public": "pretrains the tiny base model (never seen by LoRA)",
         "member_aux": "in D_tr (LoRA trains on it) and in D_aux (the attacker knows it is a member)",
         "member_te": "in D_tr; evaluation only (D_te)",
         "nonmember_aux": "not trained on; in D_aux (the attacker knows it is a non-member)",
         "nonmember_te": "not trained on; evaluation only (D_te)"}


def fmt(v, digits: str = ".4g") -> str:
    """A cell: floats to ``digits``, None empty, anything else as text."""
    return "" if v is None else (format(v, digits) if isinstance(v, float) else str(v))


def markdown(rows: list[dict], columns=None, align: dict | None = None, digits: str = ".4g") -> str:
    """The one Markdown-table writer: ``rows`` of records, ``columns`` their keys (default: every key, in order),
    ``align`` {column: "l" | "r" | "c"} (default: right for numbers). A "|" in a cell is escaped."""
    columns = list(columns or dict.fromkeys(c for r in rows for c in r))
    align = align or {}
    def rule(c):
        a = align.get(c) or ("r" if any(isinstance(r.get(c), (int, float)) for r in rows) else "l")
        return {"l": "---", "r": "---:", "c": ":---:"}[a]

    cell = lambda v: fmt(v, digits).replace("|", "\\|")                # noqa: E731
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join(rule(c) for c in columns) + "|"]
    return "\n".join(out + ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows])


def counts_table(counts: dict) -> str:
    """The split protocol as a Markdown table of counts and roles."""
    return markdown([{"set": f"`{k}`", "images": n, "role": ROLES.get(k, "")} for k, n in counts.items()])


def mean_sem(s: dict, c: str) -> str:
    """"mean ± s.e." of metric ``c`` in ``{"mean": {...}, "sem": {...}}``; "n/m" = not measurable."""
    m, e = s["mean"].get(c), s.get("sem", {}).get(c)
    if m is None:
        return "n/m" if c in s["mean"] else ""
    return f"{m:.3f}" + (f" ± {e:.3f}" if e is not None else "")


def metric_table(rows: dict, columns=("asr", "auc", "auc_dev", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr", "fid",
                                      "kid"), extra: dict | None = None) -> str:
    """Markdown table ``{row key: {"mean": {...}, "sem": {...}}}``, rows shown by their labels; mean +- s.e.
    ``extra`` = ``{row key: {column: value}}`` adds columns beside the means (e.g. a run's training statistics)."""
    rows = {k: {**s, "mean": {**s["mean"], **(extra or {}).get(k, {})}} for k, s in rows.items()}
    return markdown([{"": label(k), **{c: mean_sem(s, c) for c in columns}} for k, s in rows.items()],
                    ["", *columns], align={c: "r" for c in columns})


def run_table(logs: dict) -> str:
    """The training runs ``{(model, k): train_log}`` as a Markdown table: model, split, seconds this session,
    epochs and steps."""
    return markdown([{"model": label(key[0]), "split": key[-1], "seconds": round(log["seconds_this_session"]),
                      "epochs": log["epochs"], "steps": log["steps"]} for key, log in logs.items()])


def _measured(c: dict) -> str:
    v, ci = c["value"], c.get("interval")
    text = "n/m" if v is None else (f"{v:.3f}" if isinstance(v, (int, float)) else str(v))
    return text + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def claims_table(claims: list) -> str:
    """Markdown table of ``claims`` records: what was claimed, what was measured (with its interval), the target,
    whether it held ("n/t": not testable at this size; "—": descriptive), and what it could detect."""
    def held(c):
        kind = c.get("kind", "claim")
        return {"not testable": "n/t", "descriptive": "—"}.get(kind) or ("yes" if c["holds"] else "**no**")

    return markdown([{"claim": c["claim"], "measured": _measured(c),
                      "target": f"{c['op']} {c['target']}" if c.get("target") is not None else "",
                      "holds": held(c), "power": c.get("power", "")} for c in claims],
                    align={"measured": "r", "target": "r", "holds": "c"})


def checks_table(checks: list) -> str:
    """Markdown table of ``claims.check`` records (bookkeeping, true by construction when the code is right)."""
    return markdown([{"check": c["check"], "value": c["value"], "ok": "yes" if c["ok"] else "**no**"} for c in checks])


def stats_table(stats: dict, keys) -> str:
    """Training statistics ``{model: {statistic: value}}`` as one row per statistic, one column per model."""
    return markdown([{"": k, **{label(m): s.get(k) for m, s in stats.items()}} for k in keys],
                    align={label(m): "r" for m in stats})


def attack_table(summary: dict, floors: dict, columns=("asr", "auc", "auc_dev", "tpr_at_1pct_fpr",
                                                        "tpr_at_5pct_fpr")) -> str:
    """Every model against every attack (``study.summaries``): mean ± s.e. over splits, and next to it the noise
    floor of ``auc_dev`` (its sd over splits, ``study.noise_floors``)."""
    rows = [{"model": label(m), "attack": label(a), **{c: mean_sem(s, c) for c in columns},
             "auc_dev sd over splits": floors[m][a]["sd"]} for m in summary for a, s in summary[m]["attacks"].items()]
    return markdown(rows, align={c: "r" for c in columns}, digits=".3f")


def pooled_rows(records: dict) -> list[dict]:
    """Pooled records (``powered.matrix``) as rows: AUC with its 95% interval, auc_dev with its TOST (90%)
    interval, the verdict, and the power figures the verdict was reached with."""
    return [{"model": label(m), "attack": label(a), "splits": len(r["splits"]),
             "auc [95%]": f"{r['auc']:.3f} [{r['ci']['auc'][0]:.3f}, {r['ci']['auc'][1]:.3f}]",
             "auc_dev [TOST 90%]": f"{r['auc_dev']:.3f} [{r['auc_dev_tost'][0]:.3f}, {r['auc_dev_tost'][1]:.3f}]",
             "verdict": r["verdict"], "defends: best upper end": round(r["power"]["defends_best_upper"], 3),
             "defends: power at AUC 0.5": round(r["power"]["defends_power_at_0.5"], 2),
             "leaks: AUC found with 80% power": round(r["power"]["leaks_auc_80"], 3)}
            for m, row in records.items() for a, r in row.items()]


def pooled_table(records: dict) -> str:
    """``pooled_rows`` as Markdown."""
    return markdown(pooled_rows(records))


def split_rows(records: dict) -> list[dict]:
    """Each model's AUC per member split and its spread (sd over splits), per attack."""
    return [{"model": label(m), "attack": label(a),
             **{f"split {k}": round(v, 3) for k, v in zip(r["splits"], r["auc_by_split"])},
             "sd over splits": round(float(np.std(r["auc_by_split"], ddof=1)), 3) if len(r["splits"]) > 1 else None}
            for m, row in records.items() for a, r in row.items()]


def dp_table(dp: dict) -> str:
    """DP-LoRA's accounting per model (``train_log.json``'s ``dp``): noise multiplier, epsilon spent, steps."""
    return markdown([{"model": label(m), "noise multiplier": round(v["noise_multiplier"], 4),
                      "epsilon target": v["epsilon_target"], "epsilon spent": round(v["epsilon_spent"], 3),
                      "steps": v["steps"], "sample rate": round(v["sample_rate"], 3)} for m, v in dp.items()])


def frontier_rows(frontier: dict) -> list[dict]:
    """``powered.frontier`` records as rows: each method's gap to the frontier with its paired interval. An end
    that is None (``metrics.json`` writes inf as null) is +inf: resamples where no checkpoint reaches the utility."""
    end = lambda v: "inf" if v is None else f"{v:.3f}"                 # noqa: E731
    return [{"attack": label(a), "utility": u, "method": label(m),
             "gap": None if g["gap"] is None else round(g["gap"], 3), "ci": f"[{end(g['ci'][0])}, {end(g['ci'][1])}]",
             "reachable": g["reachable"], "verdict": g["verdict"]}
            for a, by_u in frontier.items() for u, f in by_u.items() for m, g in f["gap"].items()]


def versus_rows(vs: dict) -> list[dict]:
    """SMP-LoRA against each utility-matched DP-LoRA (``records.build_06``'s ``vs_dp``)."""
    return [{"against": label(m), "auc_dev(DP) - auc_dev(SMP)": f"{v['auc_dev']['difference']:+.3f} "
             f"[{v['auc_dev']['ci'][0]:+.3f}, {v['auc_dev']['ci'][1]:+.3f}]", "verdict": v["auc_dev"]["verdict"],
             "held-out loss DP - SMP": f"{v['heldout_loss']['difference']:+.4f} [{v['heldout_loss']['ci'][0]:+.4f}, "
             f"{v['heldout_loss']['ci'][1]:+.4f}]"} for m, v in vs.items()]


def write(stem: str, name: str, rows: list[dict], columns: list[str] | None = None):
    """Write ``outputs/<stem>/<name>.csv`` and ``<name>.md`` (a Markdown table) atomically; floats to 4 digits."""
    columns = columns or list(dict.fromkeys(c for r in rows for c in r))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(columns)
    writer.writerows([[fmt(r.get(c)) for c in columns] for r in rows])
    folder = paths.stage_dir(stem)
    return (paths.atomic_write_bytes(folder / f"{name}.csv", buf.getvalue().encode()),
            paths.atomic_write_bytes(folder / f"{name}.md", (markdown(rows, columns) + "\n").encode()))


def write_csv(stem: str, name: str, rows: list[dict]):
    """Write ``outputs/<stem>/<name>.csv`` atomically, values as they are (e.g. the per-image scores)."""
    columns = list(dict.fromkeys(c for r in rows for c in r))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns)
    writer.writeheader()
    writer.writerows(rows)
    return paths.atomic_write_bytes(paths.stage_dir(stem) / f"{name}.csv", buf.getvalue().encode())


def ablation_markdown(tables: dict, references: dict, columns=("asr", "auc_dev", "tpr_at_5pct_fpr", "fid", "kid",
                                                             "digit_accuracy")) -> str:
    """Notebook 05's ablation tables, one per family, and the reference runs."""
    parts = [f"**{f}**\n\n" + markdown([{f: r[f], **{c: r.get(c) for c in columns}} for r in rows], [f, *columns],
                                         digits=".3f") for f, rows in tables.items()]
    refs = markdown([{"": label(k), **{c: r.get(c) for c in columns}} for k, r in references.items()], ["", *columns],
                    digits=".3f")
    return "\n\n".join(parts + ["**references**\n\n" + refs])


def write_ablations(stem: str, tables: dict) -> None:
    """Notebook 05's ablation tables as ``outputs/<stem>/ablation_<family>.csv`` and ``.md``."""
    for family, rows in tables.items():
        write(stem, f"ablation_{family}", rows, [family, "asr", "auc_dev", "tpr_at_5pct_fpr", "fid", "kid",
                                                  "digit_accuracy", "heldout_loss"])


def utility_table(utility: dict, floors: dict, comparisons: dict | None = None, reference: str = "lora") -> str:
    """Every model's utilities (means over splits, ``study.utilities``) with each one's sd over splits next to it
    (``study.utility_floors``); with ``comparisons`` (``{model: study.compare_utility(model, reference)}``), the
    verdict against ``reference``: "no difference" when inside the noise floor."""
    rows = []
    for m, u in utility.items():
        row = {"model": label(m)}
        for k, v in u.items():
            sd = floors.get(m, {}).get(k, {}).get("sd")
            row[UTILITY_LABELS.get(k, k)] = f"{v:.4g}" + (f" (sd {sd:.2g})" if sd is not None else "")
            if comparisons and m in comparisons:
                row[UTILITY_LABELS.get(k, k)] += f", {comparisons[m][k]['verdict']} vs {label(reference)}"
        rows.append(row)
    return markdown(rows)
