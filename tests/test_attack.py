"""The attack stack: the paper's MLP and Loss@t find a planted membership signal; every knob comes from D_aux; one
registry, one record shape, one cache per (model, attack); the reference attacks read the base model."""
import numpy as np
import pytest
import torch

from smplora_nb import attack, labels, metrics, mlp, scores, sets


def _toy(n, member, gen, informative=2, k=4):
    maps = torch.rand((n, k, 4, 2, 2), generator=gen) + 0.5                 # (N, K, 4, h, w)
    if member:
        maps[:, informative] *= 0.5                                         # members: lower loss at one timestep
    return maps


def test_mlp_architecture_is_the_papers():
    layers = [m for m in mlp.LossMapMLP(64).net]
    linears = [m for m in layers if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in linears] == [(64, 512), (512, 256), (256, 2)]
    assert [m.p for m in layers if isinstance(m, torch.nn.Dropout)] == [0.5, 0.5]


def test_mlp_learns_a_separable_toy_case():
    gen = torch.Generator().manual_seed(0)
    aux_m, aux_n = _toy(60, True, gen), _toy(60, False, gen)
    te_m, te_n = _toy(50, True, gen), _toy(50, False, gen)
    f = mlp.map_features
    att = mlp.fit_mlp(f(aux_m), f(aux_n), epochs=30, seed=0)
    res = metrics.membership(att.score(f(te_m)), att.score(f(te_n)), att.threshold)
    assert res["auc"] > 0.95 and res["asr"] > 0.85
    assert att.chosen_epoch == int(np.argmax(att.history["val_acc"]))      # chosen on held-out D_aux, not D_te


def test_mlp_is_deterministic_under_a_seed():
    gen = torch.Generator().manual_seed(1)
    aux_m, aux_n = _toy(20, True, gen), _toy(20, False, gen)
    f = mlp.map_features
    a = mlp.fit_mlp(f(aux_m), f(aux_n), epochs=3, seed=5).score(f(aux_m))
    b = mlp.fit_mlp(f(aux_m), f(aux_n), epochs=3, seed=5).score(f(aux_m))
    assert np.array_equal(a, b)


def test_loss_at_t_picks_the_informative_timestep_on_aux():
    gen = torch.Generator().manual_seed(0)
    x = {k: attack._loss_scores(_toy(40, k.startswith("member"), gen)) for k in ("member_aux", "nonmember_aux")}
    att = attack.ATTACKS["loss_at_t"]
    fitted = scores.fit(att.name, (10, 20, 30, 40), x["member_aux"], x["nonmember_aux"])
    assert fitted.column == 2 and fitted.timestep == 30 and fitted.sign == 1
    te_m, te_n = (attack._loss_scores(_toy(30, m, gen)) for m in (True, False))
    te = metrics.membership(fitted.score(te_m), fitted.score(te_n), fitted.threshold)
    assert te["auc"] > 0.95 and te["asr"] > 0.85


def test_best_threshold_maximises_balanced_accuracy():
    # t=6: members 3/4, non-members 3/3 -> 0.875 beats t=4: 4/4 and 2/3 -> 0.833
    assert scores.best_threshold(np.array([4.0, 6.0, 7.0, 8.0]), np.array([1.0, 5.0, 2.0])) == 6.0


def test_one_registry_every_attack_fits_on_aux_and_has_a_label():
    assert set(attack.ATTACKS) == {"loss_map_mlp", "loss_map_mlp_paper", "loss_map_mlp_ref", "loss_at_t",
                                   "loss_at_t_ref", "pia", "pian", "secmi", "sima"}
    assert {a for a, x in attack.ATTACKS.items() if x.reference} == {"loss_map_mlp_ref", "loss_at_t_ref"}
    assert set(attack.MAP_ATTACKS) | set(scores.SCORES) == set(attack.ATTACKS)
    assert len(set(labels.ATTACKS.values())) == len(attack.ATTACKS) == len({a.label for a in attack.ATTACKS.values()})
    assert not hasattr(scores, "ATTACKS") and not hasattr(scores, "audit")   # no second registry, no second audit


