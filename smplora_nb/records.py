"""One record builder per notebook: everything a notebook's ``metrics.json`` holds, computed from what it trained and
audited (smplora_nb, arXiv 2402.11989 companion). A notebook calls its builder, shows parts of the record and writes
it with ``schema.write``; ``schema`` declares the shape, ``findings`` the claims, ``study`` and ``powered`` the
analyses. Nothing here trains or audits.
"""
from __future__ import annotations

from . import attack, claims, duplicates, evaluate, findings, pooled, powered, sets, study, tinybase
from .grids import split_index

MAP_ATTACKS = attack.MAP_ATTACKS


def _seeds(bench, keys) -> dict:
    return {str(split_index(k)): bench.seed(k) for k in keys}


def _n_samples(bench, keys) -> int:
    """How many images the sample accuracy of runs ``keys`` read: one per member caption, on every split."""
    return sum(len(bench.split(split_index(k))["member_aux"]) + len(bench.split(split_index(k))["member_te"])
               for k in keys)


def _sampling(bench, trained, evals_key) -> dict:
    """The FID/KID sampling floor of plain LoRA on split 0 (``evaluate.fid_floor``)."""
    mc = bench.cfg.model
    return evaluate.fid_floor(bench.base, trained[evals_key], bench.split(split_index(evals_key)), bench.extractor,
                              mc.sample_steps, mc.guidance_scale)


def build_01(bench, disjoint: dict, quality: dict, split_check: dict, n_samples: int) -> dict:
    """Notebook 01: the split, its checks, the base model's samples and the model-free split check."""
    cfg, log = bench.cfg, tinybase.pretrain_log(bench.base)
    out = {"profile": cfg.profile, "dataset": cfg.data.dataset, "split_seed": cfg.split.split_seed,
           "private_classes": cfg.split.private_classes, "counts": sets.counts(bench.splits), "n_items": len(bench.items),
           "n_distinct": len(duplicates.dedupe(bench.items)), "disjoint": disjoint["disjoint"], "base_model": str(bench.base),
           "pretrain_seconds": log["seconds"] if log else None,
           "pretrain_threads": log.get("torch_threads") if log else None, "n_samples": n_samples, **quality,
           "model_free_split_check": split_check}
    out["claims"], out["checks"] = findings.split_01(disjoint["disjoint"], quality, split_check, n_samples)
    return out


def pooled_records(evals, groups: dict, attacks, n_boot: int = pooled.N_BOOT) -> tuple[dict, dict]:
    """``powered.matrix`` of ``groups`` with the design's draws (``powered.draws``)."""
    return powered.matrix(evals, groups, attacks, powered.draws(evals, n_boot))


def build_02(bench, evals: dict, logs: dict, trained: dict, mlp_epochs: int) -> dict:
    """Notebook 02: LoRA and the base model on every split, each attack per split and pooled, the utilities."""
    by = {m: [k for k in evals if k[0] == m] for m in ("lora", "base")}
    summary = study.summaries(evals, ["lora", "base"])
    records, objs = pooled_records(evals, by, MAP_ATTACKS)
    sampling = _sampling(bench, trained, ("lora", 0))
    out = {"profile": bench.cfg.profile, "splits": [split_index(k) for k in by["lora"]], "seeds": _seeds(bench, by["lora"]),
           "feature_extractor": bench.extractor.description,
           "attack": {"timesteps": list(attack.TIMESTEPS), "n_draws": attack.N_DRAWS, "mlp_epochs": mlp_epochs,
                      "selection": "MLP epoch on a held-out 25% of D_aux; threshold attacks: timestep, direction and "
                                   "threshold on D_aux"},
           "train_seconds": {str(k[1]): log["seconds_this_session"] for k, log in logs.items()}, **summary,
           "noise_floor": study.noise_floors(summary), "pooled": records,
           "utility": study.utilities(evals, by=by), "utility_noise_floor": study.utility_floors(evals, by=by),
           "utility_per_split": study.utility_per_split(evals, by=by), "fid_floor": sampling,
           "utility_vs_lora": {"base": study.compare_utility(evals, "base", "lora", by, sampling)}}
    ref = powered.versus(objs["lora"]["loss_at_t"], objs["lora"]["loss_at_t_ref"])     # auc_dev(ref) - auc_dev(plain)
    out["claims"], out["checks"] = findings.attack_02(records, ref)
    out["claims"] += findings.adaptation(out["utility"], out["utility_per_split"], sampling,
                                         powered.gain(evals, by["lora"], by["base"], powered.draws(evals)),
                                         _n_samples(bench, by["lora"]))
    return out


