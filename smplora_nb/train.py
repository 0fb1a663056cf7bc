"""The one training loop: LoRA adaptation of the U-Net on D_tr (smplora_nb, arXiv 2402.11989 companion).

Per step, for a batch (x, y) of members with cached latents z0 = E(x) and caption embeddings tau(y):

    t ~ U{0..999},  eps ~ N(0, I),  L_ada = mean over batch and elements of (eps - eps_theta(z_t, t, tau(y)))^2

and only the LoRA matrices A, B are updated (AdamW, lr ``cfg.train.lr``). Runs are cached under
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

from . import losses, lora, models, paths

OBJECTIVE_VERSION = 1                 # bump when the training objective's code changes (cache key)


def run_key(cfg, splits, base) -> str:
    """Hash of everything that changes a run: training config, data config, base model, member images+captions."""
    members = [(it.sha256, it.caption) for it in splits["member_aux"] + splits["member_te"]]
    base_id = Path(str(base)).name if Path(str(base)).parent == paths.cache_dir("base") else str(base)
    return paths.config_hash({"train": vars(cfg.train), "data": vars(cfg.data), "base": base_id,
                              "members": members, "objective": OBJECTIVE_VERSION})


def _rng_state(gen: torch.Generator) -> dict:
    return {"generator": gen.get_state()}


def _save_checkpoint(folder: Path, unet, text_encoder, opt, scaler, gen, epoch: int, step_losses: list) -> None:
    with paths.atomic_dir(folder / "checkpoint") as tmp:
        if scaler is not None:                                           # fp16 loss scale, for exact resumes
            torch.save(scaler.state_dict(), tmp / "scaler.pt")
        save_file(lora.state_dict(unet), str(tmp / "lora.safetensors"))
        if text_encoder is not None:
            save_file(lora.state_dict(text_encoder), str(tmp / "text_encoder_lora.safetensors"))
        torch.save(opt.state_dict(), tmp / "optimizer.pt")
        save_file(_rng_state(gen), str(tmp / "rng.safetensors"))
        paths.write_json(tmp / "state.json", {"epoch": epoch, "step_losses": step_losses})


def _load_checkpoint(folder: Path, unet, text_encoder, opt, scaler, gen) -> tuple[int, list]:
    ck = folder / "checkpoint"
    if scaler is not None and (ck / "scaler.pt").exists():
        scaler.load_state_dict(torch.load(ck / "scaler.pt", weights_only=True))
    lora.load_state_dict(unet, load_file(str(ck / "lora.safetensors")))
    if text_encoder is not None:
        lora.load_state_dict(text_encoder, load_file(str(ck / "text_encoder_lora.safetensors")))
    opt.load_state_dict(torch.load(ck / "optimizer.pt", weights_only=True))
    gen.set_state(load_file(str(ck / "rng.safetensors"))["generator"])
    state = paths.read_json(ck / "state.json")
    return state["epoch"], state["step_losses"]


def train(cfg, splits, base, resume: bool = True, checkpoint_every: int = 50, progress: bool = True,
          interrupt_at_epoch: int | None = None) -> Path:
    """Adapt the base model with LoRA on D_tr = member_aux + member_te; return the run folder.

    The folder holds ``lora/pytorch_lora_weights.safetensors`` (diffusers format) and ``train_log.json``. A finished
    run is returned from the cache; an unfinished one resumes from its last checkpoint when ``resume`` is true.
    ``interrupt_at_epoch`` raises ``KeyboardInterrupt`` after that epoch's checkpoint (used by the tests).
    """
    from accelerate import Accelerator

    tc = cfg.train
    if tc.method != "lora":
        raise NotImplementedError(f"method {tc.method!r} is not implemented yet; only 'lora' trains")
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
    gen = torch.Generator().manual_seed(tc.seed)
    start_epoch, step_losses = 0, []
    if resume and (folder / "checkpoint" / "state.json").exists():
        start_epoch, step_losses = _load_checkpoint(folder, accelerator.unwrap_model(unet), text_encoder, opt,
                                                     accelerator.scaler, gen)
    n, bs = len(members), min(tc.batch_size, len(members))
    steps_per_epoch = int(np.ceil(n / bs))
    started = time.time()
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
                loss = maps.mean()
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite loss at epoch {epoch}")
            opt.zero_grad()
            accelerator.backward(loss)
            opt.step()
            step_losses.append(loss.item())
        bar.set_postfix(loss=f"{np.mean(step_losses[-steps_per_epoch:]):.4f}")
        if (epoch + 1) % checkpoint_every == 0 and epoch + 1 < tc.epochs:
            _save_checkpoint(folder, accelerator.unwrap_model(unet), text_encoder, opt, accelerator.scaler, gen,
                             epoch + 1, step_losses)
            if interrupt_at_epoch is not None and epoch + 1 >= interrupt_at_epoch:
                raise KeyboardInterrupt(f"interrupted after epoch {epoch + 1} (test hook)")
    unet = accelerator.unwrap_model(unet)
    lora.save(folder / "lora", unet, text_encoder)
    paths.write_json(folder / "train_log.json", {
        "method": tc.method, "seed": tc.seed, "epochs": tc.epochs, "steps": len(step_losses),
        "n_member": n, "seconds_this_session": time.time() - started, "step_losses": step_losses})
    return folder
