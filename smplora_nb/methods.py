"""The training methods, one small object each (smplora_nb, arXiv 2402.11989 companion).

Every method has the same parts, and the loop (``train.loop``) knows nothing else about it:

* ``prepare(s)``: what it builds once the models are loaded (the proxy attack, DP-SGD's noise multiplier);
* ``step(s, batch)``: one optimisation step on a D_tr batch; returns the step's log entries;
* ``objective(l_ada, gain)``: the scalar it descends (its equation is in ``losses``), also read by the Hessian;
* ``state_dict()`` / ``load_state_dict(parts)``: its own state between steps (the proxy and its optimiser), which
  a checkpoint saves beside the loop's (``checkpoints``).

``s`` is the loop's ``state.State`` (models, optimiser, generator, cached inputs). A new defense is a new class here
plus its name in ``METHODS``; the loop is not edited.
"""
from __future__ import annotations

import numpy as np
import torch

from . import batches, defense, diagnostics, dp, losses
from .state import State


def descend(s: State, loss: torch.Tensor, l_ada: torch.Tensor, log: dict, backward=None) -> dict:
    """One gradient step on ``loss`` into the LoRA weights, with the gradient diagnostics and the stabilisers.

    ``backward`` replaces the single backward pass (MP-LoRA's per-term passes). Diagnostics read unscaled
    gradients (fp16 loss scaling undone) before clipping (``grad_clip``: max total norm) or normalisation
    (``grad_normalize``: g / ||g||), the two stabilisers of Table 10. A non-finite loss takes no step and returns
    ``{"diverged": loss}``.
    """
    if not torch.isfinite(loss):
        return {"diverged": str(loss.item())}
    s.opt.zero_grad()
    log = {**log, **(backward() if backward else {})}
    if backward is None:
        s.accelerator.backward(loss)
    if s.accelerator.scaler is not None:
        s.accelerator.unscale_gradients()
    na = len(s.a_params)
    stats = diagnostics.grad_stats([p.grad for p in s.params[:na]], [p.grad for p in s.params[na:]])
    if s.tc.grad_clip:
        torch.nn.utils.clip_grad_norm_(s.params, s.tc.grad_clip)
    if s.tc.grad_normalize and stats["grad_norm"] > 0:
        for p in s.params:
            if p.grad is not None:
                p.grad.div_(stats["grad_norm"])
    s.opt.step()
    if s.accelerator.num_processes > 1:                              # log the mean over the processes
        loss, l_ada = s.accelerator.reduce(torch.stack([loss.detach(), l_ada.detach()]), "mean")
    return {"loss": loss.item(), "l_ada": l_ada.item(), **stats, **log}


class Lora:
    """Plain LoRA:  L = L_ada = mean_{batch, elements} (eps - eps_theta(z_t, t, tau(y)))^2  (``losses.loss_map``)."""
    private, poisson, proxy = False, False, None

    def __init__(self, tc, processes: int = 1):
        self.tc = tc

    def prepare(self, s) -> None:
        pass

    def objective(self, l_ada, gain=None):
        return l_ada

    def step(self, s, batch) -> dict:
        with s.accelerator.autocast():
            l_ada = s.loss_map(batch).mean()
        return descend(s, l_ada, l_ada, {})

    def summary(self) -> dict:
        return {}

    def state_dict(self) -> dict:
        """The method's own state between steps, as parts of a checkpoint: the proxy and its optimiser (MP- and
        SMP-LoRA); none for LoRA and DP-LoRA, whose state is all in the loop's (``state.State.state_dict``)."""
        return {} if self.proxy is None else self.proxy.state_dict()

    def load_state_dict(self, parts: dict) -> None:
        if self.proxy is not None:
            self.proxy.load_state_dict(parts)


