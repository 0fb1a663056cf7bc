"""Claims that can fail and can pass, checks, and descriptive figures (smplora_nb, arXiv 2402.11989 companion;
ATTACKS.md, "Power").

A **claim** is a statement about a measured value that can hold and can fail at its sizes; it carries what it could
detect (``power``) and, where there is one, the value's interval. A **check** is a fact that holds by construction
when the code is right (an accountant's epsilon, a split's disjointness, a bootstrap's coverage on a model that never
saw a member), listed apart. A **descriptive** figure is reported without a target (a trend on two points, one seed
against a prediction interval of 15 seed sds). A claim that cannot pass at its sizes is reported as **not testable
at this size**, with the size it would need, never as failed or held.

Privacy verdicts read an attack's AUC on D_te, pooled over member splits (``pooled``), through ``auc_dev`` =
|AUC - 0.5| / 0.5, which an attacker who flips the sign of a score cannot beat:

* **leaks**: the 95% interval of the AUC excludes 0.5, on either side;
* **defends**: an equivalence test, TOST at alpha = 0.05: the 90% interval of the AUC inside 0.5 +- 0.05, i.e. its
  auc_dev interval below the pre-registered margin 0.1 (``power.MARGIN``);
* **not detected**: neither: absence of evidence, never reported as a defense;
* **not testable at this size**: "defends" could not pass even at an estimate of exactly 0.5 (``power``);
* **constant scores**: the attack gives every image the same score on this model (a reference attack on the base
  model itself): it says nothing there.

Stability claims compare the gradient norm's coefficient of variation (std / mean), not its raw standard deviation,
which SMP-LoRA's rescaling shrinks by construction. ``empirical_epsilon`` gives the DP-auditing lower bound on
epsilon from an attack's TPR and FPR at a threshold chosen on D_aux (Clopper-Pearson intervals).
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import beta, norm

from . import power
from .pooled import auc_dev_interval  # noqa: F401  (the claims' vocabulary: re-exported)

MARGIN = power.MARGIN            # "defends": the auc_dev interval below this (AUC in [0.45, 0.55])
OPS = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b}


def claim(text: str, value, op: str, target: float, interval=None, power: str | None = None) -> dict:
    """A checkable statement about a measured value, e.g. ``claim("LoRA ASR", 0.81, ">=", 0.70)``; stored in
    ``metrics.json["claims"]`` and printed by the runner, so every run says which claims held. ``interval`` is the
    value's interval where there is one; ``power`` says what the claim could detect at its sizes."""
    if op not in OPS:
        raise ValueError(f"op must be one of {sorted(OPS)}, got {op!r}")
    if value is not None and not np.isfinite(value):                   # not measurable (e.g. 0/0): does not hold
        value = None
    holds = value is not None and bool(OPS[op](value, target))
    out = {"claim": text, "value": value, "op": op, "target": target, "holds": holds, "kind": "claim"}
    return {**out, **({"interval": list(interval)} if interval is not None else {}),
            **({"power": power} if power else {})}


def descriptive(text: str, value, why: str) -> dict:
    """A figure reported without a target, and ``why`` it is not a claim at its sizes."""
    return {"claim": text, "value": value, "op": "", "target": None, "holds": None, "kind": "descriptive",
            "power": why}


def not_testable(text: str, value, needs: str) -> dict:
    """A claim that cannot pass at its sizes: reported with the size it ``needs``, neither held nor failed."""
    return {"claim": text, "value": value, "op": "", "target": None, "holds": None, "kind": "not testable",
            "power": needs}


def check(text: str, ok: bool, value=None) -> dict:
    """A bookkeeping fact (true by construction when the code is right): listed apart from the claims."""
    return {"check": text, "ok": bool(ok), "value": value}


def counted(claims: list) -> list:
    """The claims that can hold or fail (not the descriptive or untestable ones)."""
    return [c for c in claims if c.get("kind", "claim") == "claim"]


