"""The audit of a run is computed once and then read back from its cache, samples included."""
import numpy as np
import pytest

from smplora_nb import config, evaluate, metrics, train


def test_evaluate_caches_audit_and_samples(tiny_setup, monkeypatch):
    cfg, _, splits, base = tiny_setup
    run = train.train(config.replace(cfg, epochs=2), splits, base, progress=False)
    extractor = metrics.quality_extractor(splits, cfg)
    first = evaluate.evaluate(base, run, splits, extractor, seed=0, mlp_epochs=2, steps=2)
    assert set(first["audit"]) == {"loss_map_mlp", "loss_at_t", "loss_map_mlp_paper"}
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
