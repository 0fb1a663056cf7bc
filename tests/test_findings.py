"""Each notebook's claims (``findings``), each shown holding on a good example and failing on a counterexample;
"not testable" at small sizes; descriptive where a claim could not fail."""
import pytest

from smplora_nb import findings, powered, study
from smplora_nb.attack import PAPER_ATTACK as PAPER, STRONGEST_MAP_ATTACK as STRONG
from synthetic import LARGE, POWERED, SMALL, pooled_design, utility_evals


def test_split_01_claims_and_the_disjointness_check():
    quality = {"digit_accuracy_base_public_classes": 0.9, "digit_accuracy_base_private_classes": 0.1,
               "n_base_public_classes": 50, "n_base_private_classes": 58}
    fair = {"ci": {"auc": [0.42, 0.6]}, "n_member": 58, "n_nonmember": 200}
    out, checks = findings.split_01(True, quality, fair)
    assert [c["holds"] for c in out] == [True, True, True] and checks == [
        {"check": checks[0]["check"], "ok": True, "value": None}]
    assert [c["power"] for c in out[:2]] == ["50 images", "58 images"] and out[0]["interval"][0] < 0.9
    assert "detects a shift of AUC >= 0.62" in out[-1]["power"]
    shifted = {**fair, "ci": {"auc": [0.55, 0.7]}}                          # the pixels alone separate the sides
    bad = {"digit_accuracy_base_public_classes": 0.5, "digit_accuracy_base_private_classes": 0.6}
    out, checks = findings.split_01(False, bad, shifted)
    assert [c["holds"] for c in out] == [False, False, False] and not checks[0]["ok"]
    assert [c["holds"] for c in findings.split_01(True, {"digit_accuracy_base_samples": 0.9}, fair)[0]] == [True, True]


def test_attack_02_lora_leaks_and_the_base_model_is_the_control():
    good, objs, _ = pooled_design({"lora": (0.95, 1.0), "base": (0.5, 2.0)}, (0, 1), SMALL)
    ref = powered.versus(objs["lora"]["loss_at_t"], objs["lora"]["loss_at_t_ref"])   # auc_dev(ref) - auc_dev(plain)
    out, checks = findings.attack_02(good, ref)
    assert [c["holds"] for c in out] == [True, True, True] and [c["kind"] for c in out] == ["claim"] * 3
    assert checks[0]["ok"] and checks[0]["value"] == "none"
    weak = {PAPER: 0.55, "loss_map_mlp_paper": 0.5, "loss_map_mlp_ref": 0.6, "loss_at_t": 0.8, "loss_at_t_ref": 0.5}
    assert STRONG in weak and weak[STRONG] < findings.LEAKS_AT_LEAST[STRONG]   # detected, below its target
    bad, objs, _ = pooled_design({"lora": (weak, 1.0), "base": (0.95, 2.0)}, (0,), SMALL, attacks=tuple(weak))
    ref = powered.versus(objs["lora"]["loss_at_t"], objs["lora"]["loss_at_t_ref"])   # the reference clearly weaker
    out, checks = findings.attack_02(bad, ref)
    assert [c["holds"] for c in out] == [False, False, False]
    assert not checks[0]["ok"] and "sima" not in checks[0]["value"] and PAPER in checks[0]["value"]


def test_adaptation_claims_hold_and_fail():
    evals = utility_evals()
    u, per = study.utilities(evals), study.utility_per_split(evals)
    assert all(c["holds"] for c in findings.adaptation(u, per))
    worse = utility_evals(lora_fids=(2.0, 3.5), lora_loss=(0.14, 0.145), acc=(0.6, 0.5))   # buys too little
    held = [c["holds"] for c in findings.adaptation(study.utilities(worse), study.utility_per_split(worse))]
    assert held == [False, True, False, False]
    floored = findings.adaptation(u, per, {"fid": 1.9})[-1]              # base - LoRA: 2.0 and 1.8 on the splits
    assert floored["value"] == 0.5 and not floored["holds"] and "1.90" in floored["claim"]
    d = powered.draws(evals, n_boot=100)
    gain = powered.gain(evals, [("lora", 1), ("lora", 2)], [("base", 1), ("base", 2)], d)
    assert gain["gain"] == pytest.approx(1 - u["lora"]["heldout_loss"] / u["base"]["heldout_loss"], abs=0.01)
    sized = findings.adaptation(u, per, None, gain, n_samples=216)
    assert sized[0]["interval"] == gain["ci"] and gain["ci"][0] > 0.10
    assert [c["power"] for c in sized[1:3]] == ["216 images"] * 2 and all(c["holds"] for c in sized)


def _stats(mp_cv=2.0, lora_cv=0.5, n_hessian=12, pcc=0.1):
    return {"mp_lora": {"grad_norm_cv": mp_cv, "grad_scale_privacy_std": 2.0, "grad_scale_ada_std": 1.0,
                        "pcc_grad_hessian": pcc, "n_hessian": n_hessian}, "lora": {"grad_norm_cv": lora_cv}}


