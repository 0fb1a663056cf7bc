"""Solutions to notebook 02's exercises. Each takes what the notebook has built (``splits``, ``evals``, ``s0``)
and returns what to look at; ``tests/test_solutions.py`` runs every one on tiny inputs."""
import numpy as np

from smplora_nb import claims, metrics


def exercise_1(splits, seed=0):
    """An attack that reads nothing (random scores) still lands some way from AUC 0.5 on a few dozen images; its
    bootstrap interval contains 0.5, so its verdict is "not detected", never "leaks". With fewer than 100
    non-members no FPR below 1% exists between 0 and 1/n, so TPR at 1% FPR is ``None`` (not measurable)."""
    rng = np.random.default_rng(seed)
    sm, sn = rng.normal(size=len(splits["member_te"])), rng.normal(size=len(splits["nonmember_te"]))
    ci = metrics.bootstrap_ci(sm, sn, n_boot=500)["auc"]
    return {**metrics.membership(sm, sn, 0.0), "auc_ci": ci, "verdict": claims.verdict(ci)}


def exercise_2(evals, s0):
    """Loss@t chose its timestep on D_aux alone: the one whose AUC is furthest from 0.5. Small t usually leaks
    most: there the noise is light, the model mostly has to reproduce the image itself, and a memorised image
    is denoised with a visibly smaller loss than an unseen one."""
    by_t = evals["lora", s0]["audit"]["loss_at_t"]["chosen_on_aux"]["aux_auc_by_t"]
    return sorted(by_t.items(), key=lambda kv: -abs(kv[1] - 0.5))       # [(timestep, AUC on D_aux), ...]


def exercise_3(evals, s0):
    """The base model is the control: it never saw a member, so an attack on it must not find members. Each
    verdict reads the 95% interval of the AUC on D_te; the ASR is recomputed from the D_te scores and the
    threshold fixed on D_aux, exactly as the record holds it."""
    out = {}
    for model in ("lora", "base"):
        rec = evals[model, s0]["audit"]["loss_map_mlp"]
        threshold = rec["chosen_on_aux"]["threshold"]
        asr = metrics.membership(rec["scores_member"], rec["scores_nonmember"], threshold)["asr"]
        out[model] = {"verdict": claims.verdict(rec["ci"]["auc"]), "asr": asr, "asr_recorded": rec["asr"]}
    return out
