"""The notebooks as users meet them: committed clean, run end to end offline, read as one HTML report.

Whole runs are slow (a kernel per notebook), so one output root is shared by
the module: run 1 on the sample, run 2 on the same sample (no change), run 3 on
a newer snapshot with one extra record (a living-review update), run 4 on the
sample again (a search count falls, as a scheduled run must notice).
"""

import contextlib
import html
import io
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import rispy

from reviewkit import report
from reviewkit.cli import main
from reviewkit.io import read_jsonl
from reviewkit.review import Review
from tools.build_sample import CORPUS, build_sample

from helpers import EXAMPLE, PROTOCOL, ROOT
from test_report import external_resources

NOTEBOOKS = EXAMPLE.notebooks()
ALL_NOTEBOOKS = sorted(EXAMPLE.path("notebooks").glob("*.ipynb"))
SCREENING_NOTEBOOK = EXAMPLE.path("notebooks") / "screen.ipynb"
SHARED_PARAMETERS = {"project", "protocol", "offline", "snapshot", "searches", "screening", "output_dir"}
# Recognisable credentials: a run must leave neither in any file it writes.
CANARY_EMAIL = "canary-7c1e@reviewkit-test.invalid"
CANARY_KEY = "rkcanary5d0f1b2a9e8c7d6f5a4b3c2d1e0f"
NEW_PMID = "99999901"


# --- committed notebooks (fast) ------------------------------------------------

@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_committed_notebook_is_clean(path):
    """Every notebook in git, report or not: valid, output-free, the python3 kernel, a title first."""
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{path.name} has outputs"
    assert nb.metadata["kernelspec"]["name"] == report.KERNEL_NAME
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_report_notebook_has_one_parameters_cell(path):
    """The numbered notebooks `reviewkit run` executes (clean, as every committed notebook above)."""
    nb = nbformat.read(path, as_version=4)
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1
    declared = set(report.notebook_parameters(path))
    assert SHARED_PARAMETERS <= declared
    assert not [n for n in declared if any(w in n.lower() for w in report.CREDENTIAL_WORDS)]


