"""Where the tiny demo's time goes, piece by piece, as medians over repeated runs (issue 29).

    python benchmarks/profile_demo.py [--repeats 3] [--threads 1] [--out benchmarks/profile.json]

Each piece runs ``--repeats`` times in this process with ``--threads`` torch threads (1: as the side-by-side workers
run every training and audit; notebook 01's pretraining runs with the kernel's default, measured apart with
``--threads 2``), on the tiny profile's development split, in a throwaway outputs folder (the base model is taken
from ``outputs/dev`` when it is there, else pretrained once, not timed). It prints, per piece, the median and the
range of its seconds and the multiple of it one ``make demo`` spends (``DEMO_COUNTS``, counted from the notebooks'
default grids), so the shares of the demo can be read off. The interpreter's start-up and imports are timed as
whole processes.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# How many times make demo runs each piece, counted from the notebooks' defaults (02: 3 splits of LoRA; 03: LoRA,
# MP-LoRA with the Hessian, MP-LoRA clipped; 04: 2 splits x 3 methods, a two-forward SMP-LoRA, 2 early stops;
# 05: 4 more SMP-LoRA runs; 06: 2 splits of DP-LoRA and the audits of every model and LoRA's snapshots)
DEMO_COUNTS = {"import smplora_nb (a process)": 12, "pretrain U-Net, 100 steps": 12, "pretrain VAE, 100 steps": 2,
               "LoRA, 1 epoch": 90 * 4, "SMP-LoRA, 1 epoch": 90 * 7, "MP-LoRA, 1 epoch": 90 * 3,
               "DP-LoRA, 1 epoch": 30 * 2, "loss maps of every private set": 40, "PIA and PIAN scores": 10,
               "SecMI_stat scores": 10, "SimA scores": 10, "loss-map MLP, 100 epochs": 80,
               "loss-map MLP, the paper's recipe": 40, "sampling 108 images": 45, "FID features and FID/KID": 45,
               "bootstrap, 500 resamples": 200}


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def pieces(bench, run):
    """``{name: zero-argument function}`` of the pieces, each doing exactly one of them."""
    import numpy as np
    import torch

    from smplora_nb import attack, config, losses, metrics, mlp, models, runs, scores, tinybase

    cfg, splits = bench.cfg, bench.splits
    probe = attack.Probe(bench.base, run, splits)
    pipe = probe.pipe
    parts = pipe.components
    members = splits["member_aux"] + splits["member_te"]
    batch = models.encode_items(parts, members, pipe.unet.device, source=bench.base)
    maps = probe.maps()
    x = mlp.map_features(maps["fixed_t"]["member_aux"]), mlp.map_features(maps["fixed_t"]["nonmember_aux"])
    raw = maps["random_t"]["member_aux"].float().flatten(1), maps["random_t"]["nonmember_aux"].float().flatten(1)
    images = models.generate(pipe, [it.caption for it in members], steps=cfg.model.sample_steps,
                             guidance_scale=cfg.model.guidance_scale)
    sm, sn = np.random.default_rng(0).normal(1, 1, 58), np.random.default_rng(1).normal(0, 1, 200)

    def train(method, epochs=1, **kw):
        def go():
            os.environ["SMPLORA_OUTPUTS"] = tempfile.mkdtemp(prefix="profile_")
            runs.train(config.replace(cfg, method=method, epochs=epochs, **kw), splits, bench.base, progress=False)
        return go

    def pretrain(steps, vae):
        def go():
            mc = config.replace(cfg, pretrain_steps=0 if vae else steps, vae_steps=steps if vae else 0).model
            tinybase.pretrain_tiny(bench.splits["public"], sorted({w for it in bench.items for w in
                                                                   it.caption.split()}), mc, cfg.data.resolution,
                                   Path(tempfile.mkdtemp(prefix="profile_base_")))
        return go

    return {
        "pretrain U-Net, 100 steps": pretrain(100, False),
        "pretrain VAE, 100 steps": pretrain(100, True),
        "LoRA, 1 epoch": train("lora"), "SMP-LoRA, 1 epoch": train("smp_lora"), "MP-LoRA, 1 epoch": train("mp_lora"),
        "DP-LoRA, 1 epoch": train("dp_lora", dp_epsilon=8.0, text_encoder_lr=0.0, mixed_precision="no"),
        "loss maps of every private set": lambda: attack.probe(parts, splits, source=bench.base),
        "PIA and PIAN scores": lambda: [scores.score(pipe, batch, scores.CANDIDATES[s], s) for s in ("pia", "pian")],
        "SecMI_stat scores": lambda: scores.score(pipe, batch, scores.CANDIDATES["secmi"], "secmi"),
        "SimA scores": lambda: scores.score(pipe, batch, scores.CANDIDATES["sima"], "sima"),
        "loss-map MLP, 100 epochs": lambda: mlp.fit_mlp(*x, epochs=100, lr=1e-3),
        "loss-map MLP, the paper's recipe": lambda: mlp.fit_mlp(*raw, **mlp.PAPER_RECIPE),
        "sampling 108 images": lambda: models.generate(pipe, [it.caption for it in members],
                                                       steps=cfg.model.sample_steps,
                                                       guidance_scale=cfg.model.guidance_scale),
        "FID features and FID/KID": lambda: bench.extractor.score(members, images),
        "bootstrap, 500 resamples": lambda: metrics.bootstrap_ci(sm, sn, 500),
    }


def import_seconds(repeats: int) -> list[float]:
    cmd = [sys.executable, "-c", "import smplora_nb.records, smplora_nb.bench"]
    return timed(lambda: subprocess.run(cmd, check=True, capture_output=True), repeats)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    import torch

    from smplora_nb import config, grids, paths, profiles
    from smplora_nb.bench import Bench

    torch.set_num_threads(args.threads)
    os.environ.setdefault(paths.ENV_VAR, str(paths.outputs_root() / "dev"))
    bench = Bench(config.make("tiny", **profiles.DEV_SEEDS))
    run = bench.train(grids.method_runs(bench.cfg, ["lora"], [0], {}), progress=False)["lora", 0]
    results = {"import smplora_nb (a process)": import_seconds(args.repeats)}
    for name, fn in pieces(bench, run).items():
        results[name] = timed(fn, args.repeats)
        print(f"{name:<36} median {statistics.median(results[name]):8.2f} s", flush=True)
    total = sum(statistics.median(v) * DEMO_COUNTS.get(k, 0) for k, v in results.items())
    print(f"\n{'piece':<36}{'median s':>10}{'min':>8}{'max':>8}{'x demo':>8}{'demo s':>9}{'share':>7}")
    for name, v in results.items():
        med, n = statistics.median(v), DEMO_COUNTS.get(name, 0)
        print(f"{name:<36}{med:>10.2f}{min(v):>8.2f}{max(v):>8.2f}{n:>8}{med * n:>9.0f}{med * n / total:>7.1%}")
    print(f"{'sum (core-seconds)':<36}{'':>34}{total:>9.0f}")
    if args.out:
        Path(args.out).write_text(json.dumps({"threads": args.threads, "repeats": args.repeats, "seconds": results,
                                              "demo_counts": DEMO_COUNTS}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
