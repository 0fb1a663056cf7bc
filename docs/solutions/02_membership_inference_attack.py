"""Solutions to notebook 02's exercises. Each takes what the notebook has built (``splits``, ``evals``, ``s0``)
and returns what to look at; ``tests/test_solutions.py`` runs every one on tiny inputs."""
import numpy as np

from smplora_nb import metrics, pooled


def exercise_1(splits, seed=0):
    """An attack that reads nothing (random scores) still lands some way from AUC 0.5 on a few dozen images; its
    bootstrap interval contains 0.5 (all but about 5% of the time), so it is not "leaks". Nor can it be "defends":
    at one split of 58 members and 200 non-members even an estimate of exactly 0.5 leaves the TOST interval's
    auc_dev upper end above the margin 0.1, so the verdict is "not testable at this size" (its power figures say
    how many splits would do). TPR at 1% FPR needs at least 100 non-members: with fewer it is ``None`` (not
    measurable)."""
    rng = np.random.default_rng(seed)
    sm, sn = rng.normal(size=len(splits["member_te"])), rng.normal(size=len(splits["nonmember_te"]))
    record = pooled.single(sm, sn, n_boot=500)
    return {**metrics.membership(sm, sn, 0.0), "auc_ci": record["ci"]["auc"], "verdict": record["verdict"],
            "power": record["power"]}


def exercise_2(evals, s0):
    """Loss@t chose its timestep on D_aux alone: the one whose AUC is furthest from 0.5. Small t usually leaks
    most: there the noise is light, the model mostly has to reproduce the image itself, and a memorised image
    is denoised with a visibly smaller loss than an unseen one."""
    by_t = evals["lora", s0]["audit"]["loss_at_t"]["chosen_on_aux"]["aux_auc_by_t"]
    return sorted(by_t.items(), key=lambda kv: -abs(kv[1] - 0.5))       # [(timestep, AUC on D_aux), ...]


def exercise_3(evals, s0):
    """The base model is the control: it never saw a member, so an attack on it must not find members. Each
    verdict reads the bootstrap intervals of the AUC on D_te of split ``s0`` (``pooled.single``: "leaks" when the
    95% interval excludes 0.5); the ASR is recomputed from the D_te scores and the threshold fixed on D_aux,
    exactly as the record holds it."""
    out = {}
    for model in ("lora", "base"):
        rec = evals[model, s0]["audit"]["loss_map_mlp"]
        threshold = rec["chosen_on_aux"]["threshold"]
        asr = metrics.membership(rec["scores_member"], rec["scores_nonmember"], threshold)["asr"]
        out[model] = {"verdict": pooled.single(rec["scores_member"], rec["scores_nonmember"])["verdict"], "asr": asr,
                      "asr_recorded": rec["asr"]}
    return out
