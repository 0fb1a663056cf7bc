"""The powered audit's analyses (``powered``) on synthetic evaluations of known AUC and held-out loss: the frontier
interpolated between checkpoints (a method beyond it, one behind it, one at a utility no checkpoint reaches),
paired comparisons, the DP audit's ceiling, the strongest attack chosen on D_aux only, and the per-image score
table."""
import csv
from types import SimpleNamespace

import numpy as np
import pytest
from scipy.stats import norm

from smplora_nb import claims, pooled, powered

SIZES = (30, 40)                                               # members, non-members of each split's D_te


def _attack(auc, seed, sizes=SIZES, aux_auc=None, sign=1):
    """An attack record whose D_te scores have AUC about ``auc`` (members ~ N(d, 1), non-members ~ N(0, 1))."""
    rng, d = np.random.default_rng(seed), np.sqrt(2) * norm.ppf(auc)
    m, n = sizes
    return {"scores_member": rng.normal(d, 1, m).tolist(), "scores_nonmember": rng.normal(0, 1, n).tolist(),
            "aux_scores_member": rng.normal(d, 1, m).tolist(), "aux_scores_nonmember": rng.normal(0, 1, n).tolist(),
            "chosen_on_aux": {"sign": sign, "aux_auc_by_t": {"50": 0.5, "100": auc if aux_auc is None else aux_auc}}}


def _eval(aucs: dict, loss: float, seed: int, fid: float = 1.0, sizes=SIZES):
    """One evaluation: ``aucs`` = {attack: AUC}; held-out loss of D_te's non-members about ``loss``."""
    rng = np.random.default_rng(seed + 7)
    return {"audit": {a: _attack(v, seed + i, sizes) for i, (a, v) in enumerate(aucs.items())},
            "quality": {"fid": fid, "kid": 0.1},
            "image_loss": {"nonmember_te": (loss + 0.01 * rng.standard_normal(sizes[1])).tolist()}}


def test_frontier_value_interpolates_between_checkpoints():
    us, devs = [3.0, 2.0, 1.0], [0.0, 0.2, 0.8]            # held-out loss falls and auc_dev rises along training
    assert powered.frontier_value(us, devs, 1.5) == pytest.approx(0.5)     # half way from epoch 2 to 3
    assert powered.frontier_value(us, devs, 2.0) == pytest.approx(0.2)     # a checkpoint itself
    assert powered.frontier_value(us, devs, 2.6) == pytest.approx(0.08)    # 40% of the way from epoch 1 to 2
    assert powered.frontier_value(us, devs, 5.0) == 0.0                    # the base model's own utility suffices
    assert powered.frontier_value(us, devs, 0.5) == np.inf                 # better than every checkpoint
    # utility that worsens again late in training: the lowest point is on the first crossing, not at a checkpoint
    # (a staircase over the checkpoints would give 0.6)
    assert powered.frontier_value([3.0, 1.0, 2.0], [0.0, 0.6, 0.4], 1.5) == pytest.approx(0.45)


def _frontier_evals(ks=(0, 1)):
    """Plain LoRA along training on each split: the base model (epoch 0), a snapshot and the final LoRA; and three
    methods: one beyond the frontier, one behind it and one fitting held-out images better than every checkpoint."""
    a, evals = "sima", {}
    for k in ks:
        s = 100 * k
        evals["base", k] = _eval({a: 0.5}, 1.0, s + 1)
        evals["lora_snapshot", 5, k] = _eval({a: 0.7}, 0.6, s + 2)
        evals["lora", k] = _eval({a: 0.9}, 0.4, s + 3)
        evals["private", k] = _eval({a: 0.5}, 0.5, s + 4)        # LoRA's fit at about half its leak
        evals["leaky", k] = _eval({a: 0.95}, 0.9, s + 5)         # the base model's fit, LoRA's leak
        evals["overfit", k] = _eval({a: 0.5}, 0.2, s + 6)        # better fit than the final LoRA
    curve = {0: [("base", k) for k in ks], 5: [("lora_snapshot", 5, k) for k in ks], 10: [("lora", k) for k in ks]}
    groups = {m: [(m, k) for k in ks] for m in ("private", "leaky", "overfit")}
    return evals, curve, groups


