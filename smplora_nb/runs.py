"""Training runs as cache entries (smplora_nb, arXiv 2402.11989 companion): keys, resume, snapshots, several runs
side by side, and sweeps split in shards.

A run is cached under ``outputs/cache/runs/<hash of config, split and base>/`` and holds
``lora/pytorch_lora_weights.safetensors`` (diffusers format) and ``train_log.json`` with per-step diagnostics.
Checkpoints (``checkpoints``: LoRA weights, optimiser, proxy, RNG state) are written every ``checkpoint_every``
epochs, and an interrupted run resumes from the last one to the same final weights on CPU. The loop itself is
``train.loop``.
"""
from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path

import torch
from safetensors import safe_open

from . import checkpoints, lora, methods, parallel, paths, sets
from . import train as loop_module

OBJECTIVE_VERSION = 3                 # bump when the training objective's code changes (cache key)
PRIVATE_ONLY = ("proxy_lr", "proxy_weight_decay", "lam", "delta", "k_steps", "proxy_batch_size", "two_forwards",
                "proxy_feature")                  # TrainConfig fields read only by mp_lora and smp_lora
DP_ONLY = ("dp_epsilon", "dp_delta", "dp_clip")      # TrainConfig fields read only by dp_lora
# fields that cannot change the weights: gradient checkpointing recomputes the same numbers, and the Hessian
# diagnostic draws from its own generator and takes no step (tests check both bit for bit)
NOT_IN_KEY = ("gradient_checkpointing", "hessian_every", "hessian_iters")


