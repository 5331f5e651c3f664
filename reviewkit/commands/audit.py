"""``reviewkit verify-refs`` and ``reviewkit audit``: the article's references and claims against the evidence."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..audit import CORPUS_RECORDS, audit_article
from ..citations import CandidateSource, candidate_source, check_reference
from ..errors import ReviewkitError
from ..evidence import DEFAULT_POOL_GROUP
from ..extraction import DEFAULT_PATH as EXTRACTION
from ..meta import METHODS
from ..references import Unparsed, read_references
from ..snapshot import Snapshot
from .search import add_mode_arguments, resolve_snapshot

DATA = Path(__file__).resolve().parents[2] / "data"
SCREENING_ROOT = DATA / "screening"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("verify-refs", help="check printed references against PubMed or the local records",
                       description="Check each reference of FILE (one printed reference per line, or a .bib "
                                   "or .ris file): verified, exists_with_errors, not_found or ambiguous.")
    p.add_argument("file", type=Path, help="references: one per line (APA-like or Vancouver), .bib or .ris")
    add_mode_arguments(p)
    p.add_argument("--json", action="store_true", help="print a JSON list, in input order")
    p.set_defaults(func=run_verify)

    p = sub.add_parser("audit", help="the article's claims against their citations and the review's evidence",
                       description="For each claim in data/article/claims.yml: the citation verdict, the "
                                   "nearest real record, this review's evidence for the disorder, and a verdict.")
    add_mode_arguments(p)
    p.add_argument("--screening", type=Path, default=None, metavar="DIR",
                   help="screening folder whose full-text includes are the evidence "
                        "(default: data/screening/<snapshot folder name>)")
    p.add_argument("--analysis", default=DEFAULT_POOL_GROUP, metavar="POOL_GROUP",
                   help=f"the pooled analysis of {EXTRACTION.name} claims are weighed against "
                        f"(default: {DEFAULT_POOL_GROUP})")
    p.add_argument("--method", choices=METHODS, default="REML", help="tau^2 estimator (default: REML)")
    p.add_argument("--hksj", action="store_true", help="Hartung-Knapp-Sidik-Jonkman CIs")
    p.add_argument("--json", action="store_true", help="print the claims table as a JSON list")
    p.set_defaults(func=run_audit)


def _source(args: argparse.Namespace, snapshot: Snapshot) -> tuple[CandidateSource, str]:
    if args.live:
        note = f"live: PubMed, recorded in {snapshot.root}"
    else:
        note = f"offline: local records of snapshot {snapshot.root}"
        if snapshot.is_sample:
            note += f" ({snapshot.info['note']})"
    return candidate_source(snapshot, args.live), note


def _check_all(items, source):
    return [item if isinstance(item, Unparsed) else check_reference(item, source) for item in items]


def run_verify(args: argparse.Namespace) -> int:
    items = read_references(args.file)
    source, note = _source(args, resolve_snapshot(args))
    results = _check_all(items, source)
    if args.json:
        out = [{"reference": r.text, "verdict": "unparseable", "pmid": None, "doi": None, "field_errors": [],
                "candidates": [], "error": r.message} if isinstance(r, Unparsed) else r.as_dict() for r in results]
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    print(note)
    for r in results:
        if isinstance(r, Unparsed):
            print(f"\n{r.where}: UNPARSEABLE\n  {r.message}")
            continue
        print(f"\n{r.reference.where}: {r.verdict.upper()}" + (f" (PMID {r.pmid})" if r.pmid else "")
              + ("  [a live check could change this]" if r.live_could_change else ""))
        print(f"  {r.reference.text}")
        if r.match:
            print(f"  record: {r.match.label()}")
        if r.field_errors:
            print(f"  fields that differ: {', '.join(r.field_errors)}")
        for m in r.candidates:
            print(f"  {'candidate' if r.verdict == 'ambiguous' else 'nearest'}: {m.label()}")
    return 0


def run_audit(args: argparse.Namespace) -> int:
    snapshot = resolve_snapshot(args)
    source, note = _source(args, snapshot)
    screening = args.screening or SCREENING_ROOT / snapshot.root.name
    result = audit_article(snapshot.root, screening, source, analysis=args.analysis, method=args.method,
                           hksj=args.hksj)
    included, audits = result.included, result.claims
    if included.empty:
        raise ReviewkitError(f"{screening}: no report has a full-text decision of include, so there is no evidence "
                             "to weigh the claims against; run `reviewkit screen` and record the decisions first")
    if args.json:
        print(json.dumps([a.as_dict() for a in audits], indent=2, ensure_ascii=False))
        return 0
    print(note)
    print(f"evidence: full-text includes in {screening} ({included['record_id'].nunique()} reports of "
          f"{included['study_id'].nunique()} studies), designs from {CORPUS_RECORDS.name}, n and pooled "
          f"{args.analysis} effects ({args.method}{' HKSJ' if args.hksj else ''}) from {EXTRACTION.name}")
    for a in audits:
        row = a.as_dict()
        flag = "  [citation verdict could change live]" if row["live_could_change"] else ""
        print(f"\n{row['id']} [{row['disorder'] or 'mechanism'}] {row['verdict'].upper()}{flag}")
        print(f"  “{row['quote']}”")
        print(f"  citation: {row['citation_verdict']}" + (f" ({', '.join(row['field_errors'])})" if row['field_errors'] else ""))
        if row["nearest_record"]:
            print(f"  nearest record: {row['nearest_record']}")
        print(f"  reason: {row['reason']}")
    return 0
