"""The screening app, driven through its widget objects and its session (no browser): decisions land in
the sheets at once, undo, a person's save between two decisions is kept, hostile titles are escaped,
keyboard shortcuts, priority order, maybe, random samples and stopping guidance."""

import json
import shutil
from html import unescape

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reviewkit.errors import ProtocolError, ReviewkitError
from reviewkit.prioritise import with_priority
from reviewkit.protocol import load_protocol
from reviewkit.review import Review
from reviewkit.screening import build_sheet, read_sheet, write_sheet
from reviewkit.screening_app import (
    KEYS,
    LOG_FILE,
    ScreeningApp,
    ScreeningSession,
    highlight,
    maybe_mark,
    protocol_terms,
)

from helpers import EXAMPLE, ROOT, SAMPLE_DIR, SAMPLE_SCREENING

TA = ("animal study", "review or meta-analysis", "other")
FT = ("wrong population", "other")
INCLUDE_TERMS = ("ketamine", "alcohol use disorder")
CUES = ("rats", "review")
HOSTILE = '<script>alert(1)</script> Ketamine & <img src=x onerror=alert(2)> in rats'

TEXTS = [
    ("Ketamine for alcohol use disorder: a randomized trial", "Ketamine reduced heavy drinking days.", ""),
    ("Ketamine in rats: tolerance to ethanol", "Rats were given ketamine.", "exclude"),
    ("A review of ketamine for addiction", "We reviewed trials.", "exclude"),
    ("Esketamine and cocaine use: a case report", "One patient.", "check"),
    ("Ketamine-assisted psychotherapy for heroin dependence", "Abstinence at one year.", ""),
    (HOSTILE, "An abstract with <b>tags</b> & ampersands.", ""),
]


def records(texts=TEXTS):
    return pd.DataFrame([{"record_id": f"PMID:{i}", "source": "PubMed", "title": t, "abstract": a,
                          "authors": ["Doe J"], "journal": "J", "year": 2020, "publication_types": ["Journal Article"],
                          "searches": ["aud"], "is_human": True, "is_animal": False}
                         for i, (t, a, _) in enumerate(texts, 1)])


_BUILT: dict = {}


def make_folder(tmp_path, stage="title_abstract", texts=TEXTS):
    """A screening folder holding one sheet of ``texts`` (built once per stage and texts, then copied)."""
    key = (stage, tuple(texts))
    if key not in _BUILT:
        sheet = build_sheet(records(texts), stage, ("ketamine", "esketamine"))
        sheet["suggestion"] = [h for _, _, h in texts]  # the tiers the tests rely on
        sheet["suggestion_reason"] = ["hint" if h else "" for _, _, h in texts]
        built = tmp_path / "built"
        write_sheet(built, stage, with_priority(sheet))
        _BUILT[key] = {p.name: p.read_bytes() for p in built.iterdir() if p.is_file()}
    folder = tmp_path / "screening"
    folder.mkdir()
    for name, data in _BUILT[key].items():
        (folder / name).write_bytes(data)
    return folder


def session(folder, stage="title_abstract", reviewer="reviewer1", **kw):
    return ScreeningSession(folder, stage, reviewer, TA if stage == "title_abstract" else FT,
                            include_terms=INCLUDE_TERMS, exclusion_cues=CUES, **kw)


def app_for(folder, **kw):
    return ScreeningApp(session=session(folder, **kw))


def on_disk(folder, stage="title_abstract"):
    """The sheet as the files hold it (CSV and XLSX combined), and each file alone."""
    both = read_sheet(folder, stage, TA if stage == "title_abstract" else FT).set_index("record_id")
    csv = pd.read_csv(folder / f"{stage}.csv", dtype=str, keep_default_na=False).set_index("record_id")
    xlsx = pd.read_excel(folder / f"{stage}.xlsx", dtype=str, keep_default_na=False, engine="calamine").set_index("record_id")
    return both, csv, xlsx


def test_buttons_write_each_decision_at_once(tmp_path):
    folder = make_folder(tmp_path)
    app = app_for(folder)
    first = app.session.current
    app.note.value = "clear RCT"
    app.buttons["include"].click()
    both, csv, _ = on_disk(folder)
    for table in (both, csv):
        assert table.loc[first, "reviewer1"] == "include"
        assert table.loc[first, "notes"] == "reviewer1: clear RCT"
        assert table.loc[first, "final"] == "" and table.loc[first, "reviewer2"] == ""  # only the reviewer's column
    assert app.note.value == "" and app.session.current != first
    second = app.session.current
    app.reason.value = "animal study"
    app.buttons["exclude"].click()
    both, _, _ = on_disk(folder)
    assert both.loc[second, ["reviewer1", "exclusion_reason"]].tolist() == ["exclude", "animal study"]
    log = [json.loads(line) for line in (folder / LOG_FILE).read_text().splitlines()]
    assert [(e["record_id"], e["action"]) for e in log] == [(first, "include"), (second, "exclude")]
    assert "2 of 6 screened, 1 included, 1 excluded" in app.progress_html.value
    app.close()  # the XLSX copy catches up
    xlsx = on_disk(folder)[2]
    assert xlsx.loc[[first, second], "reviewer1"].tolist() == ["include", "exclude"]


