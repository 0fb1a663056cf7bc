"""What a membership verdict can detect at its sizes (ATTACKS.md, "Power"; arXiv 2402.11989 companion).

Under the null (members and non-members indistinguishable to the attack) the AUC on D_te with m members and n
non-members has the standard deviation of the Mann-Whitney statistic,

    sd = sqrt((m + n + 1) / (12 m n))                       (0.056 at 58 + 50, 0.028 at 233 + 200),

and the mean of the AUCs of K independent member splits has sd = sqrt(sum_k sd_k^2) / K. In the normal
approximation, with ``margin`` the equivalence margin on auc_dev = |AUC - 0.5| / 0.5 (0.1: AUC within 0.5 +- 0.05):

* **defends** is TOST at alpha = 0.05 (the 90% interval of the AUC inside 0.5 +- margin / 2). At an estimate of
  exactly 0.5 the interval's auc_dev upper end is 2 z_0.95 sd: the smallest it can be at these sizes. When that is
  not below the margin the verdict is "not testable at this size". Its power at a true AUC of 0.5 is
  P(|X - 0.5| + z_0.95 sd < margin / 2) = 2 Phi(margin / (2 sd) - z_0.95) - 1. From 3 splits the verdict also
  reads the spread of the splits' AUCs (Student's t), so z_0.95 becomes t_0.95 with K - 1 degrees of freedom.
* **leaks** is the two-sided test at alpha = 0.05 (the 95% interval excludes 0.5); it detects a true AUC of
  0.5 + (z_0.975 + z_0.8) sd with 80% power.

``figures`` gives all of these for a design, and how many splits (or images per side in one split) the defends
verdict would need for 80% power. ``tests/test_power.py`` checks them by simulation through the package's own
verdict code.
"""
from __future__ import annotations

import math

from scipy.stats import norm
from scipy.stats import t as student_t

MARGIN = 0.1                 # "defends": the auc_dev interval below this (pre-registered; AUC within 0.5 +- 0.05)
ALPHA = 0.05                 # both tests; TOST at alpha uses the 1 - 2 alpha = 90% interval
POWER = 0.8                  # the power a design is sized for


def null_sd(m: int, n: int) -> float:
    """The AUC's standard deviation under the null with ``m`` members and ``n`` non-members."""
    if m < 1 or n < 1:
        raise ValueError(f"need at least one member and one non-member, got {m} and {n}")
    return math.sqrt((m + n + 1) / (12 * m * n))


def pooled_sd(sizes) -> float:
    """The null sd of the mean AUC over independent splits, ``sizes`` = [(m, n), ...] one pair per split."""
    sizes = list(sizes)
    return math.sqrt(sum(null_sd(m, n) ** 2 for m, n in sizes)) / len(sizes)


def _z(splits: int) -> float:
    """The one-sided 95% quantile of the TOST interval: normal, or Student's t over K >= 3 splits (the verdict also
    reads the spread of the splits' AUCs, ``pooled.Pooled.between``)."""
    return float(student_t.ppf(1 - ALPHA, splits - 1)) if splits >= 3 else float(norm.ppf(1 - ALPHA))


def best_upper(sd: float, splits: int = 1) -> float:
    """The smallest auc_dev upper end of a TOST interval at these sizes (the AUC estimate exactly 0.5)."""
    return float(2 * _z(splits) * sd)


def defends_power(sd: float, margin: float = MARGIN, splits: int = 1) -> float:
    """P("defends") when the true AUC is 0.5 (normal approximation; over K >= 3 splits with t's quantile, the
    sample spread taken at its expected size)."""
    return max(0.0, float(2 * norm.cdf(margin / (2 * sd) - _z(splits)) - 1))


def leaks_detects(sd: float, power: float = POWER) -> float:
    """The true AUC that "leaks" detects with probability ``power`` (and 1 minus it, by symmetry)."""
    return float(0.5 + (norm.ppf(1 - ALPHA / 2) + norm.ppf(power)) * sd)


def splits_needed(m: int, n: int, power: float = POWER, margin: float = MARGIN) -> int:
    """How many independent splits of ``m`` + ``n`` give "defends" ``power`` at a true AUC of 0.5."""
    k = 1
    while defends_power(pooled_sd([(m, n)] * k), margin, k) < power:
        k += 1
    return k


def per_side_needed(power: float = POWER, margin: float = MARGIN) -> int:
    """How many members and as many non-members one split needs for the same."""
    n = 2
    while defends_power(null_sd(n, n), margin) < power:
        n *= 2
    lo = n // 2
    while lo + 1 < n:                                   # bisect: the power grows with n
        mid = (lo + n) // 2
        lo, n = (lo, mid) if defends_power(null_sd(mid, mid), margin) >= power else (mid, n)
    return n


def figures(sizes, margin: float = MARGIN) -> dict:
    """What the verdicts can detect for a design, ``sizes`` = [(members, non-members) of D_te, ...] per split."""
    sizes = [(int(m), int(n)) for m, n in sizes]
    sd = pooled_sd(sizes)
    m, n = sizes[0]
    return {"splits": len(sizes), "n_member": sum(s[0] for s in sizes), "n_nonmember": sum(s[1] for s in sizes),
            "null_sd": sd, "margin": margin, "defends_best_upper": best_upper(sd, len(sizes)),
            "testable": bool(best_upper(sd, len(sizes)) < margin),
            "defends_power_at_0.5": defends_power(sd, margin, len(sizes)),
            "leaks_auc_80": float(leaks_detects(sd)), "splits_needed": splits_needed(m, n, POWER, margin),
            "per_side_needed": per_side_needed(POWER, margin)}


def describe(fig: dict) -> str:
    """The figures in words, e.g. for a claims table."""
    if not fig["testable"]:
        return (f"defends not testable at this size: best reachable auc_dev upper end "
                f"{fig['defends_best_upper']:.2f} >= {fig['margin']} (needs about {fig['splits_needed']} splits "
                f"like these, or {fig['per_side_needed']} per side in one); leaks detects AUC >= "
                f"{fig['leaks_auc_80']:.2f} with 80% power")
    return (f"{fig['splits']} split(s): defends has {fig['defends_power_at_0.5']:.0%} power at AUC 0.5 (best "
            f"reachable upper end {fig['defends_best_upper']:.3f}); leaks detects AUC >= {fig['leaks_auc_80']:.2f} "
            f"with 80% power")
