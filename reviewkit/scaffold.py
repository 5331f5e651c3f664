"""``reviewkit init``: a new review project, empty or a copy of a worked example.

An empty project gets a commented protocol template (its ``<placeholders>`` must be
replaced before anything runs), empty extraction tables with their headers, the
report notebooks and a README. ``--example NAME`` copies a worked example instead:
its protocol, sample snapshot, screening decisions, extraction and article, so
``reviewkit run --offline`` in the new folder reproduces the example's report.

The examples and notebooks ship inside the package (an installed wheel needs no
checkout). In a development checkout the repository itself is the worked example
(its ``data/`` and ``notebooks/``), so the two can never drift apart.
"""

from __future__ import annotations

import os
import shutil
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from string import Template

from .errors import ProjectError
from .io import atomic_write_text
from .project import MARKER, Project

EXAMPLES = {"ketamine": "ketamine for addictive disorders, checked against a clinic's article (a curated sample)"}
_TEMPLATES = resources.files("reviewkit") / "templates"


def _example_source() -> tuple[Traversable, Traversable]:
    """(data, notebooks) of the worked example: package data in a wheel, the checkout in development."""
    package = resources.files("reviewkit")
    data, notebooks = package / "_example", package / "_notebooks"
    if data.is_dir() and notebooks.is_dir():
        return data, notebooks
    checkout = Path(str(package)).parent  # an editable install of the repository
    if (checkout / MARKER).is_file() and (checkout / "data" / "protocol.yml").is_file():
        return checkout / "data", checkout / "notebooks"
    raise ProjectError("this reviewkit installation carries no worked example (package data missing)")


def _copy_tree(source: Traversable, target: Path) -> int:
    """Copy a package-data folder; returns the number of files. Links are never followed or copied."""
    count = 0
    target.mkdir(parents=True, exist_ok=True)
    for item in sorted(source.iterdir(), key=lambda t: t.name):
        if item.name in ("__pycache__", ".ipynb_checkpoints", ".reviewkit.lock") or \
                item.name.endswith((".xlsx", ".pyc", ".tmp")):
            continue
        if isinstance(item, Path) and item.is_symlink():
            continue
        if item.is_dir():
            count += _copy_tree(item, target / item.name)
        else:
            (target / item.name).write_bytes(item.read_bytes())
            count += 1
    return count


def _write_template(name: str, target: Path, **values: str) -> None:
    text = (_TEMPLATES / name).read_text(encoding="utf-8")
    atomic_write_text(target, Template(text).substitute(values) if values else text)


def init_project(folder: str | os.PathLike, example: str | None = None, protocol: str | os.PathLike | None = None
                 ) -> Project:
    """Create a review project in ``folder`` (new, or empty) and return it.

    Parameters
    ----------
    folder : path
        Where the project goes; it must not exist or be empty (init never overwrites).
    example : str, optional
        A worked example to copy (a key of ``EXAMPLES``).
    protocol : path, optional
        A protocol file to start from instead of the template (not with ``example``).
    """
    root = Path(folder).expanduser().resolve()
    if example is not None and example not in EXAMPLES:
        raise ProjectError(f"unknown example {example!r}; examples: {', '.join(EXAMPLES)}")
    if example is not None and protocol is not None:
        raise ProjectError("--protocol starts an empty project from your protocol; an --example brings its own")
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise ProjectError(f"{root} exists and is not an empty folder; reviewkit init never overwrites files")
    source_protocol = Path(protocol).expanduser().resolve() if protocol is not None else None
    if source_protocol is not None and not source_protocol.is_file():
        raise ProjectError(f"--protocol: {source_protocol} is not a file")

    # Build beside the target and move it into place, so a failure leaves no half project.
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = root.parent / f".{root.name}.reviewkit-init"
    if staging.exists():
        shutil.rmtree(staging)
    try:
        _fill(staging, example, source_protocol)
        if root.exists():
            root.rmdir()
        staging.rename(root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    project = Project.load(root)
    if example:
        project.protocol()  # an example must load as shipped; a template waits for its user's edits
    return project


def _fill(staging: Path, example: str | None, protocol: Path | None) -> None:
    data = staging / "data"
    _write_template("gitignore", staging / ".gitignore")
    if example:
        example_data, notebooks = _example_source()
        _copy_tree(example_data, data)
        _copy_tree(notebooks, staging / "notebooks")
        _write_template("reviewkit.yml", staging / MARKER, offline="sample")
        _write_template("README.md", staging / "README.md", title=f"Worked example: {EXAMPLES[example]}",
                        question="See data/protocol.yml for the question and data/README.md for what the sample holds.")
        return
    _, notebooks = _example_source()
    _copy_tree(notebooks, staging / "notebooks")
    _write_template("reviewkit.yml", staging / MARKER, offline="live")
    if protocol is not None:
        atomic_write_text(data / "protocol.yml", protocol.read_text(encoding="utf-8"))
    else:
        _write_template("protocol.yml", data / "protocol.yml")
    for name in ("README.md", "outcomes.csv", "studies.csv"):
        _write_template(f"extraction/{name}", data / "extraction" / name)
    _write_template("article-README.md", data / "article" / "README.md")
    for folder in ("snapshots", "screening"):
        (data / folder).mkdir(parents=True, exist_ok=True)
    _write_template("README.md", staging / "README.md", title="A new systematic review",
                    question="Write the question in data/protocol.yml, then run the searches.")
