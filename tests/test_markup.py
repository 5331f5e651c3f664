"""Values as readers read them, and the one escaping path every string takes to HTML."""

from datetime import date

import numpy as np
import pandas as pd
import pytest

from reviewkit.markup import MISSING, escape, reader_frame, reader_text, render, words

PAYLOAD = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


@pytest.mark.parametrize("value, shown", [
    (None, MISSING), (float("nan"), MISSING), (pd.NA, MISSING), (pd.NaT, MISSING), ("", MISSING), ("  ", MISSING),
    (True, "yes"), (False, "no"), (np.bool_(True), "yes"),
    (["aud", "cocaine"], "aud, cocaine"), (("a",), "a"), ([], MISSING), (np.array(["x", "y"]), "x, y"),
    ([None, "b"], "b"),
    (12.0, "12"), (np.float64(0.5), "0.5"), (1 / 3, "0.333333"), (3, "3"), (np.int64(7), "7"),
    ("exists_with_errors", "exists with errors"), ("not_found", "not found"),
    ("PMID:123", "PMID:123"), ("dakwar2020-abstinence", "dakwar2020-abstinence"), ("abstinence_12wk", "abstinence_12wk"),
    (pd.Timestamp("2026-01-02"), "2026-01-02"), (pd.Timestamp("2026-01-02 07:30"), "2026-01-02 07:30"),
    (date(2020, 1, 2), "2020-01-02"),
])
def test_reader_text(value, shown):
    assert reader_text(value) == shown


def test_missing_can_be_said_in_words():
    assert reader_text(None, "not reported") == "not reported"


def test_reader_frame_words_labels_and_kept_columns():
    frame = pd.DataFrame({"citation_verdict": ["not_found", None], "included": [True, False],
                          "searches": [["aud"], []], "row_id": ["a_b", "x"], "n_t": [12.0, float("nan")]})
    shown = reader_frame(frame, labels={"n_t": "n (ketamine)"}, keep=["row_id"],
                         missing={"citation_verdict": "not checked"})
    assert list(shown.columns) == ["citation verdict", "included", "searches", "row id", "n (ketamine)"]
    assert shown.to_dict("list") == {"citation verdict": ["not found", "not checked"], "included": ["yes", "no"],
                                     "searches": ["aud", MISSING], "row id": ["a_b", "x"],
                                     "n (ketamine)": ["12", MISSING]}
    assert frame["included"].dtype == bool  # the frame shown is a copy


def test_reader_frame_keeps_a_named_index_as_text():
    frame = pd.DataFrame({"all searches": [69, 13]}, index=pd.Index(["records_identified", "duplicates"], name="box"))
    shown = reader_frame(frame, index=True)
    assert list(shown.index) == ["records identified", "duplicates"] and shown.index.name == "box"


def test_escape_and_render_never_let_markup_through():
    assert "<" not in escape(PAYLOAD) and "&lt;script&gt;" in escape(PAYLOAD)
    page = render("<p title='{{ x }}'>{{ x }}</p>", x=PAYLOAD)
    assert page.count("<") == 2 and "&#34;" in page  # quotes are escaped too, so attributes stay closed
    # a fragment render() returned is markup: nesting it does not escape it twice
    inner = render("<b>{{ x }}</b>", x="a & b")
    assert render("<p>{{ inner }}</p>", inner=inner) == "<p><b>a &amp; b</b></p>"
    with pytest.raises(Exception, match="undefined"):
        render("{{ nothing }}")


def test_words_only_rewrites_code_labels():
    assert words("title_abstract") == "title abstract" and words("Cohen's kappa") == "Cohen's kappa"
