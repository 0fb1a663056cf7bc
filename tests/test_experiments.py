"""The experiments layer on synthetic records: run grids, the analyses of ``study``, each notebook's claims (each
shown failing on a counterexample), the one Markdown writer, the schema and the explorer's entries."""
import numpy as np
import pytest

from smplora_nb import config, findings, grids, runner, schema, study, tables, viz, widgets


def _record(auc, seed=0, n=40):
    """An attack record with D_te scores whose AUC is about ``auc``."""
    from smplora_nb import metrics

    rng = np.random.default_rng(seed)
    shift = np.sqrt(2) * __import__("scipy.stats", fromlist=["norm"]).norm.ppf(auc)
    sm, sn, threshold = rng.normal(shift, 1, n), rng.normal(0, 1, n), shift / 2     # the balanced threshold
    return {**metrics.membership(sm, sn, threshold), "ci": metrics.bootstrap_ci(sm, sn, 200),
            "chosen_on_aux": {"timestep": 100, "sign": 1, "threshold": threshold,
                              "aux_auc_by_t": {"50": 0.5, "100": auc}},
            "scores_member": sm.tolist(), "scores_nonmember": sn.tolist()}


ATTACKS = ("loss_map_mlp", "loss_map_mlp_ref", "loss_at_t", "loss_at_t_ref", "sima")


def _eval(aucs: dict, seed=0, fid=1.0, nonmember_loss=0.1):
    return {"audit": {a: _record(v, seed + i) for i, (a, v) in enumerate(aucs.items())},
            "quality": {"fid": fid, "kid": 0.1}, "mean_loss": {"nonmember_te": nonmember_loss}}


def _evals(per_model: dict, seeds=(1, 2, 3)):
    return {(m, s): _eval({a: auc for a in ATTACKS}, seed=10 * s, fid=fid) for m, (auc, fid) in per_model.items()
            for s in seeds}


def test_grids_follow_the_diagnostics_rule():
    cfg = config.make("tiny")
    hess = {"hessian_every": 5, "hessian_iters": 2}
    jobs = grids.method_runs(cfg, ("lora", "smp_lora"), [7, 8], hess)
    assert set(jobs) == {("lora", 7), ("smp_lora", 7), ("lora", 8), ("smp_lora", 8)}
    assert jobs["smp_lora", 7].train.hessian_every == 5 and not jobs["smp_lora", 8].train.hessian_every
    assert not jobs["lora", 7].train.hessian_every                      # LoRA carries none
    assert grids.seeds(cfg, 3) == [cfg.train.seed, cfg.train.seed + 1, cfg.train.seed + 2]
    dp = grids.dp_runs(cfg, [1.0, 8.0], 3, 7)
    assert set(dp) == {("dp_lora_eps1", 7), ("dp_lora_eps8", 7)} and dp["dp_lora_eps8", 7].train.dp_epsilon == 8.0
    with pytest.raises(ValueError, match="stabilisers"):
        grids.mp_variants(cfg, ["clip", "spectral"], 1.0, hess)
    assert set(grids.mp_variants(cfg, ["clip"], 1.0, hess)) == {("lora", cfg.train.seed), ("mp_lora", cfg.train.seed),
                                                               ("mp_lora_clip", cfg.train.seed)}


def test_ablation_grid_shares_the_default_run_and_early_stop_reads_logs_only():
    cfg = config.make("tiny")
    grid = grids.ablation_grid(cfg, [cfg.train.lam, 0.1], [1.0, 0.5], [1.0], {"hessian_every": 5, "hessian_iters": 2})
    assert grid["lam", cfg.train.lam] == grid["lr", cfg.train.lr] == grid["rank", cfg.train.lora_rank]
    assert grid["lam", cfg.train.lam].train.hessian_every == 5 and not grid["lam", 0.1].train.hessian_every
    assert ("lora", None) in grid and ("mp_lora", None) in grid
    logs = {("lora", 1): {"epochs": 4, "l_ada": [4, 4, 3, 3, 2, 2, 1, 1]},
            ("smp_lora", 1): {"epochs": 4, "l_ada": [4, 4, 3, 3, 3, 3, 2.5, 2.5]}}
    assert grids.early_stopped(cfg, logs, [1])["lora_early_stop", 1].train.epochs == 3   # 2.0 <= 2.5 at epoch 3


