"""The experiments layer on synthetic records: run grids over member splits, the analyses of ``study``, each
notebook's claims (each shown holding on a good example and failing on a counterexample; "not testable" at small
sizes; descriptive where a claim could not fail), every notebook's record builder against the schema, the one
Markdown writer and the explorer's entries."""
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import norm

from smplora_nb import (attack, config, findings, grids, metrics, paths, powered, records, runner, schema, study,
                        tables, viz, widgets)
from smplora_nb.attack import PAPER_ATTACK as PAPER, STRONGEST_MAP_ATTACK as STRONG

ATTACKS = ("loss_map_mlp", "loss_map_mlp_ref", "loss_at_t", "loss_at_t_ref", "sima")
SMALL = (58, 50)           # one split's D_te of the tiny demo before issue 27: "defends" cannot pass
LARGE = (300, 300)         # six splits of these: "defends" passes at AUC 0.5 with power to spare
POWERED = tuple(range(6))


def _attack(auc, seed, sizes=SMALL, aux_auc=None):
    """An attack record whose D_te (and D_aux) scores have AUC about ``auc``: members ~ N(d, 1), non-members
    ~ N(0, 1). At ``auc`` 0.5 the D_te scores are an exact null: both sides the normal quantiles of their size, so
    every split's AUC is exactly 0.5 (a model that learnt nothing, without the luck of a draw)."""
    rng, d = np.random.default_rng(seed), np.sqrt(2) * norm.ppf(auc)
    m, n = sizes
    sm, sn = rng.normal(d, 1, m), rng.normal(0, 1, n)
    if auc == 0.5:
        sm, sn = norm.ppf((np.arange(m) + 0.5) / m), norm.ppf((np.arange(n) + 0.5) / n)
    return {**metrics.membership(sm, sn, d / 2),                      # the balanced threshold
            "chosen_on_aux": {"timestep": 100, "sign": 1, "threshold": d / 2,
                              "aux_auc_by_t": {"50": 0.5, "100": auc if aux_auc is None else aux_auc}},
            "scores_member": sm.tolist(), "scores_nonmember": sn.tolist(),
            "aux_scores_member": rng.normal(d, 1, m).tolist(), "aux_scores_nonmember": rng.normal(0, 1, n).tolist()}


def _eval(aucs: dict, seed=0, fid=1.0, loss=0.1, sizes=SMALL):
    """One evaluation (``evaluate.evaluate``'s shape): ``aucs`` = {attack: AUC}; held-out loss about ``loss``."""
    image_loss = loss + 0.005 * np.random.default_rng(seed + 99).standard_normal(sizes[1])
    return {"audit": {a: _attack(v, seed + i, sizes) for i, (a, v) in enumerate(aucs.items())},
            "quality": {"fid": fid, "kid": 0.1}, "mean_loss": {"nonmember_te": float(image_loss.mean())},
            "image_loss": {"member_te": [loss] * sizes[0], "nonmember_te": image_loss.tolist()}}


def _evals(per_model: dict, ks=(0, 1, 2), sizes=SMALL, attacks=ATTACKS):
    """``{(model, k): evaluation}``, ``per_model`` = {model: (AUC of every attack, or {attack: AUC}; FID)}."""
    return {(m, k): _eval(auc if isinstance(auc, dict) else {a: auc for a in attacks}, 100 * k + 10 * i, fid,
                          sizes=sizes) for i, (m, (auc, fid)) in enumerate(per_model.items()) for k in ks}


def _pooled(per_model: dict, ks, sizes, attacks=ATTACKS, n_boot=200):
    """(pooled records, Pooled objects, evals) of ``_evals`` (``powered.matrix``, one draw per design)."""
    evals = _evals(per_model, ks, sizes, attacks)
    return (*powered.matrix(evals, study.groups(evals), attacks, powered.draws(evals, n_boot)), evals)


# ------------------------------------------------------------------------------------------------ grids

