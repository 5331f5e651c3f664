"""Live retrieval over real HTTP against the E-utilities emulator: splitting past
9,999, retries, the rate limiter, faults that change nothing, credentials that
are never written, living searches and resuming a killed run.

Bio.Entrez is the client throughout; REVIEWKIT_EUTILS_URL (or ``base_url``)
points it at the emulator on 127.0.0.1. Records are synthetic (titles say so).
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from reviewkit.entrez import Credentials, LiveTransport, ReplayTransport, find_pmids, run_search, run_searches
from reviewkit.errors import EntrezError
from reviewkit.records import load_records
from reviewkit.snapshot import Snapshot
from reviewkit.testing.emulator import Emulator, Faults, synthetic_records

from helpers import PROTOCOL, ROOT

KEY = Credentials(email="live-test@example.org", api_key="test-key")
FAST = (100, 400)  # emulator limits for volume tests; the client is told the matching rate


def corpus(sizes: dict[str, int], **kw) -> list[dict]:
    """Synthetic records per protocol search, each PMID block distinct."""
    out, first = [], 90_000_001
    for i, (key, n) in enumerate(sizes.items()):
        out += synthetic_records(n, terms=[key], first_pmid=first, seed=i, **kw)
        first += n
    return out


def emulator(records, **kw) -> Emulator:
    aliases = {PROTOCOL.query(k): k for k in PROTOCOL.searches}
    kw.setdefault("limits", FAST)
    return Emulator(records, aliases=aliases, **kw)


def transport(tmp_path, emu, name="snap", **kw) -> LiveTransport:
    snap = Snapshot.create(tmp_path / name, sample=False, note="emulator test")
    kw.setdefault("rate", float(emu.limits[1]) if emu.rate_limit else 1000.0)
    kw.setdefault("backoff", 0.01)
    kw.setdefault("timeout", 5)
    return LiveTransport(snap, kw.pop("credentials", KEY), base_url=emu.base_url, **kw)


def test_search_past_the_cap_is_split_by_date_then_by_pmid_and_is_complete(tmp_path):
    crowded = dt.date(2015, 6, 15)
    recs = corpus({"aud": 25_000}, start=dt.date(2000, 1, 1), end=dt.date(2024, 12, 31),
                  crowded_day=(crowded, 10_500))
    with emulator(recs) as emu:
        tr = transport(tmp_path, emu)
        result = run_search(tr, PROTOCOL, "aud", batch_size=10_000, progress=False)
        searches = emu.requests("esearch")
        fetches = emu.requests("efetch")
    assert result.count == 25_000 and result.pmids == sorted((r["pmid"] for r in recs), key=int)
    assert result.retrieved == 25_000 and len(fetches) == 3
    windows = result.manifest["split_into_windows"]
    assert sum(w["count"] for w in windows) == 25_000 and all(w["count"] <= 9999 for w in windows)
    # the crowded day was split by PMID range, into ranges that do not overlap
    day = [w for w in windows if w["mindate"] == w["maxdate"] == "2015/06/15"]
    assert len(day) >= 2 and all(w["uids"] for w in day)
    ranges = sorted(tuple(w["uids"]) for w in day)
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:]))
    assert sum(w["count"] for w in day) == sum(r["pdat"] == "2015/06/15" for r in recs) > 9999
    # date windows do not overlap either
    spans = sorted({(w["mindate"], w["maxdate"]) for w in windows})
    assert all(a[1] < b[0] for a, b in zip(spans, spans[1:]))
    assert len(searches) < 40, f"{len(searches)} ESearch calls"
    # offline replay of the split search gives the same PMIDs without the network
    replayed = run_search(ReplayTransport(tr.snapshot), PROTOCOL, "aud", progress=False)
    assert replayed.pmids == result.pmids


def test_split_that_comes_up_short_says_how_many_are_missing(tmp_path):
    recs = corpus({"aud": 10_200}, start=dt.date(2010, 1, 1), end=dt.date(2011, 12, 31))
    with emulator(recs) as emu:
        tr = transport(tmp_path, emu)
        real = tr.request

        def shrinking(utility, params, **kw):  # PubMed loses 3 records after the first ESearch
            body = real(utility, params, **kw)
            if utility == "esearch" and len(emu.requests("esearch")) == 1:
                emu.remove_records([recs[0]["pmid"], recs[1]["pmid"], recs[2]["pmid"]])
            return body

        tr.request = shrinking
        with pytest.raises(EntrezError, match=r"Count 10200 .* 10197 PMIDs \(3 missing\)"):
            find_pmids(tr, PROTOCOL.query("aud"), PROTOCOL.dates.params(), "search 'aud'")


def test_retries_back_off_honour_retry_after_and_record_only_good_answers(tmp_path):
    with emulator(corpus({"aud": 30}), retry_after=0.4) as emu:
        tr = transport(tmp_path, emu, max_attempts=7)
        for kind in ("429", "503", "reset", "truncate", "error"):
            emu.inject(kind, utility="esearch")
        emu.faults = Faults(slow_seconds=1.5)
        emu.inject("slow", utility="efetch")
        tr.timeout = 0.5
        start = time.monotonic()
        result = run_search(tr, PROTOCOL, "aud", progress=False)
        elapsed = time.monotonic() - start
        while len(emu.requests()) < 8 and time.monotonic() - start < 5:  # the slow answer is logged when sent
            time.sleep(0.05)
        faults = [e.fault for e in emu.requests()]
    assert result.retrieved == 30
    assert faults[:6] == ["429", "503", "reset", "truncate", "error", None] and sorted(faults[6:], key=str) == [None, "slow"]
    assert elapsed >= 0.4 + 0.5  # Retry-After waited for, the slow answer timed out
    bodies = [p.read_bytes() for p in (tmp_path / "snap" / "exchanges").glob("*.body")]
    assert len(bodies) == 2 and not any(b"<ERROR>" in b for b in bodies)


def test_bounded_attempts_then_an_error_naming_the_request(tmp_path):
    with emulator(corpus({"aud": 5})) as emu:
        tr = transport(tmp_path, emu, max_attempts=3)
        emu.inject("503", times=3)
        with pytest.raises(EntrezError, match=r"esearch failed 3 times, last with HTTP 503 \(.*term=.*Ketamine"):
            run_search(tr, PROTOCOL, "aud", progress=False)
        emu.inject("500", times=1)  # a permanent 4xx is not retried
        with pytest.raises(EntrezError, match="HTTP 400"):
            tr.request("efetch", {"db": "pubmed", "id": "0", "retmode": "xml"})
        assert [e.status for e in emu.requests()] == [503, 503, 503, 500, 400]


def test_rate_limiter_keeps_to_ncbi_limits_without_a_key(tmp_path):
    with emulator(corpus({"aud": 5}), limits=(3, 10)) as emu:
        tr = transport(tmp_path, emu, credentials=Credentials(email="x@example.org"), rate=None)
        assert tr.rate == 3
        start = time.monotonic()
        for i in range(7):
            tr.request("esearch", {"db": "pubmed", "term": PROTOCOL.query("aud"), "retstart": str(i)})
        elapsed = time.monotonic() - start
        statuses = [e.status for e in emu.requests()]
    assert statuses == [200] * 7 and elapsed >= 6 / 3


@pytest.mark.slow
def test_faults_change_nothing(tmp_path):
    """20% of responses faulted at random (fixed seed): same PMIDs, same records table."""
    recs = corpus({"aud": 1500, "oud": 900, "cocaine": 600, "gambling": 40})

    def retrieve(name, faults):
        with emulator(recs, faults=faults, retry_after=None) as emu:
            tr = transport(tmp_path, emu, name=name, max_attempts=12, timeout=0.5)
            results = run_searches(tr, PROTOCOL, batch_size=50, progress=False)
            return results, load_records(tr.snapshot), emu.requests()

    clean, clean_table, clean_log = retrieve("clean", Faults())
    faulty, faulty_table, faulty_log = retrieve("faulty", Faults(rate=0.2, seed=20, slow_seconds=1.0))
    faulted = [e.fault for e in faulty_log if e.fault]
    assert len(faulted) >= 0.15 * len(faulty_log) and len(set(faulted)) >= 6, faulted
    assert [r.pmids for r in faulty] == [r.pmids for r in clean]
    assert [r.manifest["fetched_pmids"] for r in faulty] == [r.manifest["fetched_pmids"] for r in clean]
    assert len(clean_table) == 3040 and clean_table["pmid"].is_unique
    pd.testing.assert_frame_equal(faulty_table, clean_table)


def test_living_search_fetches_only_new_records_and_reports_new_and_dropped(tmp_path):
    recs = corpus({"aud": 120, "gambling": 10})
    with emulator(recs) as emu:
        tr = transport(tmp_path, emu)
        first = run_search(tr, PROTOCOL, "aud", batch_size=50, progress=False)
        assert first.new_pmids is None and len(emu.requests("efetch")) == 3
        added = synthetic_records(4, terms=["aud"], first_pmid=95_000_000)
        emu.add_records(added)
        emu.remove_records([recs[0]["pmid"], recs[5]["pmid"]])
        emu.log.clear()
        again = run_search(tr, PROTOCOL, "aud", batch_size=50, progress=False)
        fetched_ids = [e.params["id"].split(",") for e in emu.requests("efetch")]
    assert again.new_pmids == [r["pmid"] for r in added]
    assert again.dropped_pmids == sorted([recs[0]["pmid"], recs[5]["pmid"]], key=int)
    assert fetched_ids == [[r["pmid"] for r in added]]  # only the new records
    change = again.manifest["changes_since_previous_run"]
    assert change["new_pmids"] == again.new_pmids and change["previous_date_run"] == first.manifest["date_run"]
    table = load_records(tr.snapshot)
    assert sorted(table["pmid"], key=int) == again.pmids and len(table) == 122
    # the updated snapshot replays offline
    assert run_search(ReplayTransport(tr.snapshot), PROTOCOL, "aud", progress=False).pmids == again.pmids


def _cli(snapshot: Path, emu: Emulator, *extra: str, env_extra: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "REVIEWKIT_EUTILS_URL": emu.base_url, "NCBI_EMAIL": "live-test@example.org",
           "NCBI_API_KEY": "test-key", **(env_extra or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "reviewkit", "search", "--live", "--snapshot", str(snapshot), *extra],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.mark.slow
def test_a_killed_run_resumes_and_ends_with_the_records_of_an_uninterrupted_run(tmp_path):
    recs = corpus({"aud": 6000})  # 12 EFetch batches of 500 at 10 requests a second
    with emulator(recs, limits=(3, 10)) as emu:
        whole = _cli(tmp_path / "whole", emu, "--only", "aud")
        assert whole.wait(timeout=120) == 0, whole.stderr.read()
        emu.log.clear()
        killed = _cli(tmp_path / "resumed", emu, "--only", "aud")
        deadline = time.monotonic() + 60
        while len(emu.requests("efetch")) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        killed.send_signal(signal.SIGKILL)
        killed.wait(timeout=10)
        snap = Snapshot.open(tmp_path / "resumed")
        assert "aud" not in snap.search_keys()  # killed before the search finished
        kept = len(list((tmp_path / "resumed" / "exchanges").glob("*.json"))) - 1  # minus the ESearch
        assert 1 <= kept < 12
        emu.log.clear()
        resumed = _cli(tmp_path / "resumed", emu, "--only", "aud")
        assert resumed.wait(timeout=120) == 0, resumed.stderr.read()
        assert len(emu.requests("efetch")) == 12 - kept  # only what the snapshot lacked
    pd.testing.assert_frame_equal(load_records(tmp_path / "resumed"), load_records(tmp_path / "whole"))
    assert len(load_records(tmp_path / "whole")) == 6000


def test_credentials_never_appear_in_any_file_written(tmp_path):
    email, api_key = "secret.researcher.7731@example.org", "APIKEY-d0c5e3b7f1a94c26b8e0"
    recs = corpus({"aud": 40, "oud": 25, "cocaine": 10, "gambling": 3})
    env = {"NCBI_EMAIL": email, "NCBI_API_KEY": api_key}
    with emulator(recs, faults=Faults(rate=0.1, seed=3, kinds=("503", "429", "error"))) as emu:
        ok = _cli(tmp_path / "snap", emu, "--json", env_extra=env)
        out, err = ok.communicate(timeout=120)
        assert ok.returncode == 0, err
        # a run that fails (a wrong URL: HTTP 404): its error message goes to a log too
        failed = _cli(tmp_path / "snap2", emu, "--only", "aud",
                      env_extra={**env, "REVIEWKIT_EUTILS_URL": emu.base_url + "wrong/"})
        out2, err2 = failed.communicate(timeout=120)
        assert failed.returncode == 2 and "esearch failed with HTTP 404" in err2
        sent = emu.requests()
    assert all(e.params.get("api_key") == api_key and e.params.get("email") == email for e in sent)  # sent, though
    logs = tmp_path / "logs"
    logs.mkdir()
    for name, text in {"out.json": out, "err.log": err, "out2.log": out2, "err2.log": err2}.items():
        (logs / name).write_text(text)
    table = load_records(tmp_path / "snap")
    assert len(table) == 78
    table.to_csv(tmp_path / "records.csv")
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(written) > 10
    for path in written:
        data = path.read_bytes()
        for secret in (email, api_key):
            assert secret.encode() not in data, f"{secret!r} written to {path}"
