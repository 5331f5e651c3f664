"""Run the review notebooks with papermill and turn them into one self-contained HTML report.

The project's notebooks named ``NN_<part>.ipynb`` (``Project.notebooks``) run in
order. The first failure stops the run and names the notebook and cell. The executed
notebooks are then merged into a single ``index.html``: code hidden, images
embedded, every script and style inlined, so the file can be e-mailed and
opened anywhere without fetching anything from the internet.

The page reads on screen and on paper: wide tables scroll inside their section,
figures show at their natural size (never wider than the column), and a print
stylesheet (A4) shows every row of every table, every figure and no controls.
:func:`write_pdf` prints it to ``report.pdf`` with headless Chromium.
Everything the index shows from data goes through ``reviewkit.markup`` (Jinja2
with autoescape); no path of the machine that ran the report is shown.
"""

from __future__ import annotations

import ast
import hashlib
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ReviewkitError
from .io import atomic_write_bytes, atomic_write_text
from .markup import Markup, reader_text, render
from .redact import excerpt, redact

if TYPE_CHECKING:  # nbformat (with jsonschema's format checkers) takes 1.5 s to import: every report notebook
    import nbformat  # imports this module, and only the functions that read or write notebooks need it

KERNEL_NAME = "python3"
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"  # tqdm's progress bars in a notebook

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
    import nbformat

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
  border: 1px solid #ccc; padding: 2px 8px; text-align: left !important; vertical-align: top; }
.rk-problem { border: 2px solid #a00; background: #fdecea; color: #600; padding: 8px 12px; margin: 8px 0;
  font-weight: bold; }
/* a wide output scrolls inside its own section; a figure shows at its natural size, never wider than the column */
.jp-OutputArea-output { overflow-x: auto; }
.jp-RenderedImage img { max-width: 100%; height: auto; }
@page { size: A4; margin: 12mm; }
@page wide { size: A4 landscape; margin: 12mm; }
@media print {
  /* a table too wide for a portrait page is printed across a landscape one: reviewkit.notebook.show_table
     marks it; any other table of thirteen or more columns too */
  .rk-wide, .jp-OutputArea-output:has(table th:nth-child(13)) { page: wide; }
  /* the page's whole width for content: a 7 in figure prints at its natural size on A4 */
  main, body.jp-Notebook, .jp-Cell, .jp-Cell-outputWrapper, .jp-OutputArea-child, .jp-OutputArea-output {
    max-width: none; padding-left: 0 !important; padding-right: 0 !important; margin-left: 0 !important;
    margin-right: 0 !important; }
  .jp-RenderedHTMLCommon { font-size: 9pt; }
  /* every row of every table, whole cells, no interactive controls */
  .jp-OutputArea-output, .rk-table, .rk-table .dt-layout-table, .dt-scroll-body {
    overflow: visible !important; max-height: none !important; height: auto !important; }
  .dt-search, .dt-info, .dt-length, .dt-paging, .dt-buttons, .dt-column-order { display: none !important; }
  .dt-column-header { display: block !important; }
  /* headings of tables not made by show_table may be long code names: let them break anywhere */
  .jp-OutputArea-output:not(:has(.rk-table)) table.dataTable thead th { overflow-wrap: anywhere !important; }
  /* a wide table fits the page: DataTables' screen widths are dropped, so the table is as wide as its
     content up to the page's width, and text wraps */
  table.dataTable { width: auto !important; table-layout: auto !important; }
  table.dataTable col { width: auto !important; }
  /* DataTables lays its parts out as flex rows, which Chromium keeps on one page: plain blocks break across pages */
  .dt-container .dt-layout-row, .dt-container .dt-layout-cell { display: block !important; }
  .jp-RenderedHTMLCommon td, .jp-RenderedHTMLCommon th, table.dataTable td, table.dataTable th {
    width: auto !important; min-width: 0 !important; max-width: none !important;
    white-space: normal !important; overflow-wrap: break-word !important; font-size: 8pt; padding: 2px 4px !important; }
  thead { display: table-header-group; }
  tr, img, .jp-RenderedImage { break-inside: avoid; }
  .rk-part-start { break-before: page; border-top: none; }
  a { color: inherit; text-decoration: none; }
}
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
    import nbformat

    cell = nbformat.v4.new_code_cell("")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": markup})]
    return cell


def merge_notebooks(index_markup: str, executed: list[Path], title: str = "Review report") -> nbformat.NotebookNode:
    """One notebook: the index first, then every part behind an anchor the index links to.

    Outputs that load a script library (itables' offline bundle, ~1 MB) are
    identical in every part; the first copy serves the whole page, so later
    identical copies are dropped.
    """
    import nbformat

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
                    # Progress bars and library warnings go to stderr or to widgets: useful in
                    # the executed notebook, noise (or a dead widget) in a report for readers.
                    if out.get("output_type") == "stream" and out.get("name") == "stderr":
                        continue
                    if WIDGET_MIME in out.get("data", {}):
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


_INDEX = """
{%- macro pairs(mapping) -%}
<table>{% for name, value in mapping.items() %}<tr><th><code>{{ name }}</code></th><td>{{ value }}</td></tr>{% endfor %}</table>
{%- endmacro -%}
<div class="rk-index">
<h1>{{ title }}</h1>
{{ banner }}
{% for problem in problems %}<div class="rk-problem">Check the searches: {{ problem }}</div>
{% endfor %}
<p>Run {{ run_id }}, started {{ started }}, {{ mode }} mode, snapshot <code>{{ snapshot }}</code>.</p>
<h2>Contents</h2><ul>{% for part in parts %}<li><a href="#{{ part.anchor }}">{{ part.title }}</a></li>{% endfor %}</ul>
<h2>What changed since the previous run</h2>
{{ changes }}
<h2>Run parameters</h2>
{{ pairs(parameters) }}
<h2>Snapshot</h2>
{{ pairs(snapshot_info) }}
<h2>Versions</h2>
{{ pairs(versions) }}
</div>
"""

