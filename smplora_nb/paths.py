"""Where outputs go, atomic writes, and cache keys (part of smplora_nb, arXiv 2402.11989 companion).

Every notebook writes ``outputs/<notebook-stem>/metrics.json`` and its PNG figures through this module. Writes go to
a temporary sibling first and are renamed into place, so a crash never leaves a half-written file or folder behind.
Cache keys are short hashes of a JSON-serialisable description (config, data hashes, code version). Every file is
written the same way (``atomic_write_bytes``, ``write_tensors``, ``write_torch``, ``atomic_dir``): with the usual
permissions, and a full, read-only or forbidden disk raises an ``OSError`` naming the path (``disk_error``).
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import time
from pathlib import Path

ENV_VAR = "SMPLORA_OUTPUTS"
STAGING_VAR = "SMPLORA_STAGING"          # set by the runner: a notebook's own outputs go to this folder until it succeeds


def outputs_root() -> Path:
    """``$SMPLORA_OUTPUTS`` if set; else ``outputs/`` of the source checkout; else ``./outputs``."""
    if os.environ.get(ENV_VAR):
        root = Path(os.environ[ENV_VAR])
    else:
        repo = Path(__file__).resolve().parent.parent
        root = repo / "outputs" if (repo / "pyproject.toml").exists() else Path.cwd() / "outputs"
    root.mkdir(parents=True, exist_ok=True)
    return root


def stage_dir(stem: str) -> Path:
    """``outputs/<stem>/`` (created), e.g. ``stage_dir("01_data_splitting")``.

    Under the runner (``$SMPLORA_STAGING`` set) a notebook writes into a staging folder that replaces
    ``outputs/<stem>/`` only when the whole notebook succeeded: a failed run never overwrites a completed one.
    """
    staging = os.environ.get(STAGING_VAR)
    path = Path(staging) / stem if staging else outputs_root() / stem
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_dir(kind: str) -> Path:
    """``outputs/cache/<kind>/`` for artifacts shared between notebooks (base models, runs)."""
    path = outputs_root() / "cache" / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def source_id(base) -> str:
    """A base model as cache keys name it: a base built under ``outputs/cache/base/`` by its folder name (the same
    wherever ``outputs/`` is moved or mounted), any other by its id or path."""
    return Path(str(base)).name if Path(str(base)).parent == cache_dir("base") else str(base)


def config_hash(obj, n: int = 12) -> str:
    """Stable short hash of a JSON-serialisable object (dict keys sorted)."""
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:n]


_FULL = "free some space (or set SMPLORA_OUTPUTS to a disk with room) and run again: finished work is kept"
# the failures of the file system that end in one line (the command line, issue 32), and what to do about each
DISK_ERRORS = {errno.ENOSPC: _FULL, errno.EDQUOT: _FULL, errno.EFBIG: _FULL,
               errno.EROFS: "the file system is read-only: set SMPLORA_OUTPUTS to a writable folder",
               errno.EACCES: "set SMPLORA_OUTPUTS to a folder you may write (or change the permissions)",
               errno.EPERM: "set SMPLORA_OUTPUTS to a folder you may write (or change the permissions)",
               errno.ENOTDIR: "a part of the path is a file, not a folder: set SMPLORA_OUTPUTS to a folder",
               errno.EEXIST: "a file stands where a folder should be: set SMPLORA_OUTPUTS to a folder"}


def disk_error(e: BaseException) -> OSError | None:
    """The failure of the file system that ``e`` is (an ``OSError`` with an errno of ``DISK_ERRORS``) or reports
    (safetensors' writer: "... (os error 28) ..."), else None."""
    if isinstance(e, OSError):
        return e if e.errno in DISK_ERRORS else None
    code = re.search(r"\(os error (\d+)\)", str(e))
    if code is None or int(code.group(1)) not in DISK_ERRORS:
        return None
    where = re.search(r'at path "([^"]+)"', str(e))
    return OSError(int(code.group(1)), os.strerror(int(code.group(1))), where.group(1) if where else None)


def disk_message(err: OSError) -> str:
    """One line: the path, what went wrong and what to do."""
    return f"{err.filename or 'the outputs folder'}: {err.strerror}; {DISK_ERRORS[err.errno]}"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())                       # mkstemp makes 0600; keep the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno and not e.filename:      # a full disk, found by write(): name it
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    return path


def write_tensors(path: Path, tensors: dict, metadata: dict | None = None) -> Path:
    """A safetensors file written like every other file (safetensors' own writer makes it mode 0600 and reports a
    full disk in its own error type)."""
    from safetensors.torch import save         # torch: slow to import; paths stays light (config, runner, tables)

    return atomic_write_bytes(path, save(tensors, metadata=metadata))


def write_torch(path: Path, obj) -> Path:
    """``torch.save(obj)`` written like every other file (torch's own writer reports a full disk as "unexpected
    pos")."""
    import torch                               # torch: slow to import; paths stays light (config, runner, tables)

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def write_json(path: Path, obj) -> Path:
    """Write ``obj`` as indented JSON, atomically. NaN/inf are written as null."""
    return atomic_write_bytes(path, json.dumps(_finite(obj), indent=2, sort_keys=True).encode())


