"""Every exercise of every notebook has a solution in docs/solutions/ that runs: each solution is called here on tiny
inputs (the session's tiny base model, two-epoch runs) and its answer is checked for the shape the book promises."""
import importlib.util
import os

import numpy as np
import pytest

from smplora_nb import attack, book, config, data, runner, runs

ATTACKS = ("loss_map_mlp", "loss_at_t", "sima")    # the paper's, a threshold map attack, a score attack


def _solutions(stem: str):
    path = book.SOLUTIONS / f"{stem}.py"
    spec = importlib.util.spec_from_file_location(f"solutions_{stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def evals(tiny_setup, tmp_path_factory):
    """``{(model, 0): evaluation}`` as the notebooks hold them: real audits of the base model, LoRA and SMP-LoRA
    (two epochs; LoRA's audit stands in for LoRA stopped early) and a made-up quality (FID is not what they read)."""
    cfg, _, splits, base = tiny_setup
    old = os.environ.get("SMPLORA_OUTPUTS")
    os.environ["SMPLORA_OUTPUTS"] = str(tmp_path_factory.mktemp("solutions_outputs"))
    try:
        jobs = {"lora": config.replace(cfg, epochs=2), "smp_lora": config.replace(cfg, epochs=2, method="smp_lora")}
        trained = {"base": None, **{m: runs.train(c, splits, base, progress=False) for m, c in jobs.items()}}
        out = {(m, 0): {"audit": attack.audit(base, run, splits, ATTACKS, 0, n_boot=50, mlp_epochs=2),
                        "quality": {"fid": 1.0 + i, "kid": 0.1}} for i, (m, run) in enumerate(trained.items())}
    finally:
        os.environ.pop("SMPLORA_OUTPUTS") if old is None else os.environ.__setitem__("SMPLORA_OUTPUTS", old)
    return {**out, ("lora_early_stop", 0): out["lora", 0]}


def test_every_notebook_has_solutions_to_each_of_its_exercises():
    for nb in runner.list_notebooks():
        n = len(book.exercises(nb))
        assert n >= 3, nb.name
        assert [f"exercise_{i}" for i in range(1, n + 1)] == list(book.solutions(nb.stem)), nb.name


def test_01_solutions(tiny_setup):
    cfg, _, splits, _ = tiny_setup
    s, items = _solutions("01_data_splitting"), data.load_dataset("digits", 16)
    one = s.exercise_1(items, cfg)
    assert one["same_counts"] and one["disjoint"] and one["members_kept"] < len(splits["member_te"])
    assert s.exercise_2(items, splits)["id"].startswith("copy_of_")
    assert s.exercise_3(items) > 0.9


def test_02_solutions(tiny_setup, evals):
    _, _, splits, _ = tiny_setup
    s = _solutions("02_membership_inference_attack")
    chance = s.exercise_1(splits)
    assert chance["verdict"] == "not testable at this size" and not chance["power"]["testable"]
    assert chance["tpr_at_1pct_fpr"] is None
    ranked = s.exercise_2(evals, 0)
    assert abs(ranked[0][1] - 0.5) >= abs(ranked[-1][1] - 0.5)
    control = s.exercise_3(evals, 0)
    assert all(r["asr"] == pytest.approx(r["asr_recorded"]) for r in control.values())


def test_03_solutions(tiny_setup, evals):
    cfg, _, splits, base = tiny_setup
    s = _solutions("03_mp_lora_instability")
    cv = s.exercise_1(config.replace(cfg, epochs=2), splits, base)
    assert len(cv) == 2 and all(v > 0 for v in cv.values())              # the gradient norm varies in every run
    grads = s.exercise_2()
    assert len(set(np.round(grads["mp_lora"], 6))) == 1 and grads["smp_lora"][0] > grads["smp_lora"][-1] > 0
    logs = {("lora", 0): {"steps": 3, "l_ada": [1.0, 0.9, 0.8], "grad_norm": [1.0, 1.1, 0.9]},
            ("mp_lora", 0): {"steps": 3, "l_ada": [1.0, 0.9, 0.8], "grad_norm": [1.0, 3.0, 0.2]}}
    assert s.exercise_3(logs, 0)["mp_lora"] > s.exercise_3(logs, 0)["lora"]


def test_04_solutions(evals):
    s = _solutions("04_smp_lora_training")
    factors = s.exercise_1()
    assert max(factors[1.0]) - min(factors[1.0]) > max(factors[0.05]) - min(factors[0.05]) > 0
    verdicts = s.exercise_2(evals, 0)                            # 6 + 6 images: defends cannot pass
    assert verdicts and set(verdicts.values()) <= {"leaks", "not testable at this size"}
    assert set(s.exercise_3(evals)) == {"smp_lora", "lora_early_stop"}


def test_05_solutions(tiny_setup):
    cfg, _, splits, base = tiny_setup
    s = _solutions("05_ablations")
    ablations = {"lam": [{"lam": 1.0, "asr": 0.55, "auc_dev": 0.1, "fid": 2.0},
                         {"lam": 0.1, "asr": 0.7, "auc_dev": 0.4, "fid": 1.0}]}
    assert s.exercise_1(ablations) == {"fid": pytest.approx(1.0), "asr": pytest.approx(-1.0)}
    m04 = lambda sd: {"noise_floor": {"smp_lora": {"loss_map_mlp": {"mean": 0.2, "sd": sd, "n": 2}}}}   # noqa: E731
    assert s.exercise_2(ablations, m04(0.1))["beyond_noise"] and not s.exercise_2(ablations, m04(0.2))["beyond_noise"]
    grid = s.exercise_3(cfg, splits, base, {"hessian_every": 0, "hessian_iters": 1})
    assert grid["distinct_runs"] < len(grid["to_train"]) + len(grid["read_from_cache"])   # the default run is shared


def test_06_solutions(tiny_setup, evals):
    cfg = tiny_setup[0]
    s = _solutions("06_stronger_attacks_and_baselines")
    assert set(s.exercise_1(evals, 0)["lora"]) >= {"loss_at_t", "sima"}
    sigma = s.exercise_2(cfg, epochs=(30, 90))                    # the accountant's search: seconds each
    assert sigma[30] < sigma[90]
    bound = s.exercise_3(evals, 0, "sima")
    assert bound["lora"] <= bound["perfect_attack"] and 0 < bound["perfect_attack"] < 5   # the sizes cap the proof
