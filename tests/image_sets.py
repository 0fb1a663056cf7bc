"""Deterministic test images for the near-duplicate checks (issue 32): pixel art, photo-like pictures, and the
copies a user's folder may hold of them (saved again, resized, cropped). ``scripts/near_duplicates.py`` measures
the thresholds on the same sets."""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

PALETTE = np.array([[255, 255, 255], [0, 0, 0], [230, 40, 40], [40, 90, 230], [250, 210, 30], [40, 170, 60]],
                   np.uint8)


def sprites(n: int = 40, size: int = 32, seed: int = 0) -> list[Image.Image]:
    """``n`` pairs of 8x8 symmetric sprites (identicons) in three colours, drawn at ``size`` px (nearest): each
    sprite and a variant with one 2x2 block of cells recoloured, the closest distinct images of the set."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        half = rng.integers(0, 3, (8, 4))
        cells = np.concatenate([half, half[:, ::-1]], 1)            # (8, 8) palette slots, mirrored
        variant = cells.copy()
        i, j = rng.integers(0, 7, 2)
        variant[i:i + 2, j:j + 2] = (variant[i:i + 2, j:j + 2] + 1) % 3
        colours = PALETTE[rng.choice(len(PALETTE), 3, replace=False)]
        out += [Image.fromarray(colours[c]).resize((size, size), Image.NEAREST) for c in (cells, variant)]
    return out


def photos(size: int = 160) -> list[Image.Image]:
    """Photo-like pictures: ``size`` px crops of scikit-learn's two bundled photographs, on a grid."""
    from sklearn.datasets import load_sample_images

    out = []
    for photo in load_sample_images().images:
        h, w = photo.shape[:2]
        out += [Image.fromarray(photo[y:y + size, x:x + size]) for y in range(0, h - size, 90)
                for x in range(0, w - size, 90)]
    return out


def copies(img: Image.Image) -> dict[str, Image.Image]:
    """What a folder may hold of ``img`` besides itself: saved again as JPEG, resized, cropped by 1%."""
    w, h = img.size
    out = {}
    for quality in (95, 75):
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality)
        out[f"jpeg {quality}"] = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    for side in (24, 40, 48, 64, 128):
        for name, resample in (("bicubic", Image.BICUBIC), ("bilinear", Image.BILINEAR), ("lanczos", Image.LANCZOS)):
            out[f"{side} px {name}"] = img.resize((side, side), resample)
    out["2x nearest"] = img.resize((2 * w, 2 * h), Image.NEAREST)
    big = img.resize((128, 128), Image.BICUBIC)                     # a 1% crop, of the copy at 128 px
    out["1% crop"] = big.crop((1, 1, 127, 127))
    out["1% crop, one corner"] = big.crop((1, 1, 128, 128))
    return out


def as_items(images: list[Image.Image], resolution: int = 16, prefix: str = "img") -> list:
    """The images as the loader gives them (resized and centre-cropped to ``resolution``)."""
    from smplora_nb import data

    out = []
    for k, img in enumerate(images):
        rgb = img.convert("RGB")
        out.append(data.Item(id=f"{prefix}-{k}", image=data.resize_center_crop(rgb, resolution), caption="",
                             sha256=data.pixel_hash(np.asarray(rgb))))
    return out
