"""Every figure of the series, one look across notebooks (smplora_nb, arXiv 2402.11989 companion).

Functions return a matplotlib ``Figure``; notebooks save it with ``paths.save_figure`` (via ``viz.save``) and show it.
"""
from __future__ import annotations

import matplotlib

if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline", "inline"):
    matplotlib.use("Agg")                            # headless (papermill, CI) unless a notebook backend is active
import matplotlib.pyplot as plt
import numpy as np

from . import paths
from .labels import UTILITIES as UTILITY_LABELS, label  # noqa: F401  (re-exported: viz.label)

SET_COLORS = {"public": "#7f7f7f", "member_aux": "#d62728", "member_te": "#ff9896",
              "nonmember_aux": "#1f77b4", "nonmember_te": "#aec7e8"}


def save(fig, stem: str, name: str):
    """Save ``fig`` as ``outputs/<stem>/<name>.png`` and show it once (``show``)."""
    paths.save_figure(fig, stem, name)
    return show(fig)


def show(fig):
    """In a notebook kernel: display ``fig`` once as a PNG, close it and return None (a figure left open would be
    drawn by the inline backend *and* as the cell's value; one returned but not last in its cell would not be drawn
    at all). Elsewhere (a script): return the figure."""
    try:
        from IPython import get_ipython
        from IPython.display import display
    except ImportError:                                              # pragma: no cover - IPython ships with jupyter
        return fig
    shell = get_ipython()
    if shell is None or not hasattr(shell, "kernel"):
        return fig
    display(as_image(fig))
    return None


def as_image(fig):
    """A figure as an IPython PNG image (the figure closed); the figure itself where IPython is not installed."""
    import io

    try:
        from IPython.display import Image
    except ImportError:                                              # pragma: no cover - IPython ships with jupyter
        return fig
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return Image(data=buf.getvalue(), format="png")


