"""LoRA training: only LoRA trains, resume reaches the same weights, runs are cached, and the saved adapter loads
with a plain diffusers ``load_lora_weights`` and changes the output."""
import numpy as np
import pytest
import torch
from peft.utils import get_peft_model_state_dict
from safetensors.torch import load_file

from smplora_nb import lora, models, runs


def _weights(folder):
    return load_file(str(folder / "lora" / lora.WEIGHTS_NAME))


def test_attach_trains_only_lora(tiny_setup):
    *_, base = tiny_setup
    unet = models.load_pipeline(base).unet
    params = lora.attach(unet, rank=4, alpha=4.0)
    names = [n for n, p in unet.named_parameters() if p.requires_grad]
    assert names and all("lora_" in n for n in names) and len(names) == len(params)
    a, b = lora.split_ab(unet)
    assert len(a) == len(b) > 0 and all(torch.count_nonzero(p) == 0 for p in b)   # B = 0: starts at the base


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


@pytest.mark.parametrize("variant", [{}, {"lora_targets": "all"}, {"text_encoder_lr": 1e-2}],
                         ids=["attention", "all-targets", "text-encoder"])
def test_plain_load_lora_weights_loads_and_changes_output(tiny_setup, variant):
    from diffusers import StableDiffusionPipeline

    from smplora_nb import config

    cfg, _, splits, base = tiny_setup
    cfg = config.replace(cfg, epochs=2, **variant)
    run = runs.train(cfg, splits, base, progress=False)
    pipe = StableDiffusionPipeline.from_pretrained(base, safety_checker=None, requires_safety_checker=False)
    before = models.generate(pipe, ["a red digit one"], seed=0, steps=3)
    pipe.load_lora_weights(str(run / "lora"))                           # the plain diffusers call
    after = models.generate(pipe, ["a red digit one"], seed=0, steps=3)
    assert before.shape == after.shape and not np.array_equal(before, after)
    saved = _weights(run)
    assert any(k.startswith("unet.") for k in saved)
    assert any(k.startswith("text_encoder.") for k in saved) == ("text_encoder_lr" in variant)
    for comp in ("unet", "text_encoder"):                               # every saved tensor arrived unchanged
        mine = {k[len(comp) + 1:]: v for k, v in saved.items() if k.startswith(comp + ".")}
        if mine:
            got = get_peft_model_state_dict(getattr(pipe, comp), adapter_name="default_0")
            assert mine.keys() == got.keys() and all(torch.equal(mine[k], got[k]) for k in mine)


def test_encode_items_shapes(tiny_setup):
    cfg, _, splits, base = tiny_setup
    z0, cond = models.encode_items(models.load_pipeline(base).components, splits["member_aux"])
    assert z0.shape == (6, 4, 8, 8) and cond.shape[0] == 6 and torch.isfinite(z0).all()


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


# ------------------------------------------------------------------------------- MP-LoRA and SMP-LoRA

@pytest.mark.parametrize("method,feature", [("mp_lora", "paper"), ("smp_lora", "log_map"), ("smp_lora", "calibrated")])
def test_private_methods_train_and_log_their_diagnostics(tiny_setup, method, feature):
    from smplora_nb import config

    cfg, _, splits, base = tiny_setup
    cfg = config.replace(cfg, method=method, lam=0.5, hessian_every=3, proxy_batch_size=4, proxy_feature=feature)
    log = runs.paths.read_json(runs.train(cfg, splits, base, progress=False) / "train_log.json")
    steps = log["steps"]
    assert steps == cfg.train.epochs * 3 and log["diverged"] is None
    for key in ("loss", "l_ada", "gain", "grad_norm", "grad_scale", "rescale", "proxy_acc"):
        assert len(log[key]) == steps and np.isfinite(log[key]).all(), key
    assert all(g <= 0 for g in log["gain"]) and all(0 < r <= 1 for r in log["rescale"])
    assert [h[0] for h in log["hessian"]] == list(range(0, steps, 3))
    assert all(np.isfinite(h[1]) and h[2] > 0 for h in log["hessian"])                  # [step, eigenvalue, ||g||]
    assert (len(log["grad_scale_privacy"]) == steps) == (method == "mp_lora")


@pytest.mark.parametrize("method", ["mp_lora", "smp_lora"])
def test_lam_zero_reduces_to_lora(tiny_setup, method):
    """With lam = 0 and no proxy steps (which would draw from the shared generator), the weights match plain LoRA."""
    from smplora_nb import config

    cfg, _, splits, base = tiny_setup
    ref = _weights(runs.train(config.replace(cfg, epochs=2), splits, base, progress=False))
    # delta -> 0 as well: SMP divides by 1 + delta, a rescaling that Adam's eps turns into ~1e-3 weight changes
    got = _weights(runs.train(config.replace(cfg, epochs=2, method=method, lam=0.0, k_steps=0, delta=1e-12),
                               splits, base, progress=False))
    assert ref.keys() == got.keys()
    assert all(torch.allclose(ref[k], got[k], rtol=1e-5, atol=1e-7) for k in ref)


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


def test_non_finite_loss_stops_cleanly(tiny_setup, monkeypatch):
    from smplora_nb import config, methods

    cfg, _, splits, base = tiny_setup
    real, calls = methods.SmpLora.objective, []

    def flaky(self, *args):
        calls.append(1)
        loss = real(self, *args)
        return loss * float("nan") if len(calls) == 5 else loss

    monkeypatch.setattr(methods.SmpLora, "objective", flaky)
    folder = runs.train(config.replace(cfg, method="smp_lora", proxy_batch_size=4), splits, base, progress=False)
    log = runs.paths.read_json(folder / "train_log.json")
    assert log["diverged"]["step"] == 4 and log["steps"] == 4
    assert all(torch.isfinite(v).all() for v in _weights(folder).values())


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


def test_private_method_with_text_encoder_lora(tiny_setup):
    """SMP-LoRA with a text-encoder LoRA: the proxy's D_aux captions go through the adapted encoder; both adapters
    are saved."""
    from smplora_nb import config

    cfg, _, splits, base = tiny_setup
    cfg = config.replace(cfg, method="smp_lora", text_encoder_lr=1e-3, epochs=1, proxy_batch_size=4, k_steps=2)
    folder = runs.train(cfg, splits, base, progress=False)
    log = runs.paths.read_json(folder / "train_log.json")
    assert log["diverged"] is None and all(0 <= a <= 1 for a in log["proxy_acc"])
    assert any(k.startswith("text_encoder.") for k in _weights(folder))


def test_lora_run_key_ignores_the_proxy_settings(tiny_setup):
    from smplora_nb import config

    cfg, _, splits, base = tiny_setup
    key = runs.run_key(cfg, splits, base)
    assert key == runs.run_key(config.replace(cfg, lam=3.0, proxy_batch_size=8, proxy_feature="log_map"), splits, base)
    smp = config.replace(cfg, method="smp_lora")
    assert runs.run_key(smp, splits, base) != runs.run_key(config.replace(smp, lam=3.0), splits, base)


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
