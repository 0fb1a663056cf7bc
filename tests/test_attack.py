"""Attacks on toy loss maps: the paper's MLP and Loss@t find a planted membership signal; their knobs come from D_aux."""
import numpy as np
import pytest
import torch

from smplora_nb import attack, metrics


def _toy(n, member, gen, informative=2, k=4):
    maps = torch.rand((n, k, 4, 2, 2), generator=gen) + 0.5                 # (N, K, 4, h, w)
    if member:
        maps[:, informative] *= 0.5                                         # members: lower loss at one timestep
    return maps


def test_mlp_architecture_is_the_papers():
    layers = [m for m in attack.LossMapMLP(64).net]
    linears = [m for m in layers if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(64, 512), (512, 256), (256, 2)]
    assert [m.p for m in layers if isinstance(m, torch.nn.Dropout)] == [0.5, 0.5]


def test_mlp_learns_a_separable_toy_case():
    gen = torch.Generator().manual_seed(0)
    aux_m, aux_n = _toy(60, True, gen), _toy(60, False, gen)
    te_m, te_n = _toy(50, True, gen), _toy(50, False, gen)
    f = attack.map_features
    att = attack.fit_mlp(f(aux_m), f(aux_n), epochs=30, seed=0)
    res = metrics.membership(att.score(f(te_m)), att.score(f(te_n)), att.threshold)
    assert res["auc"] > 0.95 and res["asr"] > 0.85
    assert att.chosen_epoch == int(np.argmax(att.history["val_acc"]))      # chosen on held-out D_aux, not D_te


def test_mlp_is_deterministic_under_a_seed():
    gen = torch.Generator().manual_seed(1)
    aux_m, aux_n = _toy(20, True, gen), _toy(20, False, gen)
    f = attack.map_features
    a = attack.fit_mlp(f(aux_m), f(aux_n), epochs=3, seed=5).score(f(aux_m))
    b = attack.fit_mlp(f(aux_m), f(aux_n), epochs=3, seed=5).score(f(aux_m))
    assert np.array_equal(a, b)


def test_loss_at_t_picks_the_informative_timestep_on_aux():
    gen = torch.Generator().manual_seed(0)
    aux_m, aux_n = _toy(40, True, gen), _toy(40, False, gen)
    att = attack.fit_loss_at_t(aux_m, aux_n, timesteps=(10, 20, 30, 40))
    assert att.t_index == 2 and att.timestep == 30
    te = metrics.membership(att.score(_toy(30, True, gen)), att.score(_toy(30, False, gen)), att.threshold)
    assert te["auc"] > 0.95 and te["asr"] > 0.85


def test_best_threshold_maximises_balanced_accuracy():
    # t=6: members 3/4, non-members 3/3 -> 0.875 beats t=4: 4/4 and 2/3 -> 0.833
    assert attack.best_threshold(np.array([4.0, 6.0, 7.0, 8.0]), np.array([1.0, 5.0, 2.0])) == 6.0


def test_audit_fits_every_knob_on_aux_only():
    """Replacing D_te changes the reported metrics but none of the knobs: nothing is chosen on D_te."""
    gen = torch.Generator().manual_seed(2)
    def sets(k):
        return {"member_aux": _toy(40, True, gen, 0, k), "nonmember_aux": _toy(40, False, gen, 0, k),
                "member_te": _toy(30, True, gen, 0, k), "nonmember_te": _toy(30, False, gen, 0, k)}

    maps = {"fixed_t": sets(4), "random_t": sets(1)}
    other = {kind: {**m, "member_te": m["nonmember_te"], "nonmember_te": m["member_te"]} for kind, m in maps.items()}
    a, b = attack.audit(maps, seed=0, mlp_epochs=5), attack.audit(other, seed=0, mlp_epochs=5)
    assert set(a) == set(attack.ATTACKS)
    for name in attack.ATTACKS:
        assert a[name]["chosen_on_aux"] == b[name]["chosen_on_aux"]
        assert a[name]["auc"] == pytest.approx(1 - b[name]["auc"])      # swapped D_te labels: the AUC flips
    assert a["loss_map_mlp"]["auc"] > 0.9 and a["loss_at_t"]["auc"] > 0.9


def test_the_papers_exact_evaluation_recipe():
    """1 + 1 balanced batches, 100 epochs, Adam lr 1e-5, weight decay 1e-4, the raw map: about 75 steps an epoch
    on 100 + 100 D_aux maps, and a learning curve per epoch."""
    assert attack.PAPER_RECIPE == dict(epochs=100, lr=1e-5, batch_size=2, weight_decay=1e-4, standardize=False)
    gen = torch.Generator().manual_seed(2)
    maps = {k: _toy(20, k.startswith("member"), gen, informative=0, k=1) for k in ("member_aux", "nonmember_aux", "member_te",
                                                                     "nonmember_te")}
    out = attack.audit({"fixed_t": {k: _toy(20, k.startswith("member"), gen) for k in maps}, "random_t": maps},
                       mlp_epochs=2)
    assert list(out) == list(attack.ATTACKS)
    hist = out["loss_map_mlp_paper"]["chosen_on_aux"]["history"]
    assert len(hist["train_loss"]) == len(hist["val_acc"]) == len(hist["train_acc"]) == 100
    assert out["loss_map_mlp_ref"]["auc"] == 0.5                          # the base against itself: no signal


def test_reference_mlp_reads_what_lora_changed():
    """The calibrated feature log l - log l_base removes each image's own difficulty: a membership signal hidden
    under large per-image differences appears only after calibration."""
    gen = torch.Generator().manual_seed(3)
    def sets(n):
        base = torch.exp(3 * torch.randn((n, 4, 4, 2, 2), generator=gen))   # per-image difficulty, heavy spread
        return base, base
    maps, ref = {}, {}
    for k in ("member_aux", "nonmember_aux", "member_te", "nonmember_te"):
        b, _ = sets(60)
        ref[k] = b
        maps[k] = b * (0.8 if k.startswith("member") else 1.0)            # LoRA lowered members' loss by 20%
    x = {k: attack.map_features(maps[k], ref[k]) for k in maps}
    assert (x["member_te"] - float(np.log(0.8))).abs().median() < 1e-3      # up to the log's 1e-6 offset
    att = attack.fit_mlp(x["member_aux"], x["nonmember_aux"], epochs=20)
    assert metrics.membership(att.score(x["member_te"]), att.score(x["nonmember_te"]), 0.5)["auc"] > 0.99
