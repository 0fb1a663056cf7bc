"""The tiny SD-architecture pipeline: build, pretrain (a few steps), save, cache, and the shared loader."""
import numpy as np
import pytest
import torch

from smplora_nb import config, data, models, profiles, sets, tinybase

FAST = dict(vae_steps=2, pretrain_steps=3, pretrain_batch_size=8, public=40, member_aux=5, member_te=5,
            nonmember_aux=5, nonmember_te=5)


@pytest.fixture(scope="module")
def digits():
    return data.load_dataset("digits", 16)


@pytest.fixture
def tiny_base(digits):
    cfg = config.make("tiny", **FAST)
    splits = sets.make_splits(digits, cfg.split)
    return cfg, splits, models.base_model(cfg, splits, digits)


@pytest.mark.parametrize("word", ["three", "red", "abab", "ababab", "banana", "pokemon"])
def test_every_vocabulary_word_is_one_token(tmp_path, word):
    words = ["a", "red", "digit", "three", "re", "abab", "ababab", "banana", "an", "pokemon", "po"]
    tok = tinybase.build_tokenizer(sorted(words), tmp_path)
    assert tok.convert_ids_to_tokens(tok(word).input_ids) == ["<|startoftext|>", word + "</w>", "<|endoftext|>"]


def test_tokenizer_spells_caption_words_as_single_tokens(tmp_path):
    tok = tinybase.build_tokenizer(["a", "digit", "red", "three"], tmp_path)
    ids = tok("a red digit three").input_ids
    assert tok.convert_ids_to_tokens(ids) == ["<|startoftext|>", "a</w>", "red</w>", "digit</w>", "three</w>",
                                              "<|endoftext|>"]
    unknown = tok("zebra").input_ids                      # falls back to characters, never to <unk>
    assert tok.unk_token_id not in unknown[1:-1]


def test_tiny_parts_have_sd_architecture(tmp_path):
    cfg = config.make("tiny")
    parts = tinybase.build_tiny(["a", "red"], cfg.model, 16, tmp_path)
    assert type(parts["unet"]).__name__ == "UNet2DConditionModel"
    assert type(parts["vae"]).__name__ == "AutoencoderKL"
    assert type(parts["text_encoder"]).__name__ == "CLIPTextModel"
    sc = parts["scheduler"].config
    assert (sc.beta_schedule, sc.beta_start, sc.beta_end, sc.num_train_timesteps) == ("scaled_linear", 0.00085,
                                                                                       0.012, 1000)
    z = parts["vae"].encode(torch.zeros(2, 3, 16, 16)).latent_dist.mean
    assert z.shape == (2, 4, 8, 8)                         # 16 px -> 4x8x8 latents, as the issue sizes it


def test_save_load_round_trip_through_shared_loader(tiny_base):
    cfg, splits, folder = tiny_base
    assert (folder / "model_index.json").exists()
    assert list(folder.glob("unet/*.safetensors")) and not list(folder.rglob("*.bin"))
    pipe = models.load_pipeline(folder)
    again = models.load_pipeline(str(folder))
    for name in ("unet", "vae", "text_encoder"):
        a, b = getattr(pipe, name).state_dict(), getattr(again, name).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert pipe.vae.config.scaling_factor != 0.18215      # fitted to the public latents
    assert tinybase.pretrain_log(folder)["torch_threads"] == torch.get_num_threads()   # its bits depend on it
    imgs = models.generate(pipe, ["a red digit one", "a blue digit two"], seed=0, steps=2)
    assert imgs.shape == (2, 16, 16, 3) and imgs.dtype == np.uint8
    assert np.array_equal(imgs, models.generate(again, ["a red digit one", "a blue digit two"], seed=0, steps=2))


def test_base_model_is_cached(tiny_base, monkeypatch, digits):
    cfg, splits, folder = tiny_base
    monkeypatch.setattr(tinybase, "pretrain_tiny", lambda *a, **k: pytest.fail("retrained a cached base model"))
    assert models.base_model(cfg, splits, digits) == folder


def test_cache_key_depends_on_config_and_public_split(digits):
    cfg = config.make("tiny", **FAST)
    splits = sets.make_splits(digits, cfg.split)
    words = data.caption_words(digits)
    key = tinybase.tiny_cache_key(cfg, splits["public"], words)
    assert key == tinybase.tiny_cache_key(cfg, splits["public"], words)
    assert key != tinybase.tiny_cache_key(config.make("tiny", **{**FAST, "pretrain_steps": 4}), splits["public"], words)
    assert key != tinybase.tiny_cache_key(cfg, splits["public"][1:], words)


def test_failed_pretraining_leaves_no_cache(digits, monkeypatch):
    cfg = config.make("tiny", **{**FAST, "pretrain_steps": 5})
    splits = sets.make_splits(digits, cfg.split)

    def boom(*a, **k):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(tinybase, "pretrain_unet", boom)
    with pytest.raises(RuntimeError):
        models.base_model(cfg, splits, digits)
    folder = models.paths.cache_dir("base") / tinybase.tiny_cache_key(cfg, splits["public"], data.caption_words(digits))
    assert not folder.exists()
    assert not [p for p in folder.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".bin"])
