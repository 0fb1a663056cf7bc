"""Caption schemes (``captions``): the default digits captions unchanged, descriptive digit captions from one
vocabulary and one distribution, the config field and its errors."""
from __future__ import annotations

import collections
import hashlib
import re

import numpy as np
import pytest

from smplora_nb import config, data, digits, runs, sets

DESCRIPTIVE = re.compile(r"^a (thin|medium|bold) (narrow|regular|wide) (red|green|blue) digit (\w+) "
                         r"(leaning left|upright|leaning right)$")


@pytest.fixture(scope="module")
def shared():
    return data.load_dataset("digits", 16)


@pytest.fixture(scope="module")
def descriptive():
    return data.load_dataset("digits", 16, captions="descriptive")


@pytest.mark.parametrize("resolution, digest", [
    (16, "ffe8beff93d89c07f8064b1e9122a1f2bc34bb9875d907457e5692eade3c952e"),
    (8, "a920cb9799a223767f60e06736f4a4b248f0dfd89e658549497554116e8a0997")])
def test_default_digits_unchanged_bit_for_bit(resolution, digest):
    """Pixels, captions and labels of the default, as the code before the caption schemes made them."""
    items = data.load_dataset("digits", resolution)
    assert hashlib.sha256(repr([(it.sha256, it.caption, it.label) for it in items]).encode()).hexdigest() == digest


def test_the_tiny_default_is_descriptive_and_a_folder_keeps_its_own_captions():
    """The tiny profile's digits carry descriptive captions (the testbed study, issue 28); the dataclass default and
    a folder or hub dataset keep the shared ones (a folder brings its own captions); the digits' shared captions stay
    one parameter away."""
    assert config.make("tiny").data.captions == "descriptive" and config.DataConfig().captions == "shared"
    assert config.make("tiny", dataset="folder:/some/where").data.captions == "shared"
    assert config.make("tiny", captions="shared").data.captions == "shared"
    assert config.make("paper").data.captions == "shared"


def test_run_key_leaves_out_the_default_scheme(monkeypatch, shared):
    """At ``captions="shared"`` the run key hashes what it hashed before the field existed (cached runs hold)."""
    seen = []
    monkeypatch.setattr(runs.paths, "config_hash", lambda obj, n=12: seen.append(obj) or "key")
    splits = {"member_aux": shared[:2], "member_te": shared[2:4]}
    runs.run_key(config.make("tiny", captions="shared"), splits, "base")
    runs.run_key(config.make("tiny", captions="descriptive"), splits, "base")
    assert set(seen[0]["data"]) == {"dataset", "resolution", "caption_prefix"}
    assert seen[1]["data"]["captions"] == "descriptive"


def test_descriptive_digits_same_images(shared, descriptive):
    assert [(it.id, it.sha256, it.label) for it in descriptive] == [(it.id, it.sha256, it.label) for it in shared]
    for a, b in zip(shared, descriptive):
        m = DESCRIPTIVE.match(b.caption)
        assert m, b.caption
        assert m.group(4) == digits.DIGIT_WORDS[b.label] and a.caption == f"a {m.group(3)} digit {m.group(4)}"


def test_descriptive_digits_deterministic(descriptive):
    assert [it.caption for it in data.load_dataset("digits", 16, captions="descriptive")] == \
           [it.caption for it in descriptive]


def test_each_trait_in_thirds_within_every_digit(descriptive):
    for label in range(10):
        captions = [DESCRIPTIVE.match(it.caption) for it in descriptive if it.label == label]
        for group in (1, 2, 5):
            counts = collections.Counter(m.group(group) for m in captions)
            assert len(counts) == 3 and max(counts.values()) - min(counts.values()) <= 0.05 * len(captions)


def test_descriptive_captions_one_vocabulary_one_distribution(descriptive):
    """Members and non-members draw from one distribution: a caption is a function of the image alone, fixed
    before any split, from words that many images share (no word of one image only)."""
    words = collections.Counter(w for it in descriptive for w in set(data.caption_words([it])))
    assert min(words.values()) > 50
    cfg = config.make("tiny", captions="descriptive", nonmember_te=50)
    one = sets.make_splits(descriptive, cfg.split)
    other = sets.make_splits(descriptive, config.replace(cfg, split_seed=7).split)
    caption_of = {it.id: it.caption for name in sets.SETS for it in one[name] + other[name]}
    assert all(caption_of[it.id] == it.caption for it in descriptive if it.id in caption_of)
    private = [it for it in descriptive if it.label >= 5]
    assert len({it.caption for it in private}) > 300                       # many conditions, as issue 28 asks


def test_digit_traits_toy():
    bar = np.zeros((1, 8, 8))
    bar[0, :, 3] = 16                                                   # a vertical stroke
    diag = np.zeros((1, 8, 8))
    diag[0, np.arange(8), 7 - np.arange(8)] = 16                        # "/": top to the right
    bold = bar.copy()
    bold[0, :, 4] = 16
    ink, spread, shear = digits.traits(np.concatenate([bar, diag, bold])).T
    assert shear[0] == pytest.approx(0) and shear[1] == pytest.approx(1)   # one column right per row up
    assert ink[2] == 2 * ink[0] and spread[2] > spread[0] == pytest.approx(0)


def test_sample_captions_follow_the_scheme(shared, descriptive):
    cfg = config.make("tiny", nonmember_te=50)
    old, labels = data.sample_captions(sets.make_splits(shared, cfg.split), 60)
    assert old[:3] == ["a red digit zero", "a green digit zero", "a blue digit zero"] and labels[:6] == [0] * 6
    new, labels_new = data.sample_captions(sets.make_splits(descriptive, cfg.split), 60)
    assert labels_new == labels and new[0] == "a medium regular red digit zero upright"
    vocabulary = set(data.caption_words(descriptive))
    assert all(set(data.caption_words([data.Item("x", None, c, "")])) <= vocabulary for c in new)


@pytest.mark.parametrize("overrides, message", [
    ({"captions": "names"}, r"captions must be one of \['shared', 'descriptive'\], got 'names'"),
    ({"captions": 1}, "captions must be one of"),
    ({"dataset": "folder:/data/pokemon", "captions": "descriptive"}, "brings its own captions"),
    ({"dataset": "emojis"}, "dataset must be 'digits', 'emoji'")])
def test_bad_captions_one_line_error(overrides, message):
    with pytest.raises(ValueError, match=message) as err:
        config.make("tiny", **overrides)
    assert "\n" not in str(err.value)


def test_loader_rejects_bad_captions():
    with pytest.raises(ValueError, match="captions must be one of"):
        data.load_dataset("digits", 16, captions="names")
    with pytest.raises(ValueError, match="brings its own captions"):
        data.load_dataset("folder:/nowhere", 16, captions="descriptive")


def test_caption_schemes_agree_with_config():
    assert config.CHOICES["captions"] == data.CAPTIONS
    assert config.BUILT_IN == data.BUILT_IN == ("digits", "emoji")
