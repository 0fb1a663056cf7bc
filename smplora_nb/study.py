"""The analyses of the series on evaluated runs, per split (smplora_nb, arXiv 2402.11989 companion): per-method
summaries over member splits and their noise floors, utilities and their floors, training statistics, the ablation
tables, and notebook 01's model-free check of the split. The pooled verdicts, the frontier and the DP comparisons of the powered audit are ``powered``.

Every function takes ``evals``, the ``{key: evaluation}`` of ``evaluate.evaluate_many`` with keys ``(model, k)``, k
the member split (``grids``), and returns plain records whose keys are the glossary's names; ``labels.label`` gives the
words a reader sees. A researcher can call them on their own runs without a notebook.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr
from scipy.stats import t as student_t
from sklearn.linear_model import LogisticRegression

from . import claims, diagnostics, metrics, quality, scores
from .attack import PAPER_ATTACK

THRESHOLD_ATTACKS = ("loss_at_t", "loss_at_t_ref") + scores.SCORES   # the attacks with a D_aux-chosen threshold


STATS_MP = ("grad_norm_mean", "grad_norm_std", "grad_norm_cv", "grad_scale_std", "grad_scale_ada_std",
            "grad_scale_privacy_std", "hessian_mean", "hessian_std", "pcc_grad_hessian", "pcc_p_value", "l_ada_final",
            "proxy_acc_final")                             # notebook 03's table (Fig. 2 analogue)
STATS_SMP = ("grad_norm_mean", "grad_norm_std", "grad_norm_cv", "rescale_max", "rescale_min", "rescale_mean",
             "rescale_std", "pcc_grad_hessian", "pcc_p_value", "l_ada_final", "proxy_acc_final")   # notebook 04's


def groups(evals, models=None) -> dict:
    """``{model: [keys of its seeds]}`` for the models of ``evals`` (or of ``models``, in that order)."""
    out = {}
    for key in evals:
        out.setdefault(key[0], []).append(key)
    return {m: out[m] for m in (models or out) if m in out}


def pick(records: dict, models, *path, split: int | None = None) -> dict:
    """``{model: records[model][path...]}`` for the models of ``models`` that ``records`` has, in that order; with
    ``split``, ``records[model, split][path...]`` (records keyed ``(model, k)``, as ``evals`` and training logs).
    What a figure or a table of a few models reads, e.g. ``pick(evals, ["lora", "base"], "samples", split=0)``."""
    out = {}
    for m in models:
        key = m if split is None else (m, split)
        if key in records:
            value = records[key]
            for k in path:
                value = value[k]
            out[m] = value
    return out


def split_groups(models, ks) -> dict:
    """``{model: [(model, k), ...]}``: the same splits for each model."""
    return {m: [(m, k) for k in ks] for m in models}


def summaries(evals, models=None) -> dict:
    """``{model: metrics.method_summary}`` over the splits of each model (per split, keyed by the split as text as
    in ``metrics.json``: every attack, quality)."""
    return {m: metrics.method_summary({str(k[1]): evals[k]["audit"] for k in keys},
                                      {str(k[1]): evals[k]["quality"] for k in keys})
            for m, keys in groups(evals, models).items()}


def noise_floors(summary: dict, metric: str = "auc_dev") -> dict:
    """The noise floor of ``metric`` for every model and attack of ``summaries``: its spread over the member splits
    (each with its own training and attack seed), ``claims.noise_floor`` = mean, sd, n."""
    return {m: {a: claims.noise_floor([r[a][metric] for r in s["per_split"].values()])
                for a in s["attacks"]} for m, s in summary.items()}


def points(summary: dict, attack: str = PAPER_ATTACK) -> dict:
    """Privacy-utility points for ``viz_privacy.privacy_utility``: mean, s.e. and per split (quality and ``attack``)."""
    return {m: {"mean": s["mean"], "sem": s["sem"],
                "per_split": [{**r["quality"], **r[attack]} for r in s["per_split"].values()]} for m, s in summary.items()}


def training_stats(logs: dict, models=None) -> dict:
    """``{model: {split: diagnostics.summarize_log}}`` from ``{(model, k): train_log}``."""
    return {m: {str(k[1]): diagnostics.summarize_log(logs[k]) for k in keys} for m, keys in groups(logs, models).items()}


def split_stats(logs: dict, k: int = 0) -> dict:
    """``{model: diagnostics.summarize_log}`` of every model's run on split ``k`` (``training_stats`` of one split)."""
    return {m: by[str(k)] for m, by in training_stats(logs).items()}


