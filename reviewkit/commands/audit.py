"""``reviewkit verify-refs`` and ``reviewkit audit``: the article's references and claims against the evidence."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import ReviewkitError
from .common import add_data_options, add_model_options, open_review


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("verify-refs", parents=[common],
                       help="check printed references against PubMed (or the local records) and Crossref",
                       description="Check each reference of FILE (one printed reference per line, or a .bib "
                                   "or .ris file) in PubMed (offline: the snapshot's local records), then in "
                                   "Crossref when PubMed does not identify it: verified, exists_with_errors, "
                                   "not_found, ambiguous or retracted (a retraction notice names it).")
    p.add_argument("file", type=Path, help="references: one per line (APA-like or Vancouver), .bib or .ris")
    add_data_options(p, screening=False)
    p.add_argument("--json", action="store_true", help="print a JSON list, in input order")
    p.set_defaults(func=run_verify)

    p = sub.add_parser("audit", parents=[common],
                       help="the article's claims: their citations and what this review's syntheses show",
                       description="For each claim of the project's article (claims.yml): whether its citation "
                                   "exists as cited and is about the claim, and whether the syntheses of the claim's "
                                   "disorders, outcomes and comparison support its statement, with their certainty.")
    add_data_options(p)
    add_model_options(p)
    p.add_argument("--json", action="store_true", help="print the claims as a JSON list")
    p.set_defaults(func=run_audit)


def _searched(review) -> str:
    if review.live:
        return (f"live: PubMed, then Crossref for what PubMed does not identify, recorded in "
                f"{review.project.relative(review.snapshot_dir)}")
    note = f"offline: local records of snapshot {review.project.relative(review.snapshot_dir)}"
    return note + (f" ({review.sample_note})" if review.is_sample else "")


def run_verify(args: argparse.Namespace) -> int:
    from ..citations import check_reference
    from ..references import Unparsed, read_references

    review = open_review(args, progress=False)
    items = read_references(args.file)
    source = review.citation_source()
    results = [item if isinstance(item, Unparsed) else check_reference(item, source) for item in items]
    if args.json:
        out = [{"reference": r.text, "verdict": "unparseable", "pmid": None, "doi": None, "field_errors": [],
                "candidates": [], "sources_searched": [], "found_in": None, "retracted": None, "error": r.message}
               if isinstance(r, Unparsed) else r.as_dict() for r in results]
        print(json.dumps(out, indent=2, ensure_ascii=False))
        return 0
    print(_searched(review))
    for r in results:
        if isinstance(r, Unparsed):
            print(f"\n{r.where}: UNPARSEABLE\n  {r.message}")
            continue
        print(f"\n{r.reference.where}: {r.verdict.upper()}" + (f" (PMID {r.pmid})" if r.pmid else "")
              + ("  [a live check could change this]" if r.live_could_change else ""))
        print(f"  {r.reference.text}")
        print(f"  searched: {', '.join(r.sources_searched) or 'nothing'}"
              + (f"; found in {r.found_in}" if r.found_in else "")
              + {True: "; RETRACTED", False: "; no retraction found", None: "; retraction status unknown"}[r.retracted])
        for notice in r.retraction.notices:
            print(f"  notice: {notice}")
        if r.match:
            print(f"  record: {r.match.label()}")
        if r.field_errors:
            print(f"  fields that differ: {', '.join(r.field_errors)}")
        for m in r.candidates:
            print(f"  {'candidate' if r.verdict == 'ambiguous' else 'nearest'}: {m.label()}")
    return 0


def run_audit(args: argparse.Namespace) -> int:
    review = open_review(args, progress=False)
    included = review.included
    if included.empty:
        raise ReviewkitError(f"{review.project.relative(review.screening_dir)}: no report has a full-text decision "
                             "of include, so there is no evidence to weigh the claims against; run `reviewkit "
                             "screen` and record the decisions first")
    result = review.audit(args.method, args.hksj)
    if args.json:
        print(json.dumps([a.as_dict() for a in result.claims], indent=2, ensure_ascii=False))
        return 0
    print(_searched(review))
    rel = review.project.relative
    print(f"evidence: full-text includes in {rel(review.screening_dir)} ({included['record_id'].nunique()} reports "
          f"of {included['study_id'].nunique()} studies), studies in {rel(review.studies_file)}, results in "
          f"{rel(review.extraction_file)}")
    for a in result.claims:
        row = a.as_dict()
        flag = "  [citation verdict could change live]" if row["live_could_change"] else ""
        print(f"\n{row['id']} ({', '.join(row['disorders']) or 'mechanism'})")
        print(f"  “{row['quote']}”")
        errors = f" ({', '.join(row['field_errors'])})" if row["field_errors"] else ""
        print(f"  citation: {row['citation_verdict'].replace('_', ' ')}{errors}; about the claim: "
              f"{row['citation_about_claim']}{flag}")
        print(f"    {row['citation_reason']}")
        certainty = f" (certainty: {row['certainty']})" if row["certainty"] else ""
        print(f"  statement: {row['statement_verdict'].upper()}{certainty}")
        print(f"    {row['reason']}")
    return 0
