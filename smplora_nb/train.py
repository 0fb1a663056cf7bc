"""The one training loop for ``lora``, ``mp_lora`` and ``smp_lora`` (smplora_nb, arXiv 2402.11989 companion).

Per step, for a batch (x, y) of members with cached latents z0 = E(x) and caption embeddings tau(y):

    t ~ U{0..999},  eps ~ N(0, I),  L_ada = mean over batch and elements of (eps - eps_theta(z_t, t, tau(y)))^2

and only the LoRA matrices A, B are updated (AdamW, lr ``cfg.train.lr``). The private methods follow Algorithm 1:
first a proxy step on a balanced D_aux batch (a U-Net forward without gradient), then the LoRA step with the
objective of ``defense``, whose MI gain reads the loss maps of the same forward as L_ada (one forward with gradient,
not two). With ``proxy_feature="calibrated"`` a frozen copy of the base U-Net gives the reference maps of both batches
in one more forward without gradient. Every step logs the diagnostics of ``diagnostics``. Runs are cached under
``outputs/cache/runs/<hash of config, split and base>/``; checkpoints (LoRA weights, optimizer, RNG state) are written
every ``checkpoint_every`` epochs, and ``resume=True`` continues an interrupted run to the same final weights on CPU.
Device and precision come from accelerate. With ``mixed_precision`` "fp16"/"bf16" the frozen U-Net (and text
encoder) weights are held in that dtype and the LoRA weights in fp32 (``cast_training_params``), under autocast;
``gradient_checkpointing`` trades compute for activation memory; attention runs through diffusers' default
PyTorch SDPA processor. Under ``accelerate launch`` with several processes (``python -m smplora_nb train``) each
process takes an equal slice of every D_tr batch and of every proxy batch (``batch_size`` and
``proxy_batch_size`` are global), the LoRA and the proxy are both wrapped in DistributedDataParallel, so their
gradients are averaged and every process holds the same LoRA and the same proxy after every step (the log records
that the proxies agree at the end). All processes draw the same random numbers, then keep their slice.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from . import defense, diagnostics, dp, losses, lora, models, parallel, paths

OBJECTIVE_VERSION = 3                 # bump when the training objective's code changes (cache key)
PRIVATE_ONLY = ("proxy_lr", "proxy_weight_decay", "lam", "delta", "k_steps", "proxy_batch_size", "two_forwards",
                "proxy_feature")                  # TrainConfig fields read only by mp_lora and smp_lora
LOG_KEYS = ("loss", "l_ada", "gain", "grad_norm", "grad_scale", "grad_scale_ada", "grad_scale_privacy", "rescale",
            "proxy_acc", "hessian", "dp_update")
DP_ONLY = ("dp_epsilon", "dp_delta", "dp_clip")      # TrainConfig fields read only by dp_lora


def world_size() -> int:
    """Processes of this run (``accelerate launch`` / torchrun set ``WORLD_SIZE``); 1 in notebooks."""
    import os

    return int(os.environ.get("WORLD_SIZE", "1"))


def run_folder(cfg, splits, base) -> Path:
    """Where the run of ``cfg`` is (or will be) cached."""
    return paths.cache_dir("runs") / run_key(cfg, splits, base)


def run_key(cfg, splits, base) -> str:
    """Hash of everything that changes a run: training config, data config, base model, member images+captions."""
    members = [(it.sha256, it.caption) for it in splits["member_aux"] + splits["member_te"]]
    train_cfg = dict(vars(cfg.train))
    train_cfg.pop("gradient_checkpointing")              # recomputes the same numbers: not part of the key
    if cfg.train.method in ("lora", "dp_lora"):          # the proxy's settings cannot change these runs
        for name in PRIVATE_ONLY:
            train_cfg.pop(name)
    if cfg.train.method != "dp_lora":
        for name in DP_ONLY:
            train_cfg.pop(name)
    if not cfg.train.snapshot_epochs:                    # a run with snapshots is its own cache entry
        train_cfg.pop("snapshot_epochs")
    base_id = Path(str(base)).name if Path(str(base)).parent == paths.cache_dir("base") else str(base)
    key = {"train": train_cfg, "data": vars(cfg.data), "base": base_id, "members": members,
           "objective": OBJECTIVE_VERSION}
    if world_size() > 1 and cfg.train.method != "lora":    # private objectives are averaged per process slice
        key["processes"] = world_size()
    return paths.config_hash(key)


def _rng_state(gen: torch.Generator) -> dict:
    """The loop's generator (batches, noise, t) and torch's global one (the proxy's dropout)."""
    return {"generator": gen.get_state(), "torch_global": torch.get_rng_state()}


def _save_checkpoint(folder: Path, unet, text_encoder, opt, scaler, gen, epoch: int, log: dict, proxy) -> None:
    with paths.atomic_dir(folder / "checkpoint") as tmp:
        if scaler is not None:                                           # fp16 loss scale, for exact resumes
            torch.save(scaler.state_dict(), tmp / "scaler.pt")
        save_file(lora.state_dict(unet), str(tmp / "lora.safetensors"))
        if text_encoder is not None:
            save_file(lora.state_dict(text_encoder), str(tmp / "text_encoder_lora.safetensors"))
        if proxy is not None:
            save_file(proxy.model.state_dict(), str(tmp / "proxy.safetensors"))
            torch.save(proxy.opt.state_dict(), tmp / "proxy_optimizer.pt")
        torch.save(opt.state_dict(), tmp / "optimizer.pt")
        save_file(_rng_state(gen), str(tmp / "rng.safetensors"))
        paths.write_json(tmp / "state.json", {"epoch": epoch, "log": log})


def _load_checkpoint(folder: Path, unet, text_encoder, opt, scaler, gen, proxy) -> tuple[int, dict]:
    ck = folder / "checkpoint"
    if scaler is not None and (ck / "scaler.pt").exists():
        scaler.load_state_dict(torch.load(ck / "scaler.pt", weights_only=True))
    lora.load_state_dict(unet, load_file(str(ck / "lora.safetensors")))
    if text_encoder is not None:
        lora.load_state_dict(text_encoder, load_file(str(ck / "text_encoder_lora.safetensors")))
    if proxy is not None:
        proxy.model.load_state_dict(load_file(str(ck / "proxy.safetensors")))
        proxy.opt.load_state_dict(torch.load(ck / "proxy_optimizer.pt", weights_only=True))
    opt.load_state_dict(torch.load(ck / "optimizer.pt", weights_only=True))
    rng = load_file(str(ck / "rng.safetensors"))
    gen.set_state(rng["generator"])
    torch.set_rng_state(rng["torch_global"])
    state = paths.read_json(ck / "state.json")
    return state["epoch"], state["log"]


def _base_map(base_unet, scheduler, z0, cond, t, noise) -> torch.Tensor:
    """The frozen base model's loss map at the same (t, noise): a separate copy without adapters, no gradient."""
    with torch.inference_mode():
        return losses.loss_map(base_unet, scheduler, z0, cond, t, noise).clone()


def _aux_rows(aux, half: int, gen, device, num_t: int, text_encoder=None, shard=(0, 1)):
    """A balanced proxy batch: ``half`` member_aux + ``half`` nonmember_aux latents, captions, noise, t, labels.

    ``aux`` holds (latents, caption embeddings, token ids) for member_aux and nonmember_aux; with a text-encoder
    LoRA the captions are re-encoded under it (no gradient), as the attacker queries the adapted model. With
    ``shard`` = (rank, processes) every process draws the whole batch and keeps its slice of each half.
    """
    (zm, cm, idm), (zn, cn, idn) = aux
    im = torch.randint(0, len(zm), (half,), generator=gen)
    inn = torch.randint(0, len(zn), (half,), generator=gen)
    mine = _local(torch.arange(half), shard)
    rows = torch.cat([mine, half + mine])                                            # this process's rows
    z0 = torch.cat([zm[im], zn[inn]])[rows]                                          # (2h/P, 4, h, w)
    if text_encoder is None:
        cond = torch.cat([cm[im], cn[inn]])[rows]                                    # (2h/P, T, D)
    else:
        with torch.no_grad():
            cond = text_encoder(torch.cat([idm[im], idn[inn]])[rows].to(device))[0]
    noise = torch.randn((2 * half,) + tuple(zm.shape[1:]), generator=gen)[rows].to(device)
    t = torch.randint(0, num_t, (2 * half,), generator=gen)[rows].to(device)
    return z0, cond, noise, t, rows.to(device) < half


def _local(x: torch.Tensor, shard) -> torch.Tensor:
    """This process's equal slice of a batch drawn by every process: rows [r*B/P, (r+1)*B/P)."""
    rank, procs = shard
    per = len(x) // procs
    return x[rank * per:(rank + 1) * per]


def _proxy_batch(proxy, unet, base_unet, scheduler, aux, half: int, gen, device, text_encoder, shard) -> float:
    """One extra proxy update (``k_steps`` > 1) on a fresh balanced batch, with its own U-Net forward."""
    z0, cond, noise, t, member = _aux_rows(aux, half, gen, device, scheduler.config.num_train_timesteps,
                                           text_encoder, shard)
    with torch.no_grad():
        maps = losses.loss_map(unet, scheduler, z0, cond, t, noise)                  # (2h, 4, h, w)
    ref = _base_map(base_unet, scheduler, z0, cond, t, noise) if base_unet is not None else None
    return proxy.update(maps, t, member, ref)


def train(cfg, splits, base, resume: bool = True, checkpoint_every: int | None = None, progress: bool = True,
          interrupt_at_epoch: int | None = None) -> Path:
    """Adapt the base model on D_tr = member_aux + member_te with ``cfg.train.method``; return the run folder.

    ``lora`` minimises L_ada; ``mp_lora`` and ``smp_lora`` add the proxy attack of ``defense`` (see there). The
    folder holds ``lora/pytorch_lora_weights.safetensors`` (diffusers format) and ``train_log.json`` with per-step
    diagnostics. A finished run is returned from the cache; an unfinished one resumes from its last checkpoint when
    ``resume`` is true. A non-finite loss stops the run cleanly: the last finite weights are saved and the log says
    ``diverged``. Checkpoints come every ``checkpoint_every`` epochs (default: a tenth of the run, at least 1); the
    log records ``resumed_from_epoch``. ``interrupt_at_epoch`` raises ``KeyboardInterrupt`` after that epoch's checkpoint (tests).
    """
    from accelerate import Accelerator

    tc = cfg.train
    folder = run_folder(cfg, splits, base)
    if (folder / "train_log.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    if tc.mixed_precision == "fp16" and not torch.cuda.is_available():
        raise ValueError("mixed_precision='fp16' needs a CUDA GPU; use 'bf16' or 'no' on a CPU")
    from accelerate.state import AcceleratorState

    if AcceleratorState._shared_state.get("_mixed_precision", tc.mixed_precision) != tc.mixed_precision:
        AcceleratorState._reset_state()              # runs of different precisions, one after another, in one process
    accelerator = Accelerator(mixed_precision=tc.mixed_precision, cpu=not torch.cuda.is_available())
    device, shard = accelerator.device, (accelerator.process_index, accelerator.num_processes)
    procs, private = accelerator.num_processes, tc.method in ("mp_lora", "smp_lora")
    dp_run = tc.method == "dp_lora"
    if dp_run and (procs > 1 or tc.mixed_precision != "no" or tc.text_encoder_lr > 0 or tc.hessian_every):
        raise ValueError("dp_lora runs in one process, in fp32, on U-Net LoRA only, without the Hessian diagnostic "
                         "(set mixed_precision='no', text_encoder_lr=0, hessian_every=0)")
    members = splits["member_aux"] + splits["member_te"]
    n, bs = len(members), min(tc.batch_size, len(members))
    half = tc.proxy_batch_size // 2 if private and tc.k_steps > 0 else 0
    if procs > 1 and (bs % procs or half % procs):
        raise ValueError(f"batch_size ({bs}) and half the proxy_batch_size ({half}) must be multiples of the "
                         f"{procs} processes: each process takes an equal slice of every batch")
    parts = models.load_pipeline(base, device=device).components
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(tc.mixed_precision, torch.float32)
    with accelerator.main_process_first():                               # one process fills the latent cache
        z0, cond = models.encode_items(parts, members, device, source=base)     # (N, 4, h, w), (N, T, D)
    unet, scheduler = parts["unet"].to(device), parts["scheduler"]
    if weight_dtype != torch.float32:                                    # frozen weights in low precision
        unet.to(dtype=weight_dtype)
    if tc.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    num_t = scheduler.config.num_train_timesteps
    base_unet = None                                                     # frozen copy for the calibrated feature
    if private and tc.proxy_feature == "calibrated":
        base_unet = copy.deepcopy(unet).requires_grad_(False).eval()
    groups = [{"params": lora.attach(unet, tc.lora_rank, tc.lora_alpha, lora.TARGETS[tc.lora_targets], tc.seed),
               "lr": tc.lr}]
    a_params, b_params = lora.split_ab(unet)
    text_encoder, encode = None, None
    if tc.text_encoder_lr > 0:                                           # official code: text-encoder LoRA too
        text_encoder = parts["text_encoder"].to(device, dtype=weight_dtype)
        if tc.gradient_checkpointing:
            text_encoder.gradient_checkpointing_enable()
        groups.append({"params": lora.attach(text_encoder, tc.lora_rank, tc.lora_alpha, lora.TEXT_TARGETS,
                                             seed=tc.seed), "lr": tc.text_encoder_lr})
        a_te, b_te = lora.split_ab(text_encoder)
        a_params, b_params = a_params + a_te, b_params + b_te

        def encode(items):                                               # captions -> (N, T, D) under the LoRA
            return parts["tokenizer"]([it.caption for it in items], padding="max_length", truncation=True,
                                      max_length=parts["tokenizer"].model_max_length, return_tensors="pt").input_ids
        ids = encode(members)
    from diffusers.training_utils import cast_training_params

    for model in (unet, text_encoder):
        if model is not None:
            cast_training_params(model, dtype=torch.float32)            # LoRA stays fp32 under mixed precision
    opt = torch.optim.AdamW(groups)
    if text_encoder is None:
        unet, opt = accelerator.prepare(unet, opt)
    else:
        unet, text_encoder, opt = accelerator.prepare(unet, text_encoder, opt)
    proxy = defense.Proxy(z0[0].numel(), tc.proxy_lr, tc.proxy_weight_decay, device) if private else None
    if private and procs > 1:
        proxy.distribute(device)
    if private:
        with accelerator.main_process_first():
            aux = [(*models.encode_items(parts, splits[name], device, source=base),
                    encode(splits[name]) if encode else None) for name in ("member_aux", "nonmember_aux")]
    gen = torch.Generator().manual_seed(tc.seed)
    start_epoch, log = 0, {k: [] for k in LOG_KEYS}
    if resume and (folder / "checkpoint" / "state.json").exists():
        start_epoch, log = _load_checkpoint(folder, accelerator.unwrap_model(unet), _unwrap(accelerator, text_encoder),
                                            opt, accelerator.scaler, gen, proxy)
    checkpoint_every = checkpoint_every or max(1, tc.epochs // 10)
    resumed_from = start_epoch
    steps_per_epoch = int(np.ceil(n / bs)) if procs == 1 else n // bs   # several processes: full batches only
    started, diverged = time.time(), None
    if dp_run:                                   # DP-SGD: Poisson batches at rate q, sigma from the accountant
        q = bs / n
        sigma = dp.noise_multiplier(tc.dp_epsilon, tc.dp_delta, q, tc.epochs * steps_per_epoch)
        named = [(k, p) for k, p in accelerator.unwrap_model(unet).named_parameters() if p.requires_grad]
    bar = tqdm(range(start_epoch, tc.epochs), desc=f"train {tc.method} (seed {tc.seed})", disable=not progress,
               initial=start_epoch, total=tc.epochs)
    unet.train()
    for epoch in bar:
        perm = torch.randperm(n, generator=gen)
        for s in range(steps_per_epoch):
            idx = perm[s * bs:(s + 1) * bs] if not dp_run else dp.poisson_batch(n, q, gen)
            noise = _local(torch.randn(z0[idx].shape, generator=gen), shard).to(device)   # (B/P, 4, h, w)
            t = _local(torch.randint(0, num_t, (len(idx),), generator=gen), shard).to(device)
            idx = _local(idx, shard)                                     # this process's slice of the batch
            b = len(idx)
            z, c = z0[idx], (cond[idx] if text_encoder is None else text_encoder(ids[idx].to(device))[0])
            if dp_run:
                before = [p.detach().clone() for _, p in named]
                opt.zero_grad()
                l_dp, norm = dp.step_grads(accelerator.unwrap_model(unet), scheduler, named, z, c, t, noise,
                                           tc.dp_clip, sigma, q * n, gen)
                opt.step()
                for key, v in (("loss", l_dp), ("l_ada", l_dp), ("grad_norm", norm),
                               ("dp_update", max(float((p.detach() - b).abs().max()) for (_, p), b in zip(named, before)))):
                    log[key].append(v)
                continue
            if half:        # Algorithm 1 order: a proxy step on a balanced D_aux batch, then the LoRA step
                za, ca, na, ta, member = _aux_rows(aux, half, gen, device, num_t, text_encoder, shard)
            with accelerator.autocast():
                maps = losses.loss_map(unet, scheduler, z, c, t, noise)             # (B, 4, h, w)
                ref = ref_aux = None
                if base_unet is not None:                                # reference maps: one frozen-base forward
                    own = not tc.two_forwards                            # G reads this forward's D_tr maps
                    rows = [(z, c.detach(), t, noise)] * own + ([(za, ca, ta, na)] if half else [])
                    both = _base_map(base_unet, scheduler, *[torch.cat(x) for x in zip(*rows)])
                    ref, ref_aux = (both[:b], both[b:]) if own else (None, both)
                if half:    # 1. proxy step(s): ascend G on D_aux (no gradient into the U-Net)
                    with torch.no_grad():
                        aux_maps = losses.loss_map(unet, scheduler, za, ca, ta, na)  # (2h, 4, h, w)
                    accs = [proxy.update(aux_maps, ta, member, ref_aux)]
                    accs += [_proxy_batch(proxy, unet, base_unet, scheduler, aux, half, gen, device,
                                          text_encoder, shard)
                             for _ in range(tc.k_steps - 1)]
                l_ada, gain = maps.mean(), None                          # 2. LoRA step on the D_tr batch
                if private and tc.two_forwards:                          # official: fresh noise and t for G
                    t2 = _local(torch.randint(0, num_t, (b * procs,), generator=gen), shard).to(device)
                    noise2 = _local(torch.randn((b * procs,) + tuple(z.shape[1:]), generator=gen), shard).to(device)
                    ref2 = _base_map(base_unet, scheduler, z, c, t2, noise2) if base_unet is not None else None
                    gain = proxy.gain(losses.loss_map(unet, scheduler, z, c, t2, noise2), t2, ref2)
                elif private:
                    gain = proxy.gain(maps, t, ref)
                loss = defense.objective(tc.method, l_ada, gain, tc.lam, tc.delta)
            if not torch.isfinite(loss):
                diverged = {"epoch": epoch, "step": len(log["loss"]), "loss": str(loss.item())}
                break
            opt.zero_grad()
            _backward(accelerator, tc, loss, l_ada, gain, a_params, b_params, log)
            opt.step()
            if procs > 1:                                                # log the mean over the processes
                loss, l_ada = accelerator.reduce(torch.stack([loss.detach(), l_ada.detach()]), "mean")
            log["loss"].append(loss.item())
            log["l_ada"].append(l_ada.item())
            if private:
                log["gain"].append(gain.item())
                log["rescale"].append(losses.rescale_factor(gain, tc.lam, tc.delta).item())
                log["proxy_acc"].append(float(np.mean(accs)) if half else None)
            if tc.hessian_every and (len(log["loss"]) - 1) % tc.hessian_every == 0:
                log["hessian"].append([len(log["loss"]) - 1, *_hessian(tc, accelerator.unwrap_model(unet),
                                                                        base_unet, scheduler, proxy, z0, cond,
                                                                        a_params + b_params)])
        if diverged:
            break
        bar.set_postfix(loss=f"{np.mean(log['loss'][-steps_per_epoch:]):.4f}")
        if epoch + 1 in tc.snapshot_epochs and accelerator.is_main_process:
            lora.save(folder / "snapshots" / f"epoch_{epoch + 1:04d}" / "lora", accelerator.unwrap_model(unet),
                      _unwrap(accelerator, text_encoder))
        if (epoch + 1) % checkpoint_every == 0 and epoch + 1 < tc.epochs:
            if accelerator.is_main_process:
                _save_checkpoint(folder, accelerator.unwrap_model(unet), _unwrap(accelerator, text_encoder), opt,
                                 accelerator.scaler, gen, epoch + 1, log, proxy)
            accelerator.wait_for_everyone()
            if interrupt_at_epoch is not None and epoch + 1 >= interrupt_at_epoch:
                raise KeyboardInterrupt(f"interrupted after epoch {epoch + 1} (test hook)")
    unet = accelerator.unwrap_model(unet)
    extra = {}
    if procs > 1:
        extra = {"processes": procs, "proxy_consistent": _same_everywhere(accelerator, proxy.model) if private
                 else None, "lora_consistent": _same_everywhere(accelerator, unet)}
    if accelerator.is_main_process:
        lora.save(folder / "lora", unet, _unwrap(accelerator, text_encoder))
        paths.write_json(folder / "train_log.json", {
            "method": tc.method, "seed": tc.seed, "lam": tc.lam, "epochs": tc.epochs, "steps": len(log["loss"]),
            "n_member": n, "diverged": diverged, "seconds_this_session": time.time() - started,
            "resumed_from_epoch": resumed_from, "mixed_precision": tc.mixed_precision, **extra,
            **({"dp": {"epsilon_target": tc.dp_epsilon, "delta": tc.dp_delta, "clip": tc.dp_clip, "sample_rate": q,
                       "noise_multiplier": sigma, "steps": tc.epochs * steps_per_epoch,
                       "epsilon_spent": dp.spent_epsilon(sigma, tc.dp_delta, q, tc.epochs * steps_per_epoch)}}
               if dp_run else {}),
            **log})
    accelerator.wait_for_everyone()
    return folder


def snapshots(run) -> dict[int, Path]:
    """``{epoch: folder}`` of a run's LoRA snapshots (``snapshot_epochs``) plus its final LoRA at its last epoch;
    every folder holds ``lora/`` and can be passed to ``evaluate.evaluate`` like a run."""
    run = Path(run)
    out = {int(p.name.split("_")[1]): p for p in sorted((run / "snapshots").glob("epoch_*"))}
    out[paths.read_json(run / "train_log.json")["epochs"]] = run
    return out


def _unwrap(accelerator, model):
    return None if model is None else accelerator.unwrap_model(model)


def _same_everywhere(accelerator, model) -> bool:
    """Whether every process holds bit-identical trainable weights (a checksum gathered from all processes)."""
    flat = torch.cat([p.detach().double().flatten() for p in model.parameters() if p.requires_grad])
    sums = accelerator.gather(torch.stack([flat.sum(), (flat * torch.arange(1, len(flat) + 1, dtype=flat.dtype,
                                                                            device=flat.device)).sum()])[None])
    return bool((sums == sums[0]).all())


def _cost(cfg) -> float:
    """Rough relative cost of a run, so that the longest runs start first (U-Net passes per step x epochs)."""
    tc = cfg.train
    per_step = 3 + (tc.method != "lora") * (1 + (tc.proxy_feature == "calibrated")) + 3 * tc.two_forwards \
        + 2 * (tc.method == "mp_lora") + (2.5 * tc.hessian_iters / tc.hessian_every if tc.hessian_every else 0)
    return tc.epochs * per_step


def _train_path(cfg, splits, base, progress) -> str:
    return str(train(cfg, splits, base, progress=progress))


def train_many(cfgs: dict, splits, base, workers: int | None = None, progress: bool = True) -> dict:
    """Train several runs, ``{key: cfg}`` -> ``{key: run folder}``; finished runs come from the cache.

    Independent runs go through ``parallel.side_by_side``: on CPU, one thread per run and up to ``workers`` runs in
    separate processes, the longest first; on a GPU one after another. An interrupted run resumes from its last
    checkpoint. Under ``reproduce --shard I/N`` (``$SMPLORA_SHARD``) only every N-th run, in the order of the run
    hashes, is trained here, and ``runner.ShardComplete`` stops the notebook: machines sharing ``outputs/`` split
    a sweep, and a final call without ``--shard`` finds every run in the cache.
    """
    import os

    from . import runner

    out = {k: run_folder(c, splits, base) for k, c in cfgs.items()}
    distinct = {}                                       # one job per distinct run (equal configs share a folder)
    for k in cfgs:
        distinct.setdefault(out[k], k)
    mine = sorted(distinct.values(), key=lambda k: out[k].name)     # a machine-independent order: the run hashes
    shard = runner.parse_shard(os.environ.get(runner.SHARD_VAR))
    if shard:
        mine = mine[shard[0] - 1::shard[1]]
    todo = sorted((k for k in mine if not (out[k] / "train_log.json").exists()), key=lambda k: -_cost(cfgs[k]))
    inner = progress and (torch.cuda.is_available() or workers == 1)      # per-epoch bars when runs go in turn
    parallel.side_by_side(_train_path, {k: (cfgs[k], splits, base, inner) for k in todo}, workers, progress,
                          desc="training runs")
    if shard:
        raise runner.ShardComplete(f"shard {shard[0]}/{shard[1]} trained {len(todo)} of its {len(mine)} runs "
                                   f"({len(distinct)} in all)")
    return out


def _backward(accelerator, tc, loss, l_ada, gain, a_params, b_params, log) -> None:
    """Gradients of the objective into the LoRA weights, the gradient diagnostics, and the optional stabilisers.

    MP-LoRA's objective is a sum, so its gradient is taken as two backward passes, dL_ada + d(lam G), whose
    separate scales are logged (Fig. 2) at no extra cost (in one process; under several, one backward and no
    per-term scales). Diagnostics read unscaled gradients (fp16 loss scaling
    undone) before clipping (``grad_clip``: max total norm) or normalisation (``grad_normalize``: g / ||g||), the
    two stabilisers of Table 10.
    """
    params, na = a_params + b_params, len(a_params)
    grads = lambda: [p.grad for p in params]                            # noqa: E731
    if tc.method == "mp_lora" and accelerator.num_processes == 1:     # (DDP allows one backward per forward)
        accelerator.backward(l_ada, retain_graph=True)
        ada = [None if g is None else g.detach().clone() for g in grads()]
        accelerator.backward(tc.lam * gain)
        unit = accelerator.scaler.get_scale() if accelerator.scaler is not None else 1.0
        priv = [None if g is None else g - (0 if a is None else a) for g, a in zip(grads(), ada)]
        log["grad_scale_ada"].append(diagnostics.grad_stats(ada[:na], ada[na:])["grad_scale"] / unit)
        log["grad_scale_privacy"].append(diagnostics.grad_stats(priv[:na], priv[na:])["grad_scale"] / unit)
    else:
        accelerator.backward(loss)
    if accelerator.scaler is not None:
        accelerator.unscale_gradients()
    stats = diagnostics.grad_stats(grads()[:na], grads()[na:])
    for k, v in stats.items():
        log[k].append(v)
    if tc.grad_clip:
        torch.nn.utils.clip_grad_norm_(params, tc.grad_clip)
    if tc.grad_normalize and stats["grad_norm"] > 0:
        for p in params:
            if p.grad is not None:
                p.grad.div_(stats["grad_norm"])


HESSIAN_BATCH = 16                      # members in the fixed diagnostic batch of the Hessian (the first ones)


def _hessian(tc, unet, base_unet, scheduler, proxy, z0, cond, params) -> tuple[float, float]:
    """Top Hessian eigenvalue of the objective and its gradient norm, on a fixed diagnostic batch (fixed t, eps).

    The proxy (for the private methods) is the current one, so this is the Hessian of the loss being descended.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel

    gen = torch.Generator().manual_seed(0)
    z, c = z0[:HESSIAN_BATCH], cond[:HESSIAN_BATCH]
    noise = torch.randn(z.shape, generator=gen).to(z.device)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (len(z),), generator=gen).to(z.device)
    with sdpa_kernel(SDPBackend.MATH):                                  # fused attention kernels lack double backward
        maps = losses.loss_map(unet, scheduler, z, c, t, noise)
        ref = _base_map(base_unet, scheduler, z, c, t, noise) if base_unet is not None else None
        gain = proxy.gain(maps, t, ref) if proxy is not None else None
        loss = defense.objective(tc.method, maps.mean(), gain, tc.lam, tc.delta)
        return diagnostics.hessian_top_eigenvalue(loss, params, iters=tc.hessian_iters)
