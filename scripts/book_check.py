"""The book in a real browser (``make book-check``; ``tests/test_book.py`` runs it on the site of the tests' notebooks).

Opens every page of a site built by ``smplora_nb.book`` in Debian's headless Chromium (Selenium with the system
chromedriver, started as ``scripts/browser_test.py`` starts it, offline) and checks *in the page*:

* it rendered: a heading, no Python traceback in an output;
* every image loaded (``naturalWidth > 0``), every figure of a notebook among them;
* every link into the site resolves (a file that exists, an anchor that exists on its page); links to the web are
  allowed as links, but the page may *request* nothing from a remote host, and no request may fail (Chromium's
  network log);
* notebook pages: each solution toggle is closed, opens on a click and shows its code; notebook 05's results
  explorer shows its static view (two figures).

``python scripts/book_check.py [SITE]`` (default ``outputs/book``) prints each failed check; exit code 0 only if
every check holds. Screenshots of each page's first screen go to ``SITE/../book_check/``.
"""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ("file", "data", "about", "blob")          # schemes a page may load from

PAGE_STATE = """
const cells = Array.from(document.querySelectorAll('.jp-CodeCell'));
return {
  headings: document.querySelectorAll('h1').length,
  images: Array.from(document.images).map(i => ({src: i.src.slice(0, 80), ok: i.complete && i.naturalWidth > 0})),
  links: Array.from(document.querySelectorAll('a[href]')).map(a => a.href),
  tracebacks: Array.from(document.querySelectorAll('.jp-OutputArea-output')).filter(
      o => /Traceback \\(most recent call last\\)/.test(o.innerText)).length,
  solutions: document.querySelectorAll('details.solution').length,
  explorer_images: cells.filter(c => /widgets\\.explorer\\(/.test(c.querySelector('.jp-InputArea').innerText))
                        .map(c => c.querySelectorAll('.jp-OutputArea img').length),
};
"""


def browser():
    """Headless Chromium that starts offline and quiet: a fresh profile, no background or component traffic."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    profile = tempfile.mkdtemp(prefix="book_check_chromium_")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1300,1600", f"--user-data-dir={profile}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    return webdriver.Chrome(service=Service(driver_path), options=opts)


def _requests(driver) -> list[str]:
    """Failures from Chromium's network log since the last call: requests of the site's pages to a remote host, and
    failed loads (the browser's own pages, e.g. the first new tab, are not the site's)."""
    bad, urls = [], {}
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        params = msg.get("params", {})
        if msg["method"] == "Network.requestWillBeSent" and params.get("documentURL", "").startswith("file:"):
            url = params["request"]["url"]
            urls[params["requestId"]] = url
            if urlparse(url).scheme not in LOCAL:
                bad.append(f"remote request {url[:100]}")
        elif msg["method"] == "Network.loadingFailed" and params["requestId"] in urls and not params.get("canceled"):
            bad.append(f"failed request {urls.get(params['requestId'], '?')[:100]}: {params.get('errorText')}")
    return bad


def _link_problems(driver, links: list[str], site: Path) -> list[str]:
    """Site links that lead nowhere: a missing file, or an anchor missing on its page."""
    bad = []
    for href in links:
        url = urlparse(href)
        if url.scheme != "file":
            continue                                            # a link to the web: allowed, never fetched here
        target = Path(unquote(url.path))
        if not target.exists() or site.resolve() not in target.resolve().parents:
            bad.append(f"broken link {href}")
        elif url.fragment and target.suffix == ".html" and f'id="{url.fragment}"' not in target.read_text():
            bad.append(f"missing anchor {href}")
    return bad


def _toggles(driver) -> list[str]:
    """Each solution toggle: closed, opened by a click on its summary, then its code is visible."""
    from selenium.webdriver.common.by import By

    bad = []
    for i, details in enumerate(driver.find_elements(By.CSS_SELECTOR, "details.solution"), 1):
        code = details.find_element(By.CSS_SELECTOR, "pre")
        if details.get_attribute("open") is not None or code.is_displayed():
            bad.append(f"solution {i} is open before a click")
            continue
        driver.execute_script("arguments[0].scrollIntoView();", details)
        details.find_element(By.TAG_NAME, "summary").click()
        if details.get_attribute("open") is None or not code.is_displayed() or "def exercise_" not in code.text:
            bad.append(f"solution {i} does not show its code after a click")
    return bad


def check_page(driver, page: Path, site: Path, shots: Path | None = None) -> list[str]:
    """Every check of one page; each failure is a line naming the page."""
    driver.get(page.resolve().as_uri())
    state = driver.execute_script(PAGE_STATE)
    if shots:
        driver.save_screenshot(str(shots / f"{page.stem}.png"))
    broken = [i["src"] for i in state["images"] if not i["ok"]]
    bad = [f"{len(broken)} broken image(s), e.g. {broken[0]}"] if broken else []
    bad += ["no heading"] * (state["headings"] == 0)
    bad += [f"{state['tracebacks']} traceback(s)"] * bool(state["tracebacks"])
    bad += _link_problems(driver, state["links"], site) + _requests(driver)
    if page.stem[:2].isdigit():
        bad += ["no image"] * (not state["images"]) + ["no solution toggle"] * (state["solutions"] == 0)
        bad += [f"explorer shows {n} figures, not its static view's 2" for n in state["explorer_images"] if n < 2]
        bad += _toggles(driver)
    return [f"{page.name}: {b}" for b in bad]


def check(site: Path, shots: Path | None = None) -> list[str]:
    """Every page of ``site`` (its ``*.html``), each checked by ``check_page``; the failures, or []."""
    pages = sorted(Path(site).glob("*.html"))
    if not pages:
        return [f"no page under {site}"]
    driver = browser()
    try:
        return [b for page in pages for b in check_page(driver, page, Path(site), shots)]
    finally:
        driver.quit()


def main() -> int:
    site = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "outputs" / "book"
    shots = site.parent / "book_check"
    shots.mkdir(exist_ok=True)
    bad = check(site, shots)
    for b in bad:
        print(f"[book-check] FAILED {b}")
    print(f"[book-check] {len(list(site.glob('*.html')))} pages, {len(bad)} failed check(s); screenshots in {shots}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
