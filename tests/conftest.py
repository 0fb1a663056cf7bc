"""Shared fixtures: every test writes into its own temporary outputs folder and runs offline."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_outputs(tmp_path, monkeypatch):
    """Point ``SMPLORA_OUTPUTS`` at a fresh folder so no test writes into the repository's ``outputs/``."""
    out = tmp_path / "smplora_outputs"
    monkeypatch.setenv("SMPLORA_OUTPUTS", str(out))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")                   # notebook kernels and workers: one thread too
    return out


TINY_FAST = dict(vae_steps=2, pretrain_steps=3, pretrain_batch_size=8, public=40, member_aux=6, member_te=6,
                 nonmember_aux=6, nonmember_te=6, lora_rank=4, lora_alpha=4.0, batch_size=4, epochs=4, lr=1e-2)


@pytest.fixture(scope="session")
def tiny_setup(tmp_path_factory):
    """A tiny base model pretrained for a few steps (shared by the tests of the session), with its config and split."""
    import os

    from smplora_nb import config, data, models, sets

    root = tmp_path_factory.mktemp("session_outputs")
    old = os.environ.get("SMPLORA_OUTPUTS")
    os.environ["SMPLORA_OUTPUTS"] = str(root)
    try:
        cfg = config.make("tiny", **TINY_FAST)
        items = data.load_dataset("digits", 16)
        splits = sets.make_splits(items, cfg.split)
        base = models.base_model(cfg, splits, items)
    finally:
        if old is None:
            os.environ.pop("SMPLORA_OUTPUTS", None)
        else:
            os.environ["SMPLORA_OUTPUTS"] = old
    return cfg, items, splits, base
