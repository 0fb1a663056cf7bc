"""The method objects on the tiny model: each step's gradient is its equation's, so a broken defense fails here.

Every test takes one real step of a method (``train.setup`` + ``method.step`` on a real D_tr batch) with the
optimiser's step switched off, so the gradients it left in the LoRA weights can be compared with the equation's,
computed independently by autograd on the same batch, the same weights and the same proxy.
"""
import copy

import pytest
import torch
from safetensors.torch import load_file

from smplora_nb import batches, config, diagnostics, methods, runs, train

SMALL_PRIVATE = dict(lam=0.5, proxy_batch_size=4, proxy_lr=0.05)


def _state(tiny_setup, **kw):
    """A loop state and its method, LoRA weights moved off B = 0, the optimiser's step a no-op; and a D_tr batch."""
    cfg, _, splits, base = tiny_setup
    cfg = config.replace(cfg, **kw)
    method = methods.make(cfg.train)
    s = train.setup(cfg, splits, base, method)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in s.params:
            p.add_(0.05 * torch.randn(p.shape, generator=gen))
    s.opt.step = lambda *a, **k: None                               # keep the weights: read the gradients
    batch = batches.members(s, torch.randperm(s.n, generator=s.gen), 0)
    return s, method, batch


def _grads(loss, params):
    return [g if g is not None else torch.zeros_like(p)
            for g, p in zip(torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True), params)]


def _gain(s, method, batch, maps, proxy=None):
    ref = s.base_map(batch) if s.base_unet is not None else None
    return (proxy or method.proxy).gain(maps, batch.t, ref)


# The step reads the base model's maps of the D_tr batch from one forward of the D_tr and proxy batches together;
# ``_gain`` forwards D_tr alone, which differs in the last float bits (the kernels depend on the batch size, more so
# on one thread), and the log of the calibrated feature enlarges that: G agrees to about 1e-5, not to 1e-7.
GAIN_TOL = dict(rel=1e-4, abs=2e-6)


def _close(got, want, rtol=1e-4):
    scale = max(float(torch.cat([w.flatten() for w in want]).abs().max()), 1e-12)
    return all(torch.allclose(g, w, rtol=rtol, atol=rtol * scale) for g, w in zip(got, want))


@pytest.mark.parametrize("feature", ["paper", "calibrated"])
@pytest.mark.parametrize("lam", [0.5, 0.0])
def test_smp_lora_gradient_is_the_equations(tiny_setup, feature, lam):
    """dL = dL_ada / D + L_ada lam dG / D^2 with D = 1 - lam G + delta: a detached privacy term drops the second
    part; lam = 0 leaves plain LoRA's gradient / (1 + delta) on the same batch, with a trained proxy."""
    s, method, batch = _state(tiny_setup, method="smp_lora", proxy_feature=feature, **{**SMALL_PRIVATE, "lam": lam})
    out = method.step(s, batch)
    got = [p.grad.clone() for p in s.params]
    maps = s.loss_map(batch)
    l_ada, gain = maps.mean(), _gain(s, method, batch, maps)
    d = 1 - lam * gain.detach() + s.tc.delta
    g_ada, g_gain = _grads(l_ada, s.params), _grads(gain, s.params)
    want = [ga / d + l_ada.detach() * lam * gg / d ** 2 for ga, gg in zip(g_ada, g_gain)]
    assert _close(got, want)
    assert out["gain"] == pytest.approx(gain.item(), **GAIN_TOL)
    privacy = torch.sqrt(sum((l_ada.detach() * lam * gg / d ** 2).pow(2).sum() for gg in g_gain))
    ada = torch.sqrt(sum((ga / d).pow(2).sum() for ga in g_ada))
    if lam:                                                    # the privacy part is large enough to be missed
        assert privacy > 1e-3 * ada
        assert not _close(got, [ga / d for ga in g_ada])


def test_mp_lora_per_term_backward_sums_to_the_objectives_gradient(tiny_setup):
    """MP-LoRA's two backward passes (dL_ada, then d(lam G)) leave d(L_ada + lam G) in the weights, on the real
    proxy path, and the logged per-term scales are those of the two terms."""
    s, method, batch = _state(tiny_setup, method="mp_lora", proxy_feature="calibrated", **SMALL_PRIVATE)
    out = method.step(s, batch)
    got = [p.grad.clone() for p in s.params]
    maps = s.loss_map(batch)
    l_ada, gain = maps.mean(), _gain(s, method, batch, maps)
    assert _close(got, _grads(l_ada + s.tc.lam * gain, s.params))
    na = len(s.a_params)
    for key, term in (("grad_scale_ada", l_ada), ("grad_scale_privacy", s.tc.lam * gain)):
        g = _grads(term, s.params)
        assert out[key] == pytest.approx(diagnostics.grad_stats(g[:na], g[na:])["grad_scale"], rel=1e-4), key