def test_the_xlsx_copy_follows_without_ever_contradicting_the_csv(tmp_path):
    folder = make_folder(tmp_path)
    s = session(folder, xlsx_every=3)
    one, two = s.decide("include"), s.decide("exclude")
    both, csv, xlsx = on_disk(folder)
    assert csv.loc[[one, two], "reviewer1"].tolist() == ["include", "exclude"]
    assert both.loc[[one, two], "reviewer1"].tolist() == ["include", "exclude"]  # read as reviewkit reads
    assert xlsx.loc[[one, two], "reviewer1"].tolist() == ["", ""]  # not yet
    three = s.decide("include")  # the third: both files
    assert on_disk(folder)[2].loc[[one, two, three], "reviewer1"].tolist() == ["include", "exclude", "include"]
    s.undo()  # a cell the XLSX holds: written at once, or the XLSX would bring the decision back
    both, csv, xlsx = on_disk(folder)
    assert both.loc[three, "reviewer1"] == csv.loc[three, "reviewer1"] == xlsx.loc[three, "reviewer1"] == ""


def test_keyboard_shortcuts(tmp_path):
    assert KEYS == {"i": "include", "e": "exclude", "m": "maybe", "u": "undo", "n": "not_retrieved"}
    folder = make_folder(tmp_path)
    app = app_for(folder)
    first = app.session.current
    app.keys.value = "2"  # typed into the key box: the second reason
    assert app.reason.value == "review or meta-analysis" and app.keys.value == ""
    app.keys.value = "e"
    assert on_disk(folder)[0].loc[first, ["reviewer1", "exclusion_reason"]].tolist() == \
        ["exclude", "review or meta-analysis"]
    app.keys.value = "u"
    assert on_disk(folder)[0].loc[first, ["reviewer1", "exclusion_reason"]].tolist() == ["", ""]
    app.keys.value = "I"  # capitals too
    assert on_disk(folder)[0].loc[first, "reviewer1"] == "include"
    app.keys.value = "x"
    assert "no shortcut for 'x'" in unescape(app.status_html.value)
    app.keys.value = "n"  # not retrieved is a full-text decision: no shortcut (and no button) at title/abstract
    assert "no shortcut for 'n'" in unescape(app.status_html.value) and "not_retrieved" not in app.buttons
    assert on_disk(folder)[0].loc[first, "reviewer1"] == "include"
    second, third = app.session.queue()[:2]
    app.keys.value = "ie"  # typed faster than the box was cleared: both, in order
    assert on_disk(folder)[0].loc[[second, third], "reviewer1"].tolist() == ["include", "exclude"]


def test_undo_restores_the_cells_and_refuses_over_a_later_edit(tmp_path):
    folder = make_folder(tmp_path)
    s = session(folder)
    rid = s.decide("exclude", "other", "not about addiction")
    s.undo()
    both, csv, _ = on_disk(folder)
    for table in (both, csv):
        assert table.loc[rid, ["reviewer1", "exclusion_reason", "notes"]].tolist() == ["", "", ""]
    assert s.current == rid and s.undo() is None  # served again; nothing more to undo
    rid = s.decide("include")
    frame = pd.read_csv(folder / "title_abstract.csv", dtype=str, keep_default_na=False)
    frame.loc[frame["record_id"] == rid, "notes"] = "Anna: sure?"  # a person writes in the CSV meanwhile
    frame.to_csv(folder / "title_abstract.csv", index=False)
    s.reload()
    with pytest.raises(ReviewkitError, match="notes changed in the sheet since; undo refused"):
        s.undo()
    assert on_disk(folder)[0].loc[rid, ["reviewer1", "notes"]].tolist() == ["include", "Anna: sure?"]


