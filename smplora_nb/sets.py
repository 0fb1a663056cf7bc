"""The paper's five sets: splits, the manifest that records them, and the disjointness check (arXiv 2402.11989).

The private pool is cut into four disjoint sets (PAPER.md, "Datasets and splits")

    D_tr  = member_aux + member_te          (LoRA is trained on these)
    D_aux = member_aux + nonmember_aux      (the attacker's and the proxy's known data)
    D_te  = member_te + nonmember_te        (evaluation only)

plus, for the ``tiny`` profile, a ``public`` set disjoint from all four on which the base model is pretrained.
Exact and near-duplicate images are collapsed before splitting (``duplicates``), so no image can sit on both sides. CelebA-style
sets are identity-aware (the non-members are held-out images of the members' identities); the official released
sets (``data.OFFICIAL_SETS`` folders) are used as they are.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import paths
from .config import parse_classes
from .data import OFFICIAL_SETS, Item, load_dataset
from .duplicates import close_pairs, dedupe, dropped

PRIVATE = ("member_aux", "member_te", "nonmember_aux", "nonmember_te")
SETS = ("public",) + PRIVATE


def members(splits: dict[str, list[Item]]) -> list[Item]:
    """D_tr = member_aux + member_te: the images LoRA trains on, in that order."""
    return splits["member_aux"] + splits["member_te"]


def counts(splits: dict[str, list[Item]]) -> dict[str, int]:
    """The number of images in each set."""
    return {name: len(s) for name, s in splits.items()}


def judge(items: list[Item], splits: dict[str, list[Item]]) -> list[Item]:
    """The judge set: every distinct image in none of the four private sets (the public split plus the private
    pool's unused images, so with ``private_classes`` it knows every class). The tiny quality features and the
    digit classifier are trained on it, never on a member or a non-member."""
    private = {it.sha256 for name in PRIVATE for it in splits[name]}
    return [it for it in dedupe(items) if it.sha256 not in private]


def make_splits(items: list[Item], split, report: bool = False) -> dict[str, list[Item]]:
    """Cut ``items`` into ``public`` + the four private sets of ``split`` (a ``SplitConfig``), by ``split_seed``,
    after dropping duplicates and near-duplicates (``dedupe``; ``report``: one line says what)."""
    pool = dedupe(items, report)
    if any(it.given_set for it in pool):
        return _given_split(pool)
    sizes = {name: getattr(split, name) for name in PRIVATE}
    rng = np.random.default_rng(split.split_seed)
    classes = parse_classes(split.private_classes)
    if classes:
        sets, rest = _class_split(pool, sizes, split, classes, rng)
    elif split.identity_aware:
        sets, rest = _identity_split(pool, sizes, split, rng)
    else:
        need = sum(sizes.values())
        if need > len(pool):
            raise ValueError(f"the split needs {need} private images ({sizes}), but the dataset has only "
                             f"{len(pool)} distinct images")
        order = [pool[i] for i in rng.permutation(len(pool))]
        sets, rest = _deal(order, sizes), order[sum(sizes.values()):]
    if split.public > len(rest):
        raise ValueError(f"the split needs {split.public} public images, but only {len(rest)} remain after "
                         f"{sum(sizes.values())} private images")
    # public images come from the *end* of the shuffled pool, so the base model's data (and its cache) stays the
    # same when the private set sizes change
    sets["public"] = rest if split.public < 0 else rest[len(rest) - split.public:]
    if split.member_seed >= 0:                       # another member split: the whole private pool re-dealt
        if split.identity_aware:
            raise ValueError("member_seed re-deals a random split; identity-aware splits vary with split_seed")
        public = {it.sha256 for it in sets["public"]}
        private = [it for it in pool if it.sha256 not in public and (not classes or it.label in classes)]
        sets.update(_deal([private[i] for i in np.random.default_rng(split.member_seed).permutation(len(private))],
                          sizes))
    return {name: sets[name] for name in SETS}


def _class_split(pool, sizes, split, classes, rng):
    """A private domain the base model never saw: the four private sets dealt from the images of ``classes``
    (members and non-members still from one distribution); the rest, from which the public split is taken, holds
    only the other classes."""
    if split.identity_aware:
        raise ValueError("private_classes takes a random split, not an identity-aware one")
    if any(it.label is None for it in pool):
        raise ValueError("private_classes needs class labels (the digits dataset has them)")
    private = [it for it in pool if it.label in classes]
    public = [it for it in pool if it.label not in classes]
    need = sum(sizes.values())
    if need > len(private):
        raise ValueError(f"the split needs {need} private images, but classes {sorted(classes)} have {len(private)}")
    order = [private[i] for i in rng.permutation(len(private))]
    return _deal(order, sizes), [public[i] for i in rng.permutation(len(public))]


def _deal(order: list[Item], sizes: dict[str, int]) -> dict[str, list[Item]]:
    """The private sets, in ``PRIVATE`` order, as consecutive slices of ``order``."""
    out, start = {}, 0
    for name in PRIVATE:
        out[name], start = order[start:start + sizes[name]], start + sizes[name]
    return out


def _given_split(pool: list[Item]) -> dict[str, list[Item]]:
    """The sets of a released split (``OFFICIAL_SETS`` folders) as they are; every image must be in one of them."""
    loose = [it.id for it in pool if it.given_set is None]
    if loose:
        raise ValueError(f"the dataset has the official set folders {sorted(OFFICIAL_SETS)}, but {loose[0]} is "
                         f"in none of them")
    sets = {name: [it for it in pool if it.given_set == name] for name in PRIVATE}
    empty = [name for name in PRIVATE if not sets[name]]
    if empty:
        raise ValueError(f"the official set folders give no images for {empty}")
    return {"public": [], **sets}


def _identity_split(pool, sizes, split, rng):
    """Identity-aware split (CelebA protocol): the non-members are held-out images of the members' identities.

    Identities are drawn in random order; each contributes ``images_per_identity`` images (0: a count drawn from
    U{1..4}, the "Varying" set), dealt in turn to member_aux, nonmember_aux, member_te, nonmember_te so that every
    identity with two or more images appears on both sides (when the set sizes differ, the last identities fill
    the larger sets alone). ``gender_ratio`` (>= 0) fixes the fraction of female identities. The public split
    gets no image of an identity used here.
    """
    by_id: dict[str, list[Item]] = {}
    for it in pool:
        if it.identity is None:
            raise ValueError(f"identity_aware split needs identity labels; item {it.id} has none")
        by_id.setdefault(it.identity, []).append(it)
    k, total = split.images_per_identity, sum(sizes.values())
    ids = [i for i in sorted(by_id) if len(by_id[i]) >= max(k, 1)]
    ids = [ids[j] for j in rng.permutation(len(ids))]
    counts = {i: min(len(by_id[i]), k or int(rng.integers(1, 5))) for i in ids}
    if split.gender_ratio >= 0:
        ids = _gender_order(ids, by_id, counts, total, split.gender_ratio)
    order = ["member_aux", "nonmember_aux", "member_te", "nonmember_te"]
    sets = {name: [] for name in PRIVATE}
    used, turn = set(), 0
    for ident in ids:
        if sum(map(len, sets.values())) >= total:
            break
        imgs = [by_id[ident][j] for j in rng.permutation(len(by_id[ident]))][:counts[ident]]
        for it in imgs:
            for _ in range(4):                      # next set in the rotation that still has room
                name = order[turn % 4]
                turn += 1
                if len(sets[name]) < sizes[name]:
                    sets[name].append(it)
                    used.add(it.id)
                    break
    got = sum(map(len, sets.values()))
    if got < total:
        raise ValueError(f"the identity-aware split needs {total} images ({sizes}) from identities with >= "
                         f"{max(k, 1)} images each, but only {got} are available ({len(ids)} identities)")
    private_ids = {it.identity for name in PRIVATE for it in sets[name]}
    return sets, [it for it in pool if it.identity not in private_ids]   # public never shows a private identity


def _gender_order(ids, by_id, counts, total, ratio):
    """Order identities so that those the split uses have a fraction ``ratio`` of female ones: pick female next
    while the running female count is below ``round(ratio * picked)``, until the images cover ``total``."""
    female = [i for i in ids if by_id[i][0].gender == "female"]
    male = [i for i in ids if by_id[i][0].gender == "male"]
    chosen, n_f, acc = [], 0, 0
    while acc < total:
        want_female = n_f < round(ratio * (len(chosen) + 1))
        source = female if want_female else male
        if not source:
            raise ValueError(f"gender_ratio {ratio} needs more {'female' if want_female else 'male'} identities: "
                             f"the dataset has {len(female)} female and {len(male)} male identities with labels")
        chosen.append(source.pop(0))
        n_f += want_female
        acc += counts[chosen[-1]]
    return chosen + [i for i in ids if i not in chosen]


def manifest(splits: dict[str, list[Item]], cfg=None, items: list[Item] | None = None) -> dict:
    """JSON-ready record of a split: item ids and content hashes per set, counts, the config that made it, and
    (given the dataset's ``items``) the images dropped as duplicates or near-duplicates, with the reason."""
    out = {"sets": {name: [{"id": it.id, "sha256": it.sha256} for it in splits[name]] for name in splits},
           "counts": counts(splits)}
    if items is not None:
        out["dropped"] = dropped(items)
    if cfg is not None:
        out["dataset"] = cfg.data.dataset
        out["resolution"] = cfg.data.resolution
        out["split"] = dict(vars(cfg.split))
    return out


def save_manifest(path, man: dict) -> Path:
    return paths.write_json(Path(path), man)


def load_manifest(path) -> dict:
    return paths.read_json(Path(path))


def apply_manifest(items: list[Item], man: dict) -> dict[str, list[Item]]:
    """Rebuild the sets of a saved manifest from ``items``; raise if an id is missing or its content changed."""
    by_id = {it.id: it for it in items}
    out = {}
    for name, entries in man["sets"].items():
        out[name] = []
        for e in entries:
            it = by_id.get(e["id"])
            if it is None:
                raise ValueError(f"manifest item {e['id']} ({name}) is not in the dataset")
            if it.sha256 != e["sha256"]:
                raise ValueError(f"manifest item {e['id']} ({name}) has different content than when the split was made")
            out[name].append(it)
    return out


def check_disjoint(splits_or_manifest) -> dict:
    """Prove the sets share no item id, no image content and (given the items themselves, not a manifest) no
    near-duplicate image at the resolution the model sees; raise ``ValueError`` naming the first overlap."""
    sets = splits_or_manifest.get("sets", splits_or_manifest)
    owner_id, owner_hash = {}, {}
    for name, entries in sets.items():
        for e in entries:
            iid, h = (e["id"], e["sha256"]) if isinstance(e, dict) else (e.id, e.sha256)
            for key, owner, what in ((iid, owner_id, "item"), (h, owner_hash, "image content")):
                if key in owner and owner[key] != name:
                    raise ValueError(f"{what} {key[:16]} is in both {owner[key]} and {name}")
                owner[key] = name
    if "sets" not in splits_or_manifest:
        flat = [(name, it) for name, its in splits_or_manifest.items() for it in its]
        for i, j in close_pairs([it for _, it in flat]):
            if flat[i][0] != flat[j][0]:
                raise ValueError(f"image {flat[i][1].id} in {flat[i][0]} is a near-duplicate of {flat[j][1].id} "
                                 f"in {flat[j][0]}")
    return {"disjoint": True, "n_items": len(owner_id), "n_distinct_images": len(owner_hash)}


def per_key(splits, keys) -> dict:
    """``{key: sets}`` for runs on one split (``splits`` has ``member_aux``) or on several (``{key: sets}``)."""
    return {k: splits for k in keys} if "member_aux" in splits else {k: splits[k] for k in keys}


def prepare(cfg) -> tuple[list[Item], dict[str, list[Item]]]:
    """Load ``cfg.data.dataset`` and cut it by ``cfg.split``: the one call every notebook starts from."""
    items = load_dataset(cfg.data.dataset, cfg.data.resolution, cfg.data.caption_prefix, cfg.data.captions)
    splits = make_splits(items, cfg.split, report=True)
    check_disjoint(splits)
    return items, splits
