"""The tiny base model's pretraining: the VAE's divergence guard (a late loss spike on the confirmatory seed)."""
from types import SimpleNamespace

import pytest
import torch

from smplora_nb import tinybase


class FakeVAE(torch.nn.Module):
    """A VAE whose only weight shrinks by AdamW's weight decay each step, so the weight names the step."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(1))

    def encode(self, x):
        mean = x[:, :1] * 0 + self.w
        return SimpleNamespace(latent_dist=SimpleNamespace(mean=mean, std=torch.ones_like(mean),
                                                           kl=lambda: torch.zeros(1)))

    def decode(self, z):
        return SimpleNamespace(sample=z)


def _run(monkeypatch, values):
    it = iter(values)
    monkeypatch.setattr(tinybase.F, "mse_loss", lambda a, b: a.sum() * 0 + next(it))
    vae, mcfg = FakeVAE(), SimpleNamespace(pretrain_lr=0.1, pretrain_batch_size=2, vae_steps=len(values))
    losses, kept = tinybase.pretrain_vae(vae, torch.zeros(4, 3, 2, 2), mcfg, torch.Generator().manual_seed(0))
    return vae.w.item(), losses, kept


@pytest.mark.parametrize("spike", [True, False])
def test_the_vae_is_kept_at_its_best_window_only_after_a_late_spike(monkeypatch, spike):
    decay = 1 - 0.1 * 0.01                                               # AdamW's default weight decay, zero grads
    values = [1.0 / (i + 1) for i in range(40)] + ([5.0] * 10 if spike else [0.02] * 10)
    w, losses, kept = _run(monkeypatch, values)
    assert losses == pytest.approx(values)
    if spike:                                                            # best window: steps 31..40 (the last low)
        assert kept["vae_kept_step"] == 40 and w == pytest.approx(decay ** 40)
    else:                                                                # no spike: the last step, as without a guard
        assert kept == {} and w == pytest.approx(decay ** 50)