def test_a_save_by_someone_between_two_decisions_is_kept(tmp_path):
    folder = make_folder(tmp_path)
    app = app_for(folder)
    first = app.session.current
    app.buttons["include"].click()
    # A person saves the CSV (a decision and a note on another record) while the app is open.
    frame = pd.read_csv(folder / "title_abstract.csv", dtype=str, keep_default_na=False)
    other = [r for r in frame["record_id"] if r not in (first, app.session.current)][0]
    frame.loc[frame["record_id"] == other, ["final", "notes"]] = ["exclude", "Anna: animal"]
    frame.to_csv(folder / "title_abstract.csv", index=False)
    second = app.session.current
    app.buttons["include"].click()
    both, csv, xlsx = on_disk(folder)
    for table in (both, csv, xlsx):  # someone saved: both files are written, with their entries merged in
        assert table.loc[first, "reviewer1"] == "include" and table.loc[second, "reviewer1"] == "include"
        assert table.loc[other, ["final", "notes"]].tolist() == ["exclude", "Anna: animal"]
    # The same cell changed by a person and by the app: refused, the person's entry stays.
    third = app.session.current
    frame = pd.read_csv(folder / "title_abstract.csv", dtype=str, keep_default_na=False)
    frame.loc[frame["record_id"] == third, "reviewer1"] = "exclude"
    frame.to_csv(folder / "title_abstract.csv", index=False)
    app.buttons["include"].click()
    assert "was changed to 'exclude' while reviewkit was updating it to 'include'" in unescape(app.status_html.value)
    assert on_disk(folder)[0].loc[third, "reviewer1"] == "exclude"
    assert app.session.current != third  # the person's decision is taken; the app moves on


def test_a_hostile_title_is_escaped_and_terms_highlighted(tmp_path):
    marked = highlight(HOSTILE, INCLUDE_TERMS, CUES)
    assert "<script" not in marked and "<img" not in marked
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in marked and "&amp;" in marked
    assert '<mark class="rk-in">Ketamine</mark>' in marked and '<mark class="rk-out">rats</mark>' in marked
    assert str(highlight("alcohol use disorders and alcohol", INCLUDE_TERMS)) == \
        '<mark class="rk-in">alcohol use disorders</mark> and alcohol'
    folder = make_folder(tmp_path, texts=[TEXTS[5], *TEXTS[:1]])
    app = app_for(folder)
    assert app.session.current == "PMID:1"  # the hostile one: hint order, then input order
    html = app.record_html.value
    assert "<script" not in html and "<img" not in html and "<b>tags</b>" not in html
    assert "&lt;script&gt;" in html and "&lt;b&gt;tags&lt;/b&gt;" in html


def test_order_follows_hints_first_then_the_model_retrained_per_decision(tmp_path):
    folder = make_folder(tmp_path)
    s = session(folder)
    assert s.queue() == ["PMID:1", "PMID:5", "PMID:6", "PMID:4", "PMID:2", "PMID:3"]  # "", check, exclude
    sheet = read_sheet(folder, "title_abstract", TA)
    assert sheet["priority"].tolist() == ["1", "5", "6", "4", "2", "3"]  # the same order in the sheet
    s.decide("include")  # PMID:1
    s.decide("exclude")  # PMID:5: now there is something to learn from
    again = session(folder)
    assert s.queue() == again.queue()  # deterministic for a seed, and the same after a restart
    assert s.queue()[-1] != "PMID:3" or s.queue()[0] != "PMID:6"  # the model, not the hints, orders now


def test_final_decisions_refresh_the_priority_column(tmp_path):
    folder = make_folder(tmp_path)
    s = session(folder, reviewer="final")
    s.decide("include")
    s.decide("exclude")
    sheet = read_sheet(folder, "title_abstract", TA).set_index("record_id")
    assert sheet.loc[["PMID:1", "PMID:5"], "priority"].tolist() == ["", ""]
    ranked = sheet.loc[sheet["priority"] != "", "priority"].astype(int).sort_values()
    assert ranked.tolist() == [1, 2, 3, 4] and ranked.index.tolist() == s.queue()
    # the same numbers `reviewkit screen` writes (reviewkit.prioritise.with_priority)
    assert with_priority(sheet.reset_index())["priority"].tolist() == sheet["priority"].tolist()
    xlsx = pd.read_excel(folder / "title_abstract.xlsx", engine="calamine")
    assert pd.api.types.is_numeric_dtype(xlsx["priority"])  # a spreadsheet sorts 2 before 10


def test_maybe_leaves_the_record_unscreened_and_serves_it_last(tmp_path):
    folder = make_folder(tmp_path)
    s = session(folder)
    rid = s.decide("maybe", note="ask Anna")
    row = on_disk(folder)[0].loc[rid]
    assert row["reviewer1"] == "" and row["notes"] == f"{maybe_mark('reviewer1')}; reviewer1: ask Anna"
    assert s.queue()[-1] == rid and s.progress().maybe == 1
    for _ in range(5):
        s.decide("exclude")
    assert s.current == rid
    s.decide("include")
    assert on_disk(folder)[0].loc[rid, ["reviewer1", "notes"]].tolist() == ["include", "reviewer1: ask Anna"]
    assert s.current is None and s.progress().screened == 6


