"""The analyses of the series, on evaluated runs (smplora_nb, arXiv 2402.11989 companion): per-method summaries over
seeds and their noise floors, the attack matrix, spreads over seeds and member splits, the early-stopping frontier
and its gap, the ablation tables, the DP audit.

Every function takes ``evals``, the ``{key: evaluation}`` of ``evaluate.evaluate_many`` with keys ``(model, seed)``
(see ``grids``), and returns plain records whose keys are the glossary's names; ``viz.label`` gives the words a
reader sees. A researcher can call them on their own runs without a notebook.
"""
from __future__ import annotations

import numpy as np

from . import claims, diagnostics, metrics, scores
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


def seed_groups(models, seeds) -> dict:
    """``{model: [(model, seed), ...]}``: the same seeds for each model."""
    return {m: [(m, s) for s in seeds] for m in models}


def summaries(evals, models=None) -> dict:
    """``{model: metrics.method_summary}`` over the seeds of each model (per seed, keyed by the seed as text as in
    ``metrics.json``: every attack, quality)."""
    return {m: metrics.method_summary({str(k[1]): evals[k]["audit"] for k in keys},
                                      {str(k[1]): evals[k]["quality"] for k in keys})
            for m, keys in groups(evals, models).items()}


def noise_floors(summary: dict, metric: str = "auc_dev") -> dict:
    """The seed-noise floor of ``metric`` for every model and attack of ``summaries``: its spread over the training
    seeds (for the base model: over the attack's own seeds), ``claims.noise_floor`` = mean, sd, n."""
    return {m: {a: claims.noise_floor([r[a][metric] for r in s["per_seed"].values()])
                for a in s["attacks"]} for m, s in summary.items()}


def points(summary: dict, attack: str = PAPER_ATTACK) -> dict:
    """Privacy-utility points for ``viz.privacy_utility``: mean, s.e. and per seed (quality and ``attack``)."""
    return {m: {"mean": s["mean"], "sem": s["sem"],
                "per_seed": [{**r["quality"], **r[attack]} for r in s["per_seed"].values()]} for m, s in summary.items()}


def training_stats(logs: dict, models=None) -> dict:
    """``{model: {seed: diagnostics.summarize_log}}`` from ``{(model, seed): train_log}``."""
    return {m: {str(k[1]): diagnostics.summarize_log(logs[k]) for k in keys} for m, keys in groups(logs, models).items()}


def run_facts(logs: dict, model: str) -> dict:
    """Epochs and training seconds of each seed of ``model`` (``{(model, seed): train_log}``)."""
    keys = groups(logs)[model]
    return {"epochs": {str(k[1]): logs[k]["epochs"] for k in keys},
            "train_seconds": {str(k[1]): logs[k]["seconds_this_session"] for k in keys}}


def mean_stats(stats: dict) -> dict:
    """``{model: {statistic: mean over seeds}}`` (None where no seed has it)."""
    out = {}
    for m, by_seed in stats.items():
        names = dict.fromkeys(k for s in by_seed.values() for k in s)
        vals = {k: [s[k] for s in by_seed.values() if isinstance(s.get(k), (int, float))] for k in names}
        out[m] = {k: (float(np.mean(v)) if v else None) for k, v in vals.items()}
    return out


def records(evals, key, attacks) -> dict:
    """``{attack: record}`` of one model without its D_te scores."""
    return {a: {k: v for k, v in evals[key]["audit"][a].items() if not k.startswith("scores_")} for a in attacks}


def matrix(evals, rows: dict, attacks) -> dict:
    """The attack matrix: ``{model: {attack: record}}`` for ``rows`` = ``{model: key}`` (one seed each)."""
    return {m: records(evals, key, attacks) for m, key in rows.items()}


def verdicts(matrix: dict) -> dict:
    """``{model: {attack: "leaks" | "defends" | "not detected"}}`` (``claims.verdict`` of each AUC interval)."""
    return {m: {a: claims.verdict(r["ci"]["auc"]) for a, r in row.items()} for m, row in matrix.items()}


def chosen(audit: dict) -> dict:
    """What every attack of one model chose on D_aux (learning curves left out)."""
    return {a: {k: v for k, v in r["chosen_on_aux"].items() if k != "history"} for a, r in audit.items()}


