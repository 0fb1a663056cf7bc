"""pyproject.toml keeps loose ranges, environment.yml exact pins: the two must name the same packages."""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9][A-Za-z0-9.+!_-]*)$")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pyproject_names() -> set[str]:
    project = _pyproject()["project"]
    reqs = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    names = set()
    for req in reqs:
        m = NAME.match(req)
        assert m, f"cannot parse requirement {req!r}"
        names.add(_norm(m.group(1)))
    return names


def _env_pip_lines() -> list[str]:
    """The entries under ``- pip:`` in environment.yml (simple indentation-based parser; no PyYAML needed)."""
    lines = (ROOT / "environment.yml").read_text().splitlines()
    out, pip_indent = [], None
    for line in lines:
        stripped = line.split("#", 1)[0].rstrip()
        if not stripped.strip():
            continue
        indent = len(stripped) - len(stripped.lstrip())
        if pip_indent is None:
            if re.match(r"^\s*-\s*pip\s*:\s*$", stripped):
                pip_indent = indent
            continue
        if indent <= pip_indent:
            break
        m = re.match(r"^\s*-\s*(.+?)\s*$", stripped)
        assert m, f"unexpected line in the pip section: {line!r}"
        out.append(m.group(1))
    assert pip_indent is not None, "environment.yml has no '- pip:' section"
    return out


def _env_pins() -> dict[str, str]:
    pins = {}
    for entry in _env_pip_lines():
        if entry.startswith("-e"):
            continue
        m = PIN.match(entry)
        assert m, f"environment.yml entry {entry!r} is not an exact 'name==version' pin"
        name = _norm(m.group(1))
        assert name not in pins, f"{name} pinned twice"
        pins[name] = m.group(2)
    return pins


def test_pip_section_parsed():
    entries = _env_pip_lines()
    assert "-e ." in entries
    assert len(entries) >= 2


def test_every_env_entry_is_exact_pin():
    pins = _env_pins()
    assert pins
    for name, version in pins.items():
        assert re.fullmatch(r"\d+(\.\d+)*([a-z]+\d*)?(\.post\d+)?", version), (name, version)


def test_same_package_names():
    py, env = _pyproject_names(), set(_env_pins())
    assert py == env, f"only in pyproject: {sorted(py - env)}; only in environment.yml: {sorted(env - py)}"


def test_matches_yaml_parser_if_available():
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = [d["pip"] for d in doc["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip) == 1
    assert pip[0] == _env_pip_lines()


def test_env_python_satisfies_requires_python():
    text = (ROOT / "environment.yml").read_text()
    m = re.search(r"^\s*-\s*python\s*=+\s*(\d+)\.(\d+)", text, re.M)
    assert m, "environment.yml does not pin python"
    req = _pyproject()["project"]["requires-python"]
    lo = re.fullmatch(r">=\s*(\d+)\.(\d+)", req)
    assert lo, req
    assert (int(m.group(1)), int(m.group(2))) >= (int(lo.group(1)), int(lo.group(2)))


def test_pins_inside_pyproject_ranges():
    """Each exact pin satisfies the pyproject lower bound (both files describe one environment)."""
    pins = _env_pins()
    project = _pyproject()["project"]
    reqs = list(project["dependencies"]) + [r for e in project.get("optional-dependencies", {}).values() for r in e]

    def ver(s):
        return tuple(int(x) for x in re.findall(r"\d+", s)[:3])

    for req in reqs:
        m = re.match(r"^\s*([A-Za-z0-9._-]+)\s*>=\s*([0-9.]+)", req)
        if m:
            name = _norm(m.group(1))
            assert ver(pins[name]) >= ver(m.group(2)), (name, pins[name], m.group(2))


# Every extra the package tells users to install (data.load_hub: `pip install 'smplora_nb[paper]'`) is defined in
# pyproject.toml, so that the command installs what it promises.
def test_extras_named_in_source_exist():
    extras = set(_pyproject()["project"].get("optional-dependencies", {}))
    named = set()
    for src in (ROOT / "smplora_nb").glob("*.py"):
        named |= set(re.findall(r"smplora_nb\[(\w+)\]", src.read_text()))
    assert named <= extras, f"extras named in smplora_nb/ but missing from pyproject: {sorted(named - extras)}"