def split_curves(logs: dict, key: str = "l_ada") -> dict:
    """``{"split k": log[key]}`` of one model's runs ``{(model, k): train_log}``: a training curve per split."""
    return {f"split {k[-1]}": log[key] for k, log in logs.items()}


def run_facts(logs: dict, model: str) -> dict:
    """Epochs and training seconds of each split of ``model`` (``{(model, k): train_log}``)."""
    keys = groups(logs)[model]
    return {"epochs": {str(k[1]): logs[k]["epochs"] for k in keys},
            "train_seconds": {str(k[1]): logs[k]["seconds_this_session"] for k in keys}}


def mean_stats(stats: dict) -> dict:
    """``{model: {statistic: mean over splits}}`` (None where no split has it)."""
    out = {}
    for m, by_seed in stats.items():
        names = dict.fromkeys(k for s in by_seed.values() for k in s)
        vals = {k: [s[k] for s in by_seed.values() if isinstance(s.get(k), (int, float))] for k in names}
        out[m] = {k: (float(np.mean(v)) if v else None) for k, v in vals.items()}
    return out


def chosen(audit: dict) -> dict:
    """What every attack of one model chose on D_aux (learning curves left out)."""
    return {a: {k: v for k, v in r["chosen_on_aux"].items() if k != "history"} for a, r in audit.items()}


def without_scores(record: dict) -> dict:
    """An attack record without its per-image scores (D_te and D_aux), as ``metrics.json`` keeps it."""
    return {k: v for k, v in record.items() if "scores_" not in k}


def utility(ev: dict) -> dict:
    """The utilities of one evaluation: FID and KID; ``heldout_loss``, the mean denoising loss on D_te's non-members
    (how well the model fits unseen private images, the point of adapting); and, where the images have class
    labels, ``sample_accuracy``, the digit classifier's accuracy on images generated from the member captions."""
    out = {"fid": ev["quality"]["fid"], "kid": ev["quality"]["kid"], "heldout_loss": ev["mean_loss"]["nonmember_te"]}
    if "digit_accuracy" in ev["quality"]:
        out["sample_accuracy"] = ev["quality"]["digit_accuracy"]
    return out


def utilities(evals, models=None, by=None) -> dict:
    """``{model: {utility: mean over its splits}}`` (``utility``), e.g. ``utility.lora.heldout_loss``; ``by`` =
    ``{model: [keys]}`` names the runs of each model (default: ``groups(evals, models)``)."""
    return {m: {k: float(np.mean([utility(evals[key])[k] for key in keys])) for k in utility(evals[keys[0]])}
            for m, keys in (by or groups(evals, models)).items()}


def utility_per_split(evals, models=None, by=None) -> dict:
    """``{model: {split: utility}}`` (splits as text, as in ``metrics.json``; ``by`` as in ``utilities``)."""
    return {m: {str(k[-1]): utility(evals[k]) for k in keys} for m, keys in (by or groups(evals, models)).items()}


# The spread of each utility between two runs that differ only in the thread count (1 against 2, same seeds, same
# machine), measured once by benchmarks/utility_noise.py on 2026-12-01 (benchmarks/RESULTS.md): a comparison must
# exceed it too. It is tiny here; between two machines (other CPU kernels) it was not measured by this project.
THREAD_FLOOR = {"fid": 1.0e-5, "kid": 6.0e-6, "heldout_loss": 0.0, "sample_accuracy": 0.0}


def utility_floors(evals, models=None, by=None) -> dict:
    """Each utility's noise floor per model: its spread over the model's splits (``claims.noise_floor``) and the
    measured thread-count floor ``THREAD_FLOOR``."""
    return {m: {u: {**claims.noise_floor([r[u] for r in per.values()]), "threads": THREAD_FLOOR.get(u)}
                for u in next(iter(per.values()))} for m, per in utility_per_split(evals, models, by).items()}


