"""Solutions to notebook 01's exercises. Each takes what the notebook has built (``items``, ``cfg``, ``splits``)
and returns what to look at; ``tests/test_solutions.py`` runs every one on tiny inputs."""
import numpy as np
from PIL import Image

from smplora_nb import config, data, duplicates, sets, study


def exercise_1(items, cfg):
    """Another ``split_seed`` deals other images into sets of the same sizes, and the new split is still disjoint:
    the seed chooses *which* images are members, never how many."""
    other = sets.make_splits(items, config.replace(cfg, split_seed=cfg.split.split_seed + 1).split)
    mine = sets.make_splits(items, cfg.split)
    return {"same_counts": all(len(mine[k]) == len(other[k]) for k in sets.PRIVATE),
            "members_kept": len({it.id for it in mine["member_te"]} & {it.id for it in other["member_te"]}),
            "disjoint": sets.check_disjoint(other)["disjoint"]}


def exercise_2(items, splits):
    """A member saved again at another size is a near-duplicate (its 16x16 thumbnail lies within
    ``duplicates.NEAR_DUPLICATE_MAD`` of the original): the duplicate check drops the copy before splitting, so it can
    never land in another set than its original and leak membership through the back door."""
    original = splits["member_te"][0]
    pixels = np.asarray(Image.fromarray(original.image).resize((24, 24)).resize(original.image.shape[:2][::-1]))
    copy = data.Item("copy_of_" + original.id, pixels, original.caption, data.pixel_hash(pixels))
    return duplicates.dropped(items + [copy])[-1]                      # {"id": "copy_of_...", "copy_of": ..., "reason": ...}


def exercise_3(items):
    """Members all fives and non-members all nines measure a distribution shift, not memorisation: the
    model-free check (a logistic regression on pixels, fitted on D_aux) tells them apart with an AUC near 1.
    A membership experiment needs it near 0.5, which is why the four sets are dealt from one pool."""
    fives, nines = ([it for it in items if it.label == d] for d in (5, 9))
    shifted = {"member_aux": fives[:50], "member_te": fives[50:100],
               "nonmember_aux": nines[:50], "nonmember_te": nines[50:100]}
    return study.model_free_split_check(shifted, n_boot=200)["auc"]