def build_03(bench, evals: dict, logs: dict, trained: dict, **params) -> dict:
    """Notebook 03: LoRA, MP-LoRA and its stabilisers on split 0: audits, diagnostics, quality against LoRA;
    ``params`` (the notebook's ``grad_clip``, ``stabilisers``, ``hessian``) are recorded as they are."""
    summary = study.summaries(evals)
    stats = study.split_stats(logs, 0)
    records, _ = pooled_records(evals, {m: [(m, 0)] for m in summary}, MAP_ATTACKS)
    sampling = _sampling(bench, trained, ("lora", 0))
    vs_lora = {m: study.compare_utility(evals, m, "lora", sampling=sampling) for m in summary if m != "lora"}
    out = {"profile": bench.cfg.profile, "split": 0, "seed": bench.seed(("lora", 0)), "lam": bench.cfg.train.lam,
           "proxy_feature": bench.cfg.train.proxy_feature, "feature_extractor": bench.extractor.description, **params,
           **{m: {**s, "diagnostics": stats[m], **study.run_facts(logs, m)} for m, s in summary.items()},
           "pooled": records, "fid_floor": sampling, "utility_vs_lora": vs_lora}
    out["claims"] = findings.mp_03(records, stats, vs_lora)
    return out


def build_04(bench, evals: dict, logs: dict, trained: dict, methods) -> dict:
    """Notebook 04: LoRA, MP-LoRA and SMP-LoRA over the splits (Table 1 analogue), diagnostics, the two checks."""
    summary = study.summaries(evals)
    ks = sorted({split_index(k) for k in evals if k[0] == "lora"})
    by = {m: [k for k in evals if k[0] == m] for m in summary}
    records, objs = pooled_records(evals, by, MAP_ATTACKS)
    stats = study.training_stats(logs, methods)
    sampling = _sampling(bench, trained, ("lora", 0))
    vs_lora = {m: study.compare_utility(evals, m, "lora", by, sampling) for m in summary if m != "lora"}
    out = {"profile": bench.cfg.profile, "splits": ks, "seeds": _seeds(bench, by["lora"]), "lam": bench.cfg.train.lam,
           "proxy_feature": bench.cfg.train.proxy_feature, "feature_extractor": bench.extractor.description, **summary,
           "noise_floor": study.noise_floors(summary), "pooled": records, "fid_floor": sampling,
           "utility": study.utilities(evals, by=by), "utility_noise_floor": study.utility_floors(evals, by=by),
           "utility_vs_lora": vs_lora}
    for m in summary:
        out[m].update(study.run_facts(logs, m), **({"diagnostics": stats[m]} if m in stats else {}))
    early = None
    if "lora_early_stop" in objs:
        early = powered.versus(objs["smp_lora"][findings.PAPER], objs["lora_early_stop"][findings.PAPER])
    two = None
    if "smp_lora_two_forwards" in summary:
        one, t2 = out["smp_lora"]["mean"], out["smp_lora_two_forwards"]["mean"]
        two = {"fid": t2["fid"] - one["fid"], "auc": t2["auc"] - one["auc"]}
    out["early_stop_vs_smp"] = early
    out["claims"] = findings.smp_04(records, stats, vs_lora,
                                    study.compare_utility(evals, "mp_lora", "smp_lora", by, sampling), early, two)
    return out


def build_05(bench, evals: dict, logs: dict, **grid) -> dict:
    """Notebook 05: the ablation tables (split 0), their paired comparison with LoRA, the Table 6 trend; ``grid``
    (the notebook's ``lam``, ``lr_factors``, ``rank_factors``) is recorded as it is."""
    tables, refs = study.ablation_tables(evals)
    d = powered.draws(evals)
    lora = powered.pool(evals, [("lora", None, 0)], findings.PAPER, d)
    vs_lora = {f"{k[0]} {k[1]:g}": powered.versus(powered.pool(evals, [k], findings.PAPER, d), lora)
               for k in evals if k[0] in ("lam", "lr", "rank")}
    out = {"profile": bench.cfg.profile, "split": 0, "seed": bench.cfg.train.seed,
           "feature_extractor": bench.extractor.description, "grid": grid, "ablations": tables, "references": refs,
           "vs_lora": vs_lora, "train_seconds": {f"{k[0]} {k[1]}": log["seconds_this_session"] for k, log in logs.items()}}
    out["claims"] = findings.ablation_05(tables, vs_lora)
    return out


