"""Every notebook in notebooks/ runs headlessly with papermill at small sizes, and its metrics.json is checked.

A notebook added to notebooks/ is covered the day it lands: the test is parametrised over the folder. The scientific
claims are checked at full `tiny` size by `make demo`'s outputs, not here.
"""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from smplora_nb import attack, config, paths, profiles, runner, schema, sets

# Small sizes for CI, per notebook (every notebook must have an entry).
BASE_FAST = {"vae_steps": 20, "pretrain_steps": 20}
SPLIT_FAST = {"member_aux": 20, "member_te": 20, "nonmember_aux": 20, "nonmember_te": 20}   # 20: TPR@5% measurable
SAMPLE_FAST = {"sample_steps": 4, "unet_channels": [16, 32],      # denoising steps (tiny: 25), U-Net widths (32, 64),
               "audit_boot": 50}                                 # resamples of each model's attack intervals (500)
SHARED = {"overrides": {**BASE_FAST, **SPLIT_FAST, **SAMPLE_FAST}}  # notebooks 02 to 06 take them through overrides
LAM = profiles.PROFILES["tiny"]["lam"]       # the first lam of notebook 05's grid is the profile's: one run with lr x1, rank x1
CI_PARAMS = {
    "01_data_splitting": {**BASE_FAST, "n_samples": 12, "overrides": SAMPLE_FAST},
    "02_membership_inference_attack": {**SHARED, "n_splits": 2, "epochs": 2, "mlp_epochs": 3},
    "03_mp_lora_instability": {**SHARED, "epochs": 2, "mlp_epochs": 3, "hessian_every": 1,
                               "hessian_iters": 3, "stabilisers": ["clip", "normalize"]},
    "04_smp_lora_training": {**SHARED, "n_splits": 2, "epochs": 2, "mlp_epochs": 3,
                             "hessian_every": 1, "hessian_iters": 3, "two_forward_splits": 1},
    "05_ablations": {**SHARED, "epochs": 2, "mlp_epochs": 3, "hessian_every": 1, "hessian_iters": 3,
                     "lams": [LAM, 0.1], "lr_factors": [1.0, 0.1], "rank_factors": [1.0, 0.5], "n_splits": 1},
    "06_stronger_attacks_and_baselines": {**SHARED, "n_splits": 2, "epochs": 2, "mlp_epochs": 3, "mp_splits": 1,
                                          "hessian_every": 1, "hessian_iters": 3, "dp_epsilons": [8.0],
                                          "dp_epochs": 1, "n_boot": 50},   # section 5: tests/test_own_images.py
}
NOTEBOOKS = runner.list_notebooks()
S0, S1 = profiles.CONFIRM_SEEDS["seed"], profiles.CONFIRM_SEEDS["seed"] + 1       # the tiny profile's training seeds


def check_01(m):
    split = config.make("tiny").split                                   # CI keeps the tiny split sizes
    assert m["counts"] == {name: getattr(split, name) for name in sets.SETS}
    assert m["disjoint"] is True and m["n_items"] == 1797
    assert 0.0 <= m["digit_accuracy_base_samples"] <= 1.0 and m["digit_accuracy_real"] > 0.8
    assert [c["kind"] for c in m["claims"]] == ["claim"] * 3 and all(isinstance(c["holds"], bool) for c in m["claims"])
    assert "model-free check" in m["claims"][2]["claim"] and m["claims"][2]["holds"]   # the split is not separable
    # (claims 0 and 1, the base model's class accuracy, are the demo's: 20 pretraining steps draw no digit)
    assert m["private_classes"] == "5-9" and m["split_seed"] == profiles.CONFIRM_SEEDS["split_seed"]
    assert {"digit_accuracy_base_public_classes", "digit_accuracy_base_private_classes"} <= set(m)
    assert not any("300 s" in c["claim"] or "takes" in c["claim"] for c in m["claims"])
    assert m["pretrain_seconds"] > 0                                     # timings are reported, not claimed
    assert m["pretrain_threads"] == 1                                    # the tests' kernels run one thread
    man = paths.read_json(paths.outputs_root() / "01_data_splitting" / "manifest.json")
    assert {k: len(v) for k, v in man["sets"].items()} == m["counts"]
    for fig in ("dataset_examples", "split_counts", "split_examples", "pretrain_loss", "base_samples"):
        assert (paths.outputs_root() / "01_data_splitting" / f"{fig}.png").stat().st_size > 1000