@pytest.mark.parametrize("method", ["mp_lora", "smp_lora"])
def test_the_proxy_is_frozen_during_the_lora_step(tiny_setup, method):
    """With no proxy step, a LoRA step leaves the proxy's weights bit for bit and gives them no gradient."""
    s, m, batch = _state(tiny_setup, method=method, k_steps=0, **SMALL_PRIVATE)
    del s.opt.step                                                  # a real optimiser step this time
    before = copy.deepcopy(m.proxy.model.state_dict())
    lora_before = [p.detach().clone() for p in s.params]
    m.step(s, batch)
    after = m.proxy.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None or not p.grad.any() for p in m.proxy.model.parameters())
    assert any(not torch.equal(a, p) for a, p in zip(lora_before, s.params))      # the LoRA did move


@pytest.mark.parametrize("method", ["mp_lora", "smp_lora"])
def test_algorithm_1_order_the_proxy_steps_before_the_lora_objective(tiny_setup, method):
    """The G of the LoRA objective is read through the proxy *after* this step's proxy update (Algorithm 1)."""
    s, m, batch = _state(tiny_setup, method=method, **SMALL_PRIVATE)
    old = copy.deepcopy(m.proxy)
    out = m.step(s, batch)
    maps = s.loss_map(batch)
    now, then = _gain(s, m, batch, maps).item(), _gain(s, m, batch, maps, proxy=old).item()
    assert abs(now - then) > 1e-4                                   # the proxy step changed G measurably
    assert out["gain"] == pytest.approx(now, **GAIN_TOL)


def _weights(folder):
    return load_file(str(folder / "lora" / "pytorch_lora_weights.safetensors"))


@pytest.mark.parametrize("method", list(methods.METHODS))
def test_every_method_trains_finite_and_resumes_bit_for_bit(tiny_setup, method, monkeypatch, tmp_path):
    cfg, _, splits, base = tiny_setup
    cfg = config.replace(cfg, method=method, epochs=3, **(SMALL_PRIVATE if method in ("mp_lora", "smp_lora") else {}))
    full = runs.train(cfg, splits, base, checkpoint_every=1, progress=False)
    log = runs.paths.read_json(full / "train_log.json")
    assert log["diverged"] is None and log["steps"] == 9 and all(torch.isfinite(torch.tensor(log["loss"])))
    w = _weights(full)
    assert all(torch.isfinite(v).all() for v in w.values()) and any(v.any() for k, v in w.items() if "lora_B" in k)
    monkeypatch.setenv("SMPLORA_OUTPUTS", str(tmp_path / "resumed"))
    with pytest.raises(KeyboardInterrupt):
        runs.train(cfg, splits, base, checkpoint_every=1, progress=False, interrupt_at_epoch=1)
    again = _weights(runs.train(cfg, splits, base, checkpoint_every=1, progress=False))
    assert w.keys() == again.keys() and all(torch.equal(w[k], again[k]) for k in w)


@pytest.mark.parametrize("variant", [dict(method="lora"), dict(method="mp_lora", **SMALL_PRIVATE),
                                     dict(method="smp_lora", proxy_feature="calibrated", **SMALL_PRIVATE),
                                     dict(method="smp_lora", text_encoder_lr=1e-3, **SMALL_PRIVATE)],
                         ids=["lora", "mp_lora", "smp_lora-calibrated", "smp_lora-text-encoder"])
def test_the_hessian_diagnostic_does_not_change_the_trajectory(tiny_setup, variant, monkeypatch, tmp_path):
    """Weights bit for bit with and without the Hessian, so it is not part of the run key; a cached run without it
    is trained again when it is asked for (same weights, a log with the Hessian)."""
    cfg, _, splits, base = tiny_setup
    plain = config.replace(cfg, epochs=2, **variant)
    with_h = config.replace(plain, hessian_every=2, hessian_iters=3)
    assert runs.run_key(plain, splits, base) == runs.run_key(with_h, splits, base)
    ref = _weights(runs.train(plain, splits, base, progress=False))
    folder = runs.train(with_h, splits, base, progress=False)                    # trained again, with the Hessian
    log = runs.paths.read_json(folder / "train_log.json")
    assert [h[0] for h in log["hessian"]] == list(range(0, log["steps"], 2)) and log["hessian_every"] == 2
    got = _weights(folder)
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    monkeypatch.setattr(runs.loop_module, "setup", lambda *a, **k: pytest.fail("trained a finished run again"))
    assert runs.train(plain, splits, base, progress=False) == folder              # the diagnostic costs no rerun


def test_dp_lora_refuses_the_hessian_and_other_unsupported_settings(tiny_setup):
    cfg = tiny_setup[0]
    for bad in (dict(hessian_every=1), dict(text_encoder_lr=1e-3), dict(mixed_precision="bf16")):
        with pytest.raises(ValueError, match="dp_lora"):
            methods.make(config.replace(cfg, method="dp_lora", **bad).train)
