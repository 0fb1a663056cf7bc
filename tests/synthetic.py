"""Synthetic records for the tests of the analyses, the claims and the record builders: attack records with a chosen
AUC, evaluations in ``evaluate.evaluate``'s shape, training logs, a stand-in bench and notebook 06's design."""
from types import SimpleNamespace

import numpy as np
from scipy.stats import norm

from smplora_nb import attack, config, grids, metrics, powered, study
from smplora_nb.attack import PAPER_ATTACK as PAPER

ATTACKS = ("loss_map_mlp", "loss_map_mlp_ref", "loss_at_t", "loss_at_t_ref", "sima")
SMALL = (58, 50)           # one split's D_te of the tiny demo before issue 27: "defends" cannot pass
LARGE = (300, 300)         # six splits of these: "defends" passes at AUC 0.5 with power to spare
POWERED = tuple(range(6))


def attack_record(auc, seed, sizes=SMALL, aux_auc=None):
    """An attack record whose D_te (and D_aux) scores have AUC about ``auc``: members ~ N(d, 1), non-members
    ~ N(0, 1). At ``auc`` 0.5 the D_te scores are an exact null: both sides the normal quantiles of their size, so
    every split's AUC is exactly 0.5 (a model that learnt nothing, without the luck of a draw)."""
    rng, d = np.random.default_rng(seed), np.sqrt(2) * norm.ppf(auc)
    m, n = sizes
    sm, sn = rng.normal(d, 1, m), rng.normal(0, 1, n)
    if auc == 0.5:
        sm, sn = norm.ppf((np.arange(m) + 0.5) / m), norm.ppf((np.arange(n) + 0.5) / n)
    return {**metrics.membership(sm, sn, d / 2),                      # the balanced threshold
            "chosen_on_aux": {"timestep": 100, "sign": 1, "threshold": d / 2,
                              "aux_auc_by_t": {"50": 0.5, "100": auc if aux_auc is None else aux_auc}},
            "scores_member": sm.tolist(), "scores_nonmember": sn.tolist(),
            "aux_scores_member": rng.normal(d, 1, m).tolist(), "aux_scores_nonmember": rng.normal(0, 1, n).tolist()}


def evaluation(aucs: dict, seed=0, fid=1.0, loss=0.1, sizes=SMALL):
    """One evaluation (``evaluate.evaluate``'s shape): ``aucs`` = {attack: AUC}; held-out loss about ``loss``."""
    image_loss = loss + 0.005 * np.random.default_rng(seed + 99).standard_normal(sizes[1])
    return {"audit": {a: attack_record(v, seed + i, sizes) for i, (a, v) in enumerate(aucs.items())},
            "quality": {"fid": fid, "kid": 0.1}, "mean_loss": {"nonmember_te": float(image_loss.mean())},
            "image_loss": {"member_te": [loss] * sizes[0], "nonmember_te": image_loss.tolist()}}


def evaluations(per_model: dict, ks=(0, 1, 2), sizes=SMALL, attacks=ATTACKS):
    """``{(model, k): evaluation}``, ``per_model`` = {model: (AUC of every attack, or {attack: AUC}; FID)}."""
    return {(m, k): evaluation(auc if isinstance(auc, dict) else {a: auc for a in attacks}, 100 * k + 10 * i, fid,
                          sizes=sizes) for i, (m, (auc, fid)) in enumerate(per_model.items()) for k in ks}


def pooled_design(per_model: dict, ks, sizes, attacks=ATTACKS, n_boot=200):
    """(pooled records, Pooled objects, evals) of ``evaluations`` (``powered.matrix``, one draw per design)."""
    evals = evaluations(per_model, ks, sizes, attacks)
    return (*powered.matrix(evals, study.groups(evals), attacks, powered.draws(evals, n_boot)), evals)


class FakeBench:
    """What the record builders read of a ``bench.Bench``."""

    def __init__(self):
        self.cfg = config.make("tiny")
        self.extractor = SimpleNamespace(description="synthetic features")

    def seed(self, key) -> int:
        return self.cfg.train.seed + grids.split_index(key)

    def split(self, k: int) -> dict:
        return {name: [SimpleNamespace(id=f"{name}-{k}-{i}") for i in range(getattr(self.cfg.split, name))]
                for name in ("member_aux", "member_te", "nonmember_aux", "nonmember_te")}