def build_06(bench, evals: dict, logs: dict, trained: dict, groups: dict, curve: dict, dp_models, n_boot: int) -> dict:
    """Notebook 06, the powered audit: the pooled matrix of every model against every attack, the strongest attack
    chosen on D_aux, the frontier, the comparison with utility-matched DP-LoRA, the DP audit, utilities."""
    d = powered.draws(evals, n_boot)
    records, objs = powered.matrix(evals, groups, list(attack.ATTACKS), d)
    strongest = powered.strongest(evals, groups["lora"], study.THRESHOLD_ATTACKS)
    snapshot_groups = {m: keys for m, keys in groups.items() if m in ("smp_lora", *dp_models)}
    frontier = {a: {u: powered.frontier(evals, curve, snapshot_groups, a, u, d) for u in ("heldout_loss", "fid")}
                for a in attack.with_paper(strongest)}
    dp = {m: logs[groups[m][0]]["dp"] for m in dp_models}
    vs_dp = {m: {"auc_dev": powered.versus(objs["smp_lora"][strongest], objs[m][strongest]),
                 "heldout_loss": powered.utility_versus(evals, groups["smp_lora"], groups[m], "heldout_loss", d)}
             for m in dp_models}
    dp_audit = {m: powered.dp_audit(evals, groups[m], strongest, dp[m]["delta"], dp[m]["epsilon_spent"])
                for m in dp_models}
    utility = study.utilities(evals, by=groups)
    out = {"profile": bench.cfg.profile, "splits": sorted({split_index(k) for k in groups["lora"]}),
           "seeds": _seeds(bench, groups["lora"]), "feature_extractor": bench.extractor.description,
           "attack_order": list(attack.ATTACKS), "model_order": list(groups), "pooled": records,
           "verdicts": powered.verdicts(records), "strongest_threshold_attack_on_aux": strongest,
           "frontier": frontier, "vs_dp": vs_dp, "dp": dp, "dp_audit": dp_audit, "utility": utility,
           "utility_noise_floor": study.utility_floors(evals, by=groups),
           "chosen_on_aux": {m: study.chosen(evals[keys[0]]["audit"]) for m, keys in groups.items()},
           "train_seconds": {" ".join(map(str, k)): log["seconds_this_session"] for k, log in logs.items()}}
    out["claims"], out["checks"] = findings.attacks_06(records, strongest, frontier, vs_dp, dp_audit)
    out["fid_floor"] = _sampling(bench, trained, ("lora", 0))
    out["claims"] += findings.adaptation(utility, study.utility_per_split(evals, by=groups), out["fid_floor"],
                                         powered.gain(evals, groups["lora"], groups["base"], d),
                                         _n_samples(bench, groups["lora"]))
    out["conclusion"] = findings.conclusion_06(records, strongest, frontier, vs_dp, utility)
    return out


def lesson_06(evals: dict, evals_in: dict, attack_name: str, curve: dict) -> dict:
    """Notebook 06's section 5 (split 0): SMP-LoRA against LoRA along training when the private data come from the
    base model's own pool, and LoRA's held-out gain there and on the private domain."""
    d = powered.draws(evals_in)
    return {"frontier": powered.frontier(evals_in, curve, {"smp_lora": [("smp_lora", 0)]}, attack_name,
                                         "heldout_loss", d),
            "gain": {"private_domain": study.adaptation_gain(evals, ("lora", 0), ("base", 0)),
                     "in_distribution": study.adaptation_gain(evals_in, ("lora", 0), ("base", 0))}}


def with_lesson(record: dict, lesson: dict) -> dict:
    """Notebook 06's record with section 5's lesson and its claim (when it ran)."""
    if not lesson:
        return {**record, "in_distribution": {}}
    return {**record, "in_distribution": lesson, "claims": record["claims"] + findings.lesson_06(lesson["gain"])}


def counted(record: dict) -> tuple[int, int]:
    """(claims held, claims that can hold or fail) of a record."""
    cs = claims.counted(record.get("claims", []))
    return sum(c["holds"] for c in cs), len(cs)
