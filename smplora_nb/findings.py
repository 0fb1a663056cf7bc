"""Each notebook's claims, computed from its records (smplora_nb, arXiv 2402.11989 companion).

Every statement is one of ``claims``' kinds: a claim that can hold and can fail at its sizes (with what it could
detect), a check (holds by construction when the code is right), a descriptive figure, or "not testable at this
size" with the size it would need. Each function below takes the records a notebook computed (``study``,
``powered``) and returns ``(claims, checks)`` in the notebook's order.

No target is a development point estimate. The leak targets ``LEAKS_AT_LEAST`` lie below the development values by
their noise (the development split 1337 and training seeds 1337..., notebook 02 on 3 member splits, recorded in
docs/development.md): a leak claim says the pooled 95% interval of the AUC excludes 0.5 *and* the AUC reaches them.
"""
from __future__ import annotations

import numpy as np

from . import claims, power, study
from .attack import PAPER_ATTACK as PAPER, STRONGEST_MAP_ATTACK
from .claims import claim
from .labels import label

# Development values of notebook 02's design (the testbed study's digits/descriptive arm: 3 member splits, pooled
# AUC [95% interval]): loss_map_mlp 0.889 [0.864, 0.914], loss_at_t 0.941 [0.924, 0.957]. A confirmatory estimate
# differs from the development one by sqrt(2) standard errors (se = interval width / 3.92); each target lies
# 1.645 * sqrt(2) * se below the development value, rounded down to 0.01: with nothing changed, a claim holds with
# probability at least 95%.
LEAKS_AT_LEAST = {PAPER: 0.85, STRONGEST_MAP_ATTACK: 0.92}


def _ratio(a, b):
    """``a / b``, or None ("not measurable": the claim does not hold) when either is missing or ``b`` is 0."""
    return None if a is None or b is None or b == 0 else a / b


def split_01(disjoint: bool, quality: dict, split_check: dict, n_samples: int = 0) -> tuple[list, list]:
    """Notebook 01: the base model draws its captions (and not the private domain); the split is not a
    distribution shift (model-free check, a "leaks" test on pixels). Disjointness is a check."""
    out = []
    if "digit_accuracy_base_private_classes" in quality:            # a private domain the base model never saw
        out.append(claims.proportion("base samples of the public classes show their caption's class (chance 0.1)",
                                     quality["digit_accuracy_base_public_classes"],
                                     quality.get("n_base_public_classes", 0), ">=", 0.8))
        out.append(claims.proportion("base samples of the private classes mostly do not: the base model lacks the "
                                     "private domain", quality["digit_accuracy_base_private_classes"],
                                     quality.get("n_base_private_classes", 0), "<=", 0.3))
    elif quality:
        out.append(claims.proportion("base samples show their caption's class (chance 0.1)",
                                     quality["digit_accuracy_base_samples"], n_samples, ">=", 0.8))
    ci = split_check["ci"]["auc"]
    fig = power.figures([(split_check["n_member"], split_check["n_nonmember"])])
    out.append(claim("model-free check: a pooled-pixel classifier fitted on D_aux does not separate D_te members "
                     "from non-members (lower end of its auc_dev interval)", claims.auc_dev_interval(ci)[0], "<=",
                     0.0, ci, f"detects a shift of AUC >= {fig['leaks_auc_80']:.2f} with 80% power"))
    return out, [claims.check("all five sets are disjoint (ids, pixels, near-duplicates)", disjoint)]


def adaptation(utility: dict, per_split: dict, sampling: dict | None = None, gain: dict | None = None,
               n_samples: int = 0) -> list[dict]:
    """Fine-tuning buys something the base model lacks (means over splits): LoRA's held-out loss at least 10%
    below the base model's (``gain``: its paired interval, ``powered.gain``), the base model's samples of the
    private captions at most 0.3 correct and LoRA's at least 0.7 (``n_samples`` images in all), and FID ranking LoRA
    better than the base model on every split by more than the sampling floor."""
    lora, base = utility["lora"], utility["base"]
    value = None if _ratio(lora["heldout_loss"], base["heldout_loss"]) is None else \
        1 - lora["heldout_loss"] / base["heldout_loss"]
    out = [claim("LoRA fits unseen private images better: held-out loss at least 10% below the base model's "
                 "(1 - LoRA / base)", value, ">=", 0.10, (gain or {}).get("ci"),
                 "paired over the same non-members" if gain else None)]
    if "sample_accuracy" in lora:
        out += [claims.proportion("the base model draws the private captions' classes at most 0.3 of the time",
                                  base["sample_accuracy"], n_samples, "<=", 0.3),
                claims.proportion("LoRA draws them at least 0.7 of the time", lora["sample_accuracy"], n_samples,
                                  ">=", 0.7)]
    floor = (sampling or {}).get("fid", 0.0)
    wins = [per_split["base"][s]["fid"] - r["fid"] > floor for s, r in per_split["lora"].items()]
    out.append(claim(f"FID ranks LoRA better than the base model on every split, by more than the sampling floor "
                     f"{floor:.2f} (fraction of splits)", float(np.mean(wins)), ">=", 1.0,
                     power=f"{len(wins)} split(s); floor: FID between two sample sets of LoRA"))
    return out


