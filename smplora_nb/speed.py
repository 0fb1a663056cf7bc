"""This machine's speed in one number, and the demo's expected minutes that read it (issue 29).

The 2-core machines of this project differ by 1.6x between kinds and by 2.2x between days of one kind
(benchmarks/RESULTS.md, "Where the demo's time goes"), so a time measured once says little about the next machine.
``calibrate`` measures the unit that almost all of ``make demo`` is made of: one forward and backward pass of the
tiny profile's U-Net (built at its default sizes from a fixed seed; nothing is downloaded or pretrained) on a batch
of 32, in one thread, the median of ``REPEATS`` after one warm-up: about a second, kept for the process and, for
``MAX_AGE`` seconds, for the next processes on this machine (``outputs/cache/speed.json``, keyed by the CPU, its
cores and torch's version): the six notebooks of ``make demo`` and the tests' notebooks measure once, not each.
``expected`` scales a notebook's measured minutes (``DEMO_MINUTES``, on the machine whose pass took
``REFERENCE_STEP`` seconds) by this machine's pass over that one; ``python -m smplora_nb speed`` prints all of them.

The side-by-side scheduler (``parallel.width``) compares the costs of jobs on one machine, where a common factor
changes nothing: it reads none.
"""
from __future__ import annotations

import statistics
import time

import torch

from . import book, config, paths, tinybase

# The reference: `make demo` of the descriptive digits, commit fdd0c5c, 2026-12-03, this project's 2-core Intel Xeon
# machine (benchmarks/RESULTS.md). REFERENCE_STEP is the median of 29 calibrations on that machine three hours
# later, nothing else running: 0.18 to 0.31 s within ten minutes, so an estimate is good to about a quarter.
REFERENCE_STEP = 0.2492
DEMO_MINUTES = {"01_data_splitting": 7.1, "02_membership_inference_attack": 7.2, "03_mp_lora_instability": 7.2,
                "04_smp_lora_training": 13.2, "05_ablations": 8.4, "06_stronger_attacks_and_baselines": 11.2}
REPEATS, BATCH = 7, 32
MAX_AGE = 3600                     # seconds a stored calibration stands for this machine (its speed drifts by the day)
_measured: float | None = None


def _unet():
    """The tiny profile's U-Net from seed 0; torch's global generator is left as it was (a notebook's draws after a
    calibration are the draws without one)."""
    cfg = config.make("tiny")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return tinybase.build_unet(cfg.model, cfg.data.resolution)


def machine() -> dict:
    """What a stored calibration must match: the CPU's name, the cores, torch's version (from ``book.machine``)."""
    here = book.machine()
    return {k: here.get(k) for k in ("cpu", "cores", "torch")}


def _stored_path():
    return paths.outputs_root() / "cache" / "speed.json"


def _stored() -> float | None:
    """The pass time stored on this machine within ``MAX_AGE`` seconds, or None."""
    rec = paths.read_cached(_stored_path(), what="measuring again")
    if not isinstance(rec, dict) or rec.get("machine") != machine() or not isinstance(rec.get("seconds"), (int, float)):
        return None
    return rec["seconds"] if 0 <= time.time() - rec.get("at", 0) <= MAX_AGE and rec["seconds"] > 0 else None


def calibrate(again: bool = False) -> float:
    """Seconds of one forward and backward pass of the tiny U-Net (batch 32, one thread) on this machine now: kept
    for the process, read from this machine's stored calibration when it is under ``MAX_AGE`` seconds old, else (or
    with ``again``) measured and stored."""
    global _measured
    if again or (_measured is None and (_measured := _stored()) is None):
        _measured = _measure()
        try:
            paths.write_json(_stored_path(), {"seconds": _measured, "at": time.time(), "machine": machine()})
        except OSError:                                  # an unwritable outputs folder: measured again next time
            pass
    return _measured


def _measure() -> float:
    unet, threads = _unet(), torch.get_num_threads()
    gen = torch.Generator().manual_seed(0)
    side, tokens = unet.config.sample_size, tinybase.MAX_TOKENS
    z = torch.randn(BATCH, unet.config.in_channels, side, side, generator=gen)
    c = torch.randn(BATCH, tokens, unet.config.cross_attention_dim, generator=gen)
    t = torch.randint(0, 1000, (BATCH,), generator=gen)
    torch.set_num_threads(1)
    try:
        times = []
        for _ in range(REPEATS + 1):
            start = time.perf_counter()
            unet(z, t, c).sample.square().mean().backward()
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(threads)
    return statistics.median(times[1:])


def factor() -> float:
    """This machine's pass over the reference machine's (2.0: twice as slow)."""
    return calibrate() / REFERENCE_STEP


def expected(stem: str, profile: str = "tiny") -> str:
    """One line: about how long notebook ``stem`` takes here at its defaults (tiny profile; "" for another)."""
    if profile != "tiny" or stem not in DEMO_MINUTES:
        return ""
    return (f"expected: about {DEMO_MINUTES[stem] * factor():.0f} min on this machine at this notebook's defaults "
            f"(a U-Net pass {calibrate():.3f} s here, {REFERENCE_STEP:.3f} s where it took {DEMO_MINUTES[stem]} min); "
            "cached runs and audits take seconds")


def report(again: bool = False) -> str:
    """Every notebook's expected minutes and the series' total, for ``python -m smplora_nb speed`` (which measures
    ``again``)."""
    calibrate(again)
    f = factor()
    lines = [f"a forward and backward pass of the tiny U-Net: {calibrate():.3f} s here, {REFERENCE_STEP:.3f} s on the "
             f"reference machine (x{f:.2f})"]
    lines += [f"  {stem:<36} about {m * f:5.1f} min" for stem, m in DEMO_MINUTES.items()]
    lines.append(f"  {'make demo (the six, empty outputs)':<36} about {sum(DEMO_MINUTES.values()) * f:5.1f} min")
    return "\n".join(lines)
