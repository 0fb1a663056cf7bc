"""The book: a static site of the executed notebook series (issue 31), built from what ``make demo`` left under
``outputs/`` without running a notebook again, and without the network.

A reader who does not run the series should still see it run: every executed notebook with its figures and tables,
each notebook's exercises with solutions behind a toggle, a results page generated from ``REPORT.md`` and an
execution-statistics page (run time, claims held and failed, machine and versions, as QuantEcon's lectures state
them). The publisher is nbconvert's HTML exporter with JupyterLab's template (``book/smplora/``: the lab template
without its CDN scripts, plus navigation), so figures are embedded as data URIs and nothing is fetched. Pages that
start as Markdown (index, results, statistics) go through the same exporter as one-cell notebooks, so every page
looks alike. Solutions live in ``docs/solutions/<stem>.py``, one ``exercise_<n>`` function per exercise, and
``tests/test_solutions.py`` runs them.

    python -m smplora_nb.book [--outputs DIR] [--dest DIR]     # default: outputs/ -> outputs/book/index.html
    python -m smplora_nb.book --readme-figure                   # docs/result.png from notebook 06's attack matrix
"""
from __future__ import annotations

import argparse
import ast
import datetime
import html
import json
import os
import platform
import re
import shutil
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from . import paths

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
SOLUTIONS = ROOT / "docs" / "solutions"
TEMPLATES = ROOT / "book"                        # book/smplora/: the nbconvert template
README_FIGURE = ("06_stronger_attacks_and_baselines", "attack_matrix.png")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
VERSIONS = ("torch", "diffusers", "transformers", "peft", "numpy", "papermill", "nbconvert")


def machine() -> dict:
    """Where this process runs: CPU model and cores, OS, Python and the versions of the packages that matter."""
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").exists():
        names = re.findall(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = names[0] if names else cpu
    out = {"cpu": cpu, "cores": os.cpu_count(), "system": platform.platform(terse=True),
           "python": platform.python_version()}
    for name in VERSIONS:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def exercises(nb: Path) -> list[str]:
    """The numbered exercises of a notebook: the list items after "## Exercises" in its last Markdown cell."""
    cells = [c for c in json.loads(Path(nb).read_text())["cells"] if c["cell_type"] == "markdown"]
    text = "".join(cells[-1]["source"]).split("## Exercises", 1)[-1]
    return [m.strip() for m in re.split(r"^\d+\.\s", text, flags=re.M)[1:]]


def solutions(stem: str) -> dict[str, str]:
    """``{exercise_<n>: its source}`` from ``docs/solutions/<stem>.py``, each with the file's imports above it, so a
    reader can paste one solution on its own below the executed notebook."""
    path = SOLUTIONS / f"{stem}.py"
    if not path.exists():
        return {}
    text = path.read_text()
    tree = ast.parse(text)
    imports = "\n".join(ast.get_source_segment(text, n) for n in tree.body
                        if isinstance(n, (ast.Import, ast.ImportFrom)))
    return {n.name: f"{imports}\n\n\n{ast.get_source_segment(text, n)}" for n in tree.body
            if isinstance(n, ast.FunctionDef) and n.name.startswith("exercise_")}


def _solutions_html(stem: str) -> str:
    """One ``<details>`` toggle per solution, its code highlighted as the notebook's own cells are."""
    from pygments import highlight                          # Pygments (with nbconvert): only for the book
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer

    fmt = HtmlFormatter(cssclass="highlight hl-ipython3")
    return "\n".join(f'<details class="solution" id="solution-{i}"><summary>Solution {i} '
                     f'(<code>docs/solutions/{stem}.py</code>)</summary>{highlight(src, PythonLexer(), fmt)}</details>'
                     for i, src in enumerate(solutions(stem).values(), 1))


def _progress_html(state: dict, model_id: str) -> str:
    """A tqdm progress bar as it ended, from the saved widget state: its label, a ``<progress>`` and its counts
    (nbconvert would draw it with the widget manager from a CDN; offline that is an empty box)."""
    def get(ref: str) -> dict:                                        # children are named "IPY_MODEL_<id>"
        return state.get(ref.removeprefix("IPY_MODEL_"), {}).get("state", {})

    parts = [get(ref) for ref in get(model_id).get("children", [])]
    cells = [f'<progress value="{p["value"]}" max="{p["max"]}"></progress>'
             if p.get("_model_name") == "FloatProgressModel" else f"<span>{p.get('value', '')}</span>" for p in parts]
    return f'<div class="book-progress">{"".join(cells)}</div>'


def static_widgets(nb) -> None:
    """Replace every widget view of an executed notebook by static HTML and drop the widget state."""
    state = nb.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view:
                out["data"] = {"text/html": _progress_html(state, view["model_id"])}


def _offline_markdown(source: str) -> str:
    """Remote images (the Colab badge) become their link text: a site that fetches nothing has no broken image."""
    return re.sub(r"!\[([^\]]*)\]\(https?://[^)]*\)", r"\1", source)


def _notebook(path: Path, stem: str):
    """The executed notebook, offline-ready, with its solutions after its exercises."""
    import nbformat                                         # nbformat: slow to import, only when a notebook is read

    nb = nbformat.read(path, as_version=4)
    static_widgets(nb)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = _offline_markdown(cell.source)
    last = max(i for i, c in enumerate(nb.cells) if c.cell_type == "markdown")
    if "## Exercises" in nb.cells[last].source and solutions(stem):
        toggles = nbformat.v4.new_raw_cell(_solutions_html(stem), metadata={"raw_mimetype": "text/html"})
        nb.cells.insert(last + 1, toggles)
    return nb


def _page(markdown: str, title: str):
    import nbformat                                         # nbformat: slow to import, only when a notebook is read

    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(markdown)], metadata={"title": title})


