"""The loss-map MLP: the paper's attack model h / h' (PAPER.md "Attack"; arXiv 2402.11989), shared by the evaluation
attacks (``attack``) and the defenses' proxy (``defense``).

MLP [512, 256, 2], ReLU, dropout 0.5, on a flattened loss map. ``fit_mlp`` trains it on D_aux features in balanced
batches and keeps the epoch with the best accuracy on a held-out part of D_aux (the paper chose it on D_te, which
overstates leakage). ``PAPER_RECIPE`` is the official evaluation recipe: raw map, batches of 1 member + 1
non-member, 100 epochs, Adam lr 1e-5, weight decay 1e-4, no standardisation.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

PAPER_RECIPE = dict(epochs=100, lr=1e-5, batch_size=2, weight_decay=1e-4, standardize=False)   # official h'


class LossMapMLP(nn.Module):
    """h(l) = softmax(W3 relu(W2 relu(W1 l))): the paper's proxy / evaluation attack, [512, 256, 2], dropout 0.5."""

    def __init__(self, in_dim: int, dropout: float = 0.5):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(in_dim, 512), nn.ReLU(), nn.Dropout(dropout),
                                 nn.Linear(512, 256), nn.ReLU(), nn.Dropout(dropout), nn.Linear(256, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:                  # (B, in_dim) -> (B, 2) logits
        return self.net(x)


def map_features(maps: torch.Tensor, ref: torch.Tensor | None = None) -> torch.Tensor:
    """Flattened log loss maps: (N, K, 4, h, w) -> (N, K*4*h*w). The log tames the heavy-tailed squared errors;
    with ``ref`` (the base model's maps at the same t and noise) the calibrated log l - log l_base."""
    logs = torch.log(maps.float() + 1e-6).flatten(1)
    return logs if ref is None else logs - torch.log(ref.float() + 1e-6).flatten(1)


@dataclass
class MLPAttack:
    model: LossMapMLP
    mean: torch.Tensor
    std: torch.Tensor
    chosen_epoch: int
    history: dict = field(default_factory=dict)
    threshold: float = 0.5                                               # argmax decision rule: P(member) >= 0.5

    @torch.no_grad()
    def score(self, x: torch.Tensor) -> np.ndarray:
        """P(member) for each feature row (N, F)."""
        self.model.eval()
        return torch.softmax(self.model((x - self.mean) / self.std), dim=1)[:, 1].numpy()


def _holdout(n: int, frac: float, gen: torch.Generator):
    perm = torch.randperm(n, generator=gen)
    k = max(1, int(round(n * frac)))
    return perm[k:], perm[:k]                                            # train, validation


def fit_mlp(xm: torch.Tensor, xn: torch.Tensor, epochs: int = 100, lr: float = 1e-3, batch_size: int = 32,
            val_frac: float = 0.25, seed: int = 0, weight_decay: float = 0.0, standardize: bool = True) -> MLPAttack:
    """Train the evaluation attack h' on D_aux features (members ``xm``, non-members ``xn``, (N, F)) in balanced
    batches of ``batch_size`` / 2 each; keep the epoch with the best accuracy on a held-out part of D_aux.
    ``standardize`` scales every feature by its D_aux training mean and sd (the paper's recipe does not)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    tm, vm = _holdout(len(xm), val_frac, gen)
    tn, vn = _holdout(len(xn), val_frac, gen)
    x_tr = torch.cat([xm[tm], xn[tn]])
    mean, std = (x_tr.mean(0), x_tr.std(0) + 1e-6) if standardize else (torch.zeros(1), torch.ones(1))
    x_val = (torch.cat([xm[vm], xn[vn]]) - mean) / std
    y_val = torch.cat([torch.ones(len(vm)), torch.zeros(len(vn))]).long()
    model = LossMapMLP(xm.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    best, best_state, hist = -1.0, None, {"train_loss": [], "train_acc": [], "val_acc": []}
    half = max(1, batch_size // 2)
    for epoch in range(epochs):
        model.train()
        pm, pn = tm[torch.randperm(len(tm), generator=gen)], tn[torch.randperm(len(tn), generator=gen)]
        losses, hits = [], []
        for i in range(0, min(len(pm), len(pn)), half):                  # balanced batches
            x = (torch.cat([xm[pm[i:i + half]], xn[pn[i:i + half]]]) - mean) / std
            y = torch.cat([torch.ones(len(pm[i:i + half])), torch.zeros(len(pn[i:i + half]))]).long()
            logits = model(x)
            loss = nn.functional.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
            hits.append((logits.argmax(1) == y).float().mean().item())
        model.eval()
        with torch.no_grad():
            acc = (model(x_val).argmax(1) == y_val).float().mean().item()
        hist["train_loss"].append(float(np.mean(losses)))
        hist["train_acc"].append(float(np.mean(hits)))
        hist["val_acc"].append(acc)
        if acc > best:
            best, best_state, chosen = acc, copy.deepcopy(model.state_dict()), epoch
    model.load_state_dict(best_state)
    model.eval()
    return MLPAttack(model, mean, std, chosen, hist)