def read_json(path: Path):
    """The JSON in ``path``; a damaged file (truncated, not JSON) raises ``ValueError`` naming it."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is damaged (not valid JSON: {e}); delete it and run again") from None


def read_cached(path: Path, load=None, what: str = "recomputing it"):
    """A cache file's content through ``load`` (default ``read_json``), or None when it is missing or damaged: a
    damaged file (truncated, foreign) is removed with one line saying so, and the caller recomputes it."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        return (load or _load_json)(path)
    except Exception as e:                             # JSON, safetensors or numpy errors of a damaged file
        print(f"[smplora_nb] {path} is damaged ({type(e).__name__}: {str(e).splitlines()[0][:100]}): removed, "
              f"{what}", flush=True)
        path.unlink(missing_ok=True)
        return None


def _load_json(path: Path):
    with open(path, "rb") as f:
        return json.loads(f.read())


@contextlib.contextmanager
def locked(entry: Path, shared: bool = False):
    """Hold the lock of cache entry ``entry`` (a file or folder, which need not exist): ``.<name>.lock`` beside it,
    an ``fcntl.flock``, which every process on one machine honours (machines sharing ``outputs/`` over NFS get it
    through the NFS client's lock emulation, which this project has not tested across machines). Building or replacing
    an entry takes it exclusively and checks again for a complete entry after taking it, so two processes never
    build the same entry at once; a reader that may race a replacement takes it ``shared``."""
    entry = Path(entry)
    entry.parent.mkdir(parents=True, exist_ok=True)
    lock = (entry.parent / f".{entry.name}.lock").resolve()
    if lock in _HELD:                                  # already ours (re-entrant within one process)
        yield
        return
    with open(lock, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_SH if shared else fcntl.LOCK_EX)
        _HELD.add(lock)
        try:
            yield
        finally:
            _HELD.discard(lock)
            fcntl.flock(f, fcntl.LOCK_UN)


_HELD: set = set()                                     # lock files this process holds


def _finite(obj):
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "ndim", 1) == 0:  # numpy / torch scalars
        return _finite(obj.item())
    return obj


def write_metrics(stem: str, metrics: dict) -> Path:
    """Write ``outputs/<stem>/metrics.json`` atomically and return its path."""
    return write_json(stage_dir(stem) / "metrics.json", metrics)


def read_metrics(stem: str) -> dict:
    """Read another notebook's ``metrics.json`` (the only way notebooks share results)."""
    path = outputs_root() / stem / "metrics.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: run notebook {stem} first")
    return read_json(path)


def save_figure(fig, stem: str, name: str) -> Path:
    """Save a matplotlib figure as ``outputs/<stem>/<name>.png`` atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    return atomic_write_bytes(stage_dir(stem) / f"{name}.png", buf.getvalue())


def replace_dir(src: Path, final: Path) -> Path:
    """Move the complete folder ``src`` to ``final``, replacing what was there, under ``final``'s lock (two writers
    take turns); a crash never leaves neither."""
    src, final = Path(src), Path(final)
    old = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".old"))
    with locked(final):
        if final.exists():                       # move the old one aside first
            os.replace(final, old / final.name)
        os.replace(src, final)
    shutil.rmtree(old, ignore_errors=True)
    return final


def clean_stale(folder: Path, max_age_s: float = 6 * 3600) -> list[Path]:
    """Remove what killed processes left in ``folder``: a notebook's staging folder (``.*.staging``) whose runner
    no longer holds its lock, and temporary siblings (``.*.tmp``, ``.*.old``) older than ``max_age_s``. Return
    what was removed."""
    gone = []
    for p in sorted(Path(folder).glob(".*")):
        if p.suffix == ".staging":
            lock = p.parent / f".{p.name}.lock"
            with open(lock, "a+") as f:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)          # free: its runner is gone
                except BlockingIOError:
                    continue
                shutil.rmtree(p, ignore_errors=True)
                lock.unlink(missing_ok=True)
            gone.append(p)
        elif p.suffix in (".tmp", ".old") and time.time() - p.stat().st_mtime > max_age_s:
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            gone.append(p)
    return gone


@contextlib.contextmanager
def atomic_dir(final: Path):
    """Yield a temporary folder; on success it is renamed to ``final``, on error it is removed.

    A complete ``final`` is never replaced by a failed attempt. Whatever wrote into the folder (``save_pretrained``,
    safetensors), its files get the usual permissions, and a full or read-only disk ends as an ``OSError``.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}.", suffix=".tmp"))
    try:
        yield tmp
        _usual_permissions(tmp)
        replace_dir(tmp, final)
    except Exception as e:
        err = disk_error(e)
        if err is None or (err is e and e.filename):
            raise
        raise OSError(err.errno, err.strerror, err.filename or str(final)) from e   # e.g. safetensors' error type
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _usual_permissions(folder: Path) -> None:
    """Folders 0777 and files 0666, less the umask (mkdtemp and safetensors make them 0700 and 0600)."""
    mask = _umask()
    os.chmod(folder, 0o777 & ~mask)
    for root, dirs, files in os.walk(folder):
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(root, name), 0o666 & ~mask)
