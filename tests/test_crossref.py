"""Crossref as the reference check's second source, and retraction notices, over real HTTP against the
loopback Crossref emulator serving only real recorded answers (tests/fixtures/crossref/, see SOURCE.md)."""

from __future__ import annotations

import json
import logging
import urllib.request

import pytest

from reviewkit.citations import CrossrefLookup, LocalRecords, SourceChain, check_reference
from reviewkit.cli import main
from reviewkit.crossref import CROSSREF, CrossrefClient, contact_address, parse_work, work_record
from reviewkit.ratelimit import WindowLimiter
from reviewkit.references import Reference, parse_reference
from reviewkit.retractions import from_pubmed
from reviewkit.snapshot import Snapshot
from reviewkit.testing.crossref_emulator import CrossrefEmulator, recorded_works
from reviewkit.testing.emulator import Emulator
from reviewkit.transport import ApiTransport, ReplayTransport

from helpers import ROOT

FIXTURES = ROOT / "tests" / "fixtures" / "crossref"
DELPHI = "10.1371/journal.pone.0020476"  # c03c: a PLOS ONE review, recorded as Crossref holds it
CORRECTED = "10.1371/journal.pone.0033693"  # c01: a work whose updated-by lists a correction


def recorded(name: str) -> dict:
    (path,) = [p for p in FIXTURES.glob(f"{name}*.json") if not p.name.endswith(".meta.json")]
    return json.loads(path.read_text(encoding="utf-8"))


def retraction_notices() -> list[dict]:
    """The recorded PLOS ONE notices (c17_1) whose update-to is a retraction, as Crossref gave them."""
    return [w for w in recorded("c17_1")["message"]["items"]
            if any(u.get("type") == "retraction" for u in w.get("update-to") or [])]


def vancouver(row: dict) -> str:
    """A printed reference made from a recorded work's own fields (nothing added)."""
    authors = ", ".join(row["authors"])
    return (f"{authors}. {row['title']}. {row['journal']}. {row['year']};{row['volume']}({row['issue']}):"
            f"{row['pages']}.")


def client(tmp_path, emu: CrossrefEmulator, name: str = "snap", **kw) -> CrossrefClient:
    snap = Snapshot.create(tmp_path / name, sample=False, note="crossref emulator test")
    kw.setdefault("backoff", 0.01)
    return CrossrefClient(ApiTransport(snap, CROSSREF, base_url=emu.base_url, limiter=WindowLimiter(1000, 1.0),
                                       timeout=5, **kw))


def chain(cr: CrossrefClient, mode: str = "live") -> SourceChain:
    """No PubMed record: the first source holds nothing, so every reference goes on to Crossref."""
    return SourceChain(LocalRecords(work_frame([])), CrossrefLookup(cr, mode), pubmed_checked=True)


def work_frame(rows):
    import pandas as pd

    return pd.DataFrame(rows, columns=["record_id", "title", "authors", "source"])


# --- records from recorded works ------------------------------------------------------

def test_recorded_works_read_as_records_with_their_updates():
    row = parse_work(json.dumps(recorded("c03c")).encode(), "c03c")
    assert row["record_id"] == f"DOI:{DELPHI}" and row["source"] == "Crossref" and row["pmid"] is None
    assert row["authors"][0] == "Boulkedid R" and row["year"] == 2011 and row["pages"] == "e20476"
    corrected = work_record(recorded("c01")["message"])
    assert corrected["crossref_updates"] == ["correction 10.1371/annotation/c76da2c1-ccb8-4797-94c1-359d3ceceeda "
                                             "(updated-by)"]
    notice = work_record(retraction_notices()[0])
    assert notice["crossref_updates"][0].startswith("retraction 10.1371/journal.pone.") and \
        notice["crossref_updates"][0].endswith("(update-to)")


def test_pubmed_retraction_types_and_links():
    assert from_pubmed({"publication_types": ["Journal Article"], "comments_corrections": []}).retracted is False
    status = from_pubmed({"publication_types": ["Journal Article", "Retracted Publication"]})
    assert status.retracted is True and status.checked == ("PubMed",)
    assert from_pubmed({"publication_types": [], "comments_corrections": ["RetractionIn PMID 1"]}).retracted is True
    assert from_pubmed({"publication_types": [], "comments_corrections": ["ErratumIn PMID 1"]}).retracted is False