def test_grids_run_every_method_on_every_split_under_the_diagnostics_rule():
    cfg = config.make("tiny")
    hess = {"hessian_every": 5, "hessian_iters": 2}
    jobs = grids.method_runs(cfg, ("lora", "smp_lora"), grids.splits(2), hess)
    assert set(jobs) == {("lora", 0), ("smp_lora", 0), ("lora", 1), ("smp_lora", 1)}
    assert jobs["smp_lora", 0].train.hessian_every == 5 and not jobs["smp_lora", 1].train.hessian_every  # split 0
    assert not jobs["lora", 0].train.hessian_every                          # LoRA carries no Hessian...
    assert jobs["lora", 0].train.snapshot_epochs == grids.FRONTIER_EPOCHS    # ...but the frontier's snapshots
    assert not jobs["smp_lora", 0].train.snapshot_epochs
    short = grids.method_runs(config.replace(cfg, epochs=3), ["lora"], [0], {})["lora", 0]
    assert short.train.snapshot_epochs == (1, 2)                            # only the epochs before its last
    for k in (0, 1):                                                    # split k: training seed seed + k
        assert jobs["lora", k].train.seed == jobs["smp_lora", k].train.seed == cfg.train.seed + k
    assert jobs["lora", 0].split.member_seed == -1 and jobs["lora", 1].split.member_seed == 1   # k >= 1: re-dealt
    assert jobs["lora", 1].split.split_seed == cfg.split.split_seed                             # same public split
    assert grids.splits(3) == [0, 1, 2]
    with pytest.raises(ValueError, match="n_splits"):
        grids.splits(0)
    keys = [("lora", 3), ("lam", 0.1, 0), ("lora", None, 0), ("lora_snapshot", 5, 2), ("x", True)]
    assert [grids.split_index(k) for k in keys] == [3, 0, 0, 2, 0]
    dp = grids.dp_runs(cfg, [1.0, 8.0], 3, [0, 1])
    assert set(dp) == {(grids.dp_key(e), k) for e in (1.0, 8.0) for k in (0, 1)}
    eps8 = dp["dp_lora_eps8", 1]
    assert eps8.train.dp_epsilon == 8.0 and eps8.train.epochs == 3 and eps8.train.method == "dp_lora"
    assert eps8.split.member_seed == 1 and eps8.train.seed == cfg.train.seed + 1
    with pytest.raises(ValueError, match="stabilisers"):
        grids.mp_variants(cfg, ["clip", "spectral"], 1.0, hess)
    mp = grids.mp_variants(cfg, ["clip"], 1.0, hess)
    assert set(mp) == {("lora", 0), ("mp_lora", 0), ("mp_lora_clip", 0)}
    assert mp["mp_lora", 0] == grids.method_runs(cfg, ["mp_lora"], [0], hess)["mp_lora", 0]   # notebook 04's run
    assert mp["lora", 0] == jobs["lora", 0]                                 # notebook 02's run, snapshots and all
    assert mp["mp_lora_clip", 0].train.grad_clip == 1.0 and not mp["mp_lora_clip", 0].train.hessian_every


def test_ablation_grid_shares_the_default_run_and_early_stop_reads_logs_only():
    cfg, tc = config.make("tiny"), config.make("tiny").train
    hess = {"hessian_every": 5, "hessian_iters": 2}
    grid = grids.ablation_grid(cfg, [tc.lam, 0.1], [1.0, 0.5], [1.0], hess)
    assert grid["lam", tc.lam, 0] == grid["lr", tc.lr, 0] == grid["rank", tc.lora_rank, 0]
    assert grid["lam", tc.lam, 0] == grids.method_runs(cfg, ["smp_lora"], [0], hess)["smp_lora", 0]   # notebook 04's
    assert grid["lam", tc.lam, 0].train.hessian_every == 5 and not grid["lam", 0.1, 0].train.hessian_every
    assert grid["lora", None, 0] == grids.method_runs(cfg, ["lora"], [0], {})["lora", 0]
    assert ("mp_lora", None, 0) in grid
    assert {grids.split_index(k) for k in grid} == {0}
    logs = {("lora", 1): {"epochs": 4, "l_ada": [4, 4, 3, 3, 2, 2, 1, 1]},
            ("smp_lora", 1): {"epochs": 4, "l_ada": [4, 4, 3, 3, 3, 3, 2.5, 2.5]}}
    stop = grids.early_stopped(cfg, logs, [1])
    assert set(stop) == {("lora_early_stop", 1)}
    stopped = stop["lora_early_stop", 1]
    assert stopped.train.epochs == 3 and stopped.train.method == "lora"    # 2.0 <= 2.5 at epoch 3
    assert stopped.split.member_seed == 1
    two = grids.two_forwards(cfg, [0, 1])
    assert set(two) == {("smp_lora_two_forwards", 0), ("smp_lora_two_forwards", 1)}
    assert two["smp_lora_two_forwards", 1].train.two_forwards
    assert two["smp_lora_two_forwards", 1].train.seed == tc.seed + 1


def test_frontier_curve_and_snapshot_keys(tmp_path):
    trained = {("smp_lora", 0): tmp_path / "smp"}                          # not plain LoRA: no snapshots read
    for k in (0, 1):
        for e in (1, 2):
            (tmp_path / f"lora{k}" / "snapshots" / f"epoch_{e}").mkdir(parents=True)
        paths.write_json(tmp_path / f"lora{k}" / "train_log.json", {"epochs": 4})
        trained["lora", k] = tmp_path / f"lora{k}"
    assert grids.snapshot_keys(trained) == {("lora_snapshot", e, k): tmp_path / f"lora{k}" / "snapshots" / f"epoch_{e}"
                                            for k in (0, 1) for e in (1, 2)}          # the final LoRA is ("lora", k)
    curve = grids.frontier_curve([0, 1], grids.FRONTIER_EPOCHS, 10)
    assert list(curve) == [0, 1, 2, 5, 10]
    assert curve[0] == [("base", 0), ("base", 1)] and curve[10] == [("lora", 0), ("lora", 1)]
    assert curve[5] == [("lora_snapshot", 5, 0), ("lora_snapshot", 5, 1)]


# ------------------------------------------------------------------------------------------------ study

