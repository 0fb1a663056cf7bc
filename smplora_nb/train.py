"""The one training loop for ``lora``, ``mp_lora`` and ``smp_lora`` (smplora_nb, arXiv 2402.11989 companion).

Per step, for a batch (x, y) of members with cached latents z0 = E(x) and caption embeddings tau(y):

    t ~ U{0..999},  eps ~ N(0, I),  L_ada = mean over batch and elements of (eps - eps_theta(z_t, t, tau(y)))^2

and only the LoRA matrices A, B are updated (AdamW, lr ``cfg.train.lr``); the private methods add the proxy attack
and their objectives from ``defense``, and every step logs the diagnostics of ``diagnostics``. Runs are cached under
``outputs/cache/runs/<hash of config, split and base>/``; checkpoints (LoRA weights, optimizer, RNG state) are written
every ``checkpoint_every`` epochs, and ``resume=True`` continues an interrupted run to the same final weights on CPU.
Device and precision come from accelerate (CPU here, or one GPU); the loop runs in one process: sharding the data
over several ``accelerate launch`` processes is not implemented yet.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from . import defense, diagnostics, losses, lora, models, paths

OBJECTIVE_VERSION = 2                 # bump when the training objective's code changes (cache key)
LOG_KEYS = ("loss", "l_ada", "gain", "grad_norm", "grad_scale", "grad_scale_ada", "grad_scale_privacy", "rescale",
            "proxy_acc", "hessian")


def run_key(cfg, splits, base) -> str:
    """Hash of everything that changes a run: training config, data config, base model, member images+captions."""
    members = [(it.sha256, it.caption) for it in splits["member_aux"] + splits["member_te"]]
    base_id = Path(str(base)).name if Path(str(base)).parent == paths.cache_dir("base") else str(base)
    return paths.config_hash({"train": vars(cfg.train), "data": vars(cfg.data), "base": base_id,
                              "members": members, "objective": OBJECTIVE_VERSION})


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


def _base_map(unet, scheduler, z0, cond, t, noise) -> torch.Tensor:
    """The frozen base model's loss map at the same (t, noise): LoRA adapters switched off, no gradient."""
    with torch.no_grad():
        unet.disable_adapters()
        try:
            return losses.loss_map(unet, scheduler, z0, cond, t, noise)
        finally:
            unet.enable_adapters()


def _proxy_batch(proxy, unet, scheduler, aux_m, aux_n, half: int, gen, device, calibrated: bool) -> float:
    """One proxy update on ``half`` member_aux + ``half`` nonmember_aux loss maps (no gradient into the U-Net)."""
    im = torch.randint(0, len(aux_m[0]), (half,), generator=gen)
    inn = torch.randint(0, len(aux_n[0]), (half,), generator=gen)
    z0 = torch.cat([aux_m[0][im], aux_n[0][inn]])                                    # (2h, 4, h, w)
    cond = torch.cat([aux_m[1][im], aux_n[1][inn]])
    noise = torch.randn(z0.shape, generator=gen).to(device)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (len(z0),), generator=gen).to(device)
    with torch.no_grad():
        maps = losses.loss_map(unet, scheduler, z0, cond, t, noise)                  # (2h, 4, h, w)
    member = torch.arange(len(z0), device=device) < half
    ref = _base_map(unet, scheduler, z0, cond, t, noise) if calibrated else None
    return proxy.update(maps, t, member, ref)


