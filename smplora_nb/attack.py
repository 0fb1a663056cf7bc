"""Membership-inference attacks on the adaptation loss (PAPER.md "Attack"; ATTACKS.md) - arXiv 2402.11989.

Threat model (white box, as in the paper): the attacker can compute the adaptation loss of an (image, caption)
pair on the adapted model, and knows D_aux = member_aux + nonmember_aux. Every free knob is fitted on D_aux only;
D_te is touched once, to report.

The attacker's computation, the same for every model it attacks: loss maps (eps - eps_theta(z_t, t, c))^2 at the
fixed timesteps ``TIMESTEPS``, each averaged over ``N_DRAWS`` seeded noise draws (``losses.loss_maps_at``), and,
as the paper reads them, one map per image at its own random t with one draw (``losses.loss_maps_random_t``).

* ``loss_map_mlp`` - the paper's h': MLP [512, 256, 2], ReLU, dropout 0.5, on the flattened log loss maps at the
  fixed timesteps, Adam lr 1e-3. Trained on D_aux; its checkpoint (epoch) is chosen by accuracy on a held-out part
  of D_aux (the paper chose it on D_te, which overstates leakage). Decision rule: argmax, i.e. P(member) >= 0.5.
* ``loss_map_mlp_paper`` - the same MLP exactly as the paper's official recipe: the *raw* flattened loss map (no log,
  no standardisation) of one draw at a random t ~ U{0..999}, balanced batches of 1 member + 1 non-member, 100
  epochs, Adam lr 1e-5, weight decay 1e-4 (about 7,500 steps here). Its learning curve (loss on its D_aux training
  part, accuracy on the held-out part, per epoch) is kept, so "it reads at chance" is shown, not assumed.
* ``loss_map_mlp_ref`` - the reference (base-calibrated) loss-map MLP: as ``loss_map_mlp`` on log l - log l_base,
  l_base the public base model's maps at the same t and noise (the adapters switched off): what LoRA changed.
* ``loss_at_t`` - Loss@t (Matsumoto et al. 2023): score = -mean loss at one timestep; t (among ``TIMESTEPS``) by
  AUC on D_aux, threshold by balanced accuracy on D_aux.
Scores are "higher = more likely a member".
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

TIMESTEPS = (50, 100, 200, 400)       # fixed probing timesteps (of 1000)
N_DRAWS = 4                           # noise draws averaged per timestep
ATTACKS = ("loss_map_mlp", "loss_at_t", "loss_map_mlp_paper", "loss_map_mlp_ref")


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
    norm = lambda x: (x - mean) / std                                    # noqa: E731
    x_val = norm(torch.cat([xm[vm], xn[vn]]))
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
            x = norm(torch.cat([xm[pm[i:i + half]], xn[pn[i:i + half]]]))
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


def best_threshold(scores_member: np.ndarray, scores_nonmember: np.ndarray) -> float:
    """The threshold maximising balanced accuracy of ``score >= threshold`` (fit on D_aux)."""
    s = np.concatenate([scores_member, scores_nonmember])
    cands = np.unique(s)
    accs = [0.5 * ((scores_member >= c).mean() + (scores_nonmember < c).mean()) for c in cands]
    return float(cands[int(np.argmax(accs))])


@dataclass
class LossAtT:
    t_index: int
    timestep: int
    threshold: float
    aux_auc: dict
    sign: int = 1

    def score(self, maps: torch.Tensor) -> np.ndarray:
        """-mean loss at the chosen timestep, in the direction chosen on D_aux: (N, K, 4, h, w) -> (N,)."""
        return -self.sign * maps[:, self.t_index].flatten(1).mean(1).numpy()


def fit_loss_at_t(maps_member: torch.Tensor, maps_nonmember: torch.Tensor, timesteps=TIMESTEPS) -> LossAtT:
    """Loss@t: choose t and the direction on D_aux, then the threshold by balanced accuracy on D_aux (``scores.fit``)."""
    from . import scores

    per_t = lambda maps: -maps.flatten(2).mean(2).numpy()               # noqa: E731  (N, K) scores
    fitted = scores.fit("loss_at_t", timesteps, per_t(maps_member), per_t(maps_nonmember))
    return LossAtT(fitted.column, fitted.timestep, fitted.threshold, fitted.aux_auc, fitted.sign)


def probe(parts, splits, noise_seed: int = 0, source=None) -> dict[str, dict[str, torch.Tensor]]:
    """The attacker's loss maps of every private set on one model, with fixed noise seeds:
    ``{"fixed_t": {set: (N, K, 4, h, w)}, "random_t": {set: (N, 1, 4, h, w)}}``. ``source`` (the base model's
    id) lets ``models.encode_items`` reuse cached latents."""
    from . import losses, models, sets

    out = {"fixed_t": {}, "random_t": {}}
    unet, sched = parts["unet"], parts["scheduler"]
    for name in sets.PRIVATE:
        z0, cond = models.encode_items(parts, splits[name], unet.device, source=source)
        out["fixed_t"][name] = losses.loss_maps_at(unet, sched, z0, cond, TIMESTEPS, N_DRAWS, noise_seed)
        out["random_t"][name] = losses.loss_maps_random_t(unet, sched, z0, cond, noise_seed)
    return out


def mean_loss(maps: torch.Tensor) -> np.ndarray:
    """Per-image mean of loss maps (N, ...) -> (N,)."""
    return maps.flatten(1).mean(1).numpy()


PAPER_RECIPE = dict(epochs=100, lr=1e-5, batch_size=2, weight_decay=1e-4, standardize=False)   # official h'


def audit(maps: dict, seed: int = 0, mlp_epochs: int = 100, mlp_lr: float = 1e-3, base_maps: dict | None = None) -> dict:
    """Fit every attack on D_aux, evaluate once on D_te; per attack: metrics, D_te scores and the fitted knobs.
    ``base_maps`` (the base model's maps at the same t and noise) feed the reference MLP; None: the model is the
    base itself, whose calibrated maps are all zero."""
    from . import metrics

    fixed, rand = maps["fixed_t"], maps["random_t"]
    ref = (base_maps or maps)["fixed_t"]
    feats = {"loss_map_mlp": {k: map_features(v) for k, v in fixed.items()},
             "loss_map_mlp_paper": {k: v.float().flatten(1) for k, v in rand.items()},      # the raw map
             "loss_map_mlp_ref": {k: map_features(v, ref[k]) for k, v in fixed.items()}}
    recipe = {"loss_map_mlp": dict(epochs=mlp_epochs, lr=mlp_lr), "loss_map_mlp_ref": dict(epochs=mlp_epochs, lr=mlp_lr),
              "loss_map_mlp_paper": PAPER_RECIPE}
    out = {}
    for name, x in feats.items():
        mlp = fit_mlp(x["member_aux"], x["nonmember_aux"], seed=seed, **recipe[name])
        knobs = {"chosen_epoch": mlp.chosen_epoch, "val_acc": mlp.history["val_acc"][mlp.chosen_epoch]}
        if name == "loss_map_mlp_paper":
            knobs["history"] = mlp.history                               # its learning curve (notebook 02)
        out[name] = _record(metrics, mlp, x["member_te"], x["nonmember_te"], knobs)
    lat = fit_loss_at_t(fixed["member_aux"], fixed["nonmember_aux"])
    out["loss_at_t"] = _record(metrics, lat, fixed["member_te"], fixed["nonmember_te"],
                               {"timestep": lat.timestep, "sign": lat.sign, "threshold": lat.threshold,
                                "aux_auc_by_t": lat.aux_auc})
    return {name: out[name] for name in ATTACKS}


def _record(metrics, att, x_member, x_nonmember, knobs: dict) -> dict:
    sm, sn = att.score(x_member), att.score(x_nonmember)
    return {**metrics.membership(sm, sn, att.threshold), "chosen_on_aux": knobs,
            "scores_member": sm.tolist(), "scores_nonmember": sn.tolist()}
