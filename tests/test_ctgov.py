"""ClinicalTrials.gov: the register query from the protocol, real recorded studies read as records, and
register searches over real HTTP against the loopback emulator (paging, faults, Retry-After, replay)."""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path

import pytest

from reviewkit.ctgov import (
    CTGOV,
    FIELDS,
    MANIFESTS,
    cochrane_listing,
    load_register_records,
    parse_page,
    register_query,
    search_register,
    study_row,
)
from reviewkit.errors import SnapshotError
from reviewkit.ratelimit import WindowLimiter
from reviewkit.snapshot import Snapshot
from reviewkit.testing.ctgov_emulator import CtgovEmulator, synthetic_studies
from reviewkit.testing.emulator import Faults
from reviewkit.testing.json_server import JSON_FAULT_KINDS
from reviewkit.transport import ApiTransport, ReplayTransport, ServiceError

from helpers import PROTOCOL, ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "ctgov"
AUD = {"conditions": ["Alcohol Use Disorder"], "interventions": ["Ketamine"]}


def recorded(name: str) -> dict:
    (path,) = [p for p in FIXTURES.glob(f"{name}*.json") if not p.name.endswith(".meta.json")]
    return json.loads(path.read_text(encoding="utf-8"))


def recorded_studies() -> list[dict]:
    """Every distinct study of the recorded answers (pages and single studies)."""
    out: dict[str, dict] = {}
    for path in sorted(FIXTURES.glob("t*.json")):
        if path.name.endswith(".meta.json"):
            continue
        data = json.loads(path.read_text(encoding="utf-8"))
        for study in data["studies"] if "studies" in data else [data]:
            out.setdefault(study["protocolSection"]["identificationModule"]["nctId"], study)
    return list(out.values())


def transport(tmp_path: Path, emu: CtgovEmulator, name: str = "snap", **kw) -> ApiTransport:
    snap = Snapshot.create(tmp_path / name, sample=False, note="emulator test")
    kw.setdefault("backoff", 0.01)
    kw.setdefault("timeout", 5)
    return ApiTransport(snap, CTGOV, base_url=emu.base_url, limiter=WindowLimiter(1000, 1.0), **kw)


def get(emu: CtgovEmulator, path: str) -> dict:
    with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(emu.base_url + path, timeout=5) as r:
        return json.loads(r.read())


# --- the query and the records ------------------------------------------------------

def test_the_register_query_is_the_protocols_terms():
    q = register_query(PROTOCOL, "aud")
    assert q["query.intr"] == "Ketamine OR esketamine"  # the MeSH heading and "ketamine" are one term
    assert q["query.cond"] == ('Alcoholism OR "Alcohol Drinking" OR "Alcohol-Related Disorders" OR "alcohol use disorder" '
                               'OR "alcohol dependence" OR "alcohol abuse" OR "alcohol withdrawal" OR "heavy drinking"')


def test_recorded_registrations_become_records_with_only_their_publications_linked():
    row = study_row(recorded("t2x_study_NCT02552212"))
    assert row["record_id"] == "CTG:NCT02552212" and row["source"] == "ClinicalTrials.gov"
    assert row["pmid"] is None and row["doi"] is None  # a registration is not a PubMed record
    # RESULT and DERIVED references are the trial's publications, in the register's order
    assert row["linked_pmids"] == ["35296532", "35733363", "34715908", "30848558"]
    assert row["status"] == "COMPLETED" and row["results_posted"] is True and row["phase"] == "PHASE3"
    assert row["start_date"] and row["enrolment"] > 0 and row["conditions"] and row["interventions"]
    assert "Registration: ClinicalTrials.gov NCT02552212" in row["abstract"] and "results posted: yes" in row["abstract"]
    background_only = study_row(recorded("t2x_study_NCT00973089"))
    assert background_only["linked_pmids"] == [] and background_only["status"] == "WITHDRAWN"