def train_log(cv=0.3, dp=None):
    """A ``train_log.json`` with a gradient norm of coefficient of variation about ``cv``."""
    g = 1 + cv * np.random.default_rng(0).standard_normal(40)
    return {"steps": 40, "epochs": 4, "l_ada": np.linspace(1, 0.5, 40).tolist(), "grad_norm": np.abs(g).tolist(),
            "seconds_this_session": 2.0, **({"dp": dp} if dp else {})}


def design_06(smp=(0.5, 0.5, 1.5), dp=(0.75, 0.5, 2.5), base=0.5, lora=0.95, ks=POWERED, sizes=LARGE):
    """Notebook 06's evaluations: every model on every split, ``(AUC of every attack, held-out loss, FID)`` for
    SMP-LoRA and DP-LoRA; the base model's reference attacks constant (adapted minus base is 0); LoRA's snapshot at
    epoch 5 between the base model and the final LoRA; sima strongest on LoRA's D_aux."""
    aucs = lambda v: {a: v for a in attack.ATTACKS}                    # noqa: E731
    evals, snaps = {}, {}
    for k in ks:
        s = 1000 * k
        evals["base", k] = evaluation(aucs(base), s, 3.0, 1.0, sizes)
        for a in ("loss_map_mlp_ref", "loss_at_t_ref"):
            evals["base", k]["audit"][a].update(scores_member=[0.0] * sizes[0], scores_nonmember=[0.0] * sizes[1])
        evals["lora", k] = evaluation(aucs(lora), s + 100, 1.0, 0.4, sizes)
        evals["lora", k]["audit"]["sima"]["chosen_on_aux"]["aux_auc_by_t"]["100"] = 0.99
        evals["smp_lora", k] = evaluation(aucs(smp[0]), s + 200, smp[2], smp[1], sizes)
        evals["dp_lora_eps8", k] = evaluation(aucs(dp[0]), s + 300, dp[2], dp[1], sizes)
        snaps["lora_snapshot", 5, k] = evaluation({PAPER: 0.7, "sima": 0.7}, s + 400, 2.0, 0.6, sizes)
    logs = {key: train_log(dp={"delta": 1e-5, "epsilon_spent": 8.0} if key[0].startswith("dp") else None)
            for key in evals if key[0] != "base"}
    groups = study.groups(evals, ["base", "lora", "smp_lora", "dp_lora_eps8"])
    curve = {0: [("base", k) for k in ks], 5: [("lora_snapshot", 5, k) for k in ks], 10: [("lora", k) for k in ks]}
    return {**evals, **snaps}, logs, groups, curve


def map_evals(models, ks, sizes=SMALL):
    aucs = {"base": 0.5, "lora": 0.95, "mp_lora": 0.55, "smp_lora": 0.6, "lora_early_stop": 0.8,
            "smp_lora_two_forwards": 0.6, "mp_lora_clip": 0.55}
    return {(m, k): evaluation({a: aucs[m] for a in attack.MAP_ATTACKS}, 100 * k + 10 * i, 1.0 + i, 1.0 - 0.1 * i, sizes)
            for i, m in enumerate(models) for k in ks}


def utility_evals(lora_fids=(1.0, 1.2), base_fid=3.0, lora_loss=(0.10, 0.11), base_loss=0.15, acc=(0.9, 0.8)):
    evals = {}
    for i, s in enumerate((1, 2)):
        evals["lora", s] = evaluation({"sima": 0.9}, fid=lora_fids[i], loss=lora_loss[i])
        evals["base", s] = evaluation({"sima": 0.5}, fid=base_fid, loss=base_loss)
        evals["lora", s]["mean_loss"]["nonmember_te"] = lora_loss[i]
        evals["base", s]["mean_loss"]["nonmember_te"] = base_loss
        evals["lora", s]["quality"]["digit_accuracy"], evals["base", s]["quality"]["digit_accuracy"] = acc[i], 0.1
    return evals
