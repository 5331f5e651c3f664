"""The E-utilities emulator, driven over real HTTP by the real client (Bio.Entrez).

Bio.Entrez hard-codes https://eutils.ncbi.nlm.nih.gov; a urllib opener installed
for each test rewrites that host to the emulator on 127.0.0.1 (the approach
Bio.Entrez's own URL handling allows without patching it).
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.error import HTTPError, URLError

import pandas as pd
import pytest
from Bio import Entrez

from reviewkit.testing.emulator import ESEARCH_CAP, Emulator, Faults, parse_term, synthetic_records

ROOT = Path(__file__).resolve().parents[1]
NCBI = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"


class _ToEmulator(urllib.request.BaseHandler):
    handler_order = 100  # before HTTPSHandler sets the Host header

    def __init__(self, base: str):
        self.base = base

    def https_request(self, req):
        req.full_url = req.full_url.replace(NCBI, self.base)
        return req


@pytest.fixture
def entrez(monkeypatch):
    """Bio.Entrez with its settings restored afterwards; ``entrez.at(emu)`` redirects it."""
    monkeypatch.setattr(Entrez, "email", "emulator-test@example.org")
    monkeypatch.setattr(Entrez, "api_key", None)
    monkeypatch.setattr(Entrez, "max_tries", 1)  # see raw server behaviour, no client retries

    def at(emu: Emulator):
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _ToEmulator(emu.base_url))
        urllib.request.install_opener(opener)
        return Entrez

    Entrez.at = at
    yield Entrez
    del Entrez.at
    urllib.request.install_opener(None)


def _ids(n, **kw):
    return synthetic_records(n, **kw)


@pytest.fixture
def small():
    recs = _ids(120, terms=["ketamine alcohol"], start=dt.date(2010, 1, 1), end=dt.date(2019, 12, 31), seed=3)
    with Emulator(recs, rate_limit=False) as emu:
        yield emu, recs


def test_esearch_paging_and_history(small, entrez):
    emu, recs = small
    E = entrez.at(emu)
    first = E.read(E.esearch(db="pubmed", term="Ketamine  alcohol", retmax=50, usehistory="y"))
    assert first["Count"] == "120" and first["RetMax"] == "50" and first["RetStart"] == "0"
    assert first["WebEnv"].startswith("MCID_") and first["QueryKey"] == "1"
    rest = E.read(E.esearch(db="pubmed", term="ketamine alcohol", retstart=100, retmax=50))
    assert rest["RetMax"] == "20" and "WebEnv" not in rest  # RetMax counts the ids returned
    pages = [E.read(E.esearch(db="pubmed", term="ketamine alcohol", retstart=s, retmax=50))["IdList"] for s in (0, 50, 100)]
    all_ids = [i for p in pages for i in p]
    assert sorted(all_ids) == sorted(r["pmid"] for r in recs) and len(set(all_ids)) == 120
    # the history set pages through EFetch
    got = E.read(E.efetch(db="pubmed", WebEnv=first["WebEnv"], query_key="1", retstart=100, retmax=50, retmode="xml"))
    assert [str(a["MedlineCitation"]["PMID"]) for a in got["PubmedArticle"]] == all_ids[100:]


def test_esearch_reports_true_count_past_the_cap(entrez):
    recs = _ids(ESEARCH_CAP + 1500, terms=["big"])
    with Emulator(recs, rate_limit=False) as emu:
        E = entrez.at(emu)
        res = E.read(E.esearch(db="pubmed", term="big", retmax=100000))
        assert res["Count"] == str(len(recs)) and len(res["IdList"]) == ESEARCH_CAP
        assert "Restrictions achieved" in res["WarningList"]["OutputMessage"][0]
        with pytest.raises(RuntimeError, match="cannot be larger than 9998"):
            E.read(E.esearch(db="pubmed", term="big", retstart=ESEARCH_CAP, retmax=10))


def test_date_limits_in_parameters_and_in_the_term(small, entrez):
    emu, recs = small
    E = entrez.at(emu)

    def expected(lo, hi):
        return {r["pmid"] for r in recs if lo <= r["pdat"] <= hi}

    by_params = E.read(E.esearch(db="pubmed", term="ketamine alcohol", mindate="2012/03", maxdate="2014",
                                 datetype="pdat", retmax=500))
    assert set(by_params["IdList"]) == expected("2012/03/01", "2014/12/31") != set()
    for term in ('(ketamine alcohol) AND ("2012/03/01"[pdat] : "2014/12/31"[pdat])',
                 "ketamine alcohol AND 2012/03/01:2014/12/31[pdat]"):
        assert set(E.read(E.esearch(db="pubmed", term=term, retmax=500))["IdList"]) == expected("2012/03/01", "2014/12/31")
    day = recs[0]["pdat"]
    one_day = E.read(E.esearch(db="pubmed", term=f'ketamine alcohol AND "{day}"[pdat]', retmax=500))
    assert set(one_day["IdList"]) == expected(day, day)
    lo, hi = sorted(int(r["pmid"]) for r in recs)[10:12]
    uid = E.read(E.esearch(db="pubmed", term=f"ketamine alcohol AND {lo}:{hi}[uid]"))
    assert uid["IdList"] == [str(hi), str(lo)]


def test_phrase_not_found_is_reported_in_an_error_list(small, entrez):
    E = entrez.at(small[0])
    res = E.read(E.esearch(db="pubmed", term="ketamine gambling"))
    assert res["Count"] == "0" and res["IdList"] == []
    assert res["ErrorList"]["PhraseNotFound"] == ["ketamine gambling"]
    assert res["WarningList"]["OutputMessage"] == ["No items found."]


def test_efetch_by_id_list_posts_and_skips_unknown_ids(small, entrez):
    emu, recs = small
    E = entrez.at(emu)
    ids = [r["pmid"] for r in recs] + ["1"]  # 121 ids + an unknown one
    many = ids * 2  # 242 ids: Bio.Entrez switches to POST; each record comes back once
    got = E.read(E.efetch(db="pubmed", id=many, retmode="xml"))
    assert len(got["PubmedArticle"]) == 120 and emu.requests("efetch")[-1].method == "POST"
    with pytest.raises(HTTPError) as bad:
        E.efetch(db="pubmed", id="0,abc", retmode="xml")
    assert bad.value.code == 400 and b"ID list is empty" in bad.value.read()


def test_expired_history_answers_unable_to_obtain_query(small, entrez):
    emu, _ = small
    E = entrez.at(emu)
    res = E.read(E.esearch(db="pubmed", term="ketamine alcohol", usehistory="y"))
    emu.expire_history()
    body = E.efetch(db="pubmed", WebEnv=res["WebEnv"], query_key="1", retmode="xml").read()
    assert b"<ERROR>Unable to obtain query #1</ERROR>" in body and b"efetch.dtd" in body


def test_esummary_epost_and_ecitmatch(small, entrez):
    emu, recs = small
    E = entrez.at(emu)
    summ = E.read(E.esummary(db="pubmed", id=recs[0]["pmid"]))
    assert summ[0]["Title"] == recs[0]["title"] and summ[0]["ArticleIds"]["doi"] == recs[0]["doi"]
    post = E.read(E.epost(db="pubmed", id=",".join(r["pmid"] for r in recs[:5])))
    fetched = E.read(E.efetch(db="pubmed", WebEnv=post["WebEnv"], query_key=post["QueryKey"], retmode="xml"))
    assert len(fetched["PubmedArticle"]) == 5
    r = recs[7]
    first_page = r["pages"].split("-")[0]
    lines = E.ecitmatch(db="pubmed", bdata=[
        {"journal_title": "Synth J Emul Tests", "year": str(r["year"]), "volume": r["volume"],
         "first_page": first_page, "author_name": "synthetic ab", "key": "hit"},
        {"journal_title": "Synth J Emul Tests", "year": "1850", "volume": "1", "first_page": "1",
         "author_name": "x", "key": "none"},
        {"journal_title": "No Such Journal", "year": "2010", "volume": "1", "first_page": "1",
         "author_name": "x", "key": "badjournal"},
    ]).read().splitlines()
    results = {line.split("|")[5]: line.split("|")[6] for line in lines}
    assert results == {"hit": r["pmid"], "none": "NOT_FOUND", "badjournal": "NOT_FOUND;INVALID_JOURNAL"}


def test_efetch_serves_real_corpus_records_that_parse_back_field_for_field(entrez):
    from reviewkit.pubmed import read_pubmed_xml
    from reviewkit.testing.emulator import load_records

    recs = load_records(ROOT / "data/corpus/records.jsonl")
    with Emulator(recs, rate_limit=False) as emu:
        body = entrez.at(emu).efetch(db="pubmed", id=[r["pmid"] for r in recs], retmode="xml").read()
    table = read_pubmed_xml(body).set_index("pmid")
    assert len(table) == len(recs) > 50

    def value(v):
        return None if v is None or v is pd.NA or v == "" or (isinstance(v, float) and v != v) else v

    for rec in recs:
        row = table.loc[rec["pmid"]]
        for col in ("title", "journal", "volume", "issue", "pages", "language"):
            assert value(row[col]) == value(rec.get(col)), (rec["pmid"], col)
        # "et al" becomes AuthorList CompleteYN="N", which the parser reads back as a last "et al"
        assert list(row["authors"]) == rec["authors"] and value(row["year"]) == rec["year"]
        assert value(row["doi"]) == (rec["doi"].lower() if rec.get("doi") else None)


def test_rate_limit_answers_429_with_ncbi_json(entrez):
    with Emulator(_ids(5, terms=["k"]), rate_limit=True) as emu:
        statuses = []
        for _ in range(5):
            try:
                urllib.request.urlopen(f"{emu.base_url}esearch.fcgi?db=pubmed&term=k").read()
                statuses.append(200)
            except HTTPError as exc:
                statuses.append(exc.code)
                body = json.loads(exc.read())
                assert body["error"] == "API rate limit exceeded" and body["limit"] == "3"
                assert exc.headers["Content-Type"] == "application/json" and "Retry-After" not in exc.headers
        assert statuses == [200, 200, 200, 429, 429]
        keyed = []
        for _ in range(10):  # a separate key has its own window of 10 a second
            keyed.append(urllib.request.urlopen(f"{emu.base_url}esearch.fcgi?db=pubmed&term=k&api_key=K1").status)
        assert keyed == [200] * 10
        with pytest.raises(HTTPError) as over:
            urllib.request.urlopen(f"{emu.base_url}esearch.fcgi?db=pubmed&term=k&api_key=K1")
        assert json.loads(over.value.read())["limit"] == "10"


def test_retry_after_header_when_configured(entrez):
    with Emulator(_ids(2, terms=["k"]), retry_after=1.5) as emu:
        emu.inject("429")
        with pytest.raises(HTTPError) as exc:
            urllib.request.urlopen(f"{emu.base_url}esearch.fcgi?db=pubmed&term=k")
        assert exc.value.code == 429 and exc.value.headers["Retry-After"] == "1.5"


@pytest.mark.parametrize("kind", ["500", "502", "503"])
def test_server_error_faults(small, entrez, kind):
    emu, _ = small
    E = entrez.at(emu)
    emu.inject(kind, utility="esearch")
    with pytest.raises(HTTPError) as exc:
        E.esearch(db="pubmed", term="ketamine alcohol")
    assert exc.value.code == int(kind)
    assert E.read(E.esearch(db="pubmed", term="ketamine alcohol"))["Count"] == "120"  # one-off


def test_connection_reset_truncated_slow_and_error_body_faults(small, entrez):
    emu, recs = small
    E = entrez.at(emu)
    emu.inject("reset")
    with pytest.raises((URLError, ConnectionError, http.client.HTTPException)):
        E.esearch(db="pubmed", term="ketamine alcohol").read()
    emu.inject("truncate")
    with pytest.raises(http.client.IncompleteRead):
        E.efetch(db="pubmed", id=recs[0]["pmid"], retmode="xml").read()
    emu.inject("error", utility="esearch")
    with pytest.raises(RuntimeError, match="Search Backend failed"):
        E.read(E.esearch(db="pubmed", term="ketamine alcohol"))
    emu.faults = Faults(slow_seconds=1.0)
    emu.inject("slow")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(0.3)  # Bio.Entrez has no timeout of its own
    try:
        with pytest.raises((TimeoutError, socket.timeout, URLError)):
            E.esearch(db="pubmed", term="ketamine alcohol").read()
    finally:
        socket.setdefaulttimeout(previous)
    deadline = time.monotonic() + 5
    while len(emu.requests()) < 4 and time.monotonic() < deadline:  # the slow answer is logged when sent
        time.sleep(0.05)
    assert [e.fault for e in emu.requests()] == ["reset", "truncate", "error", "slow"]


def test_expired_fault_only_hits_history_requests(small, entrez):
    emu, _ = small
    E = entrez.at(emu)
    res = E.read(E.esearch(db="pubmed", term="ketamine alcohol", usehistory="y"))
    emu.faults = Faults(rate=1.0, seed=1, kinds=("expired",))
    assert E.read(E.esearch(db="pubmed", term="ketamine alcohol"))["Count"] == "120"  # nothing to expire
    body = E.efetch(db="pubmed", WebEnv=res["WebEnv"], query_key="1", retmode="xml").read()
    assert b"Unable to obtain query #1" in body


def test_random_faults_repeat_with_the_same_seed(entrez):
    def faults_seen(seed):
        with Emulator(_ids(3, terms=["k"]), rate_limit=False, faults=Faults(rate=0.3, seed=seed, kinds=("500", "503"))) as emu:
            for _ in range(40):
                try:
                    urllib.request.urlopen(f"{emu.base_url}esearch.fcgi?db=pubmed&term=k").read()
                except HTTPError:
                    pass
            return [e.fault for e in emu.requests()]

    first = faults_seen(7)
    assert first == faults_seen(7) != faults_seen(8)
    assert 4 <= sum(f is not None for f in first) <= 20


def test_parse_term_separates_filters_from_the_query():
    q = parse_term('((ketamine[tiab]) AND (alcohol)) AND ("2020/01"[pdat] : "2020/02"[pdat]) AND 5:9[uid]')
    assert q.core == "(ketamine[tiab]) and (alcohol)"
    assert q.filters == (("pdat", dt.date(2020, 1, 1), dt.date(2020, 2, 29)), ("uid", 5, 9))


def test_field_searches_a_citation_check_sends():
    berman = {"pmid": "10686270", "year": 2000, "title": "Antidepressant effects of ketamine in depressed patients",
              "authors": ["Berman RM", "Cappiello A"]}
    other = {"pmid": "5", "year": 2000, "title": "Ketamine effects", "authors": ["Bermanson A", "Berman Q"]}
    emu = Emulator([berman, other])
    assert emu.search("Berman R[au] AND 2000[pdat]") == [10686270]
    assert emu.search("Berman[au]") == [10686270, 5]  # "Berman Q", not "Bermanson A", for record 5
    assert emu.search("Berman[1au]") == [10686270]
    assert emu.search("Berman R[au] AND 2001[pdat]") == []
    assert emu.search("antidepressant[ti] AND ketamine[ti] AND patients[ti]") == [10686270]
    assert emu.search('"effects of ketamine"[ti]') == [10686270]
    assert emu.search('"ketamine effects"[ti]') == [5]
    assert emu.search("ketamine[ti] AND alcohol[ti]") == []
    assert parse_term("Berman R[au] AND ketamine[ti] AND 2000[pdat]").fields == (("au", "berman r"), ("ti", "ketamine"))


def test_command_line_serves_a_records_file(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "reviewkit.testing.emulator", "--port", str(port),
         "--records", str(ROOT / "data/corpus/records.jsonl"), "--no-rate-limit"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )
    try:
        banner = proc.stdout.readline()
        assert f"127.0.0.1:{port}/entrez/eutils/" in banner
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        body = opener.open(f"http://127.0.0.1:{port}/entrez/eutils/esearch.fcgi?db=pubmed&term=aud&retmax=500").read()
        expected = sum(1 for line in (ROOT / "data/corpus/records.jsonl").read_text().splitlines()
                       if '"aud"' in line.split('"retrieved_by"')[1].split("]")[0] and '"pmid": null' not in line)
        assert f"<Count>{expected}</Count>".encode() in body and expected > 0
    finally:
        proc.terminate()
        proc.wait(timeout=10)