def test_the_screening_notebook_opens_the_app_and_is_not_part_of_the_report():
    """notebooks/screen.ipynb is for a person in JupyterLab: `reviewkit run` (papermill, the numbered
    notebooks only) never runs it, so it has no parameters cell; stage and reviewer are plain variables."""
    assert SCREENING_NOTEBOOK in ALL_NOTEBOOKS and SCREENING_NOTEBOOK not in NOTEBOOKS
    nb = nbformat.read(SCREENING_NOTEBOOK, as_version=4)
    assert not [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    settings = {line.split("=")[0].strip() for line in code[0].splitlines() if "=" in line}
    assert settings == {"stage", "reviewer", "snapshot"}
    assert "ScreeningApp(start(snapshot=snapshot), stage=stage, reviewer=reviewer)" in code[-1]
    namespace: dict = {}
    exec(code[0], namespace)  # the settings cell alone: plain values the app accepts
    assert namespace["stage"] in ("title_abstract", "full_text") and namespace["reviewer"] == "reviewer1"


# --- the helpers the notebooks call (fast, on the sample) ------------------------

@pytest.fixture(scope="module")
def sample_review(tmp_path_factory):
    return Review(EXAMPLE, output_dir=tmp_path_factory.mktemp("out"))


def test_screening_helpers_agree_with_prisma(sample_review):
    from reviewkit import notebook
    from reviewkit.screening_state import awaiting_screening

    state = sample_review.state
    overview = notebook.screening_overview(state).set_index("stage")
    prisma = sample_review.prisma
    table = notebook.prisma_table(prisma)
    assert list(table.columns) == ["all searches", *state.search_keys]
    assert overview.loc["title/abstract", "excluded"] == table.loc["records excluded", "all searches"]
    assert table.loc["studies included", "all searches"] == prisma.overall.studies_included
    assert len(notebook.included_records(state)) == prisma.overall.reports_included
    assert awaiting_screening(state).empty  # the sample's sheets are complete
    reasons = notebook.exclusion_reasons(prisma.overall)
    assert reasons[["databases", "other methods"]].to_numpy().sum() == table.loc["reports excluded", "all searches"]


def test_article_audit_weighs_every_claim(sample_review):
    import yaml

    from reviewkit import notebook
    from reviewkit.claims import STATEMENT_VERDICTS

    audit = sample_review.audit()
    claims = yaml.safe_load((ROOT / "data" / "article" / "claims.yml").read_text(encoding="utf-8"))
    assert len(audit.checks) == 9
    assert len(audit.table) == len(claims["claims"])
    assert set(audit.table["statement_verdict"]) <= set(STATEMENT_VERDICTS)
    refs = notebook.citation_table(audit.checks.values())
    assert set(refs["verdict"]) <= {"verified", "exists with errors", "not found", "ambiguous"}
    items = sample_review.syntheses()
    numbers = notebook.key_numbers(sample_review.prisma.overall, items, audit.table)
    assert numbers.loc["Studies included (reports)", "value"] == "17 (20)"
    with_estimate = sum(s.model is not None for s in items)
    assert numbers.loc["Syntheses (disorder x outcome x comparison)", "value"] == \
        f"{len(items)}, {with_estimate} with an effect estimate"
    statements = numbers.loc["Article claims: statements", "value"]
    assert statements.startswith("11: ") and sum(int(n) for n in re.findall(r"(\d+) [a-z]", statements[4:])) == 11
    shown = notebook.claims_table(audit).set_index("id")
    assert shown.notna().all().all()  # a reader sees words, not NaN
    assert shown.loc["C01", "about"] == "(mechanism)" and shown.loc["C02", "cites"] == "(none)"
    assert shown.loc["C07", "citation"] == "not found" and shown.loc["C07", "statement"] == "supported"


def test_meta_analysis_helpers_show_only_included_studies(sample_review, tmp_path):
    from reviewkit import notebook
    from reviewkit.audit import labels_of

    shown = notebook.extraction_table(sample_review)
    assert shown.loc[shown["row_id"] == "dakwar2020-drinking", "included"].item()
    studies = notebook.studies_table(sample_review)
    assert len(studies) == 17 and "Das 2019" not in set(studies["study"])
    items = sample_review.syntheses()
    table = notebook.syntheses_table(items, labels_of(PROTOCOL))
    assert len(table) == len(items) and (table["certainty"] != "–").all()
    row = table[(table["outcome"] == "Relapse") & (table["disorder"] == "Cocaine and other stimulant use")].iloc[0]
    assert row["estimate [95% CI]"] == "0.47 [0.24, 0.92]" and row["measure"] == "HR"
    assert notebook.sensitivity_tables(sample_review, items).empty  # every sample synthesis has k = 1

    # A screening with no includes: nothing synthesised, and every reader-facing helper says so.
    empty = Review(EXAMPLE, screening=str(tmp_path / "no-decisions"), output_dir=tmp_path)
    assert empty.included.empty and not notebook.extraction_table(empty)["included"].any()
    assert empty.syntheses() == []
    numbers = notebook.key_numbers(empty.prisma.overall, [], None)
    assert numbers.loc["Syntheses (disorder x outcome x comparison)", "value"] == "0, 0 with an effect estimate"
    assert notebook.forest_plots(empty, []) == []
    assert not list(tmp_path.rglob("forest_*"))


def test_study_effects_say_how_each_effect_was_obtained(sample_review):
    from reviewkit import notebook

    table = notebook.study_effects_table(sample_review.syntheses()).set_index("study")
    grabski = table[table["measure"] == "MD"].iloc[0]
    assert grabski["effect [95% CI]"] == "10.10 [1.27, 18.93]" and "t(94)" in grabski["how the effect was obtained"]
    assert "SE from the 95% CI" in grabski["how the effect was obtained"]
    assert table.loc["Krupitsky 2007", "how the effect was obtained"] == "2x2"


def test_small_study_plots_need_ten_studies(sample_review):
    import numpy as np

    from reviewkit import notebook
    from reviewkit.meta import regtest

    from helpers import made_up_synthesis

    assert notebook.small_study_plots(sample_review, sample_review.syntheses()) == []
    rng = np.random.default_rng(3)
    vi = rng.uniform(0.02, 0.4, 12)
    yi = 0.3 + 1.5 * np.sqrt(vi) + rng.normal(0, 0.05, 12)
    (png,) = notebook.small_study_plots(sample_review, [made_up_synthesis(list(yi), list(vi))])
    assert png.name == "funnel_01_aud_abstinence_control_randomized.png" and png.with_suffix(".svg").is_file()
    svg = png.with_suffix(".svg").read_text(encoding="utf-8")
    assert f"Egger's test p = {regtest(yi, vi, method='REML').p:.3f}" in svg and "trim-and-fill" in svg


def test_risk_of_bias_section_shows_the_included_studies(sample_review):
    from reviewkit import notebook

    table = notebook.risk_of_bias(sample_review)
    assert len(table) == 15 and set(table["overall"]) == {"no information"}
    assert (sample_review.exports / "risk_of_bias.png").is_file()


@pytest.fixture
def shown(monkeypatch):
    """What the display helpers hand to IPython, as HTML strings."""
    import IPython.display

    out = []
    monkeypatch.setattr(IPython.display, "display", lambda obj: out.append(obj.data))
    return out


def test_show_table_shows_every_row_in_words_and_escapes_everything(shown):
    from reviewkit import notebook

    payload = '<img src=x onerror="alert(1)">'
    frame = pd.DataFrame({"record_id": [f"PMID:{i}" for i in range(25)], "citation_verdict": ["exists_with_errors"] * 25,
                          "included": [True, False] * 12 + [None], "searches": [["aud", "oud"]] * 25,
                          "kappa": [None] * 25, payload: [payload] * 25})
    notebook.show_table(frame, caption=payload, keep=["record_id"], missing={"kappa": "not computed"})
    (page,) = shown
    assert "<img" not in page and page.count("&lt;img src=x") >= 2 * 25
    fallback = page.split("_fallback")[1].split("</table>")[0]  # the table as it is without JavaScript
    assert fallback.split("<tbody>")[1].split("</tbody>")[0].count("<tr") == 25  # every row: no page of 10
    for text in (">exists with errors<", ">yes<", ">no<", ">\u2014<", ">aud, oud<", ">not computed<", ">citation verdict<"):
        assert text in fallback, text
    assert not re.search(r">(None|nan|True|False|\[.*?\])<", fallback)
    assert '"paging": false' in page and 'class="rk-table"' in page and "rk-wide" not in page


def test_show_table_marks_wide_tables_for_landscape_pages_and_says_when_empty(shown):
    from reviewkit import notebook

    notebook.show_table(pd.DataFrame({f"column_{i}": ["a long sentence of several words"] for i in range(12)}))
    notebook.show_table(pd.DataFrame({"a": []}), caption="Merged records")
    notebook.show_note("Nothing pooled in <b>x</b>")
    assert 'class="rk-table rk-wide"' in shown[0]
    assert shown[1] == "<p>Merged records: none.</p>" and shown[2] == "<p>Nothing pooled in &lt;b&gt;x&lt;/b&gt;</p>"


def _review_at(folder: Path):
    """What show_records needs of a review: where its exports, report and project are (for ``where``)."""
    from types import SimpleNamespace

    return SimpleNamespace(output_dir=folder, exports=folder / "exports",
                           project=SimpleNamespace(root=folder.parent / "project"))


def _rows(page: str) -> list[str]:
    """The record ids of a shown table's rows, as the page has them without JavaScript."""
    body = page.split("_fallback")[1].split("<tbody>")[1].split("</tbody>")[0]
    return re.findall(r">(PMID:\d+)<", body)


def test_a_long_record_table_is_written_whole_then_shown_in_part_naming_its_export(shown, tmp_path):
    from reviewkit import notebook
    from reviewkit.tables import read_csv, read_xlsx

    frame = pd.DataFrame({"record_id": [f"PMID:{i}" for i in range(1205)], "title": ["<i>t</i>"] * 1205,
                          "abstract": ["not shown, but exported"] * 1205})
    notebook.show_records(_review_at(tmp_path), frame, "PubMed records", export="records <b>&",  # escaped like any text
                          columns=["record_id", "title"], rows=1000, keep=["record_id"])
    note, page = shown
    assert note == ("<p>Showing the first 1,000 of 1,205 rows (in the table&#39;s order); the whole table is in "
                    "exports/records &lt;b&gt;&amp;.csv.</p>")
    assert _rows(page) == [f"PMID:{i}" for i in range(1000)]
    assert "PubMed records (first 1,000 of 1,205 rows)" in page and "<i>" not in page
    assert "not shown, but exported" not in page  # only the columns asked for are shown ...
    for written in (read_csv(tmp_path / "exports" / "records <b>&.csv"),
                    read_xlsx(tmp_path / "exports" / "records <b>&.xlsx")):
        assert written.to_dict("list") == frame.to_dict("list")  # ... and the export holds every row and column
    assert len(frame) == 1205 and list(frame.columns) == ["record_id", "title", "abstract"]  # the table is not changed


def test_a_long_record_table_can_name_a_file_written_before(shown, tmp_path):
    """The screening sheets and deduplication logs are written by Review.save_screening, in their own format."""
    from reviewkit import notebook

    whole = tmp_path / "exports" / "screening" / "title_abstract.csv"
    whole.parent.mkdir(parents=True)
    whole.write_text("every row\n")
    frame = pd.DataFrame({"record_id": [f"PMID:{i}" for i in range(12)]})
    notebook.show_records(_review_at(tmp_path), frame, "Title and abstract screening", whole=whole, rows=10,
                          order="in the sheet's order")
    note, page = shown
    assert note == ("<p>Showing the first 10 of 12 rows (in the sheet&#39;s order); the whole table is in "
                    "exports/screening/title_abstract.csv.</p>")
    assert _rows(page) == [f"PMID:{i}" for i in range(10)]
    assert whole.read_text() == "every row\n" and sorted(p.name for p in whole.parent.iterdir()) == [whole.name]


def test_a_record_table_within_the_limit_or_unbounded_shows_every_row_and_is_exported_whole(shown, tmp_path):
    from reviewkit import notebook
    from reviewkit.tables import read_csv

    review, exports = _review_at(tmp_path), tmp_path / "exports"
    exports.mkdir()
    for stale in ("merges.csv", "merges.xlsx"):  # an earlier run's, in a reused folder
        (exports / stale).write_text("an earlier run's merges")
    frame = pd.DataFrame({"record_id": [f"PMID:{i}" for i in range(69)], "year": [2020] * 69})
    notebook.show_records(review, frame, "Records", export="records", columns=["record_id"], rows=69)
    notebook.show_records(review, frame, "Records", export="records_all", rows=0)
    notebook.show_records(review, frame.head(0), "Merged records", export="merges", rows=10)
    notebook.show_records(review, pd.DataFrame(), "Other records", export="other", columns=["record_id"], rows=10,
                          empty="No record was identified by other methods.")
    assert len(shown) == 4 and not any("Showing" in page for page in shown)
    assert _rows(shown[0]) == _rows(shown[1]) == list(frame["record_id"])
    assert ">year<" not in shown[0] and ">year<" in shown[1]
    assert shown[2] == "<p>Merged records: none.</p>" and shown[3] == "<p>No record was identified by other methods.</p>"
    # a table with rows is written whole even when it is not cut; an empty one is not written, and an
    # earlier run's file of its name is gone
    assert sorted(p.name for p in exports.iterdir()) == ["records.csv", "records.xlsx", "records_all.csv",
                                                          "records_all.xlsx"]
    assert read_csv(exports / "records.csv")["year"].tolist() == ["2020"] * 69


def test_a_table_shown_in_part_must_name_a_file_that_exists(shown, tmp_path):
    from reviewkit import notebook
    from reviewkit.errors import ReviewkitError

    frame = pd.DataFrame({"record_id": [f"PMID:{i}" for i in range(11)]})
    with pytest.raises(ReviewkitError, match="exports/records.csv was not written"):
        notebook.show_records(_review_at(tmp_path), frame, "Records", whole=tmp_path / "exports" / "records.csv",
                              rows=10)
    for where in ({}, {"export": "records", "whole": tmp_path / "exports" / "records.csv"}):
        with pytest.raises(ValueError, match="either export= or whole="):
            notebook.show_records(_review_at(tmp_path), frame, "Records", rows=10, **where)
    assert shown == [] and not (tmp_path / "exports").exists()


def test_records_awaiting_screening_come_most_likely_include_first():
    from types import SimpleNamespace

    from reviewkit import notebook

    sheet = pd.DataFrame({"record_id": ["PMID:1", "PMID:2", "PMID:3", "PMID:4", "PMID:5"],
                          "status": ["", "", "", "", "gone"], "final": ["", "include", "", "", ""],
                          "priority": ["2", "", "", "1", "3"], "title": list("abcde"), "authors": [[]] * 5,
                          "year": [2020] * 5, "searches": [["aud"]] * 5, "suggestion": [""] * 5,
                          "suggestion_reason": [""] * 5})
    state = SimpleNamespace(updates={"title_abstract": SimpleNamespace(sheet=sheet, new_ids=["PMID:3"])},
                            sheet=lambda stage: sheet)
    table = notebook.awaiting_table(state)
    assert table["record_id"].tolist() == ["PMID:4", "PMID:1", "PMID:3"]  # ranked, then unranked
    assert table["new"].tolist() == [False, False, True]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_that_bound_record_tables_declare_the_row_limit(path):
    """``-p table_rows N`` reaches every notebook that shows a record-level table."""
    from reviewkit import notebook

    nb = nbformat.read(path, as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    if "show_records(" in code:
        assert report.notebook_parameters(path).get("table_rows") == "int"
        assert f"table_rows: int = {notebook.ROWS_SHOWN}" in code
        assert code.count("show_records(") == code.count("rows=table_rows")


def test_paths_are_shown_relative_to_the_report_or_project(sample_review):
    from reviewkit import notebook

    assert notebook.where(sample_review, sample_review.exports / "screening") == "exports/screening"
    assert notebook.where(sample_review, sample_review.screening_dir) == "data/screening/sample"
    assert notebook.where(sample_review, "/somewhere/else/snapshots/mine") == "\u2026/snapshots/mine"


# --- whole runs (slow) ------------------------------------------------------------

@pytest.fixture(scope="module")
def canary_env():
    with pytest.MonkeyPatch.context() as env:
        env.setenv("NCBI_EMAIL", CANARY_EMAIL)
        env.setenv("NCBI_API_KEY", CANARY_KEY)
        yield


@pytest.fixture(scope="module")
def runs(tmp_path_factory, canary_env):
    """Three runs in one output root; each entry: (exit code, run folder, stderr). A count that falls
    is the scheduled live test's (a fourth full run here would cost the suite about 50 s)."""
    root = tmp_path_factory.mktemp("reports")
    newer = tmp_path_factory.mktemp("snapshots") / "newer"
    corpus = newer.parent / "records.jsonl"
    rows = list(read_jsonl(CORPUS))
    template = next(r for r in rows if r.get("pmid") and "aud" in r["retrieved_by"] and r["collection"] == "search")
    rows.append({**template, "pmid": NEW_PMID, "doi": None, "retrieved_by": ["aud"],
                 "title": "Ketamine for alcohol use disorder: a trial published after the sample was built"})
    corpus.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    build_sample(newer, corpus)

    results = []
    # sample; sample again (no change); newer snapshot (one new record)
    for extra in ([], [], ["-p", "snapshot", str(newer), "-p", "screening", "sample"]):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["run", "--no-progress", "--output", str(root), *extra])
        folders = sorted(p for p in root.iterdir() if p.is_dir())
        results.append((code, folders[-1], err.getvalue()))
    return root, results


@pytest.mark.slow
def test_every_notebook_runs_and_the_run_is_recorded(runs):
    _, results = runs
    code, folder, err = results[0]
    assert code == 0, err
    manifest = json.loads((folder / "run.json").read_text())
    assert manifest["status"] == "ok" and manifest["mode"] == "offline"
    assert [n["name"] for n in manifest["notebooks"]] == [p.name for p in NOTEBOOKS]
    assert manifest["snapshot"]["sample"] is True and manifest["parameters"]["snapshot"] == "data/snapshots/sample"
    assert set(manifest["searches"]) == {"aud", "oud", "cocaine", "gambling"}
    assert manifest["counts"]["studies included"] > 0
    for nb in NOTEBOOKS:
        executed = nbformat.read(folder / "notebooks" / nb.name, as_version=4)
        errors = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
        assert not errors, f"{nb.name}: {errors}"
        text = json.dumps(executed)
        assert "SAMPLE DATA, NOT A COMPLETE PUBMED SEARCH" in text, f"{nb.name} shows no sample banner"


@pytest.mark.slow
def test_html_report_is_one_self_contained_file(runs):
    folder = runs[1][0][1]
    page = (folder / "index.html").read_text(encoding="utf-8")
    assert external_resources(page) == []
    assert "notebook.start(" not in page and "import itables" not in page  # code hidden
    assert len(re.findall(r'<img[^>]+src="data:image/png;base64,', page)) >= 2  # PRISMA diagram, forest plot
    for nb in NOTEBOOKS:
        assert f'href="#{report.part_anchor(nb.name)}"' in page and f'id="{report.part_anchor(nb.name)}"' in page
    assert page.count("_itables_2_9_1") >= 1 and page.count("This is the <code>init_notebook_mode</code>") <= 1
    for detail in ("Run parameters", "Versions", "biopython", "Snapshot", "What changed since the previous run"):
        assert detail in page


@pytest.mark.slow
def test_no_credential_in_any_output_file(runs):
    root, _ = runs
    leaked = [p for p in root.rglob("*") if p.is_file()
              and (CANARY_EMAIL.encode() in p.read_bytes() or CANARY_KEY.encode() in p.read_bytes())]
    assert leaked == []


@pytest.mark.slow
def test_exports_next_to_the_report(runs):
    _, results = runs
    exports = results[0][1] / "exports"
    manifest = json.loads((results[0][1] / "run.json").read_text())
    for name in ("prisma_flow.png", "prisma_flow.svg", "forest_01_aud_abstinence_control_randomized.png",
                 "forest_01_aud_abstinence_control_randomized.svg", "syntheses_overview.png", "syntheses.csv",
                 "summary_of_findings.xlsx", "records.csv", "records.xlsx", "extraction.csv", "extraction.xlsx",
                 "claims_audit.xlsx",
                 "screening/title_abstract.csv", "screening/full_text.xlsx", "included_studies.bib"):
        assert (exports / name).is_file(), name
    entries = rispy.load(exports / "included_studies.ris", encoding="utf-8")
    assert len(entries) == manifest["counts"]["reports included"]
    assert all(e.get("title") for e in entries)


@pytest.mark.slow
def test_rerun_on_the_same_snapshot_reports_no_change(runs):
    _, results = runs
    code, folder, err = results[1]
    assert code == 0, err
    changes = json.loads((folder / "run.json").read_text())["changes"]
    assert changes["previous_run"] == results[0][1].name
    assert changes["changed"] is False and changes["awaiting_screening"] == []
    assert "no change" in (folder / "index.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_newer_snapshot_carries_decisions_and_lists_new_records(runs):
    _, results = runs
    code, folder, err = results[2]
    assert code == 0, err
    manifest = json.loads((folder / "run.json").read_text())
    changes = manifest["changes"]
    assert changes["changed"] is True
    assert changes["searches"]["aud"]["new_pmids"] == [NEW_PMID]
    assert changes["searches"]["aud"]["count_after"] == changes["searches"]["aud"]["count_before"] + 1
    assert all(s["dropped_pmids"] == [] for s in changes["searches"].values())
    assert manifest["awaiting_screening"] == [f"PMID:{NEW_PMID}"]
    assert changes["counts"]["records awaiting screening"] == {"before": 0, "after": 1}

    # every decision in the screening folder is carried onto the run's sheet unchanged
    before = pd.read_csv(ROOT / "data" / "screening" / "sample" / "title_abstract.csv", dtype=str).fillna("")
    after = pd.read_csv(folder / "exports" / "screening" / "title_abstract.csv", dtype=str).fillna("")
    decided = ["record_id", "reviewer1", "reviewer2", "final", "exclusion_reason", "notes"]
    merged = before[decided].merge(after[decided], on="record_id", how="left", suffixes=("", "_now"))
    for col in decided[1:]:
        assert (merged[col] == merged[f"{col}_now"]).all(), col
    new_row = after[after["record_id"] == f"PMID:{NEW_PMID}"].iloc[0]
    assert new_row["final"] == "" and new_row["reviewer1"] == ""
    page = (folder / "index.html").read_text(encoding="utf-8")
    assert NEW_PMID in page and "Records awaiting screening: <strong>1</strong>" in page


@pytest.mark.slow
def test_notebook_runs_with_the_repository_root_as_working_directory(tmp_path):
    import papermill

    papermill.execute_notebook(str(NOTEBOOKS[0]), str(tmp_path / "out.ipynb"), kernel_name=report.KERNEL_NAME,
                               cwd=str(ROOT), parameters={"output_dir": str(tmp_path)}, progress_bar=False)
    assert (tmp_path / "exports" / "records.csv").is_file()


# --- the report in a browser --------------------------------------------------------

def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def headless(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--virtual-time-budget=10000", *args],
        capture_output=True, text=True, timeout=120,
    )


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="chromium not found (Debian package 'chromium'; .ci/run installs it)")
def test_report_renders_in_headless_chromium(runs, tmp_path):
    """Figures decode, itables' inlined JavaScript runs offline; the PRISMA diagram and forest plot are
    each cut from a screenshot of the page into <run>/screenshots/ for a person to look at."""
    from PIL import Image, ImageStat

    folder = runs[1][0][1]
    page = (folder / "index.html").read_text(encoding="utf-8")
    # A probe writes into the DOM, after load: each image's alt text, decoded width and place on the
    # page, the page height, and how many tables itables made interactive.
    probe = ("<script>window.addEventListener('load', () => setTimeout(() => {"
             "document.body.dataset.rkImages = JSON.stringify([...document.images].map(i => {"
             "const r = i.getBoundingClientRect();"
             "return [i.alt, i.naturalWidth, r.left, r.top + scrollY, r.width, r.height];}));"
             "document.body.dataset.rkHeight = document.documentElement.scrollHeight;"
             "document.body.dataset.rkTables = document.querySelectorAll('.dt-container').length;}, 500));</script>")
    probed = tmp_path / "probe.html"
    probed.write_text(page.replace("</body>", probe + "</body>"), encoding="utf-8")
    dom = headless(["--dump-dom", "--window-size=1280,1000", probed.as_uri()], tmp_path / "profile1").stdout
    images = {alt: rest for alt, *rest in json.loads(html.unescape(re.search(r'data-rk-images="([^"]*)"', dom).group(1)))}
    forest = next(alt for alt in images if alt.startswith("Forest plot: "))
    assert {"PRISMA 2020 flow diagram", "Overview of every synthesis"} <= set(images)
    assert all(natural > 100 for natural, *_ in images.values()), images
    assert int(re.search(r'data-rk-tables="(\d+)"', dom).group(1)) >= 5
    # One screenshot per figure, the page lifted to it: a full-page shot of a page this tall (about 29,000 px)
    # leaves bands unpainted in headless Chromium, and --screenshot ignores a scroll.
    shots = folder / "screenshots"
    shots.mkdir(exist_ok=True)
    for name, alt in (("prisma", "PRISMA 2020 flow diagram"), ("forest", forest), ("overview", "Overview of every synthesis")):
        _, left, top, width, h = images[alt]
        at = tmp_path / f"{name}.html"
        lift = f"<style>body {{ transform: translateY(-{max(0, int(top) - 40)}px); }}</style></body>"
        at.write_text(page.replace("</body>", lift), encoding="utf-8")
        shot = tmp_path / f"{name}.png"
        headless([f"--screenshot={shot}", f"--window-size=1280,{int(h) + 60}", at.as_uri()], tmp_path / f"profile-{name}")
        with Image.open(shot) as im:
            crop = im.crop((int(left) - 10, 0, int(left + width) + 10, int(h) + 45))
            crop.save(shots / f"{name}.png")
            # rendered, not blank: a figure of boxes, lines and text has contrast
            assert ImageStat.Stat(crop.convert("L")).stddev[0] > 20, name


# Every part of the report: the index, then each notebook.
PARTS = ["index", *(report.part_anchor(nb.name) for nb in NOTEBOOKS)]
# What a reader must never see in a table cell: a Python or JSON repr, or a code label.
RAW = re.compile(r"^(None|nan|NaN|NaT|<NA>|True|False|true|false|null)$|^\[.*\]$|^[a-z]+(_[a-z]+)+$")


def by_part(page: str) -> dict[str, list]:
    """The visible table cells of a rendered page, per part (the index first), as (element, text)."""
    from lxml import html as lxml_html

    part, cells = "index", {}
    for el in lxml_html.fromstring(page).iter():
        if not isinstance(el.tag, str):
            continue
        if "rk-part-start" in (el.get("class") or ""):
            part = el.get("id")
        elif el.tag in ("td", "th") and not any(a.get("hidden") is not None or "display: none" in (a.get("style") or "")
                                                for a in el.iterancestors()):
            cells.setdefault(part, []).append((el, " ".join(el.text_content().split())))
    return cells


@pytest.fixture(scope="module")
def report_dom(runs, tmp_path_factory):
    """The sample report as Chromium leaves it after its scripts ran (interactive tables built)."""
    folder = runs[1][0][1]
    return headless(["--dump-dom", (folder / "index.html").as_uri()], tmp_path_factory.mktemp("profile")).stdout


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="chromium not found (Debian package 'chromium'; .ci/run installs it)")
@pytest.mark.parametrize("part", PARTS)
def test_no_visible_cell_reads_none_nan_true_false_or_a_list(report_dom, part):
    """Issue 14: missing values read as an em dash (or words), booleans as yes/no, lists as text, labels as
    words. A name shown as code (a parameter name in the index) is a name, not a label."""
    cells = by_part(report_dom)[part]
    assert len(cells) > 5
    raw = sorted({text for el, text in cells if RAW.search(text) and not el.findall(".//code")})
    assert raw == []


