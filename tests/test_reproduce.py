"""`reproduce`: cached notebooks, failed runs that leave completed outputs alone, shards, the report, and a sweep
killed mid-run that resumes to the same results without redoing finished work."""
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from smplora_nb import config, parallel, paths, report, runner, runs

TOY = '''from smplora_nb import paths
paths.write_metrics("01_toy", {"value": value, "claims": []})
assert not fail, "asked to fail"
'''


def _toy_notebooks(folder: Path) -> Path:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("profile = 'tiny'\nvalue = 1\nfail = False"),
                                         nbformat.v4.new_code_cell(TOY)])
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder.mkdir()
    nbformat.write(nb, folder / "01_toy.ipynb")
    return folder


def test_failed_notebook_leaves_completed_outputs_and_cache_skips_reruns(tmp_path, capsys):
    nbs = _toy_notebooks(tmp_path / "nbs")
    runner.run(folder=nbs, params={"value": 1}, progress=False, cache=True)
    done = paths.outputs_root() / "01_toy"
    assert paths.read_json(done / "metrics.json")["value"] == 1 and (done / "01_toy.ipynb").exists()
    with pytest.raises(Exception, match="asked to fail"):
        runner.run(folder=nbs, params={"value": 2, "fail": True}, progress=False, cache=True)
    assert paths.read_json(done / "metrics.json")["value"] == 1            # the completed run is untouched
    failed = paths.outputs_root() / "01_toy.failed"
    assert paths.read_json(failed / "metrics.json")["value"] == 2 and (failed / "01_toy.ipynb").exists()
    capsys.readouterr()
    runner.run(folder=nbs, params={"value": 1}, progress=False, cache=True)
    assert "cached" in capsys.readouterr().out                            # same notebook, parameters and code
    runner.run(folder=nbs, params={"value": 3}, progress=False, cache=True)
    assert paths.read_json(done / "metrics.json")["value"] == 3
    assert not list(paths.outputs_root().glob(".*.staging"))             # no staging folder left behind
    capsys.readouterr()
    runner.run(folder=nbs, params={"value": 3}, progress=False)           # no cache (``notebooks``): runs again
    assert "cached" not in capsys.readouterr().out


def test_shards_split_the_runs_and_stop_the_notebook(tiny_setup, monkeypatch):
    cfg, _, splits, base = tiny_setup
    cfgs = {s: config.replace(cfg, seed=s) for s in range(5)}
    trained = {}

    def fake(fn, jobs, *a, **k):
        trained[os.environ[parallel.SHARD_VAR]] = set(jobs)
        return {}

    monkeypatch.setattr(runs.parallel, "side_by_side", fake)
    for i in (1, 2):
        monkeypatch.setenv(parallel.SHARD_VAR, f"{i}/2")
        with pytest.raises(parallel.ShardComplete, match=f"shard {i}/2"):
            runs.train_many(cfgs, splits, base, progress=False)
    assert trained["1/2"] | trained["2/2"] == set(cfgs) and not trained["1/2"] & trained["2/2"]
    assert len(trained["1/2"]) == 3
    for bad in ("0/2", "3/2", "x"):
        with pytest.raises(ValueError, match="shard"):
            parallel.parse_shard(bad)


def test_workers_come_from_the_environment_or_the_cores(monkeypatch):
    monkeypatch.setenv(parallel.WORKERS_VAR, "3")
    assert parallel.default_workers() == 3
    monkeypatch.delenv(parallel.WORKERS_VAR)
    assert parallel.default_workers() == min(os.cpu_count() or 1, 8)
    for bad in ("0", "two", "-1"):
        monkeypatch.setenv(parallel.WORKERS_VAR, bad)
        with pytest.raises(ValueError, match="SMPLORA_WORKERS"):
            parallel.default_workers()


def test_width_shares_the_cores_only_when_that_ends_sooner():
    """Three equal jobs on two cores end after 1.5 job lengths all at once, 2 in turn; one long and two short
    ones end sooner in turn (the long one alone, the short ones after each other on the other core)."""
    assert parallel._shared_end([1, 1, 1], 2) == 1.5 and parallel._in_turn_end([1, 1, 1], 2) == 2
    assert parallel.width([1, 1, 1], 2) == 3 and parallel.width([1.2, 1.2, 1.1], 2) == 3
    assert parallel._shared_end([2, 1, 1], 2) == 2.5 and parallel.width([2, 1, 1], 2) == 2
    assert parallel.width([1, 1, 1, 1], 2) == 2                      # a tie: in turn, fewer processes
    assert parallel.width([1] * 5, 2) == 2                            # at most two jobs per core
    assert parallel.width([1, 1], 4) == 2 and parallel.width([1, 1, 1], 1) == 1


