"""Auditing one adapted model: the membership attacks on D_te and the quality of its images, cached per run.

For a trained run (or the base model, the control) this

1. probes every private set with the attacker's loss maps (``attack.probe``: fixed timesteps, seeded noise shared by
   every model audited),
2. fits every attack on D_aux and scores D_te once (``attack.audit``; no knob is chosen on D_te), the reference
   MLP on the maps calibrated by the base model's (the adapters switched off),
3. generates one image per member caption and compares them with the member images (``metrics``: FID, KID and, for
   digits, the digit classifier's accuracy),

and stores the result as JSON (plus a few sample images as ``.npy``) beside the run, keyed by a hash of everything
that changes it. Rerunning a notebook therefore re-reads audits instead of recomputing them.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from . import attack, lora, models, parallel, paths

EVAL_VERSION = 2                       # bump when the audit's computation changes (cache key)
N_SAMPLES = 12                         # generated images kept for sample grids


def _folder(base, run) -> Path:
    if run is not None:
        return Path(run) / "eval"
    return paths.cache_dir("eval") / paths.config_hash({"base": str(base)})


def _cached(folder: Path, key: str) -> bool:
    return (folder / f"{key}.json").exists() and (folder / f"{key}_samples.npy").exists()


def _key(splits, extractor, seed, mlp_epochs, steps, guidance_scale) -> str:
    members = splits["member_aux"] + splits["member_te"]
    return paths.config_hash({"version": EVAL_VERSION, "seed": seed, "mlp_epochs": mlp_epochs, "steps": steps,
                              "guidance_scale": guidance_scale, "timesteps": attack.TIMESTEPS,
                              "n_draws": attack.N_DRAWS, "features": extractor.description,
                              "sets": {k: [it.sha256 for it in v] for k, v in splits.items() if k != "public"},
                              "captions": [it.caption for it in members]})


def evaluate_many(base, runs: dict, splits, extractor, seeds: dict, mlp_epochs: int = 100, steps: int = 25,
                  guidance_scale: float = 5.0, workers: int | None = None, progress: bool = True) -> dict:
    """``evaluate`` for every ``{key: run folder}``, with the attack seed ``seeds[key]``. Audits not cached yet run
    side by side on CPU (``parallel.side_by_side``, one thread each); every result is then read from the cache."""
    kw = dict(mlp_epochs=mlp_epochs, steps=steps, guidance_scale=guidance_scale)
    todo = {}                                           # one audit per distinct (run, seed)
    for k, run in runs.items():
        if not _cached(_folder(base, run), _key(splits, extractor, seeds[k], **kw)):
            todo.setdefault((str(run), seeds[k]), (base, run, splits, extractor, seeds[k], kw))
    parallel.side_by_side(_evaluate_quietly, todo, workers, progress, desc="audits")
    return {k: evaluate(base, run, splits, extractor, seeds[k], **kw) for k, run in runs.items()}


def _evaluate_quietly(base, run, splits, extractor, seed, kw) -> None:
    evaluate(base, run, splits, extractor, seed, **kw)


def evaluate(base, run, splits, extractor, seed: int, mlp_epochs: int = 100, steps: int = 25,
             guidance_scale: float = 5.0) -> dict:
    """Audit the base model with the LoRA of ``run`` (a run folder from ``runs.train``; None = the base model).

    Returns ``{"audit": {attack: metrics + D_te scores}, "quality": {fid, kid, ...}, "mean_loss": {set: mean
    fixed-t loss}, "samples": (N_SAMPLES, H, W, 3) uint8}``; the attack's own randomness is seeded by ``seed``.
    """
    members = splits["member_aux"] + splits["member_te"]
    key = _key(splits, extractor, seed, mlp_epochs, steps, guidance_scale)
    folder = _folder(base, run)
    if _cached(folder, key):
        out = paths.read_json(folder / f"{key}.json")
        out["samples"] = np.load(folder / f"{key}_samples.npy", allow_pickle=False)
        return out
    pipe = models.load_pipeline(base)
    if run is not None:
        lora.load_into(pipe, Path(run) / "lora")
    maps = attack.probe(pipe.components, splits, source=base)
    base_maps = None
    if run is not None:                                  # the reference MLP's base maps: the adapters switched off
        pipe.disable_lora()
        base_maps = attack.probe(pipe.components, splits, source=base)
        pipe.enable_lora()
    audit = attack.audit(maps, seed=seed, mlp_epochs=mlp_epochs, base_maps=base_maps)
    images = models.generate(pipe, [it.caption for it in members], seed=0, steps=steps,
                             guidance_scale=guidance_scale)
    out = {"audit": audit, "quality": extractor.score(members, images, [it.label for it in members]),
           "mean_loss": {k: float(attack.mean_loss(v).mean()) for k, v in maps["fixed_t"].items()}}
    buf = io.BytesIO()
    np.save(buf, np.asarray(images[:N_SAMPLES]), allow_pickle=False)
    folder.mkdir(parents=True, exist_ok=True)
    paths.atomic_write_bytes(folder / f"{key}_samples.npy", buf.getvalue())
    paths.write_json(folder / f"{key}.json", out)
    return {**out, "samples": np.asarray(images[:N_SAMPLES])}
