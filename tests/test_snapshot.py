"""Snapshots: replay of the bundled sample, rebuild from the corpus, loud failures."""

import filecmp
import json

import pandas as pd
import pytest

from reviewkit.entrez import ReplayTransport, efetch_params, run_search
from reviewkit.errors import SnapshotError
from reviewkit.io import read_jsonl
from reviewkit.protocol import load_protocol
from reviewkit.records import RECORD_COLUMNS, load_lookup_records, load_records
from reviewkit.snapshot import Snapshot, exchange_id
from tools.build_sample import CORPUS, build_sample

from helpers import PROTOCOL, SAMPLE_DIR


@pytest.fixture(scope="module")
def corpus():
    return list(read_jsonl(CORPUS))


def test_replaying_the_sample_reproduces_its_manifests():
    protocol = PROTOCOL
    snap = Snapshot.open(SAMPLE_DIR)
    assert snap.is_sample and "not a complete PubMed search" in snap.info["note"]
    for key in protocol.searches:
        result = run_search(ReplayTransport(snap), protocol, key, progress=False)
        manifest = snap.manifest(key)
        assert result.count == manifest["count"] == len(result.pmids)
        assert result.retrieved == result.count
        assert manifest["query"] == protocol.query(key)
        for field in ("database", "query_translation", "date_run", "mindate", "maxdate", "pmids"):
            assert manifest[field], field


def test_sample_search_results_are_the_corpus_records_with_pmids(corpus):
    snap = Snapshot.open(SAMPLE_DIR)
    for key in ("aud", "oud", "cocaine", "gambling"):
        expected = {r["pmid"] for r in corpus if r["pmid"] and r["collection"] == "search" and key in r["retrieved_by"]}
        assert set(snap.manifest(key)["pmids"]) == expected


def test_records_table_merges_searches_per_pmid(corpus):
    records = load_records(SAMPLE_DIR)
    assert list(records.columns) == RECORD_COLUMNS
    assert records["record_id"].is_unique
    by_pmid = {r["pmid"]: r for r in corpus if r["pmid"]}
    for row in records.itertuples():
        rec = by_pmid[row.pmid]
        assert sorted(row.searches) == sorted(rec["retrieved_by"])
        assert row.title == rec["title"]
        assert row.abstract == ""  # the corpus has no abstracts and none is invented
        assert row.doi == (rec["doi"].lower() if rec["doi"] else None)
        assert (None if row.year is pd.NA else int(row.year)) == rec["year"]


def test_lookups_hold_the_citation_check_records(corpus):
    lookups = load_lookup_records(SAMPLE_DIR)
    expected = {r["pmid"] for r in corpus if r["collection"] == "citation-check" and r["pmid"]}
    assert set(lookups["pmid"]) == expected
    ris = (SAMPLE_DIR / "lookups" / "records_without_pmid.ris").read_text()
    assert ris.count("ER  -") == sum(1 for r in corpus if r["collection"] == "citation-check" and not r["pmid"])


def test_other_methods_hold_search_records_without_pmid(corpus):
    ris = (SAMPLE_DIR / "other_methods" / "citation_searching.ris").read_text()
    expected = [r for r in corpus if not r["pmid"] and r["collection"] == "search" and r["retrieved_by"]]
    assert ris.count("ER  -") == len(expected)
    assert "et al" not in ris


def test_rebuilding_the_sample_from_the_corpus_is_byte_identical(tmp_path):
    out = tmp_path / "sample"
    build_sample(out)
    cmp = filecmp.dircmp(SAMPLE_DIR, out)

    def diffs(c):
        found = c.left_only + c.right_only + c.diff_files
        for sub in c.subdirs.values():
            found += diffs(sub)
        return found

    assert diffs(cmp) == []


def test_missing_request_names_it(tmp_path):
    snap = Snapshot.create(tmp_path / "s", sample=False, note="test")
    with pytest.raises(SnapshotError, match=r"no recorded efetch request \(db=pubmed, id=123"):
        ReplayTransport(snap).request("efetch", efetch_params(["123"]))


def test_altered_body_is_detected(tmp_path):
    snap = Snapshot.create(tmp_path / "s", sample=False, note="test")
    ex = snap.put("efetch", efetch_params(["1"]), b"<PubmedArticleSet/>")
    (tmp_path / "s" / "exchanges" / f"{ex.id}.body").write_bytes(b"changed")
    with pytest.raises(SnapshotError, match="does not match its recorded sha256"):
        snap.load(ex.id)


def test_credentials_are_never_stored_and_do_not_change_the_id(tmp_path):
    snap = Snapshot.create(tmp_path / "s", sample=False, note="test")
    params = {"db": "pubmed", "term": "x", "api_key": "KEY-0123456789abcdef", "email": "me@example.org",
              "tool": "reviewkit"}
    ex = snap.put("esearch", params, b"<eSearchResult/>")
    assert ex.id == exchange_id("esearch", {"db": "pubmed", "term": "x"})
    stored = (tmp_path / "s" / "exchanges" / f"{ex.id}.json").read_text()
    assert "KEY-0123456789abcdef" not in stored and "me@example.org" not in stored
    assert json.loads(stored)["params"] == {"db": "pubmed", "term": "x", "tool": "reviewkit"}


def test_replay_with_a_changed_protocol_fails_loudly(tmp_path):
    import yaml

    data = yaml.safe_load((SAMPLE_DIR.parent.parent / "protocol.yml").read_text())
    data["searches"]["gambling"]["text"].append("betting")
    path = tmp_path / "protocol.yml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(SnapshotError, match="no recorded esearch request"):
        run_search(ReplayTransport(Snapshot.open(SAMPLE_DIR)), load_protocol(path), "gambling", progress=False)
