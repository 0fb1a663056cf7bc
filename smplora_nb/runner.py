"""Run the notebook series headlessly with papermill (smplora_nb, arXiv 2402.11989 companion).

``python -m smplora_nb notebooks [--profile tiny] [--only 01 ...] [-p NAME VALUE ...]`` executes
``notebooks/NN_*.ipynb`` in order, injecting parameters, and writes each executed copy to
``outputs/<notebook-stem>/<notebook-stem>.ipynb``. A parameter name that no selected notebook declares in its
``parameters`` cell is an error (papermill itself would only warn); each notebook receives the names it declares.
"""
from __future__ import annotations

import ast
import time
from pathlib import Path

from . import paths

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"


def list_notebooks(folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """The numbered notebooks ``NN_*.ipynb`` of the series, in order."""
    nbs = sorted(p for p in Path(folder).glob("[0-9][0-9]_*.ipynb"))
    if not nbs:
        raise FileNotFoundError(f"no numbered notebooks (NN_*.ipynb) in {folder}")
    return nbs


def select(notebooks: list[Path], only) -> list[Path]:
    """Keep notebooks whose number or stem is in ``only`` (e.g. ["01", "02"]); all if ``only`` is empty."""
    if not only:
        return notebooks
    wanted = {str(o).strip() for o in only for o in str(o).split(",") if o.strip()}
    chosen = [nb for nb in notebooks if nb.stem in wanted or nb.stem.split("_")[0] in wanted]
    missing = wanted - {nb.stem for nb in chosen} - {nb.stem.split("_")[0] for nb in chosen}
    if missing:
        raise ValueError(f"no notebook matches {sorted(missing)}; available: {[nb.stem for nb in notebooks]}")
    return chosen


def parse_value(text: str):
    """A CLI value as a Python literal when it is one (``3``, ``0.5``, ``True``, ``[1, 2]``), else a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def declared_parameters(notebook: Path) -> set[str]:
    """Names assigned in the notebook's cell tagged ``parameters`` (read with ``ast``, not executed)."""
    import nbformat

    nb = nbformat.read(str(notebook), as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ValueError(f"{notebook} has no cell tagged 'parameters'")
    tree = ast.parse(cells[0].source)
    return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets
            if isinstance(t, ast.Name)}


def _claims(stem: str) -> list:
    try:
        return paths.read_metrics(stem).get("claims", [])
    except FileNotFoundError:
        return []


def run(only=None, profile: str = "tiny", params: dict | None = None, folder: Path = NOTEBOOK_DIR,
        progress: bool = True) -> list[Path]:
    """Execute the selected notebooks with papermill; return the paths of the executed copies."""
    import papermill as pm

    notebooks = select(list_notebooks(folder), only)
    params = {"profile": profile, **(params or {})}
    declared = {nb: declared_parameters(nb) for nb in notebooks}
    known = set().union(*declared.values())
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"unknown notebook parameter(s) {unknown}; the selected notebooks declare {sorted(known)}")
    done = []
    for nb in notebooks:
        out = paths.stage_dir(nb.stem) / f"{nb.stem}.ipynb"
        mine = {k: v for k, v in params.items() if k in declared[nb]}
        print(f"[smplora_nb] running {nb.name} with {mine}", flush=True)
        start = time.time()
        pm.execute_notebook(str(nb), str(out), parameters=mine, cwd=str(nb.parent), kernel_name="python3",
                            progress_bar=progress)
        print(f"[smplora_nb] {nb.stem} finished in {time.time() - start:.0f} s -> {out}", flush=True)
        for c in _claims(nb.stem):
            print(f"[smplora_nb]   {'holds ' if c['holds'] else 'FAILS '} {c['claim']}: {c['value']}", flush=True)
        done.append(out)
    return done
