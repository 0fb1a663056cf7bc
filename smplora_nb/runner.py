"""Run the notebook series headlessly with papermill (smplora_nb, arXiv 2402.11989 companion).

``python -m smplora_nb notebooks [--profile tiny] [--only 01 ...] [-p NAME VALUE ...]`` executes
``notebooks/NN_*.ipynb`` in order, injecting parameters, and writes each executed copy to
``outputs/<notebook-stem>/<notebook-stem>.ipynb``. A parameter name that no selected notebook declares in its
``parameters`` cell is an error (papermill itself would only warn); each notebook receives the names it declares.
"""
from __future__ import annotations

import ast
import os
import shutil
import tempfile
import time
from pathlib import Path

from . import book, config, paths
from .parallel import SHARD_VAR, parse_shard

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
    import nbformat                                         # nbformat: slow to import, only when a notebook is read

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


def source_hash() -> str:
    """Hash of the package's Python sources: a notebook's cached result is reused only under the same code."""
    pkg = Path(__file__).resolve().parent
    return paths.config_hash({p.name: p.read_text() for p in sorted(pkg.glob("*.py"))})


def _notebook_key(nb: Path, params: dict) -> str:
    return paths.config_hash({"notebook": nb.read_text(), "parameters": params, "package": source_hash()})


def run(only=None, profile: str = "tiny", params: dict | None = None, folder: Path = NOTEBOOK_DIR,
        progress: bool = True, cache: bool = False, shard: str | None = None,
        optional: dict | None = None) -> list[Path]:
    """Execute the selected notebooks with papermill; return the paths of the executed copies.

    Each notebook writes into a staging folder that replaces ``outputs/<stem>/`` only if the whole notebook succeeds
    (a failed attempt is kept in ``outputs/<stem>.failed/`` and the completed one stays). With ``cache`` a notebook
    whose last successful run had the same source, parameters and package code is not run again. With ``shard``
    ("I/N") every training call trains only its share of the runs and stops the notebook there (``ShardComplete``);
    the notebook is then reported as sharded, and a later call without ``shard`` completes it from the cache.
    ``optional`` parameters go only to the notebooks that declare them (e.g. ``n_seeds``).
    """
    notebooks = select(list_notebooks(folder), only)
    params = {"profile": profile, **(params or {})}
    declared = {nb: declared_parameters(nb) for nb in notebooks}
    fields = set(config.flat(config.make(profile)))                 # config fields reach a notebook via ``overrides``
    known = set().union(*declared.values()) | (fields if any("overrides" in d for d in declared.values()) else set())
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"unknown notebook parameter(s) {unknown}; the selected notebooks declare {sorted(known)}")
    if shard is not None:
        parse_shard(shard)
    if not isinstance(params.get("overrides") or {}, dict):
        raise ValueError(f"overrides must be a dict of config fields, got {params['overrides']!r}")
    given = {k: v for k, v in params.items() if k in fields and k != "profile" and v is not None}
    config.make(profile, **{**given, **(params.get("overrides") or {})})   # bad values fail here, before any kernel
    cached_entries = paths.outputs_root() / "cache"       # (not ``cache``: that is the notebook-level switch)
    stale = paths.clean_stale(paths.outputs_root()) + [
        p for sub in ("base", "runs", "eval", "latents") if (cached_entries / sub).is_dir()
        for p in paths.clean_stale(cached_entries / sub)]
    if stale:
        print(f"[smplora_nb] removed {len(stale)} folder(s) left by killed runs, e.g. {stale[0].name}", flush=True)
    done = []
    for nb in notebooks:
        final = paths.outputs_root() / nb.stem
        given = {**(optional or {}), **params}
        mine = {k: v for k, v in given.items() if k in declared[nb]}
        folded = {k: v for k, v in given.items() if k not in declared[nb] and k in fields}
        if folded and "overrides" in declared[nb]:                   # e.g. split sizes, in notebooks 02 to 06
            mine["overrides"] = {**folded, **(mine.get("overrides") or {})}
        if "interactive" in declared[nb]:                    # headless: widgets fall back to static output
            mine.setdefault("interactive", False)
        key = _notebook_key(nb, mine)
        if cache and shard is None and (final / "metrics.json").exists() \
                and (paths.read_cached(final / "run_key.json", what="running the notebook again") or {}).get("key") == key:
            print(f"[smplora_nb] {nb.stem}: cached (same notebook, parameters and code) -> {final}", flush=True)
            done.append(final / f"{nb.stem}.ipynb")
            continue
        print(f"[smplora_nb] running {nb.name} with {mine}" + (f", shard {shard}" if shard else ""), flush=True)
        start = time.time()
        if _execute(nb, mine, final, shard, progress):
            paths.write_json(final / "run_key.json", {"key": key, "parameters": mine,
                                                        "seconds": round(time.time() - start, 1),
                                                        "machine": book.machine()})     # the book states it
            for c in _claims(nb.stem):
                word = {"not testable": "n/t   ", "descriptive": "desc  "}.get(c.get("kind"), "holds " if c["holds"]
                                                                                 else "FAILS ")
                print(f"[smplora_nb]   {word} {c['claim']}: {c['value']}", flush=True)
            done.append(final / f"{nb.stem}.ipynb")
    return done


