"""The figures of the privacy audit (smplora_nb, arXiv 2402.11989 companion): ROC curves, privacy against image
quality (Fig. 1d), the ablations' privacy-utility curves (Tables 6-8), the attack matrix and the early-stopping
frontier. The figures of data and training, and ``save``/``show``, are ``viz``.

Functions return a matplotlib ``Figure``; notebooks save and show it with ``viz.save``.
"""
from __future__ import annotations

import numpy as np

from . import metrics, viz
from .labels import PAPER_ATTACK, UTILITIES as UTILITY_LABELS, label
from .pooled import auc_dev_interval

plt = viz.plt                          # pyplot with the backend ``viz`` chose (headless unless a notebook's is active)


def roc_curves(curves: dict, title: str = "ROC on D_te"):
    """ROC curves ``{label: (scores_member, scores_nonmember)}`` on linear and log-log axes (members positive)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    for name, (sm, sn) in curves.items():
        fpr, tpr = metrics.roc(sm, sn)
        for ax in axes:
            ax.plot(fpr, tpr, label=label(name), drawstyle="steps-post")
    floor = 1.0 / max(len(sn) for _, sn in curves.values())
    for ax, log in zip(axes, (False, True)):
        ax.plot([floor, 1] if log else [0, 1], [floor, 1] if log else [0, 1], "k:", lw=1, label="chance")
        ax.set_xlabel("false positive rate (non-members flagged)")
        ax.set_ylabel("true positive rate (members found)")
        if log:
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlim(floor, 1)
            ax.set_ylim(floor, 1)
            ax.set_title("log-log: the low-FPR regime")
        else:
            ax.set_title(title)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def roc_records(records: dict, title: str = "ROC on D_te"):
    """``roc_curves`` of attack records (``attack.audit``): ``{key: record}`` with their D_te scores."""
    return roc_curves({k: (r["scores_member"], r["scores_nonmember"]) for k, r in records.items()}, title)


def roc_models(evals: dict, models, attacks, split: int = 0, title: str = "ROC on D_te"):
    """``roc_records`` of every model of ``models`` against every attack of ``attacks`` on member split ``split`` of
    ``evals`` (``{(model, k): evaluation}``), labelled by the model (and "model / attack" for several attacks)."""
    return roc_records({m if len(attacks) == 1 else f"{label(m)} / {label(a)}": evals[m, split]["audit"][a]
                        for m in models for a in attacks}, title)


def privacy_utility(points: dict, x: str = "fid", y: str = "asr", title: str = "Privacy vs image quality"):
    """Fig. 1d analogue: ``{label: {"mean": {...}, "sem": {...}, "per_split": [{...}, ...]}}``; small dots are splits,
    large markers with error bars are means ± s.e.; ASR 0.5 is chance."""
    fig, ax = plt.subplots(figsize=(5.2, 3.9))
    for i, (name, p) in enumerate(points.items()):
        color = f"C{i}"
        for s in p.get("per_split", []):
            ax.scatter(s[x], s[y], s=12, color=color, alpha=0.45)
        ax.errorbar(p["mean"][x], p["mean"][y], xerr=p.get("sem", {}).get(x), yerr=p.get("sem", {}).get(y),
                    fmt="o", ms=8, color=color, capsize=3, label=label(name))
    ax.axhline(0.5, color="k", ls=":", lw=1, label="chance")
    ax.set_xlabel(f"{x.upper()} (lower = better images)")
    ax.set_ylabel(f"{y.upper()} of the loss-map MLP (lower = more private)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def ablation_curves(families: dict, references: dict, ys=("asr", "auc_dev"), x: str = "fid"):
    """Privacy-utility curves of ablations (Tables 6-8 analogue): one panel per privacy metric in ``ys``.

    ``families`` is ``{family: [(setting label, metrics dict), ...]}`` in grid order (each family is a line, each
    setting a labelled point); ``references`` is ``{label: metrics dict}`` (e.g. LoRA and MP-LoRA), drawn as stars.
    """
    fig, axes = plt.subplots(1, len(ys), figsize=(5.2 * len(ys), 4.0), squeeze=False)
    for ax, y in zip(axes[0], ys):
        labels = {}                                          # settings that are the same run share one label
        for i, (family, pts) in enumerate(families.items()):
            xs, vs = [p[x] for _, p in pts], [p[y] for _, p in pts]
            ax.plot(xs, vs, "o-", color=f"C{i}", label=family)
            for (setting, p) in pts:
                labels.setdefault((p[x], p[y]), []).append(setting)
        for xy, names in labels.items():
            ax.annotate("\n".join(names), xy, fontsize=7, xytext=(3, 3), textcoords="offset points")
        for j, (name, p) in enumerate(references.items()):
            ax.scatter(p[x], p[y], marker="*", s=160, color=f"C{len(families) + j}", label=label(name), zorder=3)
        if y == "asr":
            ax.axhline(0.5, color="k", ls=":", lw=1, label="chance")
        ax.set_xlabel(f"{x.upper()} (lower = better images)")
        ax.set_ylabel(f"{y} of the loss-map MLP (lower = more private)")
        ax.legend(fontsize=7)
    fig.suptitle("SMP-LoRA ablations: privacy vs image quality", fontsize=10)
    fig.tight_layout()
    return fig


def attack_matrix(rows: dict, attacks, stat: str = "auc", title: str = "Attack AUC on D_te (95% bootstrap interval)"):
    """Heatmap of ``rows[method][attack]`` = ``{stat: value, "ci": {stat: [lo, hi]}}``: colour = the value, text =
    value and interval; a cell whose interval contains 0.5 (no attack success shown) is marked with "~"."""
    methods = list(rows)
    vals = np.array([[rows[m][a][stat] if a in rows[m] else np.nan for a in attacks] for m in methods], float)
    fig, ax = plt.subplots(figsize=(1.5 + 1.45 * len(attacks), 0.9 + 0.55 * len(methods)))
    im = ax.imshow(vals, cmap="RdYlGn_r", vmin=0.3, vmax=1.0, aspect="auto")
    for i, m in enumerate(methods):
        for j, a in enumerate(attacks):
            if a not in rows[m]:
                continue
            lo, hi = rows[m][a]["ci"][stat]
            mark = "~" if lo <= 0.5 <= hi else ""
            ax.text(j, i, f"{mark}{vals[i, j]:.2f}\n[{lo:.2f}, {hi:.2f}]", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(attacks)), [label(a) for a in attacks], rotation=20, ha="right", fontsize=7)
    ax.set_yticks(range(len(methods)), [label(m) for m in methods])
    ax.set_title(title + '; "~": interval contains 0.5', fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    return fig


def frontier(f: dict, xlabel: str = "", title: str = "Privacy against the early-stopping frontier"):
    """A ``powered.frontier`` record: plain LoRA along training (checkpoints pooled over the splits, linked in
    training order: the frontier is interpolated along these segments) and each method's point, auc_dev against
    the utility, with the AUC's 95% interval turned into auc_dev. A defense helps only where it lies below the
    line at its own utility (the gap, with its paired interval, in the legend)."""
    x, y = f["utility"], "auc_dev"
    fig, ax = plt.subplots(figsize=(6.2, 4.4))
    curve = f["curve"]
    cx, cy = [c[x] for c in curve], [c[y] for c in curve]
    ends = [auc_dev_interval(c["ci"]) for c in curve]
    ax.errorbar(cx, cy, yerr=[[max(c[y] - lo, 0) for c, (lo, _) in zip(curve, ends)],
                              [max(hi - c[y], 0) for c, (_, hi) in zip(curve, ends)]], fmt="-s", ms=3, color="0.45",
                ecolor="0.75", lw=1.5, capsize=2, label="LoRA along training (early stopping)")
    for c in curve:
        ax.annotate(f"ep {c['epoch']}", (c[x], c[y]), fontsize=6, color="0.3", xytext=(3, 3), textcoords="offset points")
    for i, (name, p) in enumerate(f["points"].items()):
        lo, hi = auc_dev_interval(p["ci"])
        g = f["gap"][name]
        ax.errorbar(p[x], p[y], yerr=[[max(p[y] - lo, 0)], [max(hi - p[y], 0)]], fmt="o", ms=7, color=f"C{i}",
                    capsize=3, label=f"{label(name)}: gap [{g['ci'][0]:.2f}, {g['ci'][1]:.2f}], {g['verdict']}")
    xs = cx + [p[x] for p in f["points"].values()]
    log = min(xs) > 0 and max(xs) / min(xs) > 5
    if log:
        ax.set_xscale("log")
    ax.set_xlabel((xlabel or UTILITY_LABELS.get(x, x)) + ("; log scale" if log else ""))
    ax.set_ylabel(f"auc_dev of {label(f['attack'])} on D_te (0 = chance)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6.5)
    fig.tight_layout()
    return fig


def save_frontiers(frontiers: dict, stem: str, attack: str = PAPER_ATTACK) -> None:
    """Save and show every ``frontier`` of notebook 06's record ``{attack: {utility: frontier}}`` as
    ``frontier_mlp_<utility>.png`` (the paper's ``attack``) or ``frontier_strongest_<utility>.png``."""
    for a, by_utility in frontiers.items():
        for u, f in by_utility.items():
            viz.save(frontier(f, title=f"{label(a)}: SMP-LoRA and DP-LoRA against plain LoRA along training"),
                     stem, f"frontier_{'mlp' if a == attack else 'strongest'}_{u}")
