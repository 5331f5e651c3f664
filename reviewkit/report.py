"""Run the review notebooks with papermill and turn them into one self-contained HTML report.

The project's notebooks named ``NN_<part>.ipynb`` (``Project.notebooks``) run in
order. The first failure stops the run and names the notebook and cell. The executed
notebooks are then merged into a single ``index.html``: code hidden, images
embedded, every script and style inlined, so the file can be e-mailed and
opened anywhere without fetching anything from the internet.
"""

from __future__ import annotations

import ast
import hashlib
import html
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .errors import ReviewkitError
from .io import atomic_write_text
from .redact import excerpt, redact

KERNEL_NAME = "python3"

# Parameter names that look like credentials. Papermill writes parameters into
# the executed notebook, so a key passed this way would end up in the report.
CREDENTIAL_WORDS = ("key", "email", "token", "password", "secret")


def notebook_parameters(path: Path) -> dict[str, str]:
    """Names declared in the notebook's ``parameters`` cell, with the type each declares.

    The type is the annotation papermill reports (``offline: bool = True`` -> ``"bool"``,
    ``hksj: "Optional[bool]" = None`` -> ``"Optional[bool]"``); an unannotated name takes
    the type of its default value (``str`` when that says nothing).
    """
    import papermill

    return {name: _declared_type(info["inferred_type_name"], info["default"])
            for name, info in papermill.inspect_notebook(str(path)).items()}


def _declared_type(annotation: str | None, default: str | None) -> str:
    if annotation and annotation != "None":
        return annotation.strip().strip("'\"")
    try:
        value = ast.literal_eval(default or "")
    except (ValueError, SyntaxError):
        return "str"
    return {bool: "bool", int: "int", float: "float", list: "list"}.get(type(value), "str")


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
_NONE = ("", "none", "null")
_OPTIONAL = re.compile(r"^(?:Optional\[(?P<inner>.+)\]|(?P<left>.+?)\s*\|\s*None|None\s*\|\s*(?P<right>.+))$")


def _typed(name: str, raw: str, kind: str) -> object:
    """``raw`` as a value of the declared type ``kind``; anything else is a ``ReviewkitError``."""
    optional = _OPTIONAL.match(kind)
    if optional:
        if raw.strip().lower() in _NONE:
            return None
        kind = next(g for g in optional.groups() if g)
    word = raw.strip().lower()
    if kind == "str":
        return raw
    if kind == "bool":
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise ReviewkitError(f"parameter {name!r}: {excerpt(raw)} is not true or false")
    if kind == "int" and re.fullmatch(r"[+-]?\d{1,18}", word):
        return int(word)
    if kind == "float":
        try:
            number = float(word)
        except ValueError:
            number = math.nan
        if math.isfinite(number):
            return number
    if kind in ("list", "list[str]"):
        inner = raw.strip()
        if inner.startswith("[") and inner.endswith("]"):
            inner = inner[1:-1]
        items = [item.strip() for item in inner.split(",")]
        items = [item[1:-1] if len(item) > 1 and item[0] == item[-1] and item[0] in "'\"" else item for item in items]
        return [item for item in items if item]
    if kind in ("int", "float"):
        raise ReviewkitError(f"parameter {name!r}: {excerpt(raw)} is not a number of type {kind}")
    raise ReviewkitError(f"parameter {name!r}: the notebooks declare it as {excerpt(kind)}, which reviewkit run "
                         "cannot set from the command line; set it in the notebook")