def test_the_contact_address_comes_from_the_environment_only():
    assert contact_address({"REVIEWKIT_CROSSREF_MAILTO": " a@b.org ", "NCBI_EMAIL": "c@d.org"}) == "a@b.org"
    assert contact_address({"NCBI_EMAIL": "c@d.org"}) == "c@d.org" and contact_address({}) is None


# --- the emulator against the recordings ----------------------------------------------------

def test_emulator_answers_as_recorded():
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with CrossrefEmulator(recorded_works(FIXTURES)) as emu:
        with opener.open(emu.base_url + f"works/{DELPHI}", timeout=5) as r:
            answer = json.loads(r.read())
            headers = r.headers
        assert answer["message"] == recorded("c03c")["message"]
        assert {k: answer[k] for k in ("status", "message-type")} == {"status": "ok", "message-type": "work"}
        with opener.open(emu.base_url + f"works/{DELPHI.replace('/', '%2F').upper()}", timeout=5) as r:
            assert json.loads(r.read())["message"] == recorded("c03c")["message"]
        assert (headers["x-api-pool"], headers["x-rate-limit-limit"]) == ("public", "5")
        for path, status, text in (("works/10.1371/no.such.doi", 404, b"Resource not found."),
                                   (f"works/{DELPHI}?query.author=x", 400, b"parameter-not-allowed"),
                                   ("works?cursor=thing", 404, b"cursor-invalid")):
            with pytest.raises(urllib.error.HTTPError) as err:
                opener.open(emu.base_url + path, timeout=5)
            assert err.value.code == status and text in err.value.read()
    recorded_404 = (FIXTURES / "c04_work_doi_404_not_found.txt").read_bytes()
    assert recorded_404.strip() == b"Resource not found."


# --- the check ----------------------------------------------------------------------------------

def test_a_paper_pubmed_lacks_is_verified_through_crossref_and_replays(tmp_path):
    row = work_record(recorded("c03c")["message"])
    ref = parse_reference(vancouver(row), "refs.txt, line 1")
    with CrossrefEmulator(recorded_works(FIXTURES)) as emu:
        cr = client(tmp_path, emu)
        result = check_reference(ref, chain(cr))
        asked = [(e.utility, e.params.get("filter", "")) for e in emu.requests()]
    assert result.verdict == "verified" and result.doi == DELPHI
    assert result.sources_searched == ("local records", "Crossref") and result.found_in == "Crossref"
    # a DOI was identified: Crossref was asked for notices about it, and holds none
    assert ("works", f"updates:{DELPHI}") in asked
    assert result.retracted is False and result.retraction.checked == ("Crossref",)
    d = result.as_dict()
    assert (d["sources_searched"], d["found_in"], d["retracted"]) == (["local records", "Crossref"], "Crossref", False)

    # offline, from what was recorded: the same verdict, no request anywhere
    replay = CrossrefClient(ReplayTransport(Snapshot.open(cr.transport.snapshot.root)))
    again = check_reference(ref, chain(replay, "offline"))
    assert (again.verdict, again.doi, again.found_in, again.retracted) == ("verified", DELPHI, "Crossref", False)


def test_a_retracted_paper_is_retracted_never_verified(tmp_path):
    notice = retraction_notices()[0]
    (target,) = [u["DOI"] for u in notice["update-to"] if u["type"] == "retraction"]
    title = notice["title"][0].removeprefix("Retraction: ")  # the notice names the retracted work's title
    ref = Reference(text=f"{title}. PLoS One. doi:{target}", where="refs.txt, line 1", authors=(), et_al=False,
                    year=None, title=title, journal="PLoS One", doi=target.lower())
    with CrossrefEmulator(recorded_works(FIXTURES)) as emu:
        result = check_reference(ref, chain(client(tmp_path, emu)))
    assert result.verdict == "retracted" and result.retracted is True
    assert result.retraction.notices == (f"Crossref: retraction {notice['DOI']} (updated-by)",)

    # a correction is not a retraction
    corrected = work_record(recorded("c01")["message"])
    with CrossrefEmulator(recorded_works(FIXTURES)) as emu:
        other = check_reference(parse_reference(vancouver(corrected) + f" doi:{CORRECTED}"),
                                chain(client(tmp_path, emu, "other")))
    assert other.verdict in ("verified", "exists_with_errors") and other.retracted is False
    assert any("correction" in n for n in other.retraction.notices)