def image_grid(images, titles=None, ncols: int = 10, title: str | None = None, scale: float = 1.1):
    """A grid of (H, W, 3) uint8 images with optional short titles."""
    n = len(images)
    nrows = max(1, int(np.ceil(n / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * scale, nrows * scale * (1.25 if titles else 1)),
                             squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(images[k], interpolation="nearest")
            if titles is not None:
                ax.set_title(titles[k], fontsize=6)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def split_grids(splits: dict, per_set: int = 10):
    """One row of example images per set (public, member_aux, member_te, nonmember_aux, nonmember_te)."""
    names = [s for s in splits if splits[s]]
    fig, axes = plt.subplots(len(names), per_set, figsize=(per_set * 1.0, len(names) * 1.15), squeeze=False)
    for r, name in enumerate(names):
        for c in range(per_set):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(splits[name]):
                ax.imshow(splits[name][c].image, interpolation="nearest")
            if c == 0:
                ax.set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center", color=SET_COLORS.get(name))
    fig.suptitle("Example images per split", fontsize=10)
    fig.tight_layout()
    return fig


def split_counts(counts: dict):
    """Horizontal bar chart of the number of images per set."""
    names = list(counts)
    fig, ax = plt.subplots(figsize=(6, 0.45 * len(names) + 0.8))
    ax.barh(names, [counts[n] for n in names], color=[SET_COLORS.get(n, "k") for n in names])
    for i, n in enumerate(names):
        ax.text(counts[n], i, f" {counts[n]}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("images")
    ax.set_title("The split protocol: D_tr = member_aux + member_te, D_aux = member_aux + nonmember_aux")
    fig.tight_layout()
    return fig


def loss_curves(curves: dict, title: str = "", smooth: int = 20, xlabel: str = "step", log: bool = True,
                ylabel: str = "loss"):
    """Training-loss curves ``{label: [loss, ...]}`` with a moving average of ``smooth`` steps."""
    fig, ax = plt.subplots(figsize=(6, 3.2))
    for name, ys in curves.items():
        ys = np.asarray(ys, dtype=float)
        if len(ys) == 0:
            continue
        k = max(1, min(smooth, len(ys) // 5 or 1))
        ax.plot(np.convolve(ys, np.ones(k) / k, mode="valid"), label=label(name))
    if log:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def roc_curves(curves: dict, title: str = "ROC on D_te"):
    """ROC curves ``{label: (scores_member, scores_nonmember)}`` on linear and log-log axes (members positive)."""
    from . import metrics

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


def samples_grid(splits, rows: dict, title: str = ""):
    """The first member images over the samples generated from the same captions by each model of ``rows`` =
    ``{model: samples (n, H, W, 3)}``; row labels in the title."""
    members = splits["member_aux"] + splits["member_te"]
    n = min(len(v) for v in rows.values())
    grid = [it.image for it in members[:n]] + [img for v in rows.values() for img in v[:n]]
    return image_grid(grid, [it.caption for it in members[:n]] * (1 + len(rows)), ncols=n,
                      title="rows: training images · " + " · ".join(label(m) for m in rows) + title)


def learning_curve(history: dict, title: str):
    """An MLP attack's learning curve per epoch (``mlp.fit_mlp``'s history): training loss and accuracy on its
    D_aux training part, accuracy on the held-out part of D_aux."""
    return loss_curves({"train loss": history["train_loss"], "train accuracy": history["train_acc"],
                        "held-out D_aux accuracy": history["val_acc"]}, title, smooth=1, xlabel="epoch", log=False,
                       ylabel="loss / accuracy")



def loss_gap(groups: dict, title: str = "Mean adaptation loss on D_te"):
    """Histograms of per-image mean loss, ``{panel: {"member_te": losses, "nonmember_te": losses}}``."""
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.2), squeeze=False, sharex=True)
    for ax, (panel, sets) in zip(axes[0], groups.items()):
        bins = np.histogram_bin_edges(np.log10(np.concatenate([np.asarray(v) for v in sets.values()])), 30)
        for name, vals in sets.items():
            ax.hist(np.log10(vals), bins=bins, alpha=0.6, label=name, color=SET_COLORS.get(name))
        ax.set_title(panel)
        ax.set_xlabel("log10 mean loss (fixed timesteps and noise)")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _smooth(ys, k: int) -> np.ndarray:
    ys = np.asarray([np.nan if y is None else y for y in ys], dtype=float)
    k = max(1, min(k, len(ys) // 5 or 1))
    return np.convolve(ys, np.ones(k) / k, mode="valid")


def training_diagnostics(logs: dict, smooth: int = 20):
    """Fig. 1a/1b analogue, ``{label: train_log}``: L_ada, gradient norm (moving mean, band = moving std),
    Hessian top eigenvalue at its checkpoints, and the proxy attack's accuracy on its D_aux batches."""
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.4))
    for i, (name, log) in enumerate(logs.items()):
        color = f"C{i}"
        axes[0].plot(_smooth(log["l_ada"], smooth), color=color, label=label(name))
        gn = np.asarray(log["grad_norm"], dtype=float)
        mean = _smooth(gn, smooth)
        std = np.sqrt(np.maximum(_smooth(gn ** 2, smooth) - mean ** 2, 0))   # moving std from the moving moments
        x = np.arange(len(mean))
        axes[1].plot(x, mean, color=color, label=label(name))
        axes[1].fill_between(x, mean - std, mean + std, color=color, alpha=0.25)
        if log.get("hessian"):
            axes[2].plot([h[0] for h in log["hessian"]], [abs(h[1]) for h in log["hessian"]], "o-", ms=3,
                         color=color, label=label(name))
        if any(a is not None for a in log.get("proxy_acc", [])):
            axes[3].plot(_smooth(log["proxy_acc"], smooth), color=color, label=label(name))
    axes[3].axhline(0.5, color="k", ls=":", lw=1)
    for ax, (title, ylabel, logy) in zip(axes, (
            ("adaptation loss L_ada (D_tr batches)", "L_ada", True),
            ("gradient norm: moving mean ± std", "||g||", True),
            ("Hessian norm abs(lambda_max), fixed batch", "abs(lambda_max)", True),
            ("proxy attack accuracy (D_aux batches)", "accuracy", False))):
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        if logy:
            ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    return fig


def grad_vs_hessian(logs: dict, stats: dict | None = None):
    """Fig. 1b's question: does the Hessian norm grow with the gradient norm ((L0, L1)-smoothness, L1 > 0)?
    ``{label: train_log}``; the legend gives Pearson's r (from ``diagnostics.summarize_log``)."""
    fig, ax = plt.subplots(figsize=(5, 3.8))
    for i, (name, log) in enumerate(logs.items()):
        h = log.get("hessian") or []
        if not h:
            continue
        r = (stats or {}).get(name, {}).get("pcc_grad_hessian")
        tag = f"{label(name)} (PCC {r:.2f})" if r is not None else label(name)
        ax.scatter([x[2] for x in h], [abs(x[1]) for x in h], s=14, color=f"C{i}", label=tag)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("gradient norm ||g|| (diagnostic batch)")
    ax.set_ylabel("Hessian norm abs(lambda_max)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


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
    from .pooled import auc_dev_interval

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
