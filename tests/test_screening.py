"""Screening sheets: decisions are never lost or changed; bad input names file and row."""

import re
from unittest import mock

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reviewkit.errors import ReviewkitError
from reviewkit.screening import (
    agreement,
    build_sheet,
    cohen_kappa,
    conflicts,
    import_decisions,
    read_sheet,
    suggest,
    update_sheet,
    write_sheet,
)

TA = ("animal study", "review or meta-analysis", "other")
FT = ("wrong population", "other")
TERMS = ("ketamine", "esketamine")  # the worked example's free-text intervention terms


def records(ids):
    return pd.DataFrame([{"record_id": f"PMID:{i}", "source": "PubMed", "title": f"Ketamine trial {i}",
                          "abstract": "", "authors": ["Doe J"], "journal": "J", "year": 2020,
                          "publication_types": ["Journal Article"], "searches": ["aud"],
                          "is_human": True, "is_animal": False} for i in ids])


def test_suggestions_are_hints_with_reasons():
    base = {"title": "Ketamine for AUD", "abstract": "", "publication_types": [], "is_human": False, "is_animal": False}
    assert suggest(pd.Series({**base, "is_animal": True}), TERMS) == ("exclude", "animal-only (MeSH Animals without Humans)")
    assert suggest(pd.Series({**base, "publication_types": ["Review"]}), TERMS)[1].startswith("review")
    assert suggest(pd.Series({**base, "title": "Naltrexone for AUD"}), TERMS)[1] == \
        "no ketamine or esketamine in title or abstract"
    assert suggest(pd.Series({**base, "publication_types": ["Case Reports"]}), TERMS)[0] == "check"
    assert suggest(pd.Series(base), TERMS) == ("", "")


def test_rerun_adds_new_keeps_decisions_and_gone_records():
    first = build_sheet(records([1, 2, 3]), "title_abstract", TERMS)
    first.loc[0, ["reviewer1", "final"]] = ["include", "include"]
    first.loc[2, ["final", "exclusion_reason", "notes"]] = ["exclude", "other", "why"]
    upd = update_sheet(first, build_sheet(records([1, 2, 4]), "title_abstract", TERMS), "title_abstract")
    s = upd.sheet.set_index("record_id")
    assert upd.new_ids == ("PMID:4",) and upd.kept_ids == ("PMID:3",)
    assert s.loc["PMID:1", "final"] == "include" and s.loc["PMID:3", "notes"] == "why"
    assert s.loc["PMID:3", "status"] == "no longer retrieved" and s.loc["PMID:1", "status"] == ""
    assert list(s.index) == ["PMID:1", "PMID:2", "PMID:3", "PMID:4"]
    # the record comes back: its decision is still there and active
    again = update_sheet(upd.sheet, build_sheet(records([1, 2, 3, 4]), "title_abstract", TERMS), "title_abstract").sheet
    assert again.set_index("record_id").loc["PMID:3", ["final", "status"]].tolist() == ["exclude", ""]


def test_columns_a_person_added_are_kept_through_reruns(tmp_path):
    first = build_sheet(records([1, 2, 3]), "title_abstract", TERMS)
    first["my_tags"] = ["maybe", "", "ask Ana"]  # PMID:3 has no decision, only a tag
    first.loc[1, "final"] = "include"
    upd = update_sheet(first, build_sheet(records([1, 2, 4]), "title_abstract", TERMS), "title_abstract")
    s = upd.sheet.set_index("record_id")
    assert list(upd.sheet.columns[-2:]) == ["status", "my_tags"]
    assert s["my_tags"].to_dict() == {"PMID:1": "maybe", "PMID:2": "", "PMID:3": "ask Ana", "PMID:4": ""}
    assert upd.kept_ids == ("PMID:3",) and s.loc["PMID:3", "status"] == "no longer retrieved"
    assert write_sheet(tmp_path, "title_abstract", upd.sheet)
    xlsx = pd.read_excel(tmp_path / "title_abstract.xlsx", dtype=str, keep_default_na=False, engine="calamine")
    assert xlsx["my_tags"].tolist() == ["maybe", "", "ask Ana", ""]
    back = read_sheet(tmp_path, "title_abstract", TA)
    assert back["my_tags"].tolist() == ["maybe", "", "ask Ana", ""]
    again = update_sheet(back, build_sheet(records([1, 2, 4]), "title_abstract", TERMS), "title_abstract").sheet
    assert again.equals(back)
    assert write_sheet(tmp_path, "title_abstract", again) is False  # unchanged, not rewritten