def test_faults_and_429_are_retried_with_the_same_verdict(tmp_path, caplog):
    ref = parse_reference(vancouver(work_record(recorded("c03c")["message"])))
    with CrossrefEmulator(recorded_works(FIXTURES)) as emu:
        clean = check_reference(ref, chain(client(tmp_path, emu, "clean")))
    with CrossrefEmulator(recorded_works(FIXTURES), retry_after=0.05) as emu, caplog.at_level(logging.WARNING):
        for kind in ("503", "429", "truncate", "reset", "500"):
            emu.inject(kind)
        faulty = check_reference(ref, chain(client(tmp_path, emu, "faulty", max_backoff=0.05)))
        faults = [e.fault for e in emu.requests() if e.fault]
    assert (faulty.verdict, faulty.doi, faulty.retracted) == (clean.verdict, clean.doi, clean.retracted)
    assert faults == ["503", "429", "truncate", "reset", "500"]
    assert "(Retry-After)" in caplog.text and caplog.text.count("retry ") >= 5


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_verify_refs_live_json_names_sources_and_stores_no_address(tmp_path, monkeypatch, capsys):
    """`verify-refs --live`: PubMed (the E-utilities emulator, which lacks the paper) then Crossref; the
    polite pool is asked with the address from the environment, which no recorded file holds."""
    row = work_record(recorded("c03c")["message"])
    refs = tmp_path / "refs.txt"
    refs.write_text(vancouver(row) + "\n", encoding="utf-8")
    address, ncbi = "canary-contact@example.org", "canary-ncbi@example.org"
    monkeypatch.setenv("REVIEWKIT_CROSSREF_MAILTO", address)
    monkeypatch.setenv("NCBI_EMAIL", ncbi)
    snapshot = tmp_path / "live"
    with Emulator([]) as eutils, CrossrefEmulator(recorded_works(FIXTURES)) as emu:
        monkeypatch.setenv("REVIEWKIT_EUTILS_URL", eutils.base_url)
        monkeypatch.setenv("REVIEWKIT_CROSSREF_URL", emu.base_url)
        assert main(["verify-refs", str(refs), "--live", "--json", "--snapshot", str(snapshot)]) == 0
        pools = {e.identity.rsplit(" ", 1)[1] for e in emu.requests()}
    (out,) = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "verified" and out["doi"] == DELPHI
    assert (out["sources_searched"], out["found_in"], out["retracted"]) == (["PubMed", "Crossref"], "Crossref", False)
    assert pools == {"polite"}
    for path in snapshot.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert address.encode() not in data and ncbi.encode() not in data, path

    # offline from that snapshot: Crossref's recorded answers are replayed
    monkeypatch.setenv("REVIEWKIT_CROSSREF_URL", "http://127.0.0.1:9/")
    assert main(["verify-refs", str(refs), "--offline", "--json", "--snapshot", str(snapshot)]) == 0
    (offline,) = json.loads(capsys.readouterr().out)
    assert (offline["verdict"], offline["doi"], offline["found_in"]) == ("verified", DELPHI, "Crossref")


