"""The powered audit's analyses over a design of member splits (issue 27; smplora_nb, arXiv 2402.11989 companion).

``evals`` is ``{key: evaluation}`` (``evaluate.evaluate_many``); a key's last element is its split (``grids``). Every
analysis resamples D_te with one ``pooled.Draws`` per design, so all comparisons are paired:

* ``matrix``    every method against every attack, pooled over its splits: AUC, 95% and 90% intervals, verdict and
                the power figures of ``power`` (what the verdict could detect at these sizes);
* ``strongest`` the threshold attack furthest from chance on plain LoRA's D_aux, over the splits (D_aux only);
* ``frontier``  a method against plain LoRA stopped early: LoRA's checkpoints pooled per epoch, the frontier
                interpolated linearly between them, the gap in auc_dev at the method's utility, with its interval;
* ``versus``    a method against another on auc_dev (e.g. SMP-LoRA against utility-matched DP-LoRA), paired;
* ``dp_audit``  the DP-auditing lower bound on epsilon, threshold chosen at low FPR on D_aux, with its ceiling;
* ``score_rows`` every audited (model, split, attack, image) score, for other auditing tools.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import claims, pooled, power, tables
from .grids import split_index

LOW_FPR = 0.05                 # the DP audit's threshold: false-positive rate at most this on D_aux's non-members


def by_model(keys) -> dict:
    """``{model: [keys]}`` in the order given; a snapshot key ``("lora_snapshot", epoch, k)`` is model
    ``("lora_snapshot", epoch)``."""
    out: dict = {}
    for key in keys:
        out.setdefault(key[0] if len(key) == 2 else key[:-1], []).append(key)
    return out


def draws(evals, n_boot: int = pooled.N_BOOT, seed: int = 0) -> pooled.Draws:
    """The design's resampling counts: one D_te per split (every model on a split shares it)."""
    sizes = {}
    for key, ev in evals.items():
        r = next(iter(ev["audit"].values()))
        sizes.setdefault(split_index(key), (len(r["scores_member"]), len(r["scores_nonmember"])))
    return pooled.Draws(sizes, n_boot, seed)


def pool(evals, keys, attack: str, d: pooled.Draws) -> pooled.Pooled:
    """``attack`` on the runs ``keys`` (one per split), pooled."""
    return pooled.Pooled({split_index(k): (evals[k]["audit"][attack]["scores_member"],
                                           evals[k]["audit"][attack]["scores_nonmember"]) for k in keys}, d)


def matrix(evals, groups: dict, attacks, d: pooled.Draws) -> tuple[dict, dict]:
    """``({model: {attack: record}}, {model: {attack: Pooled}})`` for ``groups`` = ``{model: [keys]}``."""
    objs = {m: {a: pool(evals, keys, a, d) for a in attacks} for m, keys in groups.items()}
    return {m: {a: p.record() for a, p in row.items()} for m, row in objs.items()}, objs


def verdicts(records: dict) -> dict:
    """``{model: {attack: verdict}}`` of ``matrix`` records."""
    return {m: {a: r["verdict"] for a, r in row.items()} for m, row in records.items()}


def strongest(evals, keys, attacks) -> str:
    """The threshold attack whose D_aux AUC (at its D_aux-chosen timestep) lies furthest from 0.5 on the runs
    ``keys``, averaged over their splits. Nothing of D_te is read."""
    def reach(a):
        return np.mean([max(abs(v - 0.5) for v in evals[k]["audit"][a]["chosen_on_aux"]["aux_auc_by_t"].values())
                        for k in keys])
    return max(attacks, key=reach)


def utility_draws(evals, keys, utility: str, d: pooled.Draws) -> tuple[float, np.ndarray]:
    """A utility of the runs ``keys``, mean over their splits, and its resamples: ``heldout_loss`` (the mean loss of
    D_te's non-members) is resampled with the design's counts; ``fid`` is held at its value (a quality score of
    generated images, not a mean over D_te)."""
    if utility == "heldout_loss":
        losses = {split_index(k): evals[k]["image_loss"]["nonmember_te"] for k in keys}
        point = float(np.mean([np.mean(v) for v in losses.values()]))
        return point, np.mean([pooled.mean_draws(v, d.nonmembers[s]) for s, v in losses.items()], axis=0)
    point = float(np.mean([evals[k]["quality"][utility] for k in keys]))
    return point, np.full(d.n_boot, point)


