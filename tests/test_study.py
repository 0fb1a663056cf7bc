"""The analyses of ``study`` on synthetic records: summaries and noise floors, utilities and their floors, the
ablation tables, the model-free check of a split."""
import numpy as np
import pytest

from smplora_nb import claims, config, data, sets, study, tables
from smplora_nb.attack import PAPER_ATTACK as PAPER
from synthetic import evaluation, evaluations, utility_evals


def test_summaries_noise_floors_and_points_per_split():
    evals = evaluations({"lora": (0.9, 1.0), "base": (0.5, 2.0)})
    summary = study.summaries(evals)
    assert list(summary) == ["lora", "base"] and set(summary["lora"]["per_split"]) == {"0", "1", "2"}
    assert summary["lora"]["attacks"]["sima"]["n_splits"] == 3
    assert not [k for k in summary["lora"]["per_split"]["0"]["sima"] if "scores_" in k]    # numbers, not scores
    floors = study.noise_floors(summary)
    assert floors["lora"]["sima"]["n"] == 3 and floors["lora"]["sima"]["sd"] > 0
    pts = study.points(summary)
    assert len(pts["lora"]["per_split"]) == 3 and pts["lora"]["per_split"][0]["fid"] == 1.0
    assert study.split_groups(["lora", "base"], [0, 2]) == {"lora": [("lora", 0), ("lora", 2)],
                                                           "base": [("base", 0), ("base", 2)]}
    bare = study.without_scores(evals["lora", 0]["audit"]["sima"])
    assert "auc" in bare and not [k for k in bare if "scores_" in k]


def test_ablation_tables_and_rank_correlation():
    evals = {("lam", 1.0, 0): evaluation({PAPER: 0.6}, fid=2.0), ("lam", 0.1, 0): evaluation({PAPER: 0.8}, fid=1.0),
             ("lora", None, 0): evaluation({PAPER: 0.9}, fid=0.9)}
    t, refs = study.ablation_tables(evals, ("lam",))
    assert [r["lam"] for r in t["lam"]] == [1.0, 0.1] and set(refs) == {"lora"}
    assert study.rank_correlation(t["lam"], "lam", "fid") == pytest.approx(1.0)
    assert study.ablation_families(t)["SMP-LoRA, lam"][0][0] == "lam 1"
    assert study.prediction_ratio([1.0, 1.1, 0.9], [1.0]) < 1 < study.prediction_ratio([1.0, 1.1, 0.9], [3.0])


def test_utilities_are_means_over_splits():
    evals = {("lora", 1): evaluation({"sima": 0.9}, fid=1.0, loss=0.2), ("lora", 2): evaluation({"sima": 0.9}, fid=3.0, loss=0.4)}
    evals["lora", 1]["quality"]["digit_accuracy"], evals["lora", 2]["quality"]["digit_accuracy"] = 0.5, 0.7
    u = study.utilities(evals)["lora"]
    assert u["fid"] == 2.0 and u["heldout_loss"] == pytest.approx(np.mean([ev["mean_loss"]["nonmember_te"]
                                                                           for ev in evals.values()]))
    assert u["heldout_loss"] == pytest.approx(0.3, abs=0.01)
    assert u["sample_accuracy"] == pytest.approx(0.6)
    assert "sample_accuracy" not in study.utility(evaluation({"sima": 0.5}))           # no labels, no accuracy
    assert set(study.utility_per_split(evals)["lora"]) == {"1", "2"}


def test_utility_floors_and_no_difference_inside_them():
    evals = utility_evals()
    floors = study.utility_floors(evals)
    assert floors["lora"]["fid"]["sd"] == pytest.approx(np.std([1.0, 1.2], ddof=1)) and floors["lora"]["fid"]["n"] == 2
    c = study.compare_utility(evals, "base", "lora")
    assert c["fid"]["verdict"] == "higher" and c["sample_accuracy"]["verdict"] == "lower"
    assert c["kid"]["verdict"] == "no difference"                               # equal kid: inside any floor
    assert c["fid"]["floor"] == pytest.approx(2 * np.std([1.0, 1.2], ddof=1))
    sampled = study.compare_utility(evals, "base", "lora", sampling={"fid": 2.5})    # FID between two sample sets
    assert sampled["fid"]["floor"] == 2.5 and sampled["fid"]["verdict"] == "no difference"
    close = utility_evals(lora_fids=(1.0, 3.0), base_fid=2.2)                  # 2.2 vs 2.0 with sd 1.4: noise
    assert study.compare_utility(close, "base", "lora")["fid"]["verdict"] == "no difference"
    by = {"base": [("base", 1)], "lora": [("lora", 1), ("lora", 2)]}            # explicit groups (notebook 06)
    assert study.utilities(evals, by=by)["base"]["fid"] == 3.0
    text = tables.utility_table(study.utilities(evals), floors, {"base": c})
    assert "no difference vs LoRA" in text and "sd 0.14" in text


def test_model_free_split_check_sees_a_shift_and_no_shift():
    items = data.load_dataset("digits", 16)
    splits = sets.make_splits(items, config.make("tiny", member_aux=30, member_te=30, nonmember_aux=30,
                                                 nonmember_te=30).split)
    fair = study.model_free_split_check(splits, n_boot=100)
    assert fair["ci"]["auc"][0] <= fair["auc"] <= fair["ci"]["auc"][1] and fair["ci"]["auc"][0] < 0.5
    bright = {k: [type(it)(**{**vars(it), "image": np.clip(it.image.astype(int) + 120, 0, 255).astype(np.uint8)})
                  for it in v] if k.startswith("member") else v for k, v in splits.items()}
    shifted = study.model_free_split_check(bright, n_boot=100)              # members brighter: a shift
    assert shifted["auc"] > 0.9 and shifted["ci"]["auc"][0] > 0.5
    assert claims.auc_dev_interval(shifted["ci"]["auc"])[0] > 0 == claims.auc_dev_interval(fair["ci"]["auc"])[0]


def test_pick_reads_a_few_models_records_on_one_split_and_skips_the_absent():
    evals = {("lora", 0): {"samples": "a", "audit": {"sima": 1}}, ("base", 0): {"samples": "b"}, ("lora", 1): {}}
    assert study.pick(evals, ["base", "lora", "smp_lora"], "samples", split=0) == {"base": "b", "lora": "a"}
    assert study.pick(evals, ["lora"], "audit", "sima", split=0) == {"lora": 1}
    results = {"lora": {"mean": 1}, "smp_lora": {"mean": 2}}
    assert list(study.pick(results, ("smp_lora", "lora", "mp_lora"))) == ["smp_lora", "lora"]   # in the given order


def test_split_stats_and_curves_read_one_split_of_the_logs():
    logs = {(m, k): {"l_ada": [1.0, 0.5 + k], "grad_norm": [1.0, 2.0, 3.0 + k], "steps": 3}
            for m in ("lora", "mp_lora") for k in (0, 1)}
    stats = study.split_stats(logs, 1)
    assert set(stats) == {"lora", "mp_lora"} and stats["lora"] == study.training_stats(logs)["lora"]["1"]
    assert study.split_curves({k: v for k, v in logs.items() if k[0] == "lora"}) == {"split 0": [1.0, 0.5],
                                                                                     "split 1": [1.0, 1.5]}