def utility(ev: dict) -> dict:
    """The utilities of one evaluation: FID and KID; ``heldout_loss``, the mean denoising loss on D_te's non-members
    (how well the model fits unseen private images, the point of adapting); and, where the images have class
    labels, ``sample_accuracy``, the digit classifier's accuracy on images generated from the member captions."""
    out = {"fid": ev["quality"]["fid"], "kid": ev["quality"]["kid"], "heldout_loss": ev["mean_loss"]["nonmember_te"]}
    if "digit_accuracy" in ev["quality"]:
        out["sample_accuracy"] = ev["quality"]["digit_accuracy"]
    return out


def utilities(evals, models=None, by=None) -> dict:
    """``{model: {utility: mean over its seeds}}`` (``utility``), e.g. ``utility.lora.heldout_loss``; ``by`` =
    ``{model: [keys]}`` names the runs of each model (default: ``groups(evals, models)``)."""
    return {m: {k: float(np.mean([utility(evals[key])[k] for key in keys])) for k in utility(evals[keys[0]])}
            for m, keys in (by or groups(evals, models)).items()}


def utility_per_seed(evals, models=None, by=None) -> dict:
    """``{model: {seed: utility}}`` (seeds as text, as in ``metrics.json``; ``by`` as in ``utilities``)."""
    return {m: {str(k[1]): utility(evals[k]) for k in keys} for m, keys in (by or groups(evals, models)).items()}


# The spread of each utility between two runs that differ only in the thread count (1 against 2, same seeds, same
# machine), measured once by benchmarks/utility_noise.py on 2026-12-01 (benchmarks/RESULTS.md): a comparison must
# exceed it too. It is tiny here; between two machines (other CPU kernels) it was not measured by this project.
THREAD_FLOOR = {"fid": 1.0e-5, "kid": 6.0e-6, "heldout_loss": 0.0, "sample_accuracy": 0.0}


def utility_floors(evals, models=None, by=None) -> dict:
    """Each utility's noise floor per model: its spread over the model's seeds (``claims.noise_floor``) and the
    measured thread-count floor ``THREAD_FLOOR``."""
    return {m: {u: {**claims.noise_floor([r[u] for r in per.values()]), "threads": THREAD_FLOOR.get(u)}
                for u in next(iter(per.values()))} for m, per in utility_per_seed(evals, models, by).items()}


def compare_utility(evals, model: str, reference: str, by=None) -> dict:
    """``model`` against ``reference`` on every utility, in means over seeds: the difference, the noise floor (twice
    the larger of the two seed sds and the thread floor) and the verdict: "no difference" inside the floor,
    else "lower" or "higher" (for fid, kid and heldout_loss lower is better; for sample_accuracy higher)."""
    by = {m: (by or groups(evals))[m] for m in (model, reference)}
    floors, means = utility_floors(evals, by=by), utilities(evals, by=by)
    out = {}
    for u in means[model]:
        sds = [floors[m][u]["sd"] or 0.0 for m in (model, reference)] + [THREAD_FLOOR.get(u) or 0.0]
        diff, floor = means[model][u] - means[reference][u], 2 * max(sds)
        out[u] = {"difference": diff, "floor": floor,
                  "verdict": "no difference" if abs(diff) <= floor else ("lower" if diff < 0 else "higher")}
    return out


def adaptation_gain(evals, key, base_key) -> float:
    """What adapting bought in held-out fit: 1 - held-out loss of ``key`` / that of ``base_key`` (the base model)."""
    return 1 - utility(evals[key])["heldout_loss"] / utility(evals[base_key])["heldout_loss"]


def spread(evals, over: dict, attacks, metric: str = "auc") -> list[dict]:
    """Mean and sd of ``metric`` per attack over groups of runs: ``over`` = ``{(model, what): [keys]}`` (e.g. the
    training seeds, or the member splits); groups of fewer than two runs are skipped."""
    out = []
    for (m, what), keys in over.items():
        if len(keys) >= 2:
            vals = {a: [evals[k]["audit"][a][metric] for k in keys] for a in attacks}
            out.append({"model": m, "over": what, "n": len(keys),
                        **{a: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1))} for a, v in vals.items()}})
    return out