def test_full_text_rules(tmp_path):
    folder = make_folder(tmp_path, "full_text")
    s = session(folder, "full_text", reviewer="final")
    rid = s.current
    files = {p.name: p.read_bytes() for p in folder.glob("*.csv")}
    with pytest.raises(ReviewkitError, match="a full-text exclusion needs a reason"):
        s.decide("exclude")
    assert {p.name: p.read_bytes() for p in folder.glob("*.csv")} == files  # nothing written
    s.decide("exclude", "wrong population")
    assert on_disk(folder, "full_text")[0].loc[rid, ["retrieved", "final", "exclusion_reason"]].tolist() == \
        ["yes", "exclude", "wrong population"]
    with pytest.raises(ReviewkitError, match="not a full text reason"):
        s.decide("exclude", "animal study")


def test_reviewer_reasons_never_overwrite_another_reviewers(tmp_path):
    folder = make_folder(tmp_path)
    one, two = session(folder, reviewer="reviewer1"), session(folder, reviewer="reviewer2")
    rid = one.decide("exclude", "animal study")
    two.reload()
    assert two.current == rid  # reviewer2 has not screened it
    two.decide("exclude", "other")
    row = on_disk(folder)[0].loc[rid]
    assert row["exclusion_reason"] == "animal study" and row["notes"] == "reviewer2 reason: other"
    final = session(folder, reviewer="final")
    assert final.current == rid
    final.decide("include")  # the final include clears the reason (the sheet refuses one on an include)
    assert on_disk(folder)[0].loc[rid, ["final", "exclusion_reason"]].tolist() == ["include", ""]


def test_random_sample_and_stopping_guidance_never_stop_or_exclude(tmp_path):
    folder = make_folder(tmp_path)
    s = session(folder)
    s.decide("include")
    s.decide("exclude")
    stats = s.stopping()
    assert stats.since_last_include == 1 and stats.recall_estimate is None and stats.sample_size == 0
    drawn = s.start_sample(3)
    assert len(drawn) == 3 and s.queue()[:3] == drawn
    s.decide("maybe")  # a maybe in the sample: served after the sample's other records, still before the rest
    assert s.queue()[:3] == [*drawn[1:], drawn[0]]
    for _ in range(3):
        s.decide("exclude")
    again = session(folder)  # after a restart, the log still knows the sample
    stats = again.stopping()
    assert stats.sample_size == 3 and stats.sample_included == 0 and stats.recall_estimate == 1.0
    assert stats.since_last_include == 4 and stats.unscreened == 1
    # Nothing was marked for the record nobody screened, and the app still serves it.
    both = on_disk(folder)[0]
    assert (both["reviewer1"] == "").sum() == 1 and again.current is not None
    app = ScreeningApp(session=again)
    assert "never stops on its own" in app.stopping_html.value and "stay unscreened" in app.stopping_html.value


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=st.lists(st.sampled_from(["include", "exclude", "maybe", "undo"]), max_size=6))
def test_the_files_always_hold_exactly_the_decisions_made(tmp_path_factory, actions):
    """Any sequence of clicks: the sheet on disk holds each record's last decision, undone ones blank."""
    folder = make_folder(tmp_path_factory.mktemp("p"))
    s = session(folder, xlsx_every=2)  # the XLSX copy written every other decision, and on undo
    expected: list[tuple[str, str]] = []  # (record, decision) of the actions not undone, in order
    for action in actions:
        if action == "undo":
            if s.undo() is not None:
                expected.pop()
        elif s.current is not None:
            expected.append((s.decide(action), action))
        both, csv, xlsx = on_disk(folder)  # after every action
        want = {rid: "" for rid in both.index}
        for rid, decision in expected:
            want[rid] = "" if decision == "maybe" else decision
        for table in (both, csv):
            assert table["reviewer1"].to_dict() == want
            assert (table["final"] == "").all()
        # The XLSX copy may lag behind, never disagree: each of its entries is the CSV's.
        for column in ("reviewer1", "exclusion_reason", "notes"):
            lag, now = xlsx[column], csv.loc[xlsx.index, column]
            assert ((lag == "") | (lag == now)).all(), column


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=st.lists(st.sampled_from(["include", "exclude", "maybe", "not_retrieved", "undo"]), max_size=6))
def test_at_full_text_the_files_always_hold_exactly_the_decisions_and_reports_not_retrieved(tmp_path_factory,
                                                                                           actions):
    """Any sequence of keys at full text: each report's last decision, or ``retrieved = no``; undone ones blank."""
    folder = make_folder(tmp_path_factory.mktemp("p"), "full_text")
    s = session(folder, "full_text", xlsx_every=2)
    expected: list[tuple[str, str]] = []
    for action in actions:
        if action == "undo":
            if s.undo() is not None:
                expected.pop()
        elif s.current is not None:
            expected.append((s.decide(action, "other" if action == "exclude" else ""), action))
        both, csv, xlsx = on_disk(folder, "full_text")
        decision = {rid: "" for rid in both.index}
        retrieved = dict(decision)
        for rid, action_ in expected:
            decision[rid] = action_ if action_ in ("include", "exclude") else ""
            retrieved[rid] = {"not_retrieved": "no", "maybe": ""}.get(action_, "yes")
        for table in (both, csv):
            assert table["reviewer1"].to_dict() == decision
            assert table["retrieved"].to_dict() == retrieved
            assert (table["final"] == "").all()
        for column in ("reviewer1", "retrieved", "notes"):  # the XLSX copy may lag, never disagree
            lag, now = xlsx[column], csv.loc[xlsx.index, column]
            assert ((lag == "") | (lag == now)).all(), column