def _title(stem: str) -> str:
    """A notebook's title, from its ``# NN · Title`` heading."""
    for cell in json.loads((NOTEBOOKS / f"{stem}.ipynb").read_text())["cells"]:
        m = re.search(r"^# (.+)$", "".join(cell["source"]), re.M)
        if cell["cell_type"] == "markdown" and m:
            return m.group(1)
    return stem


def _run(outputs: Path, stem: str) -> dict:
    """What the runner and the notebook recorded: run_key.json, metrics.json's claims, papermill's metadata."""
    folder = outputs / stem
    run = paths.read_json(folder / "run_key.json") if (folder / "run_key.json").exists() else {}
    found = paths.read_json(folder / "metrics.json").get("claims", []) if (folder / "metrics.json").exists() else []
    claims = [c for c in found if c.get("holds") is not None]     # descriptive, not testable: neither held nor failed
    meta = json.loads((folder / f"{stem}.ipynb").read_text())["metadata"]
    return {"seconds": run.get("seconds", meta.get("papermill", {}).get("duration")), "claims": claims,
            "held": sum(bool(c["holds"]) for c in claims), "failed": [c for c in claims if not c["holds"]],
            "other": len(found) - len(claims),
            "machine": run.get("machine"), "executed": (meta.get("papermill", {}).get("end_time") or "")[:19],
            "python": meta.get("language_info", {}).get("version")}


def _secs(s) -> str:
    return "" if s is None else f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def _num(v) -> str:
    return "n/m" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v)


def _machine_text(m: dict) -> str:
    return f"{m.get('cpu')}, {m.get('cores')} cores, {m.get('system')}; " + ", ".join(
        f"{k} {m[k]}" for k in ("python", *VERSIONS) if k in m)


def statistics(outputs: Path, stems: list[str], here: dict) -> str:
    """The execution-statistics page (Markdown): per notebook its run time, claims held and failed, when and where."""
    runs = {s: _run(outputs, s) for s in stems}
    lines = ["# Execution statistics", "", f"Read from `{outputs}`: each notebook's `run_key.json` (run time), "
             "`metrics.json` (claims) and the executed notebook's papermill record. Nothing was run again.", "",
             "| notebook | run time | claims held | claims failed | descriptive, not testable | executed (UTC) "
             "| machine |",
             "|---|--:|--:|--:|--:|---|---|"]
    for s, r in runs.items():
        where = "recorded" if r["machine"] else "not recorded (see below)"
        lines.append(f"| [{_title(s)}]({s}.html) | {_secs(r['seconds'])} | {r['held']} / {len(r['claims'])} | "
                     f"{len(r['failed'])} | {r['other']} | {r['executed'].replace('T', ' ')} | {where} |")
    total = sum(r["seconds"] or 0 for r in runs.values())
    lines += ["", f"Total: {_secs(total)}; claims held {sum(r['held'] for r in runs.values())} of "
              f"{sum(len(r['claims']) for r in runs.values())}.", "", "## Machines and versions", ""]
    where = {}
    for s, r in runs.items():
        where.setdefault(_machine_text(r["machine"]) if r["machine"] else None, []).append(s)
    lines += [f"- {', '.join(stems_)}: {text}" for text, stems_ in where.items() if text]
    if None in where:
        lines += ["", f"{', '.join(where[None])}: no machine recorded by the runner; the kernel ran Python "
                  f"{', '.join(sorted({str(runs[s]['python']) for s in where[None]}))}. This book was built on "
                  f"{_machine_text(here)}."]
    lines += ["", "## Claims that did not hold", ""]
    lines += [f"- [{s}]({s}.html): {c['claim']} (measured {_num(c['value'])}, target {c['op']} {c['target']})"
              for s, r in runs.items() for c in r["failed"]] or ["None."]
    return "\n".join(lines)


def _report(outputs: Path) -> str:
    """The results page: ``REPORT.md`` with its links pointing into the site (notebooks as pages, figures copied)."""
    report = outputs / "REPORT.md"
    if not report.exists():
        return "# Results\n\nNo `REPORT.md` under the outputs: `make demo` writes it."
    text = report.read_text()
    return re.sub(r"\]\((\d\d_[^/)]+)/\1\.ipynb\)", r"](\1.html)", text)


