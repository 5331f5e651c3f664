"""JupyterLab saves a notebook the repository keeps output-free the way git stores it.

The notebooks are committed without outputs: ``.gitattributes`` names the ``nbstripout`` git
filter, which ``make`` sets up (``scripts/install-notebook-filter.sh``). The filter cleans what
``git add`` stages, but a notebook saved with outputs still differs in size from the committed
file, and ``git status`` reports every such file as modified (git does not run clean filters for
a size change). So the same script registers :func:`strip_as_git_stores` as the Jupyter server's
``pre_save_hook``: before JupyterLab writes a notebook, the notebook goes through the clean
filter git would apply to that path, and the file on disk stays as committed. Outputs remain
on screen until the notebook is closed; the HTML report (``reviewkit run``) is where executed
notebooks are kept.

A notebook outside a git work tree, or one no filter applies to, is saved unchanged; a filter that
fails is logged and the notebook is saved unchanged (never lost).
"""

from __future__ import annotations

import logging
import shlex
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)


def _git(folder: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(folder), *args], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def clean_filter(path: Path) -> str | None:
    """The shell command git runs to clean ``path`` when staging it, or None if no filter applies."""
    attribute = _git(path.parent, "check-attr", "filter", "--", path.name)
    driver = attribute.rsplit(": ", 1)[-1] if attribute else ""
    if driver in ("", "unspecified", "unset", "set"):
        return None
    command = _git(path.parent, "config", "--get", f"filter.{driver}.clean")
    return command.replace("%f", shlex.quote(path.name)) if command else None


def strip_as_git_stores(model: dict, path: str, contents_manager, **kwargs) -> None:
    """Jupyter ``pre_save_hook``: replace a notebook's content by what git's clean filter makes of it.

    ``model``, ``path`` and ``contents_manager`` are what the Jupyter server passes (``path`` relative
    to the contents manager's ``root_dir``).
    """
    if model.get("type") != "notebook" or not model.get("content"):
        return
    import nbformat

    file = Path(contents_manager.root_dir, path)
    command = clean_filter(file)
    if command is None:
        return
    text = nbformat.writes(nbformat.from_dict(model["content"]), version=4)
    try:
        done = subprocess.run(["sh", "-c", command], input=text, capture_output=True, text=True, cwd=file.parent,
                              timeout=120)
        cleaned = nbformat.reads(done.stdout, as_version=4) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError) as exc:
        log.error("%s: the git clean filter failed (%s); saved with outputs", path, exc)
        return
    if cleaned is None:
        log.error("%s: the git clean filter exited %d (%s); saved with outputs", path, done.returncode,
                  done.stderr.strip()[-200:])
        return
    model["content"] = cleaned