def test_the_app_opens_on_a_review_and_prisma_counts_only_screened_records(tmp_path):
    shutil.copytree(SAMPLE_DIR, tmp_path / "snap")
    # The CSVs only: an XLSX copy left by a local `make report` would still hold the decisions blanked below.
    shutil.copytree(SAMPLE_SCREENING, tmp_path / "screening", ignore=shutil.ignore_patterns("*.xlsx"))
    frame = pd.read_csv(tmp_path / "screening" / "title_abstract.csv", dtype=str, keep_default_na=False)
    undecided = frame.loc[frame["final"] == "exclude", "record_id"].iloc[:3].tolist()  # so not at full text yet
    frame.loc[frame["record_id"].isin(undecided), ["reviewer1", "reviewer2", "final", "exclusion_reason"]] = ""
    frame.to_csv(tmp_path / "screening" / "title_abstract.csv", index=False)
    review = Review(EXAMPLE, snapshot=str(tmp_path / "snap"), screening=str(tmp_path / "screening"))
    app = ScreeningApp(review, stage="title_abstract", reviewer="final")
    assert set(app.session.queue()) == set(undecided)
    # Opening brought the sheets up to date as `reviewkit screen` does: a priority for each record awaiting one.
    written = pd.read_csv(tmp_path / "screening" / "title_abstract.csv", dtype=str, keep_default_na=False)
    ranked = written[written["priority"] != ""].sort_values("priority")
    assert ranked["priority"].tolist() == ["1", "2", "3"] and ranked["record_id"].tolist() == app.session.queue()
    assert 'class="rk-in"' in app.record_html.value  # the protocol's terms are highlighted
    included = app.session.current
    app.press("i")
    counts = Review(EXAMPLE, snapshot=str(tmp_path / "snap"), screening=str(tmp_path / "screening")).prisma.overall
    assert counts.databases.records_awaiting == 2  # the two nobody screened are awaiting, not excluded
    # Full text, opened on the same Review object: the include just made is a report to assess.
    full_text = ScreeningApp(review, stage="full_text", reviewer="final")
    assert full_text.session.queue() == [included]


def test_protocol_terms_and_exclusion_cues(tmp_path):
    include, cues = protocol_terms(EXAMPLE.protocol())
    assert include[:2] == ("ketamine", "esketamine") and "alcohol use disorder" in include and "gambling" in include
    assert "rat" in cues and "anaesthesia" in cues
    text = (ROOT / "data" / "protocol.yml").read_text()
    bad = tmp_path / "protocol.yml"
    bad.write_text(text.replace("exclusion_cues: [rat,", "exclusion_cues: [rat, rat,"))
    with pytest.raises(ProtocolError, match="screening.exclusion_cues' lists the same entry twice"):
        load_protocol(bad)


