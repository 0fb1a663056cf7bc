"""Solutions to notebook 06's exercises. Each takes what the notebook has built (``cfg``, ``evals``, ``s0``,
``strongest``) and returns what to look at; ``tests/test_solutions.py`` runs every one on tiny inputs."""
import math

from smplora_nb import claims, dp


def exercise_1(evals, s0):
    """Each threshold attack chose its timestep on D_aux, separately for each model: where LoRA and SMP-LoRA
    differ, SMP-LoRA moved the membership signal to other timesteps rather than removing it."""
    return {m: {a: r["chosen_on_aux"]["timestep"] for a, r in evals[m, s0]["audit"].items()
                if "timestep" in r["chosen_on_aux"]} for m in ("lora", "smp_lora")}


def exercise_2(cfg, epochs=(10, 30, 90), epsilon=8.0):
    """DP-SGD spends its budget per step: at the same epsilon, more epochs need a larger noise multiplier, so each
    step carries less signal. Whether 90 noisier epochs beat 30 in image quality is the run's question (notebook 06
    with ``dp_epochs = 90``); the accountant only says how much noise each costs."""
    n = cfg.split.member_aux + cfg.split.member_te                       # |D_tr|
    bs = min(cfg.train.batch_size, n)
    steps = {e: e * math.ceil(n / bs) for e in epochs}
    q = bs / n                                                            # Poisson sampling rate
    return {e: dp.noise_multiplier(epsilon, cfg.train.dp_delta, q, s) for e, s in steps.items()}


def exercise_3(evals, s0, strongest):
    """An attack turns into a lower bound on epsilon (DP auditing): LoRA's strongest attack gives a bound above 0
    only if its TPR is well above its FPR. Even a perfect attack cannot prove more than the set sizes allow:
    with a few dozen non-members the bound stays small, whatever the model."""
    rec = evals["lora", s0]["audit"][strongest]
    found = claims.empirical_epsilon(rec["scores_member"], rec["scores_nonmember"], rec["chosen_on_aux"]["threshold"])
    perfect = claims.empirical_epsilon([1.0] * len(rec["scores_member"]), [0.0] * len(rec["scores_nonmember"]), 0.5)
    return {"lora": found["epsilon_lower_bound"], "perfect_attack": perfect["epsilon_lower_bound"]}