class _Private(Lora):
    """What MP-LoRA and SMP-LoRA share, Algorithm 1 per step:

    1. proxy step(s): ``k_steps`` ascents of G on balanced D_aux batches (``defense.Proxy.update``; no gradient into
       the U-Net). The first batch is drawn with the step; the others each take their own forward;
    2. LoRA step: G = mean log h(feature(l)) on the D_tr batch through the proxy *after* step 1, held fixed, and
       the loss map l of the same forward as L_ada (``two_forwards``: a second forward with fresh noise and t, as
       the official code); then descend ``objective(L_ada, G)``.
    """
    private = True

    def __init__(self, tc, processes: int = 1):
        super().__init__(tc)
        self.half = tc.proxy_batch_size // 2 if tc.k_steps > 0 else 0
        self.calibrated = tc.proxy_feature == "calibrated"

    def prepare(self, s) -> None:
        self.proxy = defense.Proxy(self.tc.proxy_feature, s.z0[0].numel(), self.tc.proxy_lr,
                                   self.tc.proxy_weight_decay, s.device)
        if s.accelerator.num_processes > 1:
            self.proxy.distribute(s.device)

    def step(self, s, batch) -> dict:
        aux = batches.proxy(s, self.half) if self.half else None
        with s.accelerator.autocast():
            maps = s.loss_map(batch)                                             # (B, 4, h, w)
            ref, ref_aux = self._references(s, batch, aux)
            accs = self._proxy_steps(s, aux, ref_aux) if aux else None          # 1. the proxy first
            l_ada, gain = maps.mean(), self._gain(s, batch, maps, ref)          # 2. then the LoRA objective
            loss = self.objective(l_ada, gain)
        log = {"gain": gain.item(), "rescale": losses.rescale_factor(gain, self.tc.lam, self.tc.delta).item(),
               "proxy_acc": float(np.mean(accs)) if accs else None}
        return descend(s, loss, l_ada, log, self._backward(s, l_ada, gain))

    def _backward(self, s, l_ada, gain):
        return None

    def _references(self, s, batch, aux):
        """The frozen base model's maps for the calibrated feature, of the D_tr batch (unless ``two_forwards``) and
        of the proxy batch, in one forward without gradient."""
        if not self.calibrated:
            return None, None
        own = not self.tc.two_forwards                                  # G reads this forward's D_tr maps
        rows = [batches.Batch(batch.z0, batch.cond.detach(), batch.t, batch.noise)] * own + [aux] * (aux is not None)
        if not rows:
            return None, None
        both = s.base_map(batches.Batch(*[torch.cat(x) for x in zip(*[(r.z0, r.cond, r.t, r.noise) for r in rows])]))
        b = len(batch)
        return (both[:b], both[b:]) if own else (None, both)

    def _proxy_steps(self, s, aux, ref_aux) -> list:
        with torch.no_grad():
            aux_maps = s.loss_map(aux)                                           # (2h, 4, h, w)
        accs = [self.proxy.update(aux_maps, aux.t, aux.member, ref_aux)]
        for _ in range(self.tc.k_steps - 1):                             # further proxy batches, own forwards
            extra = batches.proxy(s, self.half)
            with torch.no_grad():
                maps = s.loss_map(extra)
            accs.append(self.proxy.update(maps, extra.t, extra.member, s.base_map(extra) if self.calibrated else None))
        return accs

    def _gain(self, s, batch, maps, ref):
        if not self.tc.two_forwards:
            return self.proxy.gain(maps, batch.t, ref)
        second = batches.fresh_draw(s, batch)                            # official: fresh noise and t for G
        return self.proxy.gain(s.loss_map(second), second.t, s.base_map(second) if self.calibrated else None)


class MpLora(_Private):
    """MP-LoRA (min-max):  L = L_ada + lam * G  (``losses.mp_lora_loss``).

    Its gradient is taken as two backward passes, dL_ada + d(lam G), whose separate scales are logged (Fig. 2) at no
    extra cost, in one process (DDP allows one backward per forward: several processes take one backward).
    """

    def objective(self, l_ada, gain):
        return losses.mp_lora_loss(l_ada, gain, self.tc.lam)

    def _backward(self, s, l_ada, gain):
        if s.accelerator.num_processes > 1:
            return None

        def per_term() -> dict:
            s.accelerator.backward(l_ada, retain_graph=True)
            ada = [None if p.grad is None else p.grad.detach().clone() for p in s.params]
            s.accelerator.backward(self.tc.lam * gain)
            unit = s.accelerator.scaler.get_scale() if s.accelerator.scaler is not None else 1.0
            priv = [None if p.grad is None else p.grad - (0 if a is None else a) for p, a in zip(s.params, ada)]
            na = len(s.a_params)
            return {"grad_scale_ada": diagnostics.grad_stats(ada[:na], ada[na:])["grad_scale"] / unit,
                    "grad_scale_privacy": diagnostics.grad_stats(priv[:na], priv[na:])["grad_scale"] / unit}
        return per_term


