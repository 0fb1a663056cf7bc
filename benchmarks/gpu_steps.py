"""Training steps per second and peak GPU memory of LoRA and SMP-LoRA on a mid-sized SD-architecture model.

Usage: ``python benchmarks/gpu_steps.py [--mixed-precision bf16] [--small]``. Builds an untrained model with the
architecture of SD v1.5 at a middle size (U-Net widths 128/256/512, 4x32x32 latents from 128 px images, CLIP text
width 256; SD v1.5 is 320..1280 wide with 4x64x64 latents), LoRA rank 64 / alpha 32 on the attention projections as in
the paper, and trains each method for a few epochs through the package's own loop (``runs.train``), on the digits
rendered at 128 px. No download is needed, so it runs on an offline GPU machine. Prints steps/s, the ratio to LoRA
and the peak memory that torch allocated on the GPU. ``--small`` shrinks everything so that the script can be
checked on a CPU in seconds (tests).
"""
from __future__ import annotations

import argparse
import os
import tempfile

import torch

from smplora_nb import config, models, paths, runs, sets

MID = dict(resolution=128, unet_channels=(128, 256, 512), text_dim=256, vae_channels=(32, 64, 64), public=200,
           member_aux=100, member_te=100, nonmember_aux=100, nonmember_te=100, batch_size=8, epochs=3)
SMALL = dict(resolution=16, unet_channels=(16, 32), text_dim=16, vae_channels=(16, 32), public=20, member_aux=4,
             member_te=4, nonmember_aux=4, nonmember_te=4, batch_size=4, epochs=1)
METHODS = {"lora": {}, "smp_lora": {"method": "smp_lora"}}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--mixed-precision", default="bf16", choices=["no", "fp16", "bf16"])
    ap.add_argument("--small", action="store_true", help="tiny sizes, for checking the script on a CPU")
    args = ap.parse_args(argv)
    os.environ.setdefault(paths.ENV_VAR, tempfile.mkdtemp(prefix="gpu_steps_"))
    sizes = SMALL if args.small else MID
    cfg = config.make("tiny", **sizes, vae_steps=0, pretrain_steps=0, lora_targets="attention", lora_rank=64,
                      lora_alpha=32.0, proxy_feature="paper", proxy_batch_size=sizes["batch_size"],
                      mixed_precision=args.mixed_precision)
    items, splits = sets.prepare(cfg)
    base = models.base_model(cfg, splits, items)                  # untrained: speed and memory do not care
    cuda = torch.cuda.is_available()
    device = torch.cuda.get_device_name(0) if cuda else "CPU (no CUDA device)"
    print(f"{device}; torch {torch.__version__}; {args.mixed_precision}; latents 4x{sizes['resolution'] // 4}x"
          f"{sizes['resolution'] // 4}, batch {sizes['batch_size']}, LoRA rank 64", flush=True)
    if cuda:                                                      # CUDA context, cuBLAS and kernel choices
        runs.train(config.replace(cfg, epochs=1), splits, base, progress=False)   # warm up: not counted
    out = {}
    for name, overrides in METHODS.items():
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        log = paths.read_json(runs.train(config.replace(cfg, **overrides), splits, base, progress=False)
                              / "train_log.json")
        out[name] = {"steps_per_s": log["steps"] / log["seconds_this_session"],
                     "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None}
    print(f"{'method':<10}{'steps/s':>10}{'x lora':>9}{'peak GiB':>10}")
    for name, r in out.items():
        peak = f"{r['peak_gib']:>10.2f}" if r["peak_gib"] is not None else f"{'n/a':>10}"
        print(f"{name:<10}{r['steps_per_s']:>10.2f}{out['lora']['steps_per_s'] / r['steps_per_s']:>9.2f}{peak}")
    return out


if __name__ == "__main__":
    main()
