"""The tiny Stable-Diffusion-architecture model and the one loader for every source (arXiv 2402.11989 companion).

The ``tiny`` profile cannot download SD v1.5, so it builds the same architecture from diffusers/transformers parts,
small enough for a 2-core CPU, and saves it in the diffusers folder layout:

    text_encoder/  CLIPTextModel (random, frozen)   tokenizer/  CLIPTokenizer over the captions' words
    vae/           AutoencoderKL, 16 px -> 4x8x8    unet/       UNet2DConditionModel with cross-attention
    scheduler/     DDPMScheduler, SD's scaled_linear betas 0.00085..0.012, 1000 steps

Pretraining uses the public split only. The VAE minimises ||x - D(z)||^2 + beta * KL(q(z|x) || N(0, I)); the U-Net
minimises the denoising loss E ||eps - eps_theta(sqrt(abar_t) z0 + sqrt(1 - abar_t) eps, t, tau(y))||^2 with 10%
empty captions, so that classifier-free guidance works when sampling. ``load_pipeline`` then loads this folder
through the same ``StableDiffusionPipeline.from_pretrained`` call that loads SD v1.5.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import data, paths

TINY_VERSION = 3                      # bump when the tiny architecture or pretraining changes (cache key)
MAX_TOKENS = 32                       # tiny tokenizer/text-encoder context (SD v1.5: 77)
SAMPLING_FIELDS = ("sample_steps", "guidance_scale")   # used at generation time only: not part of the cache key
NOT_TINY_FIELDS = SAMPLING_FIELDS + ("base_config",)   # model fields a tiny base does not depend on
PICKLE_SUFFIXES = {".ckpt", ".pt", ".pth", ".bin", ".pkl"}


# ------------------------------------------------------------------------------------------ building

def _bpe(tokens: list[str], ranks: dict) -> list[str]:
    """Byte-pair encoding of one word: repeatedly merge the adjacent pair with the lowest merge rank."""
    while len(tokens) > 1:
        pairs = [(ranks.get((a, b), np.inf), i) for i, (a, b) in enumerate(zip(tokens, tokens[1:]))]
        rank, i = min(pairs)
        if rank == np.inf:
            break
        tokens = tokens[:i] + [tokens[i] + tokens[i + 1]] + tokens[i + 2:]
    return tokens


def build_tokenizer(words: list[str], folder: Path):
    """A CLIPTokenizer whose BPE merges spell each caption word as one token; any other text falls back to
    single characters, so nothing maps to the unknown token."""
    from transformers import CLIPTokenizer

    chars = [chr(c) for c in range(33, 127)]
    vocab = ["<|startoftext|>", "<|endoftext|>"] + chars + [c + "</w>" for c in chars]
    ranks: dict[tuple[str, str], int] = {}
    for w in words:
        start = list(w[:-1]) + [w[-1] + "</w>"]
        while len(toks := _bpe(start, ranks)) > 1:   # new merges rank last, so earlier words stay whole
            ranks[(toks[0], toks[1])] = len(ranks)
            vocab.append(toks[0] + toks[1])
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(dict.fromkeys(vocab))}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in ranks))
    return CLIPTokenizer.from_pretrained(folder, model_max_length=MAX_TOKENS)


def build_tiny(words: list[str], mcfg, resolution: int, workdir: Path, seed: int = 0) -> dict:
    """Untrained tiny SD components (a dict of the pipeline's parts)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    tokenizer = build_tokenizer(words, Path(workdir) / "tokenizer_src")
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=mcfg.text_dim, intermediate_size=4 * mcfg.text_dim,
        num_hidden_layers=mcfg.text_layers, num_attention_heads=4, max_position_embeddings=MAX_TOKENS,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, projection_dim=mcfg.text_dim))
    nv = len(mcfg.vae_channels)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=mcfg.vae_channels,
        down_block_types=("DownEncoderBlock2D",) * nv, up_block_types=("UpDecoderBlock2D",) * nv,
        layers_per_block=1, norm_num_groups=8, sample_size=resolution)
    nu = len(mcfg.unet_channels)
    unet = UNet2DConditionModel(
        sample_size=resolution // 2 ** (nv - 1), in_channels=4, out_channels=4,
        block_out_channels=mcfg.unet_channels, layers_per_block=1, norm_num_groups=8,
        down_block_types=("CrossAttnDownBlock2D",) * nu, up_block_types=("CrossAttnUpBlock2D",) * nu,
        cross_attention_dim=mcfg.text_dim, attention_head_dim=4)   # cross-attention at every resolution
    scheduler = DDPMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        clip_sample=False, steps_offset=1, prediction_type="epsilon")
    return dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)


def assemble(parts: dict):
    """A StableDiffusionPipeline from parts (no safety checker: the tiny model draws digits)."""
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


# ---------------------------------------------------------------------------------------- pretraining

def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float in [-1, 1], the VAE's input range."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0