def _scores_csv(stem):
    rows = (paths.outputs_root() / stem / "scores.csv").read_text().splitlines()
    assert rows[0] == "model,split,seed,attack,image_id,member,score,direction,config_hash" and len(rows) > 100
    return rows


def _check_pooled(m, models, attacks, splits):
    for model in models:
        assert set(m["pooled"][model]) == set(attacks), model
        for a, r in m["pooled"][model].items():
            assert r["splits"] == splits and len(r["auc_by_split"]) == len(splits)
            lo, hi = r["ci"]["auc"]
            assert lo <= r["auc"] <= hi and r["ci90"]["auc"][0] >= lo and r["ci90"]["auc"][1] <= hi
            assert r["verdict"] in ("leaks", "defends", "not detected", "not testable at this size", "constant scores")
            assert r["power"]["splits"] == len(splits) and not r["power"]["testable"]     # 20 + 20: never testable
            assert r["verdict"] != "defends"


def _check_claims(m, n):
    assert len(m["claims"]) == n, [c["claim"] for c in m["claims"]]
    for c in m["claims"]:
        assert c["kind"] in ("claim", "descriptive", "not testable")
        assert isinstance(c["holds"], bool) if c["kind"] == "claim" else c["holds"] is None
        assert c["kind"] == "descriptive" or c.get("power"), c["claim"]   # a verdict says what it could detect


def check_02(m):
    assert m["splits"] == [0, 1] and m["seeds"] == {"0": S0, "1": S1} and "not Inception" in m["feature_extractor"]
    for method in ("lora", "base"):
        r = m[method]
        assert set(r["per_split"]) == {"0", "1"}
        for key in ("asr", "auc", "auc_dev", "tpr_at_5pct_fpr", "fid", "kid"):
            assert r["mean"][key] is not None and np.isfinite(r["mean"][key])
        assert 0 <= r["mean"]["asr"] <= 1 and 0 <= r["mean"]["auc"] <= 1
        assert r["mean"]["tpr_at_1pct_fpr"] is None                      # 20 non-members: not measurable
        assert set(r["attacks"]) == set(attack.MAP_ATTACKS)
        assert schema.headline(m, method)["asr"] == schema.attack_mean(m, method, "loss_map_mlp")["asr"]
        assert set(m["noise_floor"][method]) == set(attack.MAP_ATTACKS)
        assert all(f["n"] == 2 for f in m["noise_floor"][method].values())
    _check_pooled(m, ("lora", "base"), attack.MAP_ATTACKS, [0, 1])
    _check_claims(m, 3 + 4)
    assert len(m["checks"]) == 1 and m["fid_floor"]["fid"] >= 0
    for method in ("lora", "base"):                                 # the utilities adaptation buys (issue 16)
        u = m["utility"][method]
        assert u["heldout_loss"] > 0 and 0 <= u["sample_accuracy"] <= 1 and np.isfinite(u["fid"])
        assert set(m["utility_noise_floor"][method]["heldout_loss"]) == {"mean", "sd", "n", "threads"}
    for fig in ("train_loss", "loss_gap", "roc", "samples", "paper_mlp_learning_curve"):
        assert (paths.outputs_root() / "02_membership_inference_attack" / f"{fig}.png").stat().st_size > 1000
    hist = m["lora"]["per_split"]["0"]["loss_map_mlp_paper"]["chosen_on_aux"]["history"]
    assert len(hist["val_acc"]) == len(hist["train_loss"]) == 100            # the paper's 100 epochs, shown
    rows = _scores_csv("02_membership_inference_attack")
    assert len(rows) == 1 + 2 * 2 * len(attack.MAP_ATTACKS) * 40           # (base, LoRA) x 2 splits x attacks x D_te


