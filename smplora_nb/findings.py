"""Each notebook's claims, computed from its records (smplora_nb, arXiv 2402.11989 companion).

A claim is a statement that can fail (``claims``, ``metrics.claim``); each function below takes the records a
notebook wrote (``study``) and returns its list of claims in the notebook's order. Facts that hold by construction
are ``claims.check`` records, listed apart. The targets are the ``tiny`` default's acceptance targets.
"""
from __future__ import annotations

import numpy as np

from . import claims, study
from .attack import STRONGEST_MAP_ATTACK
from .metrics import PAPER_ATTACK as PAPER, claim
from .viz import label


def _ratio(a, b):
    """``a / b``, or None ("not measurable": the claim does not hold) when either is missing or ``b`` is 0, e.g.
    a gradient spread over a single step at test sizes."""
    return None if a is None or b is None or b == 0 else a / b


def _minus(a, b):
    return None if b is None else a - b


def split_01(disjoint: bool, quality: dict, split_check: dict) -> list[dict]:
    """Notebook 01: the sets are disjoint, the base model draws its captions, the split is not a distribution
    shift (model-free check). The pretraining time is reported, not claimed."""
    out = [claim("all five sets are disjoint", float(disjoint), ">=", 1)]
    if "digit_accuracy_base_private_classes" in quality:            # a private domain the base model never saw
        out.append(claim("base samples of the public classes show their caption's digit (chance 0.1)",
                         quality["digit_accuracy_base_public_classes"], ">=", 0.8))
        out.append(claim("base samples of the private classes mostly do not: the base model lacks the private "
                         "domain", quality["digit_accuracy_base_private_classes"], "<=", 0.3))
    elif quality:
        out.append(claim("base samples show their caption's digit (chance 0.1)",
                         quality["digit_accuracy_base_samples"], ">=", 0.8))
    out.append(claim("model-free check: a pooled-pixel classifier fitted on D_aux does not separate D_te members "
                     "from non-members (lower end of its auc_dev interval)",
                     claims.auc_dev_interval(split_check["ci"]["auc"])[0], "<=", 0.0))
    return out


def adaptation(utility: dict, per_seed: dict) -> list[dict]:
    """Fine-tuning buys something the base model lacks (issue 16's targets, means over seeds): LoRA's held-out loss
    at least 10% below the base model's, the base model's samples of the private captions at most 0.3 correct and
    LoRA's at least 0.7, and FID ranking LoRA better than the base model on every seed."""
    lora, base = utility["lora"], utility["base"]
    out = [claim("LoRA fits unseen private images better: held-out loss at least 10% below the base model's "
                 "(1 - LoRA / base)", _minus(1, _ratio(lora["heldout_loss"], base["heldout_loss"])), ">=", 0.10)]
    if "sample_accuracy" in lora:
        out += [claim("the base model draws the private captions' digits at most 0.3 of the time",
                      base["sample_accuracy"], "<=", 0.3),
                claim("LoRA draws them at least 0.7 of the time", lora["sample_accuracy"], ">=", 0.7)]
    base_fid = {s: r["fid"] for s, r in per_seed["base"].items()}
    only = next(iter(base_fid.values())) if len(base_fid) == 1 else None      # one base entry: every seed against it
    out.append(claim("FID ranks LoRA better than the base model on every seed (fraction of seeds)",
                     float(np.mean([r["fid"] < (only if only is not None else base_fid[s])
                                    for s, r in per_seed["lora"].items()])), ">=", 1.0))
    return out


def attack_02(summary: dict) -> list[dict]:
    """Notebook 02: LoRA leaks to the paper's attack; the base model is the control."""
    lora = summary["lora"]["mean"]
    strongest = STRONGEST_MAP_ATTACK
    return [claim("LoRA leaks: loss-map MLP ASR on D_te >= 0.70", lora["asr"], ">=", 0.70),
            claim(f"LoRA leaks to the strongest map attack ({label(strongest)}, chosen on the development seeds): "
                  "AUC >= 0.85", summary["lora"]["attacks"][strongest]["mean"]["auc"], ">=", 0.85),
            claim("LoRA leaks: loss-map MLP AUC on D_te >= 0.75", lora["auc"], ">=", 0.75),
            claim("control: the loss-map MLP does not tell members on the base model, its AUC interval holds 0.5 "
                  "(fraction of seeds)", float(np.mean([r[PAPER]["ci"]["auc"][0] <= 0.5 <= r[PAPER]["ci"]["auc"][1]
                                                        for r in summary["base"]["per_seed"].values()])), ">=", 1.0),
            claim("the reference Loss@t (the base model as reference) is at least as strong as Loss@t on LoRA: "
                  "AUC difference", summary["lora"]["attacks"]["loss_at_t_ref"]["mean"]["auc"]
                  - summary["lora"]["attacks"]["loss_at_t"]["mean"]["auc"], ">=", 0.0)]


