"""Reliability (issue 18): damaged caches, near-duplicate images, concurrent runs and bad input get a clear answer.

One test per probe of the issue: each failed on the code before it (a silently "finished" run, a traceback, two
trainings of one run, a near-duplicate on both sides of the split, a staging folder left forever).
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from smplora_nb import config, data, lora, paths, runner, runs, sets

CLI = [sys.executable, "-m", "smplora_nb"]


def _weights(folder):
    """A copy in memory (safetensors maps the file, and these tests truncate files in place)."""
    return {k: v.clone() for k, v in load_file(str(folder / "lora" / lora.WEIGHTS_NAME)).items()}


def _truncate(path, n=1000):
    raw = path.read_bytes()
    path.write_bytes(raw[:min(n, len(raw) // 2)])


# ------------------------------------------------------------------------------------------- the run cache

def test_a_truncated_final_lora_is_trained_again_not_finished(tiny_setup, capsys):
    cfg, _, splits, base = tiny_setup
    cfg = config.replace(cfg, epochs=2, seed=11)
    folder = runs.train(cfg, splits, base, progress=False)
    reference = _weights(folder)
    _truncate(folder / "lora" / lora.WEIGHTS_NAME)
    assert not runs.finished(folder, cfg.train)
    assert "does not open" in capsys.readouterr().out
    again = _weights(runs.train(cfg, splits, base, progress=False))
    assert all(torch.equal(reference[k], again[k]) for k in reference)             # the same run, recomputed


@pytest.mark.parametrize("edit", ["epoch 150", "truncated state.json", "truncated lora.safetensors",
                                  "truncated optimizer.pt", "missing rng.safetensors"])
def test_a_damaged_checkpoint_is_not_resumed(tiny_setup, monkeypatch, tmp_path, capsys, edit):
    """Resumed only if its epoch is in range and its files open; otherwise one line, and training from the start
    reaches the weights of an uninterrupted run (not 80 steps of a 400-step run)."""
    cfg, _, splits, base = tiny_setup
    cfg = config.replace(cfg, epochs=4, seed=12)
    reference = _weights(runs.train(cfg, splits, base, progress=False))
    monkeypatch.setenv("SMPLORA_OUTPUTS", str(tmp_path / "damaged"))
    with pytest.raises(KeyboardInterrupt):
        runs.train(cfg, splits, base, checkpoint_every=2, progress=False, interrupt_at_epoch=2)
    ck = runs.run_folder(cfg, splits, base) / "checkpoint"
    if edit == "epoch 150":
        state = json.loads((ck / "state.json").read_text())
        (ck / "state.json").write_text(json.dumps({**state, "epoch": 150}))
    elif edit.startswith("truncated"):
        _truncate(ck / edit.split()[1], 40)
    else:
        (ck / "rng.safetensors").unlink()
    folder = runs.train(cfg, splits, base, checkpoint_every=2, progress=False)
    assert "checkpoint cannot be resumed" in capsys.readouterr().out
    log = paths.read_json(folder / "train_log.json")
    assert log["resumed_from_epoch"] == 0 and log["steps"] == 4 * int(np.ceil(12 / cfg.train.batch_size))
    again = _weights(folder)
    assert all(torch.equal(reference[k], again[k]) for k in reference)


@pytest.mark.parametrize("damage", ["truncated", "wrong steps", "keys missing"])
def test_a_damaged_train_log_means_not_finished(tiny_setup, capsys, damage):
    cfg, _, splits, base = tiny_setup
    cfg = config.replace(cfg, epochs=2, seed=13)
    folder = runs.train(cfg, splits, base, progress=False)
    log_path = folder / "train_log.json"
    log = json.loads(log_path.read_text())
    if damage == "truncated":
        _truncate(log_path, 200)
    elif damage == "wrong steps":
        log_path.write_text(json.dumps({**log, "steps": 3, "loss": log["loss"][:3]}))
    else:
        log_path.write_text(json.dumps({k: v for k, v in log.items() if k != "steps"}))
    assert not runs.finished(folder, cfg.train)
    out = capsys.readouterr().out
    assert str(log_path.name) in out and "again" in out
    assert runs.finished(runs.train(cfg, splits, base, progress=False), cfg.train)


def test_damaged_cache_files_are_recomputed_and_damaged_metrics_named(tiny_setup, capsys):
    cfg, items, splits, base = tiny_setup
    from smplora_nb import models

    parts = models.load_pipeline(base).components
    z0, cond = models.encode_items(parts, splits["member_te"], source=base)
    [cached] = list(paths.cache_dir("latents").glob("*.safetensors"))
    _truncate(cached, 100)
    z1, cond1 = models.encode_items(parts, splits["member_te"], source=base)
    assert "is damaged" in capsys.readouterr().out
    assert torch.equal(z0, z1) and torch.equal(cond, cond1) and load_file(str(cached))["z0"].shape == z0.shape
    paths.write_metrics("02_membership_inference_attack", {"claims": []})
    _truncate(paths.outputs_root() / "02_membership_inference_attack" / "metrics.json", 5)
    with pytest.raises(ValueError, match="02_membership_inference_attack.metrics.json is damaged"):
        paths.read_metrics("02_membership_inference_attack")


# ----------------------------------------------------------------------------------------- concurrency

STRESS = textwrap.dedent("""
    import sys
    from pathlib import Path
    from smplora_nb import paths
    final, tag, n = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    for k in range(n):
        with paths.atomic_dir(final) as tmp:
            for name in ("a", "b", "c"):
                (tmp / name).write_text(f"{tag}-{k}")