def test_summaries_noise_floors_and_points_per_split():
    evals = _evals({"lora": (0.9, 1.0), "base": (0.5, 2.0)})
    summary = study.summaries(evals)
    assert list(summary) == ["lora", "base"] and set(summary["lora"]["per_split"]) == {"0", "1", "2"}
    assert summary["lora"]["attacks"]["sima"]["n_splits"] == 3
    assert not [k for k in summary["lora"]["per_split"]["0"]["sima"] if "scores_" in k]    # numbers, not scores
    floors = study.noise_floors(summary)
    assert floors["lora"]["sima"]["n"] == 3 and floors["lora"]["sima"]["sd"] > 0
    pts = study.points(summary)
    assert len(pts["lora"]["per_split"]) == 3 and pts["lora"]["per_split"][0]["fid"] == 1.0
    assert study.split_groups(["lora", "base"], [0, 2]) == {"lora": [("lora", 0), ("lora", 2)],
                                                           "base": [("base", 0), ("base", 2)]}
    bare = study.without_scores(evals["lora", 0]["audit"]["sima"])
    assert "auc" in bare and not [k for k in bare if "scores_" in k]


def test_ablation_tables_and_rank_correlation():
    evals = {("lam", 1.0, 0): _eval({PAPER: 0.6}, fid=2.0), ("lam", 0.1, 0): _eval({PAPER: 0.8}, fid=1.0),
             ("lora", None, 0): _eval({PAPER: 0.9}, fid=0.9)}
    t, refs = study.ablation_tables(evals, ("lam",))
    assert [r["lam"] for r in t["lam"]] == [1.0, 0.1] and set(refs) == {"lora"}
    assert study.rank_correlation(t["lam"], "lam", "fid") == pytest.approx(1.0)
    assert study.ablation_families(t)["SMP-LoRA, lam"][0][0] == "lam 1"
    assert study.prediction_ratio([1.0, 1.1, 0.9], [1.0]) < 1 < study.prediction_ratio([1.0, 1.1, 0.9], [3.0])


def test_utilities_are_means_over_splits():
    evals = {("lora", 1): _eval({"sima": 0.9}, fid=1.0, loss=0.2), ("lora", 2): _eval({"sima": 0.9}, fid=3.0, loss=0.4)}
    evals["lora", 1]["quality"]["digit_accuracy"], evals["lora", 2]["quality"]["digit_accuracy"] = 0.5, 0.7
    u = study.utilities(evals)["lora"]
    assert u["fid"] == 2.0 and u["heldout_loss"] == pytest.approx(np.mean([ev["mean_loss"]["nonmember_te"]
                                                                           for ev in evals.values()]))
    assert u["heldout_loss"] == pytest.approx(0.3, abs=0.01)
    assert u["sample_accuracy"] == pytest.approx(0.6)
    assert "sample_accuracy" not in study.utility(_eval({"sima": 0.5}))           # no labels, no accuracy
    assert set(study.utility_per_split(evals)["lora"]) == {"1", "2"}


def _utility_evals(lora_fids=(1.0, 1.2), base_fid=3.0, lora_loss=(0.10, 0.11), base_loss=0.15, acc=(0.9, 0.8)):
    evals = {}
    for i, s in enumerate((1, 2)):
        evals["lora", s] = _eval({"sima": 0.9}, fid=lora_fids[i], loss=lora_loss[i])
        evals["base", s] = _eval({"sima": 0.5}, fid=base_fid, loss=base_loss)
        evals["lora", s]["mean_loss"]["nonmember_te"] = lora_loss[i]
        evals["base", s]["mean_loss"]["nonmember_te"] = base_loss
        evals["lora", s]["quality"]["digit_accuracy"], evals["base", s]["quality"]["digit_accuracy"] = acc[i], 0.1
    return evals


def test_utility_floors_and_no_difference_inside_them():
    evals = _utility_evals()
    floors = study.utility_floors(evals)
    assert floors["lora"]["fid"]["sd"] == pytest.approx(np.std([1.0, 1.2], ddof=1)) and floors["lora"]["fid"]["n"] == 2
    c = study.compare_utility(evals, "base", "lora")
    assert c["fid"]["verdict"] == "higher" and c["sample_accuracy"]["verdict"] == "lower"
    assert c["kid"]["verdict"] == "no difference"                               # equal kid: inside any floor
    assert c["fid"]["floor"] == pytest.approx(2 * np.std([1.0, 1.2], ddof=1))
    sampled = study.compare_utility(evals, "base", "lora", sampling={"fid": 2.5})    # FID between two sample sets
    assert sampled["fid"]["floor"] == 2.5 and sampled["fid"]["verdict"] == "no difference"
    close = _utility_evals(lora_fids=(1.0, 3.0), base_fid=2.2)                  # 2.2 vs 2.0 with sd 1.4: noise
    assert study.compare_utility(close, "base", "lora")["fid"]["verdict"] == "no difference"
    by = {"base": [("base", 1)], "lora": [("lora", 1), ("lora", 2)]}            # explicit groups (notebook 06)
    assert study.utilities(evals, by=by)["base"]["fid"] == 3.0
    text = tables.utility_table(study.utilities(evals), floors, {"base": c})
    assert "no difference vs LoRA" in text and "sd 0.14" in text


# ------------------------------------------------------------------------------------------------ findings

