"""The training loop (smplora_nb, arXiv 2402.11989 companion): batches in, ``method.step`` per batch, logs out.

Per step, for a batch (x, y) of members with cached latents z0 = E(x) and caption embeddings tau(y):

    t ~ U{0..999},  eps ~ N(0, I),  L_ada = mean over batch and elements of (eps - eps_theta(z_t, t, tau(y)))^2

and only the LoRA matrices A, B are updated (AdamW, lr ``lr``). What a method adds to that (the proxy attack of
MP-/SMP-LoRA, DP-SGD's clipping and noise) is in ``methods``; what a step reads is ``state.State``; the run cache,
resume and snapshots are in ``runs``, which calls ``setup`` and ``loop``, and the checkpoints in ``checkpoints``.

Device and precision come from accelerate. With ``mixed_precision`` "fp16"/"bf16" the frozen U-Net (and text
encoder) weights are held in that dtype and the LoRA weights in fp32 (``cast_training_params``), under autocast;
``gradient_checkpointing`` trades compute for activation memory; attention runs through diffusers' default PyTorch
SDPA processor. Under ``accelerate launch`` the LoRA goes through DistributedDataParallel and every process takes
its slice of each batch (``batches``).
"""
from __future__ import annotations

import copy
import numpy as np
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from tqdm.auto import tqdm

from . import batches, diagnostics, losses, lora, models, sets
from .state import State

LOG_KEYS = ("loss", "l_ada", "gain", "grad_norm", "grad_scale", "grad_scale_ada", "grad_scale_privacy", "rescale",
            "proxy_acc", "hessian", "dp_update")
HESSIAN_BATCH = 16                      # members in the fixed diagnostic batch of the Hessian (the first ones)


def loop(s: State, method, log: dict, start_epoch: int, end_of_epoch, progress: bool = True) -> dict | None:
    """Train from ``start_epoch`` to ``tc.epochs``, appending each step's entries to ``log``; call
    ``end_of_epoch(epoch)`` after every epoch. Returns None, or where a non-finite loss stopped the run."""
    tc = s.tc
    bar = tqdm(range(start_epoch, tc.epochs), desc=f"train {tc.method} (seed {tc.seed})", disable=not progress,
               initial=start_epoch, total=tc.epochs)
    s.unet.train()
    for epoch in bar:
        perm = torch.randperm(s.n, generator=s.gen)
        for i in range(s.steps_per_epoch):
            out = method.step(s, batches.members(s, perm, i, method.poisson))
            if "diverged" in out:
                return {"epoch": epoch, "step": len(log["loss"]), "loss": out["diverged"]}
            for key, value in out.items():
                log[key].append(value)
            step = len(log["loss"]) - 1
            if tc.hessian_every and step % tc.hessian_every == 0:
                log["hessian"].append([step, *hessian(s, method)])
        bar.set_postfix(loss=f"{np.mean(log['loss'][-s.steps_per_epoch:]):.4f}")
        end_of_epoch(epoch + 1)
    return None


