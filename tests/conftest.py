"""Shared fixtures: every test writes into its own temporary outputs folder and runs offline."""
from __future__ import annotations

import os

import pytest

# One torch thread per test process (and, through the environment, per notebook kernel and worker it starts):
# `make test` runs two workers on two cores, and two-thread torch processes sharing cores spend most of their time
# waiting on each other (a toy attack test: 20 s on one thread, 123 s on two beside another busy process).
os.environ["OMP_NUM_THREADS"] = "1"
# The two test workers already fill the two cores: notebooks run their side-by-side jobs in the kernel (tests that
# are about worker processes ask for them explicitly), which saves starting and importing two workers per notebook.
os.environ.setdefault("SMPLORA_WORKERS", "1")
import torch  # noqa: E402

torch.set_num_threads(1)

# The longest tests (measured; `make test` prints the slowest). They start first, so that the
# two workers finish together instead of one waiting on a long test picked up last.
LONGEST = {"test_sharded_and_killed_sweeps": 290, "test_notebooks_01_to_06_run_on_the_paper_profile": 225,
           "test_the_series_runs_on_a_folder": 185,                 # seconds on 2 workers, the slow day (2026-12-03)
           "test_notebook_runs_with_papermill[06": 311,
           "test_notebook_runs_with_papermill[05": 112, "test_notebook_runs_with_papermill[04": 60,
           "test_notebook_runs_with_papermill[03": 60, "test_notebook_runs_with_papermill[02": 28,
           "test_evaluate_many_side_by_side": 48, "test_accelerate_launch_two_processes": 43,
           "test_private_methods_train_and_log": 33, "test_notebook_runs_with_papermill[01": 25,
           "test_two_identical_train_calls": 28, "test_paper_path_end_to_end": 29, "test_evaluate_caches": 27,
           "test_train_many_side_by_side": 21, "test_02_solutions": 24, "test_03_solutions": 20,
           "test_the_hessian_diagnostic_does_not_change": 12, "test_audit_fits_every_knob": 11,
           "test_reference_attacks_read_the_base_model": 10}


def _expected_seconds(item) -> float:
    return max((s for name, s in LONGEST.items() if item.name.startswith(name)), default=0.0)


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: -_expected_seconds(item))           # stable: the rest keep their file order


@pytest.fixture(autouse=True)
def _isolated_outputs(tmp_path, monkeypatch):
    """Point ``SMPLORA_OUTPUTS`` at a fresh folder so no test writes into the repository's ``outputs/``."""
    out = tmp_path / "smplora_outputs"
    monkeypatch.setenv("SMPLORA_OUTPUTS", str(out))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")                   # notebook kernels and workers: one thread too
    return out


@pytest.fixture(scope="session")
def series_outputs(tmp_path_factory):
    """The one outputs folder of the papermill notebook tests (``xdist_group("notebooks")``: one worker), shared
    as ``make demo`` shares its own: runs, audits, the base model and the quality features are made once."""
    return tmp_path_factory.mktemp("series_outputs")


@pytest.fixture(scope="session")
def executed_outputs(tmp_path_factory):
    """Where the papermill notebook tests leave a copy of each executed notebook's outputs, for the book test that
    runs after them on the same worker (``xdist_group("notebooks")``)."""
    return tmp_path_factory.mktemp("executed_outputs")


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
