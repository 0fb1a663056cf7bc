"""LoRA adapters (``lora``): only the adapters train, and a run's adapters load with a plain diffusers
``load_lora_weights`` and change the output."""
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
