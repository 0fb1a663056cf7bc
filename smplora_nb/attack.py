"""The attack stack: every membership-inference attack behind one interface, one registry, one audit (PAPER.md
"Attack"; ATTACKS.md) - arXiv 2402.11989.

Threat model (white box, as in the paper): the attacker can query the adapted model on an (image, caption) pair,
knows the public base model, and knows D_aux = member_aux + nonmember_aux. Every attack is *fitted on D_aux only*
(its timestep and direction, its threshold, its MLP checkpoint) and then scores D_te once.

An attack (``Attack``) reads one input (``Probe.inputs``) and is fitted one way:

* ``loss_map_mlp``       the paper's h': ``mlp.LossMapMLP`` on the flattened log loss maps at ``TIMESTEPS`` (each the
                         mean of ``N_DRAWS`` seeded noise draws, the same for every model audited), Adam lr 1e-3,
                         epoch chosen on a held-out part of D_aux; decision rule P(member) >= 0.5.
* ``loss_map_mlp_paper`` the same MLP by the paper's exact recipe (``mlp.PAPER_RECIPE``) on the raw map of one draw at
                         a random t ~ U{0..999}; its learning curve is kept (notebook 02).
* ``loss_map_mlp_ref``   reference MLP: as ``loss_map_mlp`` on log l - log l_base, l_base the public base model's maps
                         at the same t and noise (the adapters switched off): what fine-tuning changed.
* ``loss_at_t``          Loss@t (Matsumoto et al. 2023): -mean loss at one of ``TIMESTEPS``.
* ``loss_at_t_ref``      reference Loss@t (the idea of LiRA / RMIA with the base model as a free reference):
                         -(l - l_base) at the same t and noise.
* ``pia``, ``pian``, ``secmi``, ``sima``   the scores of ``scores`` (PIA, PIAN, SecMI_stat, SimA).

Threshold attacks choose their timestep *and direction* on D_aux (``scores.fit``: a reversed signal is a signal).
``audit`` returns one record per (model, attack) - the D_te metrics of ``metrics.membership``, the 95% bootstrap
interval ``ci``, what was ``chosen_on_aux`` and the D_te scores - each cached on its own beside the run.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import safetensors.torch
import torch

from . import labels, lora, losses, metrics, mlp, models, parallel, paths, scores, sets

TIMESTEPS = (50, 100, 200, 400)       # fixed probing timesteps (of 1000) of the loss maps
N_DRAWS = 4                           # noise draws averaged per timestep
AUDIT_VERSION = 1                     # bump when an attack's computation changes (cache key)
RECORD_VERSION = 2                    # bump when a record's fields change (2: D_aux scores, issue 27)
PAPER_ATTACK = labels.PAPER_ATTACK


@dataclass(frozen=True)
class Attack:
    """One attack of the registry: its name, the words a reader sees, the input it reads and how it is fitted."""
    name: str
    label: str
    reads: str                         # a key of ``Probe.inputs``
    fitted_as: str                     # "mlp" or "threshold"
    reference: bool = False            # reads the public base model too

    def timesteps(self):
        return scores.CANDIDATES[self.reads] if self.reads in scores.SCORES else TIMESTEPS

    def recipe(self, mlp_epochs: int = 100) -> dict:
        """The MLP's training recipe (``mlp.fit_mlp`` keywords); empty for a threshold attack."""
        if self.fitted_as != "mlp":
            return {}
        return dict(mlp.PAPER_RECIPE) if self.name == "loss_map_mlp_paper" else dict(epochs=mlp_epochs, lr=1e-3)

    def fit(self, aux_member, aux_nonmember, seed: int = 0, mlp_epochs: int = 100):
        """Fit on D_aux only; the result has ``score(x) -> (N,)``, ``threshold`` and ``knobs()``."""
        if self.fitted_as == "mlp":
            return _FittedMLP(mlp.fit_mlp(aux_member, aux_nonmember, seed=seed, **self.recipe(mlp_epochs)),
                              keep_history=self.name == "loss_map_mlp_paper")
        return scores.fit(self.name, self.timesteps(), aux_member, aux_nonmember)


