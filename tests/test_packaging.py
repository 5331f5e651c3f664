"""The two install routes (pip via pyproject.toml, conda via environment.yml) pin the same versions."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    return dict(re.fullmatch(r"([A-Za-z0-9_.-]+)==(.+)", s).groups() for s in specs)


def _environment_pins() -> dict[str, str]:
    pins = {}
    for dep in yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            match = re.fullmatch(r"([A-Za-z0-9_.-]+)==?([0-9][^\s]*)", item)
            if match and match.group(1) != "python":
                pins[match.group(1)] = match.group(2)
    return pins


def test_every_dependency_is_pinned_exactly():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for spec in project["dependencies"]:
        assert "==" in spec, f"{spec} in pyproject.toml is not pinned"


def test_environment_yml_matches_pyproject():
    assert _environment_pins() == _pyproject_pins()


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```(?:sh|bash)?\n(.*?)```", readme, re.S).group(1)
    commands = [line for line in block.splitlines() if line.strip()]
    assert len(commands) == 2, "the README's first code block holds exactly two commands"
    assert commands[1] in (ROOT / ".ci" / "run").read_text()