def test_frontier_beyond_behind_and_unreachable():
    evals, curve, groups = _frontier_evals()
    d = powered.draws(evals, n_boot=200)
    f = powered.frontier(evals, curve, groups, "sima", "heldout_loss", d)
    assert [c["epoch"] for c in f["curve"]] == [0, 5, 10] and f["attack"] == "sima"
    us, devs = [c["heldout_loss"] for c in f["curve"]], [c["auc_dev"] for c in f["curve"]]
    assert us[0] > us[1] > us[2] and devs[0] < devs[1] < devs[2]
    for m in ("private", "leaky"):                          # the gap is the interpolated frontier minus the method
        p = f["points"][m]
        assert f["gap"][m]["gap"] == pytest.approx(powered.frontier_value(us, devs, p["heldout_loss"]) - p["auc_dev"])
        assert f["gap"][m]["reachable"]
        lo, hi = f["gap"][m]["ci"]
        assert lo <= f["gap"][m]["gap"] <= hi
    assert f["gap"]["private"]["verdict"] == "beyond" and f["gap"]["private"]["gap"] > 0.3
    assert f["gap"]["leaky"]["verdict"] == "behind" and f["gap"]["leaky"]["gap"] < -0.3
    gone = f["gap"]["overfit"]                              # no checkpoint fits held-out images that well
    assert gone["gap"] is None and not gone["reachable"]
    assert gone["ci"] == [np.inf, np.inf] and gone["verdict"] == "beyond"
    # the same analysis on FID: held at its value in every resample, the frontier still interpolated
    for key, fid in (("base", 3.0), ("lora_snapshot", 2.0), ("lora", 1.0), ("private", 1.5)):
        for k in (0, 1):
            evals[(key, 5, k) if key == "lora_snapshot" else (key, k)]["quality"]["fid"] = fid
    g = powered.frontier(evals, curve, {"private": groups["private"]}, "sima", "fid", d)
    assert [c["fid"] for c in g["curve"]] == [3.0, 2.0, 1.0] and g["utility"] == "fid"
    half = (g["curve"][1]["auc_dev"] + g["curve"][2]["auc_dev"]) / 2             # half way from epoch 5 to 10
    assert g["gap"]["private"]["gap"] == pytest.approx(half - g["points"]["private"]["auc_dev"])
    assert g["gap"]["private"]["verdict"] == "beyond"


def test_matrix_pools_the_splits_and_says_what_the_verdict_could_detect():
    evals = {}
    for k in (0, 1):
        evals["lora", k] = _eval({"sima": 0.9, "loss_at_t_ref": 0.85}, 0.4, 10 * k)
        evals["base", k] = _eval({"sima": 0.5, "loss_at_t_ref": 0.5}, 1.0, 10 * k + 5)
        evals["base", k]["audit"]["loss_at_t_ref"].update(scores_member=[0.0] * SIZES[0],
                                                          scores_nonmember=[0.0] * SIZES[1])   # adapted - base = 0
    groups = powered.by_model(evals)
    assert groups == {"lora": [("lora", 0), ("lora", 1)], "base": [("base", 0), ("base", 1)]}
    d = powered.draws(evals, n_boot=200)
    assert d.sizes == {0: SIZES, 1: SIZES}
    records, objs = powered.matrix(evals, groups, ["sima", "loss_at_t_ref"], d)
    r = records["lora"]["sima"]
    assert r["splits"] == [0, 1] and r["auc"] == pytest.approx(np.mean(r["auc_by_split"]))
    assert r["power"]["splits"] == 2 and r["power"]["n_member"] == 2 * SIZES[0]
    assert powered.verdicts(records) == {"lora": {"sima": "leaks", "loss_at_t_ref": "leaks"},
                                         "base": {"sima": "not testable at this size",
                                                  "loss_at_t_ref": "constant scores"}}
    assert "not testable" in powered.describe(records["base"]["sima"])
    assert objs["lora"]["sima"].reps.shape == (200,)
    with pytest.raises(ValueError, match="do not match"):            # a split whose D_te is not the design's
        powered.pool({("x", 0): _eval({"sima": 0.5}, 1.0, 0, sizes=(5, 5))}, [("x", 0)], "sima", d)
    assert powered.by_model([("lora_snapshot", 5, 0), ("lora_snapshot", 5, 1), ("lora", 0)]) == {
        ("lora_snapshot", 5): [("lora_snapshot", 5, 0), ("lora_snapshot", 5, 1)], "lora": [("lora", 0)]}


def test_versus_is_paired_and_signed():
    evals = {("weak", k): _eval({"sima": 0.6}, 0.5, k) for k in (0, 1)}
    evals.update({("strong", k): _eval({"sima": 0.9}, 0.5, 10 + k) for k in (0, 1)})
    evals.update({("twin", k): {**evals["weak", k], "audit": {"sima": {
        **evals["weak", k]["audit"]["sima"],                  # the weak model's scores, nudged a little
        "scores_member": (np.asarray(evals["weak", k]["audit"]["sima"]["scores_member"]) + 0.01).tolist()}}}
        for k in (0, 1)})
    d = powered.draws(evals, n_boot=300)
    p = {m: powered.pool(evals, [(m, 0), (m, 1)], "sima", d) for m in ("weak", "strong", "twin")}
    v = powered.versus(p["weak"], p["strong"])                # auc_dev(strong) - auc_dev(weak): weak more private
    assert v["verdict"] == "beyond" and v["difference"] == pytest.approx(
        pooled.auc_dev(p["strong"].auc) - pooled.auc_dev(p["weak"].auc))
    assert powered.versus(p["strong"], p["weak"])["verdict"] == "behind"
    twin = powered.versus(p["weak"], p["twin"])               # on the same images the difference is tiny...
    alone = pooled.percentile(pooled.auc_dev(p["weak"].reps), 0.95)
    assert twin["verdict"] == "indistinguishable"
    assert twin["ci"][1] - twin["ci"][0] < 0.2 * (alone[1] - alone[0])    # ...and so is its paired interval
    with pytest.raises(ValueError, match="same splits"):
        powered.versus(p["weak"], powered.pool(evals, [("strong", 0)], "sima", d))