class _FittedMLP:
    def __init__(self, model: mlp.MLPAttack, keep_history: bool):
        self.model, self.keep_history, self.threshold = model, keep_history, model.threshold

    def score(self, x) -> np.ndarray:
        return self.model.score(x)

    def knobs(self) -> dict:
        h = self.model.history
        out = {"chosen_epoch": self.model.chosen_epoch, "val_acc": h["val_acc"][self.model.chosen_epoch],
               "threshold": self.threshold}
        return {**out, "history": h} if self.keep_history else out


ATTACKS = {a.name: a for a in (
    Attack("loss_map_mlp", labels.ATTACKS["loss_map_mlp"], "log_maps", "mlp"),
    Attack("loss_map_mlp_paper", labels.ATTACKS["loss_map_mlp_paper"], "raw_random_maps", "mlp"),
    Attack("loss_map_mlp_ref", labels.ATTACKS["loss_map_mlp_ref"], "calibrated_maps", "mlp", reference=True),
    Attack("loss_at_t", labels.ATTACKS["loss_at_t"], "loss", "threshold"),
    Attack("loss_at_t_ref", labels.ATTACKS["loss_at_t_ref"], "loss_ref", "threshold", reference=True),
    Attack("pia", labels.ATTACKS["pia"], "pia", "threshold"),
    Attack("pian", labels.ATTACKS["pian"], "pian", "threshold"),
    Attack("secmi", labels.ATTACKS["secmi"], "secmi", "threshold"),
    Attack("sima", labels.ATTACKS["sima"], "sima", "threshold"))}
MAP_ATTACKS = tuple(a for a in ATTACKS if ATTACKS[a].reads not in scores.SCORES)   # read the loss maps only
# The strongest map attack on plain LoRA, chosen on the development seeds (profiles.DEV_SEEDS, the testbed study's
# digits/descriptive arm: notebook 02's design, 3 member splits, pooled AUC 0.94, against 0.92 for loss_map_mlp_ref,
# 0.90 for loss_at_t_ref and 0.89 for the paper's loss_map_mlp; outputs/dev/testbed_study.json) and then fixed:
# the confirmatory claim "LoRA leaks to the strongest map attack" reads this one, not the best on D_te. (On the
# shared captions of the earlier default it was loss_map_mlp_ref, at 0.85.)
STRONGEST_MAP_ATTACK = "loss_at_t"


def with_paper(strongest: str) -> tuple:
    """The paper's attack and ``strongest`` (once where they are the same): the attacks the frontier reads."""
    return tuple(dict.fromkeys((PAPER_ATTACK, strongest)))


def probe(parts, splits, noise_seed: int = 0, source=None) -> dict[str, dict[str, torch.Tensor]]:
    """The attacker's loss maps of every private set on one model, with fixed noise seeds:
    ``{"fixed_t": {set: (N, K, 4, h, w)}, "random_t": {set: (N, 1, 4, h, w)}}``. ``source`` (the base model's
    id) lets ``models.encode_items`` reuse cached latents."""
    out = {"fixed_t": {}, "random_t": {}}
    unet, sched = parts["unet"], parts["scheduler"]
    for name in sets.PRIVATE:
        z0, cond = models.encode_items(parts, splits[name], unet.device, source=source)
        out["fixed_t"][name] = losses.loss_maps_at(unet, sched, z0, cond, TIMESTEPS, N_DRAWS, noise_seed)
        out["random_t"][name] = losses.loss_maps_random_t(unet, sched, z0, cond, noise_seed)
    return out


def mean_loss(maps: torch.Tensor) -> np.ndarray:
    """Per-image mean of loss maps (N, ...) -> (N,)."""
    return maps.flatten(1).mean(1).numpy()


def _loss_scores(maps: torch.Tensor) -> np.ndarray:
    return -maps.flatten(2).mean(2).numpy()                              # (N, K): -mean loss per timestep


