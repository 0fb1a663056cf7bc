"""The training loop (``train``) with every method: MP- and SMP-LoRA train and log their diagnostics, lam = 0 is
plain LoRA, a non-finite loss stops the run cleanly, a text-encoder LoRA trains too. Run keys, the cache and resume
are tests/test_runs.py; the adapters themselves tests/test_lora.py."""
import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from smplora_nb import lora, runs


def _weights(folder):
    return load_file(str(folder / "lora" / lora.WEIGHTS_NAME))


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