class SmpLora(_Private):
    """SMP-LoRA (stable):  L = L_ada / (1 - lam * G + delta)  (``losses.smp_lora_loss``).

    dL = dL_ada / (1 - lam G + delta) + L_ada * lam * dG / (1 - lam G + delta)^2: the privacy gradient is scaled by
    L_ada itself and the step shrinks when the proxy is confident (Prop. 2); one backward pass.
    """

    def objective(self, l_ada, gain):
        return losses.smp_lora_loss(l_ada, gain, self.tc.lam, self.tc.delta)


DP_SETTINGS = dict(text_encoder_lr=0.0, mixed_precision="no", hessian_every=0)   # what DP-LoRA runs under


class DpLora(Lora):
    """DP-LoRA, DP-SGD on the LoRA weights (``dp``):  g = (sum_i clip_C(g_i) + N(0, sigma^2 C^2 I)) / (q |D_tr|).

    Poisson batches at rate q = batch_size / |D_tr|; sigma is the smallest noise multiplier that keeps the whole
    run within (dp_epsilon, dp_delta) under Opacus' RDP accountant. One process, fp32, U-Net LoRA only.
    """
    poisson = True

    def __init__(self, tc, processes: int = 1):
        super().__init__(tc)
        if processes > 1 or tc.mixed_precision != "no" or tc.text_encoder_lr > 0 or tc.hessian_every:
            raise ValueError("dp_lora runs in one process, in fp32, on U-Net LoRA only, without the Hessian "
                             f"diagnostic (set {DP_SETTINGS}, e.g. config.replace(cfg, **methods.DP_SETTINGS))")

    def prepare(self, s) -> None:
        self.q, self.steps, self.n = s.bs / s.n, self.tc.epochs * s.steps_per_epoch, s.n
        self.sigma = dp.noise_multiplier(self.tc.dp_epsilon, self.tc.dp_delta, self.q, self.steps)
        self.named = [(k, p) for k, p in s.accelerator.unwrap_model(s.unet).named_parameters() if p.requires_grad]

    def step(self, s, batch) -> dict:
        before = [p.detach().clone() for _, p in self.named]
        s.opt.zero_grad()
        l_dp, norm = dp.step_grads(s.accelerator.unwrap_model(s.unet), s.scheduler, self.named, batch.z0, batch.cond,
                                   batch.t, batch.noise, self.tc.dp_clip, self.sigma, self.q * self.n, s.gen)
        s.opt.step()
        moved = max(float((p.detach() - b).abs().max()) for (_, p), b in zip(self.named, before))
        return {"loss": l_dp, "l_ada": l_dp, "grad_norm": norm, "dp_update": moved}

    def summary(self) -> dict:
        tc = self.tc
        return {"dp": {"epsilon_target": tc.dp_epsilon, "delta": tc.dp_delta, "clip": tc.dp_clip,
                       "sample_rate": self.q, "noise_multiplier": self.sigma, "steps": self.steps,
                       "epsilon_spent": dp.spent_epsilon(self.sigma, tc.dp_delta, self.q, self.steps)}}


METHODS = {"lora": Lora, "mp_lora": MpLora, "smp_lora": SmpLora, "dp_lora": DpLora}


def make(tc, processes: int = 1):
    """The method object of ``tc.method`` (a ``TrainConfig``)."""
    if tc.method not in METHODS:
        raise ValueError(f"method must be one of {list(METHODS)}, got {tc.method!r}")
    return METHODS[tc.method](tc, processes)