def attack_02(records: dict, ref_vs_plain: dict) -> tuple[list, list]:
    """Notebook 02: LoRA leaks to the paper's attack and to the strongest map attack fixed on the development seeds
    (pooled over the splits); the reference Loss@t is not weaker than Loss@t (paired). The base model never saw a
    member: that no attack "leaks" on it is a check of the bootstrap's coverage, not a finding."""
    lora, base = records["lora"], records["base"]
    out = [claims.leaks(f"the paper's attack ({label(PAPER)}) detects LoRA: the pooled AUC interval above 0.5 and "
                        f"AUC >= {LEAKS_AT_LEAST[PAPER]}", lora[PAPER], LEAKS_AT_LEAST[PAPER]),
           claims.leaks(f"the strongest map attack ({label(STRONGEST_MAP_ATTACK)}, fixed on the development seeds) "
                        f"detects LoRA: AUC >= {LEAKS_AT_LEAST[STRONGEST_MAP_ATTACK]}", lora[STRONGEST_MAP_ATTACK],
                        LEAKS_AT_LEAST[STRONGEST_MAP_ATTACK]),
           claim("the reference Loss@t (the base model as reference) is not weaker than Loss@t on LoRA: upper end of "
                 "the paired interval of their auc_dev difference", ref_vs_plain["ci"][1], ">=", 0.0,
                 ref_vs_plain["ci"], "paired over the same images and splits")]
    leaking = [a for a, r in base.items() if r["verdict"] == "leaks"]
    return out, [claims.check("control: no attack leaks on the base model, which never saw a member (the bootstrap's "
                              "coverage; about 5% per attack by chance)", not leaking, ", ".join(leaking) or "none")]


def mp_03(records: dict, stats: dict, vs_lora: dict) -> list[dict]:
    """Notebook 03 (split 0): MP-LoRA against the paper's attack (one split: its power says what it can show), its
    instability (coefficient of variation), the gradient scale of each term, the correlation of gradient and
    Hessian norms (Fisher z), and the quality it costs beyond the FID floor, with and without the stabilisers.
    ``vs_lora``: ``{model: study.compare_utility(model, "lora")}``."""
    s = stats
    out = [claims.defends(f"MP-LoRA defends against the paper's attack: TOST interval of auc_dev below "
                          f"{claims.MARGIN}", records["mp_lora"][PAPER]),
           claims.less_variable("MP-LoRA is unstable: gradient-norm coefficient of variation / LoRA's > 3",
                                [s["mp_lora"]["grad_norm_cv"]], [s["lora"]["grad_norm_cv"]], 3.0),
           claim("MP-LoRA: the MI-gain term's gradient scale varies more than the adaptation term's (std ratio)",
                 _ratio(s["mp_lora"].get("grad_scale_privacy_std"), s["mp_lora"].get("grad_scale_ada_std")), ">", 1.0,
                 power="one run"),
           claims.weakly_correlated("MP-LoRA: gradient and Hessian norms are weakly correlated, abs(PCC) < 0.5",
                                    s["mp_lora"].get("pcc_grad_hessian"), s["mp_lora"].get("n_hessian", 0)),
           claims.utility_difference("MP-LoRA costs image quality: FID above LoRA's beyond the floor",
                                     vs_lora["mp_lora"]["fid"], worse=True)]
    for k, name in (("mp_lora_clip", "clipping"), ("mp_lora_normalize", "normalisation")):
        if k in vs_lora:
            out.append(claims.utility_difference(f"{name} does not restore LoRA's quality: FID({k}) above LoRA's "
                                                 "beyond the floor", vs_lora[k]["fid"], worse=True))
    return out


