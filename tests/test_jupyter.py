"""JupyterLab stays clean: the notebooks are saved and staged without outputs (nbstripout as git filter
and as the Jupyter server's pre-save hook, both set up by `make`), so a Run All leaves `git status` clean;
progress bars are widgets, with no "IProgress not found"."""

import json
import shutil
import subprocess
import sys

import nbformat
import pytest

from helpers import EXAMPLE, ROOT

SCRIPT = ROOT / "scripts" / "install-notebook-filter.sh"
GIT_ENV = {"GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1", "PATH": "/usr/bin:/bin"}


def git(repo, *args, check=True) -> str:
    done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=check,
                          env={**GIT_ENV, "HOME": str(repo)})
    return done.stdout


def execute(nb: nbformat.NotebookNode, cwd) -> nbformat.NotebookNode:
    """Run every cell in a fresh python3 kernel, as JupyterLab's Run All does."""
    from nbconvert.preprocessors import ExecutePreprocessor

    ExecutePreprocessor(kernel_name="python3", timeout=300).preprocess(nb, {"metadata": {"path": str(cwd)}})
    return nb


def output_text(nb: nbformat.NotebookNode) -> str:
    return json.dumps([o for c in nb.cells if c.cell_type == "code" for o in c.outputs])


def test_make_sets_up_the_filter_and_the_attributes_name_it():
    assert "scripts/install-notebook-filter.sh $(BIN)/python" in (ROOT / "Makefile").read_text()
    attributes = (ROOT / ".gitattributes").read_text().splitlines()
    assert "*.ipynb filter=nbstripout" in attributes and "*.ipynb diff=ipynb" in attributes


def contents_manager(root, config_dir):
    """The Jupyter server's contents manager JupyterLab saves through, configured as the script left it."""
    from jupyter_server.services.contents.filemanager import FileContentsManager
    from traitlets.config import Config

    config = Config(json.loads((config_dir / "jupyter_server_config.d" / "reviewkit.json").read_text()))
    return FileContentsManager(root_dir=str(root), config=config)


@pytest.mark.slow
def test_run_all_leaves_git_status_clean(tmp_path, monkeypatch):
    """A copy of the repository's notebooks in a fresh git repository, set up by the script `make` runs;
    notebook 3 run by a kernel and saved by the Jupyter server (what JupyterLab's autosave does):
    `git status` is clean, and so is what `git add` stages of a notebook saved with outputs elsewhere."""
    repo, config_dir = tmp_path / "repo", tmp_path / "jupyter-config"
    shutil.copytree(ROOT / "notebooks", repo / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    (repo / "scripts").mkdir()
    shutil.copy2(SCRIPT, repo / "scripts" / SCRIPT.name)
    for name in (".gitattributes", ".gitignore"):
        shutil.copy2(ROOT / name, repo / name)
    git(repo, "init", "-q")
    done = subprocess.run(["bash", str(repo / "scripts" / SCRIPT.name), sys.executable, str(config_dir)],
                          capture_output=True, text=True, env={**GIT_ENV, "HOME": str(repo)})
    assert done.returncode == 0, done.stderr
    assert "--keep-id" in git(repo, "config", "filter.nbstripout.clean")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "notebooks")
    # the committed notebooks are what the filter makes of them: staging them changes nothing
    for path in sorted((repo / "notebooks").glob("*.ipynb")):
        assert git(repo, "show", f"HEAD:notebooks/{path.name}").encode() == path.read_bytes(), path.name

    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    name = "notebooks/03_prisma.ipynb"
    executed = execute(nbformat.read(repo / name, as_version=4), EXAMPLE.root / "notebooks")
    assert any(c.get("outputs") for c in executed.cells) and executed.metadata["language_info"].get("version")
    assert "IProgress" not in output_text(executed)
    contents_manager(repo, config_dir).save({"type": "notebook", "format": "json", "content": executed}, name)
    assert git(repo, "status", "--porcelain") == ""
    assert (repo / name).read_bytes() == git(repo, "show", f"HEAD:{name}").encode()

    # saved with outputs by another editor: git status may say modified (a git limitation), but git
    # stages nothing, because the filter strips what git stores
    nbformat.write(executed, repo / name)
    git(repo, "add", "-A")
    assert git(repo, "diff", "--cached", "--stat") == ""

    # a notebook outside any git repository is saved as it is, outputs and all
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    contents_manager(outside, config_dir).save({"type": "notebook", "format": "json", "content": executed}, "x.ipynb")
    assert any(c.get("outputs") for c in nbformat.read(outside / "x.ipynb", as_version=4).cells)


@pytest.mark.slow
def test_progress_bars_are_widgets_without_an_iprogress_warning(tmp_path):
    """tqdm.auto (what reviewkit's long steps use) draws ipywidgets bars in a kernel; without ipywidgets
    it would print "IProgress not found. Please update jupyter and ipywidgets"."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import reviewkit.screening_state  # imports tqdm.auto, as the notebooks do"),
                nbformat.v4.new_code_cell("from tqdm.auto import tqdm\nfor _ in tqdm(range(3), desc='records'):\n    pass")]
    executed = execute(nb, tmp_path)
    outputs = [o for c in executed.cells for o in c.outputs]
    assert "IProgress" not in output_text(executed)
    assert not [o for o in outputs if o.output_type == "stream" and o.name == "stderr"], outputs
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs), outputs
