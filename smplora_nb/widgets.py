"""The results explorer: pick a method, ``lam`` and member split, see its metrics, ROC and samples (smplora_nb, arXiv
2402.11989 companion). ipywidgets in JupyterLab and Colab; a static first view where widgets cannot run (papermill).
"""
from __future__ import annotations

from . import tables
from .labels import label
from .viz import as_image, image_grid
from .viz_privacy import roc_curves


def entries(grid_evals: dict, split_evals: dict, tc) -> dict:
    """The explorer's ``{(method, lam, split): evaluation}`` from notebook 05's ablation grid (``grids.ablation_grid``
    keys ``(family, value, 0)``; its ``lam`` family) and from ``{(method, k): evaluation}`` runs at the profile's
    ``lam`` (notebook 04's splits). ``lam`` is None for plain LoRA, the only value that applies to it."""
    out = {}
    for (family, value, k), ev in grid_evals.items():
        if family in ("lora", "mp_lora"):
            out[family, None if family == "lora" else tc.lam, k] = ev
        elif family == "lam":
            out["smp_lora", value, k] = ev
    out.update({(m, None if m == "lora" else tc.lam, k): ev for (m, k), ev in split_evals.items()})
    return out


def explorer_view(entry: dict, real_images, captions, title: str = ""):
    """One results-explorer view: the metrics as Markdown, the ROC figure and the sample grid of one evaluated run
    (``evaluate.evaluate``'s result)."""
    from IPython.display import Markdown                    # IPython: only in a notebook kernel

    audit = entry["audit"]
    rows = {a: {"mean": {**{k: v for k, v in audit[a].items() if not k.startswith("scores_")},
                         **entry["quality"]}} for a in audit}
    table = Markdown(f"**{title}**\n\n" + tables.metric_table(rows, columns=("asr", "auc", "auc_dev", "tpr_at_5pct_fpr",
                                                                       "fid", "kid")))
    roc = roc_curves({a: (audit[a]["scores_member"], audit[a]["scores_nonmember"]) for a in audit},
                     f"ROC on D_te: {title}")
    n = len(entry["samples"])
    grid = image_grid(list(real_images[:n]) + list(entry["samples"]), list(captions[:n]) * 2, ncols=n,
                      title="top: training images · bottom: generated from the same captions")
    return table, roc, grid


def _show(entries: dict, key, real_images, captions) -> None:
    """Display the explorer's view of ``entries[key]``, ``key = (method, lam, split)``."""
    from IPython.display import display                     # IPython: only in a notebook kernel

    method, lam, split = key
    title = label(method) + ("" if lam is None else f", lam {lam:g}") + f", split {split}"
    table, *figs = explorer_view(entries[key], real_images, captions, title)
    display(table, *(as_image(f) for f in figs))                     # PNG whatever the matplotlib backend


def explorer(entries: dict, members, interactive: bool = True):
    """Results explorer: pick method, ``lam`` and member split -> metrics, ROC and sample grid (ipywidgets).

    ``entries`` is ``{(method, lam, split): evaluation}``; ``lam`` is None for plain LoRA; ``members`` are the items
    the samples are shown against (``sets.members``: D_tr, whose captions generated them). In JupyterLab the dropdowns
    redraw the view (the widget box is returned, so the cell shows it once); with ``interactive=False`` (headless
    runs: papermill, CI) the first entry's view is displayed as static output instead (and None returned).
    """
    real_images, captions = [it.image for it in members], [it.caption for it in members]
    if not interactive:
        return _show(entries, next(iter(entries)), real_images, captions)
    import ipywidgets as w                                  # ipywidgets: only for the interactive explorer

    pick = {name: w.Dropdown(description=name) for name in ("method", "lam", "split")}
    out = w.Output()
    busy = []                                         # non-empty while options are being replaced

    def offer(name, values):                          # new options, the first one selected, no events meanwhile
        busy.append(name)
        try:
            pick[name].options = [("n/a" if v is None else (label(v) if name == "method" else str(v)), v)
                                  for v in values]
            pick[name].value = values[0]
            pick[name].disabled = values == [None]      # lam does not apply to plain LoRA
        finally:
            busy.pop()

    def redraw(_=None):
        key = (pick["method"].value, pick["lam"].value, pick["split"].value)
        if not busy and key in entries:
            out.clear_output(wait=True)
            with out:
                _show(entries, key, real_images, captions)

    def on_lam(_=None):
        if not busy:
            m, lam = pick["method"].value, pick["lam"].value
            offer("split", sorted({k[2] for k in entries if k[0] == m and k[1] == lam}))
            redraw()

    def on_method(_=None):
        if not busy:
            lams = sorted({k[1] for k in entries if k[0] == pick["method"].value}, key=lambda v: (v is None, v or 0))
            offer("lam", lams)
            on_lam()

    offer("method", list(dict.fromkeys(k[0] for k in entries)))
    on_method()
    pick["method"].observe(on_method, "value")
    pick["lam"].observe(on_lam, "value")
    pick["split"].observe(redraw, "value")
    return w.VBox([w.HBox(list(pick.values())), out])     # displayed once, as the cell's value