def spread_groups(models, seeds, member_seeds, evals) -> dict:
    """The groups of ``spread``: each model over the training seeds (default split), and its first seed over the
    member splits (the keys ``(model, "split <member_seed>")`` present in ``evals``)."""
    out = {}
    for m in models:
        out[m, "seeds"] = [(m, s) for s in seeds]
        out[m, "member splits"] = [(m, seeds[0])] + [(m, f"split {ms}") for ms in member_seeds
                                                     if (m, f"split {ms}") in evals]
    return out


def strongest(record: dict, attacks=THRESHOLD_ATTACKS) -> str:
    """The threshold attack whose D_aux AUC lies furthest from 0.5 on a model (chosen on D_aux only)."""
    return max(attacks, key=lambda a: max(abs(v - 0.5) for v in record[a]["chosen_on_aux"]["aux_auc_by_t"].values()))


def _utility(evals, key, u: str) -> float:
    return utility(evals[key])[u]


def frontier(evals, curve: dict, groups_: dict, attack: str, u: str) -> dict:
    """The early-stopping frontier of ``attack`` against utility ``u`` ("fid" or "heldout_loss"):

    ``curve`` = ``{epoch: key}`` (plain LoRA along training, the base model at epoch 0), ``groups_`` = ``{model:
    [keys]}``; each model's point is its mean over seeds, its interval the first seed's bootstrap interval moved to
    the mean. ``gap`` is ``metrics.frontier_gap``: positive = beyond the frontier."""
    line = []
    for e, key in sorted(curve.items()):
        r = evals[key]["audit"][attack]
        line.append({"epoch": e, u: _utility(evals, key, u), "auc": r["auc"], "lo": r["ci"]["auc"][0],
                     "hi": r["ci"]["auc"][1]})
    pts = {}
    for g, keys in groups_.items():
        lo, hi = evals[keys[0]]["audit"][attack]["ci"]["auc"]
        us, aucs = [_utility(evals, k, u) for k in keys], [evals[k]["audit"][attack]["auc"] for k in keys]
        pts[g] = {u: float(np.mean(us)), "auc": float(np.mean(aucs)), "lo": float(np.mean(aucs) - (aucs[0] - lo)),
                  "hi": float(np.mean(aucs) + (hi - aucs[0])), "per_seed": list(zip(us, aucs))}
    gaps = {g: metrics.frontier_gap([(x[u], x["auc"]) for x in line], p[u], p["auc"]) for g, p in pts.items()}
    return {"curve": line, "points": pts, "gap": gaps}


def dp_audit(evals, key, attack: str, delta: float) -> dict:
    """``claims.empirical_epsilon`` of one DP run from ``attack``'s D_aux-chosen threshold, applied to D_te."""
    r = evals[key]["audit"][attack]
    return {**claims.empirical_epsilon(r["scores_member"], r["scores_nonmember"], r["chosen_on_aux"]["threshold"],
                                       delta), "attack": attack}


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
    """``{family: [(setting label, row), ...]}`` for ``viz.ablation_curves``."""
    return {f"SMP-LoRA, {f}": [(f"{f} {r[f]:g}", r) for r in rows] for f, rows in tables.items()}


def rank_correlation(rows: list[dict], x: str, y: str) -> float:
    """Spearman's rank correlation of ``y`` with ``x`` over ``rows`` (e.g. FID with ``lam`` over Table 6's grid)."""
    from scipy.stats import spearmanr

    rows = sorted(rows, key=lambda r: r[x])
    return float(spearmanr([r[x] for r in rows], [r[y] for r in rows]).statistic)


def prediction_ratio(one: list, two: list) -> float:
    """|mean(two) - mean(one)| over the half-width of the 95% Student-t prediction interval for the mean of
    len(two) new runs from the spread of ``one``: <= 1 means ``two`` is inside seed noise."""
    from scipy.stats import t as student_t

    if len(one) < 2:
        return float("nan")
    half = student_t.ppf(0.975, len(one) - 1) * np.std(one, ddof=1) * np.sqrt(1 / len(two) + 1 / len(one))
    return float(abs(np.mean(two) - np.mean(one)) / half)
