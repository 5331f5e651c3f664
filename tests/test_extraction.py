"""The extraction table: schema checks, identifiers traced to the corpus, one comparison per trial."""

import json

import pandas as pd
import pytest

from reviewkit.effects import effect_sizes
from reviewkit.extraction import ExtractionError, analysis_rows, load_extraction, pool_measure
from reviewkit.meta import pool_by_disorder
from reviewkit.protocol import load_protocol

from helpers import EXTRACTION, PROTOCOL, ROOT

RECORDS = [json.loads(line) for line in (ROOT / "data/corpus/records.jsonl").read_text().splitlines() if line]
OUTCOMES = [json.loads(line) for line in (ROOT / "data/corpus/outcomes.jsonl").read_text().splitlines() if line]


@pytest.fixture(scope="module")
def table():
    return load_extraction(EXTRACTION, PROTOCOL)


def test_one_row_per_corpus_outcome_of_an_included_study(table):
    assert len(table) == len(OUTCOMES)
    assert sorted(table["study"]) == sorted(o["study"] for o in OUTCOMES)
    assert set(table["disorder"]) <= set(PROTOCOL.searches)


def test_identifiers_come_from_the_matching_included_record(table):
    for _, row in table.iterrows():
        author, year = row["study"].rsplit(" ", 1)
        hits = [r for r in RECORDS if r["would_include"] and r["authors"][0].split()[0] == author
                and r["year"] in (int(year), None) and (r["journal"] or None) == row["journal"]]
        assert len(hits) == 1, row["row_id"]
        assert hits[0]["pmid"] == row["pmid"], row["row_id"]  # never a PMID the corpus lacks
        assert (hits[0]["doi"] or None) == row["doi"], row["row_id"]


def test_numbers_are_those_of_the_corpus(table):
    by_study = {}
    for o in OUTCOMES:
        for arm in o["arms"]:
            by_study.setdefault(o["study"], set()).update(v for k, v in arm.items() if k != "name" and v is not None)
    for _, row in table.iterrows():
        text = " ".join(str(o.get(k)) for o in OUTCOMES if o["study"] == row["study"]
                        for k in ("reported_effect", "notes"))
        for col in ("events_t", "events_c", "n_t", "n_c", "mean_t", "mean_c", "estimate", "ci_low", "ci_high"):
            value = row[col]
            if pd.isna(value):
                continue
            derived = col.startswith("events") and pd.notna(row["pct_" + col[-1]])
            summed = col.startswith("n_") and row["row_id"] == "grabski2022-pda-pooled"  # 24+24, 23+25
            # signs are compared apart: the source prints "decreased by 2.83" and "\u20135.58"
            in_corpus = value in by_study[row["study"]] or f"{abs(value):g}" in text or f"{abs(value):.2f}" in text
            assert in_corpus or derived or summed, (row["row_id"], col, value)


def test_the_abstinence_analysis(table):
    rows = analysis_rows(table, "abstinence")
    assert list(rows["row_id"]) == ["dakwar2020-abstinence", "grabski2022-relapse", "dakwar2019-abstinence"]
    assert pool_measure(rows) == "OR"
    e = effect_sizes(rows, "OR")
    assert list(e["flipped"]) == [False, True, False]  # relapse inverted to "no relapse"
    sub = pool_by_disorder(e, disorders=tuple(PROTOCOL.searches))
    assert [k for k, r in sub.subgroups.items() if r is None] == ["oud", "gambling"]
    assert sub.subgroups["cocaine"].k == 1 and sub.overall.k == 3


def test_rows_sharing_participants_are_marked_and_pooled_once(table):
    grabski = table[table["study"] == "Grabski 2022"]
    assert set(grabski["participants"]) == {"Grabski 2022"}
    assert grabski["pool_group"].notna().sum() == 1
    assert grabski[grabski["pool_group"].isna()]["not_pooled_reason"].notna().all()
    assert not table[table["study"] == "Rothberg 2021"].shape[0]  # secondary analysis of Dakwar 2020: no own row


