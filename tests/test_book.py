"""The book (``make book``): built from executed notebooks without running them, offline, and checked in a real
browser on the notebooks that tests/test_notebooks.py executed (the same worker runs them first)."""
import base64
import importlib.util
import json
import shutil
import time
from pathlib import Path

import nbformat
import pytest

from smplora_nb import book, report, runner

PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5E"
                       "rkJggg==")                                      # one pixel
STEM = "01_data_splitting"


def _check_module():
    spec = importlib.util.spec_from_file_location("book_check", book.ROOT / "scripts" / "book_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _executed(outputs: Path) -> Path:
    """Notebook 01 as papermill would leave it: a figure, a progress-bar widget with its saved state, its records."""
    nb = nbformat.read(book.NOTEBOOKS / f"{STEM}.ipynb", as_version=4)
    code = next(c for c in nb.cells if c.cell_type == "code")
    figure = {"image/png": base64.b64encode(PNG).decode(), "text/plain": "fig"}
    bar = {book.WIDGET_VIEW: {"model_id": "box"}, "text/plain": "0%"}
    code.outputs = [nbformat.v4.new_output("display_data", figure), nbformat.v4.new_output("display_data", bar)]
    model = lambda name, **kw: {"state": {"_model_name": name, **kw}}     # noqa: E731
    nb.metadata["widgets"] = {book.WIDGET_STATE: {"state": {
        "box": model("HBoxModel", children=["IPY_MODEL_a", "IPY_MODEL_b"]),
        "a": model("HTMLModel", value="pretrain: 100%"), "b": model("FloatProgressModel", value=20.0, max=20.0)}}}
    nb.metadata["papermill"] = {"end_time": "2026-12-03T08:52:18.1+00:00", "duration": 94.4}
    folder = outputs / STEM
    folder.mkdir(parents=True)
    nbformat.write(nb, folder / f"{STEM}.ipynb")
    (folder / "split_counts.png").write_bytes(PNG)
    claims = [{"claim": "sets are disjoint", "value": 1.0, "op": ">=", "target": 1, "holds": True},
              {"claim": "the base model draws 0-4", "value": 0.1428571, "op": ">=", "target": 0.8, "holds": False},
              {"claim": "TPR at 1% FPR", "value": None, "op": "", "target": None, "holds": None, "kind": "not testable"}]
    (folder / "metrics.json").write_text(json.dumps({"claims": claims}))
    (folder / "run_key.json").write_text(json.dumps({"seconds": 95.4, "machine": book.machine()}))
    (outputs / "REPORT.md").write_text(f"# Reproduction report\n\n| [{STEM}]({STEM}/{STEM}.ipynb) | 1 / 2 |\n\n"
                                       f"- **{STEM}**: [split_counts]({STEM}/split_counts.png)\n")
    return outputs


def test_the_book_of_an_executed_notebook_fetches_nothing_and_states_its_run(tmp_path):
    outputs = _executed(tmp_path / "outputs")
    site = book.build(outputs, tmp_path / "site").parent
    pages = [f"{STEM}.html", "index.html", "results.html", "statistics.html"]
    assert sorted(p.name for p in site.glob("*.html")) == pages
    page = (site / f"{STEM}.html").read_text()
    for remote in ("<script src", "cdn.", "colab-badge.svg", book.WIDGET_VIEW):          # nothing from the web
        assert remote not in page, remote
    assert '<progress max="20.0" value="20.0">' in page and "pretrain: 100%" in page      # the bar as it ended
    assert page.count('<details class="solution"') == len(book.exercises(book.NOTEBOOKS / f"{STEM}.ipynb")) == 3
    assert "data:image/png;base64" in page and "in 95 s; claims held 1 of 2" in page
    results = (site / "results.html").read_text()
    assert f'href="{STEM}.html"' in results and (site / STEM / "split_counts.png").exists()
    assert "Execution statistics" in (site / "statistics.html").read_text()
    stats = book.statistics(outputs, [STEM], book.machine())                          # the page's Markdown
    assert "| 1 / 2 | 1 | 1 |" in stats and "the base model draws 0-4 (measured 0.143" in stats   # n/t: neither
    assert "recorded" in stats and "TPR at 1%" not in stats


def test_no_executed_notebook_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="make demo"):
        book.build(tmp_path, tmp_path / "site")
    assert book.main(["--outputs", str(tmp_path)]) == 2


def test_the_readme_figure_comes_from_notebook_06(tmp_path):
    folder = tmp_path / book.README_FIGURE[0]
    folder.mkdir()
    (folder / book.README_FIGURE[1]).write_bytes(PNG)
    assert book.readme_figure(tmp_path, tmp_path / "result.png").read_bytes() == PNG


def _chromium():
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("no chromium/chromedriver (make test installs them with apt-get as root)")
    pytest.importorskip("selenium")
    return _check_module()


@pytest.mark.xdist_group("notebooks")
def test_the_book_of_the_tests_notebooks_in_chromium(executed_outputs, tmp_path):
    """Every page renders with its images, no link is broken, nothing is fetched, every solution toggle opens; and
    the check does fail on a broken image and a broken link."""
    if not any(executed_outputs.iterdir()):
        pytest.skip("builds on the notebooks that tests/test_notebooks.py executes: run it with them")
    # all of them, on this worker: xdist_group keeps the series on one worker (it did not under pytest 9)
    assert {p.name for p in executed_outputs.iterdir()} == {nb.stem for nb in runner.list_notebooks()}
    check = _chromium()
    report.write(executed_outputs)
    start = time.time()
    site = book.build(executed_outputs, tmp_path / "site").parent
    assert time.time() - start < 60
    assert check.check(site) == []
    broken = tmp_path / "broken"
    broken.mkdir()
    page = (site / "results.html").read_text()
    bad = '<img src="missing.png"><a href="nowhere.html">x</a></main>'
    (broken / "results.html").write_text(page.replace("</main>", bad))
    found = check.check(broken)
    assert any("broken image" in b for b in found) and any("broken link" in b and "nowhere.html" in b for b in found)