@pytest.mark.parametrize(("name", "listing"), [
    ("t2x_study_NCT06171568", "ongoing study"),            # not yet recruiting
    ("t2x_study_NCT03475563", "awaiting classification"),  # status unknown, no results
    ("t2x_study_NCT03418623", "awaiting classification"),  # completed, no results posted
    ("t2x_study_NCT02552212", None),                       # completed with results posted
    ("t2x_study_NCT00973089", None),                       # withdrawn: never enrolled
])
def test_cochrane_listing_of_recorded_registrations(name, listing):
    row = study_row(recorded(name))
    assert cochrane_listing(row["status"], row["results_posted"]) == listing


def test_recorded_pages_parse_with_their_totals_and_tokens():
    first, second = (parse_page(json.dumps(recorded(n)).encode(), n) for n in ("t01", "t02"))
    assert first["totalCount"] == 21 and first["nextPageToken"] and len(first["studies"]) == 5
    assert "totalCount" not in second and second["nextPageToken"] != first["nextPageToken"]
    with pytest.raises(ServiceError, match="no list of studies"):
        parse_page(b'{"totalCount": 3}', "here")


# --- the emulator against the recordings ----------------------------------------------

def test_emulator_answers_in_the_recorded_shapes():
    fields = json.loads((FIXTURES / "t01_search_cond_phelan_countTotal_pageSize5_page1.meta.json").read_text())
    asked = fields["request"]["query"]["fields"]
    with CtgovEmulator(recorded_studies()) as emu:
        page = get(emu, f"studies?query.cond=Phelan-McDermid+Syndrome&countTotal=true&pageSize=5&fields={asked}")
        single = get(emu, "studies/NCT02552212?fields=NCTId,OverallStatus,StartDate,HasResults")
        alias = get(emu, "studies/nct2552212?fields=NCTId")  # the API's NCT id pattern allows this
    phelan = {s["protocolSection"]["identificationModule"]["nctId"] for n in ("t01", "t02", "t03")
              for s in recorded(n)["studies"]}
    assert list(page) == ["studies", "totalCount", "nextPageToken"]  # in the recorded order
    assert page["totalCount"] == len(phelan) > 5
    recorded_first = {s["protocolSection"]["identificationModule"]["nctId"]: s for s in recorded("t01")["studies"]}
    for study in page["studies"]:
        nct = study["protocolSection"]["identificationModule"]["nctId"]
        if nct in recorded_first:  # the same fields of the same study: the recorded answer exactly
            assert study == recorded_first[nct]
    assert single == {"protocolSection": {"identificationModule": {"nctId": "NCT02552212"},
                                          "statusModule": {"overallStatus": "COMPLETED",
                                                           "startDateStruct": {"date": "2015-09"}}},
                      "hasResults": True}
    assert alias["protocolSection"]["identificationModule"]["nctId"] == "NCT02552212"


def test_emulator_errors_are_the_apis():
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with CtgovEmulator(recorded_studies()) as emu:
        for path, status, text in (("studies?query.recrs=x", 400, b"`query.recrs` is unknown parameter"),
                                   ("studies?filter.overallStatus=DONE", 400, b"Invalid value in parameter"),
                                   ("studies/NCT09999999", 404, b"Study not found")):
            with pytest.raises(urllib.error.HTTPError) as err:
                opener.open(emu.base_url + path, timeout=5)
            assert err.value.code == status and text in err.value.read()


# --- searches over HTTP ------------------------------------------------------------------

def test_a_search_pages_through_every_registration_and_replays_offline(tmp_path):
    studies = synthetic_studies(250, **AUD) + synthetic_studies(7, conditions=["Gambling"], interventions=["Ketamine"],
                                                                 first=90_001_001)
    with CtgovEmulator(studies) as emu:
        tr = transport(tmp_path, emu)
        live = search_register(tr, PROTOCOL, "aud", page_size=100)
        pages = emu.requests("studies")
    assert live.count == live.retrieved == 250 and len(pages) == 3
    assert live.ids == sorted(s["protocolSection"]["identificationModule"]["nctId"] for s in studies[:250])
    assert [("pageToken" in p.params) for p in pages] == [False, True, True]
    manifest = tr.snapshot.manifest("aud", MANIFESTS)
    assert manifest["query"] == register_query(PROTOCOL, "aud") and manifest["fields"] == FIELDS
    assert manifest["count"] == 250 and len(manifest["exchanges"]) == 3

    replay = search_register(ReplayTransport(Snapshot.open(tr.snapshot.root)), PROTOCOL, "aud", page_size=100)
    assert replay.ids == live.ids and replay.manifest["date_run"] == manifest["date_run"]
    records = load_register_records(Snapshot.open(tr.snapshot.root))
    assert len(records) == 250 and set(records["source"]) == {"ClinicalTrials.gov"}
    assert all(s == ["aud"] for s in records["searches"])

    # a page that was never recorded is named, not silently dropped
    (tr.snapshot.root / "exchanges" / f"{manifest['exchanges'][2]}.json").unlink()
    with pytest.raises(SnapshotError, match=r"no recorded ctgov\.studies request \(.*pageToken="):
        search_register(ReplayTransport(Snapshot.open(tr.snapshot.root)), PROTOCOL, "aud", page_size=100)