def setup(cfg, splits, base, method) -> State:
    """Load the base model, cache D_tr's (and, for a private method, D_aux's) inputs, attach the LoRA adapter(s),
    build the optimiser under accelerate, and let the method prepare itself."""
    from accelerate import Accelerator                         # accelerate, diffusers: heavy, only when training
    from accelerate.state import AcceleratorState
    from diffusers.training_utils import cast_training_params

    tc = cfg.train
    if AcceleratorState._shared_state.get("_mixed_precision", tc.mixed_precision) != tc.mixed_precision:
        AcceleratorState._reset_state()              # runs of different precisions, one after another, in one process
    accelerator = Accelerator(mixed_precision=tc.mixed_precision, cpu=not torch.cuda.is_available())
    device, procs = accelerator.device, accelerator.num_processes
    members = sets.members(splits)
    bs = min(tc.batch_size, len(members))
    half = getattr(method, "half", 0)
    if procs > 1 and (bs % procs or half % procs):
        raise ValueError(f"batch_size ({bs}) and half the proxy_batch_size ({half}) must be multiples of the "
                         f"{procs} processes: each process takes an equal slice of every batch")
    parts = models.load_pipeline(base, device=device).components
    weight_dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(tc.mixed_precision, torch.float32)
    with accelerator.main_process_first():                               # one process fills the latent cache
        z0, cond = models.encode_items(parts, members, device, source=base)     # (N, 4, h, w), (N, T, D)
    unet = parts["unet"].to(device)
    if weight_dtype != torch.float32:                                    # frozen weights in low precision
        unet.to(dtype=weight_dtype)
    if tc.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    calibrated = method.private and tc.proxy_feature == "calibrated"
    base_unet = copy.deepcopy(unet).requires_grad_(False).eval() if calibrated else None
    groups = [{"params": lora.attach(unet, tc.lora_rank, tc.lora_alpha, lora.TARGETS[tc.lora_targets], tc.seed),
               "lr": tc.lr}]
    a_params, b_params = lora.split_ab(unet)
    text_encoder, ids = None, None
    if tc.text_encoder_lr > 0:                                           # official code: text-encoder LoRA too
        text_encoder = parts["text_encoder"].to(device, dtype=weight_dtype)
        if tc.gradient_checkpointing:
            text_encoder.gradient_checkpointing_enable()
        groups.append({"params": lora.attach(text_encoder, tc.lora_rank, tc.lora_alpha, lora.TEXT_TARGETS,
                                             seed=tc.seed), "lr": tc.text_encoder_lr})
        a_te, b_te = lora.split_ab(text_encoder)
        a_params, b_params = a_params + a_te, b_params + b_te
        ids = models.token_ids(parts, members)
    for model in (unet, text_encoder):
        if model is not None:
            cast_training_params(model, dtype=torch.float32)            # LoRA stays fp32 under mixed precision
    opt = torch.optim.AdamW(groups)
    if text_encoder is None:
        unet, opt = accelerator.prepare(unet, opt)
    else:
        unet, text_encoder, opt = accelerator.prepare(unet, text_encoder, opt)
    aux = None
    if method.private:
        with accelerator.main_process_first():
            aux = [(*models.encode_items(parts, splits[name], device, source=base),
                    models.token_ids(parts, splits[name]) if text_encoder is not None else None)
                   for name in ("member_aux", "nonmember_aux")]
    s = State(tc, accelerator, unet, text_encoder, base_unet, parts["scheduler"], opt, a_params, a_params + b_params,
              z0, cond, ids, aux, torch.Generator().manual_seed(tc.seed), bs)
    method.prepare(s)
    return s


def hessian(s: State, method) -> tuple[float, float]:
    """Top Hessian eigenvalue of the method's objective and its gradient norm, w.r.t. every trainable LoRA weight,
    on a fixed diagnostic batch (the first members, fixed t and eps from their own generator).

    The proxy (for the private methods) is the current one, so this is the Hessian of the loss being descended;
    with a text-encoder LoRA the captions are encoded through it, so its weights are in the graph too. It draws
    from no shared generator and takes no optimiser step: the training trajectory is the same with it or without
    it (a test checks the weights bit for bit), so it is not part of the run key.
    """
    gen = torch.Generator().manual_seed(0)
    z = s.z0[:HESSIAN_BATCH]
    noise = torch.randn(z.shape, generator=gen).to(z.device)
    t = torch.randint(0, s.num_t, (len(z),), generator=gen).to(z.device)
    unet, text_encoder = s.unwrapped("unet"), s.unwrapped("text_encoder")
    with sdpa_kernel(SDPBackend.MATH):                                  # fused attention kernels lack double backward
        c = s.cond[:HESSIAN_BATCH] if text_encoder is None else text_encoder(s.ids[:HESSIAN_BATCH].to(s.device))[0]
        b = batches.Batch(z, c, t, noise)
        maps = losses.loss_map(unet, s.scheduler, z, c, t, noise)
        gain = None
        if method.proxy is not None:
            gain = method.proxy.gain(maps, t, s.base_map(b) if s.base_unet is not None else None)
        return diagnostics.hessian_top_eigenvalue(method.objective(maps.mean(), gain), s.params,
                                                  iters=s.tc.hessian_iters)
