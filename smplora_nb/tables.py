"""Markdown tables of the series: split counts, metrics with their standard errors, claims (smplora_nb, arXiv
2402.11989 companion)."""
from __future__ import annotations


ROLES = {"public": "pretrains the tiny base model (never seen by LoRA)",
         "member_aux": "in D_tr (LoRA trains on it) and in D_aux (the attacker knows it is a member)",
         "member_te": "in D_tr; evaluation only (D_te)",
         "nonmember_aux": "not trained on; in D_aux (the attacker knows it is a non-member)",
         "nonmember_te": "not trained on; evaluation only (D_te)"}


def counts_table(counts: dict) -> str:
    """The split protocol as a Markdown table of counts and roles."""
    rows = ["| set | images | role |", "|---|---:|---|"]
    rows += [f"| `{name}` | {n} | {ROLES.get(name, '')} |" for name, n in counts.items()]
    return "\n".join(rows)


def metric_table(rows: dict, columns=("asr", "auc", "auc_dev", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr", "fid",
                                      "kid")) -> str:
    """Markdown table ``{row label: {"mean": {...}, "sem": {...}}}``; mean +- s.e.; "n/m" = not measurable."""
    def cell(s, c):
        m, e = s["mean"].get(c), s.get("sem", {}).get(c)
        if m is None:
            return "n/m" if c in s["mean"] else ""
        return f"{m:.3f}" + (f" ± {e:.3f}" if e is not None else "")

    out = ["| | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    out += [f"| {label} | " + " | ".join(cell(s, c) for c in columns) + " |" for label, s in rows.items()]
    return "\n".join(out)


def claims_table(claims: list) -> str:
    """Markdown table of ``metrics.claim`` records: what was claimed, what was measured, whether it held."""
    rows = ["| claim | measured | target | holds |", "|---|---:|---:|:---:|"]
    for c in claims:
        v = "n/m" if c["value"] is None else f"{c['value']:.3f}"
        text = c["claim"].replace("|", "\\|")                          # a "|" would split the Markdown cell
        rows.append(f"| {text} | {v} | {c['op']} {c['target']} | {'yes' if c['holds'] else '**no**'} |")
    return "\n".join(rows)
