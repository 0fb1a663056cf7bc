"""CPU kernel choices for the tiny U-Net, as medians over repeated passes, with the ratio to the default and
whether the outputs stay bit for bit the same (issue 29, item 2).

    python benchmarks/kernel_options.py [--repeats 9] [--threads 1]

On the tiny profile's base model (the development one under ``outputs/dev``, pretrained first if missing) with the
profile's LoRA attached, on random inputs of the profile's shapes: a training pass (forward and backward, batch 32,
as every training step) and an inference forward (batch 256, as every loss map and audit score). Options:

* ``default``          what the package runs: latents channels-last (as ``models.encode_items`` hands them over),
                       PyTorch's SDPA attention (its flash kernel for CPU), ``torch.no_grad`` for inference;
* ``inference_mode``   ``torch.inference_mode`` instead of ``no_grad`` (inference only);
* ``sdpa_math``        SDPA's plain math kernel instead of the flash one;
* ``channels_last``    the U-Net's weights in channels-last memory format too;
* ``contiguous``       the latents in plain contiguous format.

"bit for bit" compares the option's output with the default's (forward) or the LoRA gradients (training pass; the
LoRA's B matrices are drawn at random instead of zero, so that A's gradients are not all zero). Each repeat runs
every option once, in turn, so that a drift of the machine's speed lands on all of them.
A change that is not bit for bit moves every number of the series in its last digits (the claims would have to be
re-measured on the confirmatory seeds).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from smplora_nb import config, lora, models, paths, profiles
    from smplora_nb.bench import Bench

    torch.set_num_threads(args.threads)
    os.environ.setdefault(paths.ENV_VAR, str(paths.outputs_root() / "dev"))
    cfg = config.make("tiny", **profiles.DEV_SEEDS)
    base_unet = models.load_pipeline(Bench(cfg).base).unet
    tc = cfg.train
    gen = torch.Generator().manual_seed(0)
    c_in, size, ctx = base_unet.config.in_channels, base_unet.config.sample_size, base_unet.config.cross_attention_dim

    def inputs(n):
        z = torch.randn(n, c_in, size, size, generator=gen).contiguous(memory_format=torch.channels_last)
        return z, torch.randint(0, 1000, (n,), generator=gen), torch.randn(n, 32, ctx, generator=gen)

    train_in, infer_in = inputs(32), inputs(256)

    def unet_for(option):
        unet = copy.deepcopy(base_unet)
        lora.attach(unet, tc.lora_rank, tc.lora_alpha, lora.TARGETS[tc.lora_targets], tc.seed)
        init = torch.Generator().manual_seed(1)                  # B != 0 (as after training): A gets gradients too
        with torch.no_grad():
            for name, p in unet.named_parameters():
                if "lora_B" in name:
                    p.copy_(0.01 * torch.randn(p.shape, generator=init))
        return unet.to(memory_format=torch.channels_last) if option == "channels_last" else unet

    def ctx_for(option):
        return sdpa_kernel(SDPBackend.MATH) if option == "sdpa_math" else contextlib.nullcontext()

    def z_for(option, z):
        return z.contiguous() if option == "contiguous" else z

    def train_pass(unet, option):
        z, t, c = train_in
        unet.zero_grad(set_to_none=True)
        with ctx_for(option):
            (unet(z_for(option, z), t, c).sample.float() ** 2).mean().backward()
        return torch.cat([p.grad.flatten() for p in unet.parameters() if p.grad is not None])

    def forward(unet, option):
        z, t, c = infer_in
        grad_ctx = torch.inference_mode() if option == "inference_mode" else torch.no_grad()
        with grad_ctx, ctx_for(option):
            return unet(z_for(option, z), t, c).sample.clone()

    rows = []
    for piece, fn, options in (("training pass, batch 32", train_pass,
                                ("default", "sdpa_math", "channels_last", "contiguous")),
                               ("forward, batch 256", forward,
                                ("default", "inference_mode", "sdpa_math", "channels_last", "contiguous"))):
        unets = {option: unet_for(option) for option in options}
        outs = {option: fn(unets[option], option) for option in options}              # warm-up, and the outputs
        times = {option: [] for option in options}
        for _ in range(args.repeats):                  # the options alternate, so a drift of the machine hits all
            for option in options:
                start = time.perf_counter()
                fn(unets[option], option)
                times[option].append(time.perf_counter() - start)
        ref = statistics.median(times["default"])
        for option in options:
            sec = statistics.median(times[option])
            same = torch.equal(outs[option], outs["default"])
            diff = 0.0 if same else float((outs[option] - outs["default"]).abs().max())
            rows.append((piece, option, sec, sec / ref, same, diff))
            print(f"{piece:<24} {option:<16} median {sec:.4f} s", flush=True)
    print(f"\n{torch.get_num_threads()} thread(s), median of {args.repeats}; x default < 1 is faster")
    print(f"{'piece':<24} {'option':<16} {'median s':>9} {'x default':>10} {'bit for bit':>12} {'max diff':>10}")
    for piece, option, sec, ratio, same, diff in rows:
        print(f"{piece:<24} {option:<16} {sec:>9.4f} {ratio:>10.3f} {'yes' if same else 'no':>12} {diff:>10.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
