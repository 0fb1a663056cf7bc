"""Does the caption scheme cost training time? Plain LoRA for 3 epochs on the development bases of the shared and
the descriptive digits, twice each, in one process (issue 29).

    python benchmarks/caption_cost.py

Needs the development bases of ``scripts/testbed_study.py`` (``outputs/dev`` and
``outputs/dev/testbeds/digits_descriptive``); the runs go to throwaway folders.
"""
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ["HF_HUB_OFFLINE"] = "1"

import torch  # noqa: E402

from smplora_nb import config, paths, profiles, runs  # noqa: E402
from smplora_nb.bench import Bench  # noqa: E402

ROOT = paths.outputs_root()
ROOTS = {"shared": ROOT / "dev", "descriptive": ROOT / "dev" / "testbeds" / "digits_descriptive"}

for rep in range(2):
    for captions, root in ROOTS.items():
        os.environ[paths.ENV_VAR] = str(root)
        cfg = config.make("tiny", captions=captions, **profiles.DEV_SEEDS)
        bench = Bench(cfg)
        base = bench.base
        os.environ[paths.ENV_VAR] = tempfile.mkdtemp(prefix="caption_cost_")
        start = time.time()
        runs.train(config.replace(cfg, epochs=3), bench.splits, base, progress=False)
        print(f"{captions:<12} LoRA 3 epochs {time.time() - start:5.1f} s ({torch.get_num_threads()} threads); "
              f"e.g. {bench.splits['member_aux'][0].caption!r}", flush=True)
