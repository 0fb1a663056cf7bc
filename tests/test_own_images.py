"""Your own images through the whole series (issue 19): a folder of unlabeled captioned pictures, the tiny profile.

The folder holds coloured shapes (no class labels anywhere), the captions say what is drawn; the tiny profile then
takes one pool and all remaining images for the base model, and the quality features are label-free
(``quality.PixelPCA``). The notebooks that a folder changes on this profile (01, 02, 06) run at the smallest sizes
that still exercise each of their sections.
"""
import numpy as np
import pytest

from smplora_nb import config, data, paths, quality, runner, schema, sets

SHAPES = ("circle", "square", "cross")
COLOURS = {"red": (230, 40, 30), "green": (30, 210, 60), "blue": (40, 90, 240), "yellow": (230, 210, 40)}


def shapes_folder(root, n=300, size=20, seed=0):
    """``n`` pictures of a coloured shape at a random place and size, each with a same-stem ``.txt`` caption."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    yy, xx = np.mgrid[:size, :size]
    for i in range(n):
        shape, colour = SHAPES[i % 3], list(COLOURS)[(i // 3) % 4]
        r, cy, cx = rng.uniform(3, 7), rng.uniform(6, size - 6), rng.uniform(6, size - 6)
        mask = {"circle": (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r,
                "square": (abs(yy - cy) <= r * 0.8) & (abs(xx - cx) <= r * 0.8),
                "cross": ((abs(yy - cy) <= 1.2) | (abs(xx - cx) <= 1.2)) & (abs(yy - cy) <= r) & (abs(xx - cx) <= r)}[shape]
        img = np.zeros((size, size, 3), np.uint8) + rng.integers(0, 30, (size, size, 3), dtype=np.uint8)
        img[mask] = COLOURS[colour]
        Image.fromarray(img).save(root / f"pic_{i:03d}.png")
        (root / f"pic_{i:03d}.txt").write_text(f"a {colour} {shape}")
    return root


SMALL = {"member_aux": 12, "member_te": 12, "nonmember_aux": 12, "nonmember_te": 12, "vae_steps": 10, "sample_steps": 2,
         "unet_channels": [16, 32], "audit_boot": 50,
         "pretrain_steps": 10}
FEW = {"epochs": 1, "mlp_epochs": 2, "overrides": SMALL}
PARAMS = {  # the test sizes: every section runs, nothing more
    "01_data_splitting": {"vae_steps": 10, "pretrain_steps": 10, "n_samples": 6, "overrides": SMALL},
    "02_membership_inference_attack": {**FEW, "n_splits": 1},
    "06_stronger_attacks_and_baselines": {**FEW, "epochs": 2, "n_splits": 1, "mp_splits": 1, "hessian_every": 1,
                                          "hessian_iters": 2, "dp_epsilons": [8.0], "dp_epochs": 1, "n_boot": 20,
                                          "in_distribution": True},
}   # what a folder changes on the tiny profile: the base model pretrained on the folder's public rest (01), the
# label-free quality features (02 and 06) and section 5 of 06 (the folder is one pool already). Notebooks 03 to 05
# run on a folder of images too, on the paper profile (tests/test_notebooks.py); on the digits at two splits there.


def test_the_tiny_profile_adapts_to_a_folder(tmp_path, capsys):
    folder = shapes_folder(tmp_path / "shapes", n=90)
    cfg = config.make("tiny", dataset=f"folder:{folder}")
    assert cfg.split.public == -1 and cfg.split.private_classes == ""
    assert "public = all images the private sets leave" in capsys.readouterr().out
    assert config.make("tiny", dataset=f"folder:{folder}", public=5).split.public == 5      # given: kept
    assert config.make("tiny").split.public == 900 and config.make("tiny").split.private_classes == "5-9"
    small = config.make("tiny", dataset=f"folder:{folder}", **{k: 12 for k in sets.PRIVATE})
    items, splits = sets.prepare(small)
    assert len(splits["public"]) == 90 - 48 and all(it.label is None for it in items)


def test_label_free_features_are_deterministic_and_rank_noise_below_pictures(tmp_path):
    items = data.load_dataset(f"folder:{shapes_folder(tmp_path / 'shapes', n=120)}", 16)
    cfg = config.make("tiny", dataset=f"folder:{tmp_path / 'shapes'}", **{k: 12 for k in sets.PRIVATE})
    splits = sets.make_splits(items, cfg.split)
    ext = quality.quality_extractor(splits, cfg, items)
    assert ext.classifier is None and "no class labels" in ext.description
    real = splits["member_te"] + splits["member_aux"]
    same = ext.score(real, np.stack([it.image for it in splits["nonmember_te"] + splits["nonmember_aux"]]))
    noise = ext.score(real, np.random.default_rng(0).integers(0, 255, (24, 16, 16, 3), dtype=np.uint8))
    assert "digit_accuracy" not in same and same["fid"] < noise["fid"]          # pictures beat noise
    again = quality.quality_extractor(splits, cfg, items).score(real, np.stack([it.image for it in splits["nonmember_te"]
                                                                                 + splits["nonmember_aux"]]))
    assert again == same


@pytest.mark.parametrize("_", [None], ids=["01-02-06"])
def test_the_series_runs_on_a_folder_of_unlabeled_images(tmp_path, _):
    folder = shapes_folder(tmp_path / "shapes", n=300)
    for stem, params in PARAMS.items():
        runner.run(only=[stem], params={**params, "dataset": f"folder:{folder}"}, progress=False)
        schema.read(stem)                                             # metrics written, with their keys
        assert paths.read_json(paths.outputs_root() / stem / "run_key.json")["parameters"]["dataset"] == f"folder:{folder}"
        assert any(p.suffix == ".png" for p in (paths.outputs_root() / stem).iterdir()), stem
    m2 = schema.read("02_membership_inference_attack")
    assert "no class labels" in m2["feature_extractor"]
    assert set(m2["utility"]["lora"]) >= {"heldout_loss", "fid", "kid"} and "sample_accuracy" not in m2["utility"]["lora"]
    lesson = schema.read("06_stronger_attacks_and_baselines")["in_distribution"]   # section 5 (one pool already)
    assert set(lesson["gain"]) == {"private_domain", "in_distribution"} and "smp_lora" in lesson["frontier"]["points"]
    assert (paths.outputs_root() / "06_stronger_attacks_and_baselines" / "frontier_in_distribution.png").stat().st_size > 1000
    m1 = paths.read_metrics("01_data_splitting")
    man = paths.read_json(paths.outputs_root() / "01_data_splitting" / "manifest.json")
    assert m1["counts"]["public"] == 300 - 48 - len(man.get("dropped", [])) and m1["disjoint"] is True
    assert len(man.get("dropped", [])) <= 3                              # random shapes: a rare near-twin, not many