@pytest.mark.slow
@pytest.mark.parametrize("part", PARTS)
def test_no_path_of_this_machine_in_the_report(runs, part):
    """The report is e-mailed: paths show relative to the report folder or the project."""
    root, results = runs
    page = (results[1][1] / "index.html").read_text(encoding="utf-8")
    starts = {"index": 0, **{report.part_anchor(nb.name): page.index(f'id="{report.part_anchor(nb.name)}"')
                             for nb in NOTEBOOKS}}
    ends = sorted(starts.values())[1:] + [len(page)]
    text = dict(zip(sorted(starts, key=starts.get), (page[a:b] for a, b in zip(sorted(starts.values()), ends))))[part]
    for machine in (str(ROOT), str(root)):  # the checkout, and the output root (a temporary folder)
        assert machine not in text


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="chromium not found (Debian package 'chromium'; .ci/run installs it)")
def test_printed_report_holds_every_claim_extraction_row_and_figure(runs, tmp_path):
    """Chromium's print-to-PDF of the sample report (reviewkit run --pdf): every claim id, every row of the
    extraction table, both figures, and the PRISMA diagram at its natural size (so at least 8 pt)."""
    import pypdf
    import yaml

    from reviewkit.notebook import natural_width

    folder = runs[1][0][1]
    pdf = pypdf.PdfReader(report.write_pdf(folder / "index.html", tmp_path / "report.pdf"))
    placed = []  # (pixels wide, points wide on the page) of every image drawn

    def image(op, args, cm, tm):
        if op == b"Do":
            placed.append(cm[0])

    pages = [page.extract_text(visitor_operand_before=image) for page in pdf.pages]
    text = "\n".join(pages)
    claims = yaml.safe_load((ROOT / "data" / "article" / "claims.yml").read_text(encoding="utf-8"))["claims"]
    assert [c["id"] for c in claims if c["id"] not in text] == []

    def squash(value) -> str:
        return re.sub(r"[\s_]+", "", str(value))

    rows = pd.read_csv(ROOT / "data" / "extraction" / "outcomes.csv", dtype=str, keep_default_na=False)
    printed = squash(text)
    keys = rows[["study", "outcome_short"]].apply(lambda r: squash("".join(r)), axis=1)
    missing = [key for key, n in keys.value_counts().items() if printed.count(key) < n]
    assert len(rows) > 20 and missing == []

    images = [im for page in pdf.pages for im in page.images]
    assert len(images) >= 2 and len(placed) == len(images)  # the PRISMA diagram and the forest plot
    prisma = folder / "exports" / "prisma_flow.png"
    (width,) = [w for im, w in zip(images, placed) if im.image.size[0] == int.from_bytes(prisma.read_bytes()[16:20], "big")]
    assert width == pytest.approx(natural_width(prisma) * 72 / 96, rel=0.01)  # printed at 100 %