class Probe:
    """What the attacker computes on one model (the base with the LoRA of ``run``; None = the base itself), each
    piece once, when an attack first needs it."""

    def __init__(self, base, run, splits):
        self.base, self.run, self.splits, self._pipe, self._memo = base, run, splits, None, {}

    @property
    def pipe(self):
        if self._pipe is None:
            self._pipe = models.load_pipeline(self.base)
            if self.run is not None:
                lora.load_into(self._pipe, Path(self.run) / "lora")
        return self._pipe

    def _once(self, key, make):
        if key not in self._memo:
            self._memo[key] = make()
        return self._memo[key]

    def maps(self) -> dict:
        if self.run is None:
            return self.base_maps()
        return self._once("maps", lambda: probe(self.pipe.components, self.splits, source=self.base))

    def base_maps(self) -> dict:
        """The base model's maps at the same t and noise (the model itself for the base, whose calibrated maps are
        then all zero). They are the same for every run of one base model and split (the adapters switched off give
        them bit for bit), so they are probed once and cached beside the base model's audits (safetensors)."""
        def make():
            path = folder(self.base, None) / f"maps_{paths.config_hash(_maps_key(self.splits))}.safetensors"
            cached = paths.read_cached(path, _read_maps, "probing the base model again")
            if cached is not None:
                return cached
            if self.run is not None:
                self.pipe.disable_lora()
            try:
                maps = probe(self.pipe.components, self.splits, source=self.base)
            finally:
                if self.run is not None:
                    self.pipe.enable_lora()
            path.parent.mkdir(parents=True, exist_ok=True)
            paths.atomic_write_bytes(path, safetensors.torch.save({f"{kind}/{k}": v.contiguous() for kind, by_set
                                                                   in maps.items() for k, v in by_set.items()}))
            return maps
        return self._once("base_maps", make)

    def inputs(self, reads: str) -> dict:
        """``{set: attack input}`` for one of the registry's ``reads``."""
        return self._once(("inputs", reads), lambda: {k: self._input(reads, k) for k in sets.PRIVATE})

    def _input(self, reads: str, k: str):
        if reads in scores.SCORES:
            batch = models.encode_items(self.pipe.components, self.splits[k], self.pipe.unet.device, source=self.base)
            return scores.score(self.pipe, batch, scores.CANDIDATES[reads], reads)
        fixed = self.maps()["fixed_t"][k]
        if reads == "log_maps":
            return mlp.map_features(fixed)
        if reads == "raw_random_maps":
            return self.maps()["random_t"][k].float().flatten(1)
        ref = self.base_maps()["fixed_t"][k]
        if reads == "calibrated_maps":
            return mlp.map_features(fixed, ref)
        if reads == "loss":
            return _loss_scores(fixed)
        if reads == "loss_ref":
            return _loss_scores(fixed) - _loss_scores(ref)
        raise ValueError(f"unknown attack input {reads!r}")


def _maps_key(splits) -> dict:
    return {"version": AUDIT_VERSION, "timesteps": list(TIMESTEPS), "n_draws": N_DRAWS, "noise_seed": 0,
            "sets": {k: [(it.sha256, it.caption) for it in splits[k]] for k in sets.PRIVATE}}


def _read_maps(path: Path) -> dict:
    out = {"fixed_t": {}, "random_t": {}}
    for key, v in safetensors.torch.load_file(str(path)).items():
        kind, name = key.split("/")
        out[kind][name] = v
    return {kind: {k: by_set[k] for k in sets.PRIVATE} for kind, by_set in out.items()}


def folder(base, run) -> Path:
    """Where a model's audits are cached: beside the run, or under ``outputs/cache/eval`` for the base model."""
    if run is not None:
        return Path(run) / "eval"
    return paths.cache_dir("eval") / paths.config_hash({"base": paths.source_id(base)})


