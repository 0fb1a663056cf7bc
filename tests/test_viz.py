"""Every figure draws on toy records without error and returns a figure (a smoke test of viz and viz_privacy)."""
import matplotlib
import numpy as np
import pytest

from smplora_nb import paths, viz, viz_privacy
from smplora_nb.data import Item

RNG = np.random.default_rng(0)
IMAGES = RNG.integers(0, 255, (6, 8, 8, 3), dtype=np.uint8)
LOG = {"l_ada": list(RNG.random(40) + 0.1), "grad_norm": list(RNG.random(40) + 0.1), "proxy_acc": [0.5] * 40,
       "hessian": [[0, 1.0, 0.5], [10, 2.0, 0.7], [20, 1.5, 0.6]]}
RECORD = {"scores_member": list(RNG.normal(1, 1, 30)), "scores_nonmember": list(RNG.normal(0, 1, 30))}


def _splits():
    item = lambda k: Item(f"i{k}", IMAGES[k % 6], f"caption {k}", str(k))          # noqa: E731
    return {name: [item(k) for k in range(3)] for name in ("public", "member_aux", "member_te", "nonmember_aux",
                                                            "nonmember_te")}


def _pooled(auc):
    return {"auc": auc, "ci": [auc - 0.1, auc + 0.1]}                 # as powered.frontier's points


def _frontier_record():
    return {"attack": "loss_map_mlp", "utility": "fid",
            "curve": [{"epoch": e, "fid": 3.0 - e, "auc_dev": 0.1 * e, **_pooled(0.5 + 0.05 * e)} for e in (0, 1, 2)],
            "points": {"smp_lora": {"fid": 1.5, "auc_dev": 0.05, **_pooled(0.52)}},
            "gap": {"smp_lora": {"ci": [-0.1, 0.2], "verdict": "indistinguishable"}}}


FIGURES = {
    "image_grid": lambda: viz.image_grid(IMAGES, [str(k) for k in range(6)], ncols=3, title="toy"),
    "items_grid": lambda: viz.items_grid(_splits()["member_aux"], ncols=3),
    "split_grids": lambda: viz.split_grids(_splits(), per_set=3),
    "split_counts": lambda: viz.split_counts({"public": 10, "member_aux": 3}),
    "loss_curves": lambda: viz.loss_curves({"lora": LOG["l_ada"]}, "toy"),
    "samples_grid": lambda: viz.samples_grid(_splits(), {"lora": IMAGES[:3], "base": IMAGES[3:]}),
    "learning_curve": lambda: viz.learning_curve({"train_loss": [1, 0.5], "train_acc": [0.5, 0.7],
                                                  "val_acc": [0.5, 0.6]}, "toy"),
    "loss_gap": lambda: viz.loss_gap({"LoRA": {"member_te": RNG.random(20) + 0.1, "nonmember_te": RNG.random(20) + 0.2}}),
    "training_diagnostics": lambda: viz.training_diagnostics({"lora": LOG, "smp_lora": LOG}),
    "grad_vs_hessian": lambda: viz.grad_vs_hessian({"mp_lora": LOG}, {"mp_lora": {"pcc_grad_hessian": 0.3}}),
    "roc_records": lambda: viz_privacy.roc_records({"lora": RECORD, "base": RECORD}),
    "roc_models": lambda: viz_privacy.roc_models({("lora", 0): {"audit": {"pia": RECORD, "sima": RECORD}}}, ["lora"],
                                                 ["pia", "sima"]),
    "privacy_utility": lambda: viz_privacy.privacy_utility({"lora": {"mean": {"fid": 1.0, "asr": 0.6},
                                                                     "sem": {"fid": 0.1, "asr": 0.02},
                                                                     "per_split": [{"fid": 1.1, "asr": 0.61}]}}),
    "ablation_curves": lambda: viz_privacy.ablation_curves(
        {"lam": [("lam 1", {"fid": 1.0, "asr": 0.6, "auc_dev": 0.2}), ("lam 0.1", {"fid": 2.0, "asr": 0.5,
                                                                                   "auc_dev": 0.1})]},
        {"lora": {"fid": 0.5, "asr": 0.7, "auc_dev": 0.4}}),
    "attack_matrix": lambda: viz_privacy.attack_matrix({"lora": {"pia": {"auc": 0.7, "ci": {"auc": [0.6, 0.8]}}},
                                                        "base": {"pia": {"auc": 0.5, "ci": {"auc": [0.4, 0.6]}}}},
                                                       ["pia", "sima"]),
    "frontier": lambda: viz_privacy.frontier(_frontier_record()),
}


@pytest.mark.parametrize("name", FIGURES)
def test_every_figure_draws(name):
    fig = FIGURES[name]()
    assert isinstance(fig, matplotlib.figure.Figure) and fig.axes
    matplotlib.pyplot.close(fig)


def test_save_writes_a_png_and_returns_the_figure_outside_a_notebook(tmp_path, monkeypatch):
    monkeypatch.setenv("SMPLORA_OUTPUTS", str(tmp_path))
    fig = viz.image_grid(IMAGES)
    assert viz.save(fig, "toy", "grid") is fig and (paths.stage_dir("toy") / "grid.png").stat().st_size > 0


def test_save_frontiers_names_each_figure_by_attack_and_utility(tmp_path, monkeypatch):
    monkeypatch.setenv("SMPLORA_OUTPUTS", str(tmp_path))
    record = {a: {"fid": {**_frontier_record(), "attack": a}} for a in ("loss_map_mlp", "sima")}
    viz_privacy.save_frontiers(record, "toy")
    assert sorted(p.name for p in paths.stage_dir("toy").glob("*.png")) == ["frontier_mlp_fid.png",
                                                                           "frontier_strongest_fid.png"]