def _cmp(diff, floor=0.2):
    """``study.compare_utility``'s record of FID."""
    return {"fid": {"difference": diff, "floor": floor, "verdict": "no difference" if abs(diff) <= floor else "higher"}}


def test_mp_03_claims_say_what_one_split_can_show():
    small, _, _ = pooled_design({"lora": (0.9, 1.0), "mp_lora": (0.5, 3.0)}, (0,), SMALL, (PAPER,))
    vs = {"mp_lora": _cmp(2.0), "mp_lora_clip": _cmp(1.0), "mp_lora_normalize": _cmp(0.1)}
    out = findings.mp_03(small, _stats(), vs)
    assert [c["kind"] for c in out] == ["not testable", "claim", "claim", "not testable", "claim", "claim", "claim"]
    assert [c["holds"] for c in out] == [None, True, True, None, True, True, False]
    large, _, _ = pooled_design({"mp_lora": (0.5, 3.0)}, POWERED, LARGE, (PAPER,))
    out = findings.mp_03(large, _stats(mp_cv=1.0, n_hessian=100), {"mp_lora": _cmp(0.1)})
    assert [c["kind"] for c in out] == ["claim"] * 5 and [c["holds"] for c in out] == [True, False, True, True, False]
    leaky, _, _ = pooled_design({"mp_lora": (0.7, 3.0)}, POWERED, LARGE, (PAPER,))
    out = findings.mp_03(leaky, _stats(n_hessian=100, pcc=0.9), {"mp_lora": _cmp(2.0)})
    assert [c["holds"] for c in out] == [False, True, True, False, True]


def test_smp_04_claims_hold_and_fail():
    ks, attacks = POWERED, (PAPER, "loss_map_mlp_ref", "loss_at_t_ref")
    good, objs, _ = pooled_design({"lora": (0.95, 1.0), "smp_lora": (0.5, 1.0), "lora_early_stop": (0.8, 1.0)}, ks, LARGE,
                            attacks)
    stats = {m: {str(k): {"grad_norm_cv": cv} for k in ks} for m, cv in (("mp_lora", 2.0), ("smp_lora", 0.5))}
    early = powered.versus(objs["smp_lora"][PAPER], objs["lora_early_stop"][PAPER])
    out = findings.smp_04(good, stats, {"smp_lora": _cmp(0.1)}, _cmp(2.0), early, {"fid": 0.1, "auc": 0.01})
    assert [c["kind"] for c in out] == ["claim"] * 8 + ["descriptive"] and all(c["holds"] for c in out[:8])
    assert out[-1]["holds"] is None and out[-1]["value"] == {"fid": 0.1, "auc": 0.01}
    bad, objs, _ = pooled_design({"lora": (0.6, 1.0), "smp_lora": (0.7, 1.0), "lora_early_stop": (0.6, 1.0)}, ks, LARGE,
                           attacks)
    stats["mp_lora"]["3"]["grad_norm_cv"] = 0.4                             # one split where MP-LoRA is calmer
    early = powered.versus(objs["smp_lora"][PAPER], objs["lora_early_stop"][PAPER])
    out = findings.smp_04(bad, stats, {"smp_lora": _cmp(1.0)}, _cmp(0.1), early, None)
    assert len(out) == 8 and not any(c["holds"] for c in out)
    small, _, _ = pooled_design({"lora": (0.95, 1.0), "smp_lora": (0.5, 1.0)}, (0,), SMALL, attacks)
    out = findings.smp_04(small, stats, {"smp_lora": _cmp(0.1)}, _cmp(2.0), None, None)
    assert [c["kind"] for c in out[1:4]] == ["not testable"] * 3 and len(out) == 7


def test_ablation_05_trend_is_descriptive_below_four_settings():
    def rows(lams, fids, asrs):
        return {"lam": [{"lam": x, "fid": f, "asr": a} for x, f, a in zip(lams, fids, asrs)]}

    beyond = {"verdict": "beyond", "ci": [0.1, 0.3], "difference": 0.2}
    behind = {"verdict": "behind", "ci": [-0.3, -0.1], "difference": -0.2}
    two = findings.ablation_05(rows([0.1, 1.0], [1.0, 2.0], [0.8, 0.6]), {"lam 1": beyond})
    assert [c["kind"] for c in two] == ["descriptive", "descriptive", "claim"] and two[-1]["holds"]
    assert "+1 or -1" in two[0]["power"]
    lams = [0.01, 0.1, 0.5, 1.0]
    up = findings.ablation_05(rows(lams, [1, 2, 3, 4], [0.9, 0.8, 0.7, 0.6]), {"lam 1": beyond, "lam 0.1": beyond})
    assert [c["kind"] for c in up] == ["claim"] * 3 and all(c["holds"] for c in up)
    down = findings.ablation_05(rows(lams, [4, 3, 2, 1], [0.6, 0.7, 0.8, 0.9]), {"lam 1": beyond, "lam 0.1": behind})
    assert not any(c["holds"] for c in down) and down[-1]["value"] == -0.3 and "1 of 2" in down[-1]["power"]
