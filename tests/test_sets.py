"""The paper's five sets (``sets``): splits and their sizes, duplicates that never cross two sets, the disjointness
check, the manifest, identity-aware splits, other member splits and private classes."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from smplora_nb import config, data, duplicates, sets


# ------------------------------------------------------------------------------------------------------------- helpers

@pytest.fixture(scope="module")
def digits():
    """The 1,797 digits at 16 px, loaded once per module (about 1 s). Tests must not mutate the items."""
    return data.load_dataset("digits", 16)


def _img(*values) -> np.ndarray:
    """A 4x4 picture drawn from ``values``: equal values, equal pixels; other values, a clearly different picture
    (not a near-duplicate, ``duplicates.NEAR_DUPLICATE_MAD``)."""
    return np.random.default_rng([int(v) for v in values]).integers(0, 256, (4, 4, 3), dtype=np.uint8)


def _item(iid: str, *values, identity=None, gender=None) -> data.Item:
    img = _img(*values)
    return data.Item(id=iid, image=img, caption=f"item {iid}", sha256=data.pixel_hash(img),
                     identity=identity, gender=gender)


def _people(n_id=30, per=10, female=None) -> list[data.Item]:
    """``n_id`` identities with ``per`` distinct images each; the first ``female`` identities are female."""
    female = n_id // 2 if female is None else female
    return [_item(f"p{i:03d}-{j:02d}", i % 256, i // 256, j, 7, identity=f"p{i:03d}",
                  gender="female" if i < female else "male")
            for i in range(n_id) for j in range(per)]


def _ids(splits) -> dict[str, list[str]]:
    return {name: [it.id for it in items] for name, items in splits.items()}


def _counts(splits) -> dict[str, int]:
    return {name: len(items) for name, items in splits.items()}


def _split(**kw):
    """The paper-sized split (SplitConfig defaults: 200/233/200/200, 900 public) of one pool (no private classes,
    as the paper's datasets) with overrides, validated."""
    paper_sizes = {f: getattr(config.SplitConfig(), f) for f in ("member_aux", "member_te", "nonmember_aux",
                                                                 "nonmember_te")}
    return config.make(**{**paper_sizes, "private_classes": "", **kw}).split


def _assert_disjoint_content(splits):
    owner = {}
    for name, items in splits.items():
        for it in items:
            assert owner.setdefault(it.sha256, name) == name, f"{it.id} content in {owner[it.sha256]} and {name}"
            assert owner.setdefault("id:" + it.id, name) == name, f"{it.id} in {owner['id:' + it.id]} and {name}"


# -------------------------------------------------------------------------------------------------------------- splits

def test_default_split_counts(digits):
    splits = sets.make_splits(digits, _split())
    assert list(splits) == list(sets.SETS)
    assert _counts(splits) == {"public": 900, "member_aux": 200, "member_te": 233,
                               "nonmember_aux": 200, "nonmember_te": 200}
    report = sets.check_disjoint(splits)
    assert report["disjoint"] is True
    assert report["n_items"] == report["n_distinct_images"] == 1733
    _assert_disjoint_content(splits)


def test_split_is_reproducible_per_seed(digits):
    a = sets.make_splits(digits, _split(split_seed=7))
    b = sets.make_splits(digits, _split(split_seed=7))
    c = sets.make_splits(digits, _split(split_seed=8))
    assert _ids(a) == _ids(b)
    assert _ids(a)["member_aux"] != _ids(c)["member_aux"]
    assert set(_ids(a)["member_te"]) != set(_ids(c)["member_te"])


def test_public_zero_all_and_fixed(digits):
    assert _counts(sets.make_splits(digits, _split(public=0)))["public"] == 0
    assert _counts(sets.make_splits(digits, _split(public=100)))["public"] == 100
    assert _counts(sets.make_splits(digits, _split(public=-1)))["public"] == 1797 - 833


def test_public_split_does_not_depend_on_private_sizes(digits):
    small = sets.make_splits(digits, _split(member_aux=50, member_te=50, nonmember_aux=50, nonmember_te=50))
    assert _ids(small)["public"] == _ids(sets.make_splits(digits, _split()))["public"]


def test_split_too_large_names_needed_and_available(digits):
    with pytest.raises(ValueError) as exc:
        sets.make_splits(digits, _split(member_aux=2000))
    msg = str(exc.value)
    assert "2633" in msg and "1797" in msg


def test_public_larger_than_rest_raises(digits):
    with pytest.raises(ValueError) as exc:
        sets.make_splits(digits, _split(public=1000))
    msg = str(exc.value)
    assert "1000" in msg and "964" in msg


# ------------------------------------------------------------------------------------- duplicates never cross the sets

def _with_duplicates() -> list[data.Item]:
    items = [_item(f"u{i:02d}", i, 1) for i in range(40)]
    # exact copies of ten images under new ids
    items += [_item(f"dup{i:02d}", i, 1) for i in range(0, 40, 4)]
    return items


def test_duplicates_never_cross_sets():
    items = _with_duplicates()
    assert len({it.sha256 for it in items}) == 40 < len(items)
    for seed in range(10):
        splits = sets.make_splits(items, _split(public=-1, member_aux=8, member_te=8, nonmember_aux=8, nonmember_te=8,
                                                split_seed=seed))
        _assert_disjoint_content(splits)
        sets.check_disjoint(splits)
        all_hashes = [it.sha256 for s in splits.values() for it in s]
        assert len(all_hashes) == len(set(all_hashes)) == 40  # each distinct image used exactly once


def test_duplicates_count_once_toward_the_pool():
    items = _with_duplicates()
    with pytest.raises(ValueError, match="40"):
        sets.make_splits(items, _split(member_aux=11, member_te=10, nonmember_aux=10, nonmember_te=10))


def test_dedupe_keeps_first():
    items = _with_duplicates()
    kept = duplicates.dedupe(items)
    assert len(kept) == 40
    assert all(it.id.startswith("u") for it in kept)


def test_check_disjoint_same_id_in_two_sets():
    a = _item("x", 1)
    splits = {"member_aux": [a], "nonmember_te": [dataclasses.replace(a)]}
    with pytest.raises(ValueError, match="member_aux.*nonmember_te"):
        sets.check_disjoint(splits)


def test_check_disjoint_same_content_different_ids():
    splits = {"member_te": [_item("a", 5)], "nonmember_aux": [_item("b", 5)]}
    with pytest.raises(ValueError, match="image content"):
        sets.check_disjoint(splits)


def test_check_disjoint_on_manifest_overlap():
    man = {"sets": {"public": [{"id": "a", "sha256": "1" * 64}], "member_aux": [{"id": "a", "sha256": "1" * 64}]}}
    with pytest.raises(ValueError, match="public"):
        sets.check_disjoint(man)


def test_check_disjoint_allows_repeats_inside_one_set():
    a = _item("a", 3)
    assert sets.check_disjoint({"member_aux": [a, a], "member_te": [_item("b", 4)]})["disjoint"]


# ------------------------------------------------------------------------------------------------------------ manifest

def test_manifest_round_trip(digits, tmp_path):
    cfg = config.make(split_seed=3)
    splits = sets.make_splits(digits, cfg.split)
    man = sets.manifest(splits, cfg)
    assert man["counts"] == _counts(splits)
    assert man["dataset"] == "digits" and man["resolution"] == 16
    assert man["split"]["split_seed"] == 3
    path = sets.save_manifest(tmp_path / "m" / "split.json", man)
    assert path.exists()
    loaded = sets.load_manifest(path)
    assert loaded == json.loads(json.dumps(man))
    assert sets.check_disjoint(loaded)["disjoint"]
    rebuilt = sets.apply_manifest(digits, loaded)
    assert _ids(rebuilt) == _ids(splits)
    assert all(a is b for name in splits for a, b in zip(rebuilt[name], splits[name]))


def test_manifest_without_cfg(digits):
    splits = sets.make_splits(digits, _split(public=0))
    man = sets.manifest(splits)
    assert set(man) == {"sets", "counts"}


def test_apply_manifest_detects_changed_content(digits):
    splits = sets.make_splits(digits, _split(public=0))
    man = sets.manifest(splits)
    target = splits["member_te"][0].id
    changed = [dataclasses.replace(it, sha256="0" * 64) if it.id == target else it for it in digits]
    with pytest.raises(ValueError, match=target):
        sets.apply_manifest(changed, man)


def test_apply_manifest_detects_missing_id(digits):
    splits = sets.make_splits(digits, _split(public=0))
    man = sets.manifest(splits)
    target = splits["nonmember_aux"][5].id
    with pytest.raises(ValueError, match=target):
        sets.apply_manifest([it for it in digits if it.id != target], man)


# ------------------------------------------------------------------------------------------------------ identity-aware

IDENTITY_50 = dict(member_aux=50, member_te=50, nonmember_aux=50, nonmember_te=50, identity_aware=True,
                   images_per_identity=8, public=0)


def _sides(splits):
    mem = {it.identity for name in ("member_aux", "member_te") for it in splits[name]}
    non = {it.identity for name in ("nonmember_aux", "nonmember_te") for it in splits[name]}
    return mem, non


@pytest.mark.parametrize("seed", [0, 1, 1337])
def test_identity_split_counts_and_sides(seed):
    splits = sets.make_splits(_people(), _split(**IDENTITY_50, split_seed=seed))
    assert _counts(splits) == {"public": 0, "member_aux": 50, "member_te": 50, "nonmember_aux": 50,
                               "nonmember_te": 50}
    mem, non = _sides(splits)
    assert mem == non                      # every identity used is on both sides
    assert len(mem) == 25                  # 200 images / 8 per identity
    per_identity = {}
    for name in sets.PRIVATE:
        for it in splits[name]:
            per_identity[it.identity] = per_identity.get(it.identity, 0) + 1
    assert set(per_identity.values()) == {8}
    sets.check_disjoint(splits)
    _assert_disjoint_content(splits)


def test_identity_split_public_gets_only_unused_identities():
    items = _people()
    splits = sets.make_splits(items, _split(**{**IDENTITY_50, "public": -1}))
    private_ids = {it.identity for name in sets.PRIVATE for it in splits[name]}
    unused = [it for it in items if it.identity not in private_ids]
    assert _counts(splits)["public"] == len(unused) > 0
    assert not {it.identity for it in splits["public"]} & private_ids
    sets.check_disjoint(splits)


def test_identity_split_reproducible():
    a = sets.make_splits(_people(), _split(**IDENTITY_50, split_seed=5))
    b = sets.make_splits(_people(), _split(**IDENTITY_50, split_seed=5))
    assert _ids(a) == _ids(b)


def test_identity_split_gender_ratio():
    kw = dict(IDENTITY_50, member_aux=40, member_te=40, nonmember_aux=40, nonmember_te=40, gender_ratio=0.7)
    for seed in (0, 1, 2):
        splits = sets.make_splits(_people(), _split(**kw, split_seed=seed))
        assert sum(_counts(splits).values()) == 160
        mem, non = _sides(splits)
        assert mem == non
        genders = {it.identity: it.gender for name in sets.PRIVATE for it in splits[name]}
        assert len(genders) == 20
        assert sum(g == "female" for g in genders.values()) == 14


def test_identity_split_gender_ratio_impossible():
    kw = dict(IDENTITY_50, member_aux=40, member_te=40, nonmember_aux=40, nonmember_te=40, gender_ratio=1.0)
    with pytest.raises(ValueError, match="gender_ratio"):
        sets.make_splits(_people(female=10), _split(**kw))   # needs 20 female identities, has 10


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_identity_split_varying_counts(seed):
    kw = dict(IDENTITY_50, member_aux=10, member_te=10, nonmember_aux=10, nonmember_te=10, images_per_identity=0)
    splits = sets.make_splits(_people(), _split(**kw, split_seed=seed))
    assert _counts(splits) == {"public": 0, "member_aux": 10, "member_te": 10, "nonmember_aux": 10,
                               "nonmember_te": 10}
    sets.check_disjoint(splits)
    per_identity = {}
    for name in sets.PRIVATE:
        for it in splits[name]:
            per_identity[it.identity] = per_identity.get(it.identity, 0) + 1
    assert max(per_identity.values()) <= 4


def test_identity_split_needs_identities():
    items = _people(5, 10) + [_item("anon", 250, 250)]
    with pytest.raises(ValueError, match="anon"):
        sets.make_splits(items, _split(**IDENTITY_50))


def test_identity_split_too_few_identities():
    with pytest.raises(ValueError, match="200"):
        sets.make_splits(_people(20, 10), _split(**IDENTITY_50))   # 20 identities x 8 = 160 < 200


def test_identity_split_skips_small_identities():
    # 25 identities with 8+ images and 10 with only 5: the small ones must never be used with images_per_identity=8
    items = _people(25, 8) + [it for it in _people(35, 5) if int(it.identity[1:]) >= 25]
    splits = sets.make_splits(items, _split(**IDENTITY_50))
    used = set().union(*_sides(splits))
    assert len(used) == 25 and all(int(i[1:]) < 25 for i in used)


def test_identity_split_gender_ratio_varying_mode():
    kw = dict(IDENTITY_50, member_aux=5, member_te=5, nonmember_aux=5, nonmember_te=5, images_per_identity=0,
              gender_ratio=0.7)
    items = _people(60, 10, female=30)
    for seed in range(6):
        splits = sets.make_splits(items, _split(**kw, split_seed=seed))
        genders = {it.identity: it.gender for name in sets.PRIVATE for it in splits[name]}
        n_f = sum(g == "female" for g in genders.values())
        assert n_f == round(0.7 * len(genders)), (seed, n_f, len(genders))


# ----------------------------------------------------------------------------------- member splits and private classes

def _private(splits) -> set[str]:
    return {it.id for name in sets.PRIVATE for it in splits[name]}


def test_member_seed_redeals_the_whole_private_pool_and_keeps_public(digits):
    """Another member split deals the four sets afresh from every image outside the public split, so its D_te is
    not split 0's images reshuffled: the splits share only about as many images as chance gives."""
    a = sets.make_splits(digits, _split(public=100))                      # 833 private of ~1,700 outside public
    b = sets.make_splits(digits, _split(public=100, member_seed=7))
    assert _ids(a)["public"] == _ids(b)["public"]                          # same base model
    assert _counts(a) == _counts(b)
    pool = {it.id for it in duplicates.dedupe(digits)} - set(_ids(a)["public"])
    assert _private(b) <= pool and _private(b) != _private(a)
    shared = len(_private(a) & _private(b))
    expected = len(_private(a)) ** 2 / len(pool)                          # two random draws of 833 from the pool
    assert 0.8 * expected < shared < 1.2 * expected
    assert set(_ids(a)["member_aux"]) != set(_ids(b)["member_aux"])
    assert _ids(b) == _ids(sets.make_splits(digits, _split(public=100, member_seed=7)))     # seeded
    assert _ids(b) != _ids(sets.make_splits(digits, _split(public=100, member_seed=8)))
    sets.check_disjoint(b)
    with pytest.raises(ValueError, match="member_seed"):
        sets.make_splits(_people(), _split(**IDENTITY_50, member_seed=3))


def test_private_classes_give_a_private_domain_the_base_model_never_saw():
    """With ``private_classes`` the four private sets come only from those classes and the public split only from
    the others; the default keeps one pool; the spec is validated."""
    from smplora_nb import config, sets

    items = data.load_dataset("digits", 16)
    cfg = config.make("tiny", private_classes="5-9")
    s = sets.make_splits(items, cfg.split)
    assert {it.label for k in sets.PRIVATE for it in s[k]} <= {5, 6, 7, 8, 9}
    assert {it.label for it in s["public"]} <= {0, 1, 2, 3, 4} and len(s["public"]) == cfg.split.public
    assert {k: len(v) for k, v in s.items() if k != "public"} == {k: getattr(cfg.split, k) for k in sets.PRIVATE}
    redealt = sets.make_splits(items, config.replace(cfg, member_seed=1).split)
    assert redealt["public"] == s["public"] and redealt["member_aux"] != s["member_aux"]
    assert _counts(redealt) == _counts(s) and {it.label for k in sets.PRIVATE for it in redealt[k]} <= {5, 6, 7, 8, 9}
    pool = {it.id for it in duplicates.dedupe(items) if it.label in {5, 6, 7, 8, 9}}        # every private-class image
    assert _private(redealt) <= pool and 0 < len(_private(redealt) & _private(s)) < len(_private(s)) / 2
    sets.check_disjoint(redealt)
    assert config.make("tiny").split.private_classes == "5-9"                          # the default (issue 16)
    plain = sets.make_splits(items, config.make("tiny", private_classes="").split)
    assert {it.label for it in plain["member_aux"]} - {5, 6, 7, 8, 9}                # one parameter away: one pool
    assert config.parse_classes("1,3-4") == {1, 3, 4} and config.parse_classes("") == frozenset()
    for bad in ("5-", "a", "9-5"):
        with pytest.raises(ValueError, match="private_classes"):
            config.make("tiny", private_classes=bad)
    with pytest.raises(ValueError, match="private images"):
        sets.make_splits(items, config.make("tiny", private_classes="9", member_aux=200).split)


def test_members_are_d_tr_and_counts_are_per_set(digits):
    splits = sets.make_splits(digits, config.make("tiny").split)
    assert sets.members(splits) == splits["member_aux"] + splits["member_te"]
    assert sets.counts(splits) == {name: len(splits[name]) for name in sets.SETS}
    assert sets.manifest(splits)["counts"] == sets.counts(splits)