def train(cfg, splits, base, resume: bool = True, checkpoint_every: int = 50, progress: bool = True,
          interrupt_at_epoch: int | None = None) -> Path:
    """Adapt the base model on D_tr = member_aux + member_te with ``cfg.train.method``; return the run folder.

    ``lora`` minimises L_ada; ``mp_lora`` and ``smp_lora`` add the proxy attack of ``defense`` (see there). The
    folder holds ``lora/pytorch_lora_weights.safetensors`` (diffusers format) and ``train_log.json`` with per-step
    diagnostics. A finished run is returned from the cache; an unfinished one resumes from its last checkpoint when
    ``resume`` is true. A non-finite loss stops the run cleanly: the last finite weights are saved and the log says
    ``diverged``. ``interrupt_at_epoch`` raises ``KeyboardInterrupt`` after that epoch's checkpoint (tests).
    """
    from accelerate import Accelerator

    tc = cfg.train
    folder = paths.cache_dir("runs") / run_key(cfg, splits, base)
    if (folder / "train_log.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator(mixed_precision=tc.mixed_precision, cpu=not torch.cuda.is_available())
    device = accelerator.device
    parts = models.load_pipeline(base, device=device).components
    members = splits["member_aux"] + splits["member_te"]
    z0, cond = models.encode_items(parts, members, device)                      # (N, 4, h, w), (N, T, D)
    unet, scheduler = parts["unet"].to(device), parts["scheduler"]
    groups = [{"params": lora.attach(unet, tc.lora_rank, tc.lora_alpha, lora.TARGETS[tc.lora_targets], tc.seed),
               "lr": tc.lr}]
    a_params, b_params = lora.split_ab(unet)
    text_encoder = None
    if tc.text_encoder_lr > 0:                                           # official code: text-encoder LoRA too
        text_encoder = parts["text_encoder"].to(device)
        groups.append({"params": lora.attach(text_encoder, tc.lora_rank, tc.lora_alpha, lora.TEXT_TARGETS,
                                             seed=tc.seed), "lr": tc.text_encoder_lr})
        ids = parts["tokenizer"]([it.caption for it in members], padding="max_length", truncation=True,
                                 max_length=parts["tokenizer"].model_max_length, return_tensors="pt").input_ids
    for g in groups:
        for p in g["params"]:
            p.data = p.data.float()                                      # LoRA stays fp32 under mixed precision
    opt = torch.optim.AdamW(groups)
    unet, opt = accelerator.prepare(unet, opt)
    private, calibrated = tc.method != "lora", tc.proxy_feature == "calibrated"
    proxy = defense.Proxy(z0[0].numel(), tc.proxy_lr, tc.proxy_weight_decay, device) if private else None
    if private:
        aux_m = models.encode_items(parts, splits["member_aux"], device)
        aux_n = models.encode_items(parts, splits["nonmember_aux"], device)
    gen = torch.Generator().manual_seed(tc.seed)
    start_epoch, log = 0, {k: [] for k in LOG_KEYS}
    if resume and (folder / "checkpoint" / "state.json").exists():
        start_epoch, log = _load_checkpoint(folder, accelerator.unwrap_model(unet), text_encoder, opt,
                                            accelerator.scaler, gen, proxy)
    n, bs = len(members), min(tc.batch_size, len(members))
    steps_per_epoch = int(np.ceil(n / bs))
    started, diverged = time.time(), None
    bar = tqdm(range(start_epoch, tc.epochs), desc=f"train {tc.method} (seed {tc.seed})", disable=not progress,
               initial=start_epoch, total=tc.epochs)
    unet.train()
    for epoch in bar:
        perm = torch.randperm(n, generator=gen)
        for s in range(steps_per_epoch):
            idx = perm[s * bs:(s + 1) * bs]
            noise = torch.randn(z0[idx].shape, generator=gen).to(device)             # (B, 4, h, w)
            t = torch.randint(0, scheduler.config.num_train_timesteps, (len(idx),), generator=gen).to(device)
            c = cond[idx] if text_encoder is None else text_encoder(ids[idx].to(device))[0]  # (B, T, D)
            with accelerator.autocast():
                maps = losses.loss_map(unet, scheduler, z0[idx], c, t, noise)  # (B, 4, h, w)
                l_ada, gain = maps.mean(), None
                if private and tc.two_forwards:                          # official: fresh noise and t for G
                    t2 = torch.randint(0, scheduler.config.num_train_timesteps, (len(idx),), generator=gen).to(device)
                    noise2 = torch.randn(z0[idx].shape, generator=gen).to(device)
                    ref = _base_map(unet, scheduler, z0[idx], c, t2, noise2) if calibrated else None
                    gain = proxy.gain(losses.loss_map(unet, scheduler, z0[idx], c, t2, noise2), t2, ref)
                elif private:
                    ref = _base_map(unet, scheduler, z0[idx], c, t, noise) if calibrated else None
                    gain = proxy.gain(maps, t, ref)
                loss = defense.objective(tc.method, l_ada, gain, tc.lam, tc.delta)
            if not torch.isfinite(loss):
                diverged = {"epoch": epoch, "step": len(log["loss"]), "loss": str(loss.item())}
                break
            if tc.method == "mp_lora":                                   # Fig. 2: scale of each term's gradient
                log["grad_scale_ada"].append(diagnostics.component_grad_scale(l_ada, a_params, b_params))
                log["grad_scale_privacy"].append(
                    diagnostics.component_grad_scale(tc.lam * gain, a_params, b_params))
            opt.zero_grad()
            accelerator.backward(loss)
            for k, v in diagnostics.grad_stats(a_params, b_params).items():
                log[k].append(v)
            opt.step()
            log["loss"].append(loss.item())
            log["l_ada"].append(l_ada.item())
            if private:
                log["gain"].append(gain.item())
                log["rescale"].append(losses.rescale_factor(gain, tc.lam, tc.delta).item())
                accs = [_proxy_batch(proxy, unet, scheduler, aux_m, aux_n, tc.proxy_batch_size // 2, gen, device,
                                     calibrated) for _ in range(tc.k_steps)]
                log["proxy_acc"].append(float(np.mean(accs)) if accs else None)
            if tc.hessian_every and (len(log["loss"]) - 1) % tc.hessian_every == 0:
                log["hessian"].append([len(log["loss"]) - 1, _hessian(tc, unet, scheduler, proxy, z0, cond, bs,
                                                                      a_params + b_params)])
        if diverged:
            break
        bar.set_postfix(loss=f"{np.mean(log['loss'][-steps_per_epoch:]):.4f}")
        if (epoch + 1) % checkpoint_every == 0 and epoch + 1 < tc.epochs:
            _save_checkpoint(folder, accelerator.unwrap_model(unet), text_encoder, opt, accelerator.scaler, gen,
                             epoch + 1, log, proxy)
            if interrupt_at_epoch is not None and epoch + 1 >= interrupt_at_epoch:
                raise KeyboardInterrupt(f"interrupted after epoch {epoch + 1} (test hook)")
    unet = accelerator.unwrap_model(unet)
    lora.save(folder / "lora", unet, text_encoder)
    paths.write_json(folder / "train_log.json", {
        "method": tc.method, "seed": tc.seed, "lam": tc.lam, "epochs": tc.epochs, "steps": len(log["loss"]),
        "n_member": n, "diverged": diverged, "seconds_this_session": time.time() - started,
        **log})
    return folder


def _hessian(tc, unet, scheduler, proxy, z0, cond, bs, params) -> float:
    """Top Hessian eigenvalue of the objective on a fixed diagnostic batch (the first ``bs`` members, fixed t, eps)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    gen = torch.Generator().manual_seed(0)
    z, c = z0[:bs], cond[:bs]
    noise = torch.randn(z.shape, generator=gen).to(z.device)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (len(z),), generator=gen).to(z.device)
    with sdpa_kernel(SDPBackend.MATH):                                  # fused attention kernels lack double backward
        maps = losses.loss_map(unet, scheduler, z, c, t, noise)
        ref = _base_map(unet, scheduler, z, c, t, noise) if tc.proxy_feature == "calibrated" else None
        gain = proxy.gain(maps, t, ref) if proxy is not None else None
        loss = defense.objective(tc.method, maps.mean(), gain, tc.lam, tc.delta)
        return diagnostics.hessian_top_eigenvalue(loss, params)
