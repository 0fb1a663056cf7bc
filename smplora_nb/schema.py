"""What each notebook's ``metrics.json`` holds: one schema, checked when a notebook writes it (``write``) and when
``report.py`` or the tests read it (``read``) (smplora_nb, arXiv 2402.11989 companion).

Keys are the glossary's names: models ``base``, ``lora``, ``lora_early_stop``, ``mp_lora`` (and its stabilised
variants), ``smp_lora`` (and ``smp_lora_two_forwards``), ``dp_lora_eps<epsilon>`` (its epsilon also a field of its
``dp`` record); attacks as in ``attack.ATTACKS``. A *method record* is ``metrics.method_summary``'s: ``per_split``,
``attacks`` (mean and s.e. over member splits per attack), ``quality``, and the headline ``mean`` / ``sem`` (the
paper's attack plus FID/KID). A *pooled record* (``pooled.<model>.<attack>``) is ``pooled.Pooled.record``'s: the AUC
pooled over the member splits with its 95% and 90% (TOST) intervals, the verdict and its power figures. Every claim
has a ``kind``: "claim", "descriptive" or "not testable" (``claims``). ``utility.<model>`` holds ``fid``, ``kid``, ``heldout_loss`` (mean loss on D_te's non-members) and, with
class labels, ``sample_accuracy`` (``study.utility``); ``utility_noise_floor.<model>.<utility>`` its sd over seeds
and the thread-count floor (``study.utility_floors``). ``viz.label`` gives the words a reader sees.
"""
from __future__ import annotations

from pathlib import Path

from . import paths

METHOD_RECORD = ("per_split", "attacks", "quality", "mean", "sem")
POOLED_RECORD = ("auc", "auc_dev", "splits", "auc_by_split", "ci", "ci90", "auc_dev_tost", "constant", "power", "verdict")
NOTEBOOKS = {   # stem: (required top-level keys, the keys that are method records)
    "01_data_splitting": (("profile", "counts", "disjoint", "model_free_split_check", "claims", "checks"), ()),
    "02_membership_inference_attack": (("profile", "splits", "seeds", "noise_floor", "pooled", "utility",
                                        "utility_noise_floor", "fid_floor", "claims", "checks"), ("lora", "base")),
    "03_mp_lora_instability": (("profile", "seed", "lam", "proxy_feature", "stabilisers", "pooled", "fid_floor",
                                "utility_vs_lora", "claims"), ("lora", "mp_lora")),
    "04_smp_lora_training": (("profile", "splits", "seeds", "lam", "proxy_feature", "noise_floor", "pooled", "utility",
                              "utility_noise_floor", "fid_floor", "claims"), ("lora", "mp_lora", "smp_lora")),
    "05_ablations": (("profile", "seed", "grid", "ablations", "references", "vs_lora", "claims"), ()),
    "06_stronger_attacks_and_baselines": (("profile", "splits", "seeds", "attack_order", "model_order", "pooled",
                                           "verdicts", "utility", "utility_noise_floor", "vs_dp", "dp", "dp_audit",
                                           "frontier", "claims", "checks", "conclusion"), ()),
}
CLAIM = ("claim", "value", "op", "target", "holds", "kind")


def check(stem: str, m: dict) -> dict:
    """Raise ``ValueError`` naming what is missing from notebook ``stem``'s metrics; return ``m``."""
    keys, method_keys = NOTEBOOKS.get(stem, ((), ()))
    missing = [k for k in (*keys, *method_keys) if k not in m]
    missing += [f"{k}.{f}" for k in method_keys if k in m for f in METHOD_RECORD if f not in m[k]]
    missing += [f"pooled.{model}.{a}.{f}" for model, row in m.get("pooled", {}).items() for a, r in row.items()
                for f in POOLED_RECORD if f not in r]
    missing += [f"claims[{i}].{f}" for i, c in enumerate(m.get("claims", [])) for f in CLAIM if f not in c]
    if missing:
        raise ValueError(f"{stem} metrics miss {missing} (see smplora_nb/schema.py)")
    return m


def write(stem: str, m: dict) -> Path:
    """Check and write ``outputs/<stem>/metrics.json`` (atomically, ``paths.write_metrics``)."""
    return paths.write_metrics(stem, check(stem, m))


def read(stem: str, root: Path | None = None) -> dict:
    """Read and check notebook ``stem``'s metrics (from ``root``, default the outputs folder)."""
    path = Path(root or paths.outputs_root()) / stem / "metrics.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run notebook {stem} first")
    return check(stem, paths.read_json(path))


def methods(m: dict) -> list[str]:
    """The keys of ``m`` that hold method records, in order."""
    return [k for k, v in m.items() if isinstance(v, dict) and all(f in v for f in METHOD_RECORD)]


def headline(m: dict, model: str) -> dict:
    """Mean over seeds of a method record's headline metrics (the paper's attack, FID/KID)."""
    return m[model]["mean"]


def attack_mean(m: dict, model: str, attack: str) -> dict:
    """Mean over seeds of one attack's metrics on one method record."""
    return m[model]["attacks"][attack]["mean"]
