"""Exact and near-duplicate images at the resolution the model sees (issue 32): copies are found, distinct images
are not."""
import pytest

from smplora_nb import data, duplicates


def test_the_bundled_digits_hold_no_near_duplicates():
    """The threshold merges no two digits, so the default split is the one it was before the check."""
    items = data.load_dataset("digits", 16)
    assert duplicates.near_duplicates(items) == {}


@pytest.mark.parametrize("kind", ["pixel art at 32 px", "pixel art at 16 px", "photo-like"])
def test_copies_saved_again_resized_or_cropped_are_near_duplicates(kind):
    """Issue 32: small high-contrast images saved again, resized or cropped by 1% (a 32 px sprite saved at 48 px
    lay at a mean difference of 3.7, a photo cropped by 1% at 2.4, both over the 2.0 of the mean alone)."""
    import image_sets

    originals = {"pixel art at 32 px": image_sets.sprites(4, 32)[::2],
                 "pixel art at 16 px": image_sets.sprites(4, 16)[::2], "photo-like": image_sets.photos()[::9]}[kind]
    kinds = ("jpeg 95", "48 px bicubic", "1% crop") if kind != "pixel art at 16 px" else ("48 px bicubic", "1% crop")
    made = [image_sets.copies(img)[k] for img in originals for k in kinds]
    items = image_sets.as_items(originals + made)
    n = len(originals)
    assert duplicates.near_duplicates(items) == {n + k: k // len(kinds) for k in range(len(made))}


def test_distinct_pixel_art_and_its_variants_stay_apart():
    """The closest distinct sprites (a 2x2 block of cells recoloured) are not merged, at 32 or 16 px."""
    import image_sets

    for size in (32, 16):
        assert duplicates.near_duplicates(image_sets.as_items(image_sets.sprites(40, size))) == {}
