"""build_state on snapshots that hold nothing yet, or searches that found nothing."""

import pytest

from reviewkit.entrez import run_search
from reviewkit.errors import SnapshotError
from reviewkit.screening_state import build_state
from reviewkit.snapshot import Snapshot
from reviewkit.testing.render import esearch_xml

from helpers import PROTOCOL


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
