"""Training steps per second and peak GPU memory of LoRA and SMP-LoRA at the paper's scale, on a GPU without a download.

Usage: ``python benchmarks/paper_steps.py [--mixed-precision bf16] [--steps 24] [--small]``. Builds an *untrained*
pipeline with SD v1.5's architecture (U-Net 320/640/1280/1280 with two layers per block and cross-attention width
768, the SD VAE, a CLIP ViT-L/14-sized text encoder with 77 tokens; the tokenizer is the package's own over the
captions' words, which changes no shape that costs time), saves it as a diffusers folder and trains the ``paper``
profile through the package's own loop (``runs.train``): 512 px, batch 1, LoRA rank 64 / alpha 32 on the U-Net and
on the text encoder, grad clipping, the paper's raw-map proxy. Only the set sizes are cut to ``--steps`` training
images (one epoch), on the bundled digits drawn at 512 px: speed and memory do not depend on what the images show.
Prints steps/s, the ratio to LoRA and the peak memory that torch allocated during each run (setup included, less
what earlier runs in the process still held), beside the paper's A100 figures
(PAPER.md: LoRA about 8 GB and 16 h, SMP-LoRA about 10 GB and 20 h for 400 epochs of Pokemon, fp16, AdamW8bit).
``--small`` shrinks the model so that the script can be checked on a CPU in seconds.
"""
from __future__ import annotations

import argparse
import gc
import os
import tempfile
from pathlib import Path

import torch

from smplora_nb import config, data, paths, runs, sets, tinybase

SD15 = dict(unet_channels=(320, 640, 1280, 1280), layers=2, heads=8, text_dim=768, text_layers=12, text_heads=12,
            vae_channels=(128, 256, 512, 512), groups=32, tokens=77, resolution=512)
SMALL = dict(unet_channels=(32, 32, 64, 64), layers=1, heads=4, text_dim=32, text_layers=2, text_heads=2,
             vae_channels=(8, 8, 16, 16), groups=8, tokens=77, resolution=64)
PAPER_A100 = {"lora": "about 8 GB, 16 h", "smp_lora": "about 10 GB, 20 h"}      # PAPER.md, Pokemon, 400 epochs


def build_sd15_like(size: dict, words: list[str], folder: Path) -> Path:
    """An untrained SD v1.5-architecture pipeline saved as a diffusers folder (weights from torch's generator)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    tok_dir = folder.parent / "tokenizer_src"
    tinybase.build_tokenizer(words, tok_dir)
    tokenizer = CLIPTokenizer.from_pretrained(tok_dir, model_max_length=size["tokens"])
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=size["text_dim"], intermediate_size=4 * size["text_dim"],
        num_hidden_layers=size["text_layers"], num_attention_heads=size["text_heads"],
        max_position_embeddings=size["tokens"], hidden_act="quick_gelu", projection_dim=size["text_dim"],
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    nv = len(size["vae_channels"])
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=size["vae_channels"],
                        down_block_types=("DownEncoderBlock2D",) * nv, up_block_types=("UpDecoderBlock2D",) * nv,
                        layers_per_block=2, norm_num_groups=size["groups"], sample_size=size["resolution"])
    unet = UNet2DConditionModel(
        sample_size=size["resolution"] // 8, in_channels=4, out_channels=4, layers_per_block=size["layers"],
        block_out_channels=size["unet_channels"], norm_num_groups=size["groups"],
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        cross_attention_dim=size["text_dim"], attention_head_dim=size["heads"])
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                              beta_schedule="scaled_linear", clip_sample=False, steps_offset=1)
    parts = dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler)
    tinybase.assemble(parts).save_pretrained(folder)
    n_unet = sum(p.numel() for p in unet.parameters())
    print(f"built an untrained SD v1.5-architecture pipeline: U-Net {n_unet / 1e6:.0f} M parameters", flush=True)
    return folder


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mixed-precision", default="bf16", choices=["no", "fp16", "bf16"])
    ap.add_argument("--steps", type=int, default=24, help="training images, one epoch at batch 1")
    ap.add_argument("--small", action="store_true", help="a tiny model, for checking the script on a CPU")
    args = ap.parse_args(argv)
    os.environ.setdefault(paths.ENV_VAR, tempfile.mkdtemp(prefix="paper_steps_"))
    size = SMALL if args.small else SD15
    n = args.steps // 2                                   # D_tr = member_aux + member_te
    words = data.caption_words(data.load_dataset("digits", 8))
    base = build_sd15_like(size, words, paths.outputs_root() / "sd15_like" / "pipeline")
    cfg = config.make("paper", base=str(base), dataset="digits", resolution=size["resolution"], member_aux=n,
                      member_te=args.steps - n, nonmember_aux=4, nonmember_te=4, epochs=1,
                      mixed_precision=args.mixed_precision)
    items, splits = sets.prepare(cfg)
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else "CPU (no CUDA device)"
    print(f"{device}; torch {torch.__version__}; {args.mixed_precision}; {size['resolution']} px, batch "
          f"{cfg.train.batch_size}, LoRA rank {cfg.train.lora_rank} on U-Net and text encoder", flush=True)
    if cuda:                                                      # CUDA context, cuBLAS and kernel choices
        runs.train(config.replace(cfg, lora_rank=8), splits, str(base), progress=False)   # warm up: not counted
    out = {}
    for name in ("lora", "smp_lora"):
        held = 0
        if cuda:                                  # what earlier runs left allocated is not this run's
            gc.collect()
            torch.cuda.empty_cache()
            held = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
        log = paths.read_json(runs.train(config.replace(cfg, method=name), splits, str(base), progress=False)
                              / "train_log.json")
        out[name] = {"steps": log["steps"], "steps_per_s": log["steps"] / log["seconds_this_session"],
                     "peak_gib": (torch.cuda.max_memory_allocated() - held) / 2**30 if cuda else None,
                     "held_before_gib": held / 2**30}
    print(f"{'method':<10}{'steps':>6}{'steps/s':>9}{'x lora':>8}{'peak GiB':>10}{'held GiB':>10}   paper (A100, fp16)")
    for name, r in out.items():
        peak = f"{r['peak_gib']:>10.2f}" if r["peak_gib"] is not None else f"{'n/a':>10}"
        print(f"{name:<10}{r['steps']:>6}{r['steps_per_s']:>9.2f}{out['lora']['steps_per_s'] / r['steps_per_s']:>8.2f}"
              f"{peak}{r['held_before_gib']:>10.2f}   {PAPER_A100[name]}")
    return out


if __name__ == "__main__":
    main()
