"""What every review notebook does first, and the display helpers the notebooks share.

``start(...)`` turns a notebook's papermill parameters into a
``reviewkit.review.Review`` (the same orchestration the command line uses), so
the notebook runs from its project's ``notebooks/`` in JupyterLab and under
``reviewkit run`` alike. It switches itables to offline mode (its JavaScript is
inlined into the output, so the HTML report fetches nothing from the internet)
and shows the banner every output built from a sample carries.

Showing things to readers (use these in every notebook, not ``.style`` or ``itables.show``):

* :func:`show_table` — any DataFrame as a table for readers: words not reprs (an em dash or
  the words you give for a missing value, yes/no, comma-separated lists, ``exists with
  errors``), every row (searchable and sortable on screen, all printed), wide tables scrolling
  inside their section, long text wrapped, every cell escaped by ``reviewkit.markup``.
* :func:`show_note` — a sentence built from data (escaped; never ``Markdown(f"...")``).
* :func:`show_image` — a figure file at its natural size (1 pt in the figure is 1 pt on screen
  and on paper), with alt text.
* :func:`where` — a path as the report may show it (relative to the report folder or the
  project; never this machine's absolute path), for ``print`` and notes.

The other helpers only shape what a stage computed into DataFrames for :func:`show_table`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path

import pandas as pd

from .markup import MISSING, escape, reader_frame, render
from .project import Project
from .report import sample_banner_html, shown_path
from .review import Review

#: A table with more rows than this gets a search box and a row count; all rows are shown either way.
CONTROLS_FROM_ROWS = 10

# Every itables table in a notebook or the report: long text wraps (no ``nowrap``), a long or wide
# table scrolls inside its own box (the search box stays above it; a block, not DataTables' centring
# flex row, which would push the table's top out of reach), the header stays in view; on paper every
# row is printed, nothing scrolls and no control is shown.
TABLE_CSS = """
.dt-container .dt-layout-table { display: block !important; max-height: min(80vh, 48em); overflow: auto; }
.dt-container table.dataTable thead th { position: sticky; top: 0; background: #fff; z-index: 1; }
.dt-container table.dataTable td, .dt-container table.dataTable th {
  white-space: normal; text-align: left; vertical-align: top; max-width: 36em; overflow-wrap: break-word; }
@media print {
  .dt-container .dt-layout-table { max-height: none; overflow: visible; }
  .dt-container .dt-search, .dt-container .dt-info, .dt-container .dt-length, .dt-container .dt-paging {
    display: none; }
  .dt-container table.dataTable thead th { position: static; }
  .dt-container table.dataTable td, .dt-container table.dataTable th { max-width: none; overflow-wrap: break-word; }
}
"""


def start(*, project: str = "", protocol: str = "", offline: bool = True, snapshot: str = "",
          searches: list[str] | None = None, screening: str = "", output_dir: str = "") -> Review:
    """The notebook's ``Review``, tables set up for readers, the sample banner shown; every notebook's first call.

    ``project`` "" finds the project from the working folder upwards; ``snapshot`` and ``screening`` ""
    are the project's defaults; ``output_dir`` "" is the project's ``reports/interactive``.
    """
    import itables
    from IPython.display import HTML, display

    review = Review(Project.find(project or None, protocol=protocol or None), live=not offline,
                    snapshot=snapshot or None, screening=screening or None, searches=searches or None,
                    output_dir=output_dir or None, progress=not offline)
    itables.init_notebook_mode(all_interactive=False, connected=False)
    # Plain tables show whole sentences (reasons, notes), not pandas' 50-character cut.
    pd.set_option("display.max_colwidth", None)
    # Titles and reasons are text: left-aligned and wrapped read better than right-aligned and cut.
    # No paging and no downsampling: a printed report must hold every row (a page of 10 drops the rest).
    itables.options.classes = "display compact"
    itables.options.columnDefs = [{"className": "dt-left", "targets": "_all"}]
    itables.options.paging = False
    itables.options.maxBytes = 0
    itables.options.css = TABLE_CSS
    if review.is_sample:
        display(HTML(sample_banner_html(review.sample_note)))
    return review


def show_table(frame: pd.DataFrame, caption: str | None = None, *, index: bool = False,
               labels: Mapping[str, str] | None = None, keep: Collection[str] = (),
               missing: str | Mapping[str, str] = MISSING, empty: str | None = None) -> None:
    """Show ``frame`` as a table for readers, in JupyterLab and in the report.

    Values read as words (``reviewkit.markup.reader_text``): a missing value as an em dash, or as
    ``missing`` says ("not reported", or per column ``{"Cohen's kappa": "not computed"}``);
    booleans as yes/no; lists comma-separated; code labels (``not_found``) and snake_case column
    names as words, unless ``labels`` names a column or ``keep`` lists it (ids and keys shown as
    written). Every row is shown: on screen the table scrolls inside its section and, above
    :data:`CONTROLS_FROM_ROWS` rows, can be searched and sorted; printed, every row is on paper.
    Every cell, heading and the caption are escaped here (``reviewkit.markup.escape``), so text
    from any file can never become markup.

    Parameters
    ----------
    frame : DataFrame
        What to show; it is not changed.
    caption : str, optional
        Shown under the table.
    index : bool
        Show the index as the first column (e.g. a table of named rows); off by default.
    labels : mapping, optional
        Column → heading, e.g. ``{"n_t": "n (ketamine)"}``.
    keep : collection of str
        Columns shown exactly as written (record ids, search keys, row ids).
    missing : str or mapping
        What a missing value reads as: one text, or per column.
    empty : str, optional
        The sentence shown instead of a table without rows (default: "<caption>: none.").
    """
    import itables
    from IPython.display import HTML, display

    if frame.empty:
        show_note(empty or f"{caption or 'This table'}: none.")
        return

    shown = reader_frame(frame, labels=labels, keep=keep, missing=missing, index=index)
    safe = shown.map(escape)
    safe.columns = [escape(c) for c in shown.columns]
    if index:
        safe.index = pd.Index([escape(i) for i in shown.index], name=escape(shown.index.name or ""))
    styler = safe.style if index else safe.style.hide(axis="index")
    controls = len(frame) > CONTROLS_FROM_ROWS
    layout = {"topStart": None, "topEnd": "search" if controls else None,
              "bottomStart": "info" if controls else None, "bottomEnd": None}
    table = itables.to_html_datatable(
        styler, caption=escape(caption) if caption else None, allow_html=True, showIndex=index, paging=False,
        ordering=controls, layout=layout, classes="display compact", css=TABLE_CSS, connected=False,
        columnDefs=[{"className": "dt-left", "targets": "_all"}])
    # The print stylesheet puts a table too wide for a portrait page on a landscape one.
    wide = " rk-wide" if print_width(shown) > PORTRAIT_WIDTH else ""
    display(HTML(f'<div class="rk-table{wide}">{table}</div>'))


#: Inches of text a printed A4 portrait page holds (210 mm less 12 mm margins), and what one
#: character and one cell's padding take at the 8 pt of printed tables.
PORTRAIT_WIDTH, CHAR_WIDTH, CELL_PADDING = 7.3, 0.058, 0.11


def print_width(shown: pd.DataFrame) -> float:
    """About how wide (inches) a printed table of reader text must be: per column its longest word
    (headings wrap too), or its longest cell up to 24 characters (longer text wraps)."""
    def longest_word(texts) -> int:
        return max((len(w) for t in texts for w in str(t).split()), default=0)

    columns = [(shown.index.name or "", shown.index)] if shown.index.name or not isinstance(shown.index, pd.RangeIndex) \
        else []
    columns += [(name, shown[name]) for name in shown.columns]
    chars = sum(max(longest_word([name]), min(24, max((len(str(v)) for v in values), default=0)),
                    longest_word(values)) for name, values in columns)
    return chars * CHAR_WIDTH + len(columns) * CELL_PADDING


def show_note(text: str, *, emphasis: bool = False) -> None:
    """Show a sentence made from data (a count, a name from the protocol), escaped; never as Markdown."""
    from IPython.display import HTML, display

    display(HTML(render("<p>{% if strong %}<strong>{{ text }}</strong>{% else %}{{ text }}{% endif %}</p>",
                        text=text, strong=emphasis)))


def where(review: Review, path: str | Path) -> str:
    """``path`` as a report may show it: relative to the run's output folder (``exports``), else to
    the project (``data/screening/sample``), else only its last parts (``…/snapshots/mine``)."""
    resolved = Path(path).expanduser().resolve()
    for base in (review.output_dir, review.project.root):
        try:
            return resolved.relative_to(Path(base).resolve()).as_posix() or "."
        except ValueError:
            continue
    return shown_path(str(resolved))


def search_table(results) -> pd.DataFrame:
    """One row per search: what PRISMA-S asks a report to state (no date limits: missing)."""
    def limits(m: Mapping) -> str | None:
        if not (m.get("mindate") or m.get("maxdate")):
            return None
        kind = {"pdat": "publication date", "edat": "Entrez date", "mdat": "modification date"}.get(
            str(m.get("datetype")), m.get("datetype") or "date")
        return f"{kind}: {m.get('mindate') or 'any'} to {m.get('maxdate') or 'any'}"

    return pd.DataFrame([
        {
            "search": r.key,
            "label": r.manifest.get("label"),
            "date run": _day(r.manifest.get("date_run")),
            "PubMed count": r.count,
            "records retrieved": r.retrieved,
            "date limits": limits(r.manifest),
            "query": r.query,
        }
        for r in results
    ])


def _day(stamp: object) -> object:
    """An ISO timestamp at midnight UTC (a search's date run) as its day, ``2026-11-26``; anything else as it is."""
    text = str(stamp or "")
    return text[:10] if len(text) > 10 and text[10:].strip("TZ:0+") == "" else stamp


def screening_overview(state) -> pd.DataFrame:
    """Per stage: candidates, decided, included, excluded, awaiting, new this run, and agreement."""
    from .screening import STAGE_LABELS

    rows = []
    for stage, update in state.updates.items():
        sheet = update.sheet[update.sheet["status"] == ""]
        agree = state.agreement[stage]
        rows.append({
            "stage": STAGE_LABELS[stage],
            "records": len(sheet),
            "included": int((sheet["final"] == "include").sum()),
            "excluded": int((sheet["final"] == "exclude").sum()),
            "awaiting a decision": int((sheet["final"] == "").sum()),
            "new since the sheet was saved": len(update.new_ids),
            "kept, no longer retrieved": len(update.kept_ids),
            "dual-screened": agree.n_both,
            "Cohen's kappa": None if agree.kappa is None else round(agree.kappa, 2),
        })
    return pd.DataFrame(rows)


def show_image(path: str | Path, alt: str, width: int | None = None) -> None:
    """Display a figure file the library wrote, so the report shows exactly the exported figure.

    ``alt`` describes the figure for screen readers (and names it in the HTML). ``width`` None shows
    a PNG at its natural size, the resolution it records (matplotlib writes it): 1 pt of text in the
    figure is 1 pt on screen and on paper, and the report never widens it beyond its column. A figure
    meant for A4 paper is at most 7.2 in wide with text of at least 8 pt (``reviewkit.flow_diagram``).
    """
    from IPython.display import Image, display

    display(Image(filename=str(path), width=width or natural_width(path), alt=alt))


def natural_width(path: str | Path) -> int | None:
    """A PNG's width in CSS pixels (96 per inch) at the resolution its ``pHYs`` chunk records; None if
    it records none (the browser then shows it pixel for pixel)."""
    data = Path(path).read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    pixels, at = int.from_bytes(data[16:20], "big"), 8
    while at + 8 <= len(data):
        length, kind = int.from_bytes(data[at:at + 4], "big"), data[at + 4:at + 8]
        if kind == b"pHYs" and length >= 9 and data[at + 16] == 1:  # unit 1: pixels per metre
            per_metre = int.from_bytes(data[at + 8:at + 12], "big")
            return round(pixels / (per_metre * 0.0254) * 96) if per_metre else None
        if kind == b"IDAT":  # pHYs comes before the image data
            return None
        at += 12 + length
    return None


def prisma_table(report) -> pd.DataFrame:
    """PRISMA 2020 boxes as rows, one column for the whole review and one per search."""
    columns = {"all searches": report.overall, **report.by_disorder}
    rows = {name: counts.boxes() for name, counts in columns.items()}
    return pd.DataFrame(rows)


def exclusion_reasons(counts) -> pd.DataFrame:
    """Full-text exclusions by reason, databases and other methods side by side."""
    db, om = counts.databases.reports.excluded, counts.other_methods.reports.excluded
    reasons = list(dict.fromkeys([*db, *om]))
    return pd.DataFrame({"reason": reasons,
                         "databases": [db.get(r, 0) for r in reasons],
                         "other methods": [om.get(r, 0) for r in reasons]})


def pooled_table(analysis, labels: dict[str, str], name: str = "") -> pd.DataFrame:
    """The per-disorder and overall models for readers: ratios back-transformed, rounded, labelled
    with the protocol's names for its searches.

    ``analysis`` None (no included study in the analysis ``name``) gives one row saying so;
    ``labels``: the protocol's names of its searches (``Protocol.labels``).
    """
    import numpy as np

    from .effects import RATIO_MEASURES

    if analysis is None:
        return pd.DataFrame({"studies (k)": [0], "note": [_nothing_pooled(name)]}, index=["overall"])
    table = analysis.table()
    show = np.exp if analysis.measure in RATIO_MEASURES else (lambda x: x)
    def fmt(values, digits: int) -> list[str]:
        return ["–" if pd.isna(v) else f"{v:.{digits}f}" for v in values]

    out = pd.DataFrame(index=[labels.get(i, i) for i in table.index])
    out["studies (k)"] = table["k"].astype(int).to_numpy()
    for col, name in (("estimate", analysis.measure), ("ci_low", "95% CI low"), ("ci_high", "95% CI high"),
                      ("pi_low", "95% PI low"), ("pi_high", "95% PI high")):
        out[name] = fmt(show(table[col].astype(float)), 2)
    out["p"] = fmt(table["p"].astype(float), 3)
    out["I² (%)"] = fmt(table["i2"].astype(float), 0)
    out["I² 95% CI"] = _interval(table["i2_ci_low"], table["i2_ci_high"], 0)
    out["τ²"] = fmt(table["tau2"].astype(float), 3)
    out["τ² 95% CI"] = _interval(table["tau2_ci_low"], table["tau2_ci_high"], 3)
    return out


def _interval(low, high, digits: int) -> list[str]:
    """"0.120 to 1.111" per row; "–" where the model has none (k = 1, or a disorder without studies)."""
    return ["–" if pd.isna(lo) else f"{lo:.{digits}f} to {hi:.{digits}f}" for lo, hi in zip(low, high)]


def _nothing_pooled(name: str) -> str:
    return (f"Nothing pooled: no study included at full text in this run's screening has rows in the "
            f"{name or 'chosen'} analysis of the extraction table.")


def extraction_table(extraction: pd.DataFrame, included: pd.DataFrame) -> pd.DataFrame:
    """The extraction table with ``included`` (is the row's study included at full text in this
    run? rows of other studies are not pooled) and ``included study`` (the screening's study id)."""
    study_of = {row_id: study for rows, study in zip(included["extraction_rows"], included["study_id"])
                for row_id in rows}
    studies = [study_of.get(r, "") for r in extraction["row_id"]]
    return extraction.assign(included=[bool(s) for s in studies], **{"included study": studies})


def export_meta_analysis(review: Review, analysis, name: str) -> list[Path]:
    """Write the extraction table (with ``included study``) and, when something was pooled, the
    effect sizes with their weights, to the run's exports (CSV and XLSX)."""
    from .exports import write_table

    written = write_table(extraction_table(review.extraction, review.included), review.exports, "extraction")
    if analysis is not None:
        written += write_table(analysis.studies, review.exports, f"effects_{name}")
    return written


def forest_plot(review: Review, analysis, name: str) -> None:
    """Draw, export (PNG, SVG) and show the forest plot of ``analysis``; say so when nothing was pooled."""
    import matplotlib.pyplot as plt

    from .forest import forest

    if analysis is None:
        show_note(_nothing_pooled(name))
        return
    note = "Sample data: a curated sample of real studies, not a complete PubMed search." if review.is_sample else None
    stem = review.exports / f"forest_{name}"
    plt.close(forest(analysis, stem, title=f"{review.protocol.intervention_label} vs control: {name}", note=note,
                     group_labels=review.protocol.labels, intervention=review.protocol.intervention_label))
    show_image(stem.with_suffix(".png"), alt=f"Forest plot: {name}")


def claims_table(audit) -> pd.DataFrame:
    """The claims audit for readers: a mechanism claim (no disorder) and an uncited claim say so."""
    table = audit.table[["id", "disorder", "quote", "cites", "citation_verdict", "verdict", "reason"]]
    return table.assign(disorder=table["disorder"].fillna("(mechanism)"), cites=table["cites"].fillna("(none)"))


def citation_table(checks) -> pd.DataFrame:
    """One row per checked reference: verdict, the record meant or the nearest ones, fields that differ."""
    return pd.DataFrame([
        {
            "reference": c.reference.text,
            "verdict": c.verdict.replace("_", " "),
            "record": c.match.label() if c.match else "",
            "fields that differ": ", ".join(c.field_errors),
            "nearest records": "; ".join(m.label() for m in c.candidates),
            "a live check could change this": c.live_could_change,
        }
        for c in checks
    ])


def included_records(state) -> pd.DataFrame:
    """Records (after deduplication) whose full-text decision is include: the reports of included studies."""
    sheet = state.sheet("full_text")
    current = sheet[(sheet["status"] == "") & (sheet["final"] == "include")]
    records = state.dedupe.records
    return records[records["record_id"].isin(set(current["record_id"]))].reset_index(drop=True)


def key_numbers(counts, analysis, audits: pd.DataFrame | None) -> pd.DataFrame:
    """The report in a few lines: search yield, screening, included studies, pooled effect, claims
    (``audits`` None: the project audits no article)."""
    import math

    from .effects import RATIO_MEASURES

    db, om = counts.databases, counts.other_methods
    if analysis is None:
        pooled = ("Pooled effect, all searches", "none: no included study is in the analysis")
    else:
        overall = analysis.overall
        show = math.exp if analysis.measure in RATIO_MEASURES else (lambda v: v)
        pooled = (f"Pooled {analysis.measure}, all searches (k = {overall.k})",
                  f"{show(overall.estimate):.2f} (95% CI {show(overall.ci_low):.2f} to {show(overall.ci_high):.2f})")
    rows = [
        ("Records from the PubMed searches", f"{sum(db.identified.values())}"),
        ("Records from other methods", f"{sum(om.identified.values())}"),
        ("Records screened (title/abstract)", f"{db.records_screened}, {db.records_awaiting} awaiting"),
        ("Reports assessed in full text", f"{db.reports.assessed + om.reports.assessed}"),
        ("Studies included (reports)", f"{counts.studies_included} ({counts.reports_included})"),
        pooled,
    ]
    if audits is not None:
        verdicts = audits["verdict"].value_counts()
        rows.append(("Article claims audited", f"{len(audits)}: " + ", ".join(f"{n} {v}" for v, n in verdicts.items())))
    return pd.DataFrame(rows, columns=["", "value"]).set_index("")


def files_table(folder: str | Path) -> pd.DataFrame:
    """Every file under ``folder`` with its size, for the report's list of exports."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    return pd.DataFrame({"file": [str(p.relative_to(folder)) for p in files],
                         "kB": [round(p.stat().st_size / 1024, 1) for p in files]}).set_index("file")
