"""DP-LoRA: DP-SGD on the LoRA weights only (Abadi et al. 2016), the differential-privacy baseline of notebook 06.

Each step draws a Poisson batch of D_tr (``batches.poisson_batch``) (every member independently with probability q = batch_size / |D_tr|),
computes every member's own gradient g_i of its adaptation loss with respect to the LoRA weights (``torch.func``:
``vmap`` over ``grad``), clips it to norm C, sums, adds Gaussian noise and divides by the expected batch size:

    g = ( sum_i g_i * min(1, C / ||g_i||) + N(0, sigma^2 C^2 I) ) / (q |D_tr|)

The noise multiplier sigma is the smallest that keeps the whole run (epochs x ceil(|D_tr| / batch_size) steps at
rate q) within (epsilon, delta) under Opacus' RDP accountant, and the epsilon actually spent is recomputed by that
accountant at the end. Only the accountant comes from Opacus: its per-sample hooks are not used (ATTACKS.md reports
an Opacus + PEFT combination that silently corrupts LoRA updates; the tests check that the weights change every
step). The privacy guarantee covers the LoRA weights of one run with respect to D_tr; the attacker's D_aux members
are part of D_tr, so it bounds exactly the attacks of this package.
"""
from __future__ import annotations

import math

import torch
from torch.func import functional_call, grad_and_value, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel


def noise_multiplier(epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """sigma for (epsilon, delta) after ``steps`` Poisson-sampled steps at ``sample_rate`` (Opacus, RDP)."""
    from opacus.accountants.utils import get_noise_multiplier  # Opacus: slow to import, only for DP-LoRA

    return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate,
                                      steps=steps, accountant="rdp"))


def spent_epsilon(sigma: float, delta: float, sample_rate: float, steps: int) -> float:
    """The epsilon that Opacus' RDP accountant gives for a run."""
    from opacus.accountants import RDPAccountant            # Opacus: slow to import, only for DP-LoRA

    acc = RDPAccountant()
    acc.history = [(sigma, sample_rate, steps)]
    return float(acc.get_epsilon(delta))


def step_grads(unet, scheduler, named_params, z0, cond, t, noise, clip: float, sigma: float, expected: float,
               gen: torch.Generator) -> tuple[float, float]:
    """Set ``p.grad`` of every LoRA parameter to the DP-SGD gradient of the batch; return (mean loss, median
    per-sample gradient norm before clipping). An empty batch gets the noise alone."""
    lora_w = {n: p.detach() for n, p in named_params}
    frozen = {n: p for n, p in unet.named_parameters() if n not in lora_w}
    buffers = dict(unet.named_buffers())

    def loss_one(weights, z, c, tt, eps):                              # one member's adaptation loss
        z_t = scheduler.add_noise(z[None], eps[None], tt[None])
        pred = functional_call(unet, ({**frozen, **weights}, buffers), (z_t, tt[None], c[None])).sample
        return ((eps[None] - pred.float()) ** 2).mean()

    if len(z0):
        with sdpa_kernel(SDPBackend.MATH):       # plain matmuls: vmap batches them (fused kernels fall back to loops)
            grads, losses = vmap(grad_and_value(loss_one), in_dims=(None, 0, 0, 0, 0))(lora_w, z0, cond, t, noise)
        norms = torch.sqrt(sum(g.flatten(1).pow(2).sum(1) for g in grads.values()))          # (B,)
        scale = (clip / (norms + 1e-12)).clamp(max=1.0)
    for name, p in named_params:
        total = ((grads[name] * scale.view(-1, *[1] * (p.dim()))).sum(0) if len(z0)
                 else torch.zeros_like(p))
        p.grad = (total + sigma * clip * torch.randn(p.shape, generator=gen).to(p.device)) / expected
    if not len(z0):
        return math.nan, math.nan
    return float(losses.mean()), float(norms.median())
