"""Membership metrics (scikit-learn underneath) - arXiv 2402.11989.

Members are the positive class and scores are "higher = more likely a member":
  asr      balanced accuracy of the attack's decision rule (fixed on D_aux) on D_te (= accuracy when balanced)
  auc      area under the ROC curve;  auc_dev = |auc - 0.5| / 0.5, the paper's form (0 = random guessing)
  tpr_at_1pct_fpr, tpr_at_5pct_fpr   LiRA's convention (Carlini et al. 2022, its plotting code): the TPR at the
           largest FPR strictly below the target; ``None`` ("not measurable") with fewer than 1/target non-members.

Summaries over member splits (mean and standard error) and one method's record (``method_summary``) are here too.
Image quality (FID, KID, the digit classifier) is ``quality``.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import auc, balanced_accuracy_score, roc_auc_score, roc_curve

from .labels import PAPER_ATTACK

MEMBERSHIP = ("asr", "auc", "auc_dev", "tpr_at_1pct_fpr", "tpr_at_5pct_fpr")


def tpr_at_fpr(y: np.ndarray, scores: np.ndarray, target: float) -> float | None:
    """TPR at the largest FPR < ``target`` (LiRA's convention); ``None`` when there are < 1/target negatives."""
    y = np.asarray(y)
    if (y == 0).sum() * target < 1:
        return None
    fpr, tpr, _ = roc_curve(y, scores, drop_intermediate=False)
    return float(tpr[fpr < target - 1e-12].max())


def membership(scores_member, scores_nonmember, threshold: float) -> dict:
    """Membership metrics on one evaluation set (D_te) for a decision rule ``score >= threshold``."""
    sm, sn = np.asarray(scores_member, float), np.asarray(scores_nonmember, float)
    if not (np.isfinite(sm).all() and np.isfinite(sn).all()):
        raise ValueError("attack scores must be finite")
    y, s = np.r_[np.ones(len(sm)), np.zeros(len(sn))], np.r_[sm, sn]
    auc = float(roc_auc_score(y, s))
    return {"asr": float(balanced_accuracy_score(y, s >= threshold)), "auc": auc, "auc_dev": abs(auc - 0.5) / 0.5,
            "tpr_at_1pct_fpr": tpr_at_fpr(y, s, 0.01), "tpr_at_5pct_fpr": tpr_at_fpr(y, s, 0.05),
            "n_member": len(sm), "n_nonmember": len(sn)}


def bootstrap_ci(scores_member, scores_nonmember, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Percentile bootstrap intervals of AUC, TPR@1%FPR and TPR@5%FPR on one evaluation set.

    Members and non-members are resampled with replacement separately (the set sizes stay fixed), ``n_boot`` times;
    the interval is the central ``level`` mass of the resampled statistic. TPR@1%FPR is ``None`` ("not
    measurable") with fewer than 100 non-members, as in ``membership``.
    """
    sm, sn = np.asarray(scores_member, float), np.asarray(scores_nonmember, float)
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(len(sm)), np.zeros(len(sn))]
    stats = {"auc": [], "tpr_at_1pct_fpr": [], "tpr_at_5pct_fpr": []}
    for _ in range(n_boot):                        # one ROC curve per resample gives all three statistics
        s = np.r_[sm[rng.integers(0, len(sm), len(sm))], sn[rng.integers(0, len(sn), len(sn))]]
        fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
        stats["auc"].append(auc(fpr, tpr))
        for k, target in (("tpr_at_1pct_fpr", 0.01), ("tpr_at_5pct_fpr", 0.05)):   # as ``tpr_at_fpr``
            stats[k].append(None if len(sn) * target < 1 else float(tpr[fpr < target - 1e-12].max()))
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    out = {"level": level, "n_boot": n_boot}
    for k, v in stats.items():
        out[k] = None if v[0] is None else [float(np.percentile(v, lo)), float(np.percentile(v, hi))]
    return out


def roc(scores_member, scores_nonmember) -> tuple[np.ndarray, np.ndarray]:
    y = np.r_[np.ones(len(scores_member)), np.zeros(len(scores_nonmember))]
    fpr, tpr, _ = roc_curve(y, np.r_[scores_member, scores_nonmember])
    return fpr, tpr


def summarize(per_split: dict) -> dict:
    """Mean and standard error over splits of every numeric metric: ``{split: {name: value}}`` -> mean, sem, n."""
    names = {k for m in per_split.values() for k, v in m.items() if isinstance(v, (int, float)) or v is None}
    out = {"mean": {}, "sem": {}, "n_splits": len(per_split)}
    for k in sorted(names):
        vals = [m[k] for m in per_split.values() if isinstance(m.get(k), (int, float))]
        if len(vals) < len(per_split) or not vals:                       # "not measurable" somewhere
            out["mean"][k] = out["sem"][k] = None
            continue
        out["mean"][k] = float(np.mean(vals))
        out["sem"][k] = float(np.std(vals, ddof=1) / np.sqrt(len(vals))) if len(vals) > 1 else None
    return out


def method_summary(audits: dict, quality: dict) -> dict:
    """Per-split and mean +- s.e. results of one method: every attack, quality, and the headline ``mean``/``sem``
    (the paper's attack plus FID/KID), in the vocabulary of all notebooks. ``audits`` = ``{split: {attack:
    record}}``; the records' per-image scores stay out (``metrics.json`` keeps the numbers, not the scores)."""
    splits = list(audits)
    per_split = {s: {**{a: {k: v for k, v in audits[s][a].items() if "scores_" not in k} for a in audits[s]},
                     "quality": quality[s]} for s in splits}
    attacks = {a: summarize({s: audits[s][a] for s in splits}) for a in audits[splits[0]]}
    qual = summarize(quality)
    return {"per_split": per_split, "attacks": attacks, "quality": qual,
            "mean": {**{k: attacks[PAPER_ATTACK]["mean"][k] for k in MEMBERSHIP}, **qual["mean"]},
            "sem": {**{k: attacks[PAPER_ATTACK]["sem"][k] for k in MEMBERSHIP}, **qual["sem"]}}