def test_split_01_claims_and_the_disjointness_check():
    quality = {"digit_accuracy_base_public_classes": 0.9, "digit_accuracy_base_private_classes": 0.1,
               "n_base_public_classes": 50, "n_base_private_classes": 58}
    fair = {"ci": {"auc": [0.42, 0.6]}, "n_member": 58, "n_nonmember": 200}
    out, checks = findings.split_01(True, quality, fair)
    assert [c["holds"] for c in out] == [True, True, True] and checks == [
        {"check": checks[0]["check"], "ok": True, "value": None}]
    assert [c["power"] for c in out[:2]] == ["50 images", "58 images"] and out[0]["interval"][0] < 0.9
    assert "detects a shift of AUC >= 0.62" in out[-1]["power"]
    shifted = {**fair, "ci": {"auc": [0.55, 0.7]}}                          # the pixels alone separate the sides
    bad = {"digit_accuracy_base_public_classes": 0.5, "digit_accuracy_base_private_classes": 0.6}
    out, checks = findings.split_01(False, bad, shifted)
    assert [c["holds"] for c in out] == [False, False, False] and not checks[0]["ok"]
    assert [c["holds"] for c in findings.split_01(True, {"digit_accuracy_base_samples": 0.9}, fair)[0]] == [True, True]


def test_attack_02_lora_leaks_and_the_base_model_is_the_control():
    good, objs, _ = _pooled({"lora": (0.95, 1.0), "base": (0.5, 2.0)}, (0, 1), SMALL)
    ref = powered.versus(objs["lora"]["loss_at_t"], objs["lora"]["loss_at_t_ref"])   # auc_dev(ref) - auc_dev(plain)
    out, checks = findings.attack_02(good, ref)
    assert [c["holds"] for c in out] == [True, True, True] and [c["kind"] for c in out] == ["claim"] * 3
    assert checks[0]["ok"] and checks[0]["value"] == "none"
    weak = {PAPER: 0.55, STRONG: 0.6, "loss_map_mlp_paper": 0.5, "loss_at_t": 0.95, "loss_at_t_ref": 0.6}
    bad, objs, _ = _pooled({"lora": (weak, 1.0), "base": (0.95, 2.0)}, (0,), SMALL, attacks=tuple(weak))
    ref = powered.versus(objs["lora"]["loss_at_t"], objs["lora"]["loss_at_t_ref"])   # the reference clearly weaker
    out, checks = findings.attack_02(bad, ref)
    assert [c["holds"] for c in out] == [False, False, False]
    assert not checks[0]["ok"] and "sima" not in checks[0]["value"] and PAPER in checks[0]["value"]


def test_adaptation_claims_hold_and_fail():
    evals = _utility_evals()
    u, per = study.utilities(evals), study.utility_per_split(evals)
    assert all(c["holds"] for c in findings.adaptation(u, per))
    worse = _utility_evals(lora_fids=(2.0, 3.5), lora_loss=(0.14, 0.145), acc=(0.6, 0.5))   # buys too little
    held = [c["holds"] for c in findings.adaptation(study.utilities(worse), study.utility_per_split(worse))]
    assert held == [False, True, False, False]
    floored = findings.adaptation(u, per, {"fid": 1.9})[-1]              # base - LoRA: 2.0 and 1.8 on the splits
    assert floored["value"] == 0.5 and not floored["holds"] and "1.90" in floored["claim"]
    d = powered.draws(evals, n_boot=100)
    gain = powered.gain(evals, [("lora", 1), ("lora", 2)], [("base", 1), ("base", 2)], d)
    assert gain["gain"] == pytest.approx(1 - u["lora"]["heldout_loss"] / u["base"]["heldout_loss"], abs=0.01)
    sized = findings.adaptation(u, per, None, gain, n_samples=216)
    assert sized[0]["interval"] == gain["ci"] and gain["ci"][0] > 0.10
    assert [c["power"] for c in sized[1:3]] == ["216 images"] * 2 and all(c["holds"] for c in sized)


def _stats(mp_cv=2.0, lora_cv=0.5, n_hessian=12, pcc=0.1):
    return {"mp_lora": {"grad_norm_cv": mp_cv, "grad_scale_privacy_std": 2.0, "grad_scale_ada_std": 1.0,
                        "pcc_grad_hessian": pcc, "n_hessian": n_hessian}, "lora": {"grad_norm_cv": lora_cv}}


def _cmp(diff, floor=0.2):
    """``study.compare_utility``'s record of FID."""
    return {"fid": {"difference": diff, "floor": floor, "verdict": "no difference" if abs(diff) <= floor else "higher"}}


def test_mp_03_claims_say_what_one_split_can_show():
    small, _, _ = _pooled({"lora": (0.9, 1.0), "mp_lora": (0.5, 3.0)}, (0,), SMALL, (PAPER,))
    vs = {"mp_lora": _cmp(2.0), "mp_lora_clip": _cmp(1.0), "mp_lora_normalize": _cmp(0.1)}
    out = findings.mp_03(small, _stats(), vs)
    assert [c["kind"] for c in out] == ["not testable", "claim", "claim", "not testable", "claim", "claim", "claim"]
    assert [c["holds"] for c in out] == [None, True, True, None, True, True, False]
    large, _, _ = _pooled({"mp_lora": (0.5, 3.0)}, POWERED, LARGE, (PAPER,))
    out = findings.mp_03(large, _stats(mp_cv=1.0, n_hessian=100), {"mp_lora": _cmp(0.1)})
    assert [c["kind"] for c in out] == ["claim"] * 5 and [c["holds"] for c in out] == [True, False, True, True, False]
    leaky, _, _ = _pooled({"mp_lora": (0.7, 3.0)}, POWERED, LARGE, (PAPER,))
    out = findings.mp_03(leaky, _stats(n_hessian=100, pcc=0.9), {"mp_lora": _cmp(2.0)})
    assert [c["holds"] for c in out] == [False, True, True, False, True]


