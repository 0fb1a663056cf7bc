"""scores: every membership score on toy models (shapes, determinism, a known answer) and on the tiny pipeline."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler

from smplora_nb import models, scores

SCHED = DDPMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
T = (10, 100, 350)


class Toy(torch.nn.Module):
    """eps_hat(z, t, c) = a * z + b (a, b scalars): simple enough for closed-form scores."""

    def __init__(self, a=0.0, b=0.0):
        super().__init__()
        self.a, self.b = a, b

    def forward(self, z, t, cond):
        return SimpleNamespace(sample=self.a * z + self.b)


def _batch(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 4, 3, 3, generator=g), torch.randn(n, 2, 8, generator=g)


@pytest.mark.parametrize("name", scores.SCORES)
def test_shapes_and_determinism(name):
    batch = _batch()
    a = scores.score((Toy(0.3, 0.1), SCHED), batch, T, name)
    b = scores.score((Toy(0.3, 0.1), SCHED), batch, T, name)
    assert a.shape == (5, len(T)) and np.isfinite(a).all() and np.array_equal(a, b)
    small = scores.score((Toy(0.3, 0.1), SCHED), batch, T, name, batch_size=2)
    assert np.allclose(small, a)                                       # batching does not change a score


def test_loss_at_t_known_answer_zero_predictor():
    """Loss@t reads the loss maps (``attack``): with eps_hat = 0 it is minus the mean square of the seeded noise."""
    from smplora_nb import attack, losses

    z0, cond = _batch()
    maps = losses.loss_maps_at(lambda z, t, c: SimpleNamespace(sample=torch.zeros_like(z)), SCHED, z0, cond, T,
                               n_draws=1, seed=2)
    got = attack._loss_scores(maps)
    for k in range(len(T)):
        noise = torch.randn(z0.shape, generator=torch.Generator().manual_seed(2 * 1_000_003 + k * 1009))
        assert np.allclose(got[:, k], -(noise ** 2).flatten(1).mean(1).numpy(), atol=1e-6)


def test_sima_and_pia_known_answers_linear_predictor():
    z0, cond = _batch()
    a = 0.5
    sima = scores.score((Toy(a), SCHED), (z0, cond), T, "sima")
    assert np.allclose(sima, -((a * z0) ** 4).flatten(1).mean(1).numpy()[:, None], atol=1e-6)
    pia = scores.score((Toy(a), SCHED), (z0, cond), T, "pia")
    for k, t in enumerate(T):                   # eps0 = a z0; z_t = (sqrt(ab) + sqrt(1 - ab) a) z0
        ab = float(SCHED.alphas_cumprod[t])
        z_t = (ab ** 0.5 + (1 - ab) ** 0.5 * a) * z0
        assert np.allclose(pia[:, k], -((a * z_t - a * z0) ** 4).flatten(1).mean(1).numpy(), atol=1e-6)


class TZ(torch.nn.Module):
    """eps_hat(z, t, c) = (0.3 + t/1000) z + (0.5 - t/1000) z^2 / 4 + mean(c): depends on t and on z, so a wrong
    timestep, direction or step order changes every score."""

    def forward(self, z, t, cond):
        tt = t.float().view(-1, *[1] * (z.dim() - 1)) / 1000.0
        return SimpleNamespace(sample=(0.3 + tt) * z + (0.5 - tt) * z ** 2 / 4 + cond.mean((1, 2)).view(-1, 1, 1, 1))


def _original_secmi(model, z0, cond, t_sec, k):
    """SecMI's own arithmetic (mia_evals/secmia.py, SecMI-LDM), written out independently: ddim_singlestep from
    0 to t_sec in steps of k, one step up to t_sec + k, one back down to t_sec; ||x_t - x_t_recon||^2 per element."""
    ab = SCHED.alphas_cumprod

    def single(x, t_c, t_target):
        eps = model(x, torch.full((len(x),), t_c), cond).sample
        x0 = (x - (1 - ab[t_c]).sqrt() * eps) / ab[t_c].sqrt()
        return ab[t_target].sqrt() * x0 + (1 - ab[t_target]).sqrt() * eps

    x = z0
    for t in range(0, t_sec, k):
        x = single(x, t, t + k)
    recon = single(single(x, t_sec, t_sec + k), t_sec + k, t_sec)
    return -((x - recon) ** 2).flatten(1).mean(1)


def _original_pian(model, z0, cond, t):
    """PIA's PIAN (stable_diffusion/components.py), independently: eps0 = eps_hat(x0, 0), rescaled by
    sqrt(2/pi) / mean|eps0| per image (not centred); x_t from eps0; ||eps_hat(x_t, t) - eps0||_4^4 per element."""
    ab = SCHED.alphas_cumprod[t]
    eps0 = model(z0, torch.zeros(len(z0), dtype=torch.long), cond).sample
    eps0 = eps0 / eps0.abs().mean((1, 2, 3), keepdim=True) * (2 / np.pi) ** 0.5
    x_t = ab.sqrt() * z0 + (1 - ab).sqrt() * eps0
    return -((model(x_t, torch.full((len(z0),), t), cond).sample - eps0) ** 4).flatten(1).mean(1)


def test_secmi_matches_the_original_arithmetic():
    z0, cond = _batch()
    got = scores.score((TZ(), SCHED), (z0, cond), (50, 100, 200), "secmi", stride=10)
    for k, t in enumerate((50, 100, 200)):
        assert np.allclose(got[:, k], _original_secmi(TZ(), z0, cond, t, 10).numpy(), rtol=1e-4, atol=1e-12), t
    assert scores.SECMI_STRIDE == 10                                   # the original's k


def test_pian_matches_the_original_arithmetic():
    z0, cond = _batch()
    got = scores.score((TZ(), SCHED), (z0, cond), T, "pian")
    for k, t in enumerate(T):
        assert np.allclose(got[:, k], _original_pian(TZ(), z0, cond, t).numpy(), rtol=1e-4, atol=1e-12), t


def test_secmi_known_answer_constant_predictor():
    """With eps_hat independent of z the DDIM steps are exactly invertible: up and back down returns z~_t."""
    got = scores.score((Toy(0.0, 0.7), SCHED), _batch(), T, "secmi")
    assert np.allclose(got, 0.0, atol=1e-12)
    assert (scores.score((Toy(0.4, 0.1), SCHED), _batch(), T, "secmi") < 0).all()   # not so for eps_hat(z)


def test_fit_chooses_on_aux_only():
    rng = np.random.default_rng(0)
    aux_m, aux_n = rng.normal(size=(40, 3)), rng.normal(size=(40, 3))
    aux_m[:, 1] += 2.0                                                  # only the middle timestep separates
    fitted = scores.fit("loss_at_t", T, aux_m, aux_n)
    assert fitted.timestep == 100 and fitted.column == 1 and set(fitted.aux_auc) == set(T)
    assert np.array_equal(fitted.score(aux_m), aux_m[:, 1])
    assert 0.0 < fitted.threshold < 2.5


def test_fit_chooses_the_direction_on_aux():
    """Members scoring *lower* on D_aux is a signal: the fitted attack flips the sign, so on D_te the reversed
    signal reads as leakage (AUC well above 0.5), not as privacy."""
    from smplora_nb import metrics

    rng = np.random.default_rng(1)
    aux_m, aux_n = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    aux_m[:, 2] -= 3.0                                                  # a defense that overshoots
    fitted = scores.fit("loss_at_t", T, aux_m, aux_n)
    assert fitted.column == 2 and fitted.sign == -1 and fitted.aux_auc[350] < 0.1
    te_m, te_n = rng.normal(size=(50, 3)), rng.normal(size=(50, 3))
    te_m[:, 2] -= 3.0
    sm, sn = fitted.score(te_m), fitted.score(te_n)
    assert metrics.membership(sm, sn, fitted.threshold)["auc"] > 0.95


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="score must be one of"):
        scores.score((Toy(), SCHED), _batch(), T, "gsa")
    with pytest.raises(ValueError, match="timesteps"):
        scores.score((Toy(), SCHED), _batch(), (1000,), "pia")


def test_scores_run_on_the_tiny_pipeline(tiny_setup):
    _, _, splits, base = tiny_setup
    pipe = models.load_pipeline(base)
    batch = models.encode_items(pipe.components, splits["member_aux"])
    for name in scores.SCORES:
        s = scores.score(pipe, batch, (20, 100), name, stride=5)
        assert s.shape == (6, 2) and np.isfinite(s).all()