_BANNER = """<div style="border:2px solid #b35900;background:#fff3e0;color:#5a2d00;padding:10px 14px;margin:10px 0;\
border-radius:4px;font-weight:bold">SAMPLE DATA, NOT A COMPLETE PUBMED SEARCH. \
<span style="font-weight:normal">{{ note }}</span></div>"""


def index_html(info: dict, executed: list[Path], titles: dict[str, str], report_dir: Path | None = None) -> Markup:
    """The report's first screen: contents linking to each part, then the run's details.

    Values are reader text (``reviewkit.markup.reader_text``); a path of this machine is shown
    relative to ``report_dir`` (the folder of index.html) or by its last part only.
    """
    def shown(mapping: dict) -> dict[str, str]:
        return {str(k): shown_path(reader_text(v), report_dir) for k, v in mapping.items()}

    default_changes = render("<p>No earlier run in this output folder.</p>")
    return render(
        _INDEX, title=info.get("title", "Review report"),
        banner=sample_banner_html(info["sample_note"]) if info.get("sample_note") else "",
        problems=info.get("problems", []), run_id=info["run_id"], started=info.get("started", ""), mode=info["mode"],
        snapshot=shown_path(str(info["snapshot"]), report_dir),
        parts=[{"anchor": part_anchor(p.name), "title": titles.get(p.name, p.stem)} for p in executed],
        changes=info.get("changes_html", default_changes), parameters=shown(info["parameters"]),
        snapshot_info=shown(info["snapshot_info"]), versions=shown(info["versions"]),
    )


def shown_path(text: str, report_dir: Path | None = None) -> str:
    """An absolute path as the report may show it: relative to ``report_dir`` when inside it
    (``.``, ``exports``), otherwise only its last part after an ellipsis (``…/snapshots/mine``).
    Any other text is returned as it is. The report is e-mailed: it must not carry this machine's
    folder names."""
    if not text or not os.path.isabs(text):
        return text
    path = Path(text)
    if report_dir is not None:
        try:
            return path.resolve().relative_to(report_dir.resolve()).as_posix() or "."
        except ValueError:
            pass
    return "\u2026/" + "/".join(path.parts[-2:])


def sample_banner_html(note: str) -> Markup:
    """The banner every output built from the bundled sample carries."""
    return render(_BANNER, note=note)


def notebook_title(path: Path) -> str:
    """The first Markdown heading of a notebook, else its file name."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return path.stem


def write_report(path: Path, info: dict, executed: list[Path]) -> Path:
    titles = {p.name: notebook_title(p) for p in executed}
    index = index_html(info, executed, titles, report_dir=path.parent)
    page = render_html(merge_notebooks(index, executed, info.get("title", "Review report")))
    return atomic_write_text(path, redact(page))


# --- PDF -----------------------------------------------------------------------

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_ENV = "REVIEWKIT_CHROMIUM"


def find_chromium() -> str | None:
    """The Chromium (or Chrome) to print with: ``$REVIEWKIT_CHROMIUM``, else the first on PATH; None if none."""
    named = os.environ.get(CHROMIUM_ENV)
    if named:
        return shutil.which(named)
    return next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)


def require_chromium() -> str:
    """The Chromium :func:`write_pdf` uses, or a ``ReviewkitError`` saying plainly how to get one."""
    found = find_chromium()
    if found is None:
        where = os.environ.get(CHROMIUM_ENV)
        raise ReviewkitError(
            (f"{CHROMIUM_ENV}={where} is not an executable" if where else "Chromium is not installed")
            + ": a PDF of the report needs headless Chromium (Debian/Ubuntu: `apt install chromium`; or set "
            f"{CHROMIUM_ENV} to a Chromium or Chrome executable). The HTML report needs nothing.")
    return found


def write_pdf(html_path: Path, pdf_path: Path | None = None, *, chromium: str | None = None,
              timeout: float = 300) -> Path:
    """Print the HTML report to PDF (A4, the report's print stylesheet) with headless Chromium.

    Written next to the report as ``report.pdf`` unless ``pdf_path`` is given, atomically: a failed or
    interrupted print leaves no partial file. Chromium runs offline with a throw-away profile and
    the report's scripts (interactive tables) run before printing.
    """
    html_path = Path(html_path).resolve()
    pdf_path = Path(pdf_path) if pdf_path else html_path.with_name("report.pdf")
    browser = chromium or require_chromium()
    with tempfile.TemporaryDirectory(prefix="reviewkit-pdf-") as scratch:
        out = Path(scratch) / "report.pdf"
        command = [browser, "--headless", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync", "--disable-extensions",
                   f"--user-data-dir={Path(scratch) / 'profile'}", "--virtual-time-budget=15000",
                   "--no-pdf-header-footer", f"--print-to-pdf={out}", html_path.as_uri()]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.insert(1, "--no-sandbox")  # Chromium refuses to start as root inside its sandbox
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise ReviewkitError(f"Chromium did not finish printing {html_path.name} within {timeout:.0f} s") from None
        except OSError as exc:
            raise ReviewkitError(f"cannot start Chromium ({browser}): {exc.strerror or exc}") from None
        if done.returncode != 0 or not out.is_file() or out.stat().st_size == 0:
            last = next((line for line in reversed(done.stderr.splitlines()) if line.strip()), "no message")
            raise ReviewkitError(f"Chromium could not print {html_path.name} to PDF (exit {done.returncode}): {last[:200]}")
        return atomic_write_bytes(pdf_path, out.read_bytes())


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
