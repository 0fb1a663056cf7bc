"""Every notebook's record builder (``records``) on synthetic inputs: notebook 06's powered audit holding on a good
design and failing on a counterexample, the lesson of section 5, the builders of notebooks 02 to 05 against the
schema (``schema``: their declared shape), which names what a record lacks."""
import pytest

from smplora_nb import attack, config, records, schema, tables
from smplora_nb.attack import PAPER_ATTACK as PAPER
from synthetic import POWERED, SMALL, FakeBench, design_06, evaluation, map_evals, train_log


@pytest.fixture(autouse=True)
def _no_sampling(monkeypatch):
    """The FID sampling floor draws images from a real model, which the stand-in bench has not."""
    monkeypatch.setattr(records, "_sampling", lambda bench, trained, key: {"fid": 0.05, "kid": 0.001})


def test_notebook_06_powered_audit_holds_on_a_good_design():
    evals, logs, groups, curve = design_06()
    out = records.build_06(FakeBench(), evals, logs, {}, groups, curve, ["dp_lora_eps8"], n_boot=200)
    assert schema.check("06_stronger_attacks_and_baselines", out) is out
    assert out["strongest_threshold_attack_on_aux"] == "sima" and out["splits"] == list(POWERED)
    assert out["seeds"] == {str(k): config.make("tiny").train.seed + k for k in POWERED}
    v = out["verdicts"]
    assert v["base"]["loss_at_t_ref"] == v["base"]["loss_map_mlp_ref"] == "constant scores"
    assert {v["base"][a] for a in attack.ATTACKS if "_ref" not in a} == {"defends"}     # the positive control
    assert set(v["lora"].values()) == {"leaks"} and set(v["smp_lora"].values()) == {"defends"}
    kinds = [c["kind"] for c in out["claims"]]
    assert kinds.count("descriptive") == 2 and kinds.count("not testable") == 0     # the two constant ones
    assert all(c["holds"] for c in out["claims"] if c["kind"] == "claim")
    assert records.counted(out) == (kinds.count("claim"), kinds.count("claim"))
    assert set(out["frontier"]) == {PAPER, "sima"} and set(out["frontier"]["sima"]) == {"heldout_loss", "fid"}
    assert out["frontier"]["sima"]["heldout_loss"]["gap"]["smp_lora"]["verdict"] == "beyond"
    assert out["vs_dp"]["dp_lora_eps8"]["auc_dev"]["verdict"] == "beyond"
    audit = out["dp_audit"]["dp_lora_eps8"]
    assert out["checks"][0]["ok"] and audit["splits"] == 6 and audit["accounted"] == 8.0
    # 1800 + 1800 images certify at most ~6.2 even with a perfect attack: at epsilon 8 the audit is still a check
    assert audit["ceiling"] < 8.0 and not audit["can_fail"] and "it cannot fail here" in out["checks"][0]["check"]
    text = out["conclusion"]
    assert "6 member split(s), 1800 test members" in text and "SMP-LoRA: loss-map MLP (paper) defends" in text
    assert "**beyond**" in text and "DP-LoRA (eps 8)" in text
    rows = tables.pooled_rows(out["pooled"])
    assert len(rows) == 4 * len(attack.ATTACKS) and rows[0]["defends: power at AUC 0.5"] >= 0.8
    assert {r["verdict"] for r in tables.frontier_rows(out["frontier"]) if r["method"] == "SMP-LoRA"} == {"beyond"}
    assert "beyond" in tables.versus_rows(out["vs_dp"])[0]["verdict"]
    assert [len(r) for r in tables.split_rows(out["pooled"])][0] == 2 + 6 + 1      # model, attack, 6 splits, sd


def test_notebook_06_claims_fail_on_a_counterexample():
    # a base model that leaks, a LoRA that does not (a little below chance: one-sided "leaks" cannot pass by luck),
    # SMP-LoRA as leaky as DP-LoRA and fitting held-out images worse than LoRA's snapshot
    evals, logs, groups, curve = design_06(smp=(0.9, 0.9, 2.5), dp=(0.9, 0.5, 2.5), base=0.6, lora=0.47)
    for key in groups["dp_lora_eps8"]:
        logs[key]["dp"]["epsilon_spent"] = 0.1                            # a budget the audit must not exceed
    out = records.build_06(FakeBench(), evals, logs, {}, groups, curve, ["dp_lora_eps8"], n_boot=100)
    privacy = [c for c in out["claims"] if "adapt" not in c["claim"] and "FID ranks" not in c["claim"]
               and "fits unseen" not in c["claim"] and c["kind"] == "claim"]
    assert privacy and not any(c["holds"] for c in privacy)
    assert out["frontier"]["sima"]["heldout_loss"]["gap"]["smp_lora"]["verdict"] == "behind"
    assert not out["checks"][0]["ok"] and out["dp_audit"]["dp_lora_eps8"]["can_fail"]   # an audit above the budget


def test_notebook_06_at_the_demo_sizes_says_what_it_cannot_test():
    evals, logs, groups, curve = design_06(ks=(0,), sizes=SMALL)         # one split of 58 + 50
    out = records.build_06(FakeBench(), evals, logs, {}, groups, curve, ["dp_lora_eps8"], n_boot=200)
    defends = [c for c in out["claims"] if "defends against" in c["claim"]]
    assert len(defends) == 2 * len(attack.ATTACKS)
    assert {c["kind"] for c in defends} == {"not testable", "descriptive"} and all(c["holds"] is None for c in defends)
    assert {out["verdicts"]["smp_lora"][a] for a in attack.ATTACKS} == {"not testable at this size"}
    assert not out["dp_audit"]["dp_lora_eps8"]["can_fail"] and "it cannot fail here" in out["checks"][0]["check"]
    assert "needs about" in defends[0]["power"] and "not testable" in out["conclusion"]