def test_smp_04_claims_hold_and_fail():
    ks, attacks = POWERED, (PAPER, "loss_map_mlp_ref", "loss_at_t_ref")
    good, objs, _ = _pooled({"lora": (0.95, 1.0), "smp_lora": (0.5, 1.0), "lora_early_stop": (0.8, 1.0)}, ks, LARGE,
                            attacks)
    stats = {m: {str(k): {"grad_norm_cv": cv} for k in ks} for m, cv in (("mp_lora", 2.0), ("smp_lora", 0.5))}
    early = powered.versus(objs["smp_lora"][PAPER], objs["lora_early_stop"][PAPER])
    out = findings.smp_04(good, stats, {"smp_lora": _cmp(0.1)}, _cmp(2.0), early, {"fid": 0.1, "auc": 0.01})
    assert [c["kind"] for c in out] == ["claim"] * 8 + ["descriptive"] and all(c["holds"] for c in out[:8])
    assert out[-1]["holds"] is None and out[-1]["value"] == {"fid": 0.1, "auc": 0.01}
    bad, objs, _ = _pooled({"lora": (0.6, 1.0), "smp_lora": (0.7, 1.0), "lora_early_stop": (0.6, 1.0)}, ks, LARGE,
                           attacks)
    stats["mp_lora"]["3"]["grad_norm_cv"] = 0.4                             # one split where MP-LoRA is calmer
    early = powered.versus(objs["smp_lora"][PAPER], objs["lora_early_stop"][PAPER])
    out = findings.smp_04(bad, stats, {"smp_lora": _cmp(1.0)}, _cmp(0.1), early, None)
    assert len(out) == 8 and not any(c["holds"] for c in out)
    small, _, _ = _pooled({"lora": (0.95, 1.0), "smp_lora": (0.5, 1.0)}, (0,), SMALL, attacks)
    out = findings.smp_04(small, stats, {"smp_lora": _cmp(0.1)}, _cmp(2.0), None, None)
    assert [c["kind"] for c in out[1:4]] == ["not testable"] * 3 and len(out) == 7


def test_ablation_05_trend_is_descriptive_below_four_settings():
    def rows(lams, fids, asrs):
        return {"lam": [{"lam": x, "fid": f, "asr": a} for x, f, a in zip(lams, fids, asrs)]}

    beyond = {"verdict": "beyond", "ci": [0.1, 0.3], "difference": 0.2}
    behind = {"verdict": "behind", "ci": [-0.3, -0.1], "difference": -0.2}
    two = findings.ablation_05(rows([0.1, 1.0], [1.0, 2.0], [0.8, 0.6]), {"lam 1": beyond})
    assert [c["kind"] for c in two] == ["descriptive", "descriptive", "claim"] and two[-1]["holds"]
    assert "+1 or -1" in two[0]["power"]
    lams = [0.01, 0.1, 0.5, 1.0]
    up = findings.ablation_05(rows(lams, [1, 2, 3, 4], [0.9, 0.8, 0.7, 0.6]), {"lam 1": beyond, "lam 0.1": beyond})
    assert [c["kind"] for c in up] == ["claim"] * 3 and all(c["holds"] for c in up)
    down = findings.ablation_05(rows(lams, [4, 3, 2, 1], [0.6, 0.7, 0.8, 0.9]), {"lam 1": beyond, "lam 0.1": behind})
    assert not any(c["holds"] for c in down) and down[-1]["value"] == -0.3 and "1 of 2" in down[-1]["power"]


@pytest.fixture(autouse=True)
def _no_sampling(monkeypatch):
    """The FID sampling floor draws images from a real model, which the stand-in bench has not."""
    monkeypatch.setattr(records, "_sampling", lambda bench, trained, key: {"fid": 0.05, "kid": 0.001})


class _Bench:
    """What the record builders read of a ``bench.Bench``."""

    def __init__(self):
        self.cfg = config.make("tiny")
        self.extractor = SimpleNamespace(description="synthetic features")

    def seed(self, key) -> int:
        return self.cfg.train.seed + grids.split_index(key)

    def split(self, k: int) -> dict:
        return {name: [SimpleNamespace(id=f"{name}-{k}-{i}") for i in range(getattr(self.cfg.split, name))]
                for name in ("member_aux", "member_te", "nonmember_aux", "nonmember_te")}


def _log(cv=0.3, dp=None):
    """A ``train_log.json`` with a gradient norm of coefficient of variation about ``cv``."""
    g = 1 + cv * np.random.default_rng(0).standard_normal(40)
    return {"steps": 40, "epochs": 4, "l_ada": np.linspace(1, 0.5, 40).tolist(), "grad_norm": np.abs(g).tolist(),
            "seconds_this_session": 2.0, **({"dp": dp} if dp else {})}