def test_added_columns_from_csv_and_xlsx_are_combined_and_conflicts_refused(tmp_path):
    sheet = build_sheet(records([1, 2]), "title_abstract", TERMS)
    write_sheet(tmp_path, "title_abstract", sheet)
    csv, xlsx = sheet.assign(my_tags=["a", ""]), sheet.assign(my_tags=["", "b"], urgency=["", "high"])
    csv.to_csv(tmp_path / "title_abstract.csv", index=False)
    xlsx.to_excel(tmp_path / "title_abstract.xlsx", index=False)
    got = read_sheet(tmp_path, "title_abstract", TA)
    assert got[["my_tags", "urgency"]].to_numpy().tolist() == [["a", ""], ["b", "high"]]
    xlsx.loc[0, "my_tags"] = "other"
    xlsx.to_excel(tmp_path / "title_abstract.xlsx", index=False)
    with pytest.raises(ReviewkitError, match="PMID:1, column my_tags: title_abstract.csv says 'a' but "
                                             "title_abstract.xlsx says 'other'"):
        read_sheet(tmp_path, "title_abstract", TA)


@pytest.mark.parametrize("column,value,message", [
    ("final", "maybe", "row 3, column final: 'maybe' is not a decision"),
    ("exclusion_reason", "bad reason", "row 3, column exclusion_reason: 'bad reason'"),
    ("record_id", "PMID:1", "row 3: record PMID:1 appears again (first at row 2)"),
])
def test_bad_sheet_names_file_and_row_and_writes_nothing(tmp_path, column, value, message):
    sheet = build_sheet(records([1, 2]), "title_abstract", TERMS)
    assert write_sheet(tmp_path, "title_abstract", sheet)
    bad = sheet.copy()
    bad.loc[1, column] = value
    bad.to_csv(tmp_path / "title_abstract.csv", index=False)
    files = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ReviewkitError, match=re.escape(f"title_abstract.csv, {message}")):
        read_sheet(tmp_path, "title_abstract", TA)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == files  # nothing overwritten


def test_full_text_rules(tmp_path):
    sheet = build_sheet(records([1]), "full_text", TERMS)
    sheet.loc[0, ["final"]] = ["exclude"]
    with pytest.raises(ReviewkitError, match="needs a reason"):
        import_decisions(build_sheet(records([1]), "full_text", TERMS), sheet, "full_text", FT, "x.csv")
    sheet.loc[0, ["retrieved", "exclusion_reason"]] = ["no", "Wrong Population"]
    with pytest.raises(ReviewkitError, match="not retrieved cannot have a final decision"):
        import_decisions(build_sheet(records([1]), "full_text", TERMS), sheet, "full_text", FT, "x.csv")


def test_csv_and_xlsx_edits_are_combined_and_conflicts_refused(tmp_path):
    sheet = build_sheet(records([1, 2]), "title_abstract", TERMS)
    write_sheet(tmp_path, "title_abstract", sheet)
    csv, xlsx = sheet.copy(), sheet.copy()
    csv.loc[0, "final"] = "include"
    xlsx.loc[1, ["final", "exclusion_reason"]] = ["Exclude", "Animal Study"]
    csv.to_csv(tmp_path / "title_abstract.csv", index=False)
    xlsx.to_excel(tmp_path / "title_abstract.xlsx", index=False)
    got = read_sheet(tmp_path, "title_abstract", TA)
    assert got["final"].tolist() == ["include", "exclude"] and got.loc[1, "exclusion_reason"] == "animal study"
    xlsx.loc[0, "final"] = "exclude"
    xlsx.to_excel(tmp_path / "title_abstract.xlsx", index=False)
    with pytest.raises(ReviewkitError, match="PMID:1, column final: title_abstract.csv says 'include'"):
        read_sheet(tmp_path, "title_abstract", TA)


def test_import_refuses_unknown_ids_and_changes(tmp_path):
    sheet = build_sheet(records([1, 2]), "title_abstract", TERMS)
    sheet.loc[0, "reviewer1"] = "include"
    with pytest.raises(ReviewkitError, match=r"r2.csv, row 2: record PMID:9 is not in"):
        import_decisions(sheet, pd.DataFrame({"record_id": ["PMID:9"], "reviewer2": ["include"]}), "title_abstract", TA, "r2.csv")
    with pytest.raises(ReviewkitError, match="would replace 'include'"):
        import_decisions(sheet, pd.DataFrame({"record_id": ["PMID:1"], "reviewer1": ["exclude"]}), "title_abstract", TA, "r2.csv")
    out = import_decisions(sheet, pd.DataFrame({"record_id": ["PMID:1", "PMID:2"], "reviewer2": ["exclude", "include"]}),
                           "title_abstract", TA, "r2.csv")
    assert out["reviewer1"].tolist() == ["include", ""] and out["reviewer2"].tolist() == ["exclude", "include"]