def _check_method(r, splits):
    assert set(r["per_split"]) == {str(k) for k in splits}
    for key in ("asr", "auc", "auc_dev", "tpr_at_5pct_fpr", "fid", "kid"):
        assert r["mean"][key] is not None and np.isfinite(r["mean"][key]), key
    assert r["mean"]["asr"] == r["attacks"]["loss_map_mlp"]["mean"]["asr"]
    assert all("ci" in a for a in r["per_split"][str(splits[0])].values() if isinstance(a, dict) and "auc" in a)


def check_03(m):
    stem = "03_mp_lora_instability"
    assert m["lam"] == config.make("tiny").train.lam and m["proxy_feature"] == "calibrated"
    for k in ("lora", "mp_lora", "mp_lora_clip", "mp_lora_normalize"):
        _check_method(m[k], [0])
        d = m[k]["diagnostics"]
        assert d["steps"] == 2 * 2 and d["grad_norm_std"] > 0                 # 40 members / batch 32, 2 epochs
        assert (d.get("hessian_mean") is not None) == (k == "mp_lora")      # the Hessian only where it is plotted
    assert m["mp_lora"]["diagnostics"]["grad_scale_privacy_std"] > 0 and m["mp_lora"]["diagnostics"]["proxy_acc_final"]
    assert "grad_scale_privacy_std" not in m["lora"]["diagnostics"]
    assert m["stabilisers"] == ["clip", "normalize"]
    _check_pooled(m, ("lora", "mp_lora"), attack.MAP_ATTACKS, [0])
    _check_claims(m, 5 + 2)
    assert m["claims"][0]["kind"] == "not testable"                     # defends, one split of 20 + 20
    assert m["claims"][3]["kind"] == "not testable"                     # a PCC over 4 Hessian points
    assert set(m["utility_vs_lora"]) == {"mp_lora", "mp_lora_clip", "mp_lora_normalize"}
    for fig in ("training_diagnostics", "grad_vs_hessian", "samples"):
        assert (paths.outputs_root() / stem / f"{fig}.png").stat().st_size > 1000


def check_04(m):
    stem = "04_smp_lora_training"
    assert m["splits"] == [0, 1] and m["seeds"] == {"0": S0, "1": S1}
    for k in ("lora", "mp_lora", "smp_lora"):
        _check_method(m[k], [0, 1])
        assert set(m[k]["diagnostics"]) == {"0", "1"}
    smp = m["smp_lora"]["diagnostics"]["0"]
    assert 0 < smp["rescale_min"] <= smp["rescale_mean"] <= smp["rescale_max"] <= 1
    _check_method(m["smp_lora_two_forwards"], [0])
    assert m["smp_lora"]["diagnostics"]["0"]["hessian_mean"] is not None
    assert m["smp_lora"]["diagnostics"]["1"].get("hessian_mean") is None
    _check_method(m["lora_early_stop"], [0, 1])
    assert all(1 <= e <= 2 for e in m["lora_early_stop"]["epochs"].values())
    _check_pooled(m, ("lora", "mp_lora", "smp_lora", "lora_early_stop"), attack.MAP_ATTACKS, [0, 1])
    _check_claims(m, 1 + 3 + 3 + 1 + 1)
    assert [c["kind"] for c in m["claims"][1:4]] == ["not testable"] * 3 and m["claims"][-1]["kind"] == "descriptive"
    assert m["early_stop_vs_smp"]["verdict"] in ("beyond", "behind", "indistinguishable")
    assert set(m["noise_floor"]) == {"lora", "mp_lora", "smp_lora", "smp_lora_two_forwards", "lora_early_stop"}
    for fig in ("fid_vs_asr", "roc", "samples", "training_diagnostics", "grad_vs_hessian"):
        assert (paths.outputs_root() / stem / f"{fig}.png").stat().st_size > 1000
    _scores_csv(stem)


