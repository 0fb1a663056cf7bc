"""The power of the membership verdicts, shown through the package's own verdict code on synthetic scores of known
AUC (issue 27, item 6): members ~ N(d, 1), non-members ~ N(0, 1), so AUC = Phi(d / sqrt(2))."""
import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import roc_auc_score

from smplora_nb import config, pooled, power, profiles

DEMO = [(58, 50)]                                              # one split of the tiny profile before issue 27
N_SIM = 100                                                    # simulated datasets per rate


def _scores(rng, sizes, auc):
    d = np.sqrt(2) * norm.ppf(auc)
    return [(rng.normal(d, 1, m), rng.normal(0, 1, n)) for m, n in sizes]


def _verdicts(sizes, auc, seed=0, n_boot=300):
    rng, draws = np.random.default_rng(seed), pooled.Draws(sizes, n_boot, seed=1)
    return [pooled.verdict(pooled.Pooled(_scores(rng, sizes, auc), draws)) for _ in range(N_SIM)]


def _powered():
    cfg = config.make("tiny")
    return [(cfg.split.member_te, cfg.split.nonmember_te)] * profiles.POWERED["n_splits"]


def test_resampled_auc_is_the_auc_of_the_resampled_scores():
    rng = np.random.default_rng(0)
    sm, sn = rng.integers(0, 5, 9).astype(float), rng.integers(0, 5, 7).astype(float)     # many ties
    draws = pooled.Draws([(9, 7)], n_boot=20, seed=3)
    got = pooled.auc_draws(sm, sn, draws.members[0], draws.nonmembers[0])
    for b in range(20):
        xm, xn = np.repeat(sm, draws.members[0][b].astype(int)), np.repeat(sn, draws.nonmembers[0][b].astype(int))
        assert got[b] == pytest.approx(roc_auc_score(np.r_[np.ones(9), np.zeros(7)], np.r_[xm, xn]), abs=1e-12)


def test_closed_forms():
    assert power.null_sd(58, 50) == pytest.approx(0.056, abs=5e-4)
    assert power.null_sd(233, 200) == pytest.approx(0.028, abs=5e-4)
    fig = power.figures(DEMO)
    assert not fig["testable"] and fig["defends_best_upper"] > 0.18            # 2 * 1.645 * 0.056
    assert fig["leaks_auc_80"] == pytest.approx(0.657, abs=0.005)            # the 0.66
    assert power.defends_power(power.pooled_sd(DEMO)) == 0.0
    k = power.splits_needed(58, 50)
    assert power.defends_power(power.pooled_sd([(58, 50)] * k), splits=k) >= 0.8 > power.defends_power(
        power.pooled_sd([(58, 50)] * (k - 1)), splits=k - 1)
    n = power.per_side_needed()
    assert power.defends_power(power.null_sd(n, n)) >= 0.8 > power.defends_power(power.null_sd(n - 1, n - 1))
    assert "not testable" in power.describe(fig)


def test_at_the_demo_sizes_defends_is_not_testable():
    got = _verdicts(DEMO, 0.5)
    assert set(got) <= {"not testable at this size", "leaks"} and got.count("leaks") <= 0.1 * N_SIM


def test_powered_design_decides_defends():
    sizes = _powered()
    fig = power.figures(sizes)
    assert fig["testable"] and fig["defends_power_at_0.5"] >= 0.8
    null, far = _verdicts(sizes, 0.5), _verdicts(sizes, 0.6, seed=1)
    assert null.count("defends") >= 0.8 * N_SIM                              # 80% power at AUC 0.5
    assert far.count("defends") <= 0.05 * N_SIM and far.count("leaks") >= 0.95 * N_SIM
    edge = _verdicts(sizes, 0.55, seed=2)                                    # the margin itself: TOST's size
    assert edge.count("defends") <= 0.08 * N_SIM


def test_tost_interval_covers_the_null():
    sizes, rng = _powered(), np.random.default_rng(5)
    draws = pooled.Draws(sizes, 300, seed=6)
    covered90 = covered95 = 0
    for _ in range(N_SIM):
        p = pooled.Pooled(_scores(rng, sizes, 0.5), draws)
        lo, hi = pooled.percentile(p.reps, 0.90)
        covered90 += lo <= 0.5 <= hi
        lo, hi = pooled.percentile(p.reps, 0.95)
        covered95 += lo <= 0.5 <= hi
    assert 0.83 * N_SIM <= covered90 <= 0.97 * N_SIM                          # nominal 90%
    assert covered95 >= 0.90 * N_SIM                                          # false "leaks" at most ~10%


def test_constant_scores_say_nothing():
    draws = pooled.Draws([(5, 4)] * 2, 50)
    p = pooled.Pooled([(np.zeros(5), np.zeros(4))] * 2, draws)
    assert p.constant and pooled.verdict(p) == "constant scores" and p.record()["auc"] == 0.5


def test_paired_difference_verdicts():
    rng = np.random.default_rng(0)
    sizes = [(40, 60)] * 3
    draws = pooled.Draws(sizes, 300)
    strong = pooled.Pooled(_scores(rng, sizes, 0.8), draws)
    weak = pooled.Pooled(_scores(rng, sizes, 0.55), draws)
    assert pooled.paired(strong.reps, weak.reps, strong.auc - weak.auc)["verdict"] == "beyond"
    assert pooled.paired(weak.reps, strong.reps, weak.auc - strong.auc)["verdict"] == "behind"
    assert pooled.paired(weak.reps, weak.reps + 0.0, 0.0)["verdict"] == "indistinguishable"