def _record_path(base, run, splits, name: str, seed: int, n_boot: int, mlp_epochs: int) -> Path:
    att = ATTACKS[name]
    key = {"version": AUDIT_VERSION, "record": RECORD_VERSION, "attack": name, "reads": att.reads,
           "timesteps": att.timesteps(),
           "recipe": att.recipe(mlp_epochs), "n_boot": n_boot,
           "sets": {k: [(it.sha256, it.caption) for it in splits[k]] for k in sets.PRIVATE}}
    key.update({"seed": seed} if att.fitted_as == "mlp" else {})         # threshold attacks draw no randomness
    key.update({"n_draws": N_DRAWS} if att.reads not in scores.SCORES else {"stride": scores.SECMI_STRIDE})
    return folder(base, run) / "audit" / f"{name}_{paths.config_hash(key)}.json"


def _check(attacks) -> tuple:
    unknown = [a for a in attacks if a not in ATTACKS]
    if unknown:
        raise ValueError(f"unknown attack(s) {unknown}: the registry has {list(ATTACKS)}")
    return tuple(attacks)


def audit(base, run, splits, attacks=MAP_ATTACKS, seed: int = 0, n_boot: int = 1000, mlp_epochs: int = 100,
          shared: Probe | None = None) -> dict:
    """``{attack: record}`` for one model (the base with the LoRA of ``run``; None = the base): each attack fitted
    on D_aux with ``seed`` (the MLPs' only randomness), scored once on D_te. Records are read from the cache when
    there; the rest share one ``Probe`` (``shared``, or a new one)."""
    attacks = _check(attacks)
    where = {a: _record_path(base, run, splits, a, seed, n_boot, mlp_epochs) for a in attacks}
    probe_ = shared or Probe(base, run, splits)
    out = {}
    for a in attacks:
        out[a] = paths.read_cached(where[a], what="auditing again")
        if out[a] is None:
            paths.write_json(where[a], _audit_one(ATTACKS[a], probe_.inputs(ATTACKS[a].reads), seed, n_boot, mlp_epochs))
            out[a] = paths.read_json(where[a])                  # the same types whether computed or cached
    return out


def _audit_one(att: Attack, x: dict, seed: int, n_boot: int, mlp_epochs: int) -> dict:
    fitted = att.fit(x["member_aux"], x["nonmember_aux"], seed, mlp_epochs)
    sm, sn = fitted.score(x["member_te"]), fitted.score(x["nonmember_te"])
    am, an = fitted.score(x["member_aux"]), fitted.score(x["nonmember_aux"])   # for thresholds chosen on D_aux later
    return {**metrics.membership(sm, sn, fitted.threshold), "ci": metrics.bootstrap_ci(sm, sn, n_boot),
            "chosen_on_aux": fitted.knobs(), "scores_member": sm.tolist(), "scores_nonmember": sn.tolist(),
            "aux_scores_member": am.tolist(), "aux_scores_nonmember": an.tolist()}


def cached(base, run, splits, attacks=MAP_ATTACKS, seed: int = 0, n_boot: int = 1000, mlp_epochs: int = 100) -> bool:
    return all(_record_path(base, run, splits, a, seed, n_boot, mlp_epochs).exists() for a in _check(attacks))


def audit_many(base, runs: dict, splits, seeds, attacks=MAP_ATTACKS, n_boot: int = 1000, mlp_epochs: int = 100,
               workers: int | None = None, progress: bool = True) -> dict:
    """``audit`` of every ``{key: run}`` with the seed ``seeds[key]`` (or one int for all); audits not cached yet run
    side by side on CPU (``parallel.side_by_side``)."""
    seed_of = seeds if isinstance(seeds, dict) else {k: seeds for k in runs}
    kw = dict(attacks=tuple(attacks), n_boot=n_boot, mlp_epochs=mlp_epochs)
    todo = {(str(run), seed_of[k]): (base, run, splits, seed_of[k], kw) for k, run in runs.items()
            if not cached(base, run, splits, seed=seed_of[k], **kw)}
    parallel.side_by_side(_audit_quietly, todo, workers, progress, desc="attack audits")
    return {k: audit(base, run, splits, seed=seed_of[k], **kw) for k, run in runs.items()}


def _audit_quietly(base, run, splits, seed, kw) -> None:
    audit(base, run, splits, seed=seed, **kw)
