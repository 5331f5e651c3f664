"""The extraction table: what was measured, how the source gives it, where it comes from; named errors."""

import json

import pandas as pd
import pytest
import yaml

from reviewkit.errors import ProtocolError
from reviewkit.evidence import load_studies
from reviewkit.extraction import ExtractionError, load_extraction
from reviewkit.protocol import load_protocol

from helpers import EXTRACTION, PROTOCOL, ROOT, STUDIES

OUTCOMES = [json.loads(line) for line in (ROOT / "data/corpus/outcomes.jsonl").read_text().splitlines() if line]


@pytest.fixture(scope="module")
def table():
    return load_extraction(EXTRACTION, PROTOCOL, load_studies(STUDIES))


def test_every_row_names_domain_comparison_source_and_study(table):
    assert set(table["outcome_domain"]) <= set(PROTOCOL.outcomes)
    assert set(table["comparator_type"]) <= {*PROTOCOL.comparator_types, "other"}
    assert set(table["study_id"]) <= set(load_studies(STUDIES)["study_id"])
    assert table["source_kind"].notna().all() and table["source"].notna().all()
    # A dose or schedule comparison is its own comparison, never the control comparison.
    assert set(table.loc[table["comparator_type"] == "less ketamine", "comparison"]) == {"dose"}
    assert set(table.loc[table["comparator_type"].isin(["placebo", "active placebo", "usual care"]),
                         "comparison"]) == {"control"}


def test_the_errata_numbers_are_in(table):
    row = table.set_index("row_id")
    grabski = row.loc["grabski2022-days-abstinent"]
    assert (grabski["estimate"], grabski["ci_low"], grabski["ci_high"], grabski["pooled"]) == (10.1, 1.1, 19.0, True)
    assert grabski["source_kind"] == "abstract"
    krupitsky = row.loc["krupitsky2007-abstinence"]
    assert (krupitsky["events_t"], krupitsky["n_t"], krupitsky["events_c"], krupitsky["n_c"]) == (13, 26, 6, 27)
    assert krupitsky["comparison"] == "dose" and "59 randomized, 53 analysed" in krupitsky["derivation"]
    adjusted = row.loc["dakwar2019-abstinence-adjusted"]
    assert (adjusted["estimate"], adjusted["ci_low"], adjusted["ci_high"]) == (5.7, 1.3, 25.1)
    assert not adjusted["pooled"] and "crude" in adjusted["not_pooled_reason"]
    assert row.loc["dakwar2019-relapse", "measure"] == "HR" and row.loc["dakwar2019-relapse", "estimate"] == 0.47
    # Dakwar 2020: the APA summary's figures, and the news rewrite kept beside them, not pooled.
    apa = row.loc["dakwar2020-drinking"]
    assert (apa["events_t"], apa["n_t"], apa["events_c"], apa["n_c"]) == (8, 17, 13, 22) and apa["pooled"]
    assert not row.loc["dakwar2020-abstinence-news", "pooled"]
    assert "contradicts" in row.loc["dakwar2020-abstinence-news", "not_pooled_reason"]
    # Jovaisa 2006: withdrawal vs placebo, 50 of 58 randomized analysed, no means: a direction only.
    jov = row.loc["jovaisa2006-withdrawal"]
    assert (jov["comparison"], jov["outcome_domain"], jov["n_t"], jov["n_c"]) == ("control", "withdrawal", 22, 28)
    assert jov["reported_direction"] == "favours intervention" and pd.isna(jov["estimate"])


def test_every_number_is_one_the_corpus_or_the_errata_give(table):
    """Numbers with a corpus outcome record appear in its reported effect or arms (never invented)."""
    errata = (ROOT / "data/corpus/ERRATA.md").read_text(encoding="utf-8")
    corpus_text = json.dumps(OUTCOMES) + errata
    for _, r in table.iterrows():
        for col in ("estimate", "ci_low", "ci_high", "pct_t", "pct_c", "mean_t", "mean_c", "mean_pre", "mean_post"):
            value = r[col]
            if pd.isna(value):
                continue
            shown = f"{value:g}"
            derived = isinstance(r["derivation"], str) and shown in r["derivation"]
            assert shown in corpus_text or shown.lstrip("-") in corpus_text or derived, (r["row_id"], col, shown)


def test_rows_from_secondary_summaries_say_so(table):
    secondary = table[table["source_kind"] == "secondary summary"]
    assert {"dakwar2020-drinking", "grabski2022-relapse", "dakwar2020-abstinence-news"} <= set(secondary["row_id"])
    assert all(any(w in s.lower() for w in ("news", "summary", "review", "blog", "alert"))
               for s in secondary["source"])


def write_variant(tmp_path, edit) -> object:
    df = pd.read_csv(EXTRACTION, dtype=str, keep_default_na=False)
    edit(df)
    path = tmp_path / "outcomes.csv"
    df.to_csv(path, index=False)
    return path


def set_cell(row_id, col, value):
    def edit(df):
        df.loc[df["row_id"] == row_id, col] = value
    return edit


