"""The one loader for every base model, the model's inputs and sampling (smplora_nb, arXiv 2402.11989 companion).

``base_model`` names the base of a config: the tiny model pretrained on the public split (``tinybase``, built once
and cached), a hub id, a diffusers folder, or an original-layout ``.safetensors`` file (converted once to a cached
folder). ``load_pipeline`` loads any of them through the same ``StableDiffusionPipeline.from_pretrained`` call that
loads SD v1.5. ``encode_items`` gives a set's latents and caption embeddings (cached on disk), ``generate`` samples.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save
from tqdm.auto import tqdm

from . import data, paths, tinybase

PICKLE_SUFFIXES = {".ckpt", ".pt", ".pth", ".bin", ".pkl"}



def base_model(cfg, splits: dict[str, list[data.Item]], all_items: list[data.Item]) -> Path:
    """The base pipeline's source: ``cfg.model.base`` itself (hub id or folder), a single ``.safetensors`` file
    converted to a cached folder, or the tiny model pretrained on the public split (built once, then loaded from
    ``outputs/cache/base/<key>/``)."""
    if Path(cfg.model.base).suffix.lower() == ".safetensors":
        return single_file_base(cfg.model.base, cfg.model.base_config)
    if cfg.model.base != "tiny":
        return cfg.model.base
    public = splits["public"]
    if not public:
        raise ValueError("the tiny base model needs a public split (set public=-1 or a positive count)")
    words = data.caption_words(all_items)          # vocabulary only; the weights see the public split alone
    folder = paths.cache_dir("base") / tinybase.tiny_cache_key(cfg, public, words)
    if not (folder / "model_index.json").exists():
        with paths.locked(folder):                  # one process pretrains; another waits and loads it
            if not (folder / "model_index.json").exists():
                with paths.atomic_dir(folder) as tmp:
                    tinybase.pretrain_tiny(public, words, cfg.model, cfg.data.resolution, tmp)
    return folder


def single_file_base(path, config: str = "") -> Path:
    """A single-file checkpoint converted once to a diffusers folder (``outputs/cache/base/<file hash>/``), so that
    every later step loads it like any other folder; ``config`` as in :func:`load_pipeline`."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} does not exist")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    folder = paths.cache_dir("base") / f"single-{digest.hexdigest()[:12]}"
    if not (folder / "model_index.json").exists():
        with paths.locked(folder):
            if not (folder / "model_index.json").exists():
                pipe = _load(path, None, config or None)          # not an SD checkpoint: ValueError, one line
                with paths.atomic_dir(folder) as tmp:
                    pipe.save_pretrained(tmp, safe_serialization=True)
                    paths.write_json(tmp / "source.json", {"file": str(path), "sha256": digest.hexdigest(),
                                                           "config": config})
    return folder


ENCODE_PIXELS = 64 * 128 * 128          # pixels per VAE call: 64 images up to 128 px (the tiny and mid sizes)


