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

import math
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


def show_image(path: str | Path, alt: str, width: int = 960) -> None:
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


def extraction_table(review: Review) -> pd.DataFrame:
    """The extraction table with ``included`` (is the row's study included at full text in this run?
    rows of other studies are not synthesised)."""
    included = set(review.included["study_id"]) if len(review.included) else set()
    table = review.extraction
    return table.assign(included=table["study_id"].isin(included))


def studies_table(review: Review) -> pd.DataFrame:
    """The included studies (each once, however many reports): design, participants, population."""
    included = review.included.drop_duplicates("study_id")
    studies = review.studies.set_index("study_id")
    rows = []
    for _, r in included.iterrows():
        st = studies.loc[r["study_id"]] if r["study_id"] in studies.index else None
        rows.append({
            "study": st["study"] if st is not None else r["study_id"],
            "design": r["design"] or "not recorded",
            "disorders": ", ".join(sorted(set(review.included.loc[review.included["study_id"] == r["study_id"],
                                                                  "disorder"]))),
            "randomized": st["n_randomized"] if st is not None else None,
            "enrolled": st["n_enrolled"] if st is not None else None,
            "analysed": st["n_analysed"] if st is not None else None,
            "population": st["population"] if st is not None else None,
        })
    return pd.DataFrame(rows)


def forest_plots(review: Review, items) -> list[Path]:
    """Draw, export (PNG, SVG) and show a forest plot for every synthesis with a study, then the overview."""
    import matplotlib.pyplot as plt
    from IPython.display import Markdown, display

    from .audit import labels_of
    from .forest import forest_figure, overview_figure

    labels = labels_of(review.protocol)
    note = "Sample data: a curated sample of real studies, not a complete PubMed search." if review.is_sample else None
    written = []
    with_numbers = [s for s in items if s.k]
    if not with_numbers:
        display(Markdown("No synthesis has a study with usable numbers, so there is no forest plot."))
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
    from IPython.display import Markdown, display

    from .rob import missing_assessments, risk_of_bias_figure

    included = set(review.included["study_id"]) if len(review.included) else set()
    table = review.risk_of_bias
    table = table[table["study_id"].isin(included)]
    missing = missing_assessments(table, review.studies[review.studies["study_id"].isin(included)])
    names = dict(zip(review.studies["study_id"], review.studies["study"]))
    if missing:
        display(Markdown(f"Not assessed yet ({len(missing)}): {', '.join(str(names.get(m, m)) for m in missing)}. "
                         "GRADE treats them as giving no information."))
    if table.empty:
        display(Markdown(f"No risk-of-bias assessment of an included study in "
                         f"`{review.project.relative(review.risk_of_bias_file)}`."))
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
    from IPython.display import Markdown, display

    from .figures import save_figure
    from .funnel import funnel
    from .grade import MIN_K_SMALL_STUDY
    from .meta import regtest, trimfill

    large = [s for s in items if s.k >= MIN_K_SMALL_STUDY]
    if not large:
        most = max((s.k for s in items), default=0)
        display(Markdown(f"The largest synthesis has {most} stud{'y' if most == 1 else 'ies'}: funnel plots and "
                         f"small-study tests need at least {MIN_K_SMALL_STUDY}, so publication bias is not "
                         "assessable here."))
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


def key_numbers(counts, items, audits: pd.DataFrame | None) -> pd.DataFrame:
    """The report in a few lines: search yield, screening, included studies, syntheses and their certainty,
    claims (``audits`` None: the project audits no article)."""
    db, om = counts.databases, counts.other_methods
    certainty = pd.Series([s.certainty.level for s in items if s.certainty]).value_counts()
    rows = [
        ("Records from the PubMed searches", f"{sum(db.identified.values())}"),
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