def check_05(m):
    stem = "05_ablations"
    tiny = config.make("tiny").train
    assert m["grid"] == {"lam": [LAM, 0.1], "lr_factors": [1.0, 0.1], "rank_factors": [1.0, 0.5]}
    assert [r["lam"] for r in m["ablations"]["lam"]] == [LAM, 0.1]
    assert [r["lr"] for r in m["ablations"]["lr"]] == [tiny.lr, tiny.lr * 0.1]
    assert [r["rank"] for r in m["ablations"]["rank"]] == [tiny.lora_rank, tiny.lora_rank // 2]
    default = m["ablations"]["lam"][0]                                  # the profile's lam = lr x1 = rank x1: one run
    assert all(m["ablations"][f][0][k] == default[k] for f in ("lr", "rank") for k in ("asr", "fid", "kid"))
    for rows in [*m["ablations"].values(), list(m["references"].values())]:
        for r in rows:
            assert 0 <= r["asr"] <= 1 and np.isfinite(r["fid"])
    assert len(m["train_seconds"]) == 8
    _check_claims(m, 3)
    assert [c["kind"] for c in m["claims"]] == ["descriptive", "descriptive", "claim"]     # two lams: rho is +-1
    folder = paths.outputs_root() / stem
    for family in ("lam", "lr", "rank"):
        csv = (folder / f"ablation_{family}.csv").read_text().splitlines()
        assert csv[0].startswith(family + ",asr") and len(csv) == 3
        assert (folder / f"ablation_{family}.md").read_text().startswith(f"| {family} | asr")
    assert (folder / "privacy_utility.png").stat().st_size > 1000
    cells = json.loads((folder / f"{stem}.ipynb").read_text())["cells"]
    explorer = [c for c in cells if c["cell_type"] == "code" and "widgets.explorer(" in "".join(c["source"])][0]
    assert sum("image/png" in o.get("data", {}) for o in explorer["outputs"]) == 2   # static view: ROC + samples


def check_06(m):
    stem = "06_stronger_attacks_and_baselines"
    methods = ["base", "lora", "mp_lora", "smp_lora", "dp_lora_eps8"]
    attacks = list(attack.ATTACKS)
    assert m["model_order"] == methods and m["attack_order"] == attacks and m["splits"] == [0, 1]
    _check_pooled(m, ["base", "lora", "smp_lora", "dp_lora_eps8"], attacks, [0, 1])
    _check_pooled(m, ["mp_lora"], attacks, [0])                         # mp_splits 1
    for method in methods:
        assert np.isfinite(m["utility"][method]["fid"])
    assert m["pooled"]["base"]["loss_at_t_ref"]["verdict"] == "constant scores"     # the base model against itself
    for a, r in m["chosen_on_aux"]["lora"].items():
        assert a.startswith("loss_map_mlp") or r["timestep"] in (1, 10, 50, 100, 200, 350, 400)
    assert m["dp"]["dp_lora_eps8"]["epsilon_spent"] <= 8.0 + 1e-6
    audit = m["dp_audit"]["dp_lora_eps8"]
    assert audit["epsilon_lower_bound"] <= audit["ceiling"] and audit["can_fail"] is False   # 40 + 40: it cannot
    assert m["checks"][0]["ok"] is True and "cannot fail" in m["checks"][0]["check"]
    for a, by_utility in m["frontier"].items():
        assert set(by_utility) == {"fid", "heldout_loss"}
        for f in by_utility.values():
            assert [c["epoch"] for c in f["curve"]] == [0, 1, 2] and set(f["points"]) == {"smp_lora", "dp_lora_eps8"}
            assert f["gap"]["smp_lora"]["verdict"] in ("beyond", "behind", "indistinguishable")
    assert m["vs_dp"]["dp_lora_eps8"]["auc_dev"]["verdict"] in ("beyond", "behind", "indistinguishable")
    assert m["strongest_threshold_attack_on_aux"] in ("loss_at_t", "loss_at_t_ref", "pia", "pian", "secmi", "sima")
    _check_claims(m, 9 + 1 + 9 + 4 + 1 + 4)
    assert sum(c["kind"] == "descriptive" for c in m["claims"][:9]) == 2          # the two reference attacks
    assert m["utility"]["base"]["heldout_loss"] > 0 and 0 <= m["utility"]["lora"]["sample_accuracy"] <= 1
    assert m["in_distribution"] == {} and "Design: 2 member split(s)" in m["conclusion"]
    folder = paths.outputs_root() / stem
    for fig in ("attack_matrix", "roc_lora", "roc_smp_lora", "frontier_mlp_fid", "frontier_mlp_heldout_loss",
                "frontier_strongest_fid", "frontier_strongest_heldout_loss"):
        assert (folder / f"{fig}.png").stat().st_size > 1000
    assert (folder / "attack_matrix.csv").read_text().startswith("model,attack,splits")
    assert any(",lora_snapshot_1,0," in r or r.startswith("lora_snapshot_1,") for r in _scores_csv(stem))


CHECKS = {"01_data_splitting": check_01, "02_membership_inference_attack": check_02,
          "03_mp_lora_instability": check_03, "04_smp_lora_training": check_04, "05_ablations": check_05,
          "06_stronger_attacks_and_baselines": check_06}


def test_every_notebook_has_ci_parameters_and_a_check():
    assert {nb.stem for nb in NOTEBOOKS} <= set(CHECKS) & set(CI_PARAMS)


@pytest.mark.xdist_group("notebooks")            # one worker, then tests/test_book.py builds the book from them
@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_with_papermill(nb, executed_outputs, series_outputs, monkeypatch):
    """Each notebook at the CI sizes, all in one outputs folder as ``make demo`` runs them: a run or an audit that
    one notebook made (same settings: every notebook trains 2 epochs) is read from the cache by the others."""
    monkeypatch.setenv("SMPLORA_OUTPUTS", str(series_outputs))
    declared = runner.declared_parameters(nb)
    assert "profile" in declared
    assert set(CI_PARAMS[nb.stem]) <= declared
    runner.run(only=[nb.stem], params=CI_PARAMS[nb.stem], progress=False)
    executed = paths.outputs_root() / nb.stem / f"{nb.stem}.ipynb"
    assert executed.exists()
    CHECKS[nb.stem](schema.read(nb.stem))
    shutil.copytree(paths.outputs_root() / nb.stem, executed_outputs / nb.stem)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_committed_without_outputs(nb):
    cells = json.loads(nb.read_text())["cells"]
    assert not any(c.get("outputs") for c in cells if c["cell_type"] == "code")
    assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in cells)
    ids = [c.get("id") for c in cells]
    assert len(set(ids)) == len(ids), "duplicate cell ids (nbformat renames them on every read)"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_open_in_colab_on_a_gpu(nb):
    """An "Open in Colab" badge for this very notebook, a setup cell that installs the package on Colab with
    Colab's torch pinned, GPU metadata, and the ``overrides`` parameter for paper-scale sources."""
    book = json.loads(nb.read_text())
    cells = ["".join(c["source"]) for c in book["cells"]]
    assert f"colab.research.google.com/github/smplora/smplora_nb/blob/main/notebooks/{nb.name}" in cells[0]
    setup = [c for c in cells if 'if "google.colab" in sys.modules' in c]
    assert len(setup) == 1 and "keep-torch.txt" in setup[0] and '"-c"' in setup[0]
    assert f'"git+https://{REPO}@{RELEASE}"' in setup[0] and f"colab.research.google.com/github/{REPO[len('github.com/'):]}/" in cells[0]
    assert cells.index(setup[0]) < next(i for i, c in enumerate(book["cells"])
                                        if "parameters" in c.get("metadata", {}).get("tags", []))
    assert book["metadata"]["accelerator"] == "GPU" and "colab" in book["metadata"]
    assert "overrides" in runner.declared_parameters(nb)