def parse_parameters(pairs: list[tuple[str, str]] | None,
                     declared: Mapping[str, Mapping[str, str]]) -> dict[str, object]:
    """``-p NAME VALUE`` pairs as values of the types the notebooks declare (:func:`declared_parameters`).

    VALUE is data, never code or YAML tags: ``true``/``false`` (also yes/no, on/off, 1/0) for a
    ``bool``, a number for ``int``/``float``, ``[aud, oud]`` or ``aud, oud`` for a ``list``, the
    text itself for a ``str``, and ``none`` (or nothing) for an ``Optional`` one. A name no notebook
    declares, a credential-like name, or a value of the wrong type is a ``ReviewkitError``.
    """
    types: dict[str, set[str]] = {}
    for names in declared.values():
        for pname, kind in names.items():
            types.setdefault(pname, set()).add(kind)
    params: dict[str, object] = {}
    for name, raw in pairs or []:
        if not name.isidentifier():
            raise ReviewkitError(f"parameter {excerpt(name)}: not a valid Python name")
        if any(word in name.lower() for word in CREDENTIAL_WORDS):
            raise ReviewkitError(
                f"parameter {name!r} looks like a credential; credentials are never notebook parameters "
                "(papermill writes parameters into the report). Set NCBI_EMAIL / NCBI_API_KEY in the environment."
            )
        if name not in types:
            raise ReviewkitError(f"unknown parameter {name!r}; the notebooks take: {', '.join(sorted(types))}")
        if len(types[name]) > 1:
            raise ReviewkitError(f"parameter {name!r}: the notebooks declare it with different types "
                                 f"({', '.join(sorted(types[name]))}); make them agree")
        if any(ch in raw for ch in "\x00\r\n") or len(raw) > 10_000:
            raise ReviewkitError(f"parameter {name!r}: a value is one line of text (at most 10,000 characters)")
        params[name] = _typed(name, raw, next(iter(types[name])))
    return params


def runs_this_python(executable: str) -> bool:
    """Whether a kernel spec's ``argv[0]`` starts the running interpreter.

    jupyter_client replaces a bare ``python``, ``python3`` or ``python3.X`` by
    ``sys.executable``; anything else must be this interpreter's path.
    """
    bare = {"python", f"python{sys.version_info[0]}", f"python{sys.version_info[0]}.{sys.version_info[1]}"}
    return executable in bare or Path(executable).resolve() == Path(sys.executable).resolve()


def check_kernel() -> None:
    """Refuse to run notebooks in a kernel whose Python may lack reviewkit.

    A ``python3`` kernel spec installed per user (``~/.local/share/jupyter``)
    shadows the environment's own and may start another Python.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
    except NoSuchKernel:
        raise ReviewkitError(f"no Jupyter kernel named {KERNEL_NAME!r}; install one for this Python with "
                             f"`{sys.executable} -m ipykernel install --sys-prefix`") from None
    if not runs_this_python(spec.argv[0]):
        raise ReviewkitError(
            f"the Jupyter kernel {KERNEL_NAME!r} ({spec.resource_dir}) starts {spec.argv[0]}, not this Python "
            f"({sys.executable}), which has reviewkit; remove that kernel spec or set JUPYTER_PATH="
            f"{Path(sys.prefix) / 'share' / 'jupyter'}"
        )


@contextmanager
def kernel_environment(variables: Mapping[str, str]) -> Iterator[None]:
    """Add ``variables`` to the environment the notebook kernels start with, for the block only.

    Kernels inherit this process's environment; values that must not be written into the
    executed notebooks (keys, handed-over state) travel this way, never as parameters.
    """
    before = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def declared_parameters(notebooks: list[Path]) -> dict[str, dict[str, str]]:
    """Notebook name -> the parameters its ``parameters`` cell declares (with their default source)."""
    return {nb.name: notebook_parameters(nb) for nb in notebooks}


def check_parameters(parameters: Mapping[str, object], declared: Mapping[str, Mapping[str, str]]) -> None:
    """A parameter no notebook declares is an error (most likely a typo), raised before anything runs."""
    known = {name for names in declared.values() for name in names}
    unknown = sorted(set(parameters) - known)
    if unknown:
        raise ReviewkitError(f"unknown parameter(s) {', '.join(unknown)}; the notebooks take: {', '.join(sorted(known))}")


@dataclass(frozen=True)
class NotebookRun:
    name: str
    source: Path
    executed: Path
    seconds: float


def execute_notebooks(
    notebooks: list[Path],
    out_dir: Path,
    parameters: dict[str, object],
    *,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> list[NotebookRun]:
    """Execute each notebook with papermill into ``out_dir``; stop at the first failure.

    Each notebook receives only the parameters its ``parameters`` cell declares;
    a parameter no notebook declares is an error (most likely a typo).
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    declared = declared_parameters(notebooks)
    check_parameters(parameters, declared)
    check_kernel()
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    for i, source in enumerate(notebooks, 1):
        target = out_dir / source.name
        log(f"[{i}/{len(notebooks)}] running {source.name}")
        own = {k: v for k, v in parameters.items() if k in declared[source.name]}
        started = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(source),
                str(target),
                parameters=own,
                kernel_name=KERNEL_NAME,
                cwd=str(source.parent),
                progress_bar=progress,
                log_output=False,
                # ipykernel 7 warns on every start that its loopback TCP channel is unencrypted;
                # the kernel is local and private to this run, so keep the terminal for real news.
                extra_arguments=["--IPKernelApp.log_level=ERROR"],
            )
        except PapermillExecutionError as exc:
            raise ReviewkitError(_describe_failure(source.name, target, exc)) from None
        finally:
            _redact_file(target)
        runs.append(NotebookRun(source.name, source, target, time.perf_counter() - started))
    return runs


