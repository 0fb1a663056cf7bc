"""The audit of a run is computed once and then read back from its cache, samples included."""
import numpy as np
import pytest

from smplora_nb import config, evaluate, quality, runs


def test_evaluate_caches_audit_and_samples(tiny_setup, monkeypatch):
    cfg, items, splits, base = tiny_setup
    run = runs.train(config.replace(cfg, epochs=2), splits, base, progress=False)
    extractor = quality.quality_extractor(splits, cfg, items)
    first = evaluate.evaluate(base, run, splits, extractor, seed=0, mlp_epochs=2, steps=2)
    assert list(first["audit"]) == list(evaluate.attack.MAP_ATTACKS)     # the attacks that read the loss maps
    assert np.isfinite(first["quality"]["fid"]) and first["samples"].dtype == np.uint8
    assert set(first["mean_loss"]) == {"member_aux", "member_te", "nonmember_aux", "nonmember_te"}
    def boom(*args, **kwargs):
        raise RuntimeError("audited a cached run again")

    monkeypatch.setattr(evaluate.attack, "probe", boom)
    again = evaluate.evaluate(base, run, splits, extractor, seed=0, mlp_epochs=2, steps=2)
    assert again["audit"]["loss_map_mlp"]["asr"] == first["audit"]["loss_map_mlp"]["asr"]
    assert np.array_equal(again["samples"], first["samples"])
    with pytest.raises(RuntimeError, match="audited"):                  # another attack seed is another audit
        evaluate.evaluate(base, run, splits, extractor, seed=1, mlp_epochs=2, steps=2)
    more = evaluate.evaluate(base, run, splits, extractor, seed=0, attacks=("loss_at_t", "sima"), mlp_epochs=2,
                             steps=2)                                   # a score attack: no loss maps needed
    assert list(more["audit"]) == ["loss_at_t", "sima"] and more["audit"]["loss_at_t"] == first["audit"]["loss_at_t"]


def test_evaluate_many_side_by_side_matches_in_process(tiny_setup, monkeypatch, tmp_path):
    """Two worker processes give the audits and samples of one-after-another; cached audits are not redone."""
    cfg, items, splits, base = tiny_setup
    trained = {"a": runs.train(config.replace(cfg, epochs=1), splits, base, progress=False), "base": None}
    seeds = {"a": 0, "base": 3}
    extractor = quality.quality_extractor(splits, cfg, items)
    many = evaluate.evaluate_many(base, trained, splits, extractor, seeds, mlp_epochs=2, steps=2, workers=2,
                                  progress=False)
    monkeypatch.setenv("SMPLORA_OUTPUTS", str(tmp_path / "in_process"))   # the base model's audit cache moves
    run_b = tmp_path / "copy_of_a"
    import shutil
    shutil.copytree(trained["a"], run_b, ignore=shutil.ignore_patterns("eval"))
    one = evaluate.evaluate_many(base, {"a": run_b, "base": None}, splits, extractor, seeds, mlp_epochs=2, steps=2,
                                 workers=1, progress=False)                # one after another, one thread
    for k in trained:
        assert many[k]["audit"]["loss_map_mlp"]["auc"] == one[k]["audit"]["loss_map_mlp"]["auc"]
        assert many[k]["quality"] == one[k]["quality"] and np.array_equal(many[k]["samples"], one[k]["samples"])
    monkeypatch.setattr(evaluate.attack, "probe", lambda *a, **k: pytest.fail("audited a cached run again"))
    assert evaluate.evaluate_many(base, {"a": run_b}, splits, extractor, {"a": 0}, mlp_epochs=2, steps=2,
                                  workers=2, progress=False)["a"]["quality"] == one["a"]["quality"]
