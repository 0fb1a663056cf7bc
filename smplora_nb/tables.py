"""Markdown tables of the series, all written by one writer (``markdown``): split counts, metrics with their
standard errors, claims, and any list of records (smplora_nb, arXiv 2402.11989 companion)."""
from __future__ import annotations


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
                                      "kid")) -> str:
    """Markdown table ``{row key: {"mean": {...}, "sem": {...}}}``, rows shown by their labels; mean +- s.e."""
    from .viz import label

    return markdown([{"": label(k), **{c: mean_sem(s, c) for c in columns}} for k, s in rows.items()],
                    ["", *columns], align={c: "r" for c in columns})


def claims_table(claims: list) -> str:
    """Markdown table of ``metrics.claim`` records: what was claimed, what was measured, whether it held."""
    return markdown([{"claim": c["claim"], "measured": "n/m" if c["value"] is None else f"{c['value']:.3f}",
                      "target": f"{c['op']} {c['target']}", "holds": "yes" if c["holds"] else "**no**"}
                     for c in claims], align={"measured": "r", "target": "r", "holds": "c"})


def checks_table(checks: list) -> str:
    """Markdown table of ``claims.check`` records (bookkeeping, true by construction when the code is right)."""
    return markdown([{"check": c["check"], "value": c["value"], "ok": "yes" if c["ok"] else "**no**"} for c in checks])


def stats_table(stats: dict, keys) -> str:
    """Training statistics ``{model: {statistic: value}}`` as one row per statistic, one column per model."""
    from .viz import label

    return markdown([{"": k, **{label(m): s.get(k) for m, s in stats.items()}} for k in keys],
                    align={label(m): "r" for m in stats})


def attack_table(summary: dict, floors: dict, columns=("asr", "auc", "auc_dev", "tpr_at_1pct_fpr",
                                                        "tpr_at_5pct_fpr")) -> str:
    """Every model against every attack (``study.summaries``): mean ± s.e. over seeds, and next to it the seed-noise
    floor of ``auc_dev`` (its sd over seeds, ``study.noise_floors``)."""
    from .viz import label

    rows = [{"model": label(m), "attack": label(a), **{c: mean_sem(s, c) for c in columns},
             "auc_dev sd over seeds": floors[m][a]["sd"]} for m in summary for a, s in summary[m]["attacks"].items()]
    return markdown(rows, align={c: "r" for c in columns}, digits=".3f")


def interval(r: dict, stat: str) -> str:
    """"value [lo, hi]" of a record's ``stat`` and its bootstrap interval; "n/m" when not measurable."""
    v, ci = r[stat], r["ci"][stat]
    return "n/m" if v is None or ci is None else f"{v:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]"


def matrix_rows(matrix: dict) -> list[dict]:
    """The attack matrix (``study.matrix``) as table rows: AUC and TPRs with their intervals, ASR, the D_aux choice."""
    from .viz import label

    return [{"method": label(m), "attack": label(a), "auc": interval(r, "auc"),
             "tpr_at_1pct_fpr": interval(r, "tpr_at_1pct_fpr"), "tpr_at_5pct_fpr": interval(r, "tpr_at_5pct_fpr"),
             "asr": round(r["asr"], 3), "chosen_on_aux": r["chosen_on_aux"].get("timestep",
                                                                                r["chosen_on_aux"].get("chosen_epoch"))}
            for m in matrix for a, r in matrix[m].items()]


def spread_rows(spread: list[dict]) -> list[dict]:
    """``study.spread`` records as table rows "mean ± sd" per attack."""
    from .viz import label

    return [{"method": label(r["model"]), "over": f"{r['n']} {r['over']}",
             **{label(a): f"{v['mean']:.2f} ± {v['sd']:.2f}" for a, v in r.items() if isinstance(v, dict)}}
            for r in spread]


def ablation_markdown(tables: dict, references: dict, columns=("asr", "auc_dev", "tpr_at_5pct_fpr", "fid", "kid",
                                                             "digit_accuracy")) -> str:
    """Notebook 05's ablation tables, one per family, and the reference runs."""
    from .viz import label

    parts = [f"**{f}**\n\n" + markdown([{f: r[f], **{c: r.get(c) for c in columns}} for r in rows], [f, *columns],
                                         digits=".3f") for f, rows in tables.items()]
    refs = markdown([{"": label(k), **{c: r.get(c) for c in columns}} for k, r in references.items()], ["", *columns],
                    digits=".3f")
    return "\n\n".join(parts + ["**references**\n\n" + refs])


def utility_table(utility: dict, floors: dict, comparisons: dict | None = None, reference: str = "lora") -> str:
    """Every model's utilities (means over seeds, ``study.utilities``) with each one's seed sd next to it
    (``study.utility_floors``); with ``comparisons`` (``{model: study.compare_utility(model, reference)}``), the
    verdict against ``reference``: "no difference" when inside the noise floor."""
    from .viz import UTILITY_LABELS, label

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
