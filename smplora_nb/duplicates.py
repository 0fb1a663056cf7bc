"""Exact and near-duplicate images, found at the resolution the model sees (smplora_nb, arXiv 2402.11989 companion).

A membership experiment breaks when one picture is both a member and a non-member: ``dedupe`` keeps the first image
of every group of copies before the sets are cut (``sets``), ``dropped`` says what went and why (the manifest), and
``sets.check_disjoint`` asks ``close_pairs`` whether two sets share a near-duplicate. The thresholds were measured
with ``scripts/near_duplicates.py`` (issue 32; docs/reliability.md).
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from .data import Item

# Near-duplicates: two images whose 16x16 RGB thumbnails, taken of the images as the model receives them (after
# resize and centre crop), differ by at most NEAR_DUPLICATE_MAD on average (0-255 scale), or, both blurred (Gaussian,
# NEAR_DUPLICATE_BLUR px), by at most NEAR_DUPLICATE_PEAK anywhere. A copy differs a little everywhere (resampling,
# JPEG and crops move every edge a little); a distinct image differs a lot somewhere, so the blurred peak catches
# copies of small high-contrast images that the mean misses (a 32 px sprite saved again at 48 px: mean 3.7, peak
# 3.8). Measured with scripts/near_duplicates.py: the closest distinct digits of the bundled set lie at mean 2.82 and
# peak 24.5 (no digit is merged: the default split is the one before the peak), distinct sprites at peak 72 (a
# 2x2 block of cells recoloured), the emoji dataset's at 39, photo crops at 61. Caught: photos, 32 px pixel art and
# emoji saved again at 24-128 px or as JPEG (peak <= 19.1), 1% crops of photos and pixel art (<= 19.8), 16 px pixel
# art resized (<= 15.6). Missed: 1% crops of emoji (peak 25), JPEG copies of 16 px pixel art (32-44).
NEAR_DUPLICATE_MAD = 2.0
NEAR_DUPLICATE_PEAK = 20.0
NEAR_DUPLICATE_BLUR = 1.0          # sigma of the blur, in thumbnail pixels


def _thumbnails(items: list[Item]) -> np.ndarray:
    return np.stack([np.asarray(it.image if it.image.shape[:2] == (16, 16)
                                else Image.fromarray(it.image).resize((16, 16), Image.BILINEAR), np.float32)
                     for it in items]).reshape(len(items), -1)


def close_pairs(items: list[Item], tol: float = NEAR_DUPLICATE_MAD) -> list[tuple[int, int]]:
    """Every ``(i, j)``, ``i > j``, of items that are exact or near duplicates (see ``NEAR_DUPLICATE_MAD``).
    Candidates are pruned by the thumbnails' mean (|mean a - mean b| never exceeds their mean absolute
    difference); the answer is remembered per set of images, as every notebook asks again."""
    key = (tuple(it.sha256 for it in items), tuple(it.image.shape for it in items), tol)
    if key not in _PAIRS:
        if len(_PAIRS) >= 8:                                 # a few datasets and splits at a time
            _PAIRS.clear()
        _PAIRS[key] = _close_pairs(items, tol)
    return list(_PAIRS[key])


_PAIRS: dict = {}


def _close_pairs(items: list[Item], tol: float) -> list[tuple[int, int]]:
    out = set()
    first = {}
    for k, it in enumerate(items):                           # exact copies (equal content hashes)
        if it.sha256 in first:
            out.add((k, first[it.sha256]))
        first.setdefault(it.sha256, k)
    if not items:
        return []
    thumbs, blurred = views(items)
    cells = blurred.reshape(-1, 4, 4, 4, 4, 3).mean(axis=(2, 4)).reshape(len(items), -1)   # (N, 48): 4x4 px cells
    return sorted(out | _within(thumbs, tol, np.mean) | _within(blurred, NEAR_DUPLICATE_PEAK, np.max, cells))


def views(items: list[Item]) -> tuple[np.ndarray, np.ndarray]:
    """The two views the near-duplicate check compares: the 16x16 thumbnails as they are (their mean difference)
    and blurred (their largest difference), (N, 768) each."""
    from scipy.ndimage import gaussian_filter             # SciPy: heavy, only when images are compared

    thumbs = _thumbnails(items)
    blurred = gaussian_filter(thumbs.reshape(-1, 16, 16, 3), (0, NEAR_DUPLICATE_BLUR, NEAR_DUPLICATE_BLUR, 0),
                              mode="nearest")                # (N, 16, 16, 3)
    return thumbs, blurred.reshape(len(items), -1)


def _within(rows: np.ndarray, tol: float, reduce, cells: np.ndarray | None = None) -> set[tuple[int, int]]:
    """Pairs ``(i, j)``, ``i > j``, of rows whose absolute difference, reduced by ``reduce`` (mean or max), is at
    most ``tol``. Only rows whose means lie within ``tol`` are compared (|mean a - mean b| is never more), and, for
    the largest difference, only rows whose ``cells`` (means of blocks of the row) all lie within ``tol``."""
    out = set()
    means = rows.mean(axis=1)
    order = np.argsort(means, kind="stable")
    hi = np.searchsorted(means[order], means[order] + tol, side="right")
    for pos, i in enumerate(order):
        cand = order[pos + 1:hi[pos]]
        if cells is not None and len(cand):
            cand = cand[np.abs(cells[cand] - cells[i]).max(axis=1) <= tol]
        if len(cand):
            for j in cand[reduce(np.abs(rows[cand] - rows[i]), axis=1) <= tol]:
                out.add((max(int(i), int(j)), min(int(i), int(j))))
    return out


def near_duplicates(items: list[Item], tol: float = NEAR_DUPLICATE_MAD) -> dict[int, int]:
    """``{i: j}``: item ``i`` is an exact or near duplicate of the earlier item ``j`` (the earliest such)."""
    out: dict[int, int] = {}
    for i, j in close_pairs(items, tol):
        out[i] = min(out.get(i, j), j)
    return out


def dedupe(items: list[Item], report: bool = False) -> list[Item]:
    """Keep the first item of every group of exact- or near-duplicate images (``near_duplicates``); with
    ``report``, one line says what was dropped."""
    drop = near_duplicates(items)
    if report and drop:
        i, j = next(iter(sorted(drop.items())))
        print(f"[smplora_nb] {len(drop)} duplicate or near-duplicate image(s) dropped before splitting, e.g. "
              f"{items[i].id} (a copy of {items[j].id}); see the manifest's 'dropped'", flush=True)
    return [it for k, it in enumerate(items) if k not in drop]


def dropped(items: list[Item]) -> list[dict]:
    """What ``dedupe`` drops, and why: ``[{"id", "copy_of", "reason"}]`` for the manifest."""
    return [{"id": items[i].id, "copy_of": items[j].id,
             "reason": "same pixels" if items[i].sha256 == items[j].sha256 else
             f"near duplicate (thumbnail mean abs. difference <= {NEAR_DUPLICATE_MAD} of 255, or blurred, "
             f"<= {NEAR_DUPLICATE_PEAK} anywhere)"}
            for i, j in sorted(near_duplicates(items).items())]
