"""Solutions to notebook 05's exercises. Each takes what the notebook has built (``cfg``, ``splits``, ``base``,
``ablations``, ``hessian``) and returns what to look at; ``tests/test_solutions.py`` runs every one on tiny inputs."""
from smplora_nb import grids, runs, study


def exercise_1(ablations):
    """The paper's Table 6 trend as two rank correlations over the ``lam`` grid: a larger ``lam`` should give a
    worse (higher) FID, rho > 0, and a weaker attack, rho < 0. With two or three settings rho is +-1 or close to
    it by construction: the sign is the finding, not the size."""
    return {y: study.rank_correlation(ablations["lam"], "lam", y) for y in ("fid", "asr")}


def exercise_2(ablations, m04):
    """One seed per setting: a difference between two ``lam`` settings means something only beyond the seed spread,
    here notebook 04's sd of SMP-LoRA's ``auc_dev`` over its seeds (``m04 = schema.read("04_smp_lora_training")``).
    Twice the sd is the rule the series uses for "no difference"."""
    spread = max(r["auc_dev"] for r in ablations["lam"]) - min(r["auc_dev"] for r in ablations["lam"])
    sd = m04["noise_floor"]["smp_lora"]["loss_map_mlp"]["sd"]
    return {"auc_dev_spread": spread, "seed_sd": sd, "beyond_noise": spread > 2 * sd}


def exercise_3(cfg, splits, base, hessian, lams=(1.0, 0.3)):
    """Every run is cached by its full config, so a grid with one more ``lam`` trains only that setting; the
    default setting is one run shared by the three families (and with notebook 04's first seed)."""
    grid = grids.ablation_grid(cfg, list(lams), [1.0], [1.0], hessian)
    cached = runs.cached(grid, splits, base)
    return {"to_train": sorted(map(str, set(grid) - set(cached))), "read_from_cache": sorted(map(str, cached)),
            "distinct_runs": len({runs.run_key(c, splits, base) for c in grid.values()})}
