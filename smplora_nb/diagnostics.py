"""Optimisation diagnostics of Section 4 of the paper (arXiv 2402.11989): gradient norm and scale, Hessian norm.

* gradient norm   ||g|| = sqrt(||dL/dB||^2 + ||dL/dA||^2) over all LoRA matrices A, B
* gradient scale  ||dL/dB|| + ||dL/dA||  (Fig. 2 compares its spread across methods)
* Hessian norm    the top eigenvalue of d^2 L / d(A, B)^2, by power iteration on Hessian-vector products
                  (paper: every 100 steps, 50 iterations, tolerance 1e-6). The paper relates the two through
                  (L0, L1)-smoothness, ||H|| <= L0 + L1 ||g||: MP-LoRA has L1 = 0 (Prop. 1), SMP-LoRA L1 > 0 (Prop. 2).
"""
from __future__ import annotations

import torch


def _norm(tensors) -> float:
    return float(torch.sqrt(sum((t.float() ** 2).sum() for t in tensors if t is not None)))


def grad_stats(a_params, b_params) -> dict:
    """Norm and scale of the current ``.grad`` of the LoRA A and B matrices."""
    ga, gb = _norm(p.grad for p in a_params), _norm(p.grad for p in b_params)
    return {"grad_norm": (ga ** 2 + gb ** 2) ** 0.5, "grad_scale": ga + gb}


def component_grad_scale(term: torch.Tensor, a_params, b_params) -> float:
    """||d term/dB|| + ||d term/dA|| for one term of the objective (graph kept for the full backward)."""
    params = list(a_params) + list(b_params)
    grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
    return _norm(grads[:len(a_params)]) + _norm(grads[len(a_params):])


def hessian_top_eigenvalue(loss: torch.Tensor, params, iters: int = 50, tol: float = 1e-6, seed: int = 0) -> float:
    """Largest-magnitude Hessian eigenvalue of ``loss`` w.r.t. ``params`` by power iteration on H v products."""
    params = list(params)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    gen = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=gen).to(p.device) for p in params]
    norm = _norm(v)
    v = [x / norm for x in v]
    eig = 0.0
    for _ in range(iters):
        hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
        new = float(sum((h * x).sum() for h, x in zip(hv, v)))                       # Rayleigh quotient v'Hv
        norm = _norm(hv)
        if norm == 0:
            return 0.0
        v = [h.detach() / norm for h in hv]
        if abs(new - eig) <= tol * max(abs(eig), 1e-12):
            return new
        eig = new
    return eig
