"""Independent jobs side by side on CPU, one thread each (training runs, audits), and sweeps split in shards.

The tiny model's tensors are too small for a second thread to help one job: on 2 cores, two one-thread processes
give about 1.7x the throughput of one two-thread job after another. A job's numbers depend on its thread count in
the last bits, so every CPU job goes through here with **one thread**, whatever the number of workers; results are
then the same side by side or one after another. On a GPU the jobs run one after another in this process.
"""
from __future__ import annotations

import atexit
import os

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
                 label=str) -> dict:
    """``{key: args}`` -> ``{key: fn(*args)}``, the jobs in the order given (put the longest first).

    ``fn`` and its arguments must be picklable (a module-level function): on CPU with ``workers`` > 1 (default:
    ``default_workers()``) each job runs in a spawned process with one thread and this process's outputs root;
    the processes are kept for the next call.
    """
    from concurrent.futures import as_completed

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
    pool = _pool(workers)
    futures = {pool.submit(_one_thread, fn, args, root): k for k, args in jobs.items()}
    bar = tqdm(total=len(jobs), desc=f"{desc} ({workers} processes)", disable=not progress)
    try:
        for fut in as_completed(futures):
            out[futures[fut]] = fut.result()
            bar.update()
            bar.set_postfix_str(f"done: {label(futures[fut])}")
    except BaseException:                        # a failed job: cancel the rest, start a fresh pool next time
        for fut in futures:
            fut.cancel()
        shutdown()
        raise
    finally:
        bar.close()
    return {k: out[k] for k in jobs}


_POOL: dict = {}


def _pool(workers: int):
    """The worker processes, kept between calls (spawning one costs seconds: it imports torch and diffusers)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    if _POOL.get("workers") != workers:
        shutdown()
        _POOL.update(workers=workers, pool=ProcessPoolExecutor(workers, mp_context=get_context("spawn"),
                                                               initializer=_ignore_sigint))
    return _POOL["pool"]


def _ignore_sigint() -> None:
    """Workers leave Ctrl-C (and a kernel interrupt sent to the process group) to the parent, which stops them; on
    Linux they also die with their parent (a killed kernel leaves no orphan training on)."""
    import signal
    import sys

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

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