def _defends(summary, model, attack, seed_key=None) -> dict:
    per_seed = summary[model]["per_seed"]
    r = per_seed[seed_key or next(iter(per_seed))][attack]
    return claims.defends(f"{label(model)} defends against {label(attack)}: auc_dev interval below {claims.MARGIN}",
                          r["ci"]["auc"])


def mp_03(summary: dict, stats: dict) -> list[dict]:
    """Notebook 03: MP-LoRA's defense, instability (coefficient of variation), curvature and quality cost; whether
    clipping or normalisation restores quality. ``stats``: ``{model: summarize_log}`` of the one seed."""
    fid = {m: s["mean"]["fid"] for m, s in summary.items()}
    s = stats
    out = [claim("LoRA leaks: loss-map MLP ASR >= 0.70", summary["lora"]["mean"]["asr"], ">=", 0.70),
           _defends(summary, "mp_lora", "loss_map_mlp"),
           claims.less_variable("MP-LoRA is unstable: gradient-norm coefficient of variation / LoRA's > 3",
                                s["mp_lora"]["grad_norm_cv"], s["lora"]["grad_norm_cv"], 3.0),
           claim("MP-LoRA: the MI-gain term's gradient scale varies more than the adaptation term's (std ratio)",
                 _ratio(s["mp_lora"]["grad_scale_privacy_std"], s["mp_lora"]["grad_scale_ada_std"]), ">", 1.0),
           claim("MP-LoRA: gradient and Hessian norms are weakly correlated, abs(PCC) < 0.5",
                 abs(s["mp_lora"].get("pcc_grad_hessian", float("nan"))), "<", 0.5),
           claim("MP-LoRA costs image quality: FID >= 1.5x LoRA's", _ratio(fid["mp_lora"], fid["lora"]), ">=", 1.5)]
    for k, name in (("mp_lora_clip", "clipping"), ("mp_lora_normalize", "normalisation")):
        if k in fid:
            out.append(claim(f"{name} does not restore LoRA's quality: FID({k}) >= 1.5x LoRA's",
                             _ratio(fid[k], fid["lora"]), ">=", 1.5))
    return out


def smp_04(summary: dict, mean_stats: dict, first_seed) -> list[dict]:
    """Notebook 04: the attack works on LoRA; SMP-LoRA defends (first seed, the paper's attack and the reference
    MLP) and keeps quality; MP-LoRA is less stable and costs more quality; one vs two forwards inside seed noise;
    SMP-LoRA against LoRA stopped at the same training loss."""
    r, key = summary, str(first_seed)
    out = [claim("the attack works: LoRA ASR >= 0.70", r["lora"]["mean"]["asr"], ">=", 0.70),
           _defends(r, "smp_lora", "loss_map_mlp", key), _defends(r, "smp_lora", "loss_map_mlp_ref", key),
           _defends(r, "smp_lora", "loss_at_t_ref", key),
           claim("SMP-LoRA keeps quality: FID <= 2x LoRA's", _ratio(r["smp_lora"]["mean"]["fid"], r["lora"]["mean"]["fid"]),
                 "<=", 2.0),
           claims.less_variable("MP-LoRA's gradient norm varies more than SMP-LoRA's (coefficient of variation ratio, "
                                "mean over seeds)", mean_stats["mp_lora"]["grad_norm_cv"],
                                mean_stats["smp_lora"]["grad_norm_cv"], 2.0),
           claim("MP-LoRA costs more quality than SMP-LoRA: FID(MP) / FID(SMP)",
                 _ratio(r["mp_lora"]["mean"]["fid"], r["smp_lora"]["mean"]["fid"]), ">", 1.0)]
    if "smp_lora_two_forwards" in r:
        two = r["smp_lora_two_forwards"]["per_seed"]
        for k in ("asr", "fid"):
            pick = (lambda p: p["quality"][k]) if k == "fid" else (lambda p: p["loss_map_mlp"][k])
            one = [pick(p) for p in r["smp_lora"]["per_seed"].values()]
            out.append(claim(f"one vs two forwards: {k}, mean of {len(two)} two-forward seed(s) inside the 95% "
                             f"prediction interval of the one-forward seeds (abs difference / half-width)",
                             study.prediction_ratio(one, [pick(p) for p in two.values()]), "<=", 1.0))
    if "lora_early_stop" in r:
        out.append(claim("SMP-LoRA beats LoRA stopped at the same training loss: ASR difference (stopped - SMP)",
                         r["lora_early_stop"]["mean"]["asr"] - r["smp_lora"]["mean"]["asr"], ">", 0.0))
    return out


def ablation_05(tables: dict, refs: dict) -> list[dict]:
    """Notebook 05: the Table 6 trend (Spearman over the ``lam`` grid) and every setting more private than LoRA."""
    rows = [r for t in tables.values() for r in t]
    return [claim("Table 6: larger lam, worse FID (Spearman rho of FID with lam)",
                  study.rank_correlation(tables["lam"], "lam", "fid"), ">", 0.0),
            claim("Table 6: larger lam, lower ASR (Spearman rho of ASR with lam)",
                  study.rank_correlation(tables["lam"], "lam", "asr"), "<", 0.0),
            claim("every SMP-LoRA setting is more private than LoRA: max ASR over the grid < LoRA's ASR",
                  max(r["asr"] for r in rows) - refs["lora"]["asr"], "<", 0.0)]