@torch.no_grad()
def encode_text(parts: dict, captions: list[str]) -> torch.Tensor:
    tok = parts["tokenizer"](captions, padding="max_length", max_length=parts["tokenizer"].model_max_length,
                             truncation=True, return_tensors="pt")
    encoder = parts["text_encoder"]
    return encoder(tok.input_ids.to(encoder.device))[0]                  # (N, T, text_dim)


def _batches(n: int, batch: int, steps: int, gen: torch.Generator):
    for _ in range(steps):
        yield torch.randint(0, n, (min(batch, n),), generator=gen)


def pretrain_vae(vae, x: torch.Tensor, mcfg, gen: torch.Generator, kl_weight: float = 1e-4) -> list[float]:
    opt = torch.optim.AdamW(vae.parameters(), lr=mcfg.pretrain_lr)
    losses = []
    vae.train()
    for idx in tqdm(_batches(len(x), mcfg.pretrain_batch_size, mcfg.vae_steps, gen), total=mcfg.vae_steps,
                    desc="pretrain VAE"):
        post = vae.encode(x[idx]).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=gen)
        loss = F.mse_loss(vae.decode(z).sample, x[idx]) + kl_weight * post.kl().mean() / z[0].numel()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    vae.eval()
    return losses


def pretrain_unet(unet, scheduler, latents: torch.Tensor, cond: torch.Tensor, empty: torch.Tensor, mcfg,
                  gen: torch.Generator) -> list[float]:
    """Denoising pretraining: E ||eps - eps_theta(z_t, t, c)||^2, t ~ U{0..999}, c = empty with p = dropout."""
    from diffusers.optimization import get_cosine_schedule_with_warmup

    opt = torch.optim.AdamW(unet.parameters(), lr=mcfg.pretrain_lr)
    sched = get_cosine_schedule_with_warmup(opt, min(100, mcfg.pretrain_steps // 10), mcfg.pretrain_steps)
    losses = []
    unet.train()
    bar = tqdm(_batches(len(latents), mcfg.pretrain_batch_size, mcfg.pretrain_steps, gen),
               total=mcfg.pretrain_steps, desc="pretrain U-Net")
    for idx in bar:
        z0 = latents[idx]                                                 # (B, 4, h, w)
        eps = torch.randn(z0.shape, generator=gen)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (len(idx),), generator=gen)
        c = cond[idx].clone()                                             # (B, T, D)
        drop = torch.rand(len(idx), generator=gen) < mcfg.caption_dropout
        c[drop] = empty
        loss = F.mse_loss(unet(scheduler.add_noise(z0, eps, t), t, c).sample, eps)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(loss.item())
        if len(losses) % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
    unet.eval()
    return losses


def pretrain_tiny(public: list[data.Item], words: list[str], mcfg, resolution: int, out_dir: Path,
                  seed: int = 0) -> dict:
    """Build, pretrain on ``public`` and ``save_pretrained`` the tiny pipeline into ``out_dir``; return the log."""
    start = time.time()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    parts = build_tiny(words, mcfg, resolution, out_dir, seed)
    x = to_tensor([it.image for it in public])                           # (N, 3, H, W)
    vae_losses = pretrain_vae(parts["vae"], x, mcfg, gen)
    with torch.no_grad():
        post = parts["vae"].encode(x).latent_dist
        scale = float(1.0 / post.mean.std())
    parts["vae"].register_to_config(scaling_factor=scale)
    latents = post.mean * scale                                          # (N, 4, h, w) unit-scale latents
    cond = encode_text(parts, [it.caption for it in public])             # (N, T, D)
    empty = encode_text(parts, [""])[0]                                  # (T, D)
    unet_losses = pretrain_unet(parts["unet"], parts["scheduler"], latents, cond, empty, mcfg, gen)
    assemble(parts).save_pretrained(out_dir, safe_serialization=True)
    log = {"seconds": time.time() - start, "n_public": len(public), "scaling_factor": scale,
           "vae_loss_final": float(np.mean(vae_losses[-20:])) if vae_losses else None,
           "unet_loss_final": float(np.mean(unet_losses[-50:])) if unet_losses else None,
           "vae_losses": vae_losses, "unet_losses": unet_losses}
    paths.write_json(out_dir / "pretrain_log.json", log)
    return log


def tiny_cache_key(cfg, public: list[data.Item], words: list[str]) -> str:
    return paths.config_hash({"version": TINY_VERSION, "dataset": cfg.data.dataset,
                              "resolution": cfg.data.resolution, "prefix": cfg.data.caption_prefix,
                              "public": [(it.sha256, it.caption) for it in public], "words": words,
                              "model": {k: v for k, v in vars(cfg.model).items() if k not in NOT_TINY_FIELDS}})


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
    folder = paths.cache_dir("base") / tiny_cache_key(cfg, public, words)
    if not (folder / "model_index.json").exists():
        with paths.atomic_dir(folder) as tmp:
            pretrain_tiny(public, words, cfg.model, cfg.data.resolution, tmp)
    return folder


def single_file_base(path, config: str = "") -> Path:
    """A single-file checkpoint converted once to a diffusers folder (``outputs/cache/base/<file hash>/``), so that
    every later step loads it like any other folder; ``config`` as in :func:`load_pipeline`."""
    import hashlib

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file {path} does not exist")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 24):
            digest.update(chunk)
    folder = paths.cache_dir("base") / f"single-{digest.hexdigest()[:12]}"
    if not (folder / "model_index.json").exists():
        pipe = _load(path, None, config or None)
        with paths.atomic_dir(folder) as tmp:
            pipe.save_pretrained(tmp, safe_serialization=True)
            paths.write_json(tmp / "source.json", {"file": str(path), "sha256": digest.hexdigest(), "config": config})
    return folder


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
        key = paths.config_hash({"source": str(source), "vae_dtype": str(vae.dtype), "text": not te_lora,
                                 "items": [(it.sha256, it.caption, it.image.shape) for it in items]}, n=16)
        path = paths.cache_dir("latents") / f"{key}.safetensors"
        if path.exists():
            from safetensors.torch import load_file

            cached = load_file(str(path))
            z0 = cached["z0"].to(device).contiguous(memory_format=torch.channels_last)
            return z0, (cached["cond"].to(device) if not te_lora else _encode_captions(parts, items))
    with torch.no_grad():
        x = to_tensor([it.image for it in items]).to(device, vae.dtype)          # (N, 3, H, W)
        z0 = torch.cat([vae.encode(x[i:i + 64]).latent_dist.mean for i in range(0, len(x), 64)])
        z0 = (z0 * vae.config.scaling_factor).float()
    # one memory layout whether computed or read back (the layout changes convolution round-off); a CPU VAE
    # already returns channels-last latents
    z0 = z0.contiguous(memory_format=torch.channels_last)
    cond = _encode_captions(parts, items)
    if path is not None:
        from safetensors.torch import save

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
    return torch.cat([encode_text(parts, [it.caption for it in items[i:i + 256]])
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
        from accelerate import PartialState

        device = PartialState().device
    return pipe.to(device)


SD_UNET_KEY = "model.diffusion_model."                 # every original-layout SD v1/v2 checkpoint has these keys


def check_single_file(path: Path) -> None:
    """Raise ``ValueError`` unless ``path`` holds an original-layout SD v1 checkpoint (U-Net, VAE, CLIP text)."""
    from safetensors import safe_open

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
    import json

    from diffusers import StableDiffusionPipeline

    kw = dict(safety_checker=None, requires_safety_checker=False, torch_dtype=dtype)
    path = Path(str(source)).expanduser()
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ValueError(f"{path}: pickle checkpoints are refused (unpickling can run code); use .safetensors")
    if path.suffix.lower() == ".safetensors":
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint file {path} does not exist")
        check_single_file(path)
        extra = {"config": str(config)} if config else {}
        return StableDiffusionPipeline.from_single_file(str(path), **kw, **extra)
    if path.is_dir():
        if not (path / "model_index.json").exists():
            raise ValueError(f"{path} is not a diffusers pipeline folder (no model_index.json)")
        kind = json.loads((path / "model_index.json").read_text()).get("_class_name")
        if kind != "StableDiffusionPipeline":
            raise ValueError(f"{path} holds a {kind}, not a StableDiffusionPipeline (SD v1 architecture)")
        return StableDiffusionPipeline.from_pretrained(path, use_safetensors=True, **kw)
    if str(source).count("/") == 1 and not str(source).startswith((".", "/", "~")):
        return StableDiffusionPipeline.from_pretrained(str(source), use_safetensors=True, **kw)
    raise FileNotFoundError(f"model source {source} is not a folder, a .safetensors file or a hub id 'owner/name'")


@torch.no_grad()
def generate(pipe, captions: list[str], seed: int = 0, steps: int = 25, guidance_scale: float = 3.0,
             batch_size: int = 128) -> np.ndarray:
    """Images (N, H, W, 3) uint8 for ``captions``; DDIM sampling on the pipeline's own noise schedule."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    parts = {**pipe.components, "scheduler": DDIMScheduler.from_config(pipe.scheduler.config)}
    sampler = StableDiffusionPipeline(**parts, requires_safety_checker=False)
    sampler.set_progress_bar_config(disable=True)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    out = []
    for i in tqdm(range(0, len(captions), batch_size), desc="generate", leave=False):
        res = sampler(list(captions[i:i + batch_size]), num_inference_steps=steps, guidance_scale=guidance_scale,
                      generator=gen, output_type="np")
        out.append(np.uint8(np.round(res.images * 255)))
    return np.concatenate(out)


def pretrain_log(folder) -> dict | None:
    """The tiny base's pretraining log (losses, time), or ``None`` for a downloaded model such as SD v1.5."""
    path = Path(str(folder)) / "pretrain_log.json"
    return paths.read_json(path) if path.exists() else None