def test_a_save_of_the_lagging_xlsx_copy_loses_nothing(tmp_path):
    """A person saves the XLSX (which lacks the app's latest decisions) with an entry of their own."""
    folder = make_folder(tmp_path)
    s = session(folder)
    first = s.decide("include")  # in the CSV only
    workbook = pd.read_excel(folder / "title_abstract.xlsx", dtype=str, keep_default_na=False, engine="calamine")
    assert workbook.loc[workbook["record_id"] == first, "reviewer1"].item() == ""
    other = s.queue()[-1]
    workbook.loc[workbook["record_id"] == other, ["reviewer2", "notes"]] = ["exclude", "Ben: rats"]
    workbook.to_excel(folder / "title_abstract.xlsx", index=False)
    second = s.decide("exclude")
    both, csv, xlsx = on_disk(folder)
    for table in (both, csv, xlsx):
        assert table.loc[[first, second], "reviewer1"].tolist() == ["include", "exclude"]
        assert table.loc[other, ["reviewer2", "notes"]].tolist() == ["exclude", "Ben: rats"]


def test_records_without_any_word_are_served_in_hint_order(tmp_path):
    folder = make_folder(tmp_path, texts=[("", "", "exclude"), ("", "", ""), ("", "", "check")])
    s = session(folder)
    assert s.queue() == ["PMID:2", "PMID:3", "PMID:1"]
    s.decide("include")
    s.decide("exclude")
    assert s.queue() == ["PMID:1"]


def test_not_retrieved_at_full_text_by_key_and_button_with_undo(tmp_path):
    folder = make_folder(tmp_path, "full_text")
    app = app_for(folder, stage="full_text", reviewer="reviewer1")
    assert app.buttons["not_retrieved"].description == "Not retrieved (n)"
    first = app.session.current
    app.note.value = "library has no access"
    app.keys.value = "n"
    both, csv, _ = on_disk(folder, "full_text")
    for table in (both, csv):  # what a person types for a report not retrieved; no decision column
        assert table.loc[first, ["retrieved", "reviewer1", "final", "exclusion_reason"]].tolist() == ["no", "", "", ""]
        assert table.loc[first, "notes"] == "not retrieved (reviewer1); reviewer1: library has no access"
    assert first not in app.session.queue() and app.session.current != first
    assert app.session.progress().records == 5 and app.session.progress().not_retrieved == 1
    assert "0 of 5 screened, 0 included, 0 excluded (1 more not retrieved)" in app.progress_html.value
    # The other reviewers no longer see it either: a report not obtained cannot be assessed.
    assert first not in session(folder, "full_text", reviewer="final").queue()
    log = [json.loads(line) for line in (folder / LOG_FILE).read_text().splitlines()]
    assert [(e["record_id"], e["action"]) for e in log] == [(first, "not_retrieved")]
    app.keys.value = "u"
    both, csv, xlsx = on_disk(folder, "full_text")
    for table in (both, csv, xlsx):  # undone in every file (the XLSX must not bring the "no" back)
        assert table.loc[first, ["retrieved", "notes"]].tolist() == ["", ""]
    assert app.session.current == first
    # The button does the same; the priority column numbers the reports still to assess, not the one not retrieved.
    app.buttons["not_retrieved"].click()
    sheet = read_sheet(folder, "full_text", FT).set_index("record_id")
    assert sheet.loc[first, "retrieved"] == "no" and sheet.loc[first, "priority"] == ""
    assert sorted(sheet.loc[sheet["priority"] != "", "priority"].astype(int)) == [1, 2, 3, 4, 5]
    # A report with a final decision is refused with nothing written, saying which cell stands in the way.
    second = app.session.current
    frame = pd.read_csv(folder / "full_text.csv", dtype=str, keep_default_na=False)
    frame.loc[frame["record_id"] == second, ["retrieved", "final"]] = ["yes", "include"]
    frame.to_csv(folder / "full_text.csv", index=False)
    app.session.reload()
    files = {p.name: p.read_bytes() for p in folder.glob("full_text.*")}
    app.press("n")
    assert f"{second} has a final decision (include)" in unescape(app.status_html.value)
    assert {p.name: p.read_bytes() for p in folder.glob("full_text.*")} == files
    (tmp_path / "ta").mkdir()
    with pytest.raises(ReviewkitError, match="not retrieved is a full-text decision"):
        session(make_folder(tmp_path / "ta")).decide("not_retrieved")


