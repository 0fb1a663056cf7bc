"""claims: every claim function fails on a constructed counterexample, and a reversed signal reads as leakage."""
import numpy as np
import pytest

from smplora_nb import claims, metrics, scores


def _ci(sm, sn, n_boot=300):
    return metrics.bootstrap_ci(sm, sn, n_boot=n_boot, seed=0)["auc"]


def test_a_defense_that_pushes_members_below_nonmembers_is_reported_as_leaking():
    rng = np.random.default_rng(0)
    sm, sn = rng.normal(-2.0, 1.0, 200), rng.normal(0.0, 1.0, 200)    # members far *below* non-members
    ci = _ci(sm, sn)
    assert ci[1] < 0.5 and claims.verdict(ci) == "leaks"
    assert not claims.defends("defends", ci)["holds"] and claims.leaks("leaks", ci)["holds"]


def test_defends_is_an_equivalence_test_and_absence_of_evidence_is_not_detected():
    rng = np.random.default_rng(1)
    small = _ci(rng.normal(0.3, 1, 50), rng.normal(0, 1, 50))           # a real AUC ~0.58 on small sets
    assert claims.verdict(small) in ("not detected", "leaks")
    assert not claims.defends("SMP-LoRA defends", small)["holds"]       # wide interval: cannot claim privacy
    big = _ci(rng.normal(0, 1, 20000), rng.normal(0, 1, 20000), n_boot=50)   # truly at chance, tight interval
    assert claims.verdict(big) == "defends" and claims.defends("defends", big)["holds"]
    assert not claims.leaks("leaks", big)["holds"]


def test_auc_dev_interval():
    assert claims.auc_dev_interval((0.45, 0.6)) == (0.0, pytest.approx(0.2))
    assert claims.auc_dev_interval((0.2, 0.3)) == (pytest.approx(0.4), pytest.approx(0.6))


def test_stability_claims_read_the_coefficient_of_variation():
    """SMP-LoRA divides its gradient by 1 - lam G: the raw spread shrinks with the gradient; the CV does not."""
    rng = np.random.default_rng(2)
    g = rng.uniform(1, 2, 500)
    assert claims.cv(g) == pytest.approx(claims.cv(0.1 * g))
    c = claims.less_variable("MP-LoRA's gradient norm varies more than SMP-LoRA's", claims.cv(g), claims.cv(0.1 * g),
                             ratio=2.0)
    assert not c["holds"] and c["value"] == pytest.approx(1.0)             # a raw-std ratio would say 10
    assert claims.less_variable("x", claims.cv(rng.uniform(0, 8, 500) ** 2), claims.cv(g), ratio=2.0)["holds"]


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


def test_model_free_split_check_sees_a_shift_and_no_shift(tiny_setup):
    _, items, splits, _ = tiny_setup
    fair = claims.model_free_split_check(splits, n_boot=100)
    assert 0 <= fair["auc"] <= 1 and fair["ci"]["auc"][0] <= fair["auc"] <= fair["ci"]["auc"][1]
    bright = {k: [type(it)(**{**vars(it), "image": np.clip(it.image.astype(int) + 120, 0, 255).astype(np.uint8)})
                  for it in v] if k.startswith("member") else v for k, v in splits.items()}
    shifted = claims.model_free_split_check(bright, n_boot=100)              # members brighter: a shift
    assert shifted["auc"] > 0.9 and claims.verdict(shifted["ci"]["auc"]) == "leaks"


def test_scores_and_claims_agree_on_a_flipped_attacker():
    """End to end: an overshooting defense on D_aux and D_te; the D_aux-fitted direction makes D_te leak."""
    rng = np.random.default_rng(4)
    aux_m, aux_n, te_m, te_n = (rng.normal(size=(100, 1)) for _ in range(4))
    aux_m -= 2.0
    te_m -= 2.0
    fitted = scores.fit("loss_at_t", (100,), aux_m, aux_n)
    ci = _ci(fitted.score(te_m), fitted.score(te_n))
    assert ci[0] > 0.5 and claims.verdict(ci) == "leaks"
