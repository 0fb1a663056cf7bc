"""The thread-count noise floor of the utilities (issue 16): one LoRA run of the tiny default trained and audited
twice, identical but for torch's thread count (1, as every CPU job of the series, against 2), and the difference of
each utility printed. Run once on the development seeds (never the confirmatory ones):

    python benchmarks/utility_noise.py            # about 3 minutes on 2 cores

Record the printed line in benchmarks/RESULTS.md and in ``study.THREAD_FLOOR``.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile

import torch

from smplora_nb import config, evaluate, models, profiles, quality, runs, sets, study


def audit(cfg, splits, base, extractor, threads: int) -> dict:
    torch.set_num_threads(threads)
    run = runs.train(cfg, splits, base, progress=False)
    ev = evaluate.evaluate(base, run, splits, extractor, seed=cfg.train.seed, attacks=("loss_at_t",),
                           steps=cfg.model.sample_steps, guidance_scale=cfg.model.guidance_scale)
    return study.utility(ev)


def main() -> int:
    cfg = config.make("tiny", **profiles.DEV_SEEDS)
    items, splits = sets.prepare(cfg)
    base = models.base_model(cfg, splits, items)              # one base model for both runs
    extractor = quality.quality_extractor(splits, cfg, items)
    out = {}
    for threads in (1, 2):
        with tempfile.TemporaryDirectory() as root:            # a run folder of its own (the cache key ignores threads)
            os.environ["SMPLORA_OUTPUTS"] = root
            out[threads] = audit(cfg, splits, base, extractor, threads)
    diff = {u: abs(out[1][u] - out[2][u]) for u in out[1]}
    print(json.dumps({"threads_1": out[1], "threads_2": out[2], "abs_difference": diff}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