def test_summaries_noise_floors_and_points():
    evals = _evals({"lora": (0.9, 1.0), "base": (0.5, 2.0)})
    summary = study.summaries(evals)
    assert list(summary) == ["lora", "base"] and set(summary["lora"]["per_seed"]) == {"1", "2", "3"}
    floors = study.noise_floors(summary)
    assert floors["lora"]["sima"]["n"] == 3 and floors["lora"]["sima"]["sd"] > 0
    pts = study.points(summary)
    assert len(pts["lora"]["per_seed"]) == 3 and pts["lora"]["per_seed"][0]["fid"] == 1.0


def test_matrix_verdicts_spread_and_strongest():
    evals = _evals({"lora": (0.95, 1.0), "smp_lora": (0.5, 1.2)})
    matrix = study.matrix(evals, {"lora": ("lora", 1), "smp_lora": ("smp_lora", 1)}, ATTACKS)
    assert "scores_member" not in matrix["lora"]["sima"] and "ci" in matrix["lora"]["sima"]
    v = study.verdicts(matrix)
    assert set(v["lora"].values()) == {"leaks"} and "leaks" not in v["smp_lora"].values()
    rows = study.spread(evals, study.spread_groups(("lora",), [1, 2, 3], [5], evals), ATTACKS)
    assert [r["over"] for r in rows] == ["seeds"]                       # one member split: no spread
    assert rows[0]["sima"]["sd"] >= 0
    evals["lora", 1]["audit"]["pia"] = _record(0.3)                      # a reversed signal on D_aux is a signal
    evals["lora", 1]["audit"]["pia"]["chosen_on_aux"]["aux_auc_by_t"] = {"100": 0.02}
    assert study.strongest(evals["lora", 1]["audit"], ("loss_at_t", "pia")) == "pia"


def test_frontier_gap_and_dp_audit():
    evals = {("lora_snapshot", 0): _eval({"sima": 0.5}, fid=3.0), ("lora_snapshot", 5): _eval({"sima": 0.9}, fid=1.0),
             ("smp_lora", 1): _eval({"sima": 0.7}, fid=1.5), ("dp_lora_eps1", 1): _eval({"sima": 0.5}, fid=3.5)}
    f = study.frontier(evals, {0: ("lora_snapshot", 0), 5: ("lora_snapshot", 5)},
                       {"smp_lora": [("smp_lora", 1)], "dp_lora_eps1": [("dp_lora_eps1", 1)]}, "sima", "fid")
    assert [c["epoch"] for c in f["curve"]] == [0, 5]
    assert f["gap"]["smp_lora"] == pytest.approx(evals["lora_snapshot", 5]["audit"]["sima"]["auc"]
                                                 - evals["smp_lora", 1]["audit"]["sima"]["auc"])
    a = study.dp_audit(evals, ("dp_lora_eps1", 1), "sima", 1e-5)
    assert a["attack"] == "sima" and a["epsilon_lower_bound"] >= 0


def test_ablation_tables_and_rank_correlation():
    evals = {("lam", 1.0): _eval({"loss_map_mlp": 0.6}, fid=2.0), ("lam", 0.1): _eval({"loss_map_mlp": 0.8}, fid=1.0),
             ("lora", None): _eval({"loss_map_mlp": 0.9}, fid=0.9)}
    t, refs = study.ablation_tables(evals, ("lam",))
    assert [r["lam"] for r in t["lam"]] == [1.0, 0.1] and set(refs) == {"lora"}
    assert study.rank_correlation(t["lam"], "lam", "fid") == pytest.approx(1.0)
    assert study.ablation_families(t)["SMP-LoRA, lam"][0][0] == "lam 1"
    assert study.prediction_ratio([1.0, 1.1, 0.9], [1.0]) < 1 < study.prediction_ratio([1.0, 1.1, 0.9], [3.0])


def _summary(lora_auc, smp_auc, fid_smp=1.0, early_asr=0.5):
    def method(auc, fid, asr=None):
        ev = _eval({a: auc for a in ATTACKS}, fid=fid)
        s = study.summaries({("m", 1): ev})["m"]
        if asr is not None:
            s["mean"]["asr"] = asr
        return s
    return {"lora": method(lora_auc, 1.0), "base": method(0.5, 2.0), "mp_lora": method(0.6, 3.0),
            "smp_lora": method(smp_auc, fid_smp), "lora_early_stop": method(0.6, 1.0, early_asr)}


