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
    return out
