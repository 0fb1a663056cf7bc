"""The paper-scale code path (issue 6), run on CPU with tiny saved pipelines: folder and single-file bases, the
official dataset layouts, identity-aware presets, mixed precision with fp32 LoRA, gradient checkpointing, the latent
cache, and ``accelerate launch`` over two processes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from smplora_nb import attack, config, data, evaluate, models, quality, runs, sets

sys.path.insert(0, str(Path(__file__).parent))
import ldm_export  # noqa: E402

SMALL = dict(resolution=16, member_aux=6, member_te=6, nonmember_aux=6, nonmember_te=6, lora_rank=4, lora_alpha=4.0,
             batch_size=4, proxy_batch_size=4, epochs=2, sample_steps=2)


def _pokemon_folder(root: Path, digits, n=30) -> Path:
    """The official Pokemon layout: ``1_pokemon/pokemon_<i>-0000.png`` + ``.txt`` "pokemon, <caption>"."""
    sub = root / "1_pokemon"
    sub.mkdir(parents=True)
    for i, it in enumerate(digits[:n]):
        Image.fromarray(it.image).resize((24, 20)).save(sub / f"pokemon_{i}-0000.png")   # not square: crop
        (sub / f"pokemon_{i}-0000.txt").write_text("pokemon, " + it.caption)
    return root


@pytest.fixture(scope="module")
def digits():
    return data.load_dataset("digits", 16)


@pytest.fixture(scope="module")
def single_file(tiny_setup, tmp_path_factory):
    return ldm_export.export(tiny_setup[3], tmp_path_factory.mktemp("ckpt") / "tiny-sd.safetensors")


def _weights(run) -> dict:
    return load_file(str(Path(run) / "lora" / "pytorch_lora_weights.safetensors"))


# ----------------------------------------------------------------------------------------------------- models

def test_single_file_loads_the_same_weights_as_the_folder(tiny_setup, single_file):
    folder = tiny_setup[3]
    a, b = models.load_pipeline(folder), models.load_pipeline(single_file, config=str(folder))
    for name in ("unet", "vae", "text_encoder"):
        sa, sb = getattr(a, name).state_dict(), getattr(b, name).state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa), name


def test_loader_rejects_checkpoints_that_are_not_sd(tmp_path, tiny_setup):
    cases = {"other": {"encoder.weight": torch.zeros(2)},
             "sdxl": {"conditioner.embedders.0.x": torch.zeros(2), "model.diffusion_model.x": torch.zeros(2)},
             "lora": {"unet.down.lora_A.weight": torch.zeros(2)}}
    for name, state in cases.items():
        save_file(state, str(tmp_path / f"{name}.safetensors"))
    with pytest.raises(ValueError, match="not a Stable Diffusion checkpoint"):
        models.load_pipeline(tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="SDXL"):
        models.load_pipeline(tmp_path / "sdxl.safetensors")
    with pytest.raises(ValueError, match="LoRA"):
        models.load_pipeline(tmp_path / "lora.safetensors")
    (tmp_path / "garbage.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(ValueError, match="not a readable"):
        models.load_pipeline(tmp_path / "garbage.safetensors")
    other = tmp_path / "sdxl_folder"
    other.mkdir()
    (other / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionXLPipeline"}))
    with pytest.raises(ValueError, match="StableDiffusionXLPipeline"):
        models.load_pipeline(other)


def test_attention_runs_through_pytorch_sdpa(tiny_setup):
    from diffusers.models.attention_processor import AttnProcessor2_0

    procs = models.load_pipeline(tiny_setup[3]).unet.attn_processors
    assert procs and all(isinstance(p, AttnProcessor2_0) for p in procs.values())


def test_latents_and_caption_embeddings_are_cached_on_disk(tiny_setup, monkeypatch):
    _, _, splits, base = tiny_setup
    parts = models.load_pipeline(base).components
    z0, cond = models.encode_items(parts, splits["member_aux"], source=base)
    monkeypatch.setattr(parts["vae"], "encode", lambda *a, **k: pytest.fail("encoded cached latents again"))
    monkeypatch.setattr(models.tinybase, "encode_text", lambda *a, **k: pytest.fail("encoded cached captions again"))
    z1, c1 = models.encode_items(parts, splits["member_aux"], source=base)
    assert torch.equal(z0, z1) and torch.equal(cond, c1) and z0.stride() == z1.stride()


# ------------------------------------------------------------------------------------------------------ data

def test_official_pokemon_folder_layout(tmp_path, digits):
    root = _pokemon_folder(tmp_path / "pokemon", digits)
    cfg = config.make("paper", dataset=f"folder:{root}", caption_prefix="pokemon, ", **SMALL)
    items, splits = sets.prepare(cfg)
    assert len(items) == 30 and all(it.image.shape == (16, 16, 3) for it in items)
    assert all(it.caption.startswith("pokemon, ") and not it.caption.startswith("pokemon, pokemon") for it in items)
    assert {k: len(v) for k, v in splits.items()} == {"public": 0, "member_aux": 6, "member_te": 6,
                                                      "nonmember_aux": 6, "nonmember_te": 6}


def test_official_released_sets_and_celeba_identity_tokens(tmp_path):
    root = tmp_path / "CelebA_Small"
    rng = np.random.default_rng(0)
    for folder, name in data.OFFICIAL_SETS.items():
        for ident in (101, 202):
            for j in range(2):
                sub = root / folder / f"1_cele{ident}"
                sub.mkdir(parents=True, exist_ok=True)
                Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(sub / f"{name}{j}.png")
                (sub / f"{name}{j}.txt").write_text(f"cele{ident}, a photo of a person")
    items, splits = sets.prepare(config.make("paper", dataset=f"folder:{root}", resolution=16))
    assert {k: len(v) for k, v in splits.items()} == {"public": 0, "member_aux": 4, "member_te": 4,
                                                      "nonmember_aux": 4, "nonmember_te": 4}
    assert all(it.id.startswith(folder) for folder, name in data.OFFICIAL_SETS.items() for it in splits[name])
    assert {it.identity for it in items} == {"cele101", "cele202"}
    Image.new("RGB", (16, 16), (1, 2, 3)).save(root / "stray.png")
    (root / "stray.txt").write_text("cele101, stray")
    with pytest.raises(ValueError, match="stray.png is in none of them"):
        sets.prepare(config.make("paper", dataset=f"folder:{root}", resolution=16))


def test_coco_captions_and_celeba_label_files(tmp_path):
    root = tmp_path / "coco"
    (root / "train2017").mkdir(parents=True)
    (root / "annotations").mkdir()
    for i in range(3):
        Image.new("RGB", (20, 16), (i * 40, 10, 10)).save(root / "train2017" / f"{i:012d}.jpg")
    ann = {"images": [{"id": i, "file_name": f"{i:012d}.jpg"} for i in range(3)],
           "annotations": [{"id": 10 + i, "image_id": i, "caption": f"second {i}"} for i in range(3)]
           + [{"id": i, "image_id": i, "caption": f" a cat number {i} "} for i in range(3)]}
    (root / "annotations" / "captions_train2017.json").write_text(json.dumps(ann))
    items = data.load_folder(str(root), 16)
    assert [it.caption for it in items] == [f"a cat number {i}" for i in range(3)]       # first caption by id
    (root / "identity_CelebA.txt").write_text("".join(f"{i:012d}.jpg {7 + i % 2}\n" for i in range(3)))
    (root / "list_attr_celeba.txt").write_text("3\nSmiling Male Young\n" + "".join(
        f"{i:012d}.jpg 1 {1 if i else -1} 1\n" for i in range(3)))
    items = data.load_folder(str(root), 16)
    assert [(it.identity, it.gender) for it in items] == [("7", "female"), ("8", "male"), ("7", "male")]
    (root / "annotations" / "captions_train2017.json").write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match="not an MS-COCO captions file"):
        data.load_folder(str(root), 16)


def _people(n_id, per=8, female_frac=0.5):
    items = []
    for i in range(n_id):
        for j in range(per):
            img = np.random.default_rng([i, j]).integers(0, 256, (4, 4, 3), dtype=np.uint8)   # distinct pictures
            items.append(data.Item(id=f"{i:04d}-{j}", image=img, caption=f"cele{i}, a face", sha256=data.pixel_hash(img),
                                   identity=f"cele{i}", gender="female" if i < n_id * female_frac else "male"))
    return items


@pytest.mark.parametrize("preset, per_set, n_ids", [("celeba_small", 50, 25), ("celeba_large", 200, 100),
                                                    ("celeba_gender", 40, 20), ("celeba_varying", 63, None)])
def test_celeba_presets_have_the_papers_counts_and_ratios(preset, per_set, n_ids):
    cfg = config.make("paper", split_preset=preset)
    splits = sets.make_splits(_people(150), cfg.split)
    assert {k: len(v) for k, v in splits.items() if k != "public"} == {k: per_set for k in sets.PRIVATE}
    used = {}
    for name in sets.PRIVATE:
        for it in splits[name]:
            used.setdefault(it.identity, []).append(name)
    members = {i for i, sets in used.items() if any(s.startswith("member") for s in sets)}
    nonmembers = {i for i, sets in used.items() if any(s.startswith("nonmember") for s in sets)}
    if n_ids is not None:                                   # 8 images per identity, on both sides
        assert len(used) == n_ids and all(len(v) == 8 for v in used.values()) and members == nonmembers
    else:                                                   # Varying: 252 images, U{1..4} per identity
        counts = [len(v) for v in used.values()]
        assert set(counts) <= {1, 2, 3, 4} and len(set(counts)) > 1 and sum(counts) == 252
        assert 63 <= len(used) <= 252
        assert all(i in members and i in nonmembers for i, v in used.items() if len(v) >= 2)
    if preset == "celeba_gender":
        female = sum(any(it.gender == "female" for name in sets.PRIVATE for it in splits[name]
                         if it.identity == i) for i in used)
        assert female / len(used) == pytest.approx(0.7)    # 14 of 20 identities: 7:3
    sets.check_disjoint(splits)


# ------------------------------------------------------------------------------------------- training path

@pytest.mark.parametrize("source", ["folder", "single_file"])
def test_paper_path_end_to_end(tiny_setup, single_file, tmp_path, digits, source):
    """Profile ``paper`` (text-encoder LoRA, grad clipping, the paper's raw-map proxy) with sizes overridden: data from the official
    folder layout, bf16 with fp32 LoRA, gradient checkpointing; train LoRA and SMP-LoRA, audit, load the LoRA with
    the plain diffusers call."""
    from diffusers import StableDiffusionPipeline

    folder = tiny_setup[3]
    root = _pokemon_folder(tmp_path / "pokemon", digits)
    base_kw = {"base": str(folder)} if source == "folder" else {"base": str(single_file), "base_config": str(folder)}
    cfg = config.make("paper", dataset=f"folder:{root}", mixed_precision="bf16", gradient_checkpointing=True,
                      **base_kw, **SMALL)
    assert cfg.train.text_encoder_lr > 0 and cfg.train.grad_clip == 1.0 and cfg.train.proxy_feature == "paper"
    items, splits = sets.prepare(cfg)
    base = models.base_model(cfg, splits, items)
    if source == "single_file":
        assert Path(base).name.startswith("single-") and (Path(base) / "model_index.json").exists()
    trained = {m: runs.train(config.replace(cfg, method=m), splits, base, progress=False) for m in ("lora", "smp_lora")}
    for m, run in trained.items():
        log = json.loads((run / "train_log.json").read_text())
        assert log["mixed_precision"] == "bf16" and log["steps"] == 6 and not log["diverged"]
        assert np.isfinite(log["loss"]).all()
        w = _weights(run)
        assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in w.values())   # LoRA kept fp32
        assert any(k.startswith("text_encoder.") for k in w) and any(k.startswith("unet.") for k in w)
    assert "gain" in json.loads((trained["smp_lora"] / "train_log.json").read_text())
    pipe = StableDiffusionPipeline.from_pretrained(base, safety_checker=None, requires_safety_checker=False)
    before = models.generate(pipe, ["pokemon, a red digit one"], seed=0, steps=2)
    pipe.load_lora_weights(str(trained["smp_lora"] / "lora"))             # the plain diffusers call
    after = models.generate(pipe, ["pokemon, a red digit one"], seed=0, steps=2)
    assert not np.array_equal(before, after)
    pixels = quality.QualityExtractor(lambda im: np.asarray(im, float).reshape(len(im), -1)[:, ::16], "pixels (test)")
    out = evaluate.evaluate(base, trained["smp_lora"], splits, pixels, seed=0, attacks=tuple(attack.ATTACKS),
                            mlp_epochs=2, steps=2)
    assert list(out["audit"]) == list(attack.ATTACKS) and np.isfinite(out["quality"]["fid"])


@pytest.mark.parametrize("method", ["mp_lora", "smp_lora"])
def test_paper_profile_private_run_with_the_hessian_and_a_text_encoder_lora(tiny_setup, method):
    """The Hessian is taken w.r.t. every trainable LoRA weight, the text encoder's included (its captions go through
    the text-encoder LoRA): it used to stop at step 0 ("...appears to not have been used in the graph")."""
    cfg = config.make("paper", base=str(tiny_setup[3]), dataset="digits", method=method, hessian_every=1,
                      hessian_iters=3, mixed_precision="bf16", **SMALL)
    assert cfg.train.text_encoder_lr > 0 and cfg.train.proxy_feature == "paper"
    items, splits = sets.prepare(cfg)
    log = json.loads((runs.train(cfg, splits, models.base_model(cfg, splits, items), progress=False)
                      / "train_log.json").read_text())
    assert log["steps"] == 6 and [h[0] for h in log["hessian"]] == list(range(6))
    assert all(np.isfinite(h[1]) and h[2] > 0 for h in log["hessian"])


def test_fp16_on_cpu_is_refused_clearly(tiny_setup):
    cfg, _, splits, base = tiny_setup
    with pytest.raises(ValueError, match="fp16.*bf16"):
        runs.train(config.replace(cfg, mixed_precision="fp16"), splits, base)


def test_gradient_checkpointing_changes_memory_not_results(tiny_setup, monkeypatch, tmp_path):
    cfg, _, splits, base = tiny_setup
    cfg = config.replace(cfg, epochs=2)
    plain = _weights(runs.train(cfg, splits, base, progress=False))
    monkeypatch.setenv("SMPLORA_OUTPUTS", str(tmp_path / "ckpt"))
    ckpt = _weights(runs.train(config.replace(cfg, gradient_checkpointing=True), splits, base, progress=False))
    assert plain.keys() == ckpt.keys() and all(torch.allclose(plain[k], ckpt[k], atol=1e-6) for k in plain)


# ------------------------------------------------------------------------------------------ several processes

LAUNCH_ARGS = ["-p", "vae_steps", "2", "-p", "pretrain_steps", "3", "-p", "pretrain_batch_size", "8", "-p", "public",
               "40", "-p", "member_aux", "6", "-p", "member_te", "6", "-p", "nonmember_aux", "6", "-p",
               "nonmember_te", "6", "-p", "lora_rank", "4", "-p", "lora_alpha", "4.0", "-p", "batch_size", "4",
               "-p", "proxy_batch_size", "4", "-p", "epochs", "2"]


def _launch(outputs: Path, method: str, processes: int) -> dict:
    """``python -m smplora_nb train`` in one process, or under ``accelerate launch`` in several. On a machine
    without GPU ``--multi_gpu`` starts CPU processes over gloo (accelerate's ``--cpu`` flag starts one process)."""
    exe = Path(sys.executable)
    cmd = [str(exe), "-m", "smplora_nb", "train"]
    if processes > 1:
        cmd = [str(exe.parent / "accelerate"), "launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "smplora_nb", "train"]
    env = {**os.environ, "SMPLORA_OUTPUTS": str(outputs), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd + ["--profile", "tiny", "-p", "method", method] + LAUNCH_ARGS, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [json.loads(line) for line in res.stdout.splitlines() if line.startswith('{"run"')]
    assert len(lines) == 1, res.stdout[-2000:]                       # only the main process reports
    return lines[0]


@pytest.mark.xdist_group("accelerate")        # one launch at a time: both would take accelerate's default port
@pytest.mark.parametrize("method", ["smp_lora", "lora"])
def test_accelerate_launch_two_processes(tmp_path, method):
    two = _launch(tmp_path / "two", method, 2)
    one = _launch(tmp_path / "one", method, 1)
    assert two["processes"] == 2 and two["lora_consistent"] is True and two["steps"] == one["steps"] == 6
    if method == "smp_lora":
        assert two["proxy_consistent"] is True                       # the proxy is the same on both processes
    log = json.loads((Path(two["run"]) / "train_log.json").read_text())
    assert np.isfinite(log["loss"]).all() and (method == "lora" or np.isfinite(log["gain"]).all())
    a, b = _weights(two["run"]), _weights(one["run"])
    assert a.keys() == b.keys() and all(a[k].shape == b[k].shape and torch.isfinite(a[k]).all() for k in a)
    if method == "lora":                        # the global batch is split exactly: the same run up to round-off
        assert Path(two["run"]).name == Path(one["run"]).name
        assert all(torch.allclose(a[k], b[k], atol=2e-3) for k in a)
    else:                                       # the private objective is averaged per slice: its own cache key
        assert Path(two["run"]).name != Path(one["run"]).name


def test_gpu_steps_benchmark_runs_on_cpu_at_small_size(monkeypatch, tmp_path):
    """``scripts/gpu_check.sh``'s benchmark, shrunk: the same code path prints steps/s for both methods."""
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    import gpu_steps

    out = gpu_steps.main(["--small", "--mixed-precision", "no"])
    assert set(out) == {"lora", "smp_lora"} and all(r["steps_per_s"] > 0 for r in out.values())


def test_paper_steps_benchmark_builds_an_sd15_shaped_pipeline_and_trains_on_cpu(monkeypatch, tmp_path):
    """``benchmarks/paper_steps.py`` (SD v1.5's architecture, untrained, on a GPU), shrunk: it builds its pipeline,
    the package's loader accepts it as SD v1-architecture, and both methods train through the paper profile."""
    monkeypatch.setenv("SMPLORA_OUTPUTS", str(tmp_path))
    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    import paper_steps

    out = paper_steps.main(["--small", "--mixed-precision", "no", "--steps", "4"])
    assert {k: r["steps"] for k, r in out.items()} == {"lora": 4, "smp_lora": 4}
    assert all(r["steps_per_s"] > 0 for r in out.values())


def test_vae_encodes_large_images_a_few_at_a_time(tiny_setup, monkeypatch):
    """64 images per VAE call up to 128 px, fewer above (64 SD-VAE encodes at 512 px held about 40 GiB on an H200);
    a chunked encode gives the latents of one call."""
    assert models.encode_chunk(16 * 16) == models.encode_chunk(128 * 128) == 64
    assert models.encode_chunk(512 * 512) == 4 and models.encode_chunk(1024 * 1024) == 1
    parts = models.load_pipeline(tiny_setup[3]).components
    items = tiny_setup[2]["member_te"][:10]
    whole, _ = models.encode_items(parts, items)
    monkeypatch.setattr(models, "ENCODE_PIXELS", 3 * 16 * 16)           # 3 images per call
    assert models.encode_chunk(16 * 16) == 3
    chunked, _ = models.encode_items(parts, items)
    assert torch.allclose(whole, chunked, atol=1e-5)


def test_hub_dataset_columns_without_network(monkeypatch):
    """``hub:ID`` (the Pokemon mirror's columns: image, en_text, zh_text) through a stand-in ``datasets`` module."""
    import types

    rows = [{"image": Image.new("RGB", (30, 20), (i * 50, 0, 0)), "en_text": f"a pokemon {i}", "zh_text": "x"}
            for i in range(3)]

    class Fake(list):
        column_names = ["image", "en_text", "zh_text"]

    fake = types.SimpleNamespace(load_dataset=lambda repo, split: Fake(rows))
    monkeypatch.setitem(sys.modules, "datasets", fake)
    items = data.load_dataset(f"hub:{data.POKEMON_HUB_ID}", 16, caption_prefix="pokemon, ")
    assert [it.caption for it in items] == [f"pokemon, a pokemon {i}" for i in range(3)]
    assert all(it.image.shape == (16, 16, 3) for it in items)
    Fake.column_names = ["image", "label"]
    with pytest.raises(ValueError, match="en_text"):
        data.load_dataset("hub:someone/other", 16)