def encode_chunk(pixels_per_image: int) -> int:
    """Images per VAE encoder call: 64 up to 128 px, fewer above, so that the encoder's activations stay about the
    same size (at 512 px, 4 images: 64 SD-VAE encodes at once held about 40 GiB of activations, measured on an H200)."""
    return max(1, min(64, ENCODE_PIXELS // pixels_per_image))


def encode_items(parts: dict, items, device="cpu", source=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs of a set of items: latents z0 = E(x) * scaling (N, 4, h, w) and caption embeddings (N, T, D).

    Neither changes during adaptation (the VAE is frozen; so is the text encoder unless it carries a LoRA), so with
    ``source`` (the base model's id) they are cached on disk under ``outputs/cache/latents/`` and read back by
    later runs and audits, as the official run cached its latents. Embeddings under a text-encoder LoRA are always
    recomputed.
    """
    vae, encoder = parts["vae"].to(device), parts["text_encoder"].to(device)
    te_lora = any("lora_" in n for n, _ in encoder.named_parameters())
    path = None
    if source is not None:
        inputs = [(it.sha256, it.caption, it.image.shape) for it in items]
        key = paths.config_hash({"source": paths.source_id(source), "vae_dtype": str(vae.dtype), "text": not te_lora,
                                 "items": inputs}, n=16)
        path = paths.cache_dir("latents") / f"{key}.safetensors"
        cached = paths.read_cached(path, lambda p: load_file(str(p)))
        if cached is not None and "z0" in cached and (te_lora or "cond" in cached):
            z0 = cached["z0"].to(device).contiguous(memory_format=torch.channels_last)
            return z0, (cached["cond"].to(device) if not te_lora else _encode_captions(parts, items))
    with torch.no_grad():
        x = tinybase.to_tensor([it.image for it in items]).to(device, vae.dtype)          # (N, 3, H, W)
        chunk = encode_chunk(x.shape[-2] * x.shape[-1])
        z0 = torch.cat([vae.encode(x[i:i + chunk]).latent_dist.mean for i in range(0, len(x), chunk)])
        z0 = (z0 * vae.config.scaling_factor).float()
    # one memory layout whether computed or read back (the layout changes convolution round-off); a CPU VAE
    # already returns channels-last latents
    z0 = z0.contiguous(memory_format=torch.channels_last)
    cond = _encode_captions(parts, items)
    if path is not None:
        tensors = {"z0": z0.cpu().contiguous(), **({} if te_lora else {"cond": cond.cpu().contiguous()})}
        paths.atomic_write_bytes(path, save(tensors))
    return z0, cond


def token_ids(parts: dict, items) -> torch.Tensor:
    """The tokenizer's ids of the items' captions, padded to its maximum length: (N, T). A text-encoder LoRA
    re-encodes them at every step."""
    tok = parts["tokenizer"]
    return tok([it.caption for it in items], padding="max_length", truncation=True, max_length=tok.model_max_length,
               return_tensors="pt").input_ids


def _encode_captions(parts: dict, items) -> torch.Tensor:
    return torch.cat([tinybase.encode_text(parts, [it.caption for it in items[i:i + 256]])
                      for i in range(0, len(items), 256)]).float()


# -------------------------------------------------------------------------------------------- loading

def load_pipeline(source, dtype: torch.dtype | None = None, config: str | None = None, device=None):
    """Load an SD-architecture pipeline from a diffusers folder, a hub id or a single ``.safetensors`` file.

    The tiny model and SD v1.5 go through the same ``StableDiffusionPipeline.from_pretrained`` (a single file goes
    through ``from_single_file``). Only safetensors weights are read: pickle checkpoints (.ckpt/.pt/.bin) are
    refused because unpickling can run code. ``config`` (single-file only) is a folder or hub id with the matching
    diffusers configs; without it diffusers fetches SD's configs from the hub. ``device`` defaults to accelerate's
    (the GPU when there is one). Sources that are not SD v1-architecture pipelines raise ``ValueError``.
    """
    pipe = _load(source, dtype, config or None)
    if device is None:
        from accelerate import PartialState                 # accelerate: slow to import, only when a model is loaded

        device = PartialState().device
    return pipe.to(device)


SD_UNET_KEY = "model.diffusion_model."                 # every original-layout SD v1/v2 checkpoint has these keys


def check_single_file(path: Path) -> None:
    """Raise ``ValueError`` unless ``path`` holds an original-layout SD v1 checkpoint (U-Net, VAE, CLIP text)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            keys = list(f.keys())
    except Exception as e:                              # safetensors raises its own error types
        raise ValueError(f"{path} is not a readable .safetensors file: {e}") from e
    if any(k.startswith("conditioner.embedders.") for k in keys):
        raise ValueError(f"{path} is an SDXL checkpoint; this package adapts SD v1-architecture models (SD v1.5)")
    if any("lora_" in k or ".lora." in k or k.startswith("lora_unet") for k in keys[:2000]):
        raise ValueError(f"{path} holds LoRA weights, not a base model; load it with pipe.load_lora_weights")
    missing = [p for p in (SD_UNET_KEY, "first_stage_model.", "cond_stage_model.") if not any(k.startswith(p) for k in keys)]
    if missing:
        raise ValueError(f"{path} is not a Stable Diffusion checkpoint: no {', '.join(m + '*' for m in missing)} "
                         f"weights (found e.g. {keys[:3]})")


def _load(source, dtype, config):
    """The pipeline of ``source``; one that cannot be loaded, for any reason, raises ``ValueError`` (or
    ``FileNotFoundError``) with the reason in one line."""
    from diffusers import StableDiffusionPipeline           # diffusers: slow to import, only when a pipeline is loaded

    kw = dict(safety_checker=None, requires_safety_checker=False, torch_dtype=dtype)
    path = Path(str(source)).expanduser()
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ValueError(f"{path}: pickle checkpoints are refused (unpickling can run code); use .safetensors")
    if path.suffix.lower() == ".safetensors":
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint file {path} does not exist")
        check_single_file(path)
        extra = {"config": str(config)} if config else {}
        return _loaded(path, lambda: StableDiffusionPipeline.from_single_file(str(path), **kw, **extra))
    if path.is_dir():
        if not (path / "model_index.json").exists():
            raise ValueError(f"{path} is not a diffusers pipeline folder (no model_index.json)")
        index = json.loads((path / "model_index.json").read_text())
        if index.get("_class_name") != "StableDiffusionPipeline":
            raise ValueError(f"{path} holds a {index.get('_class_name')}, not a StableDiffusionPipeline (SD v1 "
                             f"architecture)")
        _check_parts(path, index)
        return _loaded(path, lambda: StableDiffusionPipeline.from_pretrained(path, use_safetensors=True, **kw))
    if str(source).count("/") == 1 and not str(source).startswith((".", "/", "~")):
        return _loaded(source, lambda: StableDiffusionPipeline.from_pretrained(str(source), use_safetensors=True,
                                                                               **kw))
    raise FileNotFoundError(f"model source {source} is not a folder, a .safetensors file or a hub id 'owner/name'")


def _check_parts(path: Path, index: dict) -> None:
    """Raise ``ValueError`` naming the first part of the pipeline folder ``path`` that is missing or has only pickle
    weights (refused, never unpickled: ``use_safetensors`` would only say that no safetensors file was found)."""
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list) or spec[0] is None:
            continue                                     # e.g. "safety_checker": [null, null]
        part = path / name
        if not part.is_dir():
            raise ValueError(f"{path} has no {name}/ folder, which its model_index.json lists")
        files = list(part.iterdir())
        pickles = [f.name for f in files if f.suffix.lower() in PICKLE_SUFFIXES]
        if pickles and not any(f.suffix == ".safetensors" for f in files):
            raise ValueError(f"{part} has only pickle weights ({pickles[0]}), which are refused (unpickling can run "
                             f"code); convert them to .safetensors")


def _loaded(source, load):
    """``load()``, with any failure of diffusers (a part of the wrong class or shape, files it cannot read) as a
    one-line ``ValueError`` naming ``source``."""
    try:
        return load()
    except (MemoryError, torch.OutOfMemoryError):
        raise
    except Exception as e:
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise ValueError(f"{source} cannot be loaded as a Stable Diffusion pipeline ({type(e).__name__}: "
                         f"{reason})") from None


@torch.no_grad()
def generate(pipe, captions: list[str], seed: int = 0, steps: int = 25, guidance_scale: float = 3.0,
             batch_size: int = 128, resolution: int | None = None) -> np.ndarray:
    """Images (N, resolution, resolution, 3) uint8 for ``captions``; DDIM sampling on the pipeline's own noise
    schedule. ``resolution``: the run's (``cfg.data.resolution``); None draws at the U-Net's own ``sample_size``
    (SD v1.5: 512 px), whatever the run trained at."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline  # diffusers: slow to import, only when sampling

    parts = {**pipe.components, "scheduler": DDIMScheduler.from_config(pipe.scheduler.config)}
    sampler = StableDiffusionPipeline(**parts, requires_safety_checker=False)
    sampler.set_progress_bar_config(disable=True)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    out = []
    for i in tqdm(range(0, len(captions), batch_size), desc="generate", leave=False):
        res = sampler(list(captions[i:i + batch_size]), num_inference_steps=steps, guidance_scale=guidance_scale,
                      generator=gen, output_type="np", height=resolution, width=resolution)
        out.append(np.uint8(np.round(res.images * 255)))
    return np.concatenate(out)


