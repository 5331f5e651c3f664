"""build_state on snapshots that hold nothing yet, or searches that found nothing."""

import pytest

from reviewkit.entrez import run_search
from reviewkit.errors import SnapshotError
from reviewkit.screening_state import build_state
from reviewkit.snapshot import Snapshot
from reviewkit.testing.render import esearch_xml

from helpers import EXAMPLE, PROTOCOL, SAMPLE_DIR, SAMPLE_SCREENING


def test_a_snapshot_without_searches_is_a_clear_error(tmp_path):
    Snapshot.create(tmp_path / "snap", sample=False, note="new")
    with pytest.raises(SnapshotError, match="no searches recorded yet"):
        build_state(tmp_path / "snap", tmp_path / "screening", PROTOCOL)


def test_a_search_that_found_nothing_gives_empty_sheets(tmp_path):
    snap = Snapshot.create(tmp_path / "snap", sample=False, note="new")

    class NothingFound:
        records = True
        snapshot = snap

        def request(self, utility, params, reuse=False):
            return snap.put(utility, params, esearch_xml(0, [], 0, params["term"])).body

    run_search(NothingFound(), PROTOCOL, "gambling", progress=False)
    state = build_state(tmp_path / "snap", tmp_path / "screening", PROTOCOL)
    assert state.sheet("title_abstract").empty and state.sheet("full_text").empty


def test_a_state_at_hand_gives_the_records_without_reading_the_snapshot_again(monkeypatch):
    """reviewkit run hands the state to every notebook: the records table and the citation check's local
    records come from it, equal to what reading the snapshot gives (column types included)."""
    import pandas as pd

    import reviewkit.records
    from reviewkit.citations import local_store
    from reviewkit.records import load_records
    from reviewkit.review import Review
    from reviewkit.screening_state import handoff

    state = build_state(SAMPLE_DIR, SAMPLE_SCREENING, PROTOCOL)
    read = load_records(SAMPLE_DIR)
    pd.testing.assert_frame_equal(state.pubmed_records(), read)
    assert local_store(SAMPLE_DIR, state.identified)["record_id"].tolist() == \
        local_store(SAMPLE_DIR)["record_id"].tolist()
    assert Review(EXAMPLE).state_at_hand() is None  # nothing handed over, nothing built: nothing at hand

    def never(*args, **kwargs):
        raise AssertionError("the snapshot's records were read again")

    with handoff(state) as env:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        review = Review(EXAMPLE)
        monkeypatch.setattr(reviewkit.records, "load_records", never)
        pd.testing.assert_frame_equal(review.records(), read)
        assert review.state_at_hand() is review.state
        assert len(review.citation_source().sources[0].records) == len(local_store(SAMPLE_DIR, state.identified))


def test_a_state_built_in_a_child_process_is_handed_over_and_its_errors_come_back(monkeypatch):
    """reviewkit run builds the state in a child that writes the handed file and returns a summary."""
    from reviewkit.errors import ReviewkitError
    from reviewkit.screening_state import handed_state, handoff_built

    def build():
        return build_state(SAMPLE_DIR, SAMPLE_SCREENING, PROTOCOL)

    with handoff_built(build, lambda state: len(state.identified)) as (env, summary):
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        state = handed_state(SAMPLE_DIR, SAMPLE_SCREENING, PROTOCOL)
        assert state is not None and summary == len(state.identified) > 0

    def broken():
        raise ReviewkitError("title_abstract.csv, row 3: 'maybe' is not a decision")

    with pytest.raises(ReviewkitError, match="row 3: 'maybe' is not a decision"):
        with handoff_built(broken, len):
            pass


def test_the_handed_file_is_private_signed_and_refused_once_changed(monkeypatch):
    """The handed state is the pickle (as pickle.dumps makes it) behind its HMAC, in a file only this user
    may read; a file whose bytes changed is refused, never unpickled."""
    import hashlib
    import hmac
    import os
    import pickle
    import stat
    from pathlib import Path

    from reviewkit.errors import ReviewkitError
    from reviewkit.screening_state import handed_state, handoff

    state = build_state(SAMPLE_DIR, SAMPLE_SCREENING, PROTOCOL)
    with handoff(state) as env:
        path, key = Path(env["REVIEWKIT_STATE_FILE"]), bytes.fromhex(env["REVIEWKIT_STATE_KEY"])
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        blob = path.read_bytes()
        data = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        assert blob == hmac.new(key, data, hashlib.sha256).digest() + data
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        assert handed_state(SAMPLE_DIR, SAMPLE_SCREENING, PROTOCOL) is not None
        changed = bytearray(blob)
        changed[-2] ^= 1
        path.write_bytes(bytes(changed))
        with pytest.raises(ReviewkitError, match="not the one reviewkit run wrote"):
            handed_state(SAMPLE_DIR, SAMPLE_SCREENING, PROTOCOL)


@pytest.mark.parametrize("platform, methods", [("win32", ["spawn"]), ("darwin", ["spawn", "fork", "forkserver"])])
def test_without_a_safe_fork_the_state_is_built_in_this_process_and_handed_over(monkeypatch, platform, methods):
    """Windows has no "fork" start method and macOS's is unsafe: handoff_built builds in-process instead."""
    import multiprocessing
    import os
    import sys

    from reviewkit.errors import ReviewkitError
    from reviewkit.screening_state import handed_state, handoff_built

    monkeypatch.setattr(sys, "platform", platform)
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: methods)
    monkeypatch.setattr(multiprocessing, "get_context", lambda *a: pytest.fail("no child process may be started"))
    parent = os.getpid()
    built_in: list[int] = []

    def build():
        built_in.append(os.getpid())
        return build_state(SAMPLE_DIR, SAMPLE_SCREENING, PROTOCOL)

    with handoff_built(build, lambda state: len(state.identified)) as (env, summary):
        path = env["REVIEWKIT_STATE_FILE"]
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        state = handed_state(SAMPLE_DIR, SAMPLE_SCREENING, PROTOCOL)
        assert state is not None and summary == len(state.identified) > 0
    assert built_in == [parent]
    assert not os.path.exists(path)  # removed afterwards, as handoff removes it

    def broken():
        raise ReviewkitError("title_abstract.csv, row 3: 'maybe' is not a decision")

    with pytest.raises(ReviewkitError, match="row 3: 'maybe' is not a decision"):
        with handoff_built(broken, len):
            pass
