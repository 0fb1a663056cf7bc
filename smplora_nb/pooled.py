"""One interval per method and attack over all its (split, image) pairs: the stratified bootstrap of the powered
audit (smplora_nb, arXiv 2402.11989 companion; ATTACKS.md, "Power").

A design is K independent member splits (the same private pool re-dealt into members and non-members), each with
its own D_te. The pooled AUC of an attack on a method is the mean of the splits' AUCs (scikit-learn's
``roc_auc_score``). Its bootstrap resamples, within every split, the members and the non-members of D_te with
replacement (``Draws``: multinomial counts, drawn once per design). A resample's AUC is the count-weighted
Mann-Whitney statistic

    AUC* = sum_ij w_i v_j H_ij / (m n),   H_ij = [s_i > s_j] + [s_i = s_j] / 2,

exactly the AUC of the resampled scores (a test checks it against ``roc_auc_score``), for all resamples in one
matrix product. The bootstrap covers the sampling of each split's images; runs on different splits also differ by
their training and their members, so from 3 splits "defends" must also pass on the spread of the splits' AUCs
(``Pooled.between``: Student's t over the splits), and every record keeps that spread. The same draws serve every method and attack, so differences between two methods (or two
attacks) on the same images get *paired* intervals, and the held-out loss (a mean over D_te's non-members) is
resampled with the very same counts.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import t as student_t

from . import power

N_BOOT = 1000                  # bootstrap resamples of a design


class Draws:
    """Multinomial counts for the D_te of every split ``k`` of ``sizes`` = ``{k: (m_k, n_k)}`` (or a list, split k at
    position k): ``members[k]`` (n_boot, m_k) and ``nonmembers[k]`` (n_boot, n_k). Every method and attack on split
    k is resampled with the same counts."""

    def __init__(self, sizes, n_boot: int = N_BOOT, seed: int = 0):
        sizes = dict(enumerate(sizes)) if isinstance(sizes, (list, tuple)) else dict(sizes)
        rng = np.random.default_rng(seed)
        self.sizes, self.n_boot = {k: (int(m), int(n)) for k, (m, n) in sorted(sizes.items())}, n_boot
        self.members = {k: rng.multinomial(m, np.full(m, 1 / m), size=n_boot).astype(float)
                        for k, (m, _) in self.sizes.items()}
        self.nonmembers = {k: rng.multinomial(n, np.full(n, 1 / n), size=n_boot).astype(float)
                           for k, (_, n) in self.sizes.items()}


def auc_draws(sm, sn, wm: np.ndarray, wn: np.ndarray) -> np.ndarray:
    """(n_boot,) AUCs of the resamples given by counts ``wm`` (n_boot, m) and ``wn`` (n_boot, n)."""
    sm, sn = np.asarray(sm, float)[:, None], np.asarray(sn, float)[None, :]
    h = (sm > sn) + 0.5 * (sm == sn)                                     # (m, n)
    return ((wm @ h) * wn).sum(1) / (len(sm) * sn.shape[1])


def mean_draws(values, w: np.ndarray) -> np.ndarray:
    """(n_boot,) means of ``values`` (n,) in the resamples given by counts ``w`` (n_boot, n)."""
    return w @ np.asarray(values, float) / len(values)


def percentile(reps: np.ndarray, level: float) -> list[float]:
    """The central ``level`` interval of the resampled statistic (``inf`` allowed, e.g. an unreachable frontier)."""
    reps, q = np.asarray(reps, float), [(1 - level) / 2 * 100, (1 + level) / 2 * 100]
    with np.errstate(invalid="ignore"):
        ends = np.percentile(reps, q)
    # interpolating between two infinite neighbours (inf - inf) gives nan: there the end is the neighbours' value
    ends = np.where(np.isnan(ends), np.percentile(reps, q, method="nearest"), ends)
    return [float(ends[0]), float(ends[1])]


def auc_dev(auc):
    """|AUC - 0.5| / 0.5, elementwise."""
    return np.abs(np.asarray(auc, float) - 0.5) / 0.5


def auc_dev_interval(auc_ci) -> tuple[float, float]:
    """The interval of auc_dev = |AUC - 0.5| / 0.5 implied by an AUC interval [lo, hi]."""
    lo, hi = auc_ci
    ends = sorted((abs(lo - 0.5) / 0.5, abs(hi - 0.5) / 0.5))
    return (0.0 if lo <= 0.5 <= hi else ends[0]), ends[1]


class Pooled:
    """One attack on one method over splits of a design: ``scores`` = ``{k: (members' scores, non-members')}`` (or a
    list, split k at position k). ``reps`` holds the resampled pooled AUCs for paired comparisons."""

    def __init__(self, scores, draws: Draws):
        from sklearn.metrics import roc_auc_score           # scikit-learn: only once an AUC is computed

        scores = dict(enumerate(scores)) if isinstance(scores, (list, tuple)) else dict(scores)
        sizes = {k: (len(sm), len(sn)) for k, (sm, sn) in scores.items()}
        if any(draws.sizes.get(k) != v for k, v in sizes.items()):
            raise ValueError(f"scores of sizes {sizes} do not match the design's {draws.sizes}")
        self.splits = sorted(scores)
        self.by_split = [float(roc_auc_score(np.r_[np.ones(len(sm)), np.zeros(len(sn))], np.r_[sm, sn]))
                         for sm, sn in (scores[k] for k in self.splits)]
        self.auc = float(np.mean(self.by_split))
        self.reps = np.mean([auc_draws(*scores[k], draws.members[k], draws.nonmembers[k]) for k in self.splits], axis=0)
        self.constant = all(np.ptp(np.r_[sm, sn]) == 0 for sm, sn in scores.values())
        self.power = power.figures([sizes[k] for k in self.splits])

    def between(self, level: float) -> list[float] | None:
        """The interval from the spread of the splits' AUCs (Student's t over K >= 3 splits): what the image
        bootstrap misses when runs on different splits differ more than their images explain (training and
        dealing); None below 3 splits."""
        k = len(self.by_split)
        if k < 3:
            return None
        half = student_t.ppf((1 + level) / 2, k - 1) * np.std(self.by_split, ddof=1) / np.sqrt(k)
        return [self.auc - half, self.auc + half]

    def tost(self) -> list[float]:
        """The auc_dev interval of the equivalence test: the wider of the bootstrap's and the between-split 90%
        intervals, so that "defends" must hold for the images and for the runs."""
        ends = [auc_dev_interval(percentile(self.reps, 0.90))]
        if self.between(0.90) is not None:
            ends.append(auc_dev_interval(self.between(0.90)))
        return [min(e[0] for e in ends), max(e[1] for e in ends)]

    def record(self) -> dict:
        """The JSON record: pooled AUC, per split, the bootstrap's 95% and 90% intervals, the between-split 90%
        interval, auc_dev and its TOST interval, power, verdict (``verdict``)."""
        ci95, ci90 = percentile(self.reps, 0.95), percentile(self.reps, 0.90)
        return {"auc": self.auc, "auc_dev": float(auc_dev(self.auc)), "splits": self.splits, "auc_by_split": self.by_split,
                "ci": {"auc": ci95}, "ci90": {"auc": ci90}, "ci90_between": self.between(0.90),
                "auc_dev_tost": self.tost(), "constant": self.constant, "power": self.power, "verdict": verdict(self)}


def verdict(p: Pooled, margin: float = power.MARGIN) -> str:
    """"constant scores" (the attack says nothing about this model), "defends" (TOST: the auc_dev upper end of the
    90% interval below ``margin``, for the bootstrap over images and, from 3 splits, for the spread over splits; a
    leak within the margin, even a detectable one, is equivalent to none), "leaks" (the bootstrap's 95% interval
    excludes 0.5), "not testable at this size" (defends cannot pass here) or "not detected" (absence of evidence,
    never a defense)."""
    if p.constant:
        return "constant scores"
    if p.power["testable"] and p.tost()[1] < margin:
        return "defends"                                 # equivalent: any leak lies within the margin
    lo, hi = percentile(p.reps, 0.95)
    if lo > 0.5 or hi < 0.5:
        return "leaks"
    return "not testable at this size" if not p.power["testable"] else "not detected"


def paired(a: np.ndarray, b: np.ndarray, point: float, level: float = 0.95) -> dict:
    """A paired difference ``a - b`` of two resampled statistics (same draws): point, interval and the verdict
    "beyond" (interval above 0), "behind" (below 0) or "indistinguishable"."""
    lo, hi = percentile(np.asarray(a, float) - np.asarray(b, float), level)
    return {"difference": float(point), "ci": [lo, hi],
            "verdict": "beyond" if lo > 0 else "behind" if hi < 0 else "indistinguishable"}


def single(scores_member, scores_nonmember, n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """The record of one split's D_te scores (a design of one split): AUC, its 95% and 90% intervals, verdict and
    power figures, e.g. ``single(r["scores_member"], r["scores_nonmember"])["verdict"]`` of an attack record."""
    draws = Draws([(len(scores_member), len(scores_nonmember))], n_boot, seed)
    return Pooled([(scores_member, scores_nonmember)], draws).record()