METHOD = ("per_split", "attacks", "quality", "mean", "sem")            # schema.METHOD_RECORD


def _pooled(auc, verdict, sizes=((58, 200),)):
    """A pooled record (``pooled.Pooled.record``'s fields) with a made-up interval."""
    from smplora_nb import power

    return {"auc": auc, "auc_dev": abs(auc - 0.5) / 0.5, "splits": list(range(len(sizes))),
            "auc_by_split": [auc] * len(sizes), "ci": {"auc": [auc - 0.1, auc + 0.1]},
            "ci90": {"auc": [auc - 0.08, auc + 0.08]}, "auc_dev_tost": [0.0, abs(auc - 0.5) / 0.5 + 0.16],
            "constant": False, "power": power.figures(sizes), "verdict": verdict}


def test_report_puts_results_next_to_the_paper(tmp_path):
    root = tmp_path / "out"
    m = {"mean": {"fid": 1.5, "kid": 0.2, "asr": 0.8, "auc_dev": 0.7, "tpr_at_5pct_fpr": 0.3},
         "sem": {"fid": 0.1, "kid": None, "asr": 0.01, "auc_dev": 0.02, "tpr_at_5pct_fpr": None},
         "per_split": {}, "attacks": {}, "quality": {}}
    claim = {"value": 0.6, "op": "<", "target": 0.1, "holds": False, "kind": "claim"}
    paths.write_json(root / "04_smp_lora_training" / "metrics.json", {
        "profile": "tiny", "splits": [0, 1], "seeds": {"0": 1, "1": 2}, "lam": 1.0, "proxy_feature": "calibrated",
        "noise_floor": {}, "pooled": {"smp_lora": {"sima": _pooled(0.6, "not testable at this size")}}, "utility": {},
        "utility_noise_floor": {}, "fid_floor": {"fid": 0.4}, "lora": m, "mp_lora": m, "smp_lora": m,
        "claims": [{"claim": "SMP defends", **claim}, {"claim": "LoRA leaks", **claim, "holds": True},
                   {"claim": "SMP defends against SimA", **claim, "holds": None, "kind": "not testable",
                    "power": "needs about 8 splits"},
                   {"claim": "one vs two forwards", **claim, "holds": None, "kind": "descriptive"}]})
    paths.write_json(root / "05_ablations" / "metrics.json", {
        "profile": "tiny", "seed": 1, "grid": {"lam": [1.0], "lr_factors": [0.1], "rank_factors": [0.25]},
        "references": {}, "vs_lora": {},
        "ablations": {"lam": [{"lam": 1.0, "asr": 0.5, "auc_dev": 0.1, "fid": 2.0, "kid": 0.3}],
                      "lr": [{"lr": 3e-4, "asr": 0.6, "auc_dev": 0.1, "fid": 2.0, "kid": 0.3}],
                      "rank": [{"rank": 4, "asr": 0.7, "auc_dev": 0.1, "fid": 2.0, "kid": 0.3}]},
        "claims": []})
    (root / "05_ablations" / "privacy_utility.png").write_bytes(b"png")
    text = report.write(root).read_text()
    assert "| LoRA | 1.500 ± 0.100 | 0.200 | 0.800 ± 0.010" in text and "0.2 / 0.003 / 0.8227" in text
    assert "member splits [0, 1]" in text
    assert "| [04_smp_lora_training](04_smp_lora_training/04_smp_lora_training.ipynb) | tiny | 1 / 2 |" in text
    assert "SMP defends (measured 0.600, target < 0.1)" in text and "LoRA leaks (measured" not in text
    untestable = text[text.index("**not testable at this size**"):]
    assert "SMP defends against SimA (needs about 8 splits)" in untestable and "one vs two forwards" not in text
    assert "| 1 | 0.500 | 0.100 | 2.000 | 0.300 | lam 1 | 1.633 | 0.46 |" in text
    assert "lr 1e-05 (x0.1) | 0.436 | 0.462" in text and "rank 16 (x0.25) | 0.541 | 0.531" in text
    assert "[privacy_utility](05_ablations/privacy_utility.png)" in text


