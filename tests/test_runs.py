"""Training runs as cache entries (``runs``, ``checkpoints``): run keys, a finished run reused, an interrupted run
resumed to the same final weights, runs side by side, snapshots."""
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from smplora_nb import lora, runs


def _weights(folder):
    return load_file(str(folder / "lora" / lora.WEIGHTS_NAME))


def test_resume_reaches_the_same_final_weights(tiny_setup, monkeypatch, tmp_path):
    cfg, _, splits, base = tiny_setup
    full = runs.train(cfg, splits, base, checkpoint_every=2, progress=False)
    reference = _weights(full)
    monkeypatch.setenv("SMPLORA_OUTPUTS", str(tmp_path / "second"))
    with pytest.raises(KeyboardInterrupt):
        runs.train(cfg, splits, base, checkpoint_every=2, progress=False, interrupt_at_epoch=2)
    folder = runs.paths.cache_dir("runs") / runs.run_key(cfg, splits, base)
    assert (folder / "checkpoint" / "state.json").exists() and not (folder / "train_log.json").exists()
    resumed = runs.train(cfg, splits, base, checkpoint_every=2, progress=False)
    again = _weights(resumed)
    assert reference.keys() == again.keys()
    assert all(torch.equal(reference[k], again[k]) for k in reference)
    log = runs.paths.read_json(resumed / "train_log.json")
    assert log["steps"] == cfg.train.epochs * int(np.ceil(12 / cfg.train.batch_size))


def test_finished_run_is_reused(tiny_setup, monkeypatch):
    cfg, _, splits, base = tiny_setup
    first = runs.train(cfg, splits, base, progress=False)
    monkeypatch.setattr(runs.loop_module, "setup", lambda *a, **k: pytest.fail("trained a finished run again"))
    assert runs.train(cfg, splits, base, progress=False) == first


def test_run_key_changes_with_what_changes_results(tiny_setup):
    import dataclasses

    from smplora_nb import config

    cfg, _, splits, base = tiny_setup
    key = runs.run_key(cfg, splits, base)
    assert key == runs.run_key(cfg, splits, base)
    assert key != runs.run_key(config.replace(cfg, seed=cfg.train.seed + 1), splits, base)
    assert key != runs.run_key(config.replace(cfg, lora_rank=8), splits, base)
    recaptioned = {**splits, "member_aux": [dataclasses.replace(splits["member_aux"][0], caption="a new caption")]
                   + splits["member_aux"][1:]}
    assert key != runs.run_key(cfg, recaptioned, base)
    assert key != runs.run_key(cfg, splits, "some/other-base")


def test_private_run_resumes_to_the_same_weights(tiny_setup, monkeypatch, tmp_path):
    from smplora_nb import config

    cfg, _, splits, base = tiny_setup
    cfg = config.replace(cfg, method="smp_lora", lam=0.5, proxy_batch_size=4)
    reference = _weights(runs.train(cfg, splits, base, checkpoint_every=2, progress=False))
    monkeypatch.setenv("SMPLORA_OUTPUTS", str(tmp_path / "second"))
    with pytest.raises(KeyboardInterrupt):
        runs.train(cfg, splits, base, checkpoint_every=2, progress=False, interrupt_at_epoch=2)
    again = _weights(runs.train(cfg, splits, base, checkpoint_every=2, progress=False))
    assert all(torch.equal(reference[k], again[k]) for k in reference)


