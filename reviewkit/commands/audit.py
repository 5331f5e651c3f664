"""``reviewkit verify-refs`` and ``reviewkit audit``: the article's references and claims against the evidence."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..citations import CandidateSource, LocalRecords, PubMedLookup, check_reference, local_store
from ..claims import audit_claims, included_from_corpus, load_claims
from ..entrez import Credentials, LiveTransport
from ..references import Reference, Unparsed, read_references
from .search import add_mode_arguments, resolve_snapshot

DATA = Path(__file__).resolve().parents[2] / "data"
ARTICLE_REFERENCES = DATA / "article" / "references.txt"
ARTICLE_CLAIMS = DATA / "article" / "claims.yml"
CORPUS_RECORDS = DATA / "corpus" / "records.jsonl"
CORPUS_OUTCOMES = DATA / "corpus" / "outcomes.jsonl"


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
    p.add_argument("--json", action="store_true", help="print the claims table as a JSON list")
    p.set_defaults(func=run_audit)


def _source(args: argparse.Namespace) -> tuple[CandidateSource, str]:
    snapshot = resolve_snapshot(args)
    if args.live:
        return PubMedLookup(LiveTransport(snapshot, Credentials.from_env())), f"live: PubMed, recorded in {snapshot.root}"
    note = f"offline: local records of snapshot {snapshot.root}"
    if snapshot.is_sample:
        note += f" ({snapshot.info['note']})"
    return LocalRecords(local_store(snapshot.root)), note


def _check_all(items, source):
    return [item if isinstance(item, Unparsed) else check_reference(item, source) for item in items]


def run_verify(args: argparse.Namespace) -> int:
    items = read_references(args.file)
    source, note = _source(args)
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
    references = read_references(ARTICLE_REFERENCES)
    claims = load_claims(ARTICLE_CLAIMS, references)
    source, note = _source(args)
    checks = {r: check_reference(r, source) for r in references if isinstance(r, Reference)}
    # Included studies: the corpus curator's decisions until screening decisions replace them.
    included = included_from_corpus(CORPUS_RECORDS, CORPUS_OUTCOMES)
    audits = audit_claims(claims, checks, included)
    if args.json:
        print(json.dumps([a.as_dict() for a in audits], indent=2, ensure_ascii=False))
        return 0
    print(note)
    print("evidence: included human studies per the corpus curator's decisions (a sample); no pooled effects "
          "are used by this command yet")
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