def test_loader_refuses_pickle_checkpoints(tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    path.write_bytes(b"not really")
    with pytest.raises(ValueError, match="pickle"):
        models.load_pipeline(path)


def test_loader_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        models.load_pipeline(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="model_index.json"):
        models.load_pipeline(tmp_path)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        models.load_pipeline(tmp_path / "nowhere")


def test_base_model_passes_through_other_sources(digits):
    cfg = config.make("paper", public=0, member_aux=5, member_te=5, nonmember_aux=5, nonmember_te=5)
    assert models.base_model(cfg, {}, digits) == profiles.SD15_HUB_ID


# ---------------------------------------------------------------------------------------------- issue 32

def _odd_base(folder, tmp_path):
    """The tiny base saved again with a U-Net whose own sample_size (4 latents: 8 px) is not the run's 16 px."""
    pipe = models.load_pipeline(folder)
    pipe.unet.register_to_config(sample_size=4)
    pipe.save_pretrained(tmp_path / "odd", safe_serialization=True)
    return tmp_path / "odd"


def test_samples_are_drawn_at_the_runs_resolution(tiny_base, tmp_path):
    cfg, _, folder = tiny_base
    pipe = models.load_pipeline(_odd_base(folder, tmp_path))
    captions = ["a red digit one", "a blue digit two"]
    assert models.generate(pipe, captions, steps=2).shape == (2, 8, 8, 3)                  # the U-Net's own size
    assert models.generate(pipe, captions, steps=2, resolution=cfg.data.resolution).shape == (2, 16, 16, 3)


def test_the_tiny_defaults_samples_are_the_same_at_its_resolution(tiny_base):
    """On the tiny default the U-Net's size already is the resolution: the samples stay bit for bit the same."""
    cfg, _, folder = tiny_base
    pipe = models.load_pipeline(folder)
    captions = ["a red digit one", "a blue digit two", "a green digit seven"]
    assert np.array_equal(models.generate(pipe, captions, seed=3, steps=3),
                          models.generate(pipe, captions, seed=3, steps=3, resolution=cfg.data.resolution))


class _Planted:
    """A pickle that, were it ever unpickled, would leave a file behind."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("damage, words", [("pickle-only unet", "has only pickle weights"),
                                           ("no vae", "has no vae/ folder"),
                                           ("wrong unet class", "cannot be loaded as a Stable Diffusion pipeline")])
def test_a_base_folder_that_cannot_be_loaded_is_refused_in_one_line(tiny_base, tmp_path, damage, words):
    import json
    import pickle
    import shutil

    _, _, folder = tiny_base
    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    marker = tmp_path / "unpickled"
    if damage == "pickle-only unet":
        for f in (bad / "unet").glob("*.safetensors"):
            f.unlink()
        (bad / "unet" / "diffusion_pytorch_model.bin").write_bytes(pickle.dumps(_Planted(marker)))
    elif damage == "no vae":
        shutil.rmtree(bad / "vae")
    else:
        index = json.loads((bad / "model_index.json").read_text())
        (bad / "model_index.json").write_text(json.dumps({**index, "unet": ["diffusers", "UNet2DModel"]}))
    with pytest.raises(ValueError, match=words) as caught:
        models.load_pipeline(bad)
    assert str(bad) in str(caught.value) and "\n" not in str(caught.value)
    assert not marker.exists()                                                      # never unpickled


def test_latents_keep_their_cache_key_when_outputs_move(tiny_base, tmp_path, monkeypatch):
    """The latents' key names a cached base by its folder, not by where outputs/ lies: moved or mounted elsewhere,
    nothing is encoded again (and the base model's audits stay where they were)."""
    import os

    from smplora_nb import attack, paths

    cfg, splits, folder = tiny_base
    parts = models.load_pipeline(folder).components
    z0, cond = models.encode_items(parts, splits["member_te"], source=folder)
    before = attack.folder(folder, None).name
    moved = tmp_path / "moved"
    os.rename(paths.outputs_root(), moved)
    monkeypatch.setenv("SMPLORA_OUTPUTS", str(moved))
    again = paths.cache_dir("base") / folder.name
    monkeypatch.setattr(parts["vae"], "encode", lambda *a, **k: pytest.fail("encoded the latents again"))
    z1, cond1 = models.encode_items(parts, splits["member_te"], source=again)
    assert torch.equal(z0, z1) and torch.equal(cond, cond1) and attack.folder(again, None).name == before


class _Sizes:
    """A quality extractor that records the sizes of the images it is given (the real one fits a CNN)."""
    description = "sizes"

    def score(self, members, images, labels):
        return {"members": list(members[0].image.shape), "samples": list(images.shape[1:])}


def test_audits_judge_samples_drawn_at_the_runs_resolution(tiny_setup, tmp_path):
    """FID/KID and sample accuracy compare samples with the member images: both at the run's resolution."""
    from smplora_nb import evaluate

    cfg, _, splits, folder = tiny_setup
    out = evaluate.evaluate(_odd_base(folder, tmp_path), None, splits, _Sizes(), seed=0, attacks=("loss_at_t",),
                            n_boot=10, steps=2)
    assert out["quality"]["samples"] == out["quality"]["members"] == [cfg.data.resolution, cfg.data.resolution, 3]


def test_encode_items_shapes(tiny_setup):
    cfg, _, splits, base = tiny_setup
    z0, cond = models.encode_items(models.load_pipeline(base).components, splits["member_aux"])
    assert z0.shape == (6, 4, 8, 8) and cond.shape[0] == 6 and torch.isfinite(z0).all()
