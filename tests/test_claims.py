"""claims: every claim function fails on a constructed counterexample, "defends" is an equivalence test that is
"not testable" where it cannot pass, and a reversed signal reads as leakage."""
import numpy as np
import pytest

from smplora_nb import claims, pooled, scores, tables


def _single(sm, sn, n_boot=300):
    return pooled.single(sm, sn, n_boot=n_boot)


def test_a_defense_that_pushes_members_below_nonmembers_is_reported_as_leaking():
    rng = np.random.default_rng(0)
    sm, sn = rng.normal(-2.0, 1.0, 200), rng.normal(0.0, 1.0, 200)    # members far *below* non-members
    r = _single(sm, sn)
    assert r["ci"]["auc"][1] < 0.5 and r["verdict"] == "leaks" and r["auc_dev_tost"][0] > 0.7
    assert r["power"]["testable"]                                      # 200 + 200: defends could have passed
    d = claims.defends("defends", r)
    assert d["kind"] == "claim" and not d["holds"] and d["verdict"] == "leaks"
    # "leaks" as a claim is one-sided (an attack whose direction was fixed on D_aux, detecting members above 0.5)
    assert not claims.leaks("leaks", r)["holds"] and claims.leaks("leaks", _single(-sm, sn))["holds"]


def test_defends_is_an_equivalence_test_and_not_testable_where_it_cannot_pass():
    rng = np.random.default_rng(1)
    small = _single(rng.normal(0.3, 1, 50), rng.normal(0, 1, 50))      # a real AUC ~0.58 on small sets
    assert small["verdict"] in ("not testable at this size", "leaks") and not small["power"]["testable"]
    d = claims.defends("SMP-LoRA defends", small)                      # cannot pass here: neither held nor failed
    assert d["kind"] == "not testable" and d["holds"] is None and "needs about" in d["power"]
    assert claims.counted([d]) == []
    rng = np.random.default_rng(0)
    big = _single(rng.normal(0, 1, 1000), rng.normal(0, 1, 1000), n_boot=200)   # truly at chance, tight interval
    held = claims.defends("defends", big)
    assert big["verdict"] == "defends" and held["holds"] and held["kind"] == "claim"
    assert held["value"] == big["auc_dev_tost"][1] < claims.MARGIN and held["interval"] == big["auc_dev_tost"]
    assert "power at AUC 0.5" in held["power"] and not claims.leaks("leaks", big)["holds"]
    shifted = _single(rng.normal(0.36, 1, 1000), rng.normal(0, 1, 1000), n_boot=200)   # AUC ~0.6: outside the margin
    assert shifted["verdict"] == "leaks" and not claims.defends("defends", shifted)["holds"]
    constant = _single(np.zeros(300), np.zeros(300), n_boot=50)
    assert constant["verdict"] == "constant scores"


def test_leaks_needs_the_interval_above_chance_and_the_target():
    rng = np.random.default_rng(2)
    strong = _single(rng.normal(1.2, 1, 60), rng.normal(0, 1, 60))      # AUC ~0.8, interval well above 0.5
    assert strong["ci"]["auc"][0] > 0.5
    c = claims.leaks("LoRA leaks", strong, at_least=0.7)
    assert c["holds"] and c["interval"] == strong["ci"]["auc"] and c["verdict"] == "leaks" and c["kind"] == "claim"
    assert not claims.leaks("LoRA leaks", strong, at_least=0.95)["holds"]          # above chance, below the target
    wide = _single(rng.normal(0.5, 1, 8), rng.normal(0, 1, 8))                      # AUC high, interval wide
    assert wide["ci"]["auc"][0] <= 0.5
    assert not claims.leaks("LoRA leaks", wide, at_least=wide["auc"] - 0.01)["holds"]


def test_claim_kinds_and_the_claims_table():
    c = claims.claim("x", 0.8, ">=", 0.7, interval=(0.75, 0.85), power="one split")
    assert c == {"claim": "x", "value": 0.8, "op": ">=", "target": 0.7, "holds": True, "kind": "claim",
                 "interval": [0.75, 0.85], "power": "one split"}
    assert claims.claim("x", float("nan"), ">=", 0.7)["value"] is None and not claims.claim("x", None, "<", 1)["holds"]
    with pytest.raises(ValueError, match="op"):
        claims.claim("x", 1.0, "=", 1.0)
    d, n = claims.descriptive("trend", 1.0, "two points"), claims.not_testable("defends", 0.2, "needs 8 splits")
    assert d["holds"] is None and d["kind"] == "descriptive" and n["kind"] == "not testable"
    assert claims.counted([c, d, n]) == [c]
    text = tables.claims_table([c, d, n, claims.claim("y", 0.1, ">", 0.5)])
    rows = text.splitlines()[2:]
    assert "0.800 [0.750, 0.850]" in rows[0] and "| yes |" in rows[0] and "one split" in rows[0]
    assert "| — |" in rows[1] and "| n/t |" in rows[2] and "needs 8 splits" in rows[2] and "| **no** |" in rows[3]


def test_auc_dev_interval():
    assert claims.auc_dev_interval((0.45, 0.6)) == (0.0, pytest.approx(0.2))
    assert claims.auc_dev_interval((0.2, 0.3)) == (pytest.approx(0.4), pytest.approx(0.6))