""")

READER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from smplora_nb import paths
    final, seconds = Path(sys.argv[1]), float(sys.argv[2])
    missing = mixed = reads = 0
    end = time.time() + seconds
    while time.time() < end:
        with paths.locked(final, shared=True):
            if not final.exists():
                missing += 1
                continue
            got = {(final / n).read_text() for n in ("a", "b", "c")}
        reads += 1
        mixed += len(got) != 1
    print(missing, mixed, reads)
""")


def test_two_writers_and_a_reader_on_one_entry(tmp_path):
    final = tmp_path / "entry"
    with paths.atomic_dir(final) as tmp:                      # a complete entry before the writers start
        for name in ("a", "b", "c"):
            (tmp / name).write_text("first")
    env = {**os.environ, "PYTHONPATH": str(runner.NOTEBOOK_DIR.parent)}
    writers = [subprocess.Popen([sys.executable, "-c", STRESS, str(final), tag, "150"], env=env,
                                stderr=subprocess.PIPE, text=True) for tag in ("w1", "w2")]
    reader = subprocess.run([sys.executable, "-c", READER, str(final), "3"], env=env, capture_output=True,
                            text=True, timeout=120)
    errors = [w.communicate(timeout=120)[1] for w in writers]
    assert [w.returncode for w in writers] == [0, 0], errors
    missing, mixed, reads = map(int, reader.stdout.split())
    assert (missing, mixed) == (0, 0) and reads > 0
    assert {(final / n).read_text() for n in ("a", "b", "c")} in ({"w1-149"}, {"w2-149"})
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == ["entry"]   # no leftovers


TRAIN_TWICE = textwrap.dedent("""
    import sys
    from smplora_nb import config, data, models, runs, sets
    sys.path.insert(0, sys.argv[2])
    from conftest import TINY_FAST
    real = runs._train
    def counted(*a, **k):
        open(sys.argv[1], "a").write("trained\\n")
        return real(*a, **k)
    runs._train = counted
    cfg = config.make("tiny", **{**TINY_FAST, "epochs": 6})
    items = data.load_dataset("digits", 16)
    splits = sets.make_splits(items, cfg.split)
    base = models.base_model(cfg, splits, items)
    print(runs.train(cfg, splits, base, progress=False))
""")


