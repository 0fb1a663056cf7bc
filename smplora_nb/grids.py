"""The run grids of the series: which configs each notebook trains (smplora_nb, arXiv 2402.11989 companion).

Every grid is ``{key: Config}`` for ``runs.train_many``; keys are ``(model, k)`` with ``model`` in the glossary's
vocabulary (``lora``, ``mp_lora``, ``smp_lora``, ``lora_early_stop``, ``dp_lora_eps8``, ...) and k the **split**:
an independent member split of the same private pool (k = 0: the deal of ``split_seed``; k >= 1: the private images
re-dealt with ``member_seed`` k), trained with seed ``seed + k``. The last element of every key is its split
(``split_index``). The diagnostics rule (issue 8): the private runs of split 0 carry the Hessian diagnostic
(``hessian``), so that notebooks 03 to 06 train each run once and read it from the cache afterwards; LoRA's runs
carry none unless asked.
"""
from __future__ import annotations

from . import config, diagnostics, methods
from .labels import dp_key
from .runs import snapshots


def split_index(key) -> int:
    """The split of a run key: its last element when that is an int, else 0."""
    last = key[-1] if isinstance(key, tuple) else key
    return last if isinstance(last, int) and not isinstance(last, bool) else 0


def split_config(cfg, k: int, **kw):
    """The config of a run on split ``k``: member seed k (none for k = 0) and training seed ``seed + k``."""
    ms = {} if k == 0 else {"member_seed": k}
    return config.replace(cfg, seed=cfg.train.seed + k, **ms, **kw)

FRONTIER_EPOCHS = (1, 2, 5, 15, 45)   # plain LoRA saves its adapter after these epochs: the early-stopping frontier


def splits(n: int) -> list[int]:
    """The split indices 0 .. n - 1 (``bench``: split k re-deals the private pool with member seed k, seed + k)."""
    if n < 1:
        raise ValueError(f"n_splits must be at least 1, got {n}")
    return list(range(n))


def run(cfg, method: str, k: int, hessian: dict, **kw):
    """The config of one run on split ``k`` under the diagnostics rule (module docstring); plain LoRA saves the
    frontier's snapshots (``FRONTIER_EPOCHS`` before its last epoch), so that every notebook shares its runs."""
    diag = hessian if k == 0 and method != "lora" else {}
    if method == "lora" and "snapshot_epochs" not in kw:
        epochs = kw.get("epochs", cfg.train.epochs)
        kw["snapshot_epochs"] = tuple(e for e in FRONTIER_EPOCHS if e < epochs)
    return split_config(cfg, k, method=method, **diag, **kw)


def method_runs(cfg, models, ks, hessian: dict) -> dict:
    """``{(model, k): config}`` for every method of ``models`` on every split of ``ks``."""
    return {(m, k): run(cfg, m, k, hessian) for k in ks for m in models}


def early_stopped(cfg, logs: dict, ks) -> dict:
    """``{("lora_early_stop", k): config}``: plain LoRA stopped at the first epoch whose training loss reaches
    SMP-LoRA's final training loss on the same split (training logs only: no evaluation data is read)."""
    return {("lora_early_stop", k): split_config(cfg, k, method="lora", epochs=diagnostics.epoch_reaching(
        logs["lora", k], diagnostics.final_epoch_loss(logs["smp_lora", k]))) for k in ks}


def two_forwards(cfg, ks) -> dict:
    """``{("smp_lora_two_forwards", k): config}``: SMP-LoRA with the official code's second U-Net forward."""
    return {("smp_lora_two_forwards", k): split_config(cfg, k, method="smp_lora", two_forwards=True) for k in ks}


def mp_variants(cfg, stabilisers, grad_clip: float, hessian: dict, lora_hessian: bool = False) -> dict:
    """Notebook 03, split 0: LoRA, MP-LoRA (with the Hessian) and its Table 10 stabilisers (``"clip"``,
    ``"normalize"``), keyed ``(model, 0)``."""
    unknown = set(stabilisers) - {"clip", "normalize"}
    if unknown:
        raise ValueError(f"unknown stabilisers {sorted(unknown)}: use 'clip' and/or 'normalize'")
    out = {"lora": run(cfg, "lora", 0, {}, **(hessian if lora_hessian else {})),
           "mp_lora": run(cfg, "mp_lora", 0, hessian)}
    if "clip" in stabilisers:
        out["mp_lora_clip"] = run(cfg, "mp_lora", 0, {}, grad_clip=grad_clip)
    if "normalize" in stabilisers:
        out["mp_lora_normalize"] = run(cfg, "mp_lora", 0, {}, grad_normalize=True)
    return {(m, 0): c for m, c in out.items()}


def dp_runs(cfg, epsilons, epochs: int, ks) -> dict:
    """``{(dp_key(eps), k): config}``: DP-LoRA at each budget on every split of ``ks``, under ``methods.DP_SETTINGS``."""
    return {(dp_key(eps), k): split_config(cfg, k, method="dp_lora", dp_epsilon=eps, epochs=epochs,
                                           **methods.DP_SETTINGS) for eps in epsilons for k in ks}


def dp_keys(epsilons) -> list[str]:
    """The model keys of DP-LoRA at each budget of ``epsilons`` (``labels.dp_key``), in that order."""
    return [dp_key(eps) for eps in epsilons]


def with_base(trained: dict, ks) -> dict:
    """``{("base", k): None}`` on every split of ``ks`` (the base model, the control: no run folder), then the runs
    of ``trained``: what an audit of the trained runs and their control evaluates."""
    return {**{("base", k): None for k in ks}, **trained}


def ablation_grid(cfg, lams, lr_factors, rank_factors, hessian: dict) -> dict:
    """Notebook 05, split 0: ``{(family, value, 0): config}`` changing one setting of SMP-LoRA at a time (``lam``;
    ``lr`` and ``lora_rank`` as multiples of the profile's), plus the references ``("lora", None, 0)`` and
    ``("mp_lora", None, 0)``. The profile's own setting carries the Hessian, so it is notebook 04's split-0 run."""
    tc = cfg.train

    def smp(**kw):
        return run(cfg, "smp_lora", 0, hessian if all(v == getattr(tc, k) for k, v in kw.items()) else {}, **kw)

    grid = {("lam", lam, 0): smp(lam=lam) for lam in lams}
    grid.update({("lr", tc.lr * f, 0): smp(lr=tc.lr * f) for f in lr_factors})
    grid.update({("rank", max(1, round(tc.lora_rank * f)), 0): smp(lora_rank=max(1, round(tc.lora_rank * f)))
                 for f in rank_factors})
    grid.update({("lora", None, 0): run(cfg, "lora", 0, {}), ("mp_lora", None, 0): run(cfg, "mp_lora", 0, hessian)})
    return grid


def snapshot_keys(trained: dict) -> dict:
    """``{("lora_snapshot", epoch, k): folder}``: the saved adapters of every plain LoRA run ``("lora", k)`` of
    ``trained`` before its last epoch (``runs.snapshots``)."""
    return {("lora_snapshot", e, k[1]): f for k, run in trained.items() if k[0] == "lora"
            for e, f in snapshots(run).items() if f != run}


def frontier_curve(ks, snapshot_epochs, epochs: int) -> dict:
    """``{epoch: [keys, one per split]}`` of plain LoRA along training: the base model at epoch 0, the snapshots,
    and the final LoRA at ``epochs``."""
    out = {0: [("base", k) for k in ks]}
    out.update({e: [("lora_snapshot", e, k) for k in ks] for e in snapshot_epochs if e < epochs})
    out[epochs] = [("lora", k) for k in ks]
    return out
