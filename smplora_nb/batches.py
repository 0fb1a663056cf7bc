"""The batches of the training loop (smplora_nb, arXiv 2402.11989 companion).

* a D_tr batch of members: the next ``batch_size`` rows of the epoch's shuffled order (DP-SGD: a Poisson batch, each
  member independently with probability q = batch_size / |D_tr|), with fresh noise eps ~ N(0, I) and t ~ U{0..999};
* a balanced proxy batch for Algorithm 1's proxy step: ``half`` member_aux + ``half`` nonmember_aux rows, drawn
  with replacement, with their own noise and t.

Several processes (``accelerate launch``): ``batch_size`` and ``proxy_batch_size`` are global. Every process draws
the whole batch from the same generator (so all processes keep drawing the same random numbers) and keeps its own
equal slice, rows [r*B/P, (r+1)*B/P) (``local``).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .state import State


@dataclass
class Batch:
    """Latents (B, 4, h, w), caption embeddings (B, T, D), timesteps (B,) and noise (B, 4, h, w) of one batch;
    ``member`` (B,) bool for a proxy batch, None for a D_tr batch (all members)."""
    z0: torch.Tensor
    cond: torch.Tensor
    t: torch.Tensor
    noise: torch.Tensor
    member: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.z0)


def local(x: torch.Tensor, shard) -> torch.Tensor:
    """This process's equal slice of a batch drawn by every process: rows [r*B/P, (r+1)*B/P)."""
    rank, procs = shard
    per = len(x) // procs
    return x[rank * per:(rank + 1) * per]


def poisson_batch(n: int, rate: float, gen: torch.Generator) -> torch.Tensor:
    """Indices of a Poisson batch: each of ``n`` members independently with probability ``rate``."""
    return torch.nonzero(torch.rand(n, generator=gen) < rate).flatten()


def members(s: State, perm: torch.Tensor, step: int, poisson: bool = False) -> Batch:
    """The ``step``-th D_tr batch of an epoch whose order is ``perm`` (or a Poisson batch), this process's slice.

    ``s`` is the loop's ``state.State``. With a text-encoder LoRA the captions are encoded under it, with gradient.
    """
    idx = perm[step * s.bs:(step + 1) * s.bs] if not poisson else poisson_batch(s.n, s.bs / s.n, s.gen)
    noise = local(torch.randn(s.z0[idx].shape, generator=s.gen), s.shard).to(s.device)   # (B/P, 4, h, w)
    t = local(torch.randint(0, s.num_t, (len(idx),), generator=s.gen), s.shard).to(s.device)
    idx = local(idx, s.shard)
    cond = s.cond[idx] if s.text_encoder is None else s.text_encoder(s.ids[idx].to(s.device))[0]
    return Batch(s.z0[idx], cond, t, noise)


def proxy(s: State, half: int) -> Batch:
    """A balanced proxy batch: ``half`` member_aux + ``half`` nonmember_aux rows, this process's slice of each half.

    With a text-encoder LoRA the captions are re-encoded under it (no gradient), as the attacker queries the adapted
    model.
    """
    (zm, cm, idm), (zn, cn, idn) = s.aux
    im = torch.randint(0, len(zm), (half,), generator=s.gen)
    inn = torch.randint(0, len(zn), (half,), generator=s.gen)
    mine = local(torch.arange(half), s.shard)
    rows = torch.cat([mine, half + mine])                                            # this process's rows
    z0 = torch.cat([zm[im], zn[inn]])[rows]                                          # (2h/P, 4, h, w)
    if s.text_encoder is None:
        cond = torch.cat([cm[im], cn[inn]])[rows]                                    # (2h/P, T, D)
    else:
        with torch.no_grad():
            cond = s.text_encoder(torch.cat([idm[im], idn[inn]])[rows].to(s.device))[0]
    noise = torch.randn((2 * half,) + tuple(zm.shape[1:]), generator=s.gen)[rows].to(s.device)
    t = torch.randint(0, s.num_t, (2 * half,), generator=s.gen)[rows].to(s.device)
    return Batch(z0, cond, t, noise, rows.to(s.device) < half)


def fresh_draw(s: State, batch: Batch) -> Batch:
    """The same images with fresh noise and t (the official code's second forward for G, ``two_forwards``)."""
    b = len(batch) * s.shard[1]
    t = local(torch.randint(0, s.num_t, (b,), generator=s.gen), s.shard).to(s.device)
    noise = local(torch.randn((b,) + tuple(batch.z0.shape[1:]), generator=s.gen), s.shard).to(s.device)
    return Batch(batch.z0, batch.cond, t, noise)