def _design_06(smp=(0.5, 0.5, 1.5), dp=(0.75, 0.5, 2.5), base=0.5, lora=0.95, ks=POWERED, sizes=LARGE):
    """Notebook 06's evaluations: every model on every split, ``(AUC of every attack, held-out loss, FID)`` for
    SMP-LoRA and DP-LoRA; the base model's reference attacks constant (adapted minus base is 0); LoRA's snapshot at
    epoch 5 between the base model and the final LoRA; sima strongest on LoRA's D_aux."""
    aucs = lambda v: {a: v for a in attack.ATTACKS}                    # noqa: E731
    evals, snaps = {}, {}
    for k in ks:
        s = 1000 * k
        evals["base", k] = _eval(aucs(base), s, 3.0, 1.0, sizes)
        for a in ("loss_map_mlp_ref", "loss_at_t_ref"):
            evals["base", k]["audit"][a].update(scores_member=[0.0] * sizes[0], scores_nonmember=[0.0] * sizes[1])
        evals["lora", k] = _eval(aucs(lora), s + 100, 1.0, 0.4, sizes)
        evals["lora", k]["audit"]["sima"]["chosen_on_aux"]["aux_auc_by_t"]["100"] = 0.99
        evals["smp_lora", k] = _eval(aucs(smp[0]), s + 200, smp[2], smp[1], sizes)
        evals["dp_lora_eps8", k] = _eval(aucs(dp[0]), s + 300, dp[2], dp[1], sizes)
        snaps["lora_snapshot", 5, k] = _eval({PAPER: 0.7, "sima": 0.7}, s + 400, 2.0, 0.6, sizes)
    logs = {key: _log(dp={"delta": 1e-5, "epsilon_spent": 8.0} if key[0].startswith("dp") else None)
            for key in evals if key[0] != "base"}
    groups = study.groups(evals, ["base", "lora", "smp_lora", "dp_lora_eps8"])
    curve = {0: [("base", k) for k in ks], 5: [("lora_snapshot", 5, k) for k in ks], 10: [("lora", k) for k in ks]}
    return {**evals, **snaps}, logs, groups, curve


def test_notebook_06_powered_audit_holds_on_a_good_design():
    evals, logs, groups, curve = _design_06()
    out = records.build_06(_Bench(), evals, logs, {}, groups, curve, ["dp_lora_eps8"], n_boot=200)
    assert schema.check("06_stronger_attacks_and_baselines", out) is out
    assert out["strongest_threshold_attack_on_aux"] == "sima" and out["splits"] == list(POWERED)
    assert out["seeds"] == {str(k): config.make("tiny").train.seed + k for k in POWERED}
    v = out["verdicts"]
    assert v["base"]["loss_at_t_ref"] == v["base"]["loss_map_mlp_ref"] == "constant scores"
    assert {v["base"][a] for a in attack.ATTACKS if "_ref" not in a} == {"defends"}     # the positive control
    assert set(v["lora"].values()) == {"leaks"} and set(v["smp_lora"].values()) == {"defends"}
    kinds = [c["kind"] for c in out["claims"]]
    assert kinds.count("descriptive") == 2 and kinds.count("not testable") == 0     # the two constant ones
    assert all(c["holds"] for c in out["claims"] if c["kind"] == "claim")
    assert records.counted(out) == (kinds.count("claim"), kinds.count("claim"))
    assert set(out["frontier"]) == {PAPER, "sima"} and set(out["frontier"]["sima"]) == {"heldout_loss", "fid"}
    assert out["frontier"]["sima"]["heldout_loss"]["gap"]["smp_lora"]["verdict"] == "beyond"
    assert out["vs_dp"]["dp_lora_eps8"]["auc_dev"]["verdict"] == "beyond"
    audit = out["dp_audit"]["dp_lora_eps8"]
    assert out["checks"][0]["ok"] and audit["splits"] == 6 and audit["accounted"] == 8.0
    # 1800 + 1800 images certify at most ~6.2 even with a perfect attack: at epsilon 8 the audit is still a check
    assert audit["ceiling"] < 8.0 and not audit["can_fail"] and "it cannot fail here" in out["checks"][0]["check"]
    text = out["conclusion"]
    assert "6 member split(s), 1800 test members" in text and "SMP-LoRA: loss-map MLP (paper) defends" in text
    assert "**beyond**" in text and "DP-LoRA (eps 8)" in text
    rows = tables.pooled_rows(out["pooled"])
    assert len(rows) == 4 * len(attack.ATTACKS) and rows[0]["defends: power at AUC 0.5"] >= 0.8
    assert {r["verdict"] for r in tables.frontier_rows(out["frontier"]) if r["method"] == "SMP-LoRA"} == {"beyond"}
    assert "beyond" in tables.versus_rows(out["vs_dp"])[0]["verdict"]
    assert [len(r) for r in tables.split_rows(out["pooled"])][0] == 2 + 6 + 1      # model, attack, 6 splits, sd