# --- issue 13: no script in a report -------------------------------------------------

IMG = "<img src=x onerror=document.body.dataset.pwned=1>"  # also a folder name: no slash
XSS = "<img src=x onerror=\"document.body.dataset.pwned='img'\"><script>document.body.dataset.pwned='script'</script>"


def hostile_project(root: Path) -> None:
    """The worked example with an XSS payload in every text a report shows: the protocol's title, labels and
    an exclusion reason; the snapshot's folder name, note, search labels and dates run; titles from other
    methods; the screening sheets' reasons and notes; the extraction table's text; the article's quotes."""
    import yaml

    main(["init", str(root), "--example", "ketamine"])
    data = root / "data"
    protocol = yaml.safe_load((data / "protocol.yml").read_text(encoding="utf-8"))
    protocol["review"]["title"] = "Ketamine " + XSS
    for search in protocol["searches"].values():
        search["label"] += " " + XSS
    reason = "animal study"
    for stage in ("title_abstract_reasons", "full_text_reasons"):
        protocol["screening"][stage] = [r + " " + XSS if r == reason else r for r in protocol["screening"][stage]]
    (data / "protocol.yml").write_text(yaml.safe_dump(protocol, allow_unicode=True, sort_keys=False), encoding="utf-8")
    snapshot = data / "snapshots" / IMG
    shutil.move(data / "snapshots" / "sample", snapshot)
    shutil.move(data / "screening" / "sample", data / "screening" / IMG)
    info = json.loads((snapshot / "snapshot.json").read_text(encoding="utf-8"))
    info["note"] += " " + XSS
    (snapshot / "snapshot.json").write_text(json.dumps(info), encoding="utf-8")
    for path in (snapshot / "searches").glob("*.json"):
        search = json.loads(path.read_text(encoding="utf-8"))
        search["label"], search["date_run"] = search["label"] + " " + XSS, XSS
        path.write_text(json.dumps(search), encoding="utf-8")
    for path in (snapshot / "other_methods").glob("*.ris"):
        path.write_text(path.read_text(encoding="utf-8").replace("TI  - ", "TI  - " + XSS + " ", 3), encoding="utf-8")
    for stage in ("title_abstract", "full_text"):
        path = data / "screening" / IMG / f"{stage}.csv"
        sheet = pd.read_csv(path, dtype=str, keep_default_na=False)
        sheet["exclusion_reason"] = sheet["exclusion_reason"].replace(reason, reason + " " + XSS)
        sheet["notes"] = XSS
        sheet.to_csv(path, index=False)
    path = data / "extraction" / "outcomes.csv"
    outcomes = pd.read_csv(path, dtype=str, keep_default_na=False)
    for column in ("source", "timepoint", "outcome_short", "not_pooled_reason"):
        outcomes[column] = XSS + " " + outcomes[column]
    outcomes.to_csv(path, index=False)
    path = data / "article" / "claims.yml"
    claims = yaml.safe_load(path.read_text(encoding="utf-8"))
    for claim in claims["claims"]:
        if len(f"{XSS} {claim['quote']}".split()) <= 25:  # a quote is at most 25 words
            claim["quote"] = f"{XSS} {claim['quote']}"
    path.write_text(yaml.safe_dump(claims, allow_unicode=True, sort_keys=False), encoding="utf-8")


