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
* :func:`show_records` — a table that grows with the searches (records, screening sheets,
  merges, records awaiting screening): :func:`show_table` up to ``table_rows`` rows (the
  notebooks' parameter, :data:`ROWS_SHOWN` by default), and above it the first rows with a
  sentence naming the file in the run's exports that holds the whole table (given its
  ``export`` name, it writes that file itself first). Study-level tables (extraction,
  syntheses, claims, summary of findings) always use :func:`show_table`.
* :func:`show_note` — a sentence built from data (escaped; never ``Markdown(f"...")``).
* :func:`show_image` — a figure file at its natural size (1 pt in the figure is 1 pt on screen
  and on paper), with alt text.
* :func:`where` — a path as the report may show it (relative to the report folder or the
  project; never this machine's absolute path), for ``print`` and notes.

The other helpers only shape what a stage computed into DataFrames for :func:`show_table`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import pandas as pd

from .extraction import DESIGN_LABELS
from .markup import MISSING, escape, reader_frame, render
from .project import Project
from .report import sample_banner_html, shown_path
from .review import Review

#: A table with more rows than this gets a search box and a row count; all rows are shown either way.
CONTROLS_FROM_ROWS = 10

#: Rows a record-level table shows at most (:func:`show_records`) unless a notebook's ``table_rows``
#: parameter says otherwise: a few pages of a printed report and quick to search on screen, while a
#: search of 100,000 records would make a report of 150 MB that takes minutes to write and to open.
ROWS_SHOWN = 1000

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


def show_records(review: Review, frame: pd.DataFrame, caption: str, *, export: str | None = None,
                 whole: str | Path | None = None, columns: Sequence[str] | None = None,
                 rows: int | None = ROWS_SHOWN, order: str = "in the table's order",
                 labels: Mapping[str, str] | None = None, keep: Collection[str] = (),
                 missing: str | Mapping[str, str] = MISSING, empty: str | None = None) -> None:
    """Show a record-level table: every row up to ``rows``, else its first ``rows`` rows and a sentence
    saying so and where the whole table is ("Showing the first 1,000 of 95,000 rows (in the table's
    order); the whole table is in exports/records.csv.").

    With ``export``, the whole table is first written to the run's exports (``review.exports``) as
    ``<export>.csv`` and ``<export>.xlsx`` (:func:`reviewkit.exports.write_table`: every row and
    every column of ``frame``, also those ``columns`` leaves out), so the file the sentence names
    always holds this run's table. A table without rows is not written (an earlier run's file of that
    name is removed from a reused exports folder): it is shown as ``empty``.

    Parameters
    ----------
    review : Review
        The notebook's review: the export goes to its ``exports``; paths are named as the report
        shows them (:func:`where`).
    frame : DataFrame
        The table in the order its first rows should be shown; it is not changed.
    caption : str
        Shown under the table.
    export : str, optional
        The table's name in the run's exports ("records", "awaiting_screening").
    whole : str or Path, optional
        Instead of ``export``: a file written before this call that holds every row (a screening
        sheet or deduplication log, written by ``Review.save_screening``).
    columns : sequence of str, optional
        The columns shown, in this order; default: all of ``frame``'s.
    rows : int, optional
        Rows shown at most; None or 0 (or less): every row.
    order : str
        Which rows come first, in words for the sentence ("most likely to be included first").
    labels, keep, missing, empty
        As :func:`show_table`.

    Raises
    ------
    ValueError
        Neither or both of ``export`` and ``whole`` are given.
    ReviewkitError
        The table is longer than ``rows`` and ``whole`` is not a file.
    """
    from .errors import ReviewkitError
    from .exports import remove_table, write_table

    if (export is None) == (whole is None):
        raise ValueError(f"{caption}: show_records takes either export= or whole=")
    if export is not None and len(frame):
        whole = write_table(frame, review.exports, export)[0]
    elif export is not None:
        remove_table(review.exports, export)  # an earlier run's table would read as this run's
    shown = frame[list(columns)] if columns is not None and len(frame) else frame
    if not rows or rows <= 0 or len(frame) <= rows:
        show_table(shown, caption, labels=labels, keep=keep, missing=missing, empty=empty)
        return
    assert whole is not None
    if not Path(whole).is_file():
        raise ReviewkitError(f"{caption}: {where(review, whole)} was not written, so the report cannot say where "
                             f"the whole table of {len(frame):,} rows is")
    show_note(f"Showing the first {rows:,} of {len(frame):,} rows ({order}); "
              f"the whole table is in {where(review, whole)}.")
    show_table(shown.head(rows), f"{caption} (first {rows:,} of {len(frame):,} rows)", labels=labels, keep=keep,
               missing=missing, empty=empty)


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


def register_table(results) -> pd.DataFrame:
    """One row per search in each trial register: its query, date run, count and registrations retrieved,
    or the words for a register not searched ("not searched in this sample"), never 0."""
    return pd.DataFrame([
        {
            "search": r.key,
            "register": r.register,
            "date run": _day(r.manifest.get("date_run")) if r.searched else r.note,
            "register count": r.count if r.searched else r.note,
            "registrations retrieved": r.retrieved if r.searched else r.note,
            "query": "; ".join(f"{k} = {v}" for k, v in r.query.items()),
        }
        for r in results
    ], columns=["search", "register", "date run", "register count", "registrations retrieved", "query"])


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


def _fmt(value, digits: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def syntheses_table(items, labels: dict[str, str]) -> pd.DataFrame:
    """One row per synthesis for readers: what, how many, the estimate with CI and PI, I², certainty."""
    rows = []
    for s in items:
        low, high = s.ci
        pi_low, pi_high = s.pi
        rows.append({
            "disorder": labels.get(s.disorder, s.disorder),
            "outcome": labels.get(s.outcome_domain, s.outcome_domain),
            "comparison": labels.get(s.comparison, s.comparison),
            "design": s.design_group,
            "studies (k)": s.k,
            "without numbers": s.k_narrative,
            "participants": "–" if s.participants is None else s.participants,
            "measure": s.measure or "–",
            "estimate [95% CI]": f"{_fmt(s.estimate)} [{_fmt(low)}, {_fmt(high)}]" if s.model else "no estimate",
            "95% PI": f"{_fmt(pi_low)} to {_fmt(pi_high)}" if pi_low is not None else "–",
            "I² (%)": _fmt(s.model.i2, 0) if s.model and s.model.i2 is not None else "–",
            "certainty": s.certainty.level if s.certainty else "–",
        })
    return pd.DataFrame(rows)


def study_effects_table(items) -> pd.DataFrame:
    """Every study result a synthesis pools, on the shown scale, with its weight and how its effect
    and variance were obtained (from counts, from a reported CI with z or t, converted): the derived
    numbers, marked as derived."""
    rows = []
    for s in items:
        for _, r in s.studies.iterrows():
            half = 1.959963984540054 * math.sqrt(float(r["vi"]))
            low, high = s.interval(r["yi"] - half, r["yi"] + half)
            rows.append({
                "synthesis": s.label(),
                "study": r["study"], "measure": "proportion" if s.single_arm else s.measure,
                "effect [95% CI]": f"{_fmt(s.natural(r['yi']))} [{_fmt(low)}, {_fmt(high)}]",
                "weight (%)": _fmt(r["weight"], 1), "how the effect was obtained": r["effect_from"],
                "numbers derived": r.get("derivation") or "",
            })
    return pd.DataFrame(rows)


def extraction_table(review: Review) -> pd.DataFrame:
    """The extraction table with ``included`` (is the row's study included at full text in this run?
    rows of other studies are not synthesised)."""
    included = set(review.included["study_id"]) if len(review.included) else set()
    table = review.extraction
    return table.assign(included=table["study_id"].isin(included))


def extraction_view(review: Review) -> pd.DataFrame:
    """The extraction table for readers: the protocol's names for searches, outcome domains and
    comparisons, the arms' numbers, what was reported and where, whether the row is pooled and
    whether its study is included in this run."""
    from .audit import labels_of

    labels = labels_of(review.protocol)
    t = extraction_table(review)
    named = {col: t[col].map(lambda k: labels.get(k, k)) for col in ("disorder", "outcome_domain", "comparison")}
    return pd.DataFrame({
        "study": t["study"], "outcome": t["outcome_short"].fillna(t["outcome"]), "time point": t["timepoint"],
        "disorder": named["disorder"], "outcome domain": named["outcome_domain"],
        "comparison": named["comparison"].fillna("none (" + t["comparator_type"] + ")"),
        "comparator": t["comparator"], "measure": t["measure"],
        "events/n (intervention)": _arm_counts(t, "t"), "events/n (comparator)": _arm_counts(t, "c"),
        "before → after": [f"{a:g} → {b:g}" if pd.notna(a) and pd.notna(b) else None
                           for a, b in zip(t["mean_pre"], t["mean_post"])],
        "estimate [95% CI]": [f"{e:g} [{lo:g}, {hi:g}]" if pd.notna(lo) else (f"{e:g}" if pd.notna(e) else None)
                              for e, lo, hi in zip(t["estimate"], t["ci_low"], t["ci_high"])],
        "reported": t["reported"], "reported direction": t["reported_direction"], "pooled": t["pooled"],
        "why not pooled": t["not_pooled_reason"], "source": t["source_kind"], "derivation": t["derivation"],
        "included": t["included"], "row": t["row_id"],
    })


def _arm_counts(t: pd.DataFrame, arm: str) -> list[str | None]:
    """"13/27" per row from events and n (of a single arm for the intervention), None when not reported."""
    out: list[str | None] = []
    for _, r in t.iterrows():
        events, n = r[f"events_{arm}"], r[f"n_{arm}"]
        if arm == "t" and pd.isna(events):
            events, n = r["events"], r["n"]
        out.append(f"{int(events)}/{int(n)}" if pd.notna(events) and pd.notna(n) else None)
    return out


def export_evidence(review: Review, items) -> list[Path]:
    """The extraction (with ``included``), the syntheses and the summary of findings as CSV and XLSX in
    the run's exports, machine-readable (protocol keys, not names)."""
    from .audit import labels_of
    from .exports import write_table
    from .grade import summary_of_findings
    from .synthesis import synthesis_table

    return (write_table(extraction_table(review), review.exports, "extraction")
            + write_table(synthesis_table(items), review.exports, "syntheses")
            + write_table(summary_of_findings(items, labels_of(review.protocol)), review.exports, "summary_of_findings"))


def export_audit(review: Review, audit) -> list[Path]:
    """The claims audit and the reference check as CSV and XLSX in the run's exports."""
    from .exports import write_table

    return (write_table(claims_table(audit), review.exports, "claims_audit")
            + write_table(citation_table(audit.checks.values()), review.exports, "reference_check"))


def studies_table(review: Review) -> pd.DataFrame:
    """The included studies (each once, however many reports): design, participants, population."""
    included = review.included.drop_duplicates("study_id")
    studies = review.studies.set_index("study_id")
    rows = []
    for _, r in included.iterrows():
        st = studies.loc[r["study_id"]] if r["study_id"] in studies.index else None
        rows.append({
            "study": st["study"] if st is not None else r["study_id"],
            "design": DESIGN_LABELS.get(r["design"], r["design"]) if r["design"] else "not recorded",
            "disorders": ", ".join(sorted(set(review.included.loc[review.included["study_id"] == r["study_id"],
                                                                  "disorder"]))),
            "randomized": st["n_randomized"] if st is not None else None,
            "enrolled": st["n_enrolled"] if st is not None else None,
            "analysed": st["n_analysed"] if st is not None else None,
            "population": st["population"] if st is not None else None,
        })
    return pd.DataFrame(rows)


def registered_studies_note(review: Review) -> str:
    """What the trial-register searches can list, in words: the sentence shown when no registration
    is ongoing or awaiting classification (a register not searched is never "none found")."""
    registers = review.registers()
    if not registers:
        return "The protocol lists no trial register, so no registered study can be listed."
    unsearched = [r for r in registers if not r.searched]
    if unsearched:
        return (f"{unsearched[0].register} {unsearched[0].note}: registered studies cannot be listed"
                + (" for every search." if len(unsearched) == len(registers) else
                   f" for {len(unsearched)} of {len(registers)} searches."))
    return "No registration is ongoing or awaiting classification."


def registered_studies_table(review: Review) -> pd.DataFrame:
    """Cochrane's "ongoing studies" and "studies awaiting classification" from the trial registers."""
    return review.registered_studies.drop(columns=["record_id"])


def retraction_note(review: Review) -> str:
    """Whether an included report is retracted, saying what was checked (the sample cannot say)."""
    flagged = review.retracted_included
    if not flagged.empty:
        return (f"{len(flagged)} included report(s) named by a retraction notice: look at the decision again "
                "before relying on the syntheses.")
    if review.is_sample:
        return ("Retraction status of the included reports is not known: the sample's curated records carry no "
                "PubMed publication types or retraction links (a live run checks them).")
    return ("No included report is named by a retraction notice (PubMed's \"Retracted Publication\" type and "
            "retraction links of each included record checked).")


def show_retractions(review: Review) -> None:
    """The retraction sentence, and the table of included reports a notice names when there are any."""
    flagged = not review.retracted_included.empty
    show_note(retraction_note(review), emphasis=flagged)
    if flagged:
        show_table(retracted_table(review), caption="Included reports named by a retraction notice", keep=["pmid", "doi"])


def retracted_table(review: Review) -> pd.DataFrame:
    """The included reports a retraction notice names, with the notices."""
    flagged = review.retracted_included
    columns = [c for c in ("pmid", "doi", "title", "year", "retraction_notices") if c in flagged.columns]
    return flagged[columns].reset_index(drop=True)


def forest_plots(review: Review, items) -> list[Path]:
    """Draw, export (PNG, SVG) and show a forest plot for every synthesis with a study, then the overview."""
    import matplotlib.pyplot as plt

    from .audit import labels_of
    from .forest import forest_figure, overview_figure

    labels = labels_of(review.protocol)
    note = "Sample data: a curated sample of real studies, not a complete PubMed search." if review.is_sample else None
    written = []
    with_numbers = [s for s in items if s.k]
    if not with_numbers:
        show_note("No synthesis has a study with usable numbers, so there is no forest plot.")
    for n, s in enumerate(with_numbers, 1):
        stem = review.exports / f"forest_{n:02d}_{s.disorder}_{s.outcome_domain}_{s.comparison}_{s.design_group}"
        intervention, comparator = review.protocol.arms(s.comparison)
        plt.close(forest_figure(s, stem, title=s.label(), note=note, intervention=intervention, comparator=comparator))
        show_image(stem.with_suffix(".png"), alt=f"Forest plot: {s.label()}")
        written.append(stem.with_suffix(".png"))
    fig = overview_figure(items, labels, review.exports / "syntheses_overview", note=note)
    if fig is not None:
        plt.close(fig)
        show_image(review.exports / "syntheses_overview.png", alt="Overview of every synthesis")
        written.append(review.exports / "syntheses_overview.png")
    return written


def risk_of_bias(review: Review) -> pd.DataFrame:
    """Draw, export and show the risk-of-bias plots (robvis' traffic lights and summary) of the included
    studies; returns their judgements and support for a table. Says which assessable studies have no
    assessment, and when the project has no risk-of-bias table at all."""
    from .rob import missing_assessments, risk_of_bias_figure

    included = set(review.included["study_id"]) if len(review.included) else set()
    table = review.risk_of_bias
    table = table[table["study_id"].isin(included)]
    missing = missing_assessments(table, review.studies[review.studies["study_id"].isin(included)])
    names = dict(zip(review.studies["study_id"], review.studies["study"]))
    if missing:
        show_note(f"Not assessed yet ({len(missing)}): {', '.join(str(names.get(m, m)) for m in missing)}. "
                  "GRADE treats them as giving no information.")
    if table.empty:
        show_note(f"No risk-of-bias assessment of an included study in {where(review, review.risk_of_bias_file)}.")
        return table
    note = "Sample data: a curated sample of real studies, not a complete PubMed search." if review.is_sample else None
    png, _ = risk_of_bias_figure(table, review.exports / "risk_of_bias", note=note)
    show_image(png, alt="Risk of bias: traffic-light plot and summary")
    columns = [c for c in ("study", "tool", "outcome_domain", "D1", "DS", "D2", "D3", "D4", "D5", "D6", "D7",
                           "overall", "overall_by", "support") if c in table.columns]
    return table[columns].fillna("").reset_index(drop=True)


def sensitivity_tables(review: Review, items) -> pd.DataFrame:
    """Every synthesis with k >= 2: leave-one-out, without secondary-source numbers, without high risk of
    bias, common- vs random-effects (``reviewkit.synthesis.sensitivity``); empty when none has k >= 2."""
    from .synthesis import sensitivity

    high = review.high_risk_studies()
    frames = [sensitivity(s, high).assign(synthesis=s.label()) for s in items if s.k >= 2]
    if not frames:
        return pd.DataFrame(columns=["synthesis", "analysis", "k", "estimate", "ci_low", "ci_high", "i2"])
    out = pd.concat(frames, ignore_index=True)
    return out[["synthesis", "analysis", "k", "estimate", "ci_low", "ci_high", "i2"]]


def small_study_plots(review: Review, items) -> list[Path]:
    """For every synthesis of at least 10 studies (the fewest small-study tests need): a funnel plot with
    trim-and-fill's imputed studies and Egger's test in its title, exported and shown; says so when none
    is large enough."""
    import matplotlib.pyplot as plt

    from .figures import save_figure
    from .funnel import funnel
    from .grade import MIN_K_SMALL_STUDY
    from .meta import regtest, trimfill

    large = [s for s in items if s.k >= MIN_K_SMALL_STUDY]
    if not large:
        most = max((s.k for s in items), default=0)
        show_note(f"The largest synthesis has {most} stud{'y' if most == 1 else 'ies'}: funnel plots and "
                  f"small-study tests need at least {MIN_K_SMALL_STUDY}, so publication bias is not assessable here.")
        return []
    written = []
    for n, s in enumerate(large, 1):
        y, v = s.studies["yi"].to_numpy(float), s.studies["vi"].to_numpy(float)
        egger = regtest(y, v, method=s.method)
        fig, ax = plt.subplots(figsize=(7, 5.5))
        funnel(ax, y, v, s.model, filled=trimfill(y, v, method=s.method), measure=s.measure)
        ax.set_title(f"{s.label()}\nEgger's test p = {egger.p:.3f}", fontsize=9, loc="left")
        stem = review.exports / f"funnel_{n:02d}_{s.disorder}_{s.outcome_domain}_{s.comparison}_{s.design_group}"
        save_figure(fig, stem)
        plt.close(fig)
        show_image(stem.with_suffix(".png"), alt=f"Funnel plot: {s.label()}")
        written.append(stem.with_suffix(".png"))
    return written


def claims_table(audit) -> pd.DataFrame:
    """The claims audit for readers: both verdicts, the certainty and the reasons."""
    rows = []
    for a in audit.claims:
        d = a.as_dict()
        rows.append({
            "id": d["id"], "about": ", ".join(d["disorders"]) or "(mechanism)", "quote": d["quote"],
            "cites": d["cites"] or "(none)",
            "citation": d["citation_verdict"].replace("_", " "),
            "cited work about the claim": d["citation_about_claim"],
            "statement": d["statement_verdict"], "certainty": d["certainty"] or "–",
            "reason": d["reason"], "citation detail": d["citation_reason"],
        })
    return pd.DataFrame(rows)


def citation_table(checks) -> pd.DataFrame:
    """One row per checked reference: verdict, the record meant or the nearest ones, fields that differ."""
    return pd.DataFrame([
        {
            "reference": c.reference.text,
            "verdict": c.verdict.replace("_", " "),
            "record": c.match.label() if c.match else "",
            "fields that differ": ", ".join(c.field_errors),
            "nearest records": "; ".join(m.label() for m in c.candidates),
            "searched": ", ".join(c.sources_searched) + (f" (found in {c.found_in})" if c.found_in else ""),
            "retracted": {True: "yes", False: "no", None: "not known"}[c.retracted],
            "a live check could change this": c.live_could_change,
        }
        for c in checks
    ])


def awaiting_table(state, stage: str = "title_abstract") -> pd.DataFrame:
    """Records of ``stage`` awaiting a decision (``reviewkit.screening_state.awaiting_screening``) in screening
    order: by the sheet's ``priority`` (most likely to be included first, the screening app's order), so a
    list shown in part shows the records to screen next; records without a priority keep their order, last."""
    from .screening_state import awaiting_screening

    waiting = awaiting_screening(state, stage)
    sheet = state.sheet(stage)
    current = sheet[sheet["status"] == ""]
    rank = dict(zip(current["record_id"], pd.to_numeric(current.get("priority"), errors="coerce")))
    order = waiting["record_id"].map(rank).fillna(math.inf).to_numpy()
    return waiting.iloc[order.argsort(kind="stable")].reset_index(drop=True)


def included_records(state) -> pd.DataFrame:
    """Records (after deduplication) whose full-text decision is include: the reports of included studies."""
    sheet = state.sheet("full_text")
    current = sheet[(sheet["status"] == "") & (sheet["final"] == "include")]
    records = state.dedupe.records
    return records[records["record_id"].isin(set(current["record_id"]))].reset_index(drop=True)


def key_numbers(counts, items, audits: pd.DataFrame | None) -> pd.DataFrame:
    """The report in a few lines: search yield, screening, included studies, syntheses and their certainty,
    claims (``audits`` None: the project audits no article)."""
    db, om = counts.databases, counts.other_methods
    certainty = pd.Series([s.certainty.level for s in items if s.certainty]).value_counts()
    rows = [
        ("Records from the database searches", f"{db.from_databases}"),
        ("Records from the trial registers", f"{db.from_registers}"),
        ("Records from other methods", f"{sum(om.identified.values())}"),
        ("Records screened (title/abstract)", f"{db.records_screened}, {db.records_awaiting} awaiting"),
        ("Reports assessed in full text", f"{db.reports.assessed + om.reports.assessed}"),
        ("Studies included (reports)", f"{counts.studies_included} ({counts.reports_included})"),
        ("Syntheses (disorder x outcome x comparison)",
         f"{len(items)}, {sum(1 for s in items if s.model is not None)} with an effect estimate"),
        ("Certainty of the syntheses", ", ".join(f"{n} {level}" for level, n in certainty.items()) or "none"),
    ]
    if audits is not None:
        for column, name in (("statement_verdict", "Article claims: statements"),
                             ("citation_verdict", "Article claims: citations")):
            verdicts = audits[column].str.replace("_", " ").value_counts()
            rows.append((name, f"{len(audits)}: " + ", ".join(f"{n} {v}" for v, n in verdicts.items())))
    return pd.DataFrame(rows, columns=["", "value"]).set_index("")


def files_table(folder: str | Path) -> pd.DataFrame:
    """Every file under ``folder`` with its size, for the report's list of exports."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    return pd.DataFrame({"file": [str(p.relative_to(folder)) for p in files],
                         "kB": [round(p.stat().st_size / 1024, 1) for p in files]}).set_index("file")