REPO = "github.com/smplora/smplora_nb"                             # the one repository address (README)
RELEASE = f"v{__import__('smplora_nb').__version__}"               # the tag the Colab cells install (README)


def test_one_repository_address_everywhere():
    """The README, every badge and every setup cell name one address."""
    readme = (runner.NOTEBOOK_DIR.parent / "README.md").read_text()
    assert REPO in readme
    for nb in NOTEBOOKS:
        text = nb.read_text()
        others = {u.split("/blob/")[0] for u in text.split("github/")[1:]} | {
            u.split('"')[0].split("\\")[0].split("@")[0] for u in text.split("git+https://")[1:]}
        assert f"git+https://{REPO}@{RELEASE}" in text and f"git+https://{REPO}@{RELEASE}" in readme, nb.name
        assert others == {REPO[len("github.com/"):], REPO}, (nb.name, others)


def test_setup_cell_with_an_unreachable_source_prints_what_to_do(tmp_path, monkeypatch, capsys):
    """On Colab, an install source that cannot be installed gives a clear message, not a pip traceback."""
    import types

    cell = ["".join(c["source"]) for c in json.loads(NOTEBOOKS[0].read_text())["cells"]
            if 'if "google.colab" in sys.modules' in "".join(c["source"])][0]
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setenv("SMPLORA_SOURCE", str(tmp_path / "no_such_copy"))
    real_run = subprocess.run
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: real_run(
        [c.replace("/tmp/keep-torch.txt", str(tmp_path / "keep.txt")) for c in cmd], **kw))
    cell = cell.replace("/tmp/keep-torch.txt", str(tmp_path / "keep.txt"))
    exec(compile(cell, "setup-cell", "exec"), {})
    out = capsys.readouterr().out
    assert "Could not install smplora_nb from" in out and "SMPLORA_SOURCE" in out and "Traceback" not in out


