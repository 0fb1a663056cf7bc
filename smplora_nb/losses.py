"""The adaptation loss as a per-element map, and the paper's objectives (arXiv 2402.11989, Sections 3-4).

Per-sample adaptation loss (PAPER.md, "Objectives"):

    l_ada(x, y) = || eps - eps_theta(z_t, t, tau(y)) ||^2,   z_t = sqrt(abar_t) E(x) + sqrt(1 - abar_t) eps

Its *unreduced* per-element square (shape (4, h, w) per image) is both what LoRA minimises (its mean) and what
the paper's attack reads (its flattened map), so one U-Net forward serves both.
"""
from __future__ import annotations

import torch


def loss_map(unet, scheduler, z0: torch.Tensor, cond: torch.Tensor, t: torch.Tensor,
             noise: torch.Tensor) -> torch.Tensor:
    """(eps - eps_theta(z_t, t, c))^2 per element: (B, 4, h, w) for latents z0 (B, 4, h, w), t (B,), c (B, T, D)."""
    z_t = scheduler.add_noise(z0, noise, t)                              # (B, 4, h, w)
    pred = unet(z_t, t, cond).sample                                      # (B, 4, h, w)
    return (noise - pred.float()) ** 2


@torch.no_grad()
def loss_maps_at(unet, scheduler, z0: torch.Tensor, cond: torch.Tensor, timesteps, n_draws: int = 1,
                 seed: int = 0, batch_size: int = 256) -> torch.Tensor:
    """Loss maps at fixed ``timesteps``, averaged over ``n_draws`` noise draws: (N, K, 4, h, w).

    The noise of draw d at timestep index k comes from a generator seeded with (seed, k, d) over the whole set, so
    the same image gets the same noise for every model scored: differences between models are not noise luck.
    """
    n = len(z0)
    out = torch.zeros((n, len(timesteps)) + tuple(z0.shape[1:]))
    device = z0.device
    for k, t in enumerate(timesteps):
        for d in range(n_draws):
            gen = torch.Generator().manual_seed(seed * 1_000_003 + k * 1009 + d)
            noise = torch.randn(z0.shape, generator=gen).to(device)      # (N, 4, h, w)
            for i in range(0, n, batch_size):
                tt = torch.full((min(batch_size, n - i),), int(t), device=device, dtype=torch.long)
                m = loss_map(unet, scheduler, z0[i:i + batch_size], cond[i:i + batch_size], tt, noise[i:i + batch_size])
                out[i:i + batch_size, k] += m.cpu() / n_draws
    return out


@torch.no_grad()
def loss_maps_random_t(unet, scheduler, z0: torch.Tensor, cond: torch.Tensor, seed: int = 0,
                       batch_size: int = 256) -> torch.Tensor:
    """One loss map per image at its own t ~ U{0..999} and one noise draw, as the paper's attack reads it:
    (N, 1, 4, h, w). Seeded over the whole set, so every model sees the same (t, noise) per image."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + 7)
    t = torch.randint(0, scheduler.config.num_train_timesteps, (len(z0),), generator=gen)        # (N,)
    noise = torch.randn(z0.shape, generator=gen)                                                    # (N, 4, h, w)
    out = [loss_map(unet, scheduler, z0[i:i + batch_size], cond[i:i + batch_size],
                    t[i:i + batch_size].to(z0.device), noise[i:i + batch_size].to(z0.device)).cpu()
           for i in range(0, len(z0), batch_size)]
    return torch.cat(out)[:, None]


# --------------------------------------------------------------------------- objectives (paper Sections 3-4)

def mi_gain(logits: torch.Tensor, member: torch.Tensor) -> torch.Tensor:
    """MI gain of the proxy attack h on a batch (PAPER.md, "Objectives"):

        G(h, D, f) = 1/(2|D_m|) sum_{D_m} log h(l_ada) + 1/(2|D_nm|) sum_{D_nm} log(1 - h(l_ada))   (G <= 0)

    ``logits`` (B, 2) are h's outputs, ``member`` (B,) bool. A class absent from the batch drops out and the other
    term gets the full weight, so on a members-only D_tr batch G = mean log h(l) = -CE(h(l), member), as in the
    official code.
    """
    logp = torch.log_softmax(logits.float(), dim=1)                       # (B, 2)
    parts = [logp[member, 1].mean()] if member.any() else []
    parts += [logp[~member, 0].mean()] if (~member).any() else []
    return torch.stack(parts).mean()


def mp_lora_loss(l_ada: torch.Tensor, gain: torch.Tensor, lam: float) -> torch.Tensor:
    """MP-LoRA (min-max): L_PL = L_ada + lam * G  (official code: L_ada - lam * CE(h(l(x_tr)), member)).

    Minimising over LoRA pushes G down, i.e. makes members look like non-members to h; the gradient of the privacy
    term is not scaled by L_ada, which is what makes the optimisation unstable (paper, Prop. 1: L1 = 0).
    """
    return l_ada + lam * gain


def smp_lora_loss(l_ada: torch.Tensor, gain: torch.Tensor, lam: float, delta: float = 1e-5) -> torch.Tensor:
    """SMP-LoRA: L_SPL = L_ada / (1 - lam * G + delta)  (official code: L_ada / (1 + lam * CE + delta)).

    dL/dtheta = dL_ada/dtheta / (1 - lam*G + delta) + L_ada * lam * dG/dtheta / (1 - lam*G + delta)^2: the privacy
    gradient is scaled by L_ada itself, and the factor 1 / (1 - lam*G + delta) (``rescale_factor``) shrinks steps
    when the proxy is confident (paper, Prop. 2 and Table 3).
    """
    return l_ada / (1 - lam * gain + delta)


def rescale_factor(gain: torch.Tensor, lam: float, delta: float = 1e-5) -> torch.Tensor:
    """SMP-LoRA's adaptive rescaling 1 / (1 - lam * G + delta), in (0, 1] up to delta (paper, Table 3)."""
    return 1.0 / (1 - lam * gain + delta)