def _redact_file(path: Path) -> None:
    """An executed notebook, redacted in place: tracebacks and logs in it may quote credentials."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return
    cleaned = redact(text)
    if cleaned != text:
        atomic_write_text(path, cleaned)


def _describe_failure(name: str, executed: Path, exc) -> str:
    """Name the notebook, the cell as numbered in the source notebook, and the cell's first line."""
    number = exc.cell_index + 1
    try:
        cells = nbformat.read(executed, as_version=4).cells
        # papermill inserts an "injected-parameters" cell; the reader's notebook does not have it
        if any("injected-parameters" in c.metadata.get("tags", []) for c in cells):
            number -= 1
    except (OSError, ValueError):
        pass
    first_line = next((line.strip() for line in (exc.source or "").splitlines() if line.strip()), "")
    where = f"cell {number}" + (f" ({first_line[:80]!r})" if first_line else "")
    return f"notebook {name} failed at {where}: {exc.ename}: {exc.evalue}; the executed notebook is kept at {executed}"


# --- HTML ------------------------------------------------------------------

# nbconvert's lab template loads require.js, MathJax and mermaid from a CDN.
# The report uses none of them, so the blocks that load them are emptied.
_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{#- PNG outputs with their alt text (the lab template drops it), so the figures are described to screen readers -#}
{%- block data_png scoped -%}
<div class="jp-RenderedImage jp-OutputArea-output {{ extra_class }}">
<img src="data:image/png;base64,{{ output.data['image/png'] | escape_html }}"
{%- set width = output | get_metadata('width', 'image/png') %}
{%- if width is not none %} width="{{ width | escape_html }}"{% endif %}
{%- set alt = output | get_metadata('alt', 'image/png') %}{% if alt is not none %} alt="{{ alt | escape_html }}"{% endif %}>
</div>
{%- endblock data_png -%}
{%- block extra_css -%}<style type="text/css">
main { max-width: 1100px; margin: 0 auto; }
.rk-part-start { border-top: 3px solid #2a5d8f; margin-top: 2.5em; padding-top: .5em; }
.jp-RenderedHTMLCommon .rk-index table { border-collapse: collapse; }
.jp-RenderedHTMLCommon .rk-index td, .jp-RenderedHTMLCommon .rk-index th {
  border: 1px solid #ccc; padding: 2px 8px; text-align: left; vertical-align: top; }
</style>{%- endblock extra_css -%}
"""


def _exporter():
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    return HTMLExporter(
        extra_loaders=[DictLoader({"reviewkit_report.html.j2": _TEMPLATE})],
        template_file="reviewkit_report.html.j2",
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
        embed_images=True,
    )


def part_anchor(name: str) -> str:
    return "part-" + Path(name).stem


def _html_output(markup: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": markup})]
    return cell


def merge_notebooks(index_markup: str, executed: list[Path], title: str = "Review report") -> nbformat.NotebookNode:
    """One notebook: the index first, then every part behind an anchor the index links to.

    Outputs that load a script library (itables' offline bundle, ~1 MB) are
    identical in every part; the first copy serves the whole page, so later
    identical copies are dropped.
    """
    merged = nbformat.v4.new_notebook()
    merged.metadata["title"] = title
    merged.cells.append(_html_output(index_markup))
    merged.cells[0].id = "report-index"
    seen_scripts: set[str] = set()
    for path in executed:
        nb = nbformat.read(path, as_version=4)
        merged.cells.append(_html_output(f'<div class="rk-part-start" id="{part_anchor(path.name)}"></div>'))
        for number, cell in enumerate(nb.cells):
            cell.id = f"{path.stem[:50]}-{number}"  # ids must stay unique across the merged parts
            if cell.cell_type == "code":
                kept = []
                for out in cell.get("outputs", []):
                    # Progress bars and library warnings go to stderr: useful in
                    # the executed notebook, noise in a report for readers.
                    if out.get("output_type") == "stream" and out.get("name") == "stderr":
                        continue
                    markup = out.get("data", {}).get("text/html", "")
                    if "<script" in markup:
                        digest = hashlib.sha256(markup.encode()).hexdigest()
                        if digest in seen_scripts:
                            continue
                        seen_scripts.add(digest)
                    kept.append(out)
                cell.outputs = kept
            merged.cells.append(cell)
    merged.metadata["language_info"] = {"name": "python"}
    return merged


def render_html(nb: nbformat.NotebookNode) -> str:
    body, _ = _exporter().from_notebook_node(nb)
    return body


def index_html(info: dict, executed: list[Path], titles: dict[str, str]) -> str:
    """The report's first screen: contents linking to each part, then the run's details."""
    esc = html.escape
    rows = "".join(
        f'<li><a href="#{part_anchor(p.name)}">{esc(titles.get(p.name, p.stem))}</a></li>' for p in executed
    )

    def table(mapping: dict) -> str:
        cells = "".join(f"<tr><th>{esc(str(k))}</th><td>{esc(_show(v))}</td></tr>" for k, v in mapping.items())
        return f"<table>{cells}</table>"

    parts = [
        '<div class="rk-index">',
        f"<h1>{esc(info.get('title', 'Review report'))}</h1>",
    ]
    if info.get("sample_note"):
        parts.append(sample_banner_html(info["sample_note"]))
    for problem in info.get("problems", []):
        parts.append('<div style="border:2px solid #a00;background:#fdecea;color:#600;padding:8px 12px;'
                     f'margin:8px 0;font-weight:bold">Check the searches: {esc(problem)}</div>')
    parts += [
        f"<p>Run {esc(info['run_id'])}, started {esc(info.get('started', ''))}, {esc(info['mode'])} mode, "
        f"snapshot <code>{esc(info['snapshot'])}</code>.</p>",
        f"<h2>Contents</h2><ul>{rows}</ul>",
        "<h2>What changed since the previous run</h2>",
        info.get("changes_html", "<p>No earlier run in this output folder.</p>"),
        "<h2>Run parameters</h2>",
        table(info["parameters"]),
        "<h2>Snapshot</h2>",
        table(info["snapshot_info"]),
        "<h2>Versions</h2>",
        table(info["versions"]),
        "</div>",
    ]
    return "\n".join(parts)


def _show(value) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return "" if value is None else str(value)


def sample_banner_html(note: str) -> str:
    """The banner every output built from the bundled sample carries."""
    return (
        '<div style="border:2px solid #b35900;background:#fff3e0;color:#5a2d00;padding:10px 14px;'
        'margin:10px 0;border-radius:4px;font-weight:bold">'
        "SAMPLE DATA, NOT A COMPLETE PUBMED SEARCH. "
        f'<span style="font-weight:normal">{html.escape(note)}</span></div>'
    )


def notebook_title(path: Path) -> str:
    """The first Markdown heading of a notebook, else its file name."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return path.stem


def write_report(path: Path, info: dict, executed: list[Path]) -> Path:
    titles = {p.name: notebook_title(p) for p in executed}
    page = render_html(merge_notebooks(index_html(info, executed, titles), executed, info.get("title", "Review report")))
    return atomic_write_text(path, redact(page))


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": sys.version.split()[0]}
    for dist in ("reviewkit", "biopython", "pandas", "numpy", "scipy", "statsmodels", "matplotlib",
                 "papermill", "nbconvert", "itables", "rispy"):
        try:
            found[dist] = version(dist)
        except PackageNotFoundError:
            found[dist] = "not installed"
    return found