def smp_04(records: dict, stats: dict, vs_lora: dict, mp_vs_smp: dict, early: dict | None,
           two_forwards: dict | None) -> list[dict]:
    """Notebook 04: the attack works on LoRA (pooled over the splits); SMP-LoRA against the paper's attack and the
    two reference attacks (TOST, with power); its quality against LoRA's and MP-LoRA's beyond the FID floor; MP-LoRA
    less stable than SMP-LoRA on every split; SMP-LoRA against LoRA stopped at the same training loss (paired);
    one vs two forwards (descriptive at these sizes). ``stats``: ``{model: {split: summarize_log}}``."""
    smp = records["smp_lora"]
    out = [claims.leaks(f"the attack works: the paper's attack detects LoRA, AUC >= {LEAKS_AT_LEAST[PAPER]}",
                        records["lora"][PAPER], LEAKS_AT_LEAST[PAPER])]
    out += [claims.defends(f"SMP-LoRA defends against {label(a)}: TOST interval of auc_dev below {claims.MARGIN}",
                           smp[a]) for a in (PAPER, "loss_map_mlp_ref", "loss_at_t_ref")]
    cvs = {m: [r.get("grad_norm_cv") for r in stats[m].values()] for m in ("mp_lora", "smp_lora")}
    out += [claims.utility_difference("SMP-LoRA keeps quality: its FID not above LoRA's beyond the floor",
                                      vs_lora["smp_lora"]["fid"], worse=False),
            claims.less_variable("MP-LoRA's gradient norm varies more than SMP-LoRA's on every split (coefficient of "
                                 "variation ratio)", cvs["mp_lora"], cvs["smp_lora"], 1.0),
            claims.utility_difference("MP-LoRA costs more quality than SMP-LoRA: FID(MP) above FID(SMP) beyond the "
                                      "floor", mp_vs_smp["fid"], worse=True)]
    if early is not None:
        out.append(claim("SMP-LoRA is more private than LoRA stopped at the same training loss (paper's attack): "
                         "lower end of the paired interval of auc_dev(stopped) - auc_dev(SMP)", early["ci"][0], ">",
                         0.0, early["ci"], "paired over the same images and splits"))
    if two_forwards is not None:
        out.append(claims.descriptive("one vs two forwards: FID and the paper's attack's AUC, mean of the two-forward "
                                      "run(s) minus the one-forward mean", two_forwards,
                                      "a prediction interval from 2 runs is 15.6 run sds wide: an equivalence test "
                                      "needs about 10 runs of each (reported, not claimed)"))
    return out


def ablation_05(tables: dict, vs_lora: dict) -> list[dict]:
    """Notebook 05: the Table 6 trend (Spearman over the ``lam`` grid: a claim from 4 settings up, descriptive
    below) and every setting more private than LoRA (paired auc_dev intervals on the same images)."""
    lams = tables["lam"]
    out = []
    for y, op, words in (("fid", ">", "worse FID"), ("asr", "<", "lower ASR")):
        rho = study.rank_correlation(lams, "lam", y)
        text = f"Table 6: larger lam, {words} (Spearman rho of {y.upper()} with lam over {len(lams)} settings)"
        out.append(claim(text, rho, op, 0.0, power=f"{len(lams)} settings") if len(lams) >= 4 else
                   claims.descriptive(text, rho, f"{len(lams)} settings: rho is +1 or -1 (needs 4 or more)"))
    beyond = [v["verdict"] == "beyond" for v in vs_lora.values()]
    worst = min(vs_lora.values(), key=lambda v: v["ci"][0])
    out.append(claim("every SMP-LoRA setting is more private than LoRA on the paper's attack: the smallest lower end of "
                     "the paired intervals of auc_dev(LoRA) - auc_dev(setting)", worst["ci"][0], ">", 0.0,
                     worst["ci"], f"{sum(beyond)} of {len(beyond)} settings beyond LoRA; one split"))
    return out


