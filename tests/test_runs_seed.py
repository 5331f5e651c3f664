"""A live run starts from the previous live run's snapshot: only new records are fetched, the old run is untouched."""

import json

from reviewkit import runs
from reviewkit.entrez import Credentials, LiveTransport, run_search
from reviewkit.snapshot import Snapshot
from reviewkit.testing.emulator import Emulator, synthetic_records

from helpers import PROTOCOL

KEY = Credentials(email="seed-test@example.org", api_key="seed-test-key")


def live_search(emu, snapshot_dir):
    snap = Snapshot.create(snapshot_dir, sample=False, note="test")
    transport = LiveTransport(snap, KEY, base_url=emu.base_url, backoff=0.01, timeout=5)
    return run_search(transport, PROTOCOL, "gambling", batch_size=50, progress=False)


def finished_run(root, run_id, mode="live"):
    (root / run_id).mkdir(parents=True, exist_ok=True)
    runs.write_manifest(root / run_id, {"run_id": run_id, "status": "ok", "mode": mode})


def test_second_live_run_fetches_only_new_records(tmp_path):
    records = synthetic_records(60, terms=["gambling"], first_pmid=98_000_001)
    aliases = {PROTOCOL.query(k): k for k in PROTOCOL.searches}
    with Emulator(records, aliases=aliases) as emu:
        first = live_search(emu, tmp_path / "run1" / "snapshot")
        finished_run(tmp_path, "run1")
        emu.add_records(synthetic_records(3, terms=["gambling"], first_pmid=99_000_001))
        emu.log.clear()
        seeded = runs.seed_snapshot(tmp_path, "run2", tmp_path / "run2" / "snapshot")
        second = live_search(emu, tmp_path / "run2" / "snapshot")
        fetched = [e.params["id"].split(",") for e in emu.requests("efetch")]
    assert seeded == tmp_path / "run1" / "snapshot"
    assert fetched == [["99000001", "99000002", "99000003"]]
    assert second.new_pmids == ["99000001", "99000002", "99000003"] and second.dropped_pmids == []
    # the first run's snapshot still says what that run saw
    old = json.loads((tmp_path / "run1" / "snapshot" / "searches" / "gambling.json").read_text())
    assert old["count"] == first.count == 60 and second.count == 63


def test_no_seed_without_a_previous_live_run(tmp_path):
    assert runs.seed_snapshot(tmp_path, "run2", tmp_path / "run2" / "snapshot") is None
    finished_run(tmp_path, "run1", mode="offline")
    assert runs.seed_snapshot(tmp_path, "run2", tmp_path / "run2" / "snapshot") is None
    assert not (tmp_path / "run2" / "snapshot").exists()
