"""The series in a real JupyterLab, driven by a real browser (``make browser-test``; issue 17).

Starts JupyterLab from the project's venv on 127.0.0.1 with a token, opens copies of notebooks 01 and 05 at the
test suite's small sizes in Debian's Chromium (Selenium with the system chromedriver: no browser download), runs all
cells from the Run menu, and checks *in the page*:

* every code cell finished (an execution count, no ``[*]``) and the saved notebook has no error output;
* every ``viz.save`` figure is displayed once, as an image (a duplicate fails);
* progress bars render as widgets (notebook 05 trains its runs side by side);
* notebook 05's results explorer is there once, with its three dropdowns, and choosing another method, then another
  ``lam``, changes its table and its figure each time.

Screenshots go to ``outputs/browser/`` (PNG). ``python scripts/browser_test.py 05`` runs one notebook only. Exit code 0 only if every check holds; each failed check is printed.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
SMALL = {   # the sizes of tests/test_notebooks.py
    "01_data_splitting": {"vae_steps": 20, "pretrain_steps": 20, "n_samples": 12},
    "05_ablations": {"epochs": 2, "mlp_epochs": 3, "hessian_every": 1, "hessian_iters": 3, "lams": [1.0, 0.1],
                     "lr_factors": [1.0, 0.1], "rank_factors": [1.0, 0.5], "n_splits": 1, "interactive": True,
                     "overrides": {"vae_steps": 20, "pretrain_steps": 20, "member_aux": 24, "member_te": 24,
                                   "nonmember_aux": 24, "nonmember_te": 24}},
}
TIMEOUT = 900                                   # seconds per notebook, run all


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare(work: Path) -> dict[str, Path]:
    """Parameterised copies of the notebooks (papermill's injected-parameters cell, as a batch run gets)."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    out = {}
    for stem, params in SMALL.items():
        nb = parameterize_notebook(load_notebook_node(str(ROOT / "notebooks" / f"{stem}.ipynb")), params)
        path = work / f"{stem}.ipynb"
        nbformat.write(nb, path)
        out[stem] = path
    return out


def _start_lab(work: Path, outputs: Path, port: int, token: str) -> subprocess.Popen:
    env = {**os.environ, "SMPLORA_OUTPUTS": str(outputs), "HF_HUB_OFFLINE": "1"}
    cmd = [str(Path(sys.executable).with_name("jupyter")), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
           f"--ServerApp.port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
           "--allow-root", "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    proc = subprocess.Popen(cmd, env=env, stdout=open(work / "lab.log", "wb"), stderr=subprocess.STDOUT)
    for _ in range(120):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
            return proc
        except OSError:
            time.sleep(1)
    proc.kill()
    raise RuntimeError(f"JupyterLab did not start; see {work / 'lab.log'}")


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,2200"):
        opts.add_argument(arg)
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    return webdriver.Chrome(service=Service(driver_path), options=opts)


def _js(driver, script, *args):
    return driver.execute_script(script, *args)


CELL_STATE = """
const panel = document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden)');
return Array.from(panel.querySelectorAll('.jp-Notebook .jp-CodeCell')).map(c => ({
  prompt: (c.querySelector('.jp-InputPrompt') || {}).textContent || '',
  source: (c.querySelector('.jp-InputArea-editor') || {}).textContent || '',
  images: c.querySelectorAll('.jp-OutputArea-output img').length,
  progress: c.querySelectorAll('.widget-hprogress, .widget-progress').length,
  dropdowns: c.querySelectorAll('.widget-dropdown select').length,
  text: (c.querySelector('.jp-OutputArea') || {}).innerText || ''}));
"""


def _run_all(driver, url: str, name: str) -> list[dict]:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    wait = WebDriverWait(driver, 120)
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".jp-Notebook .jp-CodeCell")))
    wait.until(lambda d: "Idle" in (_js(d, "return document.body.innerText") or ""))   # the kernel is ready
    time.sleep(2)
    run_menu = [e for e in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-itemLabel") if e.text == "Run"][0]
    run_menu.click()
    wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, 'li[data-command="runmenu:run-all"]'))).click()
    start = time.time()
    while time.time() - start < TIMEOUT:
        time.sleep(3)
        cells = _js(driver, CELL_STATE)
        if all(c["prompt"].strip() not in ("[*]:", "[ ]:", "") for c in cells):
            break
    else:
        raise TimeoutError(f"{name}: cells still running after {TIMEOUT} s")
    driver.find_element(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook").click()
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys
    ActionChains(driver).key_down(Keys.CONTROL).send_keys("s").key_up(Keys.CONTROL).perform()   # save to disk
    time.sleep(3)
    return _js(driver, CELL_STATE)


def _check_cells(name: str, cells: list[dict], saved: Path) -> list[str]:
    fails = []
    nb = json.loads(saved.read_text())
    errors = [o for c in nb["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    if errors:
        fails.append(f"{name}: {len(errors)} error output(s): {errors[0].get('ename')}: {errors[0].get('evalue')}")
    unrun = [c["prompt"] for c in cells if not any(ch.isdigit() for ch in c["prompt"])]
    if unrun:
        fails.append(f"{name}: {len(unrun)} code cell(s) without an execution count")
    for c in cells:
        saves = c["source"].count("viz.save(")
        if saves and c["images"] != saves:
            fails.append(f"{name}: a cell with {saves} viz.save shows {c['images']} image(s): "
                         f"{c['source'][:60]!r}")
    return fails


def _check_explorer(driver, cells: list[dict]) -> list[str]:
    """The explorer is there once with three dropdowns, and choosing SMP-LoRA changes its table and figure."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    boxes = [i for i, c in enumerate(cells) if c["dropdowns"]]
    if len(boxes) != 1 or cells[boxes[0]]["dropdowns"] != 3:
        return [f"05: expected one explorer with 3 dropdowns, found {[cells[i]['dropdowns'] for i in boxes]}"]
    cell = driver.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell")[boxes[0]]
    driver.execute_script("arguments[0].scrollIntoView();", cell)

    def view():
        imgs = [i.get_attribute("src")[-200:] for i in cell.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output img")]
        tables = [t.text for t in cell.find_elements(By.CSS_SELECTOR, ".jp-OutputArea-output table")]
        return tables, imgs

    before = view()
    method = Select(cell.find_elements(By.CSS_SELECTOR, ".widget-dropdown select")[0])
    choices = [o.text for o in method.options]
    others = [c for c in choices if c != method.first_selected_option.text]
    target = "SMP-LoRA" if "SMP-LoRA" in others else next(iter(others), None)    # the method with a lam grid
    if target is None:
        return [f"05: the explorer offers no other method than {choices}"]
    method.select_by_visible_text(target)
    time.sleep(5)
    after = view()
    fails = []
    if not after[0] or after[0] == before[0]:
        fails.append("05: choosing another method did not change the explorer's table")
    if not after[1] or after[1] == before[1]:
        fails.append("05: choosing another method did not change the explorer's figures")
    if target != "SMP-LoRA" and "SMP-LoRA" in choices:         # it was shown first: back to the method with a grid
        method = Select(cell.find_elements(By.CSS_SELECTOR, ".widget-dropdown select")[0])
        method.select_by_visible_text("SMP-LoRA")
        time.sleep(5)
        target, after = "SMP-LoRA", view()
    lam = Select(cell.find_elements(By.CSS_SELECTOR, ".widget-dropdown select")[1])
    if any(o.text in ("", "None") for o in lam.options):
        fails.append(f"05: the lam dropdown shows {[o.text for o in lam.options]}")
    values = [o.text for o in lam.options]
    if len(values) < 2:
        fails.append(f"05: {target} offers one lam only ({values}); the test grid has two")
    else:
        lam.select_by_visible_text(next(v for v in values if v != lam.first_selected_option.text))
        time.sleep(5)
        third = view()
        if not third[0] or third[0] == after[0]:
            fails.append("05: choosing another lam did not change the explorer's table")
        if not third[1] or third[1] == after[1]:
            fails.append("05: choosing another lam did not change the explorer's figures")
    return fails


def main() -> int:
    out_dir = ROOT / "outputs" / "browser"
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="smplora_browser_"))
    copies = {k: v for k, v in _prepare(work).items() if not sys.argv[1:] or k[:2] in sys.argv[1:]}   # e.g. "05"
    port, token = _free_port(), "smplora-browser-test"
    lab = _start_lab(work, work / "outputs", port, token)
    driver, fails = None, []
    try:
        driver = _browser()
        for stem, path in copies.items():
            t0 = time.time()
            url = f"http://127.0.0.1:{port}/lab/workspaces/{stem}/tree/{path.name}?reset&token={token}"   # one tab
            cells = _run_all(driver, url, stem)
            fails += _check_cells(stem, cells, path)
            if stem.startswith("01"):
                if not any(c["images"] for c in cells):
                    fails.append("01: no figure displayed as an image")
            if stem.startswith("05"):
                if not any(c["progress"] for c in cells):
                    fails.append("05: no progress bar rendered as a widget")
                fails += _check_explorer(driver, cells)
            driver.save_screenshot(str(out_dir / f"{stem}.png"))
            print(f"[browser] {stem}: {len(cells)} code cells in {time.time() - t0:.0f} s, "
                  f"{sum(c['images'] for c in cells)} images, {sum(c['progress'] for c in cells)} progress widgets")
    finally:
        if driver is not None:
            driver.quit()
        lab.terminate()
        lab.wait(timeout=30)
    for f in fails:
        print(f"[browser] FAIL {f}")
    print(f"[browser] {'passed' if not fails else 'failed'}; screenshots in {out_dir}; work folder {work}")
    if not fails:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
