"""Fingerprints of training runs (sha256 of the LoRA weights and of the log), to prove a restructuring changes
nothing: ``python benchmarks/train_fingerprints.py OUT.json`` on the old and the new code, then compare the files.

Covers every path of the loop at small sizes on a few-step tiny base: each method, each proxy feature, two
forwards, k_steps > 1, text-encoder LoRA, both stabilisers, the Hessian diagnostic, snapshots, bf16, DP-SGD, an
interrupted-and-resumed run, and the tiny profile's own set sizes.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["SMPLORA_OUTPUTS"] = tempfile.mkdtemp(prefix="fingerprints.")

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from smplora_nb import config, data, models  , sets# noqa: E402

try:
    from smplora_nb import runs as runner_of_runs          # after the restructuring
except ImportError:                                       # before it
    from smplora_nb import train as runner_of_runs

FAST = dict(vae_steps=2, pretrain_steps=3, pretrain_batch_size=8, public=40, member_aux=6, member_te=6,
            nonmember_aux=6, nonmember_te=6, lora_rank=4, lora_alpha=4.0, batch_size=4, epochs=3, lr=1e-2)
PRIVATE = dict(lam=0.5, proxy_batch_size=4)
CASES = {
    "lora": {}, "lora_all": dict(lora_targets="all"), "lora_text": dict(text_encoder_lr=1e-2),
    "lora_snapshots": dict(snapshot_epochs=(1, 2)),
    "mp_map": dict(method="mp_lora", proxy_feature="map", **PRIVATE),
    "mp_calibrated_hessian": dict(method="mp_lora", proxy_feature="calibrated", hessian_every=3, hessian_iters=4,
                                  **PRIVATE),
    "mp_clip": dict(method="mp_lora", grad_clip=0.5, **PRIVATE),
    "mp_normalize": dict(method="mp_lora", grad_normalize=True, **PRIVATE),
    "smp_map": dict(method="smp_lora", proxy_feature="map", **PRIVATE),
    "smp_calibrated": dict(method="smp_lora", proxy_feature="calibrated", **PRIVATE),
    "smp_calibrated_hessian": dict(method="smp_lora", proxy_feature="calibrated", hessian_every=2, hessian_iters=4,
                                   **PRIVATE),
    "smp_two_forwards": dict(method="smp_lora", two_forwards=True, proxy_feature="calibrated", **PRIVATE),
    "smp_two_forwards_map": dict(method="smp_lora", two_forwards=True, proxy_feature="map", **PRIVATE),
    "smp_k2_text": dict(method="smp_lora", k_steps=2, text_encoder_lr=1e-3, **PRIVATE),
    "smp_bf16": dict(method="smp_lora", mixed_precision="bf16", **PRIVATE),
    "dp": dict(method="dp_lora", dp_epsilon=8.0),
    "tiny_sizes_lora": dict(member_aux=50, member_te=58, nonmember_aux=50, nonmember_te=50, epochs=2,
                            lora_targets="all", batch_size=32),
    "tiny_sizes_smp": dict(member_aux=50, member_te=58, nonmember_aux=50, nonmember_te=50, epochs=2,
                           lora_targets="all", batch_size=32, method="smp_lora", lam=1.0, proxy_batch_size=32,
                           proxy_feature="calibrated"),
    "tiny_sizes_mp": dict(member_aux=50, member_te=58, nonmember_aux=50, nonmember_te=50, epochs=2,
                          lora_targets="all", batch_size=32, method="mp_lora", lam=1.0, proxy_batch_size=32,
                          proxy_feature="calibrated"),
    "tiny_sizes_dp": dict(member_aux=50, member_te=58, nonmember_aux=50, nonmember_te=50, epochs=2,
                          lora_targets="all", batch_size=32, method="dp_lora"),
}


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:16]


def fingerprint(folder: Path) -> dict:
    w = load_file(str(folder / "lora" / "pytorch_lora_weights.safetensors"))
    h = hashlib.sha256()
    for k in sorted(w):
        h.update(k.encode())
        h.update(w[k].contiguous().view(torch.uint8).numpy().tobytes())
    log = json.loads((folder / "train_log.json").read_text())
    for key in ("seconds_this_session", "hessian_every", "hessian_iters"):   # the last two: new log fields
        log.pop(key, None)
    out = {"weights": h.hexdigest()[:16], "log": _digest(log), "steps": log["steps"],
           "final_loss": log["loss"][-1]}
    snaps = sorted((folder / "snapshots").glob("epoch_*"))
    if snaps:
        out["snapshots"] = [fingerprint_weights(p) for p in snaps]
    return out


def fingerprint_weights(folder: Path) -> str:
    w = load_file(str(folder / "lora" / "pytorch_lora_weights.safetensors"))
    return hashlib.sha256(b"".join(w[k].contiguous().view(torch.uint8).numpy().tobytes() for k in sorted(w))
                          ).hexdigest()[:16]


def main(out: str) -> None:
    torch.set_num_threads(1)
    results = {}
    for name, over in CASES.items():
        if over.get("proxy_feature") == "map" and "log_map" in config.CHOICES["proxy_feature"]:
            over = {**over, "proxy_feature": "log_map"}       # the same feature, renamed by the restructuring
        cfg = config.make("tiny", **{**FAST, **over})
        items = data.load_dataset("digits", 16)
        splits = sets.make_splits(items, cfg.split)
        base = models.base_model(cfg, splits, items)
        folder = runner_of_runs.train(cfg, splits, base, progress=False)
        results[name] = fingerprint(folder)
        print(name, results[name], flush=True)
    cfg = config.make("tiny", **{**FAST, "method": "smp_lora", **PRIVATE, "seed": 5})   # interrupted, resumed
    items = data.load_dataset("digits", 16)
    splits = sets.make_splits(items, cfg.split)
    base = models.base_model(cfg, splits, items)
    try:
        runner_of_runs.train(cfg, splits, base, progress=False, checkpoint_every=1, interrupt_at_epoch=1)
    except KeyboardInterrupt:
        pass
    log = {k: v for k, v in fingerprint(runner_of_runs.train(cfg, splits, base, progress=False,
                                                              checkpoint_every=1)).items()}
    results["smp_resumed"] = log
    print("smp_resumed", log)
    Path(out).write_text(json.dumps(results, indent=1, sort_keys=True))


if __name__ == "__main__":
    main(sys.argv[1])