def test_a_count_that_fills_the_last_page_ends_with_an_empty_page(tmp_path):
    with CtgovEmulator(synthetic_studies(200, **AUD)) as emu:
        result = search_register(transport(tmp_path, emu), PROTOCOL, "aud", page_size=100)
        assert len(emu.requests("studies")) == 3  # the third page is empty and has no token
    assert result.count == result.retrieved == 200


def test_a_search_that_finds_nothing_is_a_count_of_zero(tmp_path):
    with CtgovEmulator(synthetic_studies(5, **AUD)) as emu:
        result = search_register(transport(tmp_path, emu), PROTOCOL, "gambling")
    assert (result.count, result.ids, result.searched) == (0, [], True)


@pytest.mark.slow
def test_faults_change_nothing_but_the_time_taken(tmp_path):
    studies = synthetic_studies(230, **AUD)
    with CtgovEmulator(studies) as emu:
        clean = search_register(transport(tmp_path, emu, "clean"), PROTOCOL, "aud", page_size=50)
    faults = Faults(rate=0.25, seed=7, kinds=JSON_FAULT_KINDS, slow_seconds=0.6)
    with CtgovEmulator(studies, faults=faults, retry_after=0.05) as emu:
        for kind in JSON_FAULT_KINDS:  # every kind at least once, then at random
            emu.inject(kind)
        tr = transport(tmp_path, emu, "faulty", timeout=0.4, max_attempts=20, max_backoff=0.1)
        faulty = search_register(tr, PROTOCOL, "aud", page_size=50)
        seen = {e.fault for e in emu.requests()} - {None}
    assert faulty.ids == clean.ids and faulty.count == clean.count == 230
    assert seen >= set(JSON_FAULT_KINDS), seen
    bodies = [json.loads(p.read_bytes()) for p in (tr.snapshot.root / "exchanges").glob("*.body")]
    assert len(bodies) == 5 and all("studies" in b for b in bodies)  # only good answers were recorded


def test_retry_after_is_waited_for_and_a_dead_register_is_named(tmp_path):
    with CtgovEmulator(synthetic_studies(3, **AUD), retry_after=0.3) as emu:
        emu.inject("429", times=1)
        started = time.monotonic()
        result = search_register(transport(tmp_path, emu), PROTOCOL, "aud")
        assert time.monotonic() - started >= 0.3 and result.retrieved == 3
        emu.inject("503", times=3)
        with pytest.raises(ServiceError, match=r"ctgov\.studies failed 3 times, last with HTTP 503 \(.*query\.cond="):
            search_register(transport(tmp_path, emu, "other", max_attempts=3), PROTOCOL, "aud")


def test_the_reported_limit_is_kept_per_window():
    slept: list[float] = []
    now = [0.0]
    limiter = WindowLimiter(3, 1.0, clock=lambda: now[0], sleep=lambda s: (slept.append(s), now.__setitem__(0, now[0] + s)))
    waits = [limiter.wait() for _ in range(7)]
    assert waits[:3] == [0, 0, 0] and all(w > 0.99 for w in waits[3:4])
    limiter.announce("1", "1s")  # a service's X-Rate-Limit headers lower the limit, never raise it
    assert (limiter.limit, limiter.interval) == (1, 1.0)
    limiter.announce("50", "1s")
    assert limiter.limit == 1