def test_lesson_06_compares_the_gain_in_and_out_of_distribution():
    evals, _, _, curve = design_06(ks=(0,))
    inside = {k: {**v, "mean_loss": {"nonmember_te": 0.45}} if k == ("base", 0) else v for k, v in evals.items()}
    lesson = records.lesson_06(evals, inside, "sima", curve)
    assert lesson["gain"]["private_domain"] == pytest.approx(0.6, abs=0.01)
    assert lesson["frontier"]["gap"]["smp_lora"]["verdict"] == "beyond"
    record = records.with_lesson({"claims": []}, lesson)
    assert record["in_distribution"] is lesson and record["claims"][-1]["holds"]
    same = records.lesson_06(evals, evals, "sima", curve)                  # no larger gain on the private domain
    assert not records.with_lesson({"claims": []}, same)["claims"][-1]["holds"]
    assert records.with_lesson({"claims": []}, {}) == {"claims": [], "in_distribution": {}}


def test_record_builders_02_to_05_follow_the_schema(monkeypatch):
    monkeypatch.setattr(records, "_sampling", lambda bench, trained, key: {"fid": 0.05, "kid": 0.001})
    bench = FakeBench()
    evals = map_evals(("base", "lora"), (0, 1))
    logs = {k: train_log() for k in evals if k[0] == "lora"}
    m02 = records.build_02(bench, evals, logs, {}, mlp_epochs=3)
    assert schema.check("02_membership_inference_attack", m02) is m02
    assert m02["splits"] == [0, 1] and m02["seeds"] == {"0": bench.cfg.train.seed, "1": bench.cfg.train.seed + 1}
    assert m02["fid_floor"]["fid"] == 0.05 and set(m02["pooled"]) == {"lora", "base"}
    assert {c["kind"] for c in m02["claims"]} == {"claim"} and len(m02["checks"]) == 1
    m04_evals = map_evals(("lora", "mp_lora", "smp_lora", "lora_early_stop"), (0, 1))
    m04_evals.update(map_evals(("smp_lora_two_forwards",), (0,)))
    logs = {k: train_log(cv=0.6 if k[0] == "mp_lora" else 0.2) for k in m04_evals}
    m04 = records.build_04(bench, m04_evals, logs, {}, ("lora", "mp_lora", "smp_lora"))
    assert schema.check("04_smp_lora_training", m04) is m04
    assert m04["early_stop_vs_smp"]["verdict"] in ("beyond", "behind", "indistinguishable")
    assert m04["claims"][-1]["kind"] == "descriptive" and m04["smp_lora"]["epochs"] == {"0": 4, "1": 4}
    assert m04["smp_lora"]["diagnostics"]["1"]["grad_norm_cv"] > 0
    m03_evals = map_evals(("lora", "mp_lora", "mp_lora_clip"), (0,))
    m03 = records.build_03(bench, m03_evals, {k: train_log() for k in m03_evals}, {}, stabilisers=["clip"])
    assert schema.check("03_mp_lora_instability", m03) is m03
    assert m03["claims"][0]["kind"] == "not testable"                       # one split of 58 + 50
    tc = bench.cfg.train
    grid = {("lam", tc.lam, 0): 0.6, ("lam", 0.1, 0): 0.8, ("lr", tc.lr, 0): 0.6, ("rank", 4, 0): 0.7,
            ("lora", None, 0): 0.95, ("mp_lora", None, 0): 0.55}
    m05_evals = {k: evaluation({PAPER: v}, 10 * i, fid=1.0 + i) for i, (k, v) in enumerate(grid.items())}
    m05 = records.build_05(bench, m05_evals, {k: train_log() for k in grid}, lam=[tc.lam, 0.1])
    assert schema.check("05_ablations", m05) is m05
    assert set(m05["vs_lora"]) == {f"lam {tc.lam:g}", "lam 0.1", f"lr {tc.lr:g}", "rank 4"}
    assert [c["kind"] for c in m05["claims"]] == ["descriptive", "descriptive", "claim"]


def test_schema_names_what_is_missing():
    with pytest.raises(ValueError, match="noise_floor"):
        schema.check("02_membership_inference_attack", {"profile": "tiny", "seeds": {"0": 1}, "claims": [],
                                                        "lora": {}, "base": {}})
    evals, logs, groups, curve = design_06(ks=(0,))
    good = records.build_06(FakeBench(), evals, logs, {}, groups, curve, ["dp_lora_eps8"], n_boot=50)
    for broken, missing in (({k: v for k, v in good.items() if k != "vs_dp"}, "'vs_dp'"),
                            ({**good, "pooled": {"base": {"sima": {"auc": 0.5}}}}, "pooled.base.sima.power"),
                            ({**good, "claims": [{"claim": "x", "value": 1, "op": ">", "target": 0, "holds": True}]},
                             "claims[0].kind")):
        with pytest.raises(ValueError, match=missing.replace("[", r"\[").replace("]", r"\]")):
            schema.check("06_stronger_attacks_and_baselines", broken)
    m = {"lora": {"per_split": {}, "attacks": {}, "quality": {}, "mean": {"asr": 0.7}, "sem": {}}, "profile": "tiny"}
    assert schema.methods(m) == ["lora"] and schema.headline(m, "lora")["asr"] == 0.7
    with pytest.raises(ValueError, match="lora.per_split"):
        schema.check("04_smp_lora_training", {**m, "lora": {"per_seed": {}, "attacks": {}, "quality": {}, "mean": {},
                                                            "sem": {}}})
