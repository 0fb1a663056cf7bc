"""Membership scores that query the model in their own way, behind one interface: ``score(model, batch, timesteps,
name)`` (ATTACKS.md; arXiv 2402.11989 companion), and the threshold attack fitted on D_aux (``fit``). Every score is
"higher = more likely a member", one column per timestep. Loss@t reads the attacker's loss maps (``attack``).

Notation: z0 the clean latent, c the caption embedding, eps_hat(z, t, c) the U-Net's noise prediction, abar_t the
cumulative product of the schedule's alphas (``scheduler.alphas_cumprod``), ||v||_p^p / n the per-element mean.

* ``pia``    PIA (Kong et al., ICLR 2024): eps0 = eps_hat(z0, 0, c); z_t = sqrt(abar_t) z0 + sqrt(1 - abar_t) eps0;
             -||eps_hat(z_t, t, c) - eps0||_4^4 / n. Deterministic: no noise is drawn.
* ``pian``   PIAN: as PIA with eps0 rescaled per image as PIA's code does, eps0 * sqrt(2/pi) / mean|eps0| (not
             centred): the mean absolute value of a standard normal.
* ``secmi``  SecMI_stat (Duan et al., ICML 2023; SecMI-LDM): deterministic DDIM inversion of z0 from t = 0 up to t
             in steps of ``stride`` (the original's k = 10), z~_t; one deterministic DDIM step *up* to t + stride and
             back *down* to t, z^_t; -||z~_t - z^_t||^2 / n.
* ``sima``   SimA (2025): -||eps_hat(z0, t, c)||_4^4 / n, the noise predicted on the *clean* latent at small t.

The deterministic DDIM step between timesteps a -> b (either direction) is
    z_b = sqrt(abar_b) * (z_a - sqrt(1 - abar_a) e) / sqrt(abar_a) + sqrt(1 - abar_b) * e,   e = eps_hat(z_a, a, c),
with abar = 1 at the clean end (t = -1 here). ``fit`` chooses the timestep *and the direction* on D_aux (the
column whose AUC is furthest from 0.5, its sign flipped when below 0.5: a reversed signal is still a signal), then
the threshold by balanced accuracy on D_aux; D_te is only scored.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

SCORES = ("pia", "pian", "secmi", "sima")    # the scores of ``score`` (Loss@t reads the loss maps: ``attack``)
SECMI_STRIDE = 10                      # DDIM step of SecMI's inversion and of its step up (the original's k = 10)
CANDIDATES = {"pia": (50, 100, 200, 350), "pian": (50, 100, 200, 350), "secmi": (50, 100, 200),
              "sima": (1, 10, 50, 100)}                # timesteps each score may choose among on D_aux
SCORE_VERSION = 2                      # bump when a score's computation changes (cache key)


def _parts(model):
    """(unet, scheduler) from a pipeline, its ``components`` dict, or a (unet, scheduler) pair."""
    if isinstance(model, tuple):
        return model
    if isinstance(model, dict):
        return model["unet"], model["scheduler"]
    return model.unet, model.scheduler


def _abar(scheduler, t: int, device) -> torch.Tensor:
    return torch.tensor(1.0 if t < 0 else float(scheduler.alphas_cumprod[t]), device=device)


def _eps(unet, z: torch.Tensor, t: int, cond: torch.Tensor) -> torch.Tensor:
    tt = torch.full((len(z),), max(int(t), 0), device=z.device, dtype=torch.long)
    return unet(z, tt, cond).sample.float()


def ddim_step(unet, scheduler, z: torch.Tensor, a: int, b: int, cond: torch.Tensor) -> torch.Tensor:
    """Deterministic DDIM move from timestep ``a`` to ``b`` (up or down); ``a`` or ``b`` = -1 is the clean end."""
    e = _eps(unet, z, a, cond)
    ab_a, ab_b = _abar(scheduler, a, z.device), _abar(scheduler, b, z.device)
    z0_pred = (z - (1 - ab_a).sqrt() * e) / ab_a.sqrt()
    return ab_b.sqrt() * z0_pred + (1 - ab_b).sqrt() * e


def _mean_pow(x: torch.Tensor, p: int) -> torch.Tensor:
    return x.abs().pow(p).flatten(1).mean(1)


@torch.no_grad()
def score(model, batch, timesteps, name: str, stride: int = SECMI_STRIDE, batch_size: int = 256) -> np.ndarray:
    """Membership scores (N, K) of ``batch`` = (latents z0 (N, 4, h, w), caption embeddings (N, T, D)) at each of
    the K ``timesteps``, for one of ``SCORES``; higher = more likely a member."""
    if name not in SCORES:
        raise ValueError(f"score must be one of {list(SCORES)}, got {name!r}")
    unet, scheduler = _parts(model)
    z0_all, cond_all = batch
    n_t = scheduler.config.num_train_timesteps
    timesteps = [int(t) for t in timesteps]
    if any(not 0 <= t < n_t for t in timesteps):
        raise ValueError(f"timesteps must lie in [0, {n_t - 1}], got {timesteps}")
    out = np.zeros((len(z0_all), len(timesteps)))
    for i in range(0, len(z0_all), batch_size):
        z0, cond = z0_all[i:i + batch_size].float(), cond_all[i:i + batch_size]
        if name in ("pia", "pian"):
            cols = _pia(unet, scheduler, z0, cond, timesteps, name == "pian")
        elif name == "sima":
            cols = [-_mean_pow(_eps(unet, z0, t, cond), 4) for t in timesteps]
        else:
            cols = _secmi(unet, scheduler, z0, cond, timesteps, stride)
        out[i:i + len(z0)] = torch.stack(cols, 1).cpu().numpy()
    return out


def _pia(unet, scheduler, z0, cond, timesteps, normalize: bool) -> list:
    eps0 = _eps(unet, z0, 0, cond)                                   # one query at t = 0, shared by every t
    if normalize:                                                # PIA's code: eps0 / mean|eps0| * sqrt(2 / pi)
        scale = eps0.abs().flatten(1).mean(1).clamp_min(1e-12).view(-1, *[1] * (eps0.dim() - 1))
        eps0 = eps0 / scale * (2 / np.pi) ** 0.5
    cols = []
    for t in timesteps:
        ab = _abar(scheduler, t, z0.device)
        cols.append(-_mean_pow(_eps(unet, ab.sqrt() * z0 + (1 - ab).sqrt() * eps0, t, cond) - eps0, 4))
    return cols


def _secmi(unet, scheduler, z0, cond, timesteps, stride: int) -> list:
    """Invert once from t = 0 along the stride grid of each timestep's residue (t mod stride), keep z~_t at every
    requested t, then one DDIM step up to t + stride and back down to t from each (SecMI's ``ddim_singlestep``)."""
    n_t = scheduler.config.num_train_timesteps
    if any(t + stride >= n_t for t in timesteps):
        raise ValueError(f"SecMI steps up to t + stride: every timestep + {stride} must stay below {n_t}")
    cols = {}
    for r in sorted({t % stride for t in timesteps}):
        want = [t for t in timesteps if t % stride == r]
        grid = list(dict.fromkeys([0] + list(range(r, max(want) + 1, stride))))    # 0, (r,) r + stride, ..., max t
        z, states = z0, {0: z0}
        for a, b in zip(grid, grid[1:]):
            z = ddim_step(unet, scheduler, z, a, b, cond)
            states[b] = z                                            # z~_b
        for t in want:
            z_t = states[t]
            back = ddim_step(unet, scheduler, ddim_step(unet, scheduler, z_t, t, t + stride, cond), t + stride, t, cond)
            cols[t] = -_mean_pow(z_t - back, 2)
    return [cols[t] for t in timesteps]


def best_threshold(scores_member: np.ndarray, scores_nonmember: np.ndarray) -> float:
    """The threshold maximising balanced accuracy of ``score >= threshold`` (fit on D_aux)."""
    s = np.concatenate([scores_member, scores_nonmember])
    cands = np.unique(s)
    accs = [0.5 * ((scores_member >= c).mean() + (scores_nonmember < c).mean()) for c in cands]
    return float(cands[int(np.argmax(accs))])


@dataclass
class Threshold:
    """A fitted threshold attack: the timestep column and its direction (``sign``) chosen on D_aux, and the
    balanced-accuracy threshold of the signed score."""
    attack: str
    column: int
    timestep: int
    threshold: float
    aux_auc: dict
    sign: int = 1

    def score(self, scores: np.ndarray) -> np.ndarray:
        """(N, K) scores -> (N,) the chosen column, in the chosen direction (higher = member)."""
        return self.sign * np.asarray(scores)[:, self.column]

    def knobs(self) -> dict:
        """What was chosen on D_aux."""
        return {"timestep": self.timestep, "sign": self.sign, "threshold": self.threshold, "aux_auc_by_t": self.aux_auc}


def fit(attack: str, timesteps, aux_member: np.ndarray, aux_nonmember: np.ndarray) -> Threshold:
    """Choose the timestep and the direction on D_aux: the column whose AUC is furthest from 0.5, negated when its
    AUC is below 0.5 (members scoring *lower* is as much a signal as higher); then the threshold of
    ``sign * score >= threshold`` by balanced accuracy on D_aux (``best_threshold``). Nothing of D_te is read."""
    y = np.r_[np.ones(len(aux_member)), np.zeros(len(aux_nonmember))]
    aucs = {int(t): float(roc_auc_score(y, np.r_[aux_member[:, k], aux_nonmember[:, k]]))
            for k, t in enumerate(timesteps)}
    k = int(np.argmax([abs(a - 0.5) for a in aucs.values()]))
    sign = 1 if list(aucs.values())[k] >= 0.5 else -1
    return Threshold(attack, k, int(list(timesteps)[k]),
                     best_threshold(sign * aux_member[:, k], sign * aux_nonmember[:, k]), aucs, sign)
