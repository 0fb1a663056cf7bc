"""Claims that can fail, and checks that are only bookkeeping (smplora_nb, arXiv 2402.11989 companion; ATTACKS.md).

Every privacy statement reads the 95% bootstrap interval of an attack's D_te AUC (``metrics.bootstrap_ci``) through
``auc_dev`` = |AUC - 0.5| / 0.5, which an attacker who flips the sign of a score cannot beat:

* **leaks**: the AUC interval excludes 0.5 on either side (members scoring *lower* than non-members is a signal
  too: an attacker flips the sign);
* **defends**: an equivalence test, the upper end of the auc_dev interval below ``margin`` (default 0.1, i.e. the
  whole AUC interval inside [0.45, 0.55]);
* **not detected**: neither: the interval contains 0.5 but is too wide to exclude leakage. It is absence of
  evidence, reported as such and never as "defends".

Stability claims compare the gradient norm's coefficient of variation (std / mean), not its raw standard deviation,
which SMP-LoRA's rescaling shrinks by construction. ``empirical_epsilon`` gives the DP-auditing lower bound on
epsilon from an attack's TPR and FPR at a threshold chosen on D_aux (Clopper-Pearson intervals). Facts that hold
by construction (an accountant's epsilon, weights that moved under added noise) go in ``check``, not in a claim.
"""
from __future__ import annotations

import math

import numpy as np

from .metrics import claim

MARGIN = 0.1                     # "defends": the upper end of the auc_dev interval below this (AUC in [0.45, 0.55])


def auc_dev_interval(auc_ci) -> tuple[float, float]:
    """The interval of auc_dev = |AUC - 0.5| / 0.5 implied by an AUC interval [lo, hi]."""
    lo, hi = auc_ci
    ends = sorted((abs(lo - 0.5) / 0.5, abs(hi - 0.5) / 0.5))
    return (0.0 if lo <= 0.5 <= hi else ends[0]), ends[1]


def verdict(auc_ci, margin: float = MARGIN) -> str:
    """"leaks", "defends" or "not detected" for an attack's AUC interval on D_te (module docstring)."""
    lo, hi = auc_ci
    if lo > 0.5 or hi < 0.5:
        return "leaks"
    return "defends" if auc_dev_interval(auc_ci)[1] < margin else "not detected"


def defends(text: str, auc_ci, margin: float = MARGIN) -> dict:
    """Claim "``text``": the upper end of the auc_dev interval is below ``margin`` (an equivalence test)."""
    return {**claim(text, auc_dev_interval(auc_ci)[1], "<", margin), "verdict": verdict(auc_ci, margin)}


def leaks(text: str, auc_ci) -> dict:
    """Claim "``text``": the AUC interval excludes 0.5 (value: the lower end of the auc_dev interval, > 0)."""
    return {**claim(text, auc_dev_interval(auc_ci)[0], ">", 0.0), "verdict": verdict(auc_ci)}


def cv(values) -> float | None:
    """Coefficient of variation std / mean of a series (the gradient norm's spread relative to its size)."""
    xs = np.asarray([v for v in values if v is not None], float)
    return float(xs.std() / xs.mean()) if len(xs) and xs.mean() > 0 else None


def less_variable(text: str, cv_a: float | None, cv_b: float | None, ratio: float = 1.0) -> dict:
    """Claim "``text``": coefficient of variation of a over that of b is above ``ratio``."""
    value = None if not cv_a or not cv_b else cv_a / cv_b
    return claim(text, value, ">", ratio)


def check(text: str, ok: bool, value=None) -> dict:
    """A bookkeeping fact (true by construction when the code is right): listed apart from the claims."""
    return {"check": text, "ok": bool(ok), "value": value}


def noise_floor(values) -> dict:
    """The spread of a headline metric over runs that differ only in seed (mean, sample sd, n)."""
    xs = np.asarray([v for v in values if v is not None], float)
    return {"mean": float(xs.mean()) if len(xs) else None,
            "sd": float(xs.std(ddof=1)) if len(xs) > 1 else None, "n": int(len(xs))}


def empirical_epsilon(scores_member, scores_nonmember, threshold: float, delta: float = 1e-5,
                      level: float = 0.95) -> dict:
    """The DP-auditing lower bound on epsilon from the decision rule ``score >= threshold`` (chosen on D_aux) on D_te.

    With Clopper-Pearson bounds TPR_lo (lower) and FPR_hi (upper), each one-sided at (1 - level) / 2, any
    (epsilon, delta)-DP training run satisfies TPR <= e^eps FPR + delta and 1 - FPR <= e^eps (1 - TPR) + delta, so
    eps >= max(log((TPR_lo - delta) / FPR_hi), log((1 - FPR_hi - delta) / (1 - TPR_lo))) at confidence ``level``.
    """
    from scipy.stats import beta

    sm, sn = np.asarray(scores_member, float), np.asarray(scores_nonmember, float)
    tp, fp, n_m, n_n = int((sm >= threshold).sum()), int((sn >= threshold).sum()), len(sm), len(sn)
    a = (1 - level) / 2
    tpr_lo = float(beta.ppf(a, tp, n_m - tp + 1)) if tp > 0 else 0.0
    fpr_hi = float(beta.ppf(1 - a, fp + 1, n_n - fp)) if fp < n_n else 1.0
    bounds = [0.0]
    if tpr_lo - delta > 0 and fpr_hi > 0:
        bounds.append(math.log((tpr_lo - delta) / fpr_hi))
    if 1 - fpr_hi - delta > 0 and tpr_lo < 1:
        bounds.append(math.log((1 - fpr_hi - delta) / (1 - tpr_lo)))
    return {"epsilon_lower_bound": max(bounds), "tpr": tp / n_m, "fpr": fp / n_n, "tpr_lower": tpr_lo,
            "fpr_upper": fpr_hi, "level": level, "delta": delta, "n_member": n_m, "n_nonmember": n_n}


def model_free_split_check(splits, seed: int = 0, n_boot: int = 1000) -> dict:
    """Can the images alone tell members from non-members? A logistic regression on pooled pixels
    (``metrics.PooledPixels``), fitted on D_aux (member_aux vs nonmember_aux), scored on D_te: its AUC and
    bootstrap interval. Near 0.5 means the split measures memorisation, not a distribution shift (CopyMark)."""
    from sklearn.linear_model import LogisticRegression

    from .metrics import PooledPixels, bootstrap_ci, membership

    feats = {k: PooledPixels()(np.stack([it.image for it in splits[k]]))
             for k in ("member_aux", "nonmember_aux", "member_te", "nonmember_te")}
    x = np.concatenate([feats["member_aux"], feats["nonmember_aux"]])
    y = np.r_[np.ones(len(feats["member_aux"])), np.zeros(len(feats["nonmember_aux"]))]
    clf = LogisticRegression(max_iter=2000, C=1.0).fit(x, y)
    sm, sn = clf.decision_function(feats["member_te"]), clf.decision_function(feats["nonmember_te"])
    return {**membership(sm, sn, 0.0), "ci": bootstrap_ci(sm, sn, n_boot, seed=seed),
            "features": PooledPixels.DESCRIPTION}
