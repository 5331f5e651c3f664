"""What every review notebook does first, and the few helpers the notebooks share.

``start(...)`` turns a notebook's papermill parameters into resolved paths, so
the same notebook runs from the repository root, from ``notebooks/`` in
JupyterLab and under ``reviewkit run``. It switches itables to offline mode (its
JavaScript is inlined into the output, so the HTML report fetches nothing from
the internet) and shows the banner every output built from the bundled sample
carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .errors import ReviewkitError
from .report import project_root, sample_banner_html


@dataclass(frozen=True)
class Context:
    root: Path
    snapshot_dir: Path
    output_dir: Path
    offline: bool
    searches: list[str] | None
    screening_dir: Path

    @property
    def exports(self) -> Path:
        return self.output_dir / "exports"

    @property
    def snapshot_info(self) -> dict:
        from .snapshot import Snapshot

        if not (self.snapshot_dir / "snapshot.json").is_file():
            return {}
        return Snapshot.open(self.snapshot_dir).info

    @property
    def is_sample(self) -> bool:
        return bool(self.snapshot_info.get("sample"))


def resolve_data(name: str, root: Path, kind: str = "snapshots") -> Path:
    """A bare name is a folder of ``data/<kind>/``; anything else is a path (relative to the project)."""
    if not name:
        raise ReviewkitError(f"an empty name for a folder of data/{kind}/; give a name (e.g. sample) or a path")
    path = Path(name).expanduser()
    if len(path.parts) == 1 and not path.is_absolute():
        return root / "data" / kind / name
    return path if path.is_absolute() else root / path


def start(*, offline: bool = True, snapshot: str = "sample", searches: list[str] | None = None,
          screening: str = "sample", output_dir: str = "") -> Context:
    """Resolve paths, set up interactive tables, show the sample banner; the first call of every notebook."""
    import itables
    from IPython.display import HTML, display

    root = project_root()
    out = Path(output_dir).expanduser() if output_dir else root / "reports" / "interactive"
    ctx = Context(root, resolve_data(str(snapshot), root, "snapshots"), out if out.is_absolute() else root / out,
                  bool(offline), list(searches) if searches else None, resolve_data(str(screening), root, "screening"))
    if ctx.offline and not (ctx.snapshot_dir / "snapshot.json").is_file():
        raise ReviewkitError(f"offline run: snapshot folder {ctx.snapshot_dir} does not exist or has no snapshot.json")
    if not ctx.offline and ctx.is_sample:
        raise ReviewkitError(f"live run: {ctx.snapshot_dir} is the bundled sample; give a new snapshot folder "
                             "for the live searches to be recorded in")
    itables.init_notebook_mode(all_interactive=False, connected=False)
    # Plain tables show whole sentences (reasons, notes), not pandas' 50-character cut.
    pd.set_option("display.max_colwidth", None)
    # Titles and reasons are text: left-aligned and wrapped read better than right-aligned and cut.
    itables.options.classes = "display compact"
    itables.options.columnDefs = [{"className": "dt-left", "targets": "_all"}]
    if ctx.is_sample:
        display(HTML(sample_banner_html(ctx.snapshot_info.get("note", ""))))
    return ctx


def open_transport(ctx: Context, protocol):
    """Replay the snapshot offline; live, record every request into it (resuming what is there)."""
    from .entrez import LiveTransport, ReplayTransport
    from .snapshot import Snapshot

    if ctx.offline:
        return ReplayTransport(Snapshot.open(ctx.snapshot_dir))
    snap = Snapshot.create(ctx.snapshot_dir, sample=False, note="Live PubMed searches recorded by reviewkit.",
                           protocol_sha256=protocol.sha256)
    return LiveTransport(snap)


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


def awaiting_screening(state, stage: str = "title_abstract") -> pd.DataFrame:
    """Records of one stage without a final decision; ``new`` marks those this run added."""
    update = state.updates[stage]
    sheet = update.sheet
    waiting = sheet[(sheet["status"] == "") & (sheet["final"] == "")]
    new = set(update.new_ids)
    return waiting.assign(new=waiting["record_id"].isin(new))[
        ["record_id", "new", "title", "authors", "year", "searches", "suggestion", "suggestion_reason"]
    ].reset_index(drop=True)


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


def pooled_table(analysis, name: str = "") -> pd.DataFrame:
    """The per-disorder and overall models for readers: ratios back-transformed, rounded, labelled
    with the protocol's names for its searches.

    ``analysis`` None (no included study in the analysis ``name``) gives one row saying so.
    """
    import numpy as np

    from .effects import RATIO_MEASURES
    from .protocol import load_protocol

    if analysis is None:
        return pd.DataFrame({"studies (k)": [0], "note": [_nothing_pooled(name)]}, index=["overall"])
    table = analysis.table()
    show = np.exp if analysis.measure in RATIO_MEASURES else (lambda x: x)
    def fmt(values, digits: int) -> list[str]:
        return ["–" if pd.isna(v) else f"{v:.{digits}f}" for v in values]

    labels = load_protocol().labels
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


def included_reports(ctx: Context, extraction: pd.DataFrame) -> pd.DataFrame:
    """This run's included reports joined to design, n and their extraction rows
    (``reviewkit.evidence.included_from_screening``)."""
    from .evidence import included_from_screening
    from .screening_state import build_state

    state = build_state(ctx.snapshot_dir, ctx.screening_dir)
    return included_from_screening(state, ctx.root / "data" / "corpus" / "records.jsonl", extraction)


def extraction_table(extraction: pd.DataFrame, included: pd.DataFrame) -> pd.DataFrame:
    """The extraction table with ``included`` (is the row's study included at full text in this
    run? rows of other studies are not pooled) and ``included study`` (the screening's study id)."""
    study_of = {row_id: study for rows, study in zip(included["extraction_rows"], included["study_id"])
                for row_id in rows}
    studies = [study_of.get(r, "") for r in extraction["row_id"]]
    return extraction.assign(included=[bool(s) for s in studies], **{"included study": studies})


def export_meta_analysis(ctx: Context, extraction: pd.DataFrame, included: pd.DataFrame, analysis,
                         name: str) -> list[Path]:
    """Write the extraction table (with ``included study``) and, when something was pooled, the
    effect sizes with their weights, to the run's exports (CSV and XLSX)."""
    from .exports import write_table

    written = write_table(extraction_table(extraction, included), ctx.exports, "extraction")
    if analysis is not None:
        written += write_table(analysis.studies, ctx.exports, f"effects_{name}")
    return written


def forest_plot(ctx: Context, analysis, name: str) -> None:
    """Draw, export (PNG, SVG) and show the forest plot of ``analysis``; say so when nothing was pooled."""
    import matplotlib.pyplot as plt
    from IPython.display import Markdown, display

    from .forest import forest
    from .protocol import load_protocol

    if analysis is None:
        display(Markdown(_nothing_pooled(name)))
        return
    note = "Sample data: a curated sample of real studies, not a complete PubMed search." if ctx.is_sample else None
    stem = ctx.exports / f"forest_{name}"
    plt.close(forest(analysis, stem, title=f"Ketamine vs control: {name}", note=note,
                     group_labels=load_protocol().labels))
    show_image(stem.with_suffix(".png"), alt=f"Forest plot: {name}")


def citation_source(ctx: Context):
    """Where references are checked: the snapshot's local records offline, PubMed live (recorded in the snapshot)."""
    from .citations import candidate_source
    from .snapshot import Snapshot

    return candidate_source(Snapshot.open(ctx.snapshot_dir), live=not ctx.offline)


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


def key_numbers(counts, analysis, audits: pd.DataFrame) -> pd.DataFrame:
    """The report in a few lines: search yield, screening, included studies, pooled effect, claims."""
    import math

    from .effects import RATIO_MEASURES

    db, om = counts.databases, counts.other_methods
    verdicts = audits["verdict"].value_counts()
    if analysis is None:
        pooled = ("Pooled effect, all disorders", "none: no included study is in the analysis")
    else:
        overall = analysis.overall
        show = math.exp if analysis.measure in RATIO_MEASURES else (lambda v: v)
        pooled = (f"Pooled {analysis.measure}, all disorders (k = {overall.k})",
                  f"{show(overall.estimate):.2f} (95% CI {show(overall.ci_low):.2f} to {show(overall.ci_high):.2f})")
    rows = [
        ("Records from the PubMed searches", f"{sum(db.identified.values())}"),
        ("Records from other methods", f"{sum(om.identified.values())}"),
        ("Records screened (title/abstract)", f"{db.records_screened}, {db.records_awaiting} awaiting"),
        ("Reports assessed in full text", f"{db.reports.assessed + om.reports.assessed}"),
        ("Studies included (reports)", f"{counts.studies_included} ({counts.reports_included})"),
        pooled,
        ("Article claims audited", f"{len(audits)}: " + ", ".join(f"{n} {v}" for v, n in verdicts.items())),
    ]
    return pd.DataFrame(rows, columns=["", "value"]).set_index("")


def files_table(folder: str | Path) -> pd.DataFrame:
    """Every file under ``folder`` with its size, for the report's list of exports."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    return pd.DataFrame({"file": [str(p.relative_to(folder)) for p in files],
                         "kB": [round(p.stat().st_size / 1024, 1) for p in files]}).set_index("file")


def article_audit(ctx: Context, analysis: str = "abstinence", method: str = "REML", hksj: bool = False):
    """The claims audit for this run's snapshot and screening (``reviewkit.audit.ArticleAudit``)."""
    from .audit import audit_article

    return audit_article(ctx.snapshot_dir, ctx.screening_dir, citation_source(ctx), analysis=analysis,
                         method=method, hksj=hksj, article_dir=ctx.root / "data" / "article",
                         corpus_records=ctx.root / "data" / "corpus" / "records.jsonl")
