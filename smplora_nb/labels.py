"""The ground floor of the vocabulary: every key of the series and the words a reader sees for it (smplora_nb, arXiv
2402.11989 companion). Records use the keys; tables, figures and the attack registry read the words from here, so
one table holds them all. Imports nothing of the package (docs/glossary.md is checked against it by a test).
"""
from __future__ import annotations

SETS = ("public", "member_aux", "member_te", "nonmember_aux", "nonmember_te")      # the paper's sets, and public
METHODS = ("lora", "mp_lora", "smp_lora", "dp_lora")                                # training methods
PAPER_ATTACK = "loss_map_mlp"                                                       # the paper's attack
MODELS = {"base": "base model (no LoRA)", "lora": "LoRA", "lora_early_stop": "LoRA stopped early",
          "lora_snapshot": "LoRA along training", "mp_lora": "MP-LoRA", "mp_lora_clip": "MP-LoRA + clipping",
          "mp_lora_normalize": "MP-LoRA + normalisation", "smp_lora": "SMP-LoRA",
          "smp_lora_two_forwards": "SMP-LoRA, two forwards", "dp_lora": "DP-LoRA"}
ATTACKS = {"loss_map_mlp": "loss-map MLP (paper)", "loss_map_mlp_paper": "loss-map MLP, paper's exact recipe",
           "loss_map_mlp_ref": "loss-map MLP - base (reference)", "loss_at_t": "Loss@t",
           "loss_at_t_ref": "Loss@t - base (reference)", "pia": "PIA", "pian": "PIAN", "secmi": "SecMI_stat",
           "sima": "SimA"}
UTILITIES = {"fid": "FID (lower = better images)", "kid": "KID (lower = better images)",
             "heldout_loss": "mean loss on D_te non-members (lower = better adapted)",
             "sample_accuracy": "sample accuracy (higher = the right class drawn)"}
VERDICTS = ("leaks", "defends", "not detected", "not testable at this size", "constant scores")
COMPARISONS = ("beyond", "behind", "indistinguishable")
DP_PREFIX = "dp_lora_eps"                                                           # dp_lora_eps<epsilon>


def dp_key(epsilon: float) -> str:
    """The record key of DP-LoRA at budget ``epsilon`` (its epsilon is also a field of its records)."""
    return f"{DP_PREFIX}{epsilon:g}"


def label(key: str) -> str:
    """The words a reader sees for a record key (a model, ``dp_lora_eps8``, an attack or a utility). Unknown keys
    are shown as they are."""
    key = str(key)
    if key.startswith(DP_PREFIX):
        return f"DP-LoRA (eps {key[len(DP_PREFIX):]})"
    return MODELS.get(key) or ATTACKS.get(key) or key
