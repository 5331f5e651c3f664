"""``reviewkit synthesis``: every synthesis (disorder x outcome domain x comparison) with its certainty."""

from __future__ import annotations

import argparse
import json

from .common import add_data_options, add_model_options, open_review, sample_notice


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("synthesis", parents=[common],
                       help="every synthesis: disorder x outcome x comparison, pooled, with GRADE certainty",
                       description="Pool the included studies' extracted results per disorder, outcome domain and "
                                   "comparison, and rate the certainty of each synthesis (GRADE).")
    add_data_options(p)
    add_model_options(p)
    p.add_argument("--json", action="store_true", help="print the syntheses as a JSON list")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..audit import labels_of
    from ..claims import synthesis_text

    review = open_review(args, progress=False)
    items = review.syntheses(args.method, args.hksj)
    if args.json:
        print(json.dumps([s.as_dict() for s in items], indent=2, ensure_ascii=False))
        return 0
    if notice := sample_notice(review):
        print(notice)
    labels = labels_of(review.protocol)
    for s in items:
        print(synthesis_text(s, labels))
        for d in s.certainty.downgrades if s.certainty else ():
            if d.levels:
                print(f"    - {d.domain} (-{d.levels}): {d.reason}")
    return 0
