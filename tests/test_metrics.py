"""Membership metrics on hand-made score vectors, and the quality helpers."""
import numpy as np
import pytest

from smplora_nb import metrics


def test_perfect_and_reversed_separation():
    m = metrics.membership([3, 4, 5], [0, 1, 2], threshold=2.5)
    assert m["auc"] == 1.0 and m["asr"] == 1.0 and m["auc_dev"] == 1.0
    r = metrics.membership([0, 1, 2], [3, 4, 5], threshold=2.5)
    assert r["auc"] == 0.0 and r["auc_dev"] == 1.0 and r["asr"] == 0.0


def test_known_auc_from_pair_counts():
    # pairs (member > non-member): 1 vs {0.5}: 1, 2 vs {0.5, 1.5}: 2, 0 vs none -> 3 of 6 pairs, tie-free
    m = metrics.membership([1.0, 2.0, 0.0], [0.5, 1.5], threshold=1.0)
    assert m["auc"] == pytest.approx(3 / 6)
    assert m["auc_dev"] == pytest.approx(0.0)


def test_asr_is_balanced_accuracy_of_the_fixed_rule():
    # members: 2 of 4 above 0.5; non-members: 3 of 3 below -> (0.5 + 1.0) / 2
    m = metrics.membership([0.9, 0.8, 0.1, 0.2], [0.3, 0.2, 0.1], threshold=0.5)
    assert m["asr"] == pytest.approx(0.75)


def test_tpr_at_fpr_follows_lira_strictly_below_the_target():
    """LiRA's plotting code reads the TPR at the largest FPR *strictly below* the target: a member that needs
    exactly 1% FPR (one of 100 non-members above it) does not count at 1%."""
    neg, pos = np.arange(100.0), np.array([98.5, 200.0])
    y, s = np.r_[np.ones(2), np.zeros(100)], np.r_[pos, neg]
    assert metrics.tpr_at_fpr(y, s, 0.01) == pytest.approx(0.5)          # FPR <= 1% would give 1.0
    assert metrics.tpr_at_fpr(y, s, 0.02) == pytest.approx(1.0)


def test_conservative_tpr_at_fpr():
    # 100 non-members at 0..99, members at 97.5 (above 97 of them, so FPR 2% to catch it) and at 200
    neg = np.arange(100.0)
    pos = np.array([97.5, 200.0])
    y, s = np.r_[np.ones(2), np.zeros(100)], np.r_[pos, neg]
    # at FPR <= 1% at most one non-member (99) may score above the threshold: only the member at 200 is caught
    assert metrics.tpr_at_fpr(y, s, 0.01) == pytest.approx(0.5)
    # at FPR <= 5%, the threshold can go down to 95: both members count
    assert metrics.tpr_at_fpr(y, s, 0.05) == pytest.approx(1.0)
    # below 1/100 FPR, 100 non-members cannot resolve the rate: "not measurable"
    assert metrics.tpr_at_fpr(y, s, 0.0099) is None


def test_tpr_not_measurable_with_too_few_nonmembers():
    y = np.r_[np.ones(50), np.zeros(50)]
    s = np.random.default_rng(0).normal(size=100)
    assert metrics.tpr_at_fpr(y, s, 0.01) is None          # 1% FPR needs >= 100 non-members
    assert metrics.tpr_at_fpr(y, s, 0.05) is not None
    assert metrics.membership(s[:50], s[50:], 0.0)["tpr_at_1pct_fpr"] is None


def test_nonfinite_scores_are_rejected():
    with pytest.raises(ValueError, match="finite"):
        metrics.membership([np.nan, 1.0], [0.0, 1.0], 0.5)


def test_bootstrap_ci_brackets_the_estimate_and_is_seeded():
    rng = np.random.default_rng(0)
    sm, sn = rng.normal(1.0, 1.0, 150), rng.normal(0.0, 1.0, 150)
    ci = metrics.bootstrap_ci(sm, sn, n_boot=300, seed=1)
    point = metrics.membership(sm, sn, 0.5)
    assert ci["auc"][0] < point["auc"] < ci["auc"][1] and ci["auc"][1] - ci["auc"][0] < 0.2
    assert ci["tpr_at_1pct_fpr"][0] <= point["tpr_at_1pct_fpr"] <= ci["tpr_at_1pct_fpr"][1]
    assert ci == metrics.bootstrap_ci(sm, sn, n_boot=300, seed=1)
    assert metrics.bootstrap_ci(sm + 10, sn, n_boot=50)["auc"] == pytest.approx([1.0, 1.0])   # perfect separation
    chance = metrics.bootstrap_ci(rng.normal(size=400), rng.normal(size=400), n_boot=300)
    assert chance["auc"][0] < 0.5 < chance["auc"][1]
    assert metrics.bootstrap_ci(sm[:50], sn[:50], n_boot=20)["tpr_at_1pct_fpr"] is None   # < 100 non-members