@pytest.mark.slow
@pytest.mark.skipif(chromium() is None, reason="chromium not found (Debian package 'chromium'; .ci/run installs it)")
def test_a_report_of_hostile_text_runs_no_script_in_chromium(tmp_path):
    """Issue 13: every text field of the project holds <img onerror> and <script> payloads, and a -p value
    names a folder that is one; the report shows them all as text and Chromium runs none of them."""
    project = tmp_path / "hostile"
    hostile_project(project)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["run", "--no-progress", "--project", str(project), "--output", str(tmp_path / "reports"),
                     "-p", "snapshot", IMG, "-p", "screening", IMG])
    assert code == 0, err.getvalue()[-3000:]
    (folder,) = (tmp_path / "reports").iterdir()
    page = (folder / "index.html").read_text(encoding="utf-8")
    assert "<img src=x" not in page and "<script>document.body" not in page
    dom = headless(["--dump-dom", (folder / "index.html").as_uri()], tmp_path / "profile").stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    assert "pwned" not in body  # no payload ran
    assert not re.search(r"<img[^>]+src=\"x\"", dom) and "<script>document.body" not in dom  # none became markup
    cells = by_part(dom)
    shown = {part: sum(XSS in text or IMG in text for _, text in found) for part, found in cells.items()}
    # the payloads reached every part that shows tables (as text), and the index
    assert all(shown.get(part) for part in ["index", *(report.part_anchor(nb.name) for nb in NOTEBOOKS[:5])]), shown


