"""``reviewkit search``: run the protocol's searches in PubMed and its trial registers, live or replayed."""

from __future__ import annotations

import argparse
import json

from .common import add_data_options, open_review, sample_notice


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("search", parents=[common],
                       help="run the PubMed and trial-register searches (offline: replay a snapshot)",
                       description="Run the protocol's searches in PubMed and in its trial registers "
                                   "(ClinicalTrials.gov). Offline (the default) replays a snapshot; --live queries "
                                   "NCBI and the registers and records every exchange in the snapshot.")
    add_data_options(p, screening=False)
    p.add_argument("--only", nargs="+", metavar="KEY", help="run only these searches (e.g. aud oud)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    review = open_review(args, progress=not args.json, searches=args.only)
    if not args.json:
        if notice := sample_notice(review):
            print(notice)
        print(f"{'live' if review.live else 'offline'}: snapshot {review.project.relative(review.snapshot_dir)}")
    results = review.search()
    registers = review.registers()
    if args.json:
        print(json.dumps({
            "sample": review.is_sample,
            "snapshot": review.project.relative(review.snapshot_dir),
            "searches": [{"key": r.key, "query": r.query, "count": r.count, "retrieved": r.retrieved,
                          "pmids": r.pmids,
                          **({"new_pmids": r.new_pmids, "dropped_pmids": r.dropped_pmids}
                             if r.new_pmids is not None else {})} for r in results],
            "registers": [r.as_dict() for r in registers],
        }, indent=2))
        return 0
    for result in results:
        print(f"[{result.key}] query: {result.query}")
        print(f"[{result.key}] Count {result.count}, records retrieved {result.retrieved}")
        if result.new_pmids is not None:
            print(f"[{result.key}] since the previous run: {_changes(result)}")
    for reg in registers:
        found = f"count {reg.count}, registrations retrieved {reg.retrieved}" if reg.searched else reg.note
        print(f"[{reg.key}] {reg.register}: {found}")
    return 0


def _changes(result) -> str:
    """'2 new (PMID 1, 2), 1 dropped (PMID 3)': what a living search changed."""
    def part(pmids, word):
        if not pmids:
            return f"0 {word}"
        shown = ", ".join(pmids[:10]) + (f", ... {len(pmids) - 10} more" if len(pmids) > 10 else "")
        return f"{len(pmids)} {word} (PMID {shown})"

    return f"{part(result.new_pmids, 'new')}, {part(result.dropped_pmids, 'dropped')}"