def test_notebook_06_claims_fail_on_a_counterexample():
    # a base model that leaks, a LoRA that does not (a little below chance: one-sided "leaks" cannot pass by luck),
    # SMP-LoRA as leaky as DP-LoRA and fitting held-out images worse than LoRA's snapshot
    evals, logs, groups, curve = _design_06(smp=(0.9, 0.9, 2.5), dp=(0.9, 0.5, 2.5), base=0.6, lora=0.47)
    for key in groups["dp_lora_eps8"]:
        logs[key]["dp"]["epsilon_spent"] = 0.1                            # a budget the audit must not exceed
    out = records.build_06(_Bench(), evals, logs, {}, groups, curve, ["dp_lora_eps8"], n_boot=100)
    privacy = [c for c in out["claims"] if "adapt" not in c["claim"] and "FID ranks" not in c["claim"]
               and "fits unseen" not in c["claim"] and c["kind"] == "claim"]
    assert privacy and not any(c["holds"] for c in privacy)
    assert out["frontier"]["sima"]["heldout_loss"]["gap"]["smp_lora"]["verdict"] == "behind"
    assert not out["checks"][0]["ok"] and out["dp_audit"]["dp_lora_eps8"]["can_fail"]   # an audit above the budget



def test_notebook_06_at_the_demo_sizes_says_what_it_cannot_test():
    evals, logs, groups, curve = _design_06(ks=(0,), sizes=SMALL)         # one split of 58 + 50
    out = records.build_06(_Bench(), evals, logs, {}, groups, curve, ["dp_lora_eps8"], n_boot=200)
    defends = [c for c in out["claims"] if "defends against" in c["claim"]]
    assert len(defends) == 2 * len(attack.ATTACKS)
    assert {c["kind"] for c in defends} == {"not testable", "descriptive"} and all(c["holds"] is None for c in defends)
    assert {out["verdicts"]["smp_lora"][a] for a in attack.ATTACKS} == {"not testable at this size"}
    assert not out["dp_audit"]["dp_lora_eps8"]["can_fail"] and "it cannot fail here" in out["checks"][0]["check"]
    assert "needs about" in defends[0]["power"] and "not testable" in out["conclusion"]


def test_lesson_06_compares_the_gain_in_and_out_of_distribution():
    evals, _, _, curve = _design_06(ks=(0,))
    inside = {k: {**v, "mean_loss": {"nonmember_te": 0.45}} if k == ("base", 0) else v for k, v in evals.items()}
    lesson = records.lesson_06(evals, inside, "sima", curve)
    assert lesson["gain"]["private_domain"] == pytest.approx(0.6, abs=0.01)
    assert lesson["frontier"]["gap"]["smp_lora"]["verdict"] == "beyond"
    record = records.with_lesson({"claims": []}, lesson)
    assert record["in_distribution"] is lesson and record["claims"][-1]["holds"]
    same = records.lesson_06(evals, evals, "sima", curve)                  # no larger gain on the private domain
    assert not records.with_lesson({"claims": []}, same)["claims"][-1]["holds"]
    assert records.with_lesson({"claims": []}, {}) == {"claims": [], "in_distribution": {}}


def _map_evals(models, ks, sizes=SMALL):
    aucs = {"base": 0.5, "lora": 0.95, "mp_lora": 0.55, "smp_lora": 0.6, "lora_early_stop": 0.8,
            "smp_lora_two_forwards": 0.6, "mp_lora_clip": 0.55}
    return {(m, k): _eval({a: aucs[m] for a in attack.MAP_ATTACKS}, 100 * k + 10 * i, 1.0 + i, 1.0 - 0.1 * i, sizes)
            for i, m in enumerate(models) for k in ks}


def test_record_builders_02_to_05_follow_the_schema(monkeypatch):
    monkeypatch.setattr(records, "_sampling", lambda bench, trained, key: {"fid": 0.05, "kid": 0.001})
    bench = _Bench()
    evals = _map_evals(("base", "lora"), (0, 1))
    logs = {k: _log() for k in evals if k[0] == "lora"}
    m02 = records.build_02(bench, evals, logs, {}, mlp_epochs=3)
    assert schema.check("02_membership_inference_attack", m02) is m02
    assert m02["splits"] == [0, 1] and m02["seeds"] == {"0": bench.cfg.train.seed, "1": bench.cfg.train.seed + 1}
    assert m02["fid_floor"]["fid"] == 0.05 and set(m02["pooled"]) == {"lora", "base"}
    assert {c["kind"] for c in m02["claims"]} == {"claim"} and len(m02["checks"]) == 1
    m04_evals = _map_evals(("lora", "mp_lora", "smp_lora", "lora_early_stop"), (0, 1))
    m04_evals.update(_map_evals(("smp_lora_two_forwards",), (0,)))
    logs = {k: _log(cv=0.6 if k[0] == "mp_lora" else 0.2) for k in m04_evals}
    m04 = records.build_04(bench, m04_evals, logs, {}, ("lora", "mp_lora", "smp_lora"))
    assert schema.check("04_smp_lora_training", m04) is m04
    assert m04["early_stop_vs_smp"]["verdict"] in ("beyond", "behind", "indistinguishable")
    assert m04["claims"][-1]["kind"] == "descriptive" and m04["smp_lora"]["epochs"] == {"0": 4, "1": 4}
    assert m04["smp_lora"]["diagnostics"]["1"]["grad_norm_cv"] > 0
    m03_evals = _map_evals(("lora", "mp_lora", "mp_lora_clip"), (0,))
    m03 = records.build_03(bench, m03_evals, {k: _log() for k in m03_evals}, {}, stabilisers=["clip"])
    assert schema.check("03_mp_lora_instability", m03) is m03
    assert m03["claims"][0]["kind"] == "not testable"                       # one split of 58 + 50
    tc = bench.cfg.train
    grid = {("lam", tc.lam, 0): 0.6, ("lam", 0.1, 0): 0.8, ("lr", tc.lr, 0): 0.6, ("rank", 4, 0): 0.7,
            ("lora", None, 0): 0.95, ("mp_lora", None, 0): 0.55}
    m05_evals = {k: _eval({PAPER: v}, 10 * i, fid=1.0 + i) for i, (k, v) in enumerate(grid.items())}
    m05 = records.build_05(bench, m05_evals, {k: _log() for k in grid}, lam=[tc.lam, 0.1])
    assert schema.check("05_ablations", m05) is m05
    assert set(m05["vs_lora"]) == {f"lam {tc.lam:g}", "lam 0.1", f"lr {tc.lr:g}", "rank 4"}
    assert [c["kind"] for c in m05["claims"]] == ["descriptive", "descriptive", "claim"]


