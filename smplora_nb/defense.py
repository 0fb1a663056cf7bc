"""MP-LoRA and SMP-LoRA: the proxy attack trained inside the loop (arXiv 2402.11989, Algorithm 1).

Per LoRA step, with a proxy attack h (the same MLP as the evaluation attack, ``attack.LossMapMLP``):

1. ``k_steps`` proxy updates on balanced batches of member_aux and nonmember_aux (loss maps without gradient into
   the U-Net): maximise G, i.e. minimise the cross-entropy (Adam, lr ``proxy_lr``, weight decay
   ``proxy_weight_decay``). The first batch rides in the LoRA step's own U-Net forward (``train.py``).
2. LoRA update on a D_tr batch: L = L_ada + lam * G (``mp_lora``) or L_ada / (1 - lam * G + delta) (``smp_lora``),
   where G = mean log h(l) over the (all-member) batch and l is the loss map of the *same* forward that gives
   L_ada (one forward; the official code draws fresh noise and t for a second forward, kept as ``two_forwards``).
   Gradients flow through l into the LoRA weights; h is held fixed.

(The official code runs step 2 before step 1; the paper's Algorithm 1 runs them in this order.)

The proxy's feature is the flattened log loss map of one draw **plus a sinusoidal embedding of its timestep**, and
with ``proxy_feature="calibrated"`` (the ``tiny`` default) the log map minus the frozen base model's log map at the
same t and noise. A raw map at a random t is mostly noise at the tiny scale (the paper's exact feature reads at
chance there, notebook 02), and a proxy at chance cannot defend. Knowing t and the public base model is within the
paper's white-box threat model (the attacker computes the adapted model's loss; the base model is public).
"""
from __future__ import annotations

import math

import torch

from . import attack, losses

T_EMBED = 16                                   # sinusoidal timestep-embedding width of the proxy's input


def timestep_embedding(t: torch.Tensor, dim: int = T_EMBED) -> torch.Tensor:
    """sin/cos features of t / 1000 at ``dim // 2`` frequencies: (B,) -> (B, dim)."""
    freqs = torch.exp(torch.arange(dim // 2, device=t.device) * (-math.log(1000.0) / (dim // 2)))
    angles = t.float()[:, None] * freqs[None] * (math.pi / 2)                        # (B, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def proxy_features(maps: torch.Tensor, t: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
    """[log loss map, timestep embedding]: (B, 4, h, w), (B,) -> (B, 4*h*w + T_EMBED).

    With ``ref`` (the frozen base model's loss map at the same t and noise, ``proxy_feature="calibrated"``) the map
    is log l - log l_base: the per-image difficulty and the timestep's scale cancel, leaving what LoRA changed.
    """
    logs = torch.log(maps.float() + 1e-6)
    if ref is not None:
        logs = logs - torch.log(ref.float() + 1e-6)
    return torch.cat([logs.flatten(1), timestep_embedding(t)], dim=1)


class Proxy:
    """The proxy attack h and its optimiser (paper: Adam lr 1e-5, weight decay 1e-4)."""

    def __init__(self, map_dim: int, lr: float, weight_decay: float, device="cpu"):
        self.model = attack.LossMapMLP(map_dim + T_EMBED).to(device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr, weight_decay=weight_decay)
        self.net = self.model                                            # what ``update`` trains through

    def distribute(self, device) -> None:
        """Several processes: train through DistributedDataParallel, which starts every process from rank 0's
        weights and averages the proxy's gradients, so all processes keep the same proxy."""
        ids = [device.index] if torch.device(device).type == "cuda" else None
        self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)

    def gain(self, maps: torch.Tensor, t: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
        """G on an all-member D_tr batch, differentiable in ``maps`` only (h is held fixed). The proxy runs in
        fp32 even under mixed precision (its inputs are fp32 loss maps)."""
        self.model.eval()                                                # no dropout noise in the LoRA objective
        self.model.requires_grad_(False)
        with torch.autocast(maps.device.type, enabled=False):
            logits = self.model(proxy_features(maps, t, ref))            # (B, 2)
        self.model.requires_grad_(True)
        return losses.mi_gain(logits, torch.ones(len(maps), dtype=torch.bool, device=maps.device))

    def update(self, maps: torch.Tensor, t: torch.Tensor, member: torch.Tensor, ref: torch.Tensor | None = None) -> float:
        """One ascent step on G (= descent on the cross-entropy) on a balanced batch; returns h's accuracy on it."""
        self.model.train()
        with torch.autocast(maps.device.type, enabled=False):
            logits = self.net(proxy_features(maps.detach(), t, ref))     # (B, 2)
        loss = -losses.mi_gain(logits, member)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return (logits.argmax(1) == member.long()).float().mean().item()


def objective(method: str, l_ada: torch.Tensor, gain: torch.Tensor | None, lam: float, delta: float) -> torch.Tensor:
    """The training loss of ``method``: L_ada (lora), L_ada + lam G (mp_lora), L_ada / (1 - lam G + delta) (smp_lora)."""
    if method == "lora":
        return l_ada
    if method == "mp_lora":
        return losses.mp_lora_loss(l_ada, gain, lam)
    if method == "smp_lora":
        return losses.smp_lora_loss(l_ada, gain, lam, delta)
    raise ValueError(f"method must be 'lora', 'mp_lora' or 'smp_lora', got {method!r}")