def frontier_value(us, devs, u: float) -> float:
    """The lowest auc_dev on the piecewise-linear curve through ``(us[i], devs[i])`` (checkpoints in training
    order) among its points with utility at most ``u`` (lower = better); ``inf`` when none reaches ``u``."""
    best = np.inf
    for i in range(len(us)):
        if us[i] <= u:
            best = min(best, devs[i])
        if i + 1 < len(us) and (us[i] - u) * (us[i + 1] - u) < 0:          # the segment crosses utility u
            w = (u - us[i]) / (us[i + 1] - us[i])
            best = min(best, devs[i] + w * (devs[i + 1] - devs[i]))
    return float(best)


def frontier(evals, curve: dict, groups: dict, attack: str, utility: str, d: pooled.Draws) -> dict:
    """Every method of ``groups`` (``{model: [keys]}``) against plain LoRA along training, ``curve`` = ``{epoch:
    [keys, one per split]}`` (epoch 0: the base model). Checkpoints and methods are pooled over the same splits;
    ``gap`` = frontier auc_dev at the method's utility minus the method's auc_dev, with its paired interval:
    "beyond" (more private than plain LoRA stopped early at that utility), "behind" or "indistinguishable"."""
    epochs = sorted(curve)
    pts = {e: (utility_draws(evals, curve[e], utility, d), pool(evals, curve[e], attack, d)) for e in epochs}
    line = [{"epoch": e, utility: u, "auc": p.auc, "auc_dev": float(pooled.auc_dev(p.auc)),
             "ci": pooled.percentile(p.reps, 0.95)} for e, ((u, _), p) in pts.items()]
    us = [pts[e][0][0] for e in epochs]
    u_reps = np.stack([pts[e][0][1] for e in epochs], 1)                       # (n_boot, epochs)
    dev_reps = np.stack([pooled.auc_dev(pts[e][1].reps) for e in epochs], 1)
    out = {"attack": attack, "utility": utility, "curve": line, "points": {}, "gap": {}}
    for m, keys in groups.items():
        (u, u_rep), p = utility_draws(evals, keys, utility, d), pool(evals, keys, attack, d)
        dev, dev_rep = float(pooled.auc_dev(p.auc)), pooled.auc_dev(p.reps)
        gap = frontier_value(us, [x["auc_dev"] for x in line], u) - dev
        reps = np.array([frontier_value(u_reps[b], dev_reps[b], u_rep[b]) for b in range(d.n_boot)]) - dev_rep
        lo, hi = pooled.percentile(reps, 0.95)
        out["points"][m] = {utility: u, "auc": p.auc, "auc_dev": dev, "ci": pooled.percentile(p.reps, 0.95)}
        out["gap"][m] = {"gap": gap if np.isfinite(gap) else None, "ci": [lo, hi], "reachable": bool(np.isfinite(gap)),
                         "verdict": "beyond" if lo > 0 else "behind" if hi < 0 else "indistinguishable"}
    return out


def versus(a: pooled.Pooled, b: pooled.Pooled) -> dict:
    """auc_dev of ``b`` minus that of ``a`` on the same splits and images: positive ("beyond") = ``a`` is more
    private than ``b``, with the paired 95% interval."""
    if a.splits != b.splits:
        raise ValueError(f"a paired comparison needs the same splits, got {a.splits} and {b.splits}")
    return pooled.paired(pooled.auc_dev(b.reps), pooled.auc_dev(a.reps),
                         float(pooled.auc_dev(b.auc) - pooled.auc_dev(a.auc)))


def utility_versus(evals, a_keys, b_keys, utility: str, d: pooled.Draws) -> dict:
    """``utility`` of ``b`` minus that of ``a`` (paired over the same splits and non-members)."""
    (ua, ra), (ub, rb) = utility_draws(evals, a_keys, utility, d), utility_draws(evals, b_keys, utility, d)
    return pooled.paired(rb, ra, ub - ua)