def test_news_sourced_rows_say_so(table):
    dakwar2020 = table.set_index("row_id").loc["dakwar2020-abstinence"]
    assert dakwar2020["secondary_source"] and "news summary" in dakwar2020["source"]


def write_variant(tmp_path, edit):
    df = pd.read_csv(EXTRACTION, dtype=str, keep_default_na=False)
    edited = edit(df)  # an edit either changes df in place or returns a new frame
    df = df if edited is None else edited
    path = tmp_path / "outcomes.csv"
    df.to_csv(path, index=False)
    return path


def set_cell(row_id, col, value):
    def edit(df):
        df.loc[df["row_id"] == row_id, col] = value
    return edit


@pytest.mark.parametrize("edit,message", [
    (set_cell("krupitsky1997-abstinence", "events_t", "120"), r"Krupitsky 1997.*'events_t'.*more events than participants"),
    (set_cell("krupitsky1997-abstinence", "n_c", "1"), r"Krupitsky 1997.*'n_c'.*at least 2"),
    (set_cell("krupitsky1997-abstinence", "n_c", "ten"), r"row 7, column 'n_c': 'ten' is not a number"),
    (set_cell("pizon2018-intubation", "ci_high", "0.10"), r"Pizon 2018.*'ci_high'.*does not contain the estimate"),
    (set_cell("pizon2018-benzodiazepine", "sd_t", "-3"), r"Pizon 2018.*'sd_t'.*cannot be negative"),
    (set_cell("pizon2018-intubation", "measure", "ODDS"), r"Pizon 2018.*'measure'.*'ODDS' is not one of"),
    (set_cell("dakwar2020-abstinence", "events_t", "13"), r"Dakwar 2020.*'events_t'.*not the one count"),
    (set_cell("dakwar2020-abstinence", "disorder", "alcohol"),
     r"Dakwar 2020.*'disorder'.*'alcohol' is not one of aud, oud, cocaine, gambling \(the searches of .*protocol.yml\)"),
    (set_cell("dakwar2019-relapse", "pool_group", "abstinence"), r"'Dakwar 2019' enter pool_group 'abstinence' more than once"),
    (set_cell("krupitsky2007-abstinence", "not_pooled_reason", ""), r"Krupitsky 2007.*must say why"),
    (set_cell("pizon2018-intubation", "pmid", "PMID123"), r"Pizon 2018.*'pmid'"),
])
def test_bad_rows_name_file_row_study_and_column(tmp_path, edit, message):
    path = write_variant(tmp_path, edit)
    with pytest.raises(ExtractionError, match=message):
        load_extraction(path, PROTOCOL)


def test_missing_column_and_unknown_pool_group(tmp_path, table):
    path = write_variant(tmp_path, lambda df: df.drop(columns=["source"]))
    with pytest.raises(ExtractionError, match="missing column"):
        load_extraction(path, PROTOCOL)
    with pytest.raises(ExtractionError, match="no rows in pool_group 'craving'; groups in the table: abstinence"):
        analysis_rows(table, "craving")


def test_the_disorders_are_the_protocols_searches(tmp_path):
    """A review that adds a search (here cannabis) can extract outcomes for it: nothing else lists disorders."""
    import yaml

    raw = yaml.safe_load(PROTOCOL.path.read_text(encoding="utf-8"))
    raw["searches"]["cannabis"] = {"label": "Cannabis use disorder", "mesh": ["Marijuana Abuse"], "text": ["cannabis"]}
    (tmp_path / "protocol.yml").write_text(yaml.safe_dump(raw), encoding="utf-8")
    protocol = load_protocol(tmp_path / "protocol.yml")
    path = write_variant(tmp_path, set_cell("krupitsky2007-abstinence", "disorder", "cannabis"))
    with pytest.raises(ExtractionError, match="'cannabis' is not one of aud, oud, cocaine, gambling"):
        load_extraction(path, PROTOCOL)
    table = load_extraction(path, protocol)
    assert table.loc[table["row_id"] == "krupitsky2007-abstinence", "disorder"].item() == "cannabis"
