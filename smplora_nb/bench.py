"""The bench a notebook opens: the config, the dataset, its member splits, the base model and the quality extractor,
each built when first asked for and kept (smplora_nb, arXiv 2402.11989 companion).

A run of the series is keyed ``(model, ..., k)``: its last element is the **split** k, an independent member split
of the same private pool (k = 0: the deal of ``split_seed``; k >= 1: the same private images re-dealt into members
and non-members with ``member_seed`` k; the public split, and so the base model, never change). Run k trains with
seed ``seed + k``, and the attacks that audit it draw their randomness from the same seed. Splits, not training
seeds on one split, are what the powered audit pools (``pooled``): seeds on one split share their test images.

``Bench.train`` and ``Bench.evaluate`` hand every run its own split; ``runs`` and ``evaluate`` do the work.
"""
from __future__ import annotations

from functools import cached_property

from . import config, evaluate, models, quality, runs, sets
from .grids import split_index


class Bench:
    """``Bench(cfg)``: what every notebook needs, lazily (see the module docstring)."""

    def __init__(self, cfg):
        self.cfg = cfg
        self._splits: dict[int, dict] = {}

    @cached_property
    def _prepared(self):
        return sets.prepare(self.cfg)                  # (items, the sets of split 0), checked disjoint

    @property
    def items(self) -> list:
        return self._prepared[0]

    @property
    def splits(self) -> dict:
        """The sets of split 0."""
        return self._prepared[1]

    def split(self, k: int) -> dict:
        """The sets of split ``k`` (the same private images re-dealt; k = 0: ``splits``)."""
        if k == 0:
            return self.splits
        if k not in self._splits:
            sp = self.cfg.split
            if sp.identity_aware or any(it.given_set for it in self.items):
                raise ValueError("more than one member split needs a random split: an identity-aware split or "
                                 "released set folders cannot be re-dealt (use n_splits = 1)")
            self._splits[k] = sets.make_splits(self.items, config.replace(self.cfg, member_seed=k).split)
            sets.check_disjoint(self._splits[k])
        return self._splits[k]

    @cached_property
    def base(self):
        """The base model's source (``models.base_model``: the tiny model is pretrained once and cached)."""
        return models.base_model(self.cfg, self.splits, self.items)

    @cached_property
    def extractor(self):
        """The FID/KID features (and digit classifier) of ``quality.quality_extractor``, fitted on the judge set."""
        return quality.quality_extractor(self.splits, self.cfg, self.items)

    def generate(self, captions: list[str]):
        """Images of the base model from ``captions`` (N, H, W, 3) uint8, at the profile's sampling settings and
        resolution, seeded by the training seed (``models.generate``)."""
        mc = self.cfg.model
        return models.generate(models.load_pipeline(self.base), captions, seed=self.cfg.train.seed,
                               steps=mc.sample_steps, guidance_scale=mc.guidance_scale,
                               resolution=self.cfg.data.resolution)

    def seed(self, key) -> int:
        """The training (and attack) seed of a run key: ``seed + k``."""
        return self.cfg.train.seed + split_index(key)

    def seeds(self, ks) -> list[int]:
        """The training seeds of member splits ``ks``."""
        return [self.seed(k) for k in ks]

    def train(self, jobs: dict, **kw) -> dict:
        """``runs.train_many`` of ``{key: config}``, each run on its key's split."""
        return runs.train_many(jobs, {key: self.split(split_index(key)) for key in jobs}, self.base, **kw)

    def cached(self, jobs: dict) -> dict:
        """``runs.cached`` of ``{key: config}``: the finished runs among them, each on its key's split."""
        return runs.cached(jobs, {key: self.split(split_index(key)) for key in jobs}, self.base)

    def evaluate(self, audited: dict, **kw) -> dict:
        """``evaluate.evaluate_many`` of ``{key: run folder or None (the base model)}``, each on its key's split,
        with the attack seed of its split and the profile's sampling and bootstrap settings."""
        mc = self.cfg.model
        kw = {"steps": mc.sample_steps, "guidance_scale": mc.guidance_scale, "n_boot": mc.audit_boot, **kw}
        return evaluate.evaluate_many(self.base, audited, {key: self.split(split_index(key)) for key in audited},
                                      self.extractor, {key: self.seed(key) for key in audited}, **kw)
