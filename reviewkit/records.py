"""The records table: what a snapshot's searches identified, one row per PubMed record.

``load_records(snapshot)`` replays nothing over the network: it reads the
EFetch responses listed in each search manifest, parses them with
``reviewkit.pubmed`` and adds ``record_id``, ``source`` and ``searches``
(every search that retrieved the PMID). Columns: docs/architecture.md.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .errors import SnapshotError
from .pubmed import COLUMNS as PUBMED_COLUMNS
from .pubmed import iter_pubmed_xml, records_frame
from .snapshot import Snapshot

RECORD_COLUMNS = ["record_id", "source", *PUBMED_COLUMNS, "searches"]


def _as_snapshot(snapshot: Snapshot | str | Path) -> Snapshot:
    return snapshot if isinstance(snapshot, Snapshot) else Snapshot.open(snapshot)


def _fetched_rows(snap: Snapshot, exchange_ids: list[str], where: str) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    for ex_id in exchange_ids:
        ex = snap.load(ex_id)
        if ex.utility != "efetch":
            continue
        for row in iter_pubmed_xml(ex.body, name=f"{where}, exchange {ex_id}"):
            rows.setdefault(row["pmid"], row)
    return rows


def load_records(snapshot: Snapshot | str | Path, searches: list[str] | None = None) -> pd.DataFrame:
    """PubMed records of the snapshot's searches (all, or those named), one row per PMID."""
    snap = _as_snapshot(snapshot)
    keys = searches or snap.search_keys()
    rows: dict[str, dict] = {}
    found_by: dict[str, list[str]] = {}
    for key in keys:
        manifest = snap.manifest(key)
        fetched = _fetched_rows(snap, manifest["exchanges"], f"search {key!r}")
        missing = set(manifest["fetched_pmids"]) - fetched.keys()
        if missing:
            raise SnapshotError(f"snapshot {snap.root}, search {key!r}: {len(missing)} fetched records are "
                                f"not in its recorded EFetch responses (e.g. PMID {min(missing)})")
        for pmid in manifest["fetched_pmids"]:
            rows.setdefault(pmid, fetched[pmid])
            found_by.setdefault(pmid, []).append(key)
    frame = records_frame(rows[p] for p in sorted(rows, key=int))
    return _with_provenance(frame, [found_by[p] for p in frame["pmid"]])


def load_lookup_records(snapshot: Snapshot | str | Path) -> pd.DataFrame:
    """Records fetched for citation checks (``lookups/``), outside every search; empty if none."""
    snap = _as_snapshot(snapshot)
    manifest = snap.lookups()
    if manifest is None:
        return pd.DataFrame(columns=RECORD_COLUMNS)
    fetched = _fetched_rows(snap, manifest["exchanges"], "lookups")
    frame = records_frame(fetched[p] for p in sorted(fetched, key=int))
    return _with_provenance(frame, [[] for _ in range(len(frame))])


def _with_provenance(frame: pd.DataFrame, searches: list[list[str]]) -> pd.DataFrame:
    frame.insert(0, "record_id", ["PMID:" + p for p in frame["pmid"]])
    frame.insert(1, "source", "PubMed")
    frame["searches"] = searches
    return frame[RECORD_COLUMNS]