def compare_utility(evals, model: str, reference: str, by=None, sampling: dict | None = None) -> dict:
    """``model`` against ``reference`` on every utility, in means over splits: the difference, the noise floor and
    the verdict: "no difference" inside the floor, else "lower" or "higher" (for fid, kid and heldout_loss lower is
    better; for sample_accuracy higher). The floor is twice the largest of the two models' sds over splits, the
    thread floor and ``sampling[u]``, the utility's own sampling floor where measured (``evaluate.fid_floor``: the
    FID between two independent sample sets of one model)."""
    by = {m: (by or groups(evals))[m] for m in (model, reference)}
    floors, means = utility_floors(evals, by=by), utilities(evals, by=by)
    out = {}
    for u in means[model]:
        sds = [floors[m][u]["sd"] or 0.0 for m in (model, reference)] + [THREAD_FLOOR.get(u) or 0.0]
        diff, floor = means[model][u] - means[reference][u], max(2 * max(sds), (sampling or {}).get(u) or 0.0)
        out[u] = {"difference": diff, "floor": floor,
                  "verdict": "no difference" if abs(diff) <= floor else ("lower" if diff < 0 else "higher")}
    return out


def adaptation_gain(evals, key, base_key) -> float:
    """What adapting bought in held-out fit: 1 - held-out loss of ``key`` / that of ``base_key`` (the base model)."""
    return 1 - utility(evals[key])["heldout_loss"] / utility(evals[base_key])["heldout_loss"]


ABLATION_COLUMNS = ("asr", "auc", "auc_dev", "tpr_at_5pct_fpr")


def ablation_row(ev: dict, attack: str = PAPER_ATTACK) -> dict:
    """One row of an ablation table: the paper's attack and the quality of one evaluated run."""
    return {**{k: ev["audit"][attack][k] for k in ABLATION_COLUMNS}, **ev["quality"],
            "heldout_loss": ev["mean_loss"]["nonmember_te"]}


def ablation_tables(evals, families=("lam", "lr", "rank")) -> tuple[dict, dict]:
    """``({family: [{family: value, **row}, ...]}, {reference: row})`` from the keys of ``grids.ablation_grid``."""
    tables = {f: [{f: k[1], **ablation_row(evals[k])} for k in evals if k[0] == f] for f in families}
    refs = {k[0]: ablation_row(evals[k]) for k in evals if k[0] not in families}
    return tables, refs


def ablation_families(tables: dict) -> dict:
    """``{family: [(setting label, row), ...]}`` for ``viz_privacy.ablation_curves``."""
    return {f"SMP-LoRA, {f}": [(f"{f} {r[f]:g}", r) for r in rows] for f, rows in tables.items()}


def rank_correlation(rows: list[dict], x: str, y: str) -> float:
    """Spearman's rank correlation of ``y`` with ``x`` over ``rows`` (e.g. FID with ``lam`` over Table 6's grid)."""
    rows = sorted(rows, key=lambda r: r[x])
    return float(spearmanr([r[x] for r in rows], [r[y] for r in rows]).statistic)


def prediction_ratio(one: list, two: list) -> float:
    """|mean(two) - mean(one)| over the half-width of the 95% Student-t prediction interval for the mean of
    len(two) new runs from the spread of ``one``: <= 1 means ``two`` is inside seed noise."""
    if len(one) < 2:
        return float("nan")
    half = student_t.ppf(0.975, len(one) - 1) * np.std(one, ddof=1) * np.sqrt(1 / len(two) + 1 / len(one))
    return float(abs(np.mean(two) - np.mean(one)) / half)


def model_free_split_check(splits, seed: int = 0, n_boot: int = 1000) -> dict:
    """Can the images alone tell members from non-members? A logistic regression on pooled pixels
    (``quality.PooledPixels``), fitted on D_aux (member_aux vs nonmember_aux), scored on D_te: its AUC and
    bootstrap interval. Near 0.5 means the split measures memorisation, not a distribution shift (CopyMark)."""
    feats = {k: quality.PooledPixels()(np.stack([it.image for it in splits[k]]))
             for k in ("member_aux", "nonmember_aux", "member_te", "nonmember_te")}
    x = np.concatenate([feats["member_aux"], feats["nonmember_aux"]])
    y = np.r_[np.ones(len(feats["member_aux"])), np.zeros(len(feats["nonmember_aux"]))]
    clf = LogisticRegression(max_iter=2000, C=1.0).fit(x, y)
    sm, sn = clf.decision_function(feats["member_te"]), clf.decision_function(feats["nonmember_te"])
    return {**metrics.membership(sm, sn, 0.0), "ci": metrics.bootstrap_ci(sm, sn, n_boot, seed=seed),
            "features": quality.PooledPixels.DESCRIPTION}