def test_schema_names_what_is_missing():
    with pytest.raises(ValueError, match="noise_floor"):
        schema.check("02_membership_inference_attack", {"profile": "tiny", "seeds": {"0": 1}, "claims": [],
                                                        "lora": {}, "base": {}})
    evals, logs, groups, curve = _design_06(ks=(0,))
    good = records.build_06(_Bench(), evals, logs, {}, groups, curve, ["dp_lora_eps8"], n_boot=50)
    for broken, missing in (({k: v for k, v in good.items() if k != "vs_dp"}, "'vs_dp'"),
                            ({**good, "pooled": {"base": {"sima": {"auc": 0.5}}}}, "pooled.base.sima.power"),
                            ({**good, "claims": [{"claim": "x", "value": 1, "op": ">", "target": 0, "holds": True}]},
                             "claims[0].kind")):
        with pytest.raises(ValueError, match=missing.replace("[", r"\[").replace("]", r"\]")):
            schema.check("06_stronger_attacks_and_baselines", broken)
    m = {"lora": {"per_split": {}, "attacks": {}, "quality": {}, "mean": {"asr": 0.7}, "sem": {}}, "profile": "tiny"}
    assert schema.methods(m) == ["lora"] and schema.headline(m, "lora")["asr"] == 0.7
    with pytest.raises(ValueError, match="lora.per_split"):
        schema.check("04_smp_lora_training", {**m, "lora": {"per_seed": {}, "attacks": {}, "quality": {}, "mean": {},
                                                            "sem": {}}})


# ------------------------------------------------------------------------------------------------ views

def test_one_markdown_writer_and_labels():
    md = tables.markdown([{"a": "x|y", "b": 0.123456}, {"a": "z", "b": None}])
    assert md.splitlines() == ["| a | b |", "|---|---:|", "| x\\|y | 0.1235 |", "| z |  |"]
    assert viz.label("dp_lora_eps8") == "DP-LoRA (eps 8)" and viz.label("loss_at_t_ref").startswith("Loss@t")
    assert viz.label("lora_early_stop") == "LoRA stopped early" and viz.label("other") == "other"


def test_tables_are_written_as_csv_and_markdown():
    rows = [{"lam": 1.0, "asr": 0.51234567, "auc_dev": 0.1, "fid": 2.0, "kid": None}]
    csv_path, md_path = tables.write("05_x", "ablation_lam", rows)
    assert csv_path.read_text().splitlines() == ["lam,asr,auc_dev,fid,kid", "1,0.5123,0.1,2,"]
    assert md_path.read_text().splitlines()[2] == "| 1 | 0.5123 | 0.1 | 2 |  |"
    tables.write_ablations("05_x", {"rank": [{"rank": 4, "asr": 0.6}]})
    assert (paths.stage_dir("05_x") / "ablation_rank.csv").read_text().splitlines()[0] == \
        "rank,asr,auc_dev,tpr_at_5pct_fpr,fid,kid,digit_accuracy,heldout_loss"
    dp = {"dp_lora_eps8": {"noise_multiplier": 0.61234, "epsilon_target": 8.0, "epsilon_spent": 7.99, "steps": 90,
                           "sample_rate": 0.148}}
    assert "| DP-LoRA (eps 8) | 0.6123 | 8 | 7.99 | 90 | 0.148 |" in tables.dp_table(dp)


def test_explorer_entries_offer_lam_only_where_it_applies():
    tc = config.make("tiny").train
    grid = {("lam", 1.0, 0): "a", ("lam", 0.1, 0): "b", ("lora", None, 0): "c", ("mp_lora", None, 0): "d",
            ("lr", 0.1, 0): "e"}
    out = widgets.entries(grid, {("lora", 2): "f", ("smp_lora", 2): "g", ("lora", 0): "h"}, tc)
    assert out[("lora", None, 0)] == "h" and out[("smp_lora", 0.1, 0)] == "b" and out[("smp_lora", 1.0, 0)] == "a"
    assert out[("mp_lora", tc.lam, 0)] == "d" and out[("smp_lora", tc.lam, 2)] == "g" and out[("lora", None, 2)] == "f"
    assert all(k[1] is None for k in out if k[0] == "lora") and "e" not in out.values()
    assert {k[2] for k in out} == {0, 2}                                   # the third element is the split


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