def _index(outputs: Path, stems: list[str], done: list[str]) -> str:
    runs = {s: _run(outputs, s) for s in done}
    rows = [f"| [{_title(s)}]({s}.html) | {_secs(runs[s]['seconds'])} | {runs[s]['held']} / {len(runs[s]['claims'])} |"
            if s in done else f"| {_title(s)} | not executed | |" for s in stems]
    return "\n".join([
        "# smplora_nb: the executed series", "",
        "Notebooks and a small package that teach, reproduce and test SMP-LoRA (Luo et al., AAAI 2025, "
        "arXiv 2402.11989) on a tiny Stable-Diffusion-architecture model. These pages are the notebooks as "
        "`make demo` executed them, with every figure and table; each notebook ends with exercises whose solutions "
        "open with a click.", "",
        "| notebook | run time | claims held |", "|---|--:|--:|", *rows, "",
        "- [Results](results.html): every notebook's claims and the paper's tables beside this run's (`REPORT.md`).",
        "- [Execution statistics](statistics.html): run time, claims held and failed, machine and versions."])


def _nav(done: list[str], current: str) -> str:
    links = [("index", "Home"), *((s, s[:2]) for s in done), ("results", "Results"), ("statistics", "Statistics")]
    return "".join(f'<a href="{name}.html"{" class=current" if name == current else ""}>{html.escape(text)}</a>'
                   for name, text in links)


def build(outputs: Path | None = None, dest: Path | None = None) -> Path:
    """Write the site of the notebooks executed under ``outputs`` into ``dest`` (default ``outputs/book``) and
    return its index page. Nothing is executed; the folder is replaced only once every page is written."""
    from nbconvert import HTMLExporter                      # nbconvert (the book extra): slow to import

    outputs = Path(outputs) if outputs else paths.outputs_root()
    dest = Path(dest) if dest else outputs / "book"
    stems = [nb.stem for nb in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))]
    done = [s for s in stems if (outputs / s / f"{s}.ipynb").exists()]
    if not done:
        raise FileNotFoundError(f"no executed notebook under {outputs}: run `make demo` first")
    here = machine()
    built = (f"Built {datetime.datetime.now().isoformat(timespec='seconds')} from {outputs} by smplora_nb.book; "
             "nothing was run again.")
    pages = {"index": (_page(_index(outputs, stems, done), "smplora_nb"), ""),
             "results": (_page(_report(outputs), "Results"), ""),
             "statistics": (_page(statistics(outputs, done, here), "Execution statistics"), "")}
    for s in done:
        r = _run(outputs, s)
        machine_ = _machine_text(r["machine"]) if r["machine"] else f"Python {r['python']} (machine: see statistics)"
        pages[s] = (_notebook(outputs / s / f"{s}.ipynb", s),
                    f"Executed {r['executed'].replace('T', ' ')} UTC in {_secs(r['seconds'])}; claims held {r['held']} "
                    f"of {len(r['claims'])}; {machine_}. <a href=\"statistics.html\">Execution statistics</a>.")
    exporter = HTMLExporter(extra_template_basedirs=[str(TEMPLATES)], template_name="smplora")
    with paths.atomic_dir(dest) as tmp:
        for name, (nb, meta) in pages.items():
            book = {"nav": _nav(done, name), "meta": meta, "footer": html.escape(built)}
            body, _ = exporter.from_notebook_node(nb, resources={"book": book, "metadata": {"name": name}})
            (tmp / f"{name}.html").write_text(body)
        for s in done:                                          # REPORT.md links every figure by its file
            (tmp / s).mkdir()
            for png in (outputs / s).glob("*.png"):
                shutil.copy2(png, tmp / s / png.name)
    return dest / "index.html"


def readme_figure(outputs: Path | None = None, dest: Path = ROOT / "docs" / "result.png") -> Path:
    """Copy notebook 06's attack matrix of a finished run to ``docs/result.png``, the README's figure."""
    src = (Path(outputs) if outputs else paths.outputs_root()).joinpath(*README_FIGURE)
    if not src.exists():
        raise FileNotFoundError(f"{src} is missing: run the series that writes it first (`make demo` for outputs/, "
                                "`python -m smplora_nb reproduce --powered` for outputs/powered/)")
    shutil.copy2(src, dest)
    return dest


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m smplora_nb.book", description=__doc__.split("\n\n")[0])
    p.add_argument("--outputs", type=Path, help="the executed series (default: outputs/, or $SMPLORA_OUTPUTS)")
    p.add_argument("--dest", type=Path, help="where the site goes (default: <outputs>/book)")
    p.add_argument("--readme-figure", action="store_true", help="copy notebook 06's attack matrix to docs/result.png")
    args = p.parse_args(argv)
    start = time.time()
    try:
        out = readme_figure(args.outputs) if args.readme_figure else build(args.outputs, args.dest)
    except FileNotFoundError as e:
        print(f"[smplora_nb] {e}")
        return 2
    print(f"[smplora_nb] wrote {out} in {time.time() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
