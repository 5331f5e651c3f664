import base64
import json
import re
from pathlib import Path

import nbformat
import pytest

from reviewkit import report, runs
from reviewkit.cli import main
from reviewkit.errors import ReviewkitError

from helpers import PROTOCOL

# A 1x1 PNG, as a notebook output carries it.
PNG = base64.b64encode(
    bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                  "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082")
).decode()

EXTERNAL = re.compile(
    r"""<script[^>]+src\s*=\s*["']?https?:|<link[^>]+href\s*=\s*["']?https?:|@import\s+(url\()?["']?https?:"""
    r"""|url\(\s*["']?https?:|<img[^>]+src\s*=\s*["']?https?:|<iframe[^>]+src\s*=\s*["']?https?:""",
    re.I,
)


def external_resources(page: str) -> list[str]:
    """Scripts, styles, fonts, images or frames the page would fetch from the internet."""
    return EXTERNAL.findall(page)


def write_nb(path: Path, *sources: str, params: str = "x = 1") -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]})]
    nb.cells += [nbformat.v4.new_markdown_cell(s[3:]) if s.startswith("md:") else nbformat.v4.new_code_cell(s)
                 for s in sources]
    nbformat.write(nb, path)
    return path


def executed_nb(path: Path, html_outputs=(), image=False) -> Path:
    """A notebook as papermill leaves it, with given outputs, without running a kernel."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# Part {path.stem}"),
                nbformat.v4.new_code_cell("SECRET_CODE_MARKER = 1")]
    outs = [nbformat.v4.new_output("display_data", data={"text/html": h}) for h in html_outputs]
    outs.append(nbformat.v4.new_output("stream", name="stderr", text="fetch aud: 100%|####|"))
    if image:
        outs.append(nbformat.v4.new_output("display_data", data={"image/png": PNG}))
    nb.cells[1].outputs = outs
    nbformat.write(nb, path)
    return path


INFO = {
    "title": "Ketamine for addictive disorders: review report", "run_id": "2026-01-01T000000Z", "mode": "offline",
    "snapshot": "sample", "sample_note": "A curated sample.",
    "parameters": {"offline": True, "searches": ["aud", "oud"]}, "snapshot_info": {"name": "sample"},
    "versions": {"python": "3.11"}, "problems": [],
}


# --- parameters --------------------------------------------------------------

DECLARED = {"a.ipynb": {"searches": "list", "offline": "bool", "n": "int", "s": "str", "hksj": "Optional[bool]"}}


def test_parameters_are_read_as_the_declared_type():
    got = report.parse_parameters([("searches", "[aud, oud]"), ("offline", "false"), ("n", "3"), ("s", "x y"),
                                   ("hksj", "none")], DECLARED)
    assert got == {"searches": ["aud", "oud"], "offline": False, "n": 3, "s": "x y", "hksj": None}


@pytest.mark.parametrize("name", ["api_key", "NCBI_EMAIL", "token"])
def test_credentials_are_refused_as_parameters(name):
    with pytest.raises(ReviewkitError, match="credential"):
        report.parse_parameters([(name, "abc")], DECLARED)


def test_bad_parameter_name_is_named():
    with pytest.raises(ReviewkitError, match="'2x'"):
        report.parse_parameters([("2x", "1")], DECLARED)


# --- execution ---------------------------------------------------------------

def test_kernel_must_start_this_python(tmp_path):
    import sys

    assert report.runs_this_python("python") and report.runs_this_python(sys.executable)
    assert not report.runs_this_python(str(tmp_path / "other" / "bin" / "python3"))
    report.check_kernel()  # the environment's own python3 kernel



def test_first_failure_stops_the_run_naming_notebook_and_cell(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    first = write_nb(src / "01_ok.ipynb", "y = x + 1")
    second = write_nb(src / "02_bad.ipynb", "md:# Bad", "z = 1", "raise RuntimeError('search failed: HTTP 500')")
    third = write_nb(src / "03_never.ipynb", "print('never')")
    with pytest.raises(ReviewkitError) as err:
        report.execute_notebooks([first, second, third], tmp_path / "out", {"x": 5}, progress=False,
                                 log=lambda m: None)
    msg = str(err.value)
    assert "02_bad.ipynb" in msg and "cell 4 " in msg and "RuntimeError" in msg and "search failed" in msg
    assert "raise RuntimeError" in msg  # the cell's first line, so the reader can find it
    assert (tmp_path / "out" / "01_ok.ipynb").is_file()
    assert not (tmp_path / "out" / "03_never.ipynb").exists()
    # the parameter reached the first notebook
    injected = nbformat.read(tmp_path / "out" / "01_ok.ipynb", as_version=4).cells[1].source
    assert "x = 5" in injected


def test_unknown_parameter_is_refused_before_anything_runs(tmp_path):
    nb = write_nb(tmp_path / "01_a.ipynb", "pass")
    with pytest.raises(ReviewkitError, match="unknown parameter.*serches.*the notebooks take: x"):
        report.execute_notebooks([nb], tmp_path / "out", {"serches": ["aud"]}, log=lambda m: None)
    assert not (tmp_path / "out").exists()


# --- HTML --------------------------------------------------------------------

def test_report_html_is_self_contained_with_code_hidden(tmp_path):
    itables_like = "<script type='module'>window._lib = 1</script><div>bundle</div>"
    parts = [executed_nb(tmp_path / "01_search.ipynb", [itables_like, "<b>table one</b>"], image=True),
             executed_nb(tmp_path / "02_screening.ipynb", [itables_like, "<b>table two</b>"])]
    out = report.write_report(tmp_path / "index.html", {**INFO, "problems": ["search 'aud': count fell"]}, parts)
    page = out.read_text()
    assert external_resources(page) == []
    assert "SECRET_CODE_MARKER" not in page  # code cells hidden
    assert f"data:image/png;base64,{PNG}" in page  # image embedded
    assert page.count("window._lib = 1") == 1  # the library script is loaded once for all parts
    assert "table one" in page and "table two" in page
    assert "fetch aud" not in page  # progress bars are not for readers
    # the index links each part, which has the anchor
    for part in parts:
        anchor = report.part_anchor(part.name)
        assert f'href="#{anchor}"' in page and f'id="{anchor}"' in page
    assert "Part 01_search" in page  # the part title in the contents
    assert "<title>Ketamine for addictive disorders: review report</title>" in page
    assert "SAMPLE DATA, NOT A COMPLETE PUBMED SEARCH" in page
    assert "<td>aud, oud</td>" in page
    assert re.search(r"Check the searches: search (&#x27;|&#39;|')aud(&#x27;|&#39;|'): count fell", page)


PAYLOAD = '<img src=x onerror="document.title=1"><script>document.title=2</script>'


def test_index_escapes_every_field_and_shows_words(tmp_path):
    """Whatever a snapshot, protocol or -p value holds reaches the index as text (reviewkit.markup)."""
    parts = [executed_nb(tmp_path / "01_search.ipynb", ["<b>table</b>"])]
    changes = runs.compare(manifest(PAYLOAD, **{"aud": ["1", PAYLOAD]}),
                           {**manifest("r2", aud=["1"]), "awaiting_screening": [PAYLOAD]})
    info = {"title": PAYLOAD, "run_id": PAYLOAD, "started": PAYLOAD, "mode": PAYLOAD, "snapshot": PAYLOAD,
            "sample_note": PAYLOAD, "problems": [PAYLOAD], "changes_html": runs.changes_html(changes),
            "parameters": {"searches": [PAYLOAD, "oud"], PAYLOAD: PAYLOAD, "offline": True, "hksj": None},
            "snapshot_info": {"note": PAYLOAD}, "versions": {PAYLOAD: PAYLOAD}}
    page = report.write_report(tmp_path / "index.html", info, parts).read_text()
    assert "<img src=x" not in page and "<script>document" not in page
    assert page.count("&lt;img src=x onerror=") >= 10
    assert "<td>yes</td>" in page and "<td>\u2014</td>" in page and "<td>&lt;img" in page  # offline, hksj, a list
    assert "None" not in page.split("<main>")[1] and "True" not in page.split("<main>")[1]


def test_no_path_of_this_machine_in_the_index(tmp_path):
    parts = [executed_nb(tmp_path / "01_search.ipynb")]
    elsewhere = "/home/someone/private/snapshots/mine"
    info = {**INFO, "snapshot": elsewhere,
            "parameters": {"output_dir": str(tmp_path), "exports": str(tmp_path / "exports"), "snapshot": elsewhere}}
    page = report.write_report(tmp_path / "index.html", info, parts).read_text()
    assert "/home/someone" not in page and str(tmp_path) not in page
    assert "\u2026/snapshots/mine" in page and "<td>exports</td>" in page and "<td>.</td>" in page
    assert report.shown_path("data/snapshots/sample") == "data/snapshots/sample"


def test_widget_outputs_are_not_part_of_the_report(tmp_path):
    nb = executed_nb(tmp_path / "01_search.ipynb", ["<b>kept</b>"])
    node = nbformat.read(nb, as_version=4)
    node.cells[1].outputs.append(nbformat.v4.new_output(
        "display_data", data={report.WIDGET_MIME: {"model_id": "abc", "version_major": 2, "version_minor": 0},
                              "text/plain": "screening state:  50%|#####     | 2/4"}))
    nbformat.write(node, nb)
    merged = report.merge_notebooks("<p>index</p>", [nb])
    outputs = [o for c in merged.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if report.WIDGET_MIME in o.get("data", {})]
    assert any("kept" in o.get("data", {}).get("text/html", "") for o in outputs)


def test_pdf_needs_chromium_and_says_so_plainly(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no Chromium anywhere
    monkeypatch.delenv(report.CHROMIUM_ENV, raising=False)
    assert report.find_chromium() is None
    with pytest.raises(ReviewkitError, match="Chromium is not installed.*apt install chromium"):
        report.require_chromium()
    monkeypatch.setenv(report.CHROMIUM_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(ReviewkitError, match="is not an executable"):
        report.write_pdf(tmp_path / "index.html")
    monkeypatch.delenv(report.CHROMIUM_ENV)
    # `reviewkit run --pdf` says so before any notebook runs or any run folder exists
    assert main(["run", "--pdf", "--no-progress", "--output", str(tmp_path / "reports")]) == 2
    assert "Chromium is not installed" in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()


def test_external_resource_check_catches_cdn_scripts():
    assert external_resources('<script src="https://cdn.example/x.js"></script>')
    assert external_resources('<link rel="stylesheet" href="http://fonts.example/a.css">')
    assert external_resources("<style>@font-face{src:url('https://f.example/a.woff')}</style>")
    assert not external_resources('<a href="https://pubmed.ncbi.nlm.nih.gov/1/">PubMed</a>')


# --- manifests and changes ---------------------------------------------------

def manifest(run_id, status="ok", **counts):
    return {"run_id": run_id, "status": status,
            "searches": {k: {"count": len(v), "pmids": v} for k, v in counts.items()},
            "counts": {"records": sum(len(v) for v in counts.values())}, "awaiting_screening": []}


def test_previous_manifest_skips_failed_and_unfinished_runs(tmp_path):
    for m in (manifest("2026-01-01T000000Z"), manifest("2026-01-02T000000Z", status="failed")):
        runs.write_manifest(runs.make_run_dir(tmp_path, m["run_id"]), m)
    runs.make_run_dir(tmp_path, "2026-01-03T000000Z")  # interrupted: no run.json
    assert runs.previous_manifest(tmp_path, before="2026-01-04T000000Z")["run_id"] == "2026-01-01T000000Z"
    assert runs.previous_manifest(tmp_path, before="2026-01-01T000000Z") is None


def test_same_second_runs_get_distinct_folders(tmp_path):
    a = runs.make_run_dir(tmp_path, "2026-01-01T000000Z")
    b = runs.make_run_dir(tmp_path, "2026-01-01T000000Z")
    assert a != b and b.name == "2026-01-01T000000Z-1"


def test_compare_lists_new_and_dropped_records_and_count_changes():
    before = manifest("r1", aud=["1", "2"], oud=["5"])
    after = manifest("r2", aud=["2", "3", "4"], oud=["5"])
    after["awaiting_screening"] = ["PMID:3", "PMID:4"]
    ch = runs.compare(before, after)
    assert ch["previous_run"] == "r1" and ch["changed"]
    assert ch["searches"]["aud"] == {"count_before": 2, "count_after": 3, "new_pmids": ["3", "4"],
                                     "dropped_pmids": ["1"]}
    assert ch["searches"]["oud"]["new_pmids"] == [] and ch["counts"] == {"records": {"before": 3, "after": 4}}
    text = "\n".join(runs.changes_text(ch))
    assert "search aud: 2 -> 3 records, 2 new, 1 dropped" in text and "awaiting screening: 2" in text
    assert runs.count_drops(ch) == []


def test_a_run_limited_to_some_searches_is_compared_on_those_only():
    limited = {**manifest("r2", aud=["1"]), "parameters": {"searches": ["aud"]}}
    ch = runs.compare(manifest("r1", aud=["1"], oud=["5"]), limited)
    assert list(ch["searches"]) == ["aud"] and runs.count_drops(ch) == []


def test_same_data_reports_no_change():
    ch = runs.compare(manifest("r1", aud=["1"]), manifest("r2", aud=["1"]))
    assert not ch["changed"]
    assert "no change" in runs.changes_html(ch)


def test_the_index_lists_at_most_a_hundred_ids_in_one_place_and_says_where_the_rest_are():
    many = [f"{n:05d}" for n in range(1, 251)]
    ch = runs.compare(manifest("r1", aud=[]), {**manifest("r2", aud=many), "awaiting_screening": many})
    page = str(runs.changes_html(ch))
    assert page.count(", 00100 and 150 more (run.json lists them all)") == 2  # new PMIDs, awaiting screening
    assert "00101" not in page and "Records awaiting screening: <strong>250</strong>" in page
    few = runs.changes_html(runs.compare(manifest("r1", aud=["1"]), {**manifest("r2", aud=["1", "2"]),
                                                                      "awaiting_screening": ["PMID:2"]}))
    assert "<td>2</td>" in few and "(PMID:2)" in few and "more" not in few


def test_count_drop_is_a_problem_unless_allowed():
    ch = runs.compare(manifest("r1", aud=["1", "2", "3"], oud=["5"]), manifest("r2", aud=["1"]))
    problems = runs.count_drops(ch)
    assert any("'aud': count fell from 3 to 1" in p and "2, 3" in p for p in problems)
    assert any("'oud' ran in r1 but not in this run" in p for p in problems)
    assert runs.count_drops(runs.compare(manifest("r1", aud=["1", "2"]), manifest("r2", aud=["1"])), allowed=1) == []


# --- the command -------------------------------------------------------------

def test_run_refuses_credentials_and_reserved_parameters(tmp_path, capsys):
    assert main(["run", "--output", str(tmp_path), "-p", "api_key", "x"]) == 2
    assert "credential" in capsys.readouterr().err
    assert main(["run", "--output", str(tmp_path), "-p", "output_dir", "x"]) == 2
    assert "--output" in capsys.readouterr().err


def test_a_missing_snapshot_is_refused_before_a_run_folder_exists(tmp_path, capsys):
    code = main(["run", "--no-progress", "--output", str(tmp_path), "-p", "snapshot", str(tmp_path / "nowhere")])
    assert code == 2
    assert "nowhere does not exist" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_failed_run_leaves_a_failed_manifest(tmp_path, capsys):
    # A protocol without the 'retention' outcome domain: parts 1-3 run, the extraction (part 4) fails.
    protocol = tmp_path / "protocol.yml"
    protocol.write_text(PROTOCOL.path.read_text(encoding="utf-8").replace(
        "  retention: {label: Treatment retention, favourable: higher}\n", ""), encoding="utf-8")
    out = tmp_path / "out"
    code = main(["run", "--no-progress", "--output", str(out), "--protocol", str(protocol)])
    assert code == 2
    err = capsys.readouterr().err
    assert "04_meta_analysis.ipynb" in err and "'outcome_domain': 'retention' is not one of" in err
    (manifest_path,) = out.glob("*/run.json")
    saved = json.loads(manifest_path.read_text())
    assert saved["status"] == "failed" and "04_meta_analysis.ipynb" in saved["error"]
    assert not (manifest_path.parent / "index.html").exists()