def test_report_shows_the_attack_matrix_in_the_notebooks_order(tmp_path):
    root = tmp_path / "out"
    beyond = {"difference": 0.1, "ci": [0.05, 0.15], "verdict": "beyond"}
    paths.write_json(root / "06_stronger_attacks_and_baselines" / "metrics.json", {
        "profile": "tiny", "splits": [0], "seeds": {"0": 1}, "attack_order": ["sima", "loss_at_t"],
        "model_order": ["lora", "smp_lora", "dp_lora_eps1"],
        "pooled": {"lora": {"sima": _pooled(0.7, "leaks"), "loss_at_t": _pooled(0.6, "not detected")},
                   "smp_lora": {"sima": _pooled(0.5, "not testable at this size"),
                                "loss_at_t": _pooled(0.52, "not testable at this size")},
                   "dp_lora_eps1": {"sima": _pooled(0.5, "defends"), "loss_at_t": _pooled(0.55, "not detected")}},
        "verdicts": {}, "utility": {"lora": {"fid": 1.2}, "smp_lora": {"fid": 1.5}, "dp_lora_eps1": {"fid": 3.4}},
        "utility_noise_floor": {}, "dp": {}, "dp_audit": {}, "checks": [], "claims": [], "conclusion": "",
        "vs_dp": {"dp_lora_eps1": {"auc_dev": beyond, "heldout_loss": {**beyond, "difference": 0.002,
                                                                        "ci": [-0.001, 0.004]}}},
        "frontier": {"loss_at_t": {"fid": {"gap": {
            "smp_lora": {"gap": 0.12, "ci": [0.02, 0.2], "reachable": True, "verdict": "beyond"},
            # a utility no checkpoint reaches: its interval is infinite, written to JSON as null
            "dp_lora_eps1": {"gap": None, "ci": [float("inf"), float("inf")], "reachable": False,
                             "verdict": "beyond"}}}}}})
    text = report.write(root).read_text()
    assert "| method | SimA | Loss@t | FID |" in text
    lora = "| LoRA | 0.70 [0.60, 0.80] leaks | 0.60 [0.50, 0.70] not detected | 1.20 |"
    assert text.index(lora) < text.index("| SMP-LoRA | 0.50 [0.40, 0.60] not testable at this size |") \
        < text.index("| DP-LoRA (eps 1) |")
    assert "What the verdicts could detect: defends not testable at this size" in text
    assert "| Loss@t | fid | SMP-LoRA | 0.12 | [0.020, 0.200] | True | beyond |" in text
    assert "| Loss@t | fid | DP-LoRA (eps 1) |  | [inf, inf] | False | beyond |" in text   # unreachable: still a row
    assert "| DP-LoRA (eps 1) | +0.100 [+0.050, +0.150] | beyond | +0.0020 [-0.0010, +0.0040] |" in text


SWEEP_CONFIG = {"vae_steps": 20, "pretrain_steps": 20, "member_aux": 16, "member_te": 16, "nonmember_aux": 16,
                "nonmember_te": 16, "sample_steps": 2, "unet_channels": [16, 32], "audit_boot": 50}   # config fields
SWEEP_NOTEBOOK = {"epochs": 8, "mlp_epochs": 3, "hessian_every": 0, "hessian_iters": 12, "lams": [1.0],
                  "lr_factors": [1.0], "rank_factors": [1.0], "n_splits": 1}                   # notebook 05's own
SWEEP = [x for k, v in {**SWEEP_CONFIG, **SWEEP_NOTEBOOK}.items() for x in ("-p", k, json.dumps(v))]
LOG_SESSION = ("resumed_from_epoch", "seconds_this_session")             # what a training log says of its sitting


def _reproduce(out: Path, extra=()):
    """Start `reproduce --only 05` on ``out`` (its output goes to ``out``/../<name>.log, read by ``_finish``)."""
    env = {**os.environ, "SMPLORA_OUTPUTS": str(out), "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg",
           "SMPLORA_WORKERS": "2"}                                      # training workers, killed with the rest
    path = out.parent / f"{out.name}.log"
    with open(path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "smplora_nb", "reproduce", "--only", "05", "--no-progress",
                                 *SWEEP, *extra], env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    proc.log = path
    return proc