def attacks_06(matrix: dict, frontier: dict, dp_audit: dict, dp: dict) -> tuple[list[dict], list[dict]]:
    """Notebook 06: every attack leaks on LoRA; SMP-LoRA defends against each (an equivalence test); SMP-LoRA
    against the early-stopping frontier; DP-LoRA's audited epsilon within its accounted epsilon. Returns (claims,
    checks)."""
    attacks = list(matrix["lora"])
    out = [claims.leaks(f"{label(a)} detects membership on plain LoRA (AUC interval excludes 0.5)",
                        matrix["lora"][a]["ci"]["auc"]) for a in attacks]
    out += [claims.defends(f"SMP-LoRA defends against {label(a)}: auc_dev interval below {claims.MARGIN}",
                           matrix["smp_lora"][a]["ci"]["auc"]) for a in attacks]
    for a, by_utility in frontier.items():
        for u, f in by_utility.items():
            gap = f["gap"]["smp_lora"]
            if gap is not None:
                out.append(claim(f"SMP-LoRA lies beyond the early-stopping frontier ({label(a)}, {u}): frontier gap",
                                 gap, ">", 0.0))
            else:                                   # no checkpoint reached its utility
                out.append(claim(f"SMP-LoRA has better {u} than every LoRA checkpoint ({label(a)}): best checkpoint "
                                 f"minus SMP-LoRA", min(x[u] for x in f["curve"]) - f["points"]["smp_lora"][u], ">", 0.0))
    checks = []
    for key, audit in dp_audit.items():
        out.append(claim(f"{label(key)}: the audit's epsilon lower bound ({label(audit['attack'])}) stays within the "
                         "accounted epsilon", audit["epsilon_lower_bound"], "<=", dp[key]["epsilon_spent"]))
        checks.append(claims.check(f"{label(key)}: epsilon spent (RDP accountant) <= target",
                                   dp[key]["epsilon_spent"] <= dp[key]["epsilon_target"] + 1e-6, dp[key]["epsilon_spent"]))
    return out, checks


def conclusion_06(verdicts: dict, utility: dict, frontier: dict, dp_audit: dict, dp: dict) -> str:
    """Notebook 06's conclusion as Markdown, written from its records (no number typed by hand)."""
    held = lambda m: ", ".join(label(a) for a, v in verdicts[m].items() if v == "leaks") or "none"   # noqa: E731
    q = lambda m: f"FID {utility[m]['fid']:.2f}, held-out loss {utility[m]['heldout_loss']:.4f}"   # noqa: E731
    lines = [f"- Attacks that detect membership on plain LoRA (AUC interval excludes 0.5): {held('lora')}.",
             f"- Attacks that still detect membership on SMP-LoRA: {held('smp_lora')}.",
             f"- Utility (first seed): base model {q('base')}; LoRA {q('lora')}; SMP-LoRA {q('smp_lora')}."]
    for u, f in frontier[next(iter(frontier))].items():
        gap = f["gap"]["smp_lora"]
        lines.append(f"- SMP-LoRA against the early-stopping frontier of the paper's attack, utility {u}: gap "
                     f"{gap if gap is None else round(gap, 3)} " + ("(beyond it)." if gap is None or gap > 0 else
                     "(not beyond it: plain LoRA stopped earlier is at least as private at equal or better utility)."))
    lines.append("- SMP-LoRA, per attack: " + ", ".join(f"{label(a)} {v}" for a, v in verdicts["smp_lora"].items())
                 + " ('not detected' is absence of evidence, not a defense).")
    lines += [f"- {label(k)}: attacks with AUC interval excluding 0.5: {held(k)}; {q(k)}; audited epsilon >= "
              f"{a['epsilon_lower_bound']:.2f} against {dp[k]['epsilon_spent']:.2f} accounted." for k, a in dp_audit.items()]
    if utility["base"]["heldout_loss"] <= utility["lora"]["heldout_loss"]:
        lines.append("- **Caution.** The base model fits unseen private images at least as well as LoRA does (lower or "
                     "equal non-member loss): here adaptation buys no held-out utility, so any defense that adapts less "
                     "(early stopping, DP-LoRA, a strong lam) looks free. A test of whether a defense beats early "
                     "stopping needs private data that the base model does not already model (the paper profile).")
    return "\n".join(lines)


def lesson_06(gain: dict) -> list[dict]:
    """Notebook 06's lesson: fine-tuning buys more held-out fit on a private domain the base model never saw than
    on private data from the base model's own pool (``gain`` = ``{"private_domain": ., "in_distribution": .}``,
    ``study.adaptation_gain`` of the final LoRA, first seed), where stopping early is therefore free."""
    return [claim("LoRA's held-out gain over the base model is larger on the private domain than in distribution "
                  "(difference of the gains)", gain["private_domain"] - gain["in_distribution"], ">", 0.0)]
