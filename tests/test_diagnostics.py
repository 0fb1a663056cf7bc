"""Diagnostics: the Hessian power iteration finds a known eigenvalue; the MP two-pass gradient equals the gradient of
the summed objective; clipping and normalisation act after the (pre-stabiliser) statistics are logged."""
import types

import numpy as np
import pytest
import torch

from smplora_nb import diagnostics, methods


def test_hessian_top_eigenvalue_of_a_quadratic():
    a = torch.tensor([1.0, -2.0], requires_grad=True)
    b = torch.tensor([0.5], requires_grad=True)
    h = torch.diag(torch.tensor([3.0, 7.0, 1.0]))                        # eigenvalues 3, 7, 1
    x = torch.cat([a, b])
    loss = 0.5 * x @ h @ x
    eig, gnorm = diagnostics.hessian_top_eigenvalue(loss, [a, b], iters=200)
    assert eig == pytest.approx(7.0, rel=1e-4)
    assert gnorm == pytest.approx(float(torch.linalg.norm(h @ x.detach())), rel=1e-6)


def _toy(method, kw=None):
    """Toy A, B with an adaptation loss and a (negative) MI gain; one ``methods.descend`` with the method's backward
    (an optimiser with lr 0, so the gradients stay readable)."""
    from accelerate import Accelerator

    kw = kw or {}
    torch.manual_seed(0)
    a, b = torch.randn(3, requires_grad=True), torch.randn(3, requires_grad=True)
    l_ada, gain = (a * b).sum() ** 2, -torch.nn.functional.softplus(a - b).sum()     # G <= 0
    tc = types.SimpleNamespace(method=method, lam=0.7, delta=1e-5, grad_clip=kw.get("grad_clip", 0.0),
                               grad_normalize=kw.get("grad_normalize", False), proxy_batch_size=2, k_steps=1,
                               proxy_feature="paper")
    m = methods.make(tc)
    loss = m.objective(l_ada, gain)
    ref = torch.autograd.grad(loss, [a, b], retain_graph=True)
    s = types.SimpleNamespace(tc=tc, accelerator=Accelerator(cpu=True), params=[a, b], a_params=[a],
                              opt=torch.optim.SGD([a, b], lr=0.0))
    log = methods.descend(s, loss, l_ada, {}, m._backward(s, l_ada, gain) if m.private else None)
    return a, b, ref, log


@pytest.mark.parametrize("method", ["lora", "mp_lora", "smp_lora"])
def test_backward_gives_the_objective_gradient(method):
    a, b, ref, log = _toy(method)
    assert torch.allclose(a.grad, ref[0]) and torch.allclose(b.grad, ref[1])
    norm = float(torch.sqrt(ref[0].pow(2).sum() + ref[1].pow(2).sum()))
    assert log["grad_norm"] == pytest.approx(norm)
    assert ("grad_scale_privacy" in log) == (method == "mp_lora")


def test_mp_terms_add_up():
    a, b, ref, log = _toy("mp_lora")
    assert log["grad_scale_ada"] > 0 and log["grad_scale_privacy"] > 0
    assert log["grad_scale"] <= log["grad_scale_ada"] + log["grad_scale_privacy"] + 1e-6  # triangle


@pytest.mark.parametrize("kw,expect", [({"grad_clip": 0.01}, 0.01), ({"grad_normalize": True}, 1.0)])
def test_stabilisers_act_after_logging(kw, expect):
    a, b, _, log = _toy("mp_lora", kw)
    after = float(torch.sqrt(a.grad.pow(2).sum() + b.grad.pow(2).sum()))
    assert after == pytest.approx(expect, rel=1e-4)
    assert log["grad_norm"] > expect                                      # logged before the stabiliser


def test_summarize_log_statistics():
    rng = np.random.default_rng(0)
    gn = rng.uniform(1, 2, 50)
    log = {"steps": 50, "l_ada": list(rng.uniform(0, 1, 50)), "grad_norm": list(gn), "grad_scale": list(gn),
           "rescale": [0.5] * 49 + [0.9], "proxy_acc": [None] * 50,
           "hessian": [[i, 3.0 * gn[i] + 0.01 * rng.normal(), gn[i]] for i in range(0, 50, 5)]}
    s = diagnostics.summarize_log(log)
    assert s["rescale_max"] == 0.9 and s["rescale_min"] == 0.5 and s["proxy_acc_final"] is None
    assert s["pcc_grad_hessian"] > 0.99 and s["pcc_p_value"] < 1e-3
    assert s["grad_norm_std"] == pytest.approx(float(np.std(gn)))
