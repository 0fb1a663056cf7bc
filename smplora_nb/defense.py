"""The proxy attack of MP-LoRA and SMP-LoRA and its input features (arXiv 2402.11989, Algorithm 1).

The proxy h is the same MLP as the evaluation attack (``mlp.LossMapMLP``). Per LoRA step (``methods``):

1. ``k_steps`` proxy updates on balanced batches of member_aux and nonmember_aux (loss maps without gradient into
   the U-Net): maximise G, i.e. minimise the cross-entropy (Adam, lr ``proxy_lr``, weight decay
   ``proxy_weight_decay``);
2. the LoRA step reads G = mean log h(feature(l)) on the all-member D_tr batch through h held fixed.

The proxy's input, ``proxy_feature``:

* ``"paper"``      the paper's and the official code's input: the raw flattened per-element squared-error map l
                   (4 x 64 x 64 = 16,384 values at 512 px), nothing else. The ``paper`` and ``colab`` profiles.
* ``"log_map"``    log(l + 1e-6) flattened, plus a sinusoidal embedding of the timestep t. The log changes the
                   privacy gradient itself (d log l = dl / l).
* ``"calibrated"`` log l - log l_base plus the timestep embedding, l_base being the frozen public base model's map
                   at the same t and noise: the per-image difficulty and the timestep's scale cancel, leaving what
                   LoRA changed (the ``tiny`` default: a raw map at a random t is mostly noise at the tiny scale,
                   notebook 02, and a proxy at chance cannot defend). Knowing t and the public base model is within
                   the paper's white-box threat model.
"""
from __future__ import annotations

import math

import torch

from . import losses, mlp

T_EMBED = 16                                   # sinusoidal timestep-embedding width of the proxy's input


def timestep_embedding(t: torch.Tensor, dim: int = T_EMBED) -> torch.Tensor:
    """sin/cos features of t / 1000 at ``dim // 2`` frequencies: (B,) -> (B, dim)."""
    freqs = torch.exp(torch.arange(dim // 2, device=t.device) * (-math.log(1000.0) / (dim // 2)))
    angles = t.float()[:, None] * freqs[None] * (math.pi / 2)                        # (B, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


FEATURES = ("paper", "log_map", "calibrated")


def proxy_features(feature: str, maps: torch.Tensor, t: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
    """The proxy's input for a batch of loss maps (B, 4, h, w) at timesteps t (B,), see the module docstring:
    ``"paper"`` (B, 4*h*w); ``"log_map"`` and ``"calibrated"`` (B, 4*h*w + T_EMBED). ``ref`` (the base model's maps
    at the same t and noise) is required by ``"calibrated"`` and refused by the others."""
    if (ref is not None) != (feature == "calibrated"):
        raise ValueError(f"proxy_feature {feature!r} {'needs' if ref is None else 'takes no'} reference maps")
    if feature == "paper":
        return maps.float().flatten(1)
    if feature not in FEATURES:
        raise ValueError(f"proxy_feature must be one of {list(FEATURES)}, got {feature!r}")
    logs = torch.log(maps.float() + 1e-6)
    if ref is not None:
        logs = logs - torch.log(ref.float() + 1e-6)
    return torch.cat([logs.flatten(1), timestep_embedding(t)], dim=1)


class Proxy:
    """The proxy attack h and its optimiser (paper: Adam lr 1e-5, weight decay 1e-4)."""

    def __init__(self, feature: str, map_dim: int, lr: float, weight_decay: float, device="cpu"):
        self.feature = feature
        self.model = mlp.LossMapMLP(map_dim + (0 if feature == "paper" else T_EMBED)).to(device)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr, weight_decay=weight_decay)
        self.net = self.model                                            # what ``update`` trains through

    def state_dict(self) -> dict:
        """The proxy's weights and its optimiser's state, as the parts of a checkpoint (``checkpoints``)."""
        return {"proxy": self.model.state_dict(), "proxy_optimizer": self.opt.state_dict()}

    def load_state_dict(self, parts: dict) -> None:
        self.model.load_state_dict(parts["proxy"])
        self.opt.load_state_dict(parts["proxy_optimizer"])

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
            logits = self.model(proxy_features(self.feature, maps, t, ref))            # (B, 2)
        self.model.requires_grad_(True)
        return losses.mi_gain(logits, torch.ones(len(maps), dtype=torch.bool, device=maps.device))

    def update(self, maps: torch.Tensor, t: torch.Tensor, member: torch.Tensor, ref: torch.Tensor | None = None) -> float:
        """One ascent step on G (= descent on the cross-entropy) on a balanced batch; returns h's accuracy on it."""
        self.model.train()
        with torch.autocast(maps.device.type, enabled=False):
            logits = self.net(proxy_features(self.feature, maps.detach(), t, ref))     # (B, 2)
        loss = -losses.mi_gain(logits, member)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return (logits.argmax(1) == member.long()).float().mean().item()