def attacks_06(records: dict, strongest: str, frontier: dict, vs_dp: dict, dp_audit: dict) -> tuple[list, list]:
    """Notebook 06, the powered audit: the base model (positive control) "defends" against every attack whose scores
    vary on it; plain LoRA (negative control) "leaks" to the strongest attack chosen on D_aux; SMP-LoRA's verdict
    against every attack; SMP-LoRA against the early-stopping frontier and against utility-matched DP-LoRA (paired
    auc_dev). The DP audit is a check, with its ceiling."""
    out = []
    for a, r in records["base"].items():
        text = f"control: the base model defends against {label(a)}"
        out.append(claims.descriptive(text, None, "its scores are constant on the base model (a reference attack "
                                      "reads the base model itself): nothing to say") if r["constant"]
                   else claims.defends(text, r))
    out.append(claims.leaks(f"control: plain LoRA leaks to the strongest attack chosen on D_aux ({label(strongest)})",
                            records["lora"][strongest]))
    out += [claims.defends(f"SMP-LoRA defends against {label(a)}", r) for a, r in records["smp_lora"].items()]
    for a, by_utility in frontier.items():
        for u, f in by_utility.items():
            g = f["gap"]["smp_lora"]
            if not g["reachable"]:                   # no checkpoint of plain LoRA reached SMP-LoRA's utility
                best = min(c[u] for c in f["curve"])
                out.append(claim(f"SMP-LoRA lies beyond the early-stopping frontier ({label(a)}, {u}): no checkpoint "
                                 "of plain LoRA reaches its utility (best checkpoint minus SMP-LoRA)",
                                 best - f["points"]["smp_lora"][u], ">", 0.0, power="the frontier ends before it"))
                continue
            out.append(claim(f"SMP-LoRA lies beyond the early-stopping frontier ({label(a)}, {u}): lower end of the "
                             f"paired interval of the frontier's auc_dev minus SMP-LoRA's", g["ci"][0], ">", 0.0,
                             g["ci"], f"{g['verdict']}; frontier interpolated between checkpoints"))
    for key, v in vs_dp.items():
        out.append(claim(f"SMP-LoRA is more private than {label(key)} at matched held-out loss ({label(strongest)}): "
                         "lower end of the paired interval of auc_dev(DP) - auc_dev(SMP)", v["auc_dev"]["ci"][0], ">",
                         0.0, v["auc_dev"]["ci"], f"{v['auc_dev']['verdict']}; held-out loss DP - SMP "
                         f"{v['heldout_loss']['difference']:+.4f} [{v['heldout_loss']['ci'][0]:+.4f}, "
                         f"{v['heldout_loss']['ci'][1]:+.4f}]"))
    checks = [claims.check(f"{label(k)}: the audited epsilon lower bound ({label(a['attack'])}, threshold at FPR <= 5% "
                           f"on D_aux) stays within the accounted epsilon {a['accounted']:.3g} (ceiling at these sizes "
                           f"{a['ceiling']:.2f}: {'it could fail' if a['can_fail'] else 'it cannot fail here'})",
                           a["epsilon_lower_bound"] <= a["accounted"], a["epsilon_lower_bound"])
              for k, a in dp_audit.items()]
    return out, checks


def conclusion_06(records: dict, strongest: str, frontier: dict, vs_dp: dict, utility: dict) -> str:
    """Notebook 06's conclusion as Markdown, written from its records (no number typed by hand)."""
    v = lambda m: ", ".join(f"{label(a)} {r['verdict']}" for a, r in records[m].items())   # noqa: E731
    q = lambda m: f"held-out loss {utility[m]['heldout_loss']:.4f}, FID {utility[m]['fid']:.2f}"   # noqa: E731
    p = next(iter(records["smp_lora"].values()))["power"]
    lines = [f"- Design: {p['splits']} member split(s), {p['n_member']} test members and {p['n_nonmember']} test "
             f"non-members in all; {power.describe(p)}.",
             f"- Base model (never saw a member): {v('base')}.",
             f"- Plain LoRA: {v('lora')}.", f"- SMP-LoRA: {v('smp_lora')}.",
             f"- Utility (means over splits): base {q('base')}; LoRA {q('lora')}; SMP-LoRA {q('smp_lora')}."]
    for a, by_utility in frontier.items():
        for u, f in by_utility.items():
            g = f["gap"]["smp_lora"]
            lines.append(f"- Against LoRA stopped early ({label(a)}, {u}): gap {g['gap'] if g['gap'] is None else round(g['gap'], 3)}"
                         f" [{g['ci'][0]:.3f}, {g['ci'][1]:.3f}]: **{g['verdict']}**.")
    for key, c in vs_dp.items():
        lines.append(f"- Against {label(key)} ({label(strongest)}): auc_dev difference {c['auc_dev']['difference']:+.3f} "
                     f"[{c['auc_dev']['ci'][0]:+.3f}, {c['auc_dev']['ci'][1]:+.3f}]: **{c['auc_dev']['verdict']}**; "
                     f"{q(key)}.")
    lines.append("- 'not detected' and 'not testable at this size' are absence of evidence, not a defense; 'defends' "
                 "is an equivalence test (TOST, margin 0.1 on auc_dev).")
    return "\n".join(lines)


def lesson_06(gain: dict) -> list[dict]:
    """Notebook 06's lesson: fine-tuning buys more held-out fit on a private domain the base model never saw than
    on private data from the base model's own pool (``gain`` = ``{"private_domain": ., "in_distribution": .}``,
    ``study.adaptation_gain`` of the final LoRA, split 0), where stopping early is therefore free."""
    return [claim("LoRA's held-out gain over the base model is larger on the private domain than in distribution "
                  "(difference of the gains)", gain["private_domain"] - gain["in_distribution"], ">", 0.0,
                  power="one split each")]