def test_notebook_claims_hold_and_fail_on_counterexamples():
    good, bad = _summary(0.97, 0.5), _summary(0.55, 0.9, fid_smp=5.0, early_asr=0.4)
    assert all(c["holds"] for c in findings.attack_02(good)[:2]) and not any(c["holds"] for c in findings.attack_02(bad)[:2])
    control = [c for c in findings.attack_02(good) if c["claim"].startswith("control")]
    assert len(control) == 1 and control[0]["holds"]                       # the base model at 0.5: not detected
    leaky = {**good, "base": good["lora"]}                                    # a base model that "leaks"
    assert not [c for c in findings.attack_02(leaky) if c["claim"].startswith("control")][0]["holds"]
    stats = {"mp_lora": {"grad_norm_cv": 2.0, "grad_scale_privacy_std": 2.0, "grad_scale_ada_std": 1.0,
                         "pcc_grad_hessian": 0.1}, "smp_lora": {"grad_norm_cv": 0.5}, "lora": {"grad_norm_cv": 0.5}}
    c4 = {c["claim"][:40]: c["holds"] for c in findings.smp_04(good, stats, 1)}
    c4_bad = {c["claim"][:40]: c["holds"] for c in findings.smp_04(bad, stats, 1)}
    assert c4 != c4_bad and sum(c4.values()) > sum(c4_bad.values())
    assert [c["holds"] for c in findings.mp_03(good, stats)][2] is True  # cv ratio 4 > 3
    stats["lora"]["grad_norm_cv"] = 1.0
    assert [c["holds"] for c in findings.mp_03(good, stats)][2] is False  # cv ratio 2: not unstable enough
    lam_up = {"lam": [{"lam": 0.1, "fid": 1.0, "asr": 0.8}, {"lam": 1.0, "fid": 2.0, "asr": 0.6}]}
    lam_down = {"lam": [{"lam": 0.1, "fid": 2.0, "asr": 0.6}, {"lam": 1.0, "fid": 1.0, "asr": 0.8}]}
    assert all(c["holds"] for c in findings.ablation_05(lam_up, {"lora": {"asr": 0.9}}))
    assert not any(c["holds"] for c in findings.ablation_05(lam_down, {"lora": {"asr": 0.5}}))


def test_notebook_06_claims_and_the_dp_check():
    evals = _evals({"lora": (0.95, 1.0), "smp_lora": (0.5, 1.2), "dp_lora_eps1": (0.5, 3.0)}, seeds=(1,))
    matrix = study.matrix(evals, {m: (m, 1) for m in ("lora", "smp_lora", "dp_lora_eps1")}, ATTACKS)
    front = {"sima": {"fid": {"gap": {"smp_lora": -0.1}, "curve": [], "points": {}}}}
    dp = {"dp_lora_eps1": {"epsilon_spent": 1.0, "epsilon_target": 1.0, "delta": 1e-5}}
    audit = {"dp_lora_eps1": {"epsilon_lower_bound": 0.2, "attack": "sima"}}
    out, checks = findings.attacks_06(matrix, front, audit, dp)
    assert len(out) == 2 * len(ATTACKS) + 2 and checks[0]["ok"]
    assert all(c["holds"] for c in out[:len(ATTACKS)])                  # LoRA leaks to every attack
    assert out[-2]["holds"] is False                                      # not beyond the frontier
    audit["dp_lora_eps1"]["epsilon_lower_bound"] = 1.5                    # an audit above the budget: a bug shows
    assert findings.attacks_06(matrix, front, audit, dp)[0][-1]["holds"] is False
    text = findings.conclusion_06(study.verdicts(matrix), {m: {"fid": 1.0, "heldout_loss": 0.1}
                                                           for m in ("base", "lora", "smp_lora", "dp_lora_eps1")},
                                  front, audit, dp)
    assert "Caution" in text and "DP-LoRA (eps 1)" in text


def test_one_markdown_writer_and_labels():
    md = tables.markdown([{"a": "x|y", "b": 0.123456}, {"a": "z", "b": None}])
    assert md.splitlines() == ["| a | b |", "|---|---:|", "| x\\|y | 0.1235 |", "| z |  |"]
    assert viz.label("dp_lora_eps8") == "DP-LoRA (eps 8)" and viz.label("loss_at_t_ref").startswith("Loss@t")
    assert viz.label("lora_early_stop") == "LoRA stopped early" and viz.label("other") == "other"


def test_schema_names_what_is_missing(tmp_path):
    with pytest.raises(ValueError, match="noise_floor"):
        schema.check("02_membership_inference_attack", {"profile": "tiny", "seeds": [1], "claims": [],
                                                        "lora": {}, "base": {}})
    m = {"lora": {"per_seed": {}, "attacks": {}, "quality": {}, "mean": {"asr": 0.7}, "sem": {}}, "profile": "tiny"}
    assert schema.methods(m) == ["lora"] and schema.headline(m, "lora")["asr"] == 0.7