def test_stability_claims_read_the_coefficient_of_variation_on_every_split():
    """SMP-LoRA divides its gradient by 1 - lam G: the raw spread shrinks with the gradient; the CV does not."""
    rng = np.random.default_rng(2)
    g = rng.uniform(1, 2, 500)
    assert claims.cv(g) == pytest.approx(claims.cv(0.1 * g))
    c = claims.less_variable("MP-LoRA's gradient norm varies more than SMP-LoRA's", [claims.cv(g)],
                             [claims.cv(0.1 * g)], ratio=2.0)
    assert not c["holds"] and c["value"] == pytest.approx(1.0)             # a raw-std ratio would say 10
    wild = claims.cv(rng.uniform(0, 8, 500) ** 2)
    held = claims.less_variable("x", [wild, wild, 2 * claims.cv(g)], [claims.cv(g)] * 3, ratio=1.5)
    assert held["holds"] and held["interval"] == [pytest.approx(2.0), pytest.approx(wild / claims.cv(g))]
    assert held["value"] == pytest.approx(2.0) and "3 split(s)" in held["power"]
    one_calm = claims.less_variable("x", [wild, wild, claims.cv(g)], [claims.cv(g)] * 3, ratio=1.5)
    assert not one_calm["holds"] and one_calm["value"] == pytest.approx(1.0)   # every split must show it
    assert claims.less_variable("x", [wild, None], [claims.cv(g)] * 2)["value"] is None   # a split not measured


def test_weakly_correlated_uses_fisher_z_and_is_not_testable_on_few_points():
    few = claims.weakly_correlated("PCC small", 0.05, 12)                 # 12 Hessian points: r = 0 reaches +-0.5
    assert few["kind"] == "not testable" and few["holds"] is None and "needs about 38 points" in few["power"]
    assert claims.weakly_correlated("PCC small", None, 100)["kind"] == "not testable"
    ok = claims.weakly_correlated("PCC small", 0.1, 100)
    lo, hi = ok["interval"]
    assert ok["holds"] and lo < 0.1 < hi and ok["value"] == pytest.approx(max(abs(lo), abs(hi))) and hi < 0.5
    assert not claims.weakly_correlated("PCC small", 0.4, 100)["holds"]    # its interval reaches 0.5
    assert not claims.weakly_correlated("PCC small", -0.7, 100)["holds"]


def test_proportion_carries_its_clopper_pearson_interval():
    c = claims.proportion("LoRA draws the right class", 0.8, 100, ">=", 0.7)
    lo, hi = c["interval"]
    assert c["holds"] and 0.70 < lo < 0.8 < hi < 0.88 and c["power"] == "100 images"
    few = claims.proportion("LoRA draws the right class", 0.8, 10, ">=", 0.7)
    assert few["interval"][0] < 0.5 and few["interval"][1] - few["interval"][0] > hi - lo      # ten images: wide
    assert claims.proportion("x", 0.0, 20, "<=", 0.3)["interval"][0] == 0.0
    assert claims.proportion("x", 1.0, 20, ">=", 0.7)["interval"][1] == 1.0
    assert not claims.proportion("x", 0.2, 100, ">=", 0.7)["holds"]
    assert "interval" not in claims.proportion("x", 0.8, 0, ">=", 0.7)                     # no count: no interval


def test_utility_difference_against_its_floor():
    worse = {"difference": 0.5, "floor": 0.2, "verdict": "higher"}
    same = {"difference": 0.1, "floor": 0.2, "verdict": "no difference"}
    assert claims.utility_difference("MP costs quality", worse, worse=True)["holds"]
    assert not claims.utility_difference("MP costs quality", same, worse=True)["holds"]
    assert claims.utility_difference("SMP keeps quality", same, worse=False)["holds"]
    kept = claims.utility_difference("SMP keeps quality", worse, worse=False)
    assert not kept["holds"] and kept["target"] == 0.2 and "floor 0.2" in kept["power"]


def test_empirical_epsilon_bounds():
    rng = np.random.default_rng(3)
    perfect = claims.empirical_epsilon(np.ones(200), np.zeros(200), 0.5)
    assert perfect["tpr"] == 1 and perfect["fpr"] == 0 and 3.0 < perfect["epsilon_lower_bound"] < 6.0
    chance = claims.empirical_epsilon(rng.normal(size=200), rng.normal(size=200), 0.0)
    assert chance["epsilon_lower_bound"] < 0.3
    # a budget the audit must never exceed: a perfect attack on 200 + 200 images cannot certify more than ~5.3
    assert perfect["epsilon_lower_bound"] < np.log(200)


def test_checks_are_not_claims():
    c = claims.check("DP-LoRA spent at most its budget (accountant)", True, 7.9)
    assert c == {"check": "DP-LoRA spent at most its budget (accountant)", "ok": True, "value": 7.9}
    assert "holds" not in c


def test_noise_floor():
    assert claims.noise_floor([0.1, 0.2, 0.3]) == {"mean": pytest.approx(0.2), "sd": pytest.approx(0.1), "n": 3}
    assert claims.noise_floor([0.5])["sd"] is None


def test_scores_and_claims_agree_on_a_flipped_attacker():
    """End to end: an overshooting defense on D_aux and D_te; the D_aux-fitted direction makes D_te leak."""
    rng = np.random.default_rng(4)
    aux_m, aux_n, te_m, te_n = (rng.normal(size=(100, 1)) for _ in range(4))
    aux_m -= 2.0
    te_m -= 2.0
    fitted = scores.fit("loss_at_t", (100,), aux_m, aux_n)
    r = _single(fitted.score(te_m), fitted.score(te_n))
    assert r["ci"]["auc"][0] > 0.5 and r["verdict"] == "leaks" and claims.leaks("flipped", r, 0.8)["holds"]
