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


@pytest.mark.parametrize("attack", scores.ATTACKS)
def test_shapes_and_determinism(attack):
    batch = _batch()
    a = scores.score((Toy(0.3, 0.1), SCHED), batch, T, attack, seed=1)
    b = scores.score((Toy(0.3, 0.1), SCHED), batch, T, attack, seed=1)
    assert a.shape == (5, len(T)) and np.isfinite(a).all() and np.array_equal(a, b)
    small = scores.score((Toy(0.3, 0.1), SCHED), batch, T, attack, seed=1, batch_size=2)
    assert np.allclose(small, a)                                       # batching does not change a score


def test_loss_known_answer_zero_predictor():
    z0, cond = _batch()
    got = scores.score((Toy(), SCHED), (z0, cond), T, "loss", seed=2)
    for k in range(len(T)):                     # eps_hat = 0: the score is minus the mean square of the seeded noise
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


def test_secmi_known_answer_constant_predictor():
    """With eps_hat independent of z the DDIM steps are exactly invertible: down and back up returns z~_t."""
    got = scores.score((Toy(0.0, 0.7), SCHED), _batch(), T, "secmi")
    assert np.allclose(got, 0.0, atol=1e-9)
    assert (scores.score((Toy(0.4, 0.1), SCHED), _batch(), T, "secmi") < -1e-9).all()   # not so for eps_hat(z)


def test_pian_known_answer_linear_predictor():
    """PIAN standardises eps0 = a z0 per image to s; z_t = sqrt(ab) z0 + sqrt(1 - ab) s; eps_hat(z_t) = a z_t."""
    z0, cond = _batch()
    a = 0.5
    flat = (a * z0).flatten(1)
    s = ((flat - flat.mean(1, keepdim=True)) / (flat.std(1, keepdim=True) + 1e-8)).view_as(z0)
    got = scores.score((Toy(a), SCHED), (z0, cond), T, "pian")
    for k, t in enumerate(T):
        ab = float(SCHED.alphas_cumprod[t])
        z_t = ab ** 0.5 * z0 + (1 - ab) ** 0.5 * s
        assert np.allclose(got[:, k], -((a * z_t - s) ** 4).flatten(1).mean(1).numpy(), atol=1e-5)


def test_fit_chooses_on_aux_only():
    rng = np.random.default_rng(0)
    aux_m, aux_n = rng.normal(size=(40, 3)), rng.normal(size=(40, 3))
    aux_m[:, 1] += 2.0                                                  # only the middle timestep separates
    fitted = scores.fit("loss", T, aux_m, aux_n)
    assert fitted.timestep == 100 and fitted.column == 1 and set(fitted.aux_auc) == set(T)
    assert np.array_equal(fitted.apply(aux_m), aux_m[:, 1])
    assert 0.0 < fitted.threshold < 2.5


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="attack"):
        scores.score((Toy(), SCHED), _batch(), T, "gsa")
    with pytest.raises(ValueError, match="timesteps"):
        scores.score((Toy(), SCHED), _batch(), (1000,), "loss")


def test_scores_run_on_the_tiny_pipeline(tiny_setup):
    _, _, splits, base = tiny_setup
    pipe = models.load_pipeline(base)
    batch = models.encode_items(pipe.components, splits["member_aux"])
    for attack in scores.ATTACKS:
        s = scores.score(pipe, batch, (20, 100), attack)
        assert s.shape == (6, 2) and np.isfinite(s).all()


def test_audit_fits_on_aux_reports_intervals_and_is_cached(tiny_setup, monkeypatch):
    from smplora_nb import scores as sc

    _, _, splits, base = tiny_setup
    out = sc.audit(base, None, splits, n_boot=50)
    assert set(out) == set(sc.ATTACKS)
    for attack, r in out.items():
        assert r["chosen_on_aux"]["timestep"] in sc.CANDIDATES[attack]
        assert r["ci"]["auc"][0] <= r["ci"]["auc"][1] and r["ci"]["tpr_at_1pct_fpr"] is None   # 6 non-members
        assert len(r["scores_member"]) == 6 and len(r["scores_nonmember"]) == 6
    monkeypatch.setattr(sc, "score", lambda *a, **k: pytest.fail("recomputed a cached audit"))
    assert sc.audit_many(base, {"base": None}, splits, n_boot=50)["base"] == out
