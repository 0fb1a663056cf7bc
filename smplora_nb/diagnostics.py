"""Optimisation diagnostics of Section 4 of the paper (arXiv 2402.11989): gradient norm and scale, Hessian norm.

* gradient norm   ||g|| = sqrt(||dL/dB||^2 + ||dL/dA||^2) over all LoRA matrices A, B
* gradient scale  ||dL/dB|| + ||dL/dA||  (Fig. 2 compares its spread across methods)
* Hessian norm    the top eigenvalue of d^2 L / d(A, B)^2, by power iteration on Hessian-vector products
                  (paper: every 100 steps, 50 iterations, tolerance 1e-6). The paper relates the two through
                  (L0, L1)-smoothness, ||H|| <= L0 + L1 ||g||: MP-LoRA has L1 = 0 (Prop. 1), SMP-LoRA L1 > 0 (Prop. 2).
"""
from __future__ import annotations

import numpy as np
import torch


def _norm(tensors) -> float:
    return float(torch.sqrt(sum((t.float() ** 2).sum() for t in tensors if t is not None)))


def grad_stats(a_grads, b_grads) -> dict:
    """Norm ||g|| and scale ||g_B|| + ||g_A|| of the gradients of the LoRA A and B matrices (None = no gradient)."""
    ga, gb = _norm(a_grads), _norm(b_grads)
    return {"grad_norm": (ga ** 2 + gb ** 2) ** 0.5, "grad_scale": ga + gb}


def hessian_top_eigenvalue(loss: torch.Tensor, params, iters: int = 50, tol: float = 1e-6,
                           seed: int = 0) -> tuple[float, float]:
    """Largest-magnitude Hessian eigenvalue of ``loss`` w.r.t. ``params`` by power iteration on H v products, and
    the gradient norm at the same point (the pair Fig. 1b correlates)."""
    params = list(params)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    grad_norm = _norm([g.detach() for g in grads])
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
            return 0.0, grad_norm
        v = [h.detach() / norm for h in hv]
        if abs(new - eig) <= tol * max(abs(eig), 1e-12):
            return new, grad_norm
        eig = new
    return eig, grad_norm


def _tail(xs, frac: float = 0.1) -> list:
    xs = [x for x in xs if x is not None]
    return xs[-max(1, int(len(xs) * frac)):] if xs else []


def summarize_log(log: dict) -> dict:
    """Per-run statistics of a ``train_log.json``: the numbers of Fig. 1b, Fig. 2 and Table 3.

    * gradient norm and scale: mean and standard deviation over steps (the spread is the instability), and the
      norm's coefficient of variation std / mean (the spread relative to the gradient's own size);
    * MP-LoRA: the scale's std per term (adaptation vs MI gain);
    * SMP-LoRA: the rescaling factor 1/(1 - lam G + delta): max, min, mean, std;
    * the Hessian norm (abs of the largest-magnitude eigenvalue: power iteration may return a negative one) and its
      Pearson correlation with the gradient norm at the Hessian checkpoints (PCC and p-value);
    * the last 10% of steps: L_ada and the proxy attack's accuracy on its own D_aux batches.
    """
    from scipy.stats import pearsonr                        # SciPy: slow to import, only for a log's statistics

    out = {"steps": log["steps"], "diverged": log.get("diverged")}
    for k in ("grad_norm", "grad_scale", "grad_scale_ada", "grad_scale_privacy", "rescale"):
        xs = np.asarray([x for x in log.get(k, []) if x is not None], dtype=float)
        if len(xs):
            out[f"{k}_mean"], out[f"{k}_std"] = float(xs.mean()), float(xs.std())
            if k == "grad_norm":                                         # spread relative to the gradient's size
                out["grad_norm_cv"] = float(xs.std() / xs.mean()) if xs.mean() > 0 else None
            if k == "rescale":
                out["rescale_max"], out["rescale_min"] = float(xs.max()), float(xs.min())
    out["l_ada_final"] = float(np.mean(_tail(log["l_ada"])))
    acc = _tail(log.get("proxy_acc", []))
    out["proxy_acc_final"] = float(np.mean(acc)) if acc else None
    hess = log.get("hessian", [])
    if len(hess) >= 3 and len(hess[0]) == 3:
        eig, gn = np.abs([h[1] for h in hess]), np.array([h[2] for h in hess])      # Hessian norm = abs(lambda)
        out["hessian_mean"], out["hessian_std"] = float(eig.mean()), float(eig.std())
        out["n_hessian"] = len(hess)
        if eig.std() > 0 and gn.std() > 0:
            r = pearsonr(gn, eig)
            out["pcc_grad_hessian"], out["pcc_p_value"] = float(r.statistic), float(r.pvalue)
    return out


def final_epoch_loss(log: dict) -> float:
    """Mean training loss L_ada over the last epoch of a run's log."""
    per_epoch = len(log["l_ada"]) // log["epochs"]
    return float(np.mean(log["l_ada"][-per_epoch:]))


def epoch_reaching(log: dict, target: float) -> int:
    """The first epoch (1-based) whose mean training loss L_ada is at most ``target``; the last epoch if none is.

    Used to stop plain LoRA at the fit a private run ended with (training logs only: no evaluation data)."""
    per_epoch = len(log["l_ada"]) // log["epochs"]
    curve = np.asarray(log["l_ada"][:per_epoch * log["epochs"]]).reshape(log["epochs"], per_epoch).mean(1)
    return int(np.argmax(curve <= target)) + 1 if (curve <= target).any() else log["epochs"]
