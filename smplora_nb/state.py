"""What a training step reads: the run's ``State`` (smplora_nb, arXiv 2402.11989 companion).

``train.setup`` builds it; the loop (``train.loop``), the batches (``batches``), the methods (``methods``) and the
checkpoints (``checkpoints``) read it, so it sits on a floor below all of them and imports only the loss (``losses``)
and the adapters (``lora``). Its ``state_dict`` / ``load_state_dict`` are what a checkpoint saves and restores of
the loop; a method's own state (the proxy and its optimiser) is the method's ``state_dict``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from . import lora, losses


@dataclass
class State:
    """Everything a step reads: the config, accelerate, the models, the optimiser, the generator of every draw
    (batches, noise, t) and the cached inputs of D_tr (``z0``, ``cond``, token ``ids``) and of D_aux (``aux``)."""
    tc: object
    accelerator: object
    unet: torch.nn.Module
    text_encoder: torch.nn.Module | None
    base_unet: torch.nn.Module | None          # frozen copy without adapters (the calibrated feature)
    scheduler: object
    opt: torch.optim.Optimizer
    a_params: list
    params: list                               # LoRA A matrices first, then B (the gradient diagnostics)
    z0: torch.Tensor                           # (N, 4, h, w)
    cond: torch.Tensor                         # (N, T, D)
    ids: torch.Tensor | None                   # (N, T) with a text-encoder LoRA
    aux: list | None                           # [(latents, embeddings, ids)] of member_aux and nonmember_aux
    gen: torch.Generator
    bs: int

    def __post_init__(self):
        self.device = self.accelerator.device
        self.shard = (self.accelerator.process_index, self.accelerator.num_processes)
        self.n, self.num_t = len(self.z0), self.scheduler.config.num_train_timesteps
        procs = self.shard[1]
        self.steps_per_epoch = int(np.ceil(self.n / self.bs)) if procs == 1 else self.n // self.bs  # full batches

    def loss_map(self, b) -> torch.Tensor:
        """The adapted model's loss map of a ``batches.Batch``."""
        return losses.loss_map(self.unet, self.scheduler, b.z0, b.cond, b.t, b.noise)          # (B, 4, h, w)

    def base_map(self, b) -> torch.Tensor:
        """The frozen base model's loss map of a ``batches.Batch`` at the same (t, noise), no gradient."""
        with torch.inference_mode():
            return losses.loss_map(self.base_unet, self.scheduler, b.z0, b.cond, b.t, b.noise).clone()

    def unwrapped(self, name: str):
        model = getattr(self, name)
        return None if model is None else self.accelerator.unwrap_model(model)

    def state_dict(self) -> dict:
        """What the loop's state is between two steps, as the parts of a checkpoint (``checkpoints``): the LoRA
        weights of the U-Net (and of the text encoder), the optimiser, the generator of every draw and torch's global
        one (the proxy's dropout), and, under fp16, the loss scale."""
        out = {"lora": lora.state_dict(self.unwrapped("unet")), "optimizer": self.opt.state_dict(),
               "rng": {"generator": self.gen.get_state(), "torch_global": torch.get_rng_state()}}
        if self.text_encoder is not None:
            out["text_encoder"] = lora.state_dict(self.unwrapped("text_encoder"))
        if self.accelerator.scaler is not None:                          # fp16 loss scale, for exact resumes
            out["scaler"] = self.accelerator.scaler.state_dict()
        return out

    def load_state_dict(self, parts: dict) -> None:
        """Put the parts of ``state_dict`` back (a checkpoint's: other keys are ignored; the loss scale only where
        the checkpoint has one)."""
        if "scaler" in parts:
            self.accelerator.scaler.load_state_dict(parts["scaler"])
        lora.load_state_dict(self.unwrapped("unet"), parts["lora"])
        if "text_encoder" in parts:
            lora.load_state_dict(self.unwrapped("text_encoder"), parts["text_encoder"])
        self.opt.load_state_dict(parts["optimizer"])
        self.gen.set_state(parts["rng"]["generator"])
        torch.set_rng_state(parts["rng"]["torch_global"])
