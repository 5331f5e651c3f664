"""``reviewkit search``: run the protocol's PubMed searches, live or replayed from a snapshot."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..entrez import Credentials, LiveTransport, ReplayTransport, run_search
from ..protocol import load_protocol
from ..snapshot import SAMPLE_DIR, Snapshot

LIVE_DEFAULT = Path("data") / "snapshots" / "live"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="run the PubMed searches (offline: replay a snapshot)",
                       description="Run the protocol's PubMed searches. Offline (the default) replays a "
                                   "snapshot, the bundled sample unless --snapshot is given; --live queries "
                                   "NCBI and records every exchange in the snapshot.")
    add_mode_arguments(p)
    p.add_argument("--protocol", type=Path, default=None, help="protocol file (default: data/protocol.yml)")
    p.add_argument("--only", nargs="+", metavar="KEY", help="run only these searches (e.g. aud oud)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def add_mode_arguments(p: argparse.ArgumentParser) -> None:
    """--offline/--live and --snapshot, shared by every command that reads searches."""
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--offline", dest="live", action="store_false", help="replay a snapshot (default)")
    mode.add_argument("--live", dest="live", action="store_true",
                      help="query NCBI (credentials from NCBI_EMAIL / NCBI_API_KEY)")
    p.set_defaults(live=False)
    p.add_argument("--snapshot", type=Path, default=None,
                   help=f"snapshot folder (offline default: the bundled sample; live default: {LIVE_DEFAULT})")


def resolve_snapshot(args: argparse.Namespace, protocol_sha256: str = "") -> Snapshot:
    if args.live:
        root = args.snapshot or LIVE_DEFAULT
        return Snapshot.create(root, sample=False, note="PubMed searches run live by reviewkit",
                               protocol_sha256=protocol_sha256)
    return Snapshot.open(args.snapshot or SAMPLE_DIR)


def run(args: argparse.Namespace) -> int:
    protocol = load_protocol(args.protocol)
    snapshot = resolve_snapshot(args, protocol.sha256)
    transport = LiveTransport(snapshot, Credentials.from_env()) if args.live else ReplayTransport(snapshot)
    sample = snapshot.is_sample
    if not args.json:
        if sample:
            print(f"NOTE: {snapshot.info['note']}")
        print(f"{'live' if args.live else 'offline'}: snapshot {snapshot.root}")
    results = []
    for search in protocol.select(args.only):
        if not args.json:
            print(f"[{search.key}] {search.label}: searching PubMed")
        result = run_search(transport, protocol, search.key, progress=not args.json)
        results.append(result)
        if not args.json:
            print(f"[{result.key}] query: {result.query}")
            print(f"[{result.key}] Count {result.count}, records retrieved {result.retrieved}")
            if result.new_pmids is not None:
                print(f"[{result.key}] since the previous run: {_changes(result)}")
    if args.json:
        print(json.dumps({
            "sample": sample,
            "snapshot": str(snapshot.root),
            "searches": [{"key": r.key, "query": r.query, "count": r.count, "retrieved": r.retrieved,
                          "pmids": r.pmids,
                          **({"new_pmids": r.new_pmids, "dropped_pmids": r.dropped_pmids}
                             if r.new_pmids is not None else {})} for r in results],
        }, indent=2))
    return 0


def _changes(result) -> str:
    """'2 new (PMID 1, 2), 1 dropped (PMID 3)': what a living search changed."""
    def part(pmids, word):
        if not pmids:
            return f"0 {word}"
        shown = ", ".join(pmids[:10]) + (f", ... {len(pmids) - 10} more" if len(pmids) > 10 else "")
        return f"{len(pmids)} {word} (PMID {shown})"

    return f"{part(result.new_pmids, 'new')}, {part(result.dropped_pmids, 'dropped')}"
