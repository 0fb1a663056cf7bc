"""The ``digits`` dataset: scikit-learn's bundled 1,797 handwritten 8x8 digits as coloured pictures with captions
(smplora_nb, arXiv 2402.11989 companion). Works offline; the default of every notebook.

Each digit is resized to the profile's resolution and drawn in red, green or blue (a fixed assignment). Captions:
``shared``, "a red digit three" (about 60 private images share each one), or ``descriptive``, with three traits of
the 8x8 ink measured from the image itself, each cut into thirds within its digit class before any split, "a bold
narrow red digit three leaning right" (``traits``, ``describe``). ``data.load_digits`` makes the items.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
COLORS = {"red": (1.0, 0.15, 0.1), "green": (0.1, 1.0, 0.2), "blue": (0.2, 0.4, 1.0)}
# descriptive captions: three traits of the 8x8 ink, each cut into thirds within its digit class
WEIGHTS = ("thin", "medium", "bold")                    # total ink
WIDTHS = ("narrow", "regular", "wide")                  # horizontal spread of the ink
SLANTS = ("leaning left", "upright", "leaning right")   # shear of the ink (top to the right: leaning right)


def records(resolution: int = 16, captions: str = "shared") -> list[tuple[int, np.ndarray, str, int]]:
    """``(index, picture, caption, label)`` of scikit-learn's 1,797 digits: each 8x8 digit resized to ``resolution``
    and drawn in one of ``COLORS`` ((H, W, 3) uint8, colours assigned by a fixed generator), with its caption
    (``captions="descriptive"``: with the digit's weight, width and slant, ``describe``)."""
    from sklearn.datasets import load_digits          # scikit-learn: heavy, only when the digits are loaded

    source = load_digits()
    rng = np.random.default_rng(0)                                   # fixed colour assignment
    names = list(COLORS)
    words = describe(source.images, source.target) if captions == "descriptive" else [None] * len(source.target)
    out = []
    for i, (gray, label, traits_) in enumerate(zip(source.images, source.target, words)):
        g = Image.fromarray(np.uint8(np.clip(gray / 16.0, 0, 1) * 255))  # (8, 8)
        g = np.asarray(g.resize((resolution, resolution), Image.BILINEAR), dtype=np.float32) / 255.0
        color = names[rng.integers(len(names))]
        rgb = np.uint8(np.round(g[..., None] * np.array(COLORS[color]) * 255))  # (H, W, 3)
        out.append((i, rgb, caption(color, label, traits_), int(label)))
    return out


def caption(color: str, label: int, traits: tuple[str, str, str] | None = None) -> str:
    """"a red digit three" or, given (weight, width, slant) words, "a bold narrow red digit three leaning right"."""
    if traits is None:
        return f"a {color} digit {DIGIT_WORDS[label]}"
    weight, width, slant = traits
    return f"a {weight} {width} {color} digit {DIGIT_WORDS[label]} {slant}"


def traits(gray: np.ndarray) -> np.ndarray:
    """(N, 3): total ink, horizontal spread (ink-weighted sd of the column) and rightward shear (minus the
    ink-weighted regression slope of column on row, rows counted downwards) of (N, 8, 8) digit images."""
    row, col = np.mgrid[:gray.shape[1], :gray.shape[2]]                 # (8, 8) each
    w = gray / gray.sum((1, 2), keepdims=True)                           # (N, 8, 8) ink weights
    dc = col - (w * col).sum((1, 2))[:, None, None]                      # (N, 8, 8) centred column
    dr = row - (w * row).sum((1, 2))[:, None, None]                      # (N, 8, 8) centred row
    shear = -(w * dc * dr).sum((1, 2)) / (w * dr ** 2).sum((1, 2))
    return np.stack([gray.sum((1, 2)), np.sqrt((w * dc ** 2).sum((1, 2))), shear], axis=1)


def describe(gray: np.ndarray, labels: np.ndarray) -> list[tuple[str, str, str]]:
    """(weight, width, slant) words per image: each trait of ``traits`` cut at its thirds within the
    image's digit class, over all 1,797 images. The cuts are fixed before any split, so the same image always gets
    the same words and members and non-members draw theirs from one vocabulary and one distribution."""
    values = traits(np.asarray(gray, dtype=np.float64))
    bins = np.zeros(values.shape, dtype=int)                             # (N, 3) in {0, 1, 2}
    for c in np.unique(labels):
        rows = labels == c
        for k in range(values.shape[1]):
            cuts = np.quantile(values[rows, k], [1 / 3, 2 / 3])
            bins[rows, k] = np.searchsorted(cuts, values[rows, k], side="right")
    return [(WEIGHTS[a], WIDTHS[b], SLANTS[c]) for a, b, c in bins]


def sample_captions(n: int = 60, descriptive: bool = False) -> tuple[list[str], list[int]]:
    """Captions for checking generated digits: every digit in every colour, ordered by digit (with ``n`` below 30,
    still every digit: the colours are taken in turn); ``descriptive`` captions get the middle words, "a medium
    regular red digit three upright". Returns the captions and their digits."""
    middle = (WEIGHTS[1], WIDTHS[1], SLANTS[1]) if descriptive else None
    pairs = [(caption(c, d, middle), d) for c in COLORS for d in range(len(DIGIT_WORDS))]
    pairs = (pairs * (n // len(pairs) + 1))[:n]
    pairs.sort(key=lambda p: p[1])
    return [p[0] for p in pairs], [p[1] for p in pairs]
