"""Auditing one adapted model: the membership attacks on D_te and the quality of its images, cached per run.

For a trained run (or the base model, the control) this

1. audits its membership with the attacks asked for (``attack.audit``: each fitted on D_aux, scored once on D_te;
   one record per attack, each cached on its own),
2. generates one image per member caption and compares them with the member images (``quality``: FID, KID and, for
   digits, the digit classifier's accuracy), and takes the mean loss of every private set (held-out fit),

and stores the quality as JSON (plus a few sample images as ``.npy``) beside the run, keyed by a hash of everything
that changes it. Rerunning a notebook therefore re-reads audits instead of recomputing them.
"""
from __future__ import annotations

import io
import numpy as np

from . import attack, config, models, parallel, paths, quality, sets

EVAL_VERSION = 3                       # bump when the audit's computation changes (cache key)
N_SAMPLES = 12                         # generated images kept for sample grids
N_BOOT = config.ModelConfig.audit_boot  # percentile-bootstrap resamples per interval (a config field: tests use fewer)


def _key(splits, extractor, steps, guidance_scale) -> str:
    members = sets.members(splits)
    return paths.config_hash({"version": EVAL_VERSION, "steps": steps, "guidance_scale": guidance_scale,
                              "timesteps": attack.TIMESTEPS, "n_draws": attack.N_DRAWS,
                              "features": extractor.description,
                              "sets": {k: [it.sha256 for it in v] for k, v in splits.items() if k != "public"},
                              "captions": [it.caption for it in members]})


def evaluate_many(base, runs: dict, splits, extractor, seeds: dict, attacks=attack.MAP_ATTACKS, mlp_epochs: int = 100,
                  n_boot: int = N_BOOT, steps: int = 25, guidance_scale: float = 5.0, workers: int | None = None,
                  progress: bool = True) -> dict:
    """``evaluate`` for every ``{key: run folder}``, with the attack seed ``seeds[key]`` and the sets ``splits``
    (the same for every run, or ``{key: sets}``). Audits not cached yet run side by side on CPU
    (``parallel.side_by_side``, one thread each, the most work left first); every result is then read from the
    cache."""
    kw = dict(attacks=tuple(attacks), mlp_epochs=mlp_epochs, n_boot=n_boot, steps=steps, guidance_scale=guidance_scale)
    sets_of = sets.per_key(splits, runs)
    todo, cost = {}, {}                                 # one audit per distinct (run, split, seed)
    for k, run in runs.items():
        left = _work_left(base, run, sets_of[k], extractor, seeds[k], **kw)
        job = (str(run), _key(sets_of[k], extractor, steps, guidance_scale), seeds[k])
        if left:
            todo.setdefault(job, (base, run, sets_of[k], extractor, seeds[k], kw))
            cost[job] = left
    todo = {j: todo[j] for j in sorted(todo, key=lambda j: -cost[j])}
    parallel.side_by_side(_evaluate_quietly, todo, workers, progress, desc="audits", costs=cost)
    return {k: evaluate(base, run, sets_of[k], extractor, seeds[k], **kw) for k, run in runs.items()}


def _work_left(base, run, splits, extractor, seed, attacks, mlp_epochs, n_boot, steps, guidance_scale) -> float:
    """What an audit has left to do, roughly (0: everything is cached): its attacks not cached yet, plus two for
    the images and their quality not computed yet."""
    folder, key = attack.folder(base, run), _key(splits, extractor, steps, guidance_scale)
    left = sum(not attack.cached(base, run, splits, (a,), seed, n_boot, mlp_epochs) for a in attacks)
    sampled = (folder / f"{key}.json").exists() and (folder / f"{key}_samples.npy").exists()
    return left + 2.0 * (not sampled)


def _evaluate_quietly(base, run, splits, extractor, seed, kw) -> None:
    evaluate(base, run, splits, extractor, seed, **kw)


def evaluate(base, run, splits, extractor, seed: int, attacks=attack.MAP_ATTACKS, mlp_epochs: int = 100,
             n_boot: int = N_BOOT, steps: int = 25, guidance_scale: float = 5.0) -> dict:
    """Audit the base model with the LoRA of ``run`` (a run folder from ``runs.train``; None = the base model).

    Returns ``{"audit": {attack: record}, "quality": {fid, kid, ...}, "mean_loss": {set: mean fixed-t loss},
    "image_loss": {D_te set: per-image mean loss}, "samples": (N_SAMPLES, H, W, 3) uint8}``; the attacks' own
    randomness is seeded by ``seed``.
    """
    members = sets.members(splits)
    key = _key(splits, extractor, steps, guidance_scale)
    folder = attack.folder(base, run)
    probe = attack.Probe(base, run, splits)
    audit = attack.audit(base, run, splits, attacks, seed, n_boot, mlp_epochs, shared=probe)
    out = paths.read_cached(folder / f"{key}.json", what="evaluating again")
    samples = paths.read_cached(folder / f"{key}_samples.npy", lambda p: np.load(p, allow_pickle=False),
                                "sampling again")
    if out is not None and samples is not None:
        return {**out, "audit": audit, "samples": samples}
    images = models.generate(probe.pipe, [it.caption for it in members], seed=0, steps=steps,
                             guidance_scale=guidance_scale, resolution=members[0].image.shape[0])   # the run's
    out = {"quality": extractor.score(members, images, [it.label for it in members]),
           "mean_loss": {k: float(attack.mean_loss(v).mean()) for k, v in probe.maps()["fixed_t"].items()},
           "image_loss": {k: attack.mean_loss(probe.maps()["fixed_t"][k]).tolist() for k in ("member_te", "nonmember_te")}}
    buf = io.BytesIO()
    np.save(buf, np.asarray(images[:N_SAMPLES]), allow_pickle=False)
    folder.mkdir(parents=True, exist_ok=True)
    paths.atomic_write_bytes(folder / f"{key}_samples.npy", buf.getvalue())
    paths.write_json(folder / f"{key}.json", out)
    return {**out, "audit": audit, "samples": np.asarray(images[:N_SAMPLES])}


def fid_floor(base, run, splits, extractor, steps: int = 25, guidance_scale: float = 5.0) -> dict:
    """The sampling floor of FID and KID: the distance between two independent sample sets of one model from the
    same member captions (sampling seeds 0 and 1). A difference of two models' FIDs inside it is sampling noise.
    Cached beside the model's audits."""
    members = sets.members(splits)
    path = attack.folder(base, run) / f"floor_{_key(splits, extractor, steps, guidance_scale)}.json"
    out = paths.read_cached(path, what="measuring the floor again")
    if out is None:
        pipe = attack.Probe(base, run, splits).pipe
        a, b = (models.generate(pipe, [it.caption for it in members], seed=s, steps=steps,
                                guidance_scale=guidance_scale, resolution=members[0].image.shape[0]) for s in (0, 1))
        out = quality.fid_kid(extractor.features(a), extractor.features(b))
        paths.write_json(path, out)
    return out
