"""The candidate tiny testbeds of issue 28, measured on their data alone (no training): for each dataset (digits,
emoji) and caption scheme (shared, descriptive), with the proposed private classes,

    pool         distinct private images (after ``duplicates.dedupe``), from which members and non-members are dealt
    public       distinct images of the other classes (the base model's side)
    captions     distinct captions in the private pool, and images per caption (pool / captions)
    words        the caption vocabulary of the whole dataset (the tiny tokenizer's words)
    own word     the share of pool captions with a word that no other image's caption has (a word only its image
                 brings to the caption channel: a member's is trained on, a non-member's never is)
    nn / typical distinctness: the median over pool images of the squared Euclidean distance to the nearest other
                 pool image, over the median squared distance of all pool pairs, on the 16x16 RGB pixels (0-255)
                 the model receives (issue 28's measure: 4.8% for the digits 5-9; larger is more distinct)
    near-twins   the share of pool images whose nearest neighbour is closer than 10% of that typical squared
                 distance (``emoji.NEAR_TWIN``; the frozen emoji list drops such twins)
    min MAD      the smallest mean absolute difference between two distinct-content images of the whole dataset,
                 on the same thumbnails (0-255, the unit of ``duplicates.NEAR_DUPLICATE_MAD``), and how many pairs lie
                 within that threshold (``duplicates.dedupe`` drops them)

    python benchmarks/testbed_data.py            # about 20 s on 2 cores; prints one Markdown table

Images do not depend on the caption scheme, so the image columns repeat across it.
"""
from __future__ import annotations

import sys

import numpy as np

from smplora_nb import config, data, duplicates

CANDIDATES = (("digits", "5-9"), ("emoji", "2-4"), ("emoji", "2,3"))   # (dataset, private classes)


def pixels(items: list[data.Item]) -> np.ndarray:
    return np.stack([it.image for it in items]).reshape(len(items), -1).astype(np.float64)   # (N, 768)


def distinctness(x: np.ndarray) -> tuple[float, float]:
    """(median nearest-neighbour over median pair squared distance, share of images with a near-twin)."""
    sq = (x * x).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0)           # (N, N) squared distances
    typical = np.median(d2[np.triu_indices(len(x), 1)])
    np.fill_diagonal(d2, np.inf)
    nn = d2.min(1)
    return float(np.median(nn) / typical), float(np.mean(nn < 0.1 * typical))


def smallest_mad(items: list[data.Item], tol: float = duplicates.NEAR_DUPLICATE_MAD, chunk: int = 16) -> tuple[float, int]:
    """(smallest mean absolute difference over all pairs, pairs within ``tol``), in row chunks to bound memory."""
    x = np.stack([it.image for it in items]).reshape(len(items), -1).astype(np.int16)   # (N, 768)
    best, close = np.inf, 0
    for start in range(0, len(x), chunk):
        rows = x[start:start + chunk]
        mad = np.abs(rows[:, None, :] - x[None, start:, :]).sum(-1) / x.shape[1]       # (chunk, N - start)
        mad[np.tril_indices(len(rows))] = np.inf                             # each pair once, none with itself
        best, close = min(best, float(mad.min())), close + int((mad <= tol).sum())
    return best, close


_IMAGES: dict = {}


def row(dataset: str, classes: str, captions: str) -> dict:
    items = data.load_dataset(dataset, 16, captions=captions)
    distinct = duplicates.dedupe(items)
    wanted = config.parse_classes(classes)
    pool = [it for it in distinct if it.label in wanted]
    if (dataset, classes) not in _IMAGES:                                    # pixels do not depend on captions
        _IMAGES[dataset, classes] = distinctness(pixels(pool)) + smallest_mad(items)
    ratio, twins, low, close = _IMAGES[dataset, classes]
    n_captions = len({it.caption for it in pool})
    owners: dict[str, set] = {}
    for it in distinct:
        for w in data.caption_words([it]):
            owners.setdefault(w, set()).add(it.id)
    own = np.mean([any(len(owners[w]) == 1 for w in data.caption_words([it])) for it in pool])
    return {"dataset": dataset, "captions": captions, "private classes": classes, "pool": len(pool),
            "public": len(distinct) - len(pool), "pool captions": n_captions,
            "images per caption": f"{len(pool) / n_captions:.1f}", "words": len(data.caption_words(items)),
            "own word": f"{own:.0%}",
            "nn / typical": f"{ratio:.3f}", "near-twins": f"{twins:.1%}", "min MAD": f"{low:.2f}",
            f"pairs <= {duplicates.NEAR_DUPLICATE_MAD}": close}


def main() -> int:
    rows = [row(d, c, cap) for d, c in CANDIDATES for cap in data.CAPTIONS]
    head = list(rows[0])
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        print("| " + " | ".join(str(r[k]) for k in head) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