def test_two_identical_train_calls_train_once(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(runner.NOTEBOOK_DIR.parent), "SMPLORA_OUTPUTS": str(tmp_path / "out")}
    marks = tmp_path / "trained.txt"
    procs = [subprocess.Popen([sys.executable, "-c", TRAIN_TWICE, str(marks), str(runner.NOTEBOOK_DIR.parent / "tests")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-2000:] for o in outs]
    assert outs[0][0] == outs[1][0]                                            # the same run folder
    assert marks.read_text().count("trained") == 1                            # one trained, the other waited
    assert len(list((tmp_path / "out" / "cache" / "base").glob("*/model_index.json"))) == 1


# ------------------------------------------------------------------------------------ near-duplicate images

def test_near_duplicates_at_the_model_resolution_are_dropped_and_reported(tmp_path, capsys):
    """The same pictures saved at 16 px and at 40 px: after resizing to 16 px they are copies, which the exact
    hash of the source pixels does not see."""
    from PIL import Image

    folder = tmp_path / "pics"
    folder.mkdir()
    digits = data.load_dataset("digits", 16)[:60]
    for i, it in enumerate(digits):
        Image.fromarray(it.image).save(folder / f"small_{i}.png")
        (folder / f"small_{i}.txt").write_text(it.caption)
        if i < 20:
            Image.fromarray(it.image).resize((40, 40), Image.BICUBIC).save(folder / f"large_{i}.png")
            (folder / f"large_{i}.txt").write_text(it.caption)
    items = data.load_dataset(f"folder:{folder}", 16)
    assert len({it.sha256 for it in items}) == 80                        # the source pixels all differ
    cfg = config.make("tiny", dataset=f"folder:{folder}", member_aux=10, member_te=10, nonmember_aux=10,
                      nonmember_te=10)
    loaded, splits = sets.prepare(cfg)
    assert "20 duplicate or near-duplicate image(s) dropped" in capsys.readouterr().out
    kept = [it for name in sets.SETS for it in splits[name]]
    ids = {it.id for it in kept}
    assert len(kept) == 60 and all(len(ids & {f"small_{i}.png", f"large_{i}.png"}) == 1 for i in range(20))
    man = sets.manifest(splits, cfg, loaded)
    assert len(man["dropped"]) == 20 and all("near duplicate" in d["reason"] for d in man["dropped"])
    mixed = {"member_aux": [it for it in items if it.id == "small_0.png"],
             "nonmember_te": [it for it in items if it.id == "large_0.png"]}
    with pytest.raises(ValueError, match="near-duplicate"):
        sets.check_disjoint(mixed)


# --------------------------------------------------------------------------------------- the command line

@pytest.mark.parametrize("args, words", [
    (["notebooks", "--only", "02", "-p", "epochs", "abc"], "epochs must be an integer"),
    (["notebooks", "--profile", "nope"], "profile must be one of"),
    (["train", "-p", "unet_channels", "32"], "unet_channels must be a tuple"),
    (["train", "-p", "snapshot_epochs", "5"], "snapshot_epochs must be a tuple"),
    (["train", "-p", "dataset", "folder:/no/such/folder"], "does not exist"),
])
def test_the_cli_ends_known_failures_in_one_line(args, words):
    res = subprocess.run(CLI + args, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and words in res.stderr, res.stderr[-2000:]
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert not list(paths.outputs_root().glob("*.failed")) and not list(paths.outputs_root().glob(".*.staging"))


def test_the_cli_names_a_garbage_checkpoint_and_a_damaged_run_log(tmp_path, tiny_setup):
    garbage = tmp_path / "model.safetensors"
    garbage.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}" + os.urandom(64))
    res = subprocess.run(CLI + ["train", "-p", "base", str(garbage), "-p", "epochs", "1"], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 2 and "Traceback" not in res.stderr and str(garbage) in res.stderr, res.stderr[-2000:]


def test_a_caption_that_is_not_utf8_is_named(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "a.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match=r"a\.txt is not UTF-8"):
        data.load_dataset(f"folder:{tmp_path}", 16)


def test_a_killed_runs_staging_folder_is_cleaned_and_a_live_one_kept(tmp_path, capsys):
    root = paths.outputs_root()
    dead = root / ".01_data_splitting.abc.staging"
    (dead / "01_data_splitting").mkdir(parents=True)
    live = root / ".02_membership_inference_attack.def.staging"
    live.mkdir()
    with paths.locked(live):                                   # its runner is still at work
        gone = paths.clean_stale(root)
    assert gone == [dead] and not dead.exists() and live.exists()


def test_a_refused_base_leaves_nothing_on_disk(tmp_path):
    pickle = tmp_path / "model.ckpt"
    pickle.write_bytes(b"not a safetensors file")
    res = subprocess.run(CLI + ["train", "-p", "base", str(pickle), "-p", "epochs", "1"], capture_output=True,
                         text=True, timeout=300, env={**os.environ, "SMPLORA_OUTPUTS": str(tmp_path / "out")})
    assert res.returncode == 2 and "pickle checkpoints are refused" in res.stderr
    assert not (tmp_path / "out" / "cache" / "runs").exists() or not any((tmp_path / "out" / "cache" / "runs").iterdir())


# ------------------------------------------------------------ issue 32: full, read-only and forbidden disks

def _one_line_error(capsys, *words):
    """The command line's error: one last line (after any progress bars), no traceback."""
    lines = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in lines if line.startswith("error: ")]
    assert not any("Traceback" in line for line in lines) and errors == lines[-1:], lines[-20:]
    assert all(w in errors[0] for w in words), errors[0]


@pytest.mark.parametrize("problem", ["a path under a file", "a file", "read-only", "forbidden"])
def test_the_cli_ends_an_unwritable_outputs_folder_in_one_line(tmp_path, monkeypatch, capsys, problem):
    """Each used to end in a traceback and exit 1 (we run as root, so read-only and forbidden are made by a write
    that fails with their errno, as a read-only mount and /sys did)."""
    import errno

    from smplora_nb.__main__ import main

    (tmp_path / "file").write_text("not a folder")
    target = {"a path under a file": tmp_path / "file" / "outputs", "a file": tmp_path / "file"}.get(
        problem, tmp_path / "locked" / "outputs")
    if problem in ("read-only", "forbidden"):
        code, text = (errno.EROFS, "Read-only file system") if problem == "read-only" else (errno.EACCES,
                                                                                          "Permission denied")
        real = os.mkdir

        def refused(path, *a, **k):
            if str(path).startswith(str(tmp_path / "locked")):
                raise OSError(code, text, str(path))
            return real(path, *a, **k)

        monkeypatch.setattr(os, "mkdir", refused)
    monkeypatch.setenv("SMPLORA_OUTPUTS", str(target))
    assert main(["notebooks", "--only", "01", "--no-progress"]) == 2
    _one_line_error(capsys, str(tmp_path), "SMPLORA_OUTPUTS")


@pytest.fixture
def small_disk(tmp_path):
    """An 8 MB tmpfs (root may mount one; where it may not, the test is skipped), unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def _fill(disk):
    with open(disk / "filler", "wb") as f:
        with pytest.raises(OSError):
            while True:
                f.write(b"\0" * 65536)
                f.flush()


def test_a_full_disk_while_checkpointing_ends_in_one_line_and_loses_nothing(tiny_setup, small_disk, monkeypatch,
                                                                             capsys):
    """torch's writer said "unexpected pos" (exit 1, a traceback); now one line naming the checkpoint, exit 2, and
    the finished run next to it is untouched."""
    from smplora_nb.__main__ import main

    cfg, _, splits, base = tiny_setup
    monkeypatch.setenv("SMPLORA_OUTPUTS", str(small_disk / "outputs"))
    first = config.replace(cfg, epochs=2, seed=31)
    done = runs.train(first, splits, base, progress=False)
    kept = _weights(done)
    _fill(small_disk)
    capsys.readouterr()
    args = [a for k, v in {**TINY_FAST_ARGS, "epochs": 4, "seed": 32, "base": str(base)}.items()
            for a in ("-p", k, str(v))]
    assert main(["train", *args]) == 2
    _one_line_error(capsys, "No space left on device", "checkpoint", "free some space")
    assert runs.finished(done, first.train) and all(torch.equal(kept[k], v) for k, v in _weights(done).items())
    assert not [p for p in (small_disk / "outputs").rglob("*") if p.name.endswith(".tmp")]
    (small_disk / "filler").unlink()
    assert main(["train", *args]) == 0                           # with room again, it trains


# captions "shared": the items of tiny_setup (data.load_dataset's default), so the CLI run reuses their cached latents
TINY_FAST_ARGS = dict(captions="shared", vae_steps=2, pretrain_steps=3, pretrain_batch_size=8, public=40, member_aux=6, member_te=6,
                      nonmember_aux=6, nonmember_te=6, lora_rank=4, lora_alpha=4.0, batch_size=4, lr=1e-2)


def _notebook(folder, *cells):
    """A notebook of the series' shape: a parameters cell, then ``cells``."""
    import nbformat

    folder.mkdir(exist_ok=True)
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "language": "python",
                                                           "display_name": "Python 3"},
                                            "language_info": {"name": "python"}})
    nb.cells = [nbformat.v4.new_code_cell('profile = "tiny"', metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, str(folder / "01_probe.ipynb"))
    return folder


def test_a_notebook_cell_on_a_full_disk_ends_the_cli_in_one_line(tmp_path, monkeypatch, capsys):
    import functools

    from smplora_nb.__main__ import main

    folder = _notebook(tmp_path / "nbs", "raise OSError(28, 'No space left on device', '/data/outputs/cache/runs/ab')")
    monkeypatch.setattr(runner, "run", functools.partial(runner.run, folder=folder))
    assert main(["notebooks", "--no-progress"]) == 2
    _one_line_error(capsys, "/data/outputs/cache/runs/ab: No space left on device", "free some space")


def test_the_terminal_shows_what_a_notebook_said_about_damaged_files(tmp_path, capsys):
    folder = _notebook(tmp_path / "nbs", "print('[smplora_nb] /x/latents/ab.safetensors is damaged (...): removed, "
                                         "recomputing it')\nprint('other output')")
    runner.run(folder=folder, progress=False)
    out = capsys.readouterr().out
    assert "[smplora_nb] 01_probe: /x/latents/ab.safetensors is damaged (...): removed, recomputing it" in out
    assert "other output" not in out


def test_every_file_of_a_run_has_the_usual_permissions(tiny_setup, capsys):
    """LoRA weights, snapshots and checkpoints were 0600 (safetensors' writer) beside 0644 files."""
    cfg, _, splits, base = tiny_setup
    cfg = config.replace(cfg, epochs=4, seed=33, snapshot_epochs=(2,))
    with pytest.raises(KeyboardInterrupt):
        runs.train(cfg, splits, base, checkpoint_every=2, progress=False, interrupt_at_epoch=2)
    folder = runs.run_folder(cfg, splits, base)
    modes = {p.relative_to(folder).as_posix(): p.stat().st_mode & 0o777 for p in folder.rglob("*") if p.is_file()}
    assert {"checkpoint/lora.safetensors", "snapshots/epoch_0002/lora/pytorch_lora_weights.safetensors"} <= set(modes)
    assert set(modes.values()) == {0o666 & ~paths._umask()}, modes


def test_the_cli_refuses_a_base_folder_with_pickle_weights_in_one_line(tiny_setup, tmp_path, capsys):
    """It was refused unread, but in a 47-line diffusers traceback and exit 1."""
    import shutil

    from smplora_nb.__main__ import main

    _, _, _, base = tiny_setup
    bad = tmp_path / "base"
    shutil.copytree(base, bad)
    for f in (bad / "unet").glob("*.safetensors"):
        f.unlink()
    (bad / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04K\x01.")
    assert main(["train", "-p", "base", str(bad), "-p", "epochs", "1"]) == 2
    _one_line_error(capsys, str(bad / "unet"), "has only pickle weights")
