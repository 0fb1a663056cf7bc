"""Bit-for-bit check of a restructuring on the whole series (issue 30): run the six notebooks at small sizes with one
checkout's package, again with another's, and compare every LoRA weight file and every metrics.json.

    PYTHONPATH=/path/to/checkout python benchmarks/series_bitcmp.py run OUT      # one checkout's series into OUT
    python benchmarks/series_bitcmp.py compare OUT_BEFORE OUT_AFTER

``run`` uses one torch thread and no worker processes, and the sizes of the papermill tests of 2026-12-03 (fixed
here, so that later changes to the tests do not change what is compared). ``compare`` prints how many
``.safetensors`` files (by path under the outputs folder: run keys included) are identical, and for each notebook
whether its metrics.json is, with timings (``*_seconds``) and temporary paths left out.
"""
import hashlib
import json
import os
import sys
import time
from pathlib import Path

BASE_FAST = {"vae_steps": 20, "pretrain_steps": 20}
SPLIT_FAST = {"member_aux": 20, "member_te": 20, "nonmember_aux": 20, "nonmember_te": 20}
SAMPLE_FAST = {"sample_steps": 4, "unet_channels": [16, 32]}
SHARED = {"overrides": {**BASE_FAST, **SPLIT_FAST, **SAMPLE_FAST}}
HESSIAN = {"hessian_every": 1, "hessian_iters": 3}
PARAMS = {
    "01": {**BASE_FAST, "n_samples": 12, "overrides": SAMPLE_FAST},
    "02": {"n_splits": 2, "epochs": 2, "mlp_epochs": 3,
           "overrides": {**SHARED["overrides"], "lora_rank": 8, "lora_alpha": 8.0}},
    "03": {**SHARED, "epochs": 2, "mlp_epochs": 3, **HESSIAN, "stabilisers": ["clip", "normalize"]},
    "04": {**SHARED, "n_splits": 2, "epochs": 2, "mlp_epochs": 3, **HESSIAN, "two_forward_splits": 1},
    "05": {**SHARED, "epochs": 2, "mlp_epochs": 3, **HESSIAN, "lams": [1.0, 0.1], "lr_factors": [1.0, 0.1],
           "rank_factors": [1.0, 0.5], "n_splits": 1},
    "06": {**SHARED, "n_splits": 2, "epochs": 3, "mlp_epochs": 3, **HESSIAN, "dp_epsilons": [8.0], "dp_epochs": 1,
           "n_boot": 50},
}


def run(out: str) -> None:
    os.environ.update(SMPLORA_OUTPUTS=out, SMPLORA_WORKERS="1", OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    from smplora_nb import runner

    for nb, params in PARAMS.items():
        start = time.time()
        runner.run(only=[nb], params=params, progress=False)
        print(nb, "done in", round(time.time() - start), "s", flush=True)


def _strip(o):
    if isinstance(o, dict):
        return {k: _strip(v) for k, v in o.items() if not k.endswith("_seconds")}
    if isinstance(o, list):
        return [_strip(v) for v in o]
    return "<path>" if isinstance(o, str) and "/tmp/" in o else o


def compare(a: Path, b: Path) -> int:
    sha = {side: {p.relative_to(side): hashlib.sha256(p.read_bytes()).hexdigest() for p in side.rglob("*.safetensors")}
           for side in (a, b)}
    common = set(sha[a]) & set(sha[b])
    same = sum(sha[a][k] == sha[b][k] for k in common)
    print(f"safetensors: {len(sha[a])} before, {len(sha[b])} after, {len(common)} at the same path, {same} identical")
    bad = len(sha[a]) != same or len(sha[b]) != same
    for m in sorted(a.glob("*/metrics.json")):
        other = b / m.relative_to(a)
        ok = other.exists() and _strip(json.loads(m.read_text())) == _strip(json.loads(other.read_text()))
        print(f"{m.parent.name}: metrics.json {'identical' if ok else 'DIFFERENT'}")
        bad |= not ok
    return int(bad)


if __name__ == "__main__":
    if sys.argv[1:2] == ["run"] and len(sys.argv) == 3:
        run(sys.argv[2])
    elif sys.argv[1:2] == ["compare"] and len(sys.argv) == 4:
        sys.exit(compare(Path(sys.argv[2]), Path(sys.argv[3])))
    else:
        sys.exit(__doc__)
