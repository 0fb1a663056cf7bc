"""The per-element adaptation loss map (formula, determinism, batch independence) and the paper's objectives."""
import numpy as np
import pytest
import torch

from smplora_nb import losses, models, train


def _inputs(tiny_setup):
    *_, splits, base = tiny_setup
    parts = models.load_pipeline(base).components
    z0, cond = models.encode_items(parts, splits["member_aux"])
    return parts, z0, cond


def test_loss_map_matches_the_formula(tiny_setup):
    """l = (eps - eps_theta(sqrt(abar_t) z0 + sqrt(1 - abar_t) eps, t, c))^2, element by element."""
    parts, z0, cond = _inputs(tiny_setup)
    t = torch.full((len(z0),), 100)
    eps = torch.randn(z0.shape, generator=torch.Generator().manual_seed(0))
    m = losses.loss_map(parts["unet"], parts["scheduler"], z0, cond, t, eps)
    abar = parts["scheduler"].alphas_cumprod[100]
    with torch.no_grad():
        pred = parts["unet"](abar.sqrt() * z0 + (1 - abar).sqrt() * eps, t, cond).sample
    assert m.shape == z0.shape == (6, 4, 8, 8)
    assert torch.allclose(m, (eps - pred) ** 2, atol=1e-5)


def test_loss_maps_at_are_reproducible_and_batch_independent(tiny_setup):
    parts, z0, cond = _inputs(tiny_setup)
    args = (parts["unet"], parts["scheduler"], z0, cond, (10, 500))
    a = losses.loss_maps_at(*args, n_draws=2, seed=3, batch_size=256)
    b = losses.loss_maps_at(*args, n_draws=2, seed=3, batch_size=4)
    c = losses.loss_maps_at(*args, n_draws=2, seed=4)
    assert a.shape == (len(z0), 2, 4, 8, 8)
    assert torch.allclose(a, b, atol=1e-6) and not torch.allclose(a, c)


# --------------------------------------------------------------------------------------------- objectives


def _logits(p_member):
    p = torch.tensor(p_member, dtype=torch.float64)
    return torch.log(torch.stack([1 - p, p], dim=1))                       # (B, 2): softmax gives (1-p, p)


def test_mi_gain_matches_the_balanced_formula():
    member = torch.tensor([True, True, False])
    g = losses.mi_gain(_logits([0.8, 0.6, 0.3]), member)
    # 1/(2|D_m|) sum log h + 1/(2|D_nm|) sum log(1 - h), with |D_m| = 2, |D_nm| = 1
    assert g.item() == pytest.approx((np.log(0.8) + np.log(0.6)) / 4 + np.log(0.7) / 2)
    assert g.item() <= 0


def test_mi_gain_on_members_only_is_minus_cross_entropy():
    logits = torch.randn(5, 2)
    member = torch.ones(5, dtype=torch.bool)
    ce = torch.nn.functional.cross_entropy(logits, member.long())
    assert losses.mi_gain(logits, member).item() == pytest.approx(-ce.item(), rel=1e-6)


def test_objectives_values_and_lam_zero_reduces_to_lora():
    l_ada, gain = torch.tensor(0.2), torch.tensor(-0.7)
    assert losses.mp_lora_loss(l_ada, gain, 0.05).item() == pytest.approx(0.2 - 0.035)
    assert losses.smp_lora_loss(l_ada, gain, 0.05, 1e-5).item() == pytest.approx(0.2 / (1 + 0.035 + 1e-5))
    assert losses.mp_lora_loss(l_ada, gain, 0.0).item() == pytest.approx(0.2)
    assert losses.smp_lora_loss(l_ada, gain, 0.0, 1e-5).item() == pytest.approx(0.2, rel=1e-4)
    assert 0 < losses.rescale_factor(gain, 0.05).item() <= 1


@pytest.mark.parametrize("objective", [losses.mp_lora_loss, losses.smp_lora_loss])
def test_objectives_push_the_mi_gain_down(objective):
    """Both objectives increase with G, so gradient descent makes members look like non-members to h."""
    l_ada = torch.tensor(0.3, requires_grad=True)
    gain = torch.tensor(-0.5, requires_grad=True)
    objective(l_ada, gain, 0.1).backward()
    assert gain.grad.item() > 0 and l_ada.grad.item() > 0


def test_calibrated_proxy_feature_cancels_the_base_loss():
    from smplora_nb import defense

    maps, t = torch.rand(3, 4, 2, 2) + 0.1, torch.tensor([5, 500, 900])
    same = defense.proxy_features("calibrated", maps, t, ref=maps)
    assert same.shape == (3, 16 + defense.T_EMBED)
    assert torch.allclose(same[:, :16], torch.zeros(3, 16), atol=1e-6)
    assert torch.allclose(defense.proxy_features("calibrated", 2 * maps, t, ref=maps)[:, :16], torch.full((3, 16), np.log(2.0)),
                          atol=1e-4)
    assert not torch.allclose(defense.timestep_embedding(t)[0], defense.timestep_embedding(t)[1])


def test_the_paper_proxy_feature_is_the_raw_flattened_map():
    """The official proxy reads the per-element squared-error map as it is: no log, no timestep embedding."""
    from smplora_nb import defense

    maps, t = torch.rand(3, 4, 2, 2), torch.tensor([5, 500, 900])
    assert torch.equal(defense.proxy_features("paper", maps, t), maps.flatten(1))
    logs = defense.proxy_features("log_map", maps, t)
    assert logs.shape == (3, 16 + defense.T_EMBED) and torch.allclose(logs[:, :16], torch.log(maps.flatten(1) + 1e-6))
    assert defense.Proxy("paper", 16, 1e-3, 0.0).model.net[0].in_features == 16
    with pytest.raises(ValueError, match="needs reference"):
        defense.proxy_features("calibrated", maps, t)
    with pytest.raises(ValueError, match="takes no reference"):
        defense.proxy_features("paper", maps, t, ref=maps)