def test_reviewer_sessions_keep_the_priority_column_current_from_their_own_decisions(tmp_path):
    folder = make_folder(tmp_path)
    one = session(folder, reviewer="reviewer1")
    first, second = one.decide("include"), one.decide("exclude")
    sheet = read_sheet(folder, "title_abstract", TA).set_index("record_id")
    assert sheet.loc[[first, second], "priority"].tolist() == ["", ""]  # decided by this reviewer: blank
    ranked = sheet.loc[sheet["priority"] != "", "priority"].astype(int).sort_values()
    assert ranked.tolist() == [1, 2, 3, 4] and ranked.index.tolist() == one.queue()  # the order the app serves
    # The numbers `reviewkit screen` would write if reviewer1's column were the final one.
    as_final = sheet.reset_index().assign(final=sheet["reviewer1"].tolist())
    assert with_priority(as_final)["priority"].tolist() == sheet["priority"].tolist()
    assert (sheet["final"] == "").all()  # the column itself never decides anything
    # reviewer2's first decision: the rows reviewer2 has not screened are numbered again, reviewer1's among them.
    two = session(folder, reviewer="reviewer2")
    decided = two.decide("exclude")
    sheet = read_sheet(folder, "title_abstract", TA).set_index("record_id")
    numbered = sheet.index[sheet["priority"] != ""].tolist()
    assert decided not in numbered and {first, second} - {decided} <= set(numbered) and len(numbered) == 5
    assert sheet.loc[two.queue(), "priority"].astype(int).tolist() == [1, 2, 3, 4, 5]


def test_maybe_is_said_plainly_and_comes_back(tmp_path):
    folder = make_folder(tmp_path)
    app = app_for(folder)
    rid = app.session.current
    app.keys.value = "m"
    line = unescape(app.progress_html.value)
    assert "0 of 6 screened, 0 included, 0 excluded; 6 still to screen, of which" in line
    assert f"maybe: 1, still to decide</b> (not screened: they come back after the others: {rid})" in line
    assert on_disk(folder)[0].loc[rid, "reviewer1"] == ""  # nothing decided, nothing excluded
    assert app.session.progress().maybes == (rid,) and app.session.queue()[-1] == rid
    while app.session.current != rid:
        app.keys.value = "e"
    assert "your maybe: decide now" in app.record_html.value  # back, and the screen says why
    app.keys.value = "i"
    assert "maybe:" not in app.progress_html.value and app.session.current is None
    assert "6 of 6 screened, 1 included, 5 excluded; 0 still to screen" in app.progress_html.value


def test_save_and_close_writes_the_xlsx_copy_and_says_so(tmp_path):
    folder = make_folder(tmp_path)
    app = app_for(folder, xlsx_every=50)
    rid = app.session.current
    app.keys.value = "i"
    assert on_disk(folder)[2].loc[rid, "reviewer1"] == "" and app.session.pending == 1  # the CSV only, for now
    app.close_button.click()
    both, csv, xlsx = on_disk(folder)
    assert both.loc[rid, "reviewer1"] == csv.loc[rid, "reviewer1"] == xlsx.loc[rid, "reviewer1"] == "include"
    assert app.session.pending == 0
    (closed,) = app.widget.children
    assert "Closed: every decision of reviewer1 at title/abstract is in title_abstract.csv and " \
           "title_abstract.xlsx" in unescape(closed.value)
    # The screening notebook tells the person where the XLSX copy catches up.
    notebook = json.loads((ROOT / "notebooks" / "screen.ipynb").read_text(encoding="utf-8"))
    text = "".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == "markdown")
    assert "**Save and close**" in text and "shut down" in text


def test_the_xlsx_copy_catches_up_when_the_kernel_shuts_down(tmp_path):
    """A real kernel, shut down as JupyterLab's *Shut Down Kernel* does (a shutdown request, then the process
    ends normally): the session's exit hook writes the decision the XLSX copy did not hold yet."""
    from jupyter_client.manager import start_new_kernel

    folder = make_folder(tmp_path)
    code = (f"from reviewkit.screening_app import ScreeningSession\n"
            f"s = ScreeningSession({str(folder)!r}, 'title_abstract', 'reviewer1', {TA!r}, xlsx_every=50)\n"
            "print(s.decide('exclude', 'other'), s.pending)\n")
    said: list[str] = []
    kernel, client = start_new_kernel(kernel_name="python3", cwd=str(tmp_path))
    try:
        reply = client.execute_interactive(code, timeout=120, output_hook=lambda m: said.append(
            m["content"].get("text", "") if m["msg_type"] == "stream" else ""))
        assert reply["content"]["status"] == "ok", reply["content"]
        rid, pending = "".join(said).split()
        assert pending == "1" and on_disk(folder)[2].loc[rid, "reviewer1"] == ""  # the CSV only, so far
    finally:
        client.stop_channels()
        kernel.shutdown_kernel(now=False)
    assert on_disk(folder)[2].loc[rid, ["reviewer1", "exclusion_reason"]].tolist() == ["exclude", "other"]


