"""Test helper: write a diffusers SD pipeline folder as one original-layout (LDM) ``.safetensors`` checkpoint.

Real users get such files from model hubs (the official SMP-LoRA scripts take one); diffusers can read them
(``from_single_file``) but ships no writer, so the tests build one from the tiny model with this key mapping. It
is written for any depth of the SD v1 layout (blocks read from the configs), and ``test_models`` checks that
diffusers' own reader maps it back to identical weights.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

RESNET = (("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("time_emb_proj", "emb_layers.1"),
          ("norm2", "out_layers.0"), ("conv2", "out_layers.3"), ("conv_shortcut", "skip_connection"))


def _unet_prefixes(cfg: dict) -> list[tuple[str, str]]:
    """(diffusers prefix, LDM prefix) pairs for the U-Net's blocks."""
    lpb, nb = cfg["layers_per_block"], len(cfg["block_out_channels"])
    out = [("time_embedding.linear_1.", "time_embed.0."), ("time_embedding.linear_2.", "time_embed.2."),
           ("conv_in.", "input_blocks.0.0."), ("conv_norm_out.", "out.0."), ("conv_out.", "out.2."),
           ("mid_block.resnets.0.", "middle_block.0."), ("mid_block.attentions.0.", "middle_block.1."),
           ("mid_block.resnets.1.", "middle_block.2.")]
    for i in range(nb):
        for j in range(lpb):
            n = 1 + i * (lpb + 1) + j
            out += [(f"down_blocks.{i}.resnets.{j}.", f"input_blocks.{n}.0."),
                    (f"down_blocks.{i}.attentions.{j}.", f"input_blocks.{n}.1.")]
        if i < nb - 1:
            out.append((f"down_blocks.{i}.downsamplers.0.conv.", f"input_blocks.{(i + 1) * (lpb + 1)}.0.op."))
        has_attn = "CrossAttn" in cfg["up_block_types"][i]
        for j in range(lpb + 1):
            n = i * (lpb + 1) + j
            out += [(f"up_blocks.{i}.resnets.{j}.", f"output_blocks.{n}.0."),
                    (f"up_blocks.{i}.attentions.{j}.", f"output_blocks.{n}.1.")]
        if i < nb - 1:
            out.append((f"up_blocks.{i}.upsamplers.0.", f"output_blocks.{i * (lpb + 1) + lpb}.{2 if has_attn else 1}."))
    return out


def _rename(key: str, prefixes) -> str:
    for hf, ldm in sorted(prefixes, key=lambda p: -len(p[0])):
        if key.startswith(hf):
            rest = key[len(hf):]
            if ".resnets." in hf or hf.startswith("mid_block.resnets"):
                for a, b in RESNET:
                    if rest.startswith(a + "."):
                        rest = b + rest[len(a):]
            return ldm + rest
    raise KeyError(f"no LDM name for {key}")


def _vae_prefixes(cfg: dict) -> list[tuple[str, str]]:
    nb, lpb = len(cfg["block_out_channels"]), cfg["layers_per_block"]
    out = [("encoder.mid_block.resnets.0.", "encoder.mid.block_1."), ("encoder.mid_block.resnets.1.", "encoder.mid.block_2."),
           ("decoder.mid_block.resnets.0.", "decoder.mid.block_1."), ("decoder.mid_block.resnets.1.", "decoder.mid.block_2."),
           ("encoder.mid_block.attentions.0.", "encoder.mid.attn_1."), ("decoder.mid_block.attentions.0.", "decoder.mid.attn_1."),
           ("encoder.conv_norm_out.", "encoder.norm_out."), ("decoder.conv_norm_out.", "decoder.norm_out.")]
    for i in range(nb):
        out += [(f"encoder.down_blocks.{i}.resnets.{j}.", f"encoder.down.{i}.block.{j}.") for j in range(lpb)]
        out += [(f"decoder.up_blocks.{i}.resnets.{j}.", f"decoder.up.{nb - 1 - i}.block.{j}.") for j in range(lpb + 1)]
        if i < nb - 1:
            out += [(f"encoder.down_blocks.{i}.downsamplers.0.", f"encoder.down.{i}.downsample."),
                    (f"decoder.up_blocks.{i}.upsamplers.0.", f"decoder.up.{nb - 1 - i}.upsample.")]
    return out


VAE_ATTN = {"group_norm.": "norm.", "to_q.": "q.", "to_k.": "k.", "to_v.": "v.", "to_out.0.": "proj_out."}


def _vae_key(key: str, prefixes) -> str:
    for hf, ldm in sorted(prefixes, key=lambda p: -len(p[0])):
        if key.startswith(hf):
            rest = key[len(hf):]
            if "attentions" in hf:
                rest = next((VAE_ATTN[a] + rest[len(a):] for a in VAE_ATTN if rest.startswith(a)), rest)
            return ldm + rest.replace("conv_shortcut", "nin_shortcut")
    return key                                              # conv_in, conv_out, quant_conv, post_quant_conv


def export(folder, out_path) -> Path:
    """``folder`` (a saved diffusers SD pipeline) -> ``out_path`` (one LDM-layout safetensors file)."""
    folder, state = Path(folder), {}
    ucfg = json.loads((folder / "unet" / "config.json").read_text())
    up = _unet_prefixes(ucfg)
    for k, v in load_file(str(folder / "unet" / "diffusion_pytorch_model.safetensors")).items():
        state["model.diffusion_model." + _rename(k, up)] = v
    vcfg = json.loads((folder / "vae" / "config.json").read_text())
    vp = _vae_prefixes(vcfg)
    for k, v in load_file(str(folder / "vae" / "diffusion_pytorch_model.safetensors")).items():
        name = _vae_key(k, vp)
        if ".mid.attn_1." in name and name.split(".")[-2] in ("q", "k", "v", "proj_out") and v.ndim == 2:
            v = v[:, :, None, None]                       # LDM's attention projections are 1x1 convolutions
        state["first_stage_model." + name] = v
    for k, v in load_file(str(folder / "text_encoder" / "model.safetensors")).items():
        k = k if k.startswith("text_model.") else "text_model." + k    # transformers 5 drops the prefix
        state["cond_stage_model.transformer." + k] = v
    save_file({k: v.contiguous() for k, v in state.items()}, str(out_path))
    return Path(out_path)
