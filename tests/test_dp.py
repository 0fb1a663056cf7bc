"""dp: the DP-LoRA baseline (DP-SGD on the LoRA weights, Opacus' RDP accountant)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from smplora_nb import config, dp, lora, losses, models, paths, runs


def test_accountant_round_trip():
    sigma = dp.noise_multiplier(8.0, 1e-5, 0.1, 300)
    assert sigma > 0 and 7.0 < dp.spent_epsilon(sigma, 1e-5, 0.1, 300) <= 8.0 + 1e-6
    assert dp.noise_multiplier(1.0, 1e-5, 0.1, 300) > sigma                  # stronger privacy: more noise


def _setup(tiny_setup):
    _, _, splits, base = tiny_setup
    parts = models.load_pipeline(base).components
    unet, sched = parts["unet"], parts["scheduler"]
    lora.attach(unet, 4, 4.0, lora.TARGETS["attention"], seed=0)
    named = [(n, p) for n, p in unet.named_parameters() if p.requires_grad]
    with torch.no_grad():
        for _, p in named:
            p.normal_(0, 0.05)                                               # B != 0: gradients reach A too
    z0, cond = models.encode_items(parts, splits["member_aux"])
    gen = torch.Generator().manual_seed(0)
    t, noise = torch.randint(0, 1000, (len(z0),), generator=gen), torch.randn(z0.shape, generator=gen)
    return unet, sched, named, z0, cond, t, noise


def test_per_sample_gradients_without_clipping_or_noise_are_the_batch_gradient(tiny_setup):
    unet, sched, named, z0, cond, t, noise = _setup(tiny_setup)
    dp.step_grads(unet, sched, named, z0, cond, t, noise, clip=1e9, sigma=0.0, expected=len(z0),
                  gen=torch.Generator().manual_seed(1))
    mine = [p.grad.clone() for _, p in named]
    for _, p in named:
        p.grad = None
    per_sample = [losses.loss_map(unet, sched, z0[i:i + 1], cond[i:i + 1], t[i:i + 1], noise[i:i + 1]).mean()
                  for i in range(len(z0))]
    torch.stack(per_sample).mean().backward()
    assert all(torch.allclose(a, p.grad, atol=1e-6, rtol=1e-4) for a, (_, p) in zip(mine, named))


def test_clipping_bounds_every_members_contribution(tiny_setup):
    unet, sched, named, z0, cond, t, noise = _setup(tiny_setup)
    clip = 1e-4
    _, median = dp.step_grads(unet, sched, named, z0, cond, t, noise, clip=clip, sigma=0.0, expected=1.0,
                              gen=torch.Generator().manual_seed(1))
    total = torch.sqrt(sum(p.grad.pow(2).sum() for _, p in named))
    assert median > clip and total <= len(z0) * clip * (1 + 1e-4)


def test_dp_lora_run_changes_weights_every_step_and_keeps_its_budget(tiny_setup):
    cfg, _, splits, base = tiny_setup
    dcfg = config.replace(cfg, method="dp_lora", dp_epsilon=1.0, epochs=3)
    run = runs.train(dcfg, splits, base, progress=False)
    log = paths.read_json(run / "train_log.json")
    assert log["steps"] == 3 * 3 and len(log["dp_update"]) == log["steps"]
    assert all(u > 0 for u in log["dp_update"])                          # the LoRA moved at every step
    assert log["dp"]["epsilon_spent"] <= 1.0 + 1e-6 and log["dp"]["noise_multiplier"] > 0
    assert log["dp"]["sample_rate"] == pytest.approx(cfg.train.batch_size / 12)
    assert runs.run_key(dcfg, splits, base) != runs.run_key(config.replace(dcfg, dp_epsilon=8.0), splits, base)
    # the DP fields do not touch other methods' cache keys, nor the proxy's fields a DP run's
    assert runs.run_key(cfg, splits, base) == runs.run_key(config.replace(cfg, dp_epsilon=2.0), splits, base)
    assert runs.run_key(dcfg, splits, base) == runs.run_key(config.replace(dcfg, lam=dcfg.train.lam + 1.0), splits, base)
    with pytest.raises(ValueError, match="dp_lora"):
        runs.train(config.replace(dcfg, mixed_precision="bf16"), splits, base)