def test_utility_draws_resample_the_held_out_loss_and_hold_fid():
    evals = {("a", k): _eval({"sima": 0.5}, 0.5, k, fid=1.0 + k) for k in (0, 1)}
    evals.update({("b", k): _eval({"sima": 0.5}, 0.6, 10 + k, fid=2.0) for k in (0, 1)})
    d = powered.draws(evals, n_boot=200)
    point, reps = powered.utility_draws(evals, [("a", 0), ("a", 1)], "heldout_loss", d)
    assert point == pytest.approx(np.mean([np.mean(evals["a", k]["image_loss"]["nonmember_te"]) for k in (0, 1)]))
    assert reps.shape == (200,) and reps.std() > 0 and abs(reps.mean() - point) < 0.01
    fid, fid_reps = powered.utility_draws(evals, [("a", 0), ("a", 1)], "fid", d)
    assert fid == 1.5 and np.all(fid_reps == 1.5)
    worse = powered.utility_versus(evals, [("a", 0), ("a", 1)], [("b", 0), ("b", 1)], "heldout_loss", d)
    assert worse["difference"] == pytest.approx(0.1, abs=0.01) and worse["verdict"] == "beyond"   # b - a > 0


def test_low_fpr_threshold():
    aux = np.arange(100.0)
    t = powered.low_fpr_threshold(aux)
    assert 94 < t < 95 and np.mean(aux >= t) == 0.05                  # the 5 highest non-members pass
    tied = np.r_[np.zeros(90), np.ones(10)]                            # ties at the cut: none of them may pass
    assert np.mean(tied >= powered.low_fpr_threshold(tied)) <= 0.05
    assert powered.low_fpr_threshold(np.arange(10.0)) > 9              # 10 non-members: not one may pass


def _dp_evals(n_splits, sizes, auc):
    return {("dp", k): _eval({"sima": auc}, 0.5, 10 * k, sizes=sizes) for k in range(n_splits)}


def test_dp_audit_states_its_ceiling_and_whether_it_can_fail():
    small = _dp_evals(1, (58, 50), 0.99)                     # the tiny demo's D_te before issue 27
    a = powered.dp_audit(small, [("dp", 0)], "sima", 1e-5, 4.0)
    assert a["ceiling"] < 4.0 and not a["can_fail"]          # a perfect attack certifies at most ~2.7 here
    perfect = claims.empirical_epsilon(np.ones(58), np.zeros(50), 0.5)
    assert a["ceiling"] == pytest.approx(perfect["epsilon_lower_bound"])
    assert 0 < a["epsilon_lower_bound"] <= a["ceiling"] and a["splits"] == 1 and a["accounted"] == 4.0
    large = _dp_evals(8, (58, 200), 0.99)
    b = powered.dp_audit(large, list(large), "sima", 1e-5, 4.0)
    assert b["ceiling"] > 4.0 and b["can_fail"] and b["n_member"] == 8 * 58 and b["n_nonmember"] == 8 * 200
    assert b["epsilon_lower_bound"] > a["epsilon_lower_bound"]
    null = powered.dp_audit(_dp_evals(8, (58, 200), 0.5), list(large), "sima", 1e-5, 4.0)
    assert null["epsilon_lower_bound"] < 1.0 and null["fpr"] < 0.1    # the threshold keeps false positives low


def test_dp_audit_chooses_its_threshold_on_d_aux():
    evals = _dp_evals(1, (58, 200), 0.5)
    r = evals["dp", 0]["audit"]["sima"]
    t = powered.low_fpr_threshold(r["aux_scores_nonmember"])
    got = powered.dp_audit(evals, [("dp", 0)], "sima", 1e-5, 8.0)
    assert got["tpr"] == np.mean(np.asarray(r["scores_member"]) >= t)
    assert got["fpr"] == np.mean(np.asarray(r["scores_nonmember"]) >= t)
    r["aux_scores_nonmember"] = (np.asarray(r["aux_scores_nonmember"]) - 10).tolist()   # D_aux only: a lower threshold
    assert powered.dp_audit(evals, [("dp", 0)], "sima", 1e-5, 8.0)["fpr"] > 0.5


