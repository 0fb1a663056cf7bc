"""The run grids of the notebooks over member splits (``grids``)."""
import pytest

from smplora_nb import config, grids, paths


def test_grids_run_every_method_on_every_split_under_the_diagnostics_rule():
    cfg = config.make("tiny")
    hess = {"hessian_every": 5, "hessian_iters": 2}
    jobs = grids.method_runs(cfg, ("lora", "smp_lora"), grids.splits(2), hess)
    assert set(jobs) == {("lora", 0), ("smp_lora", 0), ("lora", 1), ("smp_lora", 1)}
    assert jobs["smp_lora", 0].train.hessian_every == 5 and not jobs["smp_lora", 1].train.hessian_every  # split 0
    assert not jobs["lora", 0].train.hessian_every                          # LoRA carries no Hessian...
    assert jobs["lora", 0].train.snapshot_epochs == grids.FRONTIER_EPOCHS    # ...but the frontier's snapshots
    assert not jobs["smp_lora", 0].train.snapshot_epochs
    short = grids.method_runs(config.replace(cfg, epochs=3), ["lora"], [0], {})["lora", 0]
    assert short.train.snapshot_epochs == (1, 2)                            # only the epochs before its last
    for k in (0, 1):                                                    # split k: training seed seed + k
        assert jobs["lora", k].train.seed == jobs["smp_lora", k].train.seed == cfg.train.seed + k
    assert jobs["lora", 0].split.member_seed == -1 and jobs["lora", 1].split.member_seed == 1   # k >= 1: re-dealt
    assert jobs["lora", 1].split.split_seed == cfg.split.split_seed                             # same public split
    assert grids.splits(3) == [0, 1, 2]
    with pytest.raises(ValueError, match="n_splits"):
        grids.splits(0)
    keys = [("lora", 3), ("lam", 0.1, 0), ("lora", None, 0), ("lora_snapshot", 5, 2), ("x", True)]
    assert [grids.split_index(k) for k in keys] == [3, 0, 0, 2, 0]
    dp = grids.dp_runs(cfg, [1.0, 8.0], 3, [0, 1])
    assert set(dp) == {(grids.dp_key(e), k) for e in (1.0, 8.0) for k in (0, 1)}
    eps8 = dp["dp_lora_eps8", 1]
    assert eps8.train.dp_epsilon == 8.0 and eps8.train.epochs == 3 and eps8.train.method == "dp_lora"
    assert eps8.split.member_seed == 1 and eps8.train.seed == cfg.train.seed + 1
    with pytest.raises(ValueError, match="stabilisers"):
        grids.mp_variants(cfg, ["clip", "spectral"], 1.0, hess)
    mp = grids.mp_variants(cfg, ["clip"], 1.0, hess)
    assert set(mp) == {("lora", 0), ("mp_lora", 0), ("mp_lora_clip", 0)}
    assert mp["mp_lora", 0] == grids.method_runs(cfg, ["mp_lora"], [0], hess)["mp_lora", 0]   # notebook 04's run
    assert mp["lora", 0] == jobs["lora", 0]                                 # notebook 02's run, snapshots and all
    assert mp["mp_lora_clip", 0].train.grad_clip == 1.0 and not mp["mp_lora_clip", 0].train.hessian_every


def test_ablation_grid_shares_the_default_run_and_early_stop_reads_logs_only():
    cfg, tc = config.make("tiny"), config.make("tiny").train
    hess = {"hessian_every": 5, "hessian_iters": 2}
    grid = grids.ablation_grid(cfg, [tc.lam, 0.1], [1.0, 0.5], [1.0], hess)
    assert grid["lam", tc.lam, 0] == grid["lr", tc.lr, 0] == grid["rank", tc.lora_rank, 0]
    assert grid["lam", tc.lam, 0] == grids.method_runs(cfg, ["smp_lora"], [0], hess)["smp_lora", 0]   # notebook 04's
    assert grid["lam", tc.lam, 0].train.hessian_every == 5 and not grid["lam", 0.1, 0].train.hessian_every
    assert grid["lora", None, 0] == grids.method_runs(cfg, ["lora"], [0], {})["lora", 0]
    assert ("mp_lora", None, 0) in grid
    assert {grids.split_index(k) for k in grid} == {0}
    logs = {("lora", 1): {"epochs": 4, "l_ada": [4, 4, 3, 3, 2, 2, 1, 1]},
            ("smp_lora", 1): {"epochs": 4, "l_ada": [4, 4, 3, 3, 3, 3, 2.5, 2.5]}}
    stop = grids.early_stopped(cfg, logs, [1])
    assert set(stop) == {("lora_early_stop", 1)}
    stopped = stop["lora_early_stop", 1]
    assert stopped.train.epochs == 3 and stopped.train.method == "lora"    # 2.0 <= 2.5 at epoch 3
    assert stopped.split.member_seed == 1
    two = grids.two_forwards(cfg, [0, 1])
    assert set(two) == {("smp_lora_two_forwards", 0), ("smp_lora_two_forwards", 1)}
    assert two["smp_lora_two_forwards", 1].train.two_forwards
    assert two["smp_lora_two_forwards", 1].train.seed == tc.seed + 1


def test_frontier_curve_and_snapshot_keys(tmp_path):
    trained = {("smp_lora", 0): tmp_path / "smp"}                          # not plain LoRA: no snapshots read
    for k in (0, 1):
        for e in (1, 2):
            (tmp_path / f"lora{k}" / "snapshots" / f"epoch_{e}").mkdir(parents=True)
        paths.write_json(tmp_path / f"lora{k}" / "train_log.json", {"epochs": 4})
        trained["lora", k] = tmp_path / f"lora{k}"
    assert grids.snapshot_keys(trained) == {("lora_snapshot", e, k): tmp_path / f"lora{k}" / "snapshots" / f"epoch_{e}"
                                            for k in (0, 1) for e in (1, 2)}          # the final LoRA is ("lora", k)
    curve = grids.frontier_curve([0, 1], grids.FRONTIER_EPOCHS, 10)
    assert list(curve) == [0, 1, 2, 5, 10]
    assert curve[0] == [("base", 0), ("base", 1)] and curve[10] == [("lora", 0), ("lora", 1)]
    assert curve[5] == [("lora_snapshot", 5, 0), ("lora_snapshot", 5, 1)]


def test_the_base_model_joins_every_split_first_and_dp_keys_follow_the_budgets():
    trained = {("lora", 0): "run0", ("lora", 1): "run1"}
    assert list(grids.with_base(trained, [0, 1]).items()) == [(("base", 0), None), (("base", 1), None),
                                                              (("lora", 0), "run0"), (("lora", 1), "run1")]
    assert grids.dp_keys([8.0, 0.5]) == ["dp_lora_eps8", "dp_lora_eps0.5"]