# --- scheduled reruns (the cron recipe; the CI workflow runs the same script) --------

SCRIPT = ROOT / "scripts" / "living-review.sh"


def script_env(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("NCBI_EMAIL", "NCBI_API_KEY", "REVIEWKIT_EUTILS_URL")}
    env.update(REVIEWKIT_REPORTS=str(tmp_path / "reports"), REVIEWKIT_BIN=str(Path(sys.executable).parent / "reviewkit"))
    env.update(extra)
    return env


def living_review(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=900)


def test_scheduled_script_refuses_to_run_without_an_email(tmp_path):
    proc = living_review(script_env(tmp_path))
    assert proc.returncode == 2
    assert "NCBI_EMAIL is not set" in proc.stderr
    assert not (tmp_path / "reports").exists()


def test_scheduled_script_reads_credentials_from_a_file(tmp_path):
    missing = living_review(script_env(tmp_path, REVIEWKIT_ENV_FILE=str(tmp_path / "nope.env")))
    assert missing.returncode == 2 and "cannot read REVIEWKIT_ENV_FILE" in missing.stderr
    env_file = tmp_path / "ncbi.env"
    env_file.write_text(f"NCBI_EMAIL={CANARY_EMAIL}\n")
    # a reviewkit that only reports what it was given stands in for the real run
    fake = tmp_path / "reviewkit"
    fake.write_text('#!/bin/sh\necho "email=$NCBI_EMAIL args=$*"\n')
    fake.chmod(0o755)
    proc = living_review(script_env(tmp_path, REVIEWKIT_ENV_FILE=str(env_file), REVIEWKIT_BIN=str(fake)))
    assert proc.returncode == 0
    assert f"email={CANARY_EMAIL}" in proc.stdout and "args=run --live --no-progress --project " in proc.stdout