class _FakeProbe:
    """Inputs of every attack from toy maps, with ``te_swapped`` exchanging D_te's members and non-members."""

    def __init__(self, seed=2, te_swapped=False, base_like=False):
        gen = torch.Generator().manual_seed(seed)
        def sets(k, inf=0):
            return {"member_aux": _toy(40, True, gen, inf, k), "nonmember_aux": _toy(40, False, gen, inf, k),
                    "member_te": _toy(30, True, gen, inf, k), "nonmember_te": _toy(30, False, gen, inf, k)}
        self.fixed, self.rand = sets(4), sets(1)
        self.ref = self.fixed if base_like else {k: torch.ones_like(v) for k, v in self.fixed.items()}
        self.scored = {s: {k: attack._loss_scores(v)[:, :len(scores.CANDIDATES[s])] for k, v in self.fixed.items()}
                       for s in scores.SCORES}
        if te_swapped:
            for d in (self.fixed, self.rand, self.ref, *self.scored.values()):
                d["member_te"], d["nonmember_te"] = d["nonmember_te"], d["member_te"]

    def maps(self):
        return {"fixed_t": self.fixed, "random_t": self.rand}

    def base_maps(self):
        return {"fixed_t": self.ref}

    def inputs(self, reads):
        if reads in scores.SCORES:
            return self.scored[reads]
        return {k: attack.Probe._input(self, reads, k) for k in self.fixed}


def _splits(n=(40, 30, 40, 30)):
    from smplora_nb.data import Item
    names = ("member_aux", "member_te", "nonmember_aux", "nonmember_te")
    return {name: [Item(f"{name}{i}", np.zeros((2, 2, 3), np.uint8), "a digit", sha256=f"{name}{i}") for i in range(k)]
            for name, k in zip(names, n)}


def test_audit_fits_every_knob_on_aux_only_and_records_have_one_shape(tmp_path):
    """Replacing D_te changes the reported metrics but none of the knobs: nothing is chosen on D_te."""
    splits = _splits()
    a = attack.audit("toy", tmp_path / "a", splits, tuple(attack.ATTACKS), mlp_epochs=5, n_boot=20, shared=_FakeProbe())
    b = attack.audit("toy", tmp_path / "b", splits, tuple(attack.ATTACKS), mlp_epochs=5, n_boot=20,
                     shared=_FakeProbe(te_swapped=True))
    assert list(a) == list(attack.ATTACKS)
    shape = set(a["loss_map_mlp"])
    for name in attack.ATTACKS:
        assert set(a[name]) == shape                                     # one record shape for every attack
        assert a[name]["chosen_on_aux"] == b[name]["chosen_on_aux"]
        assert a[name]["auc"] == pytest.approx(1 - b[name]["auc"])      # swapped D_te labels: the AUC flips
    assert {"ci", "chosen_on_aux", "scores_member", "asr", "auc", "auc_dev", "tpr_at_5pct_fpr"} <= shape
    assert a["loss_map_mlp"]["auc"] > 0.9 and a["loss_at_t"]["auc"] > 0.9 and a["loss_at_t_ref"]["auc"] > 0.9


def test_audit_caches_one_record_per_model_and_attack(tmp_path):
    splits = _splits()
    first = attack.audit("toy", tmp_path / "r", splits, ("loss_at_t",), n_boot=20, shared=_FakeProbe())
    files = list((tmp_path / "r" / "eval" / "audit").glob("*.json"))
    assert len(files) == 1 and files[0].name.startswith("loss_at_t_")

    class Boom(_FakeProbe):
        def inputs(self, reads):
            if reads == "loss":
                raise AssertionError("recomputed a cached record")
            return super().inputs(reads)

    both = attack.audit("toy", tmp_path / "r", splits, ("loss_at_t", "pia"), n_boot=20, shared=Boom())
    assert both["loss_at_t"] == first["loss_at_t"] and "pia" in both
    assert attack.cached("toy", tmp_path / "r", splits, ("loss_at_t", "pia"), n_boot=20)
    assert not attack.cached("toy", tmp_path / "r", splits, ("loss_map_mlp",), n_boot=20)
    with pytest.raises(ValueError, match="unknown attack"):
        attack.audit("toy", tmp_path / "r", splits, ("gsa",))