def test_explorer_entries_offer_lam_only_where_it_applies():
    tc = config.make("tiny").train
    grid = {("lam", 1.0): "a", ("lam", 0.1): "b", ("lora", None): "c", ("mp_lora", None): "d", ("lr", 0.1): "e"}
    out = widgets.entries(grid, {("lora", 2): "f", ("smp_lora", 2): "g"}, tc)
    assert out[("lora", None, tc.seed)] == "c" and out[("smp_lora", 0.1, tc.seed)] == "b"
    assert out[("mp_lora", tc.lam, tc.seed)] == "d" and out[("smp_lora", tc.lam, 2)] == "g"
    assert all(k[1] is None for k in out if k[0] == "lora") and "e" not in out.values()


def test_runner_folds_config_fields_into_overrides(monkeypatch):
    """A split size given to every notebook reaches those without such a parameter through ``overrides``."""
    seen = {}
    monkeypatch.setattr(runner, "_execute", lambda nb, params, final, shard, progress: seen.setdefault(nb.stem, params)
                        and False)
    runner.run(only=["01", "02"], params={"member_aux": 30, "epochs": 3}, progress=False)
    assert seen["01_data_splitting"]["member_aux"] == 30
    assert seen["02_membership_inference_attack"]["overrides"] == {"member_aux": 30}
    assert seen["02_membership_inference_attack"]["epochs"] == 3
    with pytest.raises(ValueError, match="unknown notebook parameter"):
        runner.run(only=["02"], params={"not_a_field": 1}, progress=False)


def test_utilities_are_means_over_seeds():
    evals = {("lora", 1): _eval({"sima": 0.9}, fid=1.0, nonmember_loss=0.2),
             ("lora", 2): _eval({"sima": 0.9}, fid=3.0, nonmember_loss=0.4)}
    evals["lora", 1]["quality"]["digit_accuracy"], evals["lora", 2]["quality"]["digit_accuracy"] = 0.5, 0.7
    u = study.utilities(evals)["lora"]
    assert u["fid"] == 2.0 and u["heldout_loss"] == pytest.approx(0.3) and u["sample_accuracy"] == pytest.approx(0.6)
    assert "sample_accuracy" not in study.utility(_eval({"sima": 0.5}))           # no labels, no accuracy


def _utility_evals(lora_fids=(1.0, 1.2), base_fid=3.0, lora_loss=(0.10, 0.11), base_loss=0.15, acc=(0.9, 0.8)):
    evals = {}
    for i, s in enumerate((1, 2)):
        evals["lora", s] = _eval({"sima": 0.9}, fid=lora_fids[i], nonmember_loss=lora_loss[i])
        evals["base", s] = _eval({"sima": 0.5}, fid=base_fid, nonmember_loss=base_loss)
        evals["lora", s]["quality"]["digit_accuracy"], evals["base", s]["quality"]["digit_accuracy"] = acc[i], 0.1
    return evals


def test_utility_floors_and_no_difference_inside_them():
    evals = _utility_evals()
    floors = study.utility_floors(evals)
    assert floors["lora"]["fid"]["sd"] == pytest.approx(np.std([1.0, 1.2], ddof=1)) and floors["lora"]["fid"]["n"] == 2
    c = study.compare_utility(evals, "base", "lora")
    assert c["fid"]["verdict"] == "higher" and c["sample_accuracy"]["verdict"] == "lower"
    assert c["kid"]["verdict"] == "no difference"                               # equal kid: inside any floor
    close = _utility_evals(lora_fids=(1.0, 3.0), base_fid=2.2)                  # 2.2 vs 2.0 with sd 1.4: noise
    assert study.compare_utility(close, "base", "lora")["fid"]["verdict"] == "no difference"
    by = {"base": [("base", 1)], "lora": [("lora", 1), ("lora", 2)]}            # explicit groups (notebook 06)
    assert study.utilities(evals, by=by)["base"]["fid"] == 3.0
    text = tables.utility_table(study.utilities(evals), floors, {"base": c})
    assert "no difference vs LoRA" in text and "sd 0.14" in text


def test_adaptation_claims_hold_and_fail():
    evals = _utility_evals()
    u, per = study.utilities(evals), study.utility_per_seed(evals)
    assert all(c["holds"] for c in findings.adaptation(u, per))
    worse = _utility_evals(lora_fids=(2.0, 3.5), lora_loss=(0.14, 0.145), acc=(0.6, 0.5))   # buys too little
    held = [c["holds"] for c in findings.adaptation(study.utilities(worse), study.utility_per_seed(worse))]
    assert held == [False, True, False, False]
    one_base = {"base": {"0": {"fid": 1.1}}, "lora": per["lora"]}              # one base entry: each seed against it
    assert findings.adaptation(u, one_base)[-1]["value"] == 0.5