def test_kappa_and_conflicts():
    # 2x2 table a=20 (both include), b=5, c=10, d=15: po=.7, pe=.5 -> kappa .4
    r1 = ["include"] * 25 + ["exclude"] * 25
    r2 = ["include"] * 20 + ["exclude"] * 5 + ["include"] * 10 + ["exclude"] * 15
    assert cohen_kappa(r1, r2) == pytest.approx(0.4)
    assert cohen_kappa(["include"] * 3, ["include"] * 3) is None
    sheet = build_sheet(records(range(50)), "title_abstract", TERMS)
    sheet["reviewer1"], sheet["reviewer2"] = r1, r2
    a = agreement(sheet, "title_abstract")
    assert (a.n_both, a.n_agree, round(a.kappa, 6)) == (50, 35, 0.4)
    assert len(conflicts(sheet)) == 15


def test_crash_mid_write_keeps_old_files(tmp_path):
    sheet = build_sheet(records([1]), "title_abstract", TERMS)
    sheet.loc[0, "final"] = "include"
    write_sheet(tmp_path, "title_abstract", sheet)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    changed = sheet.copy()
    changed.loc[0, "notes"] = "new note"
    with mock.patch("os.replace", side_effect=OSError("disk full")), \
            pytest.raises(ReviewkitError, match="title_abstract.csv: cannot write \\(disk full\\)"):
        write_sheet(tmp_path, "title_abstract", changed)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temp file left either
    assert read_sheet(tmp_path, "title_abstract", TA).loc[0, "final"] == "include"


def test_unchanged_sheet_is_not_rewritten(tmp_path):
    sheet = build_sheet(records([1]), "title_abstract", TERMS)
    assert write_sheet(tmp_path, "title_abstract", sheet) is True
    assert write_sheet(tmp_path, "title_abstract", read_sheet(tmp_path, "title_abstract", TA)) is False


step = st.one_of(
    st.tuples(st.just("search"), st.sets(st.integers(0, 12), max_size=10)),
    st.tuples(st.just("decide"), st.integers(0, 12),
              st.sampled_from(["reviewer1", "reviewer2", "final", "notes", "my_tags"]),
              st.sampled_from(["include", "exclude", "a note"])),
    st.tuples(st.just("import"), st.integers(0, 12), st.sampled_from(["include", "exclude"])),
    st.just(("rerun",)),
)


@settings(max_examples=25, deadline=None)
@given(st.lists(step, max_size=12))
def test_no_human_decision_is_ever_lost_or_changed(tmp_path_factory, steps):
    """Random searches, decisions (in a column a person added, too), imports and reruns: every
    recorded entry survives unchanged."""
    folder = tmp_path_factory.mktemp("screen")
    retrieved = {0, 1, 2}
    recorded: dict[tuple[str, str], str] = {}

    def rerun():
        existing = read_sheet(folder, "title_abstract", TA)
        sheet = update_sheet(existing, build_sheet(records(sorted(retrieved)), "title_abstract", TERMS), "title_abstract").sheet
        write_sheet(folder, "title_abstract", sheet)
        return sheet

    sheet = rerun()
    for s in steps:
        if s[0] == "search":
            retrieved = s[1]
        elif s[0] == "decide" and f"PMID:{s[1]}" in set(sheet["record_id"]):
            rid, col = f"PMID:{s[1]}", s[2]
            value = s[3] if col in ("notes", "my_tags") else (s[3] if s[3] != "a note" else "include")
            if (rid, col) in recorded:
                continue  # people may change their own entries; reviewkit may not, which is what is checked
            sheet.loc[sheet["record_id"] == rid, col] = value
            sheet.to_csv(folder / "title_abstract.csv", index=False)  # the person edits the CSV
            recorded[(rid, col)] = value
        elif s[0] == "import":
            rid = f"PMID:{s[1]}"
            if rid not in set(sheet["record_id"]) or (rid, "reviewer2") in recorded:
                continue
            sheet = import_decisions(sheet, pd.DataFrame({"record_id": [rid], "reviewer2": [s[2]]}),
                                     "title_abstract", TA, "r2.csv")
            write_sheet(folder, "title_abstract", sheet)
            recorded[(rid, "reviewer2")] = s[2]
        sheet = rerun()
        by_id = sheet.set_index("record_id")
        for (rid, col), value in recorded.items():
            assert by_id.loc[rid, col] == value
