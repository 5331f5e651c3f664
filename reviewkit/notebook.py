"""What every review notebook does first, and the display helpers the notebooks share.

``start(...)`` turns a notebook's papermill parameters into a
``reviewkit.review.Review`` (the same orchestration the command line uses), so
the notebook runs from its project's ``notebooks/`` in JupyterLab and under
``reviewkit run`` alike. It switches itables to offline mode (its JavaScript is
inlined into the output, so the HTML report fetches nothing from the internet)
and shows the banner every output built from a sample carries. The helpers
below only shape what a stage computed into tables and figures for readers.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .project import Project
from .report import sample_banner_html
from .review import Review


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
    itables.options.classes = "display compact"
    itables.options.columnDefs = [{"className": "dt-left", "targets": "_all"}]
    if review.is_sample:
        display(HTML(sample_banner_html(review.sample_note)))
    return review


def search_table(results) -> pd.DataFrame:
    """One row per search: what PRISMA-S asks a report to state."""
    return pd.DataFrame([
        {
            "search": r.key,
            "label": r.manifest.get("label"),
            "date run": r.manifest.get("date_run"),
            "PubMed count": r.count,
            "records retrieved": r.retrieved,
            "date limits": f"{r.manifest.get('datetype')}: {r.manifest.get('mindate')} to {r.manifest.get('maxdate')}",
            "query": r.query,
        }
        for r in results
    ])


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


def show_image(path: str | Path, alt: str, width: int = 900) -> None:
    """Display a figure file the library wrote, so the report shows exactly the exported figure.

    ``alt`` describes the figure for screen readers (and names it in the HTML).
    """
    from IPython.display import Image, display

    display(Image(filename=str(path), width=width, alt=alt))


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
    from IPython.display import Markdown, display

    from .forest import forest

    if analysis is None:
        display(Markdown(_nothing_pooled(name)))
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