def _finish(proc) -> None:
    assert proc.wait(timeout=900) == 0, proc.log.read_text()[-3000:]


def _kill_tree(pid: int) -> None:
    """SIGKILL ``pid`` and all its descendants (the notebook kernel runs in a session of its own), after freezing
    them so that none writes anything more."""
    def tree():
        parent = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                parent[int(stat.parent.name)] = int(fields[1])
            except (OSError, ValueError, IndexError):
                continue
        found, todo = set(), [pid]
        while todo:
            p = todo.pop()
            found.add(p)
            todo += [c for c, pp in parent.items() if pp == p and c not in found]
        return found

    frozen = set()
    while (new := tree() - frozen):
        for p in new:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGSTOP)
        frozen |= new
    for p in frozen:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)


def _train_logs(out: Path) -> dict:
    """``{run folder name: train_log.json's mtime}`` of the finished runs under ``out``."""
    return {p.parent.name: p.stat().st_mtime_ns for p in (out / "cache" / "runs").glob("*/train_log.json")}


def _kill_at_a_checkpoint(proc, runs: Path, old: set) -> None:
    """Kill ``proc``'s whole tree as soon as a run not in ``old`` has written a mid-run checkpoint."""
    deadline = time.time() + 600
    while not {p.parent.parent.name for p in runs.glob("*/checkpoint/state.json")} - old:
        assert proc.poll() is None and time.time() < deadline, "the shard ended before any checkpoint"
        time.sleep(0.1)
    _kill_tree(proc.pid)                                                 # as if the machine went down
    proc.wait()


def _uninterrupted(tmp_path: Path, out: Path, monkeypatch) -> Path:
    """The same grid trained in this process in one go, into its own outputs folder (the sweep's base model and
    latents copied in: no run reads anything else), for the sweep's runs to be compared with."""
    from smplora_nb import grids
    from smplora_nb.bench import Bench

    ref = tmp_path / "uninterrupted"
    for part in ("base", "latents"):
        shutil.copytree(out / "cache" / part, ref / "cache" / part)
    monkeypatch.setenv("SMPLORA_OUTPUTS", str(ref))
    nb = SWEEP_NOTEBOOK
    cfg = config.from_params("tiny", epochs=nb["epochs"], overrides=SWEEP_CONFIG)
    grid = grids.ablation_grid(cfg, nb["lams"], nb["lr_factors"], nb["rank_factors"],
                               {k: nb[k] for k in ("hessian_every", "hessian_iters")})
    Bench(cfg).train(grid, progress=False)
    return ref / "cache" / "runs"


def test_sharded_and_killed_sweeps_end_as_one_uninterrupted_sweep(tmp_path, monkeypatch):
    """Notebook 05's sweep in two ``--shard`` calls over one outputs folder, the second killed (runner, notebook
    kernel and training workers at once) when one of its runs has a mid-run checkpoint, then called again; a final
    call without ``--shard`` trains nothing and finishes the notebook. Each shard stops after training; the killed
    shard's rerun does not redo its finished runs and continues the interrupted ones from their checkpoint; and every
    run ends with the weights and the training log of the same grid trained in one go, byte for byte."""
    out = tmp_path / "sweep"
    runs_dir = out / "cache" / "runs"
    _finish(_reproduce(out, extra=["--shard", "1/2"]))
    first = _train_logs(out)
    assert first and not (out / "05_ablations" / "metrics.json").exists()   # a shard stops after training
    _kill_at_a_checkpoint(_reproduce(out, extra=["--shard", "2/2"]), runs_dir, set(first))
    finished = _train_logs(out)
    checkpoints = {p.parent.parent.name: json.loads(p.read_text())["epoch"]
                   for p in runs_dir.glob("*/checkpoint/state.json")}
    interrupted = set(checkpoints) - set(finished)
    assert interrupted and not (out / "05_ablations" / "metrics.json").exists()
    _finish(_reproduce(out, extra=["--shard", "2/2"]))
    assert not (out / "05_ablations" / "metrics.json").exists()
    assert not list(out.glob(".*.staging")) and not (out / "05_ablations.failed").exists()
    after = _train_logs(out)
    assert set(first) < set(after)                                       # the second shard added its own runs
    assert {name: after[name] for name in finished} == finished          # finished before the kill: not redone
    for name in interrupted:                                             # interrupted: resumed, not restarted
        assert json.loads((runs_dir / name / "train_log.json").read_text())["resumed_from_epoch"] == checkpoints[name]
    _finish(_reproduce(out))
    assert _train_logs(out) == after                                     # the final call trains nothing
    assert paths.read_json(out / "05_ablations" / "metrics.json")["ablations"] and (out / "REPORT.md").exists()
    ref = _uninterrupted(tmp_path, out, monkeypatch)
    assert {p.name for p in ref.iterdir() if p.is_dir()} == set(after)
    for name in after:
        assert (runs_dir / name / "lora").is_dir()
        for f in (ref / name / "lora").iterdir():
            assert (runs_dir / name / "lora" / f.name).read_bytes() == f.read_bytes(), (name, f.name)
        got, want = (json.loads((d / name / "train_log.json").read_text()) for d in (runs_dir, ref))
        assert {k: v for k, v in got.items() if k not in LOG_SESSION} == \
            {k: v for k, v in want.items() if k not in LOG_SESSION}, name