def gain(evals, keys, base_keys, d: pooled.Draws) -> dict:
    """What adapting bought in held-out fit, 1 - held-out loss of ``keys`` / that of ``base_keys`` (the base model
    on the same splits), with its paired 95% interval."""
    (u, ur), (b, br) = utility_draws(evals, keys, "heldout_loss", d), utility_draws(evals, base_keys, "heldout_loss", d)
    return {"gain": 1 - u / b, "ci": pooled.percentile(1 - ur / br, 0.95)}


def low_fpr_threshold(aux_nonmember, target: float = LOW_FPR) -> float:
    """The smallest threshold whose false-positive rate on D_aux's non-members is at most ``target``."""
    s = np.sort(np.asarray(aux_nonmember, float))
    allowed = int(np.floor(target * len(s)))                    # non-members that may score at or above it
    return float(np.nextafter(s[len(s) - allowed - 1], np.inf))


def dp_audit(evals, keys, attack: str, delta: float, accounted: float) -> dict:
    """The DP-auditing lower bound on epsilon of the runs ``keys``: each split's rule ``score >= threshold``, the
    threshold at FPR <= ``LOW_FPR`` on that split's D_aux, applied to its D_te; true and false positives counted
    over all splits (``claims.empirical_epsilon``). ``ceiling`` is the bound a perfect attack would certify at
    these sizes: when it is not above ``accounted`` the audit cannot fail (a check, not a claim)."""
    flags_m, flags_n = [], []
    for k in keys:
        r = evals[k]["audit"][attack]
        t = low_fpr_threshold(r["aux_scores_nonmember"])
        flags_m += list(np.asarray(r["scores_member"]) >= t)
        flags_n += list(np.asarray(r["scores_nonmember"]) >= t)
    got = claims.empirical_epsilon(np.asarray(flags_m, float), np.asarray(flags_n, float), 0.5, delta)
    best = claims.empirical_epsilon(np.ones(len(flags_m)), np.zeros(len(flags_n)), 0.5, delta)
    return {**got, "attack": attack, "threshold_rule": f"FPR <= {LOW_FPR} on D_aux", "splits": len(keys),
            "ceiling": best["epsilon_lower_bound"], "accounted": accounted,
            "can_fail": bool(best["epsilon_lower_bound"] > accounted)}


def score_rows(evals, runs: dict, seeds: dict, attacks, sets_of) -> list[dict]:
    """One row per audited (model, split, attack, D_te image) of ``runs`` = ``{key: run folder or None}``: image id,
    member (1/0), split, training seed, score, the direction chosen on D_aux (+1: higher = member; -1: the sign was
    flipped) and the run's cache entry (its config hash; "base" for the base model). ``sets_of(k)`` gives split k's
    sets."""
    rows = []
    for key, run in runs.items():
        k, te = split_index(key), sets_of(split_index(key))
        model = key[0] if len(key) == 2 else "_".join(map(str, key[:-1]))
        entry = "base" if run is None else "/".join(Path(run).parts[Path(run).parts.index("runs") + 1:]) \
            if "runs" in Path(run).parts else Path(run).name
        for a in (a for a in attacks if a in evals[key]["audit"]):
            r = evals[key]["audit"][a]
            sign = r["chosen_on_aux"].get("sign", 1)
            for member, name, scores in ((1, "member_te", r["scores_member"]), (0, "nonmember_te", r["scores_nonmember"])):
                rows += [{"model": model, "split": k, "seed": seeds[key], "attack": a, "image_id": it.id,
                          "member": member, "score": float(sc), "direction": sign, "config_hash": entry}
                         for it, sc in zip(te[name], scores)]
    return rows


def write_scores(stem: str, bench, evals, audited: dict, attacks) -> None:
    """``outputs/<stem>/scores.csv``: ``score_rows`` of every audited run (columns in docs/results.md)."""
    tables.write_csv(stem, "scores", score_rows(evals, audited, {k: bench.seed(k) for k in audited}, attacks,
                                                bench.split))


def describe(record: dict) -> str:
    """A verdict with what it could detect (``power.describe``)."""
    return f"{record['verdict']} ({power.describe(record['power'])})"
