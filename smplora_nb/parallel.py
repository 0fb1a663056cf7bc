"""Independent jobs side by side on CPU, one thread each (training runs, audits), and sweeps split in shards.

The tiny model's tensors are too small for a second thread to help one job: on 2 cores, two one-thread processes
give about 1.7x the throughput of one two-thread job after another. A job's numbers depend on its thread count in
the last bits, so every CPU job goes through here with **one thread**, whatever the number of workers; results are
then the same side by side or one after another. On a GPU the jobs run one after another in this process.

How many jobs run at once (``width``): as many as there are cores, the longest first and the next when one ends;
or, when that would leave a core idle at the end, every job at once, sharing the cores (the OS time-slices
one-thread processes: three equal jobs on two cores end after 1.5 job lengths instead of 2). The jobs' cost
estimates decide which ends sooner.
"""
from __future__ import annotations

import atexit
import ctypes
import os
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context

import torch
from tqdm.auto import tqdm

from . import paths

SHARD_VAR = "SMPLORA_SHARD"            # "I/N": train only every N-th run, starting with the I-th (1-based)
WORKERS_VAR = "SMPLORA_WORKERS"        # worker processes of side-by-side jobs (default: the cores, at most 8)


class ShardComplete(Exception):
    """Raised inside a notebook when a ``--shard I/N`` call has trained its share of the runs."""


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"I/N"`` -> (I, N) with 1 <= I <= N; None -> None."""
    if not text:
        return None
    try:
        i, n = (int(x) for x in str(text).split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like I/N (e.g. 1/4), got {text!r}") from None
    if not 1 <= i <= n:
        raise ValueError(f"--shard {text}: need 1 <= I <= N")
    return i, n


def default_workers() -> int:
    """``SMPLORA_WORKERS`` if set (1 = every job in this process; e.g. when other work already fills the cores, as
    the two test workers of ``make test``), else the number of cores, at most 8."""
    text = os.environ.get(WORKERS_VAR, "").strip()
    if not text:
        return min(os.cpu_count() or 1, 8)
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"{WORKERS_VAR} must be a whole number >= 1, got {text!r}")
    return int(text)


def side_by_side(fn, jobs: dict, workers: int | None = None, progress: bool = True, desc: str = "jobs",
                 label=str, costs: dict | None = None) -> dict:
    """``{key: args}`` -> ``{key: fn(*args)}``, the jobs in the order given (put the longest first).

    ``fn`` and its arguments must be picklable (a module-level function): on CPU with ``workers`` > 1 (default:
    ``default_workers()``, the cores to use) each job runs in a spawned process with one thread and this process's
    outputs root, ``width(costs, workers)`` of them at once (``costs``: ``{key: relative cost}``, default all
    equal); the processes are kept for the next call.
    """
    if not jobs:
        return {}
    gpu = torch.cuda.is_available()
    workers = 1 if gpu else max(1, min(workers or default_workers(), len(jobs)))
    out = {}
    if workers == 1:                                                  # in this process (on CPU: one thread)
        threads = torch.get_num_threads()
        try:
            torch.set_num_threads(threads if gpu else 1)
            for k in tqdm(list(jobs), desc=desc, disable=not progress):
                out[k] = fn(*jobs[k])
        finally:
            torch.set_num_threads(threads)
        return out
    root = str(paths.outputs_root())
    at_once = width([(costs or {}).get(k, 1.0) for k in jobs], workers)
    pool, waiting, futures = _pool(at_once), list(jobs), {}
    bar = tqdm(total=len(jobs), desc=f"{desc} ({at_once} processes on {workers} cores)", disable=not progress)
    try:
        while waiting or futures:
            while waiting and len(futures) < at_once:                 # the next job in the order given
                k = waiting.pop(0)
                futures[pool.submit(_one_thread, fn, jobs[k], root)] = k
            done, _ = wait(futures, return_when=FIRST_COMPLETED)
            for fut in done:
                k = futures.pop(fut)
                out[k] = fut.result()
                bar.update()
                bar.set_postfix_str(f"done: {label(k)}")
    except BaseException:                        # a failed job: cancel the rest, start a fresh pool next time
        for fut in futures:
            fut.cancel()
        shutdown()
        raise
    finally:
        bar.close()
    return {k: out[k] for k in jobs}


def width(costs: list[float], cores: int) -> int:
    """How many jobs of these relative ``costs`` to run at once on ``cores``: ``cores`` (longest first, the next
    when one ends) or, if that ends later, all of them sharing the cores (at most two per core)."""
    if len(costs) <= cores or len(costs) > 2 * cores:
        return min(len(costs), cores)
    return len(costs) if _shared_end(costs, cores) < _in_turn_end(costs, cores) else cores


def _in_turn_end(costs: list[float], cores: int) -> float:
    """When ``cores`` workers finish the jobs, longest first, each taking the next job when it is free."""
    free = [0.0] * cores
    for c in sorted(costs, reverse=True):
        free[free.index(min(free))] += c
    return max(free)


def _shared_end(costs: list[float], cores: int) -> float:
    """When all jobs started at once finish on ``cores`` shared equally among the running ones."""
    left, end = sorted(costs), 0.0
    while left:
        first = left.pop(0)                                         # the shortest left ends next
        end += first / min(1.0, cores / (len(left) + 1))
        left = [c - first for c in left]
    return end


_POOL: dict = {}


def _pool(workers: int):
    """The worker processes, kept between calls (spawning one costs seconds: it imports torch and diffusers); a
    call that runs fewer jobs at once leaves the others idle."""
    if _POOL.get("workers", 0) < workers:
        shutdown()
        _POOL.update(workers=workers, pool=ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                                                               initializer=_ignore_sigint))
    return _POOL["pool"]


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C (and a kernel interrupt sent to the process group) to the parent, which stops them; on
    Linux they also die with their parent (a killed kernel leaves no orphan training on)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))          # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


@atexit.register
def shutdown() -> None:
    """Stop the worker processes (at exit, or after a failed or interrupted job: running jobs are terminated;
    interrupted training runs resume from their checkpoints)."""
    pool = _POOL.pop("pool", None)
    _POOL.pop("workers", None)
    if pool is not None:
        for proc in list(getattr(pool, "_processes", {}).values()):      # no public API before Python 3.14
            proc.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


def _one_thread(fn, args, outputs: str):
    """Worker: ``fn(*args)`` with one CPU thread and the parent's outputs root (spawned process)."""
    os.environ[paths.ENV_VAR] = outputs
    torch.set_num_threads(1)
    return fn(*args)