def test_train_many_side_by_side_matches_one_after_another(tiny_setup, monkeypatch, tmp_path):
    """Worker processes (one thread each; three equal runs on two cores run all at once, ``parallel.width``) give
    the same weights as the in-process path, and reuse the cache."""
    from smplora_nb import config

    cfg, _, splits, base = tiny_setup
    cfgs = {"a": config.replace(cfg, epochs=2), "b": config.replace(cfg, epochs=2, seed=7),
            "c": config.replace(cfg, epochs=2, seed=8)}
    assert runs.parallel.width([runs._cost(c) for c in cfgs.values()], 2) == 3
    parallel = runs.train_many(cfgs, splits, base, workers=2, progress=False)
    monkeypatch.setenv("SMPLORA_OUTPUTS", str(tmp_path / "sequential"))
    sequential = runs.train_many(cfgs, splits, base, workers=1, progress=False)
    for k in cfgs:
        assert parallel[k] != sequential[k] and parallel[k].name == sequential[k].name
        ref, got = _weights(parallel[k]), _weights(sequential[k])
        assert all(torch.equal(ref[n], got[n]) for n in ref)
    monkeypatch.setattr(runs, "train", lambda *a, **k: pytest.fail("trained a finished run again"))
    assert runs.train_many(cfgs, splits, base, workers=2, progress=False) == sequential


def test_lora_run_key_ignores_the_proxy_settings(tiny_setup):
    from smplora_nb import config

    cfg, _, splits, base = tiny_setup
    other = cfg.train.lam + 1.0                                          # any lam but the profile's
    key = runs.run_key(cfg, splits, base)
    assert key == runs.run_key(config.replace(cfg, lam=other, proxy_batch_size=8, proxy_feature="log_map"), splits, base)
    smp = config.replace(cfg, method="smp_lora")
    assert runs.run_key(smp, splits, base) != runs.run_key(config.replace(smp, lam=other), splits, base)


def test_snapshots_for_the_early_stopping_frontier(tiny_setup):
    from smplora_nb import config

    cfg, _, splits, base = tiny_setup
    scfg = config.replace(cfg, epochs=3, snapshot_epochs=(2, 1))
    run = runs.train(scfg, splits, base, progress=False)
    snaps = runs.snapshots(run)
    assert sorted(snaps) == [1, 2, 3] and snaps[3] == run
    w = {e: _weights(f) for e, f in snaps.items()}
    assert w[1].keys() == w[3].keys() and not all(torch.equal(w[1][k], w[3][k]) for k in w[1])
    plain = config.replace(scfg, snapshot_epochs=())
    with pytest.raises(ValueError, match="snapshot_epochs"):
        config.replace(scfg, snapshot_epochs=(3,))
    assert runs.run_key(scfg, splits, base) != runs.run_key(plain, splits, base)
    assert runs.run_key(plain, splits, base) == runs.run_key(config.replace(cfg, epochs=3), splits, base)


def test_a_checkpoint_holds_one_file_per_part_of_the_state_and_reads_back_every_part(tiny_setup, monkeypatch,
                                                                                    tmp_path):
    """The loop's state and the method's (the proxy and its optimiser) are one dict of parts, saved and read in one
    place (``checkpoints``), each part in its own file."""
    from smplora_nb import checkpoints, config, methods
    from smplora_nb import train as loop

    cfg, _, splits, base = tiny_setup
    cfg = config.replace(cfg, method="smp_lora", lam=0.5, proxy_batch_size=4, epochs=2, seed=21)
    monkeypatch.setenv("SMPLORA_OUTPUTS", str(tmp_path))
    with pytest.raises(KeyboardInterrupt):
        runs.train(cfg, splits, base, checkpoint_every=1, progress=False, interrupt_at_epoch=1)
    ck = runs.run_folder(cfg, splits, base) / "checkpoint"
    parts = ("lora", "optimizer", "rng", "proxy", "proxy_optimizer")
    assert {p.name for p in ck.iterdir()} == {checkpoints.FILES[p] for p in parts} | {"state.json"}
    method = methods.make(cfg.train)
    s = loop.setup(cfg, splits, base, method)
    assert set(checkpoints.parts(s, method)) == set(parts)
    saved = checkpoints.read(ck, s, method)
    assert saved["epoch"] == 1 and set(saved) == {"epoch", "log", *parts}
    assert checkpoints.load(saved, s, method)[0] == 1
    assert all(torch.equal(v, saved["lora"][k]) for k, v in lora.state_dict(s.unwrapped("unet")).items())
