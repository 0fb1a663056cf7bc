"""The run grids of the series: which configs each notebook trains (smplora_nb, arXiv 2402.11989 companion).

Every grid is ``{key: Config}`` for ``runs.train_many``; keys are ``(model, seed)`` with ``model`` in the glossary's
vocabulary (``lora``, ``mp_lora``, ``smp_lora``, ``lora_early_stop``, ``dp_lora_eps8``, ...). The diagnostics rule
(issue 8): the private runs of the *first* seed carry the Hessian diagnostic (``hessian``), so that notebooks 03 to 06
train each run once and read it from the cache afterwards; LoRA's runs carry none unless asked.
"""
from __future__ import annotations

from . import config, diagnostics, methods


def seeds(cfg, n: int) -> list[int]:
    """Training seeds seed, seed + 1, ... (``n`` of them)."""
    return [cfg.train.seed + i for i in range(n)]


def run(cfg, method: str, seed: int, first_seed: int, hessian: dict, **kw):
    """The config of one run under the diagnostics rule (module docstring)."""
    diag = hessian if seed == first_seed and method != "lora" else {}
    return config.replace(cfg, method=method, seed=seed, **diag, **kw)


def method_runs(cfg, models, seed_list, hessian: dict) -> dict:
    """``{(model, seed): config}`` for every method of ``models`` and every seed."""
    return {(m, s): run(cfg, m, s, seed_list[0], hessian) for s in seed_list for m in models}


def early_stopped(cfg, logs: dict, seed_list) -> dict:
    """``{("lora_early_stop", seed): config}``: plain LoRA stopped at the first epoch whose training loss reaches
    SMP-LoRA's final training loss of the same seed (training logs only: no evaluation data is read)."""
    return {("lora_early_stop", s): config.replace(cfg, method="lora", seed=s, epochs=diagnostics.epoch_reaching(
        logs["lora", s], diagnostics.final_epoch_loss(logs["smp_lora", s]))) for s in seed_list}


def two_forwards(cfg, seed_list) -> dict:
    """``{("smp_lora_two_forwards", seed): config}``: SMP-LoRA with the official code's second U-Net forward."""
    return {("smp_lora_two_forwards", s): config.replace(cfg, method="smp_lora", seed=s, two_forwards=True)
            for s in seed_list}


def mp_variants(cfg, stabilisers, grad_clip: float, hessian: dict, lora_hessian: bool = False) -> dict:
    """Notebook 03, one seed: LoRA, MP-LoRA (with the Hessian) and its Table 10 stabilisers (``"clip"``,
    ``"normalize"``), keyed ``(model, seed)``."""
    unknown = set(stabilisers) - {"clip", "normalize"}
    if unknown:
        raise ValueError(f"unknown stabilisers {sorted(unknown)}: use 'clip' and/or 'normalize'")
    out = {"lora": config.replace(cfg, method="lora", **(hessian if lora_hessian else {})),
           "mp_lora": config.replace(cfg, method="mp_lora", **hessian)}
    if "clip" in stabilisers:
        out["mp_lora_clip"] = config.replace(cfg, method="mp_lora", grad_clip=grad_clip)
    if "normalize" in stabilisers:
        out["mp_lora_normalize"] = config.replace(cfg, method="mp_lora", grad_normalize=True)
    return {(m, cfg.train.seed): c for m, c in out.items()}


def dp_key(epsilon: float) -> str:
    """The record key of DP-LoRA at budget ``epsilon`` (its epsilon is also a field of its records)."""
    return f"dp_lora_eps{epsilon:g}"


def dp_runs(cfg, epsilons, epochs: int, seed: int) -> dict:
    """``{(dp_key(eps), seed): config}``: DP-LoRA at each budget, under ``methods.DP_SETTINGS``."""
    return {(dp_key(eps), seed): config.replace(cfg, method="dp_lora", seed=seed, dp_epsilon=eps, epochs=epochs,
                                                **methods.DP_SETTINGS) for eps in epsilons}


def snapshot_run(cfg, epochs, seed: int) -> dict:
    """``{("lora_snapshot", seed): config}``: one plain LoRA run saving its adapter after each of ``epochs`` (those
    before its last), the early-stopping curve of notebook 06."""
    snap = tuple(e for e in epochs if e < cfg.train.epochs)
    return {("lora_snapshot", seed): config.replace(cfg, method="lora", seed=seed, snapshot_epochs=snap)}


def member_split_runs(cfg, member_seeds, models, seed: int) -> dict:
    """``{member_seed: {(model, seed): config}}``: the same private images re-dealt into members and non-members."""
    return {ms: {(m, seed): config.replace(cfg, method=m, seed=seed, member_seed=ms) for m in models}
            for ms in member_seeds}


def ablation_grid(cfg, lams, lr_factors, rank_factors, hessian: dict) -> dict:
    """Notebook 05: ``{(family, value): config}`` changing one setting of SMP-LoRA at a time (``lam``; ``lr`` and
    ``lora_rank`` as multiples of the profile's), plus the references ``("lora", None)`` and ``("mp_lora", None)``.
    The profile's own setting carries the Hessian, so it is notebook 04's first-seed run."""
    tc = cfg.train

    def smp(**kw):
        default = all(v == getattr(tc, k) for k, v in kw.items())
        return config.replace(cfg, method="smp_lora", **kw, **(hessian if default else {}))

    grid = {("lam", lam): smp(lam=lam) for lam in lams}
    grid.update({("lr", tc.lr * f): smp(lr=tc.lr * f) for f in lr_factors})
    grid.update({("rank", max(1, round(tc.lora_rank * f))): smp(lora_rank=max(1, round(tc.lora_rank * f)))
                 for f in rank_factors})
    grid.update({("lora", None): config.replace(cfg, method="lora"),
                 ("mp_lora", None): config.replace(cfg, method="mp_lora", **hessian)})
    return grid