def test_cli_rejects_unknown_parameter():
    res = subprocess.run([sys.executable, "-m", "smplora_nb", "notebooks", "--only", "01", "-p", "not_a_param", "1"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "not_a_param" in res.stderr


def test_select_and_parse_value():
    assert [p.stem[:2] for p in runner.select(NOTEBOOKS, ["01"])] == ["01"]
    with pytest.raises(ValueError, match="99"):
        runner.select(NOTEBOOKS, ["99"])
    assert runner.parse_value("3") == 3 and runner.parse_value("0.5") == 0.5
    assert runner.parse_value("folder:/x") == "folder:/x" and runner.parse_value("None") is None


# ------------------------------------------------------------------------- the paper profile, at test sizes

PAPER_SMALL = {"resolution": 16, "lora_rank": 4, "lora_alpha": 4.0, "batch_size": 8, "proxy_batch_size": 4,
               "mixed_precision": "no", "quality_features": "pixels", "sample_steps": 2, "audit_boot": 50}
PAPER_SPLIT = {"member_aux": 12, "member_te": 12, "nonmember_aux": 12, "nonmember_te": 12}   # crashes show at any size
PAPER_PARAMS = {  # the CI sizes of each notebook, the paper profile's own knobs where a notebook has no parameter
    "01_data_splitting": {"n_samples": 4},
    "02_membership_inference_attack": {"n_splits": 1, "epochs": 2, "mlp_epochs": 2},
    "03_mp_lora_instability": {"epochs": 2, "mlp_epochs": 2, "hessian_every": 2, "hessian_iters": 2},
    "04_smp_lora_training": {"n_splits": 1, "epochs": 2, "mlp_epochs": 2, "hessian_every": 2, "hessian_iters": 2,
                             "two_forward_splits": 1},
    "05_ablations": {"epochs": 2, "mlp_epochs": 2, "hessian_every": 2, "hessian_iters": 2, "lams": [0.05],
                     "lr_factors": [1.0], "rank_factors": [1.0], "n_splits": 1},
    "06_stronger_attacks_and_baselines": {"n_splits": 1, "epochs": 2, "mlp_epochs": 2, "hessian_every": 2,
                                          "hessian_iters": 2, "mp_splits": 1, "dp_epsilons": [8.0],
                                          "dp_epochs": 1, "n_boot": 20},
}


def _captioned_folder(root, n=112):
    """A folder dataset in the official layout: ``1_digits/digit_<i>.png`` + a same-stem ``.txt`` caption."""
    from PIL import Image

    from smplora_nb import data

    sub = root / "1_digits"
    sub.mkdir(parents=True)
    for i, it in enumerate(data.load_dataset("digits", 16)[:n]):
        Image.fromarray(it.image).resize((20, 20)).save(sub / f"digit_{i}.png")
        (sub / f"digit_{i}.txt").write_text(it.caption)
    return root


def test_notebooks_01_to_06_run_on_the_paper_profile(tiny_setup, tmp_path):
    """``profile="paper"`` (text-encoder LoRA, grad clipping, the paper's raw-map proxy, lam 0.05, the Hessian) on a
    tiny saved SD-layout pipeline and a folder dataset, at test sizes: a crash on the paper path shows here, not on
    a rented GPU. Image quality uses pooled pixels (Inception's weights cannot be downloaded here). The folder has
    no class labels: with tests/test_own_images.py (the tiny profile on a folder: notebooks 01, 02, 06) every
    notebook runs on a folder of images."""
    folder = _captioned_folder(tmp_path / "digits_folder")
    overrides = {**PAPER_SMALL, "base": str(tiny_setup[3])}
    for stem, params in PAPER_PARAMS.items():
        runner.run(only=[stem], profile="paper", progress=False,
                   params={**params, **PAPER_SPLIT, "dataset": f"folder:{folder}", "overrides": overrides})
        m = paths.read_metrics(stem)
        assert m["profile"] == "paper" and (stem[:2] == "01" or "pooled" in m["feature_extractor"]), stem
        assert (paths.outputs_root() / stem / f"{stem}.ipynb").exists()
    m1 = paths.read_metrics("01_data_splitting")
    assert m1["disjoint"] is True and m1["counts"]["member_te"] == 12 and m1["split_seed"] == 1337   # the paper's
    m3 = paths.read_metrics("03_mp_lora_instability")
    assert m3["proxy_feature"] == "paper" and m3["lam"] == 0.05
    assert m3["mp_lora"]["diagnostics"]["hessian_mean"] is not None           # the Hessian ran on the paper path


def test_plain_papermill_refuses_an_undeclared_parameter(tmp_path):
    """papermill itself only warns about an unknown name; the notebook stops at its config cell with a clear
    error, before any work (here a typo of ``vae_steps``)."""
    import papermill as pm

    nb = runner.NOTEBOOK_DIR / "01_data_splitting.ipynb"
    with pytest.raises(pm.PapermillExecutionError, match="unknown notebook parameter.*vae_step"):
        pm.execute_notebook(str(nb), str(tmp_path / "out.ipynb"), parameters={"vae_step": 2}, progress_bar=False,
                            cwd=str(nb.parent))
    assert not (paths.outputs_root() / "cache" / "base").exists()         # nothing was pretrained


def test_check_injected_reads_the_parameters_and_the_injected_cell():
    params = 'profile = "tiny"\nseed = None'
    config.check_injected(["", "import sys", params, "# Parameters\nseed = 3\n", "config.check_injected(In)"])
    config.check_injected(["", params, "x = 1"])                         # JupyterLab: nothing injected
    with pytest.raises(ValueError, match=r"\['sede'\]"):
        config.check_injected(["", params, "# Parameters\nsede = 3\n", "config.check_injected(In)"])
