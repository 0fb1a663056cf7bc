"""Jobs at once on CPU: ``parallel.width``'s two schedules measured (issue 16). Three equal LoRA runs of the tiny
default (30 epochs each, development seeds) are trained on 2 cores two at a time (the third after them) and then
all three at once, sharing the cores; the script prints both wall times, their ratio, the ratio the cost model
predicts (1.5 / 2 = 0.75), and whether the weights are bit for bit the same:

    python benchmarks/side_by_side.py [OUTPUTS]      # about 3 minutes; OUTPUTS with a pretrained base saves 4

OUTPUTS (default: a temporary folder) is read for the cached base model; the runs go to fresh folders.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from smplora_nb import config, lora, models, parallel, paths, profiles, runs, sets


def main(outputs: str | None = None) -> int:
    root = Path(outputs or tempfile.mkdtemp())
    os.environ[paths.ENV_VAR] = str(root)
    cfg = config.make("tiny", **profiles.DEV_SEEDS, epochs=30)
    items, splits = sets.prepare(cfg)
    base = models.base_model(cfg, splits, items)
    cfgs = {s: config.replace(cfg, seed=s) for s in (11, 12, 13)}
    seconds, weights, old = {}, {}, parallel.width
    try:
        parallel.width = lambda costs, cores: 3
        parallel.side_by_side(time.sleep, {i: (3,) for i in range(3)}, workers=2, progress=False)  # start 3 workers
        for at_once in (2, 3):
            with tempfile.TemporaryDirectory() as tmp:
                os.environ[paths.ENV_VAR] = tmp                          # fresh runs; the base stays in OUTPUTS
                parallel.width = lambda costs, cores, n=at_once: n
                start = time.perf_counter()
                got = runs.train_many(cfgs, splits, base, workers=2, progress=False)
                seconds[at_once] = time.perf_counter() - start
                weights[at_once] = {k: load_file(str(f / "lora" / lora.WEIGHTS_NAME)) for k, f in got.items()}
    finally:
        parallel.width = old
    same = all(torch.equal(weights[2][k][n], weights[3][k][n]) for k in cfgs for n in weights[2][k])
    print(json.dumps({"two_at_a_time_s": round(seconds[2], 1), "three_at_once_s": round(seconds[3], 1),
                      "ratio": round(seconds[3] / seconds[2], 3), "predicted_ratio": 0.75,
                      "weights_bit_identical": same}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