def world_size() -> int:
    """Processes of this run (``accelerate launch`` / torchrun set ``WORLD_SIZE``); 1 in notebooks."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def run_folder(cfg, splits, base) -> Path:
    """Where the run of ``cfg`` is (or will be) cached (nothing is created)."""
    return paths.outputs_root() / "cache" / "runs" / run_key(cfg, splits, base)


def run_key(cfg, splits, base) -> str:
    """Hash of everything that changes a run: training config, data config, base model, member images+captions."""
    members = [(it.sha256, it.caption) for it in sets.members(splits)]
    train_cfg = {k: v for k, v in vars(cfg.train).items() if k not in NOT_IN_KEY}
    if cfg.train.method in ("lora", "dp_lora"):          # the proxy's settings cannot change these runs
        for name in PRIVATE_ONLY:
            train_cfg.pop(name)
    if cfg.train.method != "dp_lora":
        for name in DP_ONLY:
            train_cfg.pop(name)
    if not cfg.train.snapshot_epochs:                    # a run with snapshots is its own cache entry
        train_cfg.pop("snapshot_epochs")
    base_id = paths.source_id(base)
    # the caption scheme is in the members' captions already; at its default it stays out, so earlier keys hold
    data = {k: v for k, v in vars(cfg.data).items() if (k, v) != ("captions", "shared")}
    key = {"train": train_cfg, "data": data, "base": base_id, "members": members,
           "objective": OBJECTIVE_VERSION}
    if world_size() > 1 and cfg.train.method != "lora":    # private objectives are averaged per process slice
        key["processes"] = world_size()
    return paths.config_hash(key)


def finished(folder: Path, tc) -> bool:
    """A finished run that carries the requested diagnostics (a run without the Hessian is trained again with it:
    the same weights, and a log with the Hessian). A log or LoRA file that is damaged or does not match the
    config (``_damage``) is removed with one line saying so, and the run is trained again (from a sound checkpoint
    when there is one)."""
    log = paths.read_cached(folder / "train_log.json", what="training the run again")
    if log is None:
        return False
    problem = _damage(folder, log, tc)
    if problem:
        print(f"[smplora_nb] run {folder.name}: {problem}; training it again", flush=True)
        (folder / "train_log.json").unlink(missing_ok=True)
        return False
    return not tc.hessian_every or (log.get("hessian_every"), log.get("hessian_iters")) == (tc.hessian_every,
                                                                                          tc.hessian_iters)


LOG_HEAD = ("method", "epochs", "steps", "n_member", "diverged", "loss")


def _damage(folder: Path, log: dict, tc) -> str | None:
    """Why a finished-looking run cannot be trusted, or None: its log must have the expected keys, method, epochs
    and step count, and its LoRA file must open with the tensors the log recorded."""
    missing = [k for k in LOG_HEAD if k not in log]
    if missing:
        return f"train_log.json lacks {missing}"
    if (log["method"], log["epochs"]) != (tc.method, tc.epochs):
        return f"train_log.json records {log['method']} for {log['epochs']} epochs, not {tc.method} for {tc.epochs}"
    expected = tc.epochs * -(-log["n_member"] // min(tc.batch_size, log["n_member"]))
    if len(log["loss"]) != log["steps"] or (log.get("processes", 1) == 1 and not log["diverged"]
                                            and log["steps"] != expected):
        return f"train_log.json records {log['steps']} steps ({len(log['loss'])} losses), not {expected}"
    weights = folder / "lora" / lora.WEIGHTS_NAME
    try:
        with safe_open(str(weights), "pt") as f:
            n = len(list(f.keys()))
    except Exception as e:                                     # missing, truncated or not safetensors
        return f"{weights.relative_to(folder)} does not open ({type(e).__name__})"
    if n == 0 or n != log.get("lora_tensors", n):
        return f"{weights.relative_to(folder)} holds {n} tensors, not {log.get('lora_tensors')}"
    return None


def cached(cfgs: dict, splits, base) -> dict:
    """``{key: run folder}`` of the runs of ``cfgs`` that are finished in the cache (nothing is trained); ``splits``
    as in ``train_many``."""
    sets_of = sets.per_key(splits, cfgs)
    folders = {k: run_folder(c, sets_of[k], base) for k, c in cfgs.items()}
    return {k: f for k, f in folders.items() if finished(f, cfgs[k].train)}


def train(cfg, splits, base, resume: bool = True, checkpoint_every: int | None = None, progress: bool = True,
          interrupt_at_epoch: int | None = None) -> Path:
    """Adapt the base model on D_tr = member_aux + member_te with ``cfg.train.method``; return the run folder.

    A finished run is returned from the cache; an unfinished one resumes from its last checkpoint when ``resume``
    is true. A non-finite loss stops the run cleanly: the last finite weights are saved and the log says
    ``diverged``. Checkpoints come every ``checkpoint_every`` epochs (default: a tenth of the run, at least 1); the
    log records ``resumed_from_epoch``. ``interrupt_at_epoch`` raises ``KeyboardInterrupt`` after that epoch's
    checkpoint (tests).
    """
    tc = cfg.train
    folder = run_folder(cfg, splits, base)
    if finished(folder, tc):
        return folder
    if tc.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise ValueError("mixed_precision='fp16' needs a CUDA GPU; use 'bf16' or 'no' on a CPU")
    method = methods.make(tc, world_size())
    s = loop_module.setup(cfg, splits, base, method)          # a refused base stops here: nothing is written
    # one process trains a run; another waits, then finds it finished. The processes of one ``accelerate launch``
    # train the run together, so they take no lock (one would wait for the others' collectives forever)
    with paths.locked(folder) if world_size() == 1 else contextlib.nullcontext():
        if not finished(folder, tc):
            _train(s, method, folder, resume, checkpoint_every, progress, interrupt_at_epoch)
    return folder


def _train(s, method, folder, resume, checkpoint_every, progress, interrupt_at_epoch) -> None:
    tc = s.tc
    again = (folder / "train_log.json").exists()                      # for the diagnostics: from the start
    folder.mkdir(parents=True, exist_ok=True)
    start_epoch, log = 0, {k: [] for k in loop_module.LOG_KEYS}
    if resume and not again and (folder / "checkpoint").exists():
        saved = checkpoints.read(folder / "checkpoint", s, method)
        if saved is not None:
            start_epoch, log = checkpoints.load(saved, s, method)
    every = checkpoint_every or max(1, tc.epochs // 10)

    def end_of_epoch(epoch: int) -> None:
        if epoch in tc.snapshot_epochs and s.accelerator.is_main_process:
            lora.save(folder / "snapshots" / f"epoch_{epoch:04d}" / "lora", s.unwrapped("unet"),
                      s.unwrapped("text_encoder"))
        if epoch % every == 0 and epoch < tc.epochs:
            if s.accelerator.is_main_process:
                checkpoints.save(folder, s, method, epoch, log)
            s.accelerator.wait_for_everyone()
            if interrupt_at_epoch is not None and epoch >= interrupt_at_epoch:
                raise KeyboardInterrupt(f"interrupted after epoch {epoch} (test hook)")

    started = time.time()
    diverged = loop_module.loop(s, method, log, start_epoch, end_of_epoch, progress)
    _finish(folder, s, method, log, {"diverged": diverged, "seconds_this_session": time.time() - started,
                                     "resumed_from_epoch": start_epoch})


def _finish(folder: Path, s, method, log: dict, run: dict) -> None:
    """Save the final LoRA and the log (main process), after checking that every process holds the same weights."""
    tc, procs = s.tc, s.accelerator.num_processes
    extra = {}
    if procs > 1:
        extra = {"processes": procs, "proxy_consistent": _same_everywhere(s.accelerator, method.proxy.model)
                 if method.private else None, "lora_consistent": _same_everywhere(s.accelerator, s.unwrapped("unet"))}
    if s.accelerator.is_main_process:
        weights = lora.save(folder / "lora", s.unwrapped("unet"), s.unwrapped("text_encoder"))
        with safe_open(str(weights), "pt") as f:
            n_tensors = len(list(f.keys()))
        head = {"lora_tensors": n_tensors, "method": tc.method, "seed": tc.seed, "lam": tc.lam, "epochs": tc.epochs, "steps": len(log["loss"]),
                "n_member": s.n, "diverged": run["diverged"], "seconds_this_session": run["seconds_this_session"],
                "resumed_from_epoch": run["resumed_from_epoch"], "mixed_precision": tc.mixed_precision,
                "hessian_every": tc.hessian_every, "hessian_iters": tc.hessian_iters}
        paths.write_json(folder / "train_log.json", {**head, **extra, **method.summary(), **log})
    s.accelerator.wait_for_everyone()


def _same_everywhere(accelerator, model) -> bool:
    """Whether every process holds bit-identical trainable weights (a checksum gathered from all processes)."""
    flat = torch.cat([p.detach().double().flatten() for p in model.parameters() if p.requires_grad])
    sums = accelerator.gather(torch.stack([flat.sum(), (flat * torch.arange(1, len(flat) + 1, dtype=flat.dtype,
                                                                            device=flat.device)).sum()])[None])
    return bool((sums == sums[0]).all())


def logs(trained: dict) -> dict:
    """``{key: train_log}`` of ``{key: run folder}``."""
    return {k: paths.read_json(Path(r) / "train_log.json") for k, r in trained.items()}


def snapshots(run) -> dict[int, Path]:
    """``{epoch: folder}`` of a run's LoRA snapshots (``snapshot_epochs``) plus its final LoRA at its last epoch;
    every folder holds ``lora/`` and can be passed to ``evaluate.evaluate`` like a run."""
    run = Path(run)
    out = {int(p.name.split("_")[1]): p for p in sorted((run / "snapshots").glob("epoch_*"))}
    out[paths.read_json(run / "train_log.json")["epochs"]] = run
    return out


def _cost(cfg) -> float:
    """Rough relative cost of a run, so that the longest runs start first (U-Net passes per step x epochs)."""
    tc = cfg.train
    per_step = 3 + (tc.method != "lora") * (1 + (tc.proxy_feature == "calibrated")) + 3 * tc.two_forwards \
        + 2 * (tc.method == "mp_lora") + (2.5 * tc.hessian_iters / tc.hessian_every if tc.hessian_every else 0)
    return tc.epochs * per_step


def _train_path(cfg, splits, base, progress) -> str:
    return str(train(cfg, splits, base, progress=progress))


def train_many(cfgs: dict, splits, base, workers: int | None = None, progress: bool = True) -> dict:
    """Train several runs, ``{key: cfg}`` -> ``{key: run folder}``; finished runs come from the cache. ``splits``:
    the sets of every run, or ``{key: sets}`` (runs on several member splits).

    Independent runs go through ``parallel.side_by_side``: on CPU, one thread per run, in separate processes on
    ``workers`` cores, the longest first (or all at once when that ends sooner); on a GPU one after another. An
    interrupted run resumes from its last checkpoint. Under ``reproduce --shard I/N`` (``$SMPLORA_SHARD``) only every N-th run, in the order of the run
    hashes, is trained here, and ``parallel.ShardComplete`` stops the notebook: machines sharing ``outputs/``
    split a sweep, and a final call without ``--shard`` finds every run in the cache. Configs that differ only in
    the Hessian diagnostic share a run; it is trained once, with the diagnostic.
    """
    sets_of = sets.per_key(splits, cfgs)
    out = {k: run_folder(c, sets_of[k], base) for k, c in cfgs.items()}
    distinct = {}                                       # one job per distinct run (equal configs share a folder)
    for k in sorted(cfgs, key=lambda k: cfgs[k].train.hessian_every == 0):   # a Hessian-carrying config first
        distinct.setdefault(out[k], k)
    mine = sorted(distinct.values(), key=lambda k: out[k].name)     # a machine-independent order: the run hashes
    shard = parallel.parse_shard(os.environ.get(parallel.SHARD_VAR))
    if shard:
        mine = mine[shard[0] - 1::shard[1]]
    todo = sorted((k for k in mine if not finished(out[k], cfgs[k].train)), key=lambda k: -_cost(cfgs[k]))
    in_turn = torch.cuda.is_available() or (workers or parallel.default_workers()) == 1
    inner = progress and in_turn                                          # per-epoch bars when runs go in turn
    parallel.side_by_side(_train_path, {k: (cfgs[k], sets_of[k], base, inner) for k in todo}, workers, progress,
                          desc="training runs", costs={k: _cost(cfgs[k]) for k in todo})
    if shard:
        raise parallel.ShardComplete(f"shard {shard[0]}/{shard[1]} trained {len(todo)} of its {len(mine)} runs "
                                     f"({len(distinct)} in all)")
    return out