def test_ci_workflow_runs_the_script_on_a_schedule_with_secrets_from_the_environment():
    import yaml

    flow = yaml.safe_load((ROOT / ".github" / "workflows" / "living-review.yml").read_text())
    assert flow[True]["schedule"][0]["cron"]  # YAML reads the key `on` as True
    steps = flow["jobs"]["rerun"]["steps"]
    (run,) = [s for s in steps if s.get("id") == "run"]
    assert run["run"] == "scripts/living-review.sh"
    assert run["env"]["NCBI_EMAIL"] == "${{ secrets.NCBI_EMAIL }}"
    assert run["env"]["NCBI_API_KEY"] == "${{ secrets.NCBI_API_KEY }}"
    kept = [s for s in steps if "report" in s.get("name", "").lower() and "always()" in s.get("if", "")]
    assert any(s.get("uses", "").startswith("actions/upload-artifact") for s in kept)
    assert os.access(SCRIPT, os.X_OK)


@pytest.mark.slow
def test_scheduled_live_run_keeps_dated_reports_and_fails_loudly(tmp_path):
    """Live runs against the loopback E-utilities emulator: a dated report per run, no credential
    in any file, exit 3 naming the search when its count falls, exit 2 naming the notebook when
    PubMed cannot be reached."""
    from reviewkit.testing.emulator import Emulator, synthetic_records

    protocol = PROTOCOL
    records = [r for i, key in enumerate(protocol.searches)
               for r in synthetic_records(3, terms=[key], first_pmid=91_000_001 + 100 * i, seed=i)]
    aliases = {protocol.query(key): key for key in protocol.searches}
    reports = tmp_path / "reports"
    with Emulator(records, aliases=aliases) as emu:
        env = script_env(tmp_path, NCBI_EMAIL=CANARY_EMAIL, NCBI_API_KEY=CANARY_KEY,
                         REVIEWKIT_EUTILS_URL=emu.base_url)
        first = living_review(env)
        assert first.returncode == 0, first.stderr[-3000:]
        emu.remove_records([91_000_001])  # PubMed "loses" a record of the aud search
        second = living_review(env)
    assert second.returncode == 3, second.stderr[-3000:]
    assert "search 'aud': count fell from 3 to 2" in second.stderr and "91000001" in second.stderr
    assert "living-review: error: reviewkit run exited with status 3" in second.stderr

    dated = sorted(p for p in reports.iterdir() if p.is_dir())
    assert len(dated) == 2 and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d{6}Z(-\d+)?", p.name) for p in dated)
    for folder in dated:
        manifest = json.loads((folder / "run.json").read_text())
        assert manifest["mode"] == "live" and manifest["snapshot"]["sample"] is False
        assert (folder / "index.html").is_file() and (folder / "snapshot" / "snapshot.json").is_file()
    assert json.loads((dated[0] / "run.json").read_text())["counts"]["records identified from databases"] == 12
    # the run whose count fell still wrote its report, and says so
    assert json.loads((dated[1] / "run.json").read_text())["status"] == "count-drop"
    assert "Check the searches" in (dated[1] / "index.html").read_text(encoding="utf-8")
    # Nothing is screened in data/screening/live/ yet, so no study is included and nothing is pooled.
    page = (dated[0] / "index.html").read_text(encoding="utf-8")
    assert "No study is included at full text" in page and "No synthesis has a study with usable numbers" in page
    leaked = [p for p in reports.rglob("*") if p.is_file()
              and (CANARY_EMAIL.encode() in p.read_bytes() or CANARY_KEY.encode() in p.read_bytes())]
    assert leaked == []

    # the emulator is gone: the search cannot reach PubMed
    down = living_review({**env, "REVIEWKIT_EUTILS_URL": emu.base_url})
    assert down.returncode == 2
    assert re.search(r"reviewkit run: error: esearch failed \d+ times, last with URLError", down.stderr)
    assert "retry 1 of" in down.stderr  # each retry is logged
    assert CANARY_KEY not in down.stderr + down.stdout and CANARY_EMAIL not in down.stderr + down.stdout