def test_the_papers_exact_evaluation_recipe(tmp_path):
    """1 + 1 balanced batches, 100 epochs, Adam lr 1e-5, weight decay 1e-4, the raw map, and a learning curve."""
    assert mlp.PAPER_RECIPE == dict(epochs=100, lr=1e-5, batch_size=2, weight_decay=1e-4, standardize=False)
    assert attack.ATTACKS["loss_map_mlp_paper"].recipe(mlp_epochs=3) == mlp.PAPER_RECIPE   # not the other MLPs' knob
    splits = _splits((10, 10, 10, 10))
    probe = _FakeProbe(base_like=True)
    for d in (probe.fixed, probe.rand):
        for k in d:
            d[k] = d[k][:10]
    out = attack.audit("toy", tmp_path, splits, ("loss_map_mlp_paper", "loss_map_mlp_ref", "loss_at_t_ref"),
                       n_boot=10, shared=probe)
    hist = out["loss_map_mlp_paper"]["chosen_on_aux"]["history"]
    assert len(hist["train_loss"]) == len(hist["val_acc"]) == len(hist["train_acc"]) == 100
    assert out["loss_map_mlp_ref"]["auc"] == 0.5                          # the base against itself: no signal
    assert out["loss_at_t_ref"]["scores_member"] == [0.0] * 10


def test_reference_mlp_reads_what_lora_changed():
    """The calibrated feature log l - log l_base removes each image's own difficulty: a membership signal hidden
    under large per-image differences appears only after calibration."""
    gen = torch.Generator().manual_seed(3)
    maps, ref = {}, {}
    for k in ("member_aux", "nonmember_aux", "member_te", "nonmember_te"):
        ref[k] = torch.exp(3 * torch.randn((60, 4, 4, 2, 2), generator=gen))   # per-image difficulty, heavy spread
        maps[k] = ref[k] * (0.8 if k.startswith("member") else 1.0)            # LoRA lowered members' loss by 20%
    x = {k: mlp.map_features(maps[k], ref[k]) for k in maps}
    assert (x["member_te"] - float(np.log(0.8))).abs().median() < 1e-3      # up to the log's 1e-6 offset
    att = mlp.fit_mlp(x["member_aux"], x["nonmember_aux"], epochs=20)
    assert metrics.membership(att.score(x["member_te"]), att.score(x["nonmember_te"]), 0.5)["auc"] > 0.99
    plain = mlp.map_features(maps["member_aux"])
    assert (plain.std(0) > 1.0).all()                                     # uncalibrated: the difficulty dominates


def test_reference_attacks_read_the_base_model_with_the_adapters_switched_off(tiny_setup):
    """The base maps come from the adapted pipeline with its LoRA disabled, which must be exactly the base model;
    loss_at_t_ref is then Loss@t(adapted) - Loss@t(base) at the same t and noise."""
    from smplora_nb import config, runs

    from smplora_nb import models

    cfg, _, splits, base = tiny_setup
    run = runs.train(config.replace(cfg, epochs=2), splits, base, progress=False)
    adapted = attack.Probe(base, run, splits)
    fresh = attack.probe(models.load_pipeline(base).components, splits, source=base)      # the base model itself
    for kind in fresh:
        for k in sets.PRIVATE:
            assert torch.equal(adapted.base_maps()[kind][k], fresh[kind][k])            # adapters off: bit for bit
    assert len(list(attack.folder(base, None).glob("maps_*.safetensors"))) == 1        # probed once per base
    real_probe, attack.probe = attack.probe, None                                      # a second run reads the file
    try:
        plain = attack.Probe(base, None, splits)
        assert torch.equal(attack.Probe(base, run, splits).base_maps()["fixed_t"]["member_te"],
                           plain.maps()["fixed_t"]["member_te"])
    finally:
        attack.probe = real_probe
    for k in ("member_te", "nonmember_aux"):
        assert not torch.equal(adapted.maps()["fixed_t"][k], plain.maps()["fixed_t"][k])
        assert np.array_equal(adapted.inputs("loss_ref")[k],
                              attack._loss_scores(adapted.maps()["fixed_t"][k]) - attack._loss_scores(plain.maps()["fixed_t"][k]))
    out = attack.audit(base, None, splits, ("loss_at_t_ref", "sima"), n_boot=20)
    assert out["loss_at_t_ref"]["scores_member"] == [0.0] * 6            # the base against itself: no signal
    assert out["sima"]["chosen_on_aux"]["timestep"] in scores.CANDIDATES["sima"]
    assert out["sima"]["ci"]["tpr_at_1pct_fpr"] is None                  # 6 non-members: not measurable


def test_the_frontier_reads_the_papers_attack_and_the_strongest_once_each():
    assert attack.with_paper("sima") == (attack.PAPER_ATTACK, "sima")
    assert attack.with_paper(attack.PAPER_ATTACK) == (attack.PAPER_ATTACK,)