def test_the_sample_offline_searches_its_local_records_only(capsys):
    refs = (ROOT / "data/article/references.txt")
    assert main(["verify-refs", str(refs), "--offline", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert all(o["sources_searched"] == ["local records"] for o in out)  # the sample holds no Crossref answer
    assert all(o["retracted"] is None for o in out)  # curated records: retraction status not known


def test_pubmed_update_links_are_read_and_an_included_retracted_record_is_flagged():
    import pandas as pd

    from reviewkit.pubmed import read_pubmed_xml
    from reviewkit.retractions import flag_records
    from reviewkit.testing.emulator import synthetic_records
    from reviewkit.testing.render import pubmed_xml

    # real PubMed XML: "CommentIn" and "Cites" links are not notices about the article, and are not kept
    real = read_pubmed_xml(ROOT / "tests/fixtures/eutils/pubmed4.xml")
    assert not any(link.startswith(("CommentIn", "Cites")) for links in real["comments_corrections"] for link in links)
    # synthetic records (PMID 96...): one a retraction notice names, one an erratum only
    retracted, corrected = synthetic_records(2, terms=["gambling"], first_pmid=96_000_101)
    retracted["comments_corrections"] = ["RetractionIn PMID 96000199"]
    corrected["comments_corrections"] = ["ErratumIn PMID 96000198"]
    frame = read_pubmed_xml(pubmed_xml([retracted, corrected]))
    assert list(frame["comments_corrections"]) == [["RetractionIn PMID 96000199"], ["ErratumIn PMID 96000198"]]
    flagged = flag_records(frame.assign(source="PubMed"), pubmed_checked=True)
    assert list(flagged["retracted"]) == [True, False]
    assert "RetractionIn PMID 96000199" in flagged["retraction_notices"].iloc[0]
    # curated records (the sample's): PubMed's types were not read, so "not retracted" is not known
    curated = flag_records(pd.DataFrame([{**frame.iloc[1].to_dict(), "source": "PubMed"}]), pubmed_checked=False)
    assert curated["retracted"].iloc[0] is None


def test_a_doi_that_would_leave_the_works_path_is_not_a_doi():
    from reviewkit.crossref import normalise_doi

    assert normalise_doi(f"https://doi.org/{DELPHI.upper()}") == DELPHI
    assert normalise_doi("10.1371/../../members/98") is None and normalise_doi("not a doi") is None


def test_an_included_retracted_report_is_flagged_by_screen_and_in_the_report(tmp_path, monkeypatch, capsys):
    import pandas as pd

    from reviewkit import notebook
    from reviewkit.project import Project
    from reviewkit.review import Review
    from reviewkit.testing.ctgov_emulator import CtgovEmulator
    from reviewkit.testing.emulator import synthetic_records

    from helpers import PROTOCOL

    # synthetic records (PMID 96..., a range never issued): the first is named by a retraction notice
    records = synthetic_records(2, terms=["gambling"], first_pmid=96_000_301)
    records[0]["comments_corrections"] = ["RetractionIn PMID 96000399"]
    snapshot, screening = tmp_path / "live", tmp_path / "screening"
    monkeypatch.setenv("NCBI_EMAIL", "retraction-test@example.org")
    with Emulator(records, aliases={PROTOCOL.query(k): k for k in PROTOCOL.searches}) as eutils, \
            CtgovEmulator([]) as ctgov:
        monkeypatch.setenv("REVIEWKIT_EUTILS_URL", eutils.base_url)
        monkeypatch.setenv("REVIEWKIT_CTGOV_URL", ctgov.base_url)
        assert main(["search", "--live", "--snapshot", str(snapshot), "--only", "gambling"]) == 0
    screen = ["screen", "--offline", "--snapshot", str(snapshot), "--screening", str(screening)]

    def include_all(stage: str, **extra: str) -> None:
        path = screening / f"{stage}.csv"
        (path.with_suffix(".xlsx")).unlink(missing_ok=True)  # the CSV is edited; the XLSX copy is rewritten
        sheet = pd.read_csv(path, dtype=str, keep_default_na=False)
        sheet = sheet.assign(final="include", **extra)
        if "study_id" in sheet:
            sheet["study_id"] = sheet["record_id"]
        sheet.to_csv(path, index=False)
        assert main(screen) == 0

    assert main(screen) == 0
    include_all("title_abstract")
    include_all("full_text", retrieved="yes")
    out = capsys.readouterr().out
    assert "RETRACTED, included at full text: PMID:96000301" in out and "PMID:96000302" not in out.split("RETRACTED")[1]

    review = Review(Project.find(str(ROOT)), live=False, snapshot=str(snapshot), screening=str(screening),
                    searches=["gambling"])
    assert notebook.retraction_note(review).startswith("1 included report(s) named by a retraction notice")
    table = notebook.retracted_table(review)
    assert table["pmid"].tolist() == ["96000301"] and "RetractionIn PMID 96000399" in table["retraction_notices"].iloc[0]
