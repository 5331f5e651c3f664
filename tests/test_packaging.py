"""Dependencies: compatible ranges in pyproject.toml, one exact lock (requirements.lock) that CI and
`make` install, the same pins in environment.yml, every imported package declared and every declared
runtime package used; the README's two commands; the house rules CI checks."""

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from helpers import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
RUNTIME = [Requirement(s) for s in PROJECT["dependencies"]]
TEST = [Requirement(s) for s in PROJECT["optional-dependencies"]["test"]]
# Import name -> distribution, where they differ.
DISTRIBUTION = {"Bio": "biopython", "yaml": "pyyaml", "IPython": "ipython", "PIL": "pillow", "sklearn": "scikit-learn",
                "websocket": "websocket-client"}
# Used without an import of their own: the notebook kernel, the Excel engines pandas loads, tqdm's
# notebook bars, and the JupyterLab the README tells people to open.
USED_WITHOUT_IMPORT = {"ipykernel", "openpyxl", "python-calamine", "ipywidgets", "jupyterlab"}


def lock_pins() -> dict[str, str]:
    text = (ROOT / "requirements.lock").read_text()
    return {canonicalize_name(n): v for n, v in re.findall(r"^([A-Za-z0-9_.-]+)==([^\s\\]+)", text, re.M)}


def environment_pins() -> dict[str, str]:
    pins = {}
    for dep in yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]:
        for item in dep["pip"] if isinstance(dep, dict) else [dep]:
            match = re.fullmatch(r"([A-Za-z0-9_.-]+)==?([0-9][^\s]*)", item)
            if match and match.group(1) != "python":
                pins[canonicalize_name({"python-build": "build"}.get(match.group(1), match.group(1)))] = match.group(2)
    return pins


def imported_packages(folder: str) -> set[str]:
    names = set()
    for path in (ROOT / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    local = {p.stem for p in (ROOT / folder).glob("*.py")}  # tests import each other's helpers
    return {n for n in names if n not in sys.stdlib_module_names and n not in {"reviewkit", "tools", *local}}


def test_library_dependencies_are_compatible_ranges():
    for req in RUNTIME + TEST:
        ops = {s.operator for s in req.specifier}
        assert ">=" in ops and "<" in ops, f"{req} is not a compatible range (>=floor,<ceiling)"


def test_the_lock_pins_every_dependency_inside_its_range():
    pins = lock_pins()
    for req in RUNTIME + TEST:
        version = pins.get(canonicalize_name(req.name))
        assert version, f"{req.name} is not in requirements.lock"
        assert req.specifier.contains(version, prereleases=True), f"requirements.lock has {req.name} {version}, outside {req}"
    assert "--hash=sha256:" in (ROOT / "requirements.lock").read_text()


def test_environment_yml_has_the_locks_pins():
    pins, env = lock_pins(), environment_pins()
    assert set(env) == {canonicalize_name(r.name) for r in RUNTIME + TEST}
    assert {n: pins[n] for n in env} == env


def test_every_imported_package_is_declared_and_every_declared_one_used():
    declared = {canonicalize_name(r.name) for r in RUNTIME}
    imported = {canonicalize_name(DISTRIBUTION.get(n, n)) for n in imported_packages("reviewkit")}
    assert imported - declared == set(), "imported by reviewkit/ but not a dependency"
    assert declared - imported - USED_WITHOUT_IMPORT == set(), "a dependency nothing imports"
    tests = {canonicalize_name(DISTRIBUTION.get(n, n)) for n in imported_packages("tests")}
    assert tests - declared - {canonicalize_name(r.name) for r in TEST} == set()


def test_every_subpackage_ships_in_the_wheel():
    """pyproject.toml lists the packages by name (the example data is mapped in): a new subpackage
    missing from the list would import from a checkout and fail from an installed wheel."""
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "reviewkit").rglob("__init__.py")}
    assert on_disk <= listed, f"not packaged: {sorted(on_disk - listed)}"


def test_make_installs_the_lock():
    makefile = (ROOT / "Makefile").read_text()
    assert "--require-hashes -r requirements.lock" in makefile and "--no-deps -e ." in makefile


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```(?:sh|bash)?\n(.*?)```", readme, re.S).group(1)
    commands = [line for line in block.splitlines() if line.strip()]
    assert len(commands) == 2, "the README's first code block holds exactly two commands"
    assert commands[1] in (ROOT / ".ci" / "run").read_text()


@pytest.mark.parametrize("command", [
    [str(Path(sys.executable).with_name("lint-imports"))],
    [sys.executable, "-m", "ruff", "check", "reviewkit", "tools", "tests", "bench", "notebooks"],
    [sys.executable, "-m", "mypy"],
], ids=["import-linter", "ruff", "mypy"])
def test_house_rules(command):
    """The layering contract (import-linter), ruff and mypy at the level pyproject.toml states."""
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