def test_strongest_reads_d_aux_only():
    evals = {("lora", k): _eval({"loss_at_t": 0.5, "sima": 0.5}, 0.5, k) for k in (0, 1)}
    for k in (0, 1):
        evals["lora", k]["audit"]["loss_at_t"]["chosen_on_aux"]["aux_auc_by_t"] = {"50": 0.75}
        evals["lora", k]["audit"]["sima"]["chosen_on_aux"]["aux_auc_by_t"] = {"50": 0.5, "100": [0.95, 0.5][k]}
    keys = [("lora", 0), ("lora", 1)]
    assert powered.strongest(evals, keys, ("loss_at_t", "sima")) == "loss_at_t"   # mean reach 0.25 > 0.225
    assert powered.strongest(evals, keys[:1], ("loss_at_t", "sima")) == "sima"    # split 0 alone: 0.45
    evals["lora", 1]["audit"]["sima"]["chosen_on_aux"]["aux_auc_by_t"]["100"] = 0.01   # reversed on D_aux: a signal
    assert powered.strongest(evals, keys, ("loss_at_t", "sima")) == "sima"
    for k in keys:                                            # D_te says the opposite: it is never read
        chosen = evals[k]["audit"]["loss_at_t"]["chosen_on_aux"]
        evals[k]["audit"]["loss_at_t"] = {**_attack(0.99, 5), "chosen_on_aux": chosen}
        evals[k]["audit"]["sima"]["scores_member"] = evals[k]["audit"]["sima"]["scores_nonmember"][:SIZES[0]]
    assert powered.strongest(evals, keys, ("loss_at_t", "sima")) == "sima"


def _te(k, sizes=SIZES):
    item = lambda i: SimpleNamespace(id=f"s{k}-{i}")                   # noqa: E731
    return {"member_te": [item(i) for i in range(sizes[0])],
            "nonmember_te": [item(i) for i in range(sizes[0], sum(sizes))]}


def test_score_rows_have_the_documented_columns():
    evals = {("base", 0): _eval({"sima": 0.5, "loss_at_t": 0.5}, 1.0, 0),
             ("lora", 1): _eval({"sima": 0.9, "loss_at_t": 0.8}, 0.5, 1),
             ("lora_snapshot", 5, 1): _eval({"sima": 0.7}, 0.6, 2, )}
    evals["lora", 1]["audit"]["loss_at_t"]["chosen_on_aux"]["sign"] = -1
    runs = {("base", 0): None, ("lora", 1): "/o/cache/runs/ab12cd", ("lora_snapshot", 5, 1): "/o/cache/runs/ab12cd/"
            "snapshots/epoch_5"}
    seeds = {("base", 0): 100, ("lora", 1): 101, ("lora_snapshot", 5, 1): 101}
    rows = powered.score_rows(evals, runs, seeds, ("sima", "loss_at_t", "pia"), _te)
    assert set(rows[0]) == {"model", "split", "seed", "attack", "image_id", "member", "score", "direction",
                            "config_hash"}
    assert len(rows) == (2 + 2 + 1) * sum(SIZES)                        # attacks a run was not audited with: none
    by = lambda **kw: [r for r in rows if all(r[k] == v for k, v in kw.items())]   # noqa: E731
    base = by(model="base", attack="sima")
    assert {r["config_hash"] for r in base} == {"base"} and {r["split"] for r in base} == {0}
    assert [r["score"] for r in base if r["member"] == 1] == evals["base", 0]["audit"]["sima"]["scores_member"]
    assert sum(r["member"] for r in base) == SIZES[0]
    assert base[0]["image_id"] == "s0-0" and base[-1]["image_id"] == f"s0-{sum(SIZES) - 1}"
    lora = by(model="lora", attack="loss_at_t")
    assert {(r["seed"], r["split"], r["direction"], r["config_hash"]) for r in lora} == {(101, 1, -1, "ab12cd")}
    snap = by(model="lora_snapshot_5")
    assert {r["config_hash"] for r in snap} == {"ab12cd/snapshots/epoch_5"} and {r["attack"] for r in snap} == {"sima"}


def test_write_scores_writes_one_csv(tmp_path):
    evals = {("lora", 0): _eval({"sima": 0.9}, 0.5, 0)}
    bench = SimpleNamespace(seed=lambda key: 7 + key[-1], split=_te)
    powered.write_scores("06_x", bench, evals, {("lora", 0): "/o/cache/runs/ff00"}, ("sima",))
    from smplora_nb import paths

    with open(paths.stage_dir("06_x") / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == sum(SIZES) and rows[0]["seed"] == "7" and rows[0]["config_hash"] == "ff00"
    assert float(rows[0]["score"]) == evals["lora", 0]["audit"]["sima"]["scores_member"][0]
