"""Every notebook in notebooks/ runs headlessly with papermill at small sizes, and its metrics.json is checked.

A notebook added to notebooks/ is covered the day it lands: the test is parametrised over the folder. The scientific
claims are checked at full `tiny` size by `make demo`'s outputs, not here.
"""
import json
import subprocess
import sys

import pytest

from smplora_nb import paths, runner

# Small sizes for CI; each notebook receives only the names its parameters cell declares.
CI_PARAMS = {"vae_steps": 20, "pretrain_steps": 20, "n_samples": 12}
NOTEBOOKS = runner.list_notebooks()


def check_01(m):
    assert m["counts"] == {"public": 900, "member_aux": 200, "member_te": 233, "nonmember_aux": 200,
                           "nonmember_te": 200}
    assert m["disjoint"] is True and m["n_items"] == 1797
    assert 0.0 <= m["digit_accuracy_base_samples"] <= 1.0 and m["digit_accuracy_real"] > 0.8
    man = paths.read_json(paths.outputs_root() / "01_data_splitting" / "manifest.json")
    assert {k: len(v) for k, v in man["sets"].items()} == m["counts"]
    for fig in ("dataset_examples", "split_counts", "split_examples", "pretrain_loss", "base_samples"):
        assert (paths.outputs_root() / "01_data_splitting" / f"{fig}.png").stat().st_size > 1000


CHECKS = {"01_data_splitting": check_01}


def test_every_notebook_has_a_check():
    assert {nb.stem for nb in NOTEBOOKS} <= set(CHECKS)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_with_papermill(nb):
    declared = runner.declared_parameters(nb)
    assert "profile" in declared
    runner.run(only=[nb.stem], params={k: v for k, v in CI_PARAMS.items() if k in declared}, progress=False)
    executed = paths.outputs_root() / nb.stem / f"{nb.stem}.ipynb"
    assert executed.exists()
    CHECKS[nb.stem](paths.read_metrics(nb.stem))


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_are_committed_without_outputs(nb):
    cells = json.loads(nb.read_text())["cells"]
    assert not any(c.get("outputs") for c in cells if c["cell_type"] == "code")
    assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in cells)


def test_cli_rejects_unknown_parameter():
    res = subprocess.run([sys.executable, "-m", "smplora_nb", "notebooks", "--only", "01", "-p", "not_a_param", "1"],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "not_a_param" in res.stderr


def test_select_and_parse_value():
    assert [p.stem[:2] for p in runner.select(NOTEBOOKS, ["01"])] == ["01"]
    with pytest.raises(ValueError, match="99"):
        runner.select(NOTEBOOKS, ["99"])
    assert runner.parse_value("3") == 3 and runner.parse_value("0.5") == 0.5
    assert runner.parse_value("folder:/x") == "folder:/x" and runner.parse_value("None") is None
