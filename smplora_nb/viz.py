"""The figures of the data and of training, and the one way a figure is saved and shown (smplora_nb, arXiv 2402.11989
companion): images, the split, loss and learning curves, the training diagnostics (Fig. 1a/1b). The figures of the
privacy audit are ``viz_privacy``.

Functions return a matplotlib ``Figure``; notebooks save it with ``paths.save_figure`` (via ``viz.save``) and show it.
"""
from __future__ import annotations

import io

import matplotlib

if matplotlib.get_backend().lower() not in ("module://matplotlib_inline.backend_inline", "inline"):
    matplotlib.use("Agg")                            # headless (papermill, CI) unless a notebook backend is active
import matplotlib.pyplot as plt
import numpy as np

from . import paths, sets
from .labels import label  # noqa: F401  (re-exported: viz.label)

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
        from IPython import get_ipython                          # IPython: only in a notebook kernel
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
    try:
        from IPython.display import Image                        # IPython: only in a notebook kernel
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


def items_grid(items, ncols: int = 10, title: str | None = None):
    """``image_grid`` of dataset items, each titled by its caption."""
    return image_grid([it.image for it in items], [it.caption for it in items], ncols=ncols, title=title)


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


def samples_grid(splits, rows: dict, title: str = ""):
    """The first member images over the samples generated from the same captions by each model of ``rows`` =
    ``{model: samples (n, H, W, 3)}``; row labels in the title."""
    members = sets.members(splits)
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
    """Histograms of per-image mean loss, ``{panel: {"member_te": losses, "nonmember_te": losses}}``; a panel is
    titled by its label (``labels.label``: a model key shows as its words)."""
    fig, axes = plt.subplots(1, len(groups), figsize=(4.5 * len(groups), 3.2), squeeze=False, sharex=True)
    for ax, (panel, by_set) in zip(axes[0], groups.items()):
        bins = np.histogram_bin_edges(np.log10(np.concatenate([np.asarray(v) for v in by_set.values()])), 30)
        for name, vals in by_set.items():
            ax.hist(np.log10(vals), bins=bins, alpha=0.6, label=name, color=SET_COLORS.get(name))
        ax.set_title(label(panel))
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