@pytest.mark.parametrize("edit, message", [
    (set_cell("pizon2018-intubation", "measure", "ODDS"), r"row \d+ \(Pizon 2018, .*'measure': 'ODDS' is not one of"),
    (set_cell("dakwar2020-drinking", "events_t", "9"), r"Dakwar 2020.*'events_t'.*not the one count"),
    (set_cell("dakwar2020-drinking", "disorder", "alcohol"),
     r"'disorder': 'alcohol' is not one of aud, oud, cocaine, gambling \(the searches of protocol.yml\)"),
    (set_cell("dakwar2020-drinking", "outcome_domain", "mood"), r"'outcome_domain': 'mood' is not one of abstinence"),
    (set_cell("dakwar2020-drinking", "comparator_type", "sham"), r"'comparator_type': 'sham' is not one of placebo"),
    (set_cell("dakwar2020-abstinence-news", "pooled", "yes"), r"enters the synthesis of aud, abstinence, control"),
    (set_cell("krupitsky2007-craving", "pooled", "yes"), r"'pooled': a pooled row needs 2x2 counts"),
    (set_cell("krupitsky2007-craving", "reported_direction", ""), r"'reported_direction': a row without usable "),
    (set_cell("krupitsky2007-abstinence", "not_pooled_reason", ""), None),  # pooled: no reason needed
    (set_cell("yoon2025-abstinence", "not_pooled_reason", ""), r"'not_pooled_reason': a row that is not pooled"),
    (set_cell("dakwar2019-abstinence", "n_t", "30"), r"'events_t'|'n_t': 30 analysed is more than the 27"),
    (set_cell("pizon2018-icu-stay", "pooled", "yes"), r"outcome domain 'other' is not synthesised"),
    (set_cell("grabski2022-therapy-vs-education", "pooled", "yes"), r"comparator type 'other' is in no synthesis"),
    (set_cell("dakwar2019-relapse", "ci_low", "0.5"), r"does not contain the estimate"),
    (set_cell("manza2025-retention", "events", "4"), r"more events than participants"),
    (set_cell("dakwar2019-craving", "study_id", "PMID:1"), r"'study_id': 'PMID:1' has no row in the table of included"),
    (set_cell("dakwar2019-craving", "source_kind", "website"), r"'source_kind': 'website' is not one of full text"),
    (set_cell("engeriser2026-cows", "sd_pre", "-1"), r"Engeriser 2026.*'sd_pre'.*cannot be negative"),
])
def test_bad_rows_name_file_row_study_and_column(tmp_path, edit, message):
    path = write_variant(tmp_path, edit)
    if message is None:
        load_extraction(path, PROTOCOL, load_studies(STUDIES))
        return
    with pytest.raises(ExtractionError, match=message) as info:
        load_extraction(path, PROTOCOL, load_studies(STUDIES))
    assert str(path) in str(info.value)


def test_unreadable_or_short_tables(tmp_path):
    path = write_variant(tmp_path, lambda df: df.pop("source_kind"))
    with pytest.raises(ExtractionError, match="missing column"):
        load_extraction(path, PROTOCOL)
    with pytest.raises(ExtractionError, match="does not exist"):
        load_extraction(tmp_path / "none.csv", PROTOCOL)
    (tmp_path / "bad.csv").write_text(EXTRACTION.read_text().replace("17,23,17,22", "1e999,23,17,22", 1))
    with pytest.raises(ExtractionError, match=r"'randomized_t': '1e999' is not a finite number"):
        load_extraction(tmp_path / "bad.csv", PROTOCOL)


def test_the_disorders_domains_and_comparisons_are_the_protocols(tmp_path):
    """A review that adds a search, an outcome domain or a comparator names them in its protocol only."""
    raw = yaml.safe_load(PROTOCOL.path.read_text(encoding="utf-8"))
    raw["searches"]["cannabis"] = {"label": "Cannabis use disorder", "mesh": ["Marijuana Abuse"], "text": ["cannabis"]}
    raw["outcomes"]["sleep"] = {"label": "Sleep"}
    raw["comparisons"]["control"]["comparators"].append("sham infusion")
    (tmp_path / "protocol.yml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    protocol = load_protocol(tmp_path / "protocol.yml")
    path = write_variant(tmp_path, lambda df: (set_cell("krupitsky2007-craving", "disorder", "cannabis")(df),
                                               set_cell("krupitsky2007-craving", "outcome_domain", "sleep")(df),
                                               set_cell("krupitsky2007-craving", "comparator_type", "sham infusion")(df)))
    with pytest.raises(ExtractionError, match="'cannabis' is not one of aud, oud, cocaine, gambling"):
        load_extraction(path, PROTOCOL)
    row = load_extraction(path, protocol).set_index("row_id").loc["krupitsky2007-craving"]
    assert (row["disorder"], row["outcome_domain"], row["comparison"]) == ("cannabis", "sleep", "control")


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["comparisons"]["dose"]["comparators"].append("placebo"), r"lists 'placebo', which comparisons.control"),
    (lambda d: d["comparisons"]["dose"].update(kind="doses"), r"comparisons.dose.kind' must be one of control, dose"),
    (lambda d: d["outcomes"].update({"Mood": {"label": "Mood"}}), r"keys are lower-case"),
    (lambda d: d["outcomes"]["other"].update(synthesise="no"), r"outcomes.other.synthesise' must be true or false"),
])
def test_protocol_outcomes_and_comparisons_are_checked(tmp_path, mutate, message):
    raw = yaml.safe_load(PROTOCOL.path.read_text(encoding="utf-8"))
    mutate(raw)
    (tmp_path / "protocol.yml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ProtocolError, match=message):
        load_protocol(tmp_path / "protocol.yml")