def _execute(nb: Path, params: dict, final: Path, shard: str | None, progress: bool) -> bool:
    """Run one notebook into a staging folder; move it to ``final`` on success. False when a shard stopped it."""
    import papermill as pm                                  # papermill: slow to import, only when a notebook runs

    start = time.time()
    root = Path(tempfile.mkdtemp(dir=paths.outputs_root(), prefix=f".{nb.stem}.", suffix=".staging"))
    staged = root / nb.stem
    staged.mkdir()
    env = {paths.STAGING_VAR: str(root), SHARD_VAR: shard}
    old = {k: os.environ.get(k) for k in env}
    held = paths.locked(root)                                     # a killed runner's staging is cleaned later
    held.__enter__()
    try:
        os.environ.update({k: v for k, v in env.items() if v is not None})
        try:
            pm.execute_notebook(str(nb), str(staged / f"{nb.stem}.ipynb"), parameters=params, cwd=str(nb.parent),
                                kernel_name="python3", progress_bar=progress)
        finally:
            echo(staged / f"{nb.stem}.ipynb")
    except pm.PapermillExecutionError as e:
        if e.ename != "ShardComplete":
            _keep_failed(staged, final)
            raise
        print(f"[smplora_nb] {nb.stem}: {e.evalue}; run again without --shard to finish it", flush=True)
        return False                                              # a shard's partial notebook is not kept
    except BaseException:
        _keep_failed(staged, final)
        raise
    else:
        paths.replace_dir(staged, final)
        print(f"[smplora_nb] {nb.stem} finished in {time.time() - start:.0f} s -> {final}", flush=True)
        return True
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(root, ignore_errors=True)                   # the staging folder, whatever happened
        held.__exit__(None, None, None)
        root.with_name(f".{root.name}.lock").unlink(missing_ok=True)


def echo(executed: Path) -> None:
    """Print on the terminal the package's ``[smplora_nb]`` lines that an executed notebook printed (a damaged file
    removed, duplicates dropped): papermill keeps a kernel's output inside the notebook."""
    import nbformat                                         # nbformat: slow to import, only when a notebook is read

    if not executed.exists():
        return
    for cell in nbformat.read(str(executed), as_version=4).cells:
        for out in cell.get("outputs", []):
            for line in (out.get("text", "") if out.get("output_type") == "stream" else "").splitlines():
                if line.startswith("[smplora_nb] "):
                    print(f"[smplora_nb] {executed.stem}: {line[len('[smplora_nb] '):]}", flush=True)


def _keep_failed(staged: Path, final: Path) -> None:
    """A failed attempt goes to ``outputs/<stem>.failed/`` for inspection; the completed ``final`` is untouched."""
    if staged.exists():
        paths.replace_dir(staged, final.with_name(f"{final.name}.failed"))
        print(f"[smplora_nb] {final.name} failed: its partial outputs are in {final.name}.failed/; "
              f"{final.name}/ is unchanged", flush=True)
