"""Solutions to notebook 04's exercises. Each takes what the notebook has built (``cfg``, ``evals``, ``s0``) and
returns what to look at; ``tests/test_solutions.py`` runs every one on tiny inputs."""
import math

import torch

from smplora_nb import attack, losses, pooled, study


def exercise_1(lams=(1.0, 0.05)):
    """SMP-LoRA's privacy pressure is how much its rescaling factor ``1 / (1 - lam G + delta)`` changes between a
    batch the proxy reads as members (G near 0: full steps) and one it reads as non-members (G = log 0.1). At
    the paper's ``lam`` 0.05 the factor hardly moves, so SMP-LoRA is nearly plain LoRA; SD v1.5's loss map has
    64 times more elements than the tiny one, which is why the paper could use a smaller ``lam``."""
    gain = torch.tensor([math.log(0.99), math.log(0.5), math.log(0.1)])     # confident member, chance, non-member
    return {lam: losses.rescale_factor(gain, lam).tolist() for lam in lams}


def exercise_2(evals, s0):
    """SMP-LoRA was trained against one attack family (a loss-map MLP); the verdict of every map attack on it
    shows whether the protection carries over to Loss@t and to the reference attacks (the paper's Table 11). On
    one split (``s0``) of 58 members and 200 non-members "defends" (an equivalence test: the 90% interval of the
    AUC inside 0.5 +- 0.05) cannot pass, so an attack that finds nothing reads "not testable at this size";
    "leaks" still can. The notebook's claims pool the member splits."""
    audit = evals["smp_lora", s0]["audit"]
    return {a: pooled.single(audit[a]["scores_member"], audit[a]["scores_nonmember"])["verdict"]
            for a in attack.MAP_ATTACKS if a in audit}


def exercise_3(evals):
    """Early stopping is a defence too: LoRA stopped when its training loss reaches SMP-LoRA's final one adapts
    about as far. Compare their AUC under the paper's attack and their FID, each a mean over member splits."""
    summary = study.summaries(evals, ["smp_lora", "lora_early_stop"])
    return {m: {k: s["mean"][k] for k in ("auc", "fid")} for m, s in summary.items()}
