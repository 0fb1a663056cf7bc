"""LoRA adapters with peft, saved in the diffusers format (smplora_nb, arXiv 2402.11989 companion).

LoRA (Hu et al., 2021) freezes a weight W and learns a low-rank update:  W' = W + (lora_alpha / lora_rank) * B A,
with A (r x d_in) and B (d_out x r), B initialised to zero so that training starts from the base model. The paper
adapts the U-Net's attention projections (and, in the official code, the text encoder too) with r = 64, alpha = 32.

The final adapter is written with ``StableDiffusionPipeline.save_lora_weights``, so a plain
``pipe.load_lora_weights(folder)`` loads it into any SD-architecture pipeline, SD v1.5 included.
"""
from __future__ import annotations

from pathlib import Path

import torch

from . import paths

UNET_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")             # U-Net attention projections (paper)
UNET_TARGETS_ALL = UNET_TARGETS + ("proj_in", "proj_out", "ff.net.0.proj", "ff.net.2",   # + transformer MLPs
                                   "conv1", "conv2", "conv_shortcut", "time_emb_proj")   # + ResNet convolutions
TARGETS = {"attention": UNET_TARGETS, "all": UNET_TARGETS_ALL}
TEXT_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")        # CLIP text-encoder attention projections
WEIGHTS_NAME = "pytorch_lora_weights.safetensors"


def attach(model: torch.nn.Module, rank: int, alpha: float, targets=UNET_TARGETS, seed: int = 0) -> list:
    """Freeze ``model``, add a LoRA adapter on ``targets`` (peft), and return the trainable LoRA parameters."""
    from peft import LoraConfig                             # peft: slow to import, only when adapters are attached

    model.requires_grad_(False)
    torch.manual_seed(seed)                                      # A is random, B = 0
    cfg = LoraConfig(r=rank, lora_alpha=alpha, init_lora_weights="gaussian", target_modules=list(targets))
    if hasattr(model, "add_adapter") and "diffusers" in type(model).__module__:
        model.add_adapter(cfg)                                   # diffusers' peft integration (U-Net)
    else:
        from peft import inject_adapter_in_model            # peft: slow to import, only when adapters are attached

        inject_adapter_in_model(cfg, model)                      # transformers' text encoder
        for name, p in model.named_parameters():
            p.requires_grad_("lora_" in name)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"no LoRA target {list(targets)} found in {type(model).__name__}")
    return params


def state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The adapter's weights only (peft naming)."""
    from peft.utils import get_peft_model_state_dict        # peft: slow to import, only when adapters are read

    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}


def load_state_dict(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Put adapter weights saved by :func:`state_dict` back into a model with the same adapter attached."""
    from peft.utils import set_peft_model_state_dict        # peft: slow to import, only when adapters are written

    result = set_peft_model_state_dict(model, state)
    unexpected = getattr(result, "unexpected_keys", [])
    if unexpected:
        raise ValueError(f"unexpected LoRA keys: {unexpected[:3]}")


def split_ab(model: torch.nn.Module) -> tuple[list, list]:
    """The LoRA down (A) and up (B) matrices, for the gradient diagnostics of Section 4 of the paper."""
    a = [p for n, p in model.named_parameters() if "lora_A" in n]
    b = [p for n, p in model.named_parameters() if "lora_B" in n]
    return a, b


def save(folder, unet, text_encoder=None) -> Path:
    """Write the adapter(s) in the diffusers format: ``folder/pytorch_lora_weights.safetensors``."""
    from diffusers import StableDiffusionPipeline           # diffusers: slow to import, only when a pipeline is loaded

    # PEFT key names (".lora_A.weight"): diffusers loads them as they are. Its older ".lora.down" names lose the
    # attention layers on load when convolutions carry LoRA too (seen with diffusers 0.42), so they are not used.
    te_layers = None
    if text_encoder is not None and any("lora_" in n for n, _ in text_encoder.named_parameters()):
        te_layers = state_dict(text_encoder)
    def write(weights, path):         # by paths (usual permissions; a full disk raises OSError), as diffusers would
        paths.write_tensors(path, weights, {"format": "pt"})

    StableDiffusionPipeline.save_lora_weights(str(folder), unet_lora_layers=state_dict(unet),
                                              text_encoder_lora_layers=te_layers, safe_serialization=True,
                                              save_function=write)
    return Path(folder) / WEIGHTS_NAME


def load_into(pipe, folder):
    """``pipe.load_lora_weights(folder)``: the plain diffusers call, as a user would make it."""
    pipe.load_lora_weights(str(folder), weight_name=WEIGHTS_NAME)
    return pipe
