"""A run's checkpoint, saved and read in one place (smplora_nb, arXiv 2402.11989 companion).

A checkpoint is the folder ``<run>/checkpoint/``, written atomically (``paths.atomic_dir``): one file per part of
the run's state, which the loop's state (``state.State.state_dict``: the LoRA weights of the U-Net and of the text
encoder, the optimiser, the generators, the fp16 loss scale) and the method (its ``state_dict``: the proxy and its
optimiser) hand over as one dict, and ``state.json`` with the epoch and the log so far. Tensors are safetensors;
optimiser states (nested dicts of tensors and numbers) go through ``torch.save`` and are read back with
``weights_only=True``. An interrupted run resumes from it to the same final weights on CPU (``runs``).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file

from . import paths
from .train import LOG_KEYS

FILES = {"lora": "lora.safetensors", "text_encoder": "text_encoder_lora.safetensors", "optimizer": "optimizer.pt",
         "rng": "rng.safetensors", "scaler": "scaler.pt", "proxy": "proxy.safetensors",
         "proxy_optimizer": "proxy_optimizer.pt"}              # the file of each part of a run's state
OPTIONAL = ("scaler",)                                         # resumed without it where the checkpoint has none


def parts(s, method) -> dict:
    """The run's state as one dict of parts: the loop's (``State.state_dict``) and the method's."""
    return {**s.state_dict(), **method.state_dict()}


def save(folder: Path, s, method, epoch: int, log: dict) -> None:
    """Write the checkpoint of ``folder``'s run after ``epoch`` (a full disk: ``OSError``, the last one kept)."""
    with paths.atomic_dir(folder / "checkpoint") as tmp:
        for name, part in parts(s, method).items():
            write = paths.write_tensors if FILES[name].endswith(".safetensors") else paths.write_torch
            write(tmp / FILES[name], part)
        paths.write_json(tmp / "state.json", {"epoch": epoch, "log": log})


def _read_part(path: Path):
    return load_file(str(path)) if path.suffix == ".safetensors" else torch.load(path, weights_only=True)


def read(ck: Path, s, method) -> dict | None:
    """Every part of checkpoint ``ck`` that this run's state has, read (nothing applied yet), with its ``epoch`` and
    ``log``; or None when it cannot be trusted: a file that does not open or an epoch outside [1, epochs - 1]. Such
    a checkpoint is removed with one line saying so, and the run starts from the beginning."""
    tc = s.tc
    try:
        state = paths.read_json(ck / "state.json")
        epoch = state.get("epoch") if isinstance(state, dict) else None
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 1 <= epoch < tc.epochs:
            raise ValueError(f"state.json epoch {epoch!r} is not in [1, {tc.epochs - 1}]")
        if not isinstance(state.get("log"), dict) or not set(LOG_KEYS) <= set(state["log"]):
            raise ValueError("state.json has no training log")
        out = {"epoch": epoch, "log": state["log"]}
        for name in parts(s, method):
            if name not in OPTIONAL or (ck / FILES[name]).exists():
                out[name] = _read_part(ck / FILES[name])
    except Exception as e:                        # truncated, missing or foreign files, or an impossible epoch
        print(f"[smplora_nb] run {ck.parent.name}: its checkpoint cannot be resumed ({type(e).__name__}: "
              f"{str(e).splitlines()[0][:120] if str(e) else ''}); removed, training from the start", flush=True)
        shutil.rmtree(ck, ignore_errors=True)
        return None
    return out


def load(saved: dict, s, method) -> tuple[int, dict]:
    """Put a checkpoint ``read`` into the run's state and the method's; return its epoch and log."""
    s.load_state_dict(saved)
    method.load_state_dict(saved)
    return saved["epoch"], saved["log"]