def test_report_says_which_seeds_its_numbers_come_from(tmp_path, monkeypatch):
    """REPORT.md prints the development / confirmation protocol and classifies its own runs; ``reproduce --dev``
    runs the development seeds into outputs/dev/ and refuses to be told other seeds."""
    from smplora_nb import __main__ as cli, config, profiles

    root = tmp_path / "out"
    def write(split, seeds):
        paths.write_json(root / "01_data_splitting" / "metrics.json", {
            "profile": "tiny", "counts": {}, "disjoint": True, "model_free_split_check": {}, "claims": [],
            "checks": [], "split_seed": split})
        paths.write_json(root / "02_membership_inference_attack" / "metrics.json", {
            "profile": "tiny", "splits": list(range(len(seeds))), "seeds": {str(k): s for k, s in enumerate(seeds)},
            "noise_floor": {}, "pooled": {}, "utility": {}, "utility_noise_floor": {}, "fid_floor": {}, "claims": [],
            "checks": [], **{k: {f: {} for f in METHOD} for k in ("lora", "base")}})
        return report.write(root).read_text()
    c = profiles.CONFIRM_SEEDS
    assert "**confirmatory**" in write(c["split_seed"], [c["seed"], c["seed"] + 1])
    assert "**development**" in write(1337, [1337, 1338]) and "**other seeds**" in write(c["split_seed"], [5])
    twelve = [c["seed"] + k for k in range(12)]                       # metrics.json sorts "10" before "2"
    assert f"training seeds {twelve} " in write(c["split_seed"], twelve)
    assert config.make("tiny").split.split_seed == c["split_seed"] and config.make("tiny").train.seed == c["seed"]
    assert profiles.DEV_SEEDS != profiles.CONFIRM_SEEDS
    seen = {}
    monkeypatch.delenv("SMPLORA_OUTPUTS")
    monkeypatch.setattr(paths, "outputs_root", lambda: tmp_path / "o")
    monkeypatch.setattr(cli.runner, "run", lambda **kw: seen.update(kw))
    monkeypatch.setattr(report, "write", lambda **kw: tmp_path / "REPORT.md")
    assert cli.main(["reproduce", "--dev", "--only", "02"]) == 0
    assert seen["params"] == profiles.DEV_SEEDS and __import__("os").environ["SMPLORA_OUTPUTS"] == str(tmp_path / "o" / "dev")
    assert cli.main(["reproduce", "--dev", "-p", "seed", "3"]) == 2                # the seeds are --dev's own


def test_runner_folds_config_fields_into_overrides(monkeypatch):
    """A split size given to every notebook reaches those without such a parameter through ``overrides``."""
    seen = {}
    monkeypatch.setattr(runner, "_execute", lambda nb, params, final, shard, progress: seen.setdefault(nb.stem, params)
                        and False)
    runner.run(only=["01", "02"], params={"member_aux": 30, "epochs": 3}, progress=False)
    assert seen["01_data_splitting"]["member_aux"] == 30
    assert seen["02_membership_inference_attack"]["overrides"] == {"member_aux": 30}
    assert seen["02_membership_inference_attack"]["epochs"] == 3
    with pytest.raises(ValueError, match="unknown notebook parameter"):
        runner.run(only=["02"], params={"not_a_field": 1}, progress=False)
