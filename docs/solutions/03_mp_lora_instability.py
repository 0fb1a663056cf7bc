"""Solutions to notebook 03's exercises. Each takes what the notebook has built (``cfg``, ``splits``, ``base``,
``logs``, ``s0``) and returns what to look at; ``tests/test_solutions.py`` runs every one on tiny inputs."""
import torch

from smplora_nb import config, diagnostics, losses, paths, runs


def exercise_1(cfg, splits, base, factor=10.0):
    """MP-LoRA's privacy term ``lam * G`` is added at its own scale, so a larger ``lam`` makes it a larger share of
    every step: the gradient norm's coefficient of variation (its spread relative to its size) grows with ``lam``."""
    cv = {}
    for lam in (cfg.train.lam, cfg.train.lam * factor):
        run = runs.train(config.replace(cfg, method="mp_lora", lam=lam), splits, base, progress=False)
        cv[lam] = diagnostics.summarize_log(paths.read_json(run / "train_log.json"))["grad_norm_cv"]
    return cv


def exercise_2(lam=1.0):
    """Proposition 1 in two derivatives: the gradient of MP-LoRA's objective with respect to the MI gain G is
    ``lam`` whatever the adaptation loss, while SMP-LoRA's is ``L_ada * lam / (1 - lam G + delta)^2``, so its
    privacy pressure fades as the model fits (L_ada -> 0) instead of fighting the fit at full strength."""
    l_ada = torch.tensor([1.0, 0.1, 0.01])
    gain = torch.full((3,), -0.5, requires_grad=True)
    grads = {}
    for name, objective in (("mp_lora", losses.mp_lora_loss), ("smp_lora", losses.smp_lora_loss)):
        grads[name] = torch.autograd.grad(objective(l_ada, gain, lam).sum(), gain)[0].tolist()
    return grads                                     # one entry per L_ada in (1, 0.1, 0.01)


def exercise_3(logs, s0):
    """Clipping caps each step's norm but leaves the objective ``L_ada + lam G`` unchanged: the clipped run's
    gradient norm (measured before clipping) varies about as much as the unclipped one's."""
    return {m: diagnostics.summarize_log(logs[m, s0])["grad_norm_cv"]
            for m in ("lora", "mp_lora", "mp_lora_clip") if (m, s0) in logs}
