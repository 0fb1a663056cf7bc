"""The tiny Stable-Diffusion-architecture model: built, pretrained on the public split, saved (arXiv 2402.11989
companion).

The ``tiny`` profile cannot download SD v1.5, so it builds the same architecture from diffusers/transformers parts,
small enough for a 2-core CPU, and saves it in the diffusers folder layout:

    text_encoder/  CLIPTextModel (random, frozen)   tokenizer/  CLIPTokenizer over the captions' words
    vae/           AutoencoderKL, 16 px -> 4x8x8    unet/       UNet2DConditionModel with cross-attention
    scheduler/     DDPMScheduler, SD's scaled_linear betas 0.00085..0.012, 1000 steps

Pretraining uses the public split only. The VAE minimises ||x - D(z)||^2 + beta * KL(q(z|x) || N(0, I)); the U-Net
minimises the denoising loss E ||eps - eps_theta(sqrt(abar_t) z0 + sqrt(1 - abar_t) eps, t, tau(y))||^2 with 10%
empty captions, so that classifier-free guidance works when sampling. ``models.load_pipeline`` then loads this
folder through the same ``StableDiffusionPipeline.from_pretrained`` call that loads SD v1.5.
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


SAMPLING_FIELDS = ("sample_steps", "guidance_scale")   # used at generation time only: not part of the cache key
TINY_VERSION = 3                      # bump when the tiny architecture or pretraining changes (cache key)


MAX_TOKENS = 32                       # tiny tokenizer/text-encoder context (SD v1.5: 77)


# model fields a tiny base does not depend on
NOT_TINY_FIELDS = SAMPLING_FIELDS + ("base_config", "quality_features", "audit_boot")


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
    from transformers import CLIPTokenizer                  # transformers: slow to import, only for the tiny base

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


def build_unet(mcfg, resolution: int):
    """The tiny U-Net, untrained (its weights drawn from torch's global generator)."""
    from diffusers import UNet2DConditionModel  # diffusers: slow to import

    nu, nv = len(mcfg.unet_channels), len(mcfg.vae_channels)
    return UNet2DConditionModel(
        sample_size=resolution // 2 ** (nv - 1), in_channels=4, out_channels=4,
        block_out_channels=mcfg.unet_channels, layers_per_block=1, norm_num_groups=8,
        down_block_types=("CrossAttnDownBlock2D",) * nu, up_block_types=("CrossAttnUpBlock2D",) * nu,
        cross_attention_dim=mcfg.text_dim, attention_head_dim=4)   # cross-attention at every resolution


def build_tiny(words: list[str], mcfg, resolution: int, workdir: Path, seed: int = 0) -> dict:
    """Untrained tiny SD components (a dict of the pipeline's parts)."""
    from diffusers import AutoencoderKL, DDPMScheduler  # diffusers, transformers: slow to import
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
    unet = build_unet(mcfg, resolution)
    scheduler = DDPMScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        clip_sample=False, steps_offset=1, prediction_type="epsilon")
    return dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)


def assemble(parts: dict):
    """A StableDiffusionPipeline from parts (no safety checker: the tiny model draws digits)."""
    from diffusers import StableDiffusionPipeline           # diffusers: slow to import, only to save the tiny base

    return StableDiffusionPipeline(**parts, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


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


SPIKE_WINDOW, SPIKE_FACTOR = 10, 2.0   # the VAE's divergence guard: mean loss of the last 10 steps over the best


def pretrain_vae(vae, x: torch.Tensor, mcfg, gen: torch.Generator,
                 kl_weight: float = 1e-4) -> tuple[list[float], dict]:
    """Reconstruction + KL pretraining at a constant learning rate, with a divergence guard: the VAE is kept at
    the end of its best window of ``SPIKE_WINDOW`` steps, but only when the last window's mean loss is more than
    ``SPIKE_FACTOR`` times that best (a late spike, e.g. 0.004 -> 0.40 -> 0.14 on one seed). A run without a spike
    ends exactly as without the guard. Returns the losses and ``{"vae_kept_step", "vae_loss_kept"}`` (empty when
    the last step is kept)."""
    opt = torch.optim.AdamW(vae.parameters(), lr=mcfg.pretrain_lr)
    losses, best, best_state, best_step = [], float("inf"), None, 0
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
        if len(losses) >= SPIKE_WINDOW and np.mean(losses[-SPIKE_WINDOW:]) < best:
            best, best_step = float(np.mean(losses[-SPIKE_WINDOW:])), len(losses)
            best_state = {k: v.detach().clone() for k, v in vae.state_dict().items()}
    vae.eval()
    if best_state is not None and np.mean(losses[-SPIKE_WINDOW:]) > SPIKE_FACTOR * best:
        vae.load_state_dict(best_state)
        print(f"[smplora_nb] VAE pretraining diverged late (mean loss of the last {SPIKE_WINDOW} steps "
              f"{np.mean(losses[-SPIKE_WINDOW:]):.4f}, best {best:.4f}): the VAE of step {best_step} is kept", flush=True)
        return losses, {"vae_kept_step": best_step, "vae_loss_kept": best}
    return losses, {}


def pretrain_unet(unet, scheduler, latents: torch.Tensor, cond: torch.Tensor, empty: torch.Tensor, mcfg,
                  gen: torch.Generator) -> list[float]:
    """Denoising pretraining: E ||eps - eps_theta(z_t, t, c)||^2, t ~ U{0..999}, c = empty with p = dropout."""
    from diffusers.optimization import get_cosine_schedule_with_warmup  # diffusers: slow, only when pretraining

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
    vae_losses, kept = pretrain_vae(parts["vae"], x, mcfg, gen)
    with torch.no_grad():
        post = parts["vae"].encode(x).latent_dist
        scale = float(1.0 / post.mean.std())
    parts["vae"].register_to_config(scaling_factor=scale)
    latents = post.mean * scale                                          # (N, 4, h, w) unit-scale latents
    cond = encode_text(parts, [it.caption for it in public])             # (N, T, D)
    empty = encode_text(parts, [""])[0]                                  # (T, D)
    unet_losses = pretrain_unet(parts["unet"], parts["scheduler"], latents, cond, empty, mcfg, gen)
    assemble(parts).save_pretrained(out_dir, safe_serialization=True)
    log = {"seconds": time.time() - start, "torch_threads": torch.get_num_threads(),   # the weights' last bits
           "n_public": len(public), "scaling_factor": scale,                             # depend on it (and the CPU)
           "vae_loss_final": float(np.mean(vae_losses[-20:])) if vae_losses else None,
           "unet_loss_final": float(np.mean(unet_losses[-50:])) if unet_losses else None,
           "vae_losses": vae_losses, "unet_losses": unet_losses, **kept}
    paths.write_json(out_dir / "pretrain_log.json", log)
    return log


def tiny_cache_key(cfg, public: list[data.Item], words: list[str]) -> str:
    return paths.config_hash({"version": TINY_VERSION, "dataset": cfg.data.dataset,
                              "resolution": cfg.data.resolution, "prefix": cfg.data.caption_prefix,
                              "public": [(it.sha256, it.caption) for it in public], "words": words,
                              "model": {k: v for k, v in vars(cfg.model).items() if k not in NOT_TINY_FIELDS}})


def pretrain_log(folder) -> dict | None:
    """The tiny base's pretraining log (losses, time), or ``None`` for a downloaded model such as SD v1.5."""
    path = Path(str(folder)) / "pretrain_log.json"
    return paths.read_json(path) if path.exists() else None