def test_dual_screening_on_the_sample_gives_kappa_and_moves_prisma_by_the_screened_records(tmp_path):
    """Two reviewers screen with the keyboard in two app sessions, then a final session resolves: kappa from the
    sheets, PRISMA counts moving only by records with a final decision, a report marked not retrieved."""
    shutil.copytree(SAMPLE_DIR, tmp_path / "snap")
    shutil.copytree(SAMPLE_SCREENING, tmp_path / "screening", ignore=shutil.ignore_patterns("*.xlsx"))
    path = tmp_path / "screening" / "title_abstract.csv"
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert (frame["reviewer2"] == "").all() and (frame["final"] != "").all()
    todo = sorted(frame.loc[frame["final"] == "exclude", "record_id"].iloc[:6])  # so not at full text yet
    rest = ~frame["record_id"].isin(todo)
    frame.loc[~rest, ["reviewer1", "reviewer2", "final", "exclusion_reason", "notes"]] = ""
    # Reviewer 2 screened the other records earlier, agreeing with reviewer 1 on each.
    frame.loc[rest, "reviewer2"] = frame.loc[rest, "reviewer1"]
    frame.to_csv(path, index=False)

    def review():
        return Review(EXAMPLE, snapshot=str(tmp_path / "snap"), screening=str(tmp_path / "screening"))

    def boxes():
        return review().prisma.overall.boxes()

    start = boxes()
    assert start["records screened"] == len(frame) - 6 and start["records awaiting screening"] == 6
    plans = {"reviewer1": dict(zip(todo, "iieeee")), "reviewer2": dict(zip(todo, "ieeeei")),
             "final": dict(zip(todo, "ieeeee"))}

    def screen(reviewer, count=6):
        app = ScreeningApp(review(), stage="title_abstract", reviewer=reviewer, refresh=False)
        for _ in range(count):
            key = plans[reviewer][app.session.current]
            app.keys.value = key if key == "i" else "1e"  # the first reason, then exclude
        app.close()
        return app

    for reviewer in ("reviewer1", "reviewer2"):
        assert screen(reviewer).session.current is None
    sheet = pd.read_csv(path, dtype=str, keep_default_na=False).set_index("record_id")
    for reviewer in ("reviewer1", "reviewer2"):
        assert "".join(sheet.loc[todo, reviewer].str[0]) == "".join(plans[reviewer][r] for r in todo)
    # Cohen's kappa from reviewkit's agreement code, against the 2x2 table by hand.
    both = sheet[["reviewer1", "reviewer2"]]
    a = int(((both == "include").all(axis=1)).sum())
    d = int(((both == "exclude").all(axis=1)).sum())
    n, disagree = len(both), 2
    inc1, inc2 = int((both["reviewer1"] == "include").sum()), int((both["reviewer2"] == "include").sum())
    expected = ((a + d) / n - (inc1 * inc2 + (n - inc1) * (n - inc2)) / n**2) / \
        (1 - (inc1 * inc2 + (n - inc1) * (n - inc2)) / n**2)
    agreement = review().state.agreement["title_abstract"]
    assert (agreement.n_both, agreement.n_agree) == (n, n - disagree) and a + d == n - disagree
    assert agreement.kappa == pytest.approx(expected) and 0 < agreement.kappa < 1
    # Reviewers' decisions are not PRISMA's: the six are still awaiting, never counted as excluded.
    assert boxes() == start
    screen("final", count=3)
    middle = boxes()
    final = pd.read_csv(path, dtype=str, keep_default_na=False).set_index("record_id").loc[todo, "final"]
    assert (final != "").sum() == 3
    assert middle["records screened"] == start["records screened"] + 3
    assert middle["records excluded"] == start["records excluded"] + int((final == "exclude").sum())
    assert middle["records awaiting screening"] == 3
    screen("final", count=3)
    end = boxes()
    assert end["records screened"] == len(frame) and end["records awaiting screening"] == 0
    assert end["records excluded"] == start["records excluded"] + 5
    assert end["reports sought"] == start["reports sought"] + 1  # the one final include goes to full text
    assert end["reports awaiting assessment"] == start["reports awaiting assessment"] + 1
    # Full text: the new report, marked not retrieved with the keyboard, is counted so; undo takes it back.
    full_text = ScreeningApp(review(), stage="full_text", reviewer="final")
    assert full_text.session.queue() == [todo[0]]
    full_text.keys.value = "n"
    marked = boxes()
    assert marked["reports not retrieved"] == start["reports not retrieved"] + 1
    assert marked["reports awaiting assessment"] == start["reports awaiting assessment"]
    assert marked["reports sought"] == end["reports sought"] and marked["reports assessed"] == end["reports assessed"]
    full_text.keys.value = "u"
    assert boxes() == end
