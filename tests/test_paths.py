"""paths: atomic writes, cache keys, metrics files, atomic folders, figures."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from smplora_nb import paths


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_outputs_root_follows_env(_isolated_outputs):
    root = paths.outputs_root()
    assert root == _isolated_outputs and root.is_dir()
    assert paths.stage_dir("01_x") == root / "01_x"
    assert paths.cache_dir("base") == root / "cache" / "base"
    assert (root / "cache" / "base").is_dir()


def test_write_json_atomic_and_nan_as_null(tmp_path):
    target = tmp_path / "deep" / "m.json"
    obj = {"a": math.nan, "b": [math.inf, -math.inf, 1.5], "c": np.float32("nan"), "d": np.int64(3),
           "e": (1, 2), 4: "int key"}
    assert paths.write_json(target, obj) == target
    assert os.listdir(target.parent) == ["m.json"]
    text = target.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text) == {"a": None, "b": [None, None, 1.5], "c": None, "d": 3, "e": [1, 2], "4": "int key"}
    assert paths.read_json(target) == json.loads(text)


def test_write_json_overwrites(tmp_path):
    target = tmp_path / "m.json"
    paths.write_json(target, {"v": 1})
    paths.write_json(target, {"v": 2})
    assert paths.read_json(target) == {"v": 2}
    assert _leftovers(tmp_path) == []


def test_failed_write_keeps_old_file_and_leaves_no_tmp(tmp_path, monkeypatch):
    target = tmp_path / "m.json"
    paths.write_json(target, {"v": 1})

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(paths.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        paths.write_json(target, {"v": 2})
    monkeypatch.undo()
    assert paths.read_json(target) == {"v": 1}
    assert _leftovers(tmp_path) == [] and os.listdir(tmp_path) == ["m.json"]


def test_unserialisable_json_writes_nothing(tmp_path):
    with pytest.raises(TypeError):
        paths.write_json(tmp_path / "m.json", {"x": object()})
    assert os.listdir(tmp_path) == []


def test_config_hash_stable_and_order_independent():
    a = {"lam": 0.05, "nested": {"x": 1, "y": [1, 2]}, "name": "tiny"}
    b = {"name": "tiny", "nested": {"y": [1, 2], "x": 1}, "lam": 0.05}
    h = paths.config_hash(a)
    assert h == paths.config_hash(a) == paths.config_hash(b)
    assert len(h) == 12 and all(c in "0123456789abcdef" for c in h)
    assert paths.config_hash(a, n=20).startswith(h)
    assert paths.config_hash({**a, "lam": 0.1}) != h
    assert paths.config_hash({"nested": [2, 1]}) != paths.config_hash({"nested": [1, 2]})  # lists keep order


def test_config_hash_known_value():
    # pinned so that cache keys do not silently change between versions
    import hashlib
    expected = hashlib.sha256(json.dumps({"a": 1, "b": 2}, sort_keys=True).encode()).hexdigest()[:12]
    assert paths.config_hash({"b": 2, "a": 1}) == expected


def test_metrics_round_trip(_isolated_outputs):
    metrics = {"auc": 0.5, "tpr_at_1fpr": math.nan, "runs": [1, 2]}
    path = paths.write_metrics("02_train", metrics)
    assert path == _isolated_outputs / "02_train" / "metrics.json"
    assert paths.read_metrics("02_train") == {"auc": 0.5, "tpr_at_1fpr": None, "runs": [1, 2]}


def test_read_metrics_missing(_isolated_outputs):
    with pytest.raises(FileNotFoundError, match="03_missing"):
        paths.read_metrics("03_missing")


def test_atomic_dir_success(tmp_path):
    final = tmp_path / "run"
    with paths.atomic_dir(final) as tmp:
        assert tmp != final and tmp.parent == tmp_path and tmp.is_dir()
        (tmp / "weights.bin").write_bytes(b"123")
        assert not final.exists()
    assert (final / "weights.bin").read_bytes() == b"123"
    assert _leftovers(tmp_path) == []


def test_atomic_dir_failure_leaves_nothing(tmp_path):
    final = tmp_path / "run"
    with pytest.raises(RuntimeError, match="crash"):
        with paths.atomic_dir(final) as tmp:
            (tmp / "half.bin").write_bytes(b"1")
            raise RuntimeError("crash")
    assert not final.exists()
    assert os.listdir(tmp_path) == []


def test_atomic_dir_failed_retry_keeps_complete_folder(tmp_path):
    final = tmp_path / "run"
    with paths.atomic_dir(final) as tmp:
        (tmp / "weights.bin").write_bytes(b"good")
    with pytest.raises(KeyboardInterrupt):
        with paths.atomic_dir(final) as tmp:
            (tmp / "weights.bin").write_bytes(b"bad")
            raise KeyboardInterrupt
    assert sorted(os.listdir(final)) == ["weights.bin"]
    assert (final / "weights.bin").read_bytes() == b"good"
    assert _no_locks(os.listdir(tmp_path)) == ["run"]


def test_atomic_dir_success_replaces_existing(tmp_path):
    final = tmp_path / "run"
    with paths.atomic_dir(final) as tmp:
        (tmp / "old.bin").write_bytes(b"old")
    with paths.atomic_dir(final) as tmp:
        (tmp / "new.bin").write_bytes(b"new")
    assert os.listdir(final) == ["new.bin"]
    assert _no_locks(os.listdir(tmp_path)) == ["run"]


def test_save_figure_png(_isolated_outputs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    try:
        path = paths.save_figure(fig, "04_fig", "roc")
    finally:
        plt.close(fig)
    assert path == _isolated_outputs / "04_fig" / "roc.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _leftovers(path.parent) == []


def _no_locks(names):
    """A folder's names without the entries' lock files (``paths.locked``: kept, as unlinking one is racy)."""
    return sorted(n for n in names if not n.endswith(".lock"))


# ------------------------------------------------------------------------------ issue 32: disks, permissions, keys

def test_a_full_disk_inside_atomic_dir_is_an_oserror_and_keeps_the_complete_folder(tmp_path):
    """safetensors reports a full disk in its own error type (torch as "unexpected pos"): an OSError naming the
    folder comes out, so the command line ends it in one line; the complete folder stays."""
    from safetensors import SafetensorError

    final = tmp_path / "checkpoint"
    with paths.atomic_dir(final) as tmp:
        (tmp / "state.json").write_text("complete")
    with pytest.raises(OSError) as caught:
        with paths.atomic_dir(final) as tmp:
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
    assert caught.value.errno == 28 and caught.value.filename == str(final)
    assert "No space left" in paths.disk_message(caught.value)
    assert (final / "state.json").read_text() == "complete" and _leftovers(tmp_path) == []


def test_every_writer_gives_the_usual_permissions(tmp_path):
    """safetensors' writer and mkdtemp make 0600 files and 0700 folders; every file is 0666 less the umask."""
    import torch
    from safetensors.torch import save_file

    usual = 0o666 & ~paths._umask()
    with paths.atomic_dir(tmp_path / "entry") as tmp:
        save_file({"a": torch.zeros(2)}, str(tmp / "raw.safetensors"))           # as save_pretrained does
        paths.write_tensors(tmp / "t.safetensors", {"a": torch.zeros(2)})
        paths.write_torch(tmp / "o.pt", {"step": 1})
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "entry").iterdir()}
    assert modes == {"raw.safetensors": usual, "t.safetensors": usual, "o.pt": usual}
    assert (tmp_path / "entry").stat().st_mode & 0o777 == 0o777 & ~paths._umask()


def test_a_damaged_json_is_named_once(tmp_path, capsys):
    path = tmp_path / "train_log.json"
    path.write_text('{"steps": 3, "loss"')
    assert paths.read_cached(path, what="training the run again") is None
    out = capsys.readouterr().out
    assert out.count("is damaged") == 1 and str(path) in out and not path.exists()


def test_a_base_in_the_cache_is_named_by_its_folder_not_where_outputs_lie(tmp_path, monkeypatch):
    for root in ("here", "moved"):
        monkeypatch.setenv("SMPLORA_OUTPUTS", str(tmp_path / root))
        assert paths.source_id(paths.cache_dir("base") / "b05221e92c54") == "b05221e92c54"
    assert paths.source_id("stable-diffusion-v1-5/stable-diffusion-v1-5") == "stable-diffusion-v1-5/stable-diffusion-v1-5"
    assert paths.source_id(tmp_path / "my_base") == str(tmp_path / "my_base")