def defends(text: str, record: dict, margin: float = MARGIN) -> dict:
    """Claim "``text``" from a pooled record (``pooled.Pooled.record``): the TOST interval's auc_dev upper end is
    below ``margin``; "not testable" when it could not be at these sizes, with what it would need."""
    upper = record["auc_dev_tost"][1]
    if not record["power"]["testable"]:
        return {**not_testable(text, upper, power.describe(record["power"])), "verdict": record["verdict"]}
    return {**claim(text, upper, "<", margin, record["auc_dev_tost"], power.describe(record["power"])),
            "verdict": record["verdict"]}


def leaks(text: str, record: dict, at_least: float = 0.5) -> dict:
    """Claim "``text``" from a pooled record: the 95% interval of the AUC lies above 0.5 and the AUC is at least
    ``at_least`` (a target below the development value by its noise, never the development value itself)."""
    lo, hi = record["ci"]["auc"]
    out = claim(text, record["auc"], ">=", at_least, (lo, hi), power.describe(record["power"]))
    return {**out, "holds": bool(out["holds"] and lo > 0.5), "verdict": record["verdict"]}


def cv(values) -> float | None:
    """Coefficient of variation std / mean of a series (the gradient norm's spread relative to its size)."""
    xs = np.asarray([v for v in values if v is not None], float)
    return float(xs.std() / xs.mean()) if len(xs) and xs.mean() > 0 else None


def less_variable(text: str, cvs_a: list, cvs_b: list, ratio: float = 1.0) -> dict:
    """Claim "``text``": on every split, the coefficient of variation of a over that of b is above ``ratio``
    (value: the smallest ratio; interval: the smallest and largest, the spread over splits)."""
    ratios = [a / b for a, b in zip(cvs_a, cvs_b) if a and b]
    if len(ratios) < len(cvs_a) or not ratios:
        return claim(text, None, ">", ratio)
    return claim(text, min(ratios), ">", ratio, (min(ratios), max(ratios)),
                 f"{len(ratios)} split(s), ratios {', '.join(f'{r:.2f}' for r in ratios)}")


def weakly_correlated(text: str, r: float | None, n: int, bound: float = 0.5) -> dict:
    """Claim "``text``": Pearson's r over ``n`` points lies within (-bound, bound), its whole Fisher-z 95% interval
    inside. Not testable when even r = 0 would give an interval reaching ``bound``; with the points it would need
    for 80% power at a true correlation of 0."""
    z, z80 = norm.ppf(0.975), norm.ppf(0.9)
    need = math.ceil(3 + ((z + z80) / math.atanh(bound)) ** 2)
    if r is None or n < 4 or math.tanh(z / math.sqrt(n - 3)) >= bound:
        return not_testable(text, r, f"{n} points: even r = 0 has a 95% interval reaching +-{bound} (needs about "
                                     f"{need} points)")
    lo, hi = (math.tanh(math.atanh(max(min(r, 0.999999), -0.999999)) + s * z / math.sqrt(n - 3)) for s in (-1, 1))
    return claim(text, max(abs(lo), abs(hi)), "<", bound, (lo, hi),
                 f"{n} points (80% power at r = 0 needs about {need})")


def proportion(text: str, p: float | None, n: int, op: str, target: float) -> dict:
    """Claim "``text``" on a proportion ``p`` of ``n`` trials (e.g. generated images drawn as the right class), with
    its 95% Clopper-Pearson interval."""
    if p is None or not n:
        return claim(text, p, op, target)
    k = round(p * n)
    lo = float(beta.ppf(0.025, k, n - k + 1)) if k > 0 else 0.0
    hi = float(beta.ppf(0.975, k + 1, n - k)) if k < n else 1.0
    return claim(text, p, op, target, (lo, hi), f"{n} images")


def utility_difference(text: str, comparison: dict, worse: bool) -> dict:
    """Claim "``text``" on ``study.compare_utility``'s record of one utility (difference and floor): ``worse`` =
    the difference lies above the floor; otherwise it does not (within the floor, or better)."""
    d, floor = comparison["difference"], comparison["floor"]
    return claim(text, d, ">" if worse else "<=", floor, None, f"floor {floor:.3g}: twice the sd over splits or the "
                 f"sampling floor of two independent sample sets, the larger")


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
