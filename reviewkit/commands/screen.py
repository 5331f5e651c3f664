"""``reviewkit screen`` and ``reviewkit prisma``: screening sheets and PRISMA 2020 counts.

Both read a snapshot and its screening folder (``--snapshot``, ``--screening``;
the project's defaults otherwise). ``screen`` writes or updates the sheets;
``prisma`` only reads.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .common import add_data_options, open_review, sample_notice


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("screen", parents=[common],
                       help="write or update the screening sheets (title/abstract, full text)",
                       description="Write or update the screening sheets (CSV and XLSX). Existing decisions "
                                   "are kept; new records are added unscreened.")
    add_data_options(p)
    p.add_argument("--simulate", type=Path, metavar="FILE.csv",
                   help="replay a labelled set (title, abstract, label_included) in prioritised order and print "
                        "recall after 10/25/50%% screened and WSS@95; writes no sheet")
    p.add_argument("--seed", type=int, default=0, help="seed of the simulation's first include and exclude (default 0)")
    p.add_argument("--priors", type=int, nargs="+", metavar="ROW",
                   help="with --simulate: start from these records (0-based data rows, at least one included and "
                        "one excluded, as ASReview's --prior-idx) instead of drawing one of each with the seed")
    p.add_argument("--json", action="store_true", help="with --simulate: print the metrics as JSON")
    p.set_defaults(func=run_screen)
    p = sub.add_parser("prisma", parents=[common],
                       help="PRISMA 2020 counts (and flow diagram) from the screening state",
                       description="Print PRISMA 2020 counts computed from the records and screening sheets.")
    add_data_options(p)
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.add_argument("--diagram", type=Path, metavar="PATH",
                   help="also draw the flow diagram to PATH.png and PATH.svg")
    p.set_defaults(func=run_prisma)


def run_screen(args: argparse.Namespace) -> int:
    if args.simulate is not None:
        return run_simulation(args)
    from ..screening import STAGE_LABELS, STAGES

    review = open_review(args)
    if notice := sample_notice(review):
        print(notice)
    state = review.state
    changed = review.save_screening()
    rel = review.project.relative
    print(f"records: {len(state.identified)} identified, {len(state.dedupe.records)} after deduplication "
          f"({len(state.dedupe.merges)} merged, {len(state.dedupe.review)} uncertain pairs to review in "
          f"{rel(review.screening_dir / 'dedupe_review.csv')})")
    for stage in STAGES:
        update, sheet = state.updates[stage], state.sheet(stage)
        current = sheet[sheet["status"] == ""]
        agree = state.agreement[stage]
        kappa = "n/a" if agree.kappa is None else f"{agree.kappa:.2f}"
        print(f"{STAGE_LABELS[stage]}: {len(current)} records, {len(update.new_ids)} new, "
              f"{int((current['final'] != '').sum())} decided, {len(state.conflicts[stage])} reviewer conflicts, "
              f"kappa {kappa} over {agree.n_both} dual-screened")
        if update.kept_ids:
            print(f"  kept {len(update.kept_ids)} decision(s) for records no longer retrieved: "
                  + ", ".join(update.kept_ids[:10]) + (" ..." if len(update.kept_ids) > 10 else ""))
    for row in review.retracted_included.itertuples():
        print(f"RETRACTED, included at full text: {row.record_id} {_clip(str(row.title))} "
              f"({_clip(str(row.retraction_notices), 200)}); look at the decision again")
    print("wrote: " + (", ".join(rel(p) for p in changed) if changed else "nothing (sheets already up to date)"))
    return 0


def _per_name(counts: dict[str, int], none: str = "none") -> str:
    """``{"PubMed": 69}`` → ``"PubMed 69"``: counts as a reader writes them."""
    return ", ".join(f"{name} {n}" for name, n in counts.items()) or none


def _registers(db) -> str:
    """"ClinicalTrials.gov 12", or "ClinicalTrials.gov not searched in this sample": never 0 for a register not searched."""
    from ..dedupe import REGISTER_SOURCES

    searched = _per_name({k: v for k, v in db.identified.items() if k in REGISTER_SOURCES}, none="")
    unsearched = ", ".join(f"{r} {why}" for r, why in db.not_searched.items())
    return ", ".join(p for p in (searched, unsearched) if p) or "none (the protocol lists no register)"


def _clip(text: str, limit: int = 100) -> str:
    """A one-line excerpt of text read from a register (hostile input: no control characters)."""
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _summary(name: str, c) -> str:
    from ..dedupe import REGISTER_SOURCES

    db, om = c.databases, c.other_methods
    excluded = lambda r: _per_name(r.excluded)  # noqa: E731
    return "\n".join([
        f"[{name}]",
        f"  databases: identified {_per_name({k: v for k, v in db.identified.items() if k not in REGISTER_SOURCES})}; "
        f"registers: identified {_registers(db)}; duplicates removed {db.duplicates_removed}; "
        f"removed for other reasons {db.removed_other}",
        f"    records screened {db.records_screened}, excluded {db.records_excluded}"
        + (f", awaiting screening {db.records_awaiting}" if db.records_awaiting else ""),
        f"    reports sought {db.reports.sought}, not retrieved {db.reports.not_retrieved}, "
        f"assessed {db.reports.assessed}, excluded: {excluded(db.reports)}",
        f"  other methods: identified {_per_name(om.identified)}",
        f"    reports sought {om.reports.sought}, not retrieved {om.reports.not_retrieved}, "
        f"assessed {om.reports.assessed}, excluded: {excluded(om.reports)}",
        f"  studies included {c.studies_included} (reports {c.reports_included})"
        + ("" if c.complete else "  [INCOMPLETE: records or reports still await a decision]"),
    ])


def run_simulation(args: argparse.Namespace) -> int:
    """Prioritised screening replayed on a labelled set: what a reviewer screening in the app's order finds."""
    from ..prioritise import simulate_file

    metrics = simulate_file(args.simulate, seed=args.seed, priors=args.priors)
    if args.json:
        print(json.dumps(metrics))
        return 0
    recall = ", ".join(f"{float(k):.0%} screened: {'n/a' if v is None else f'{v:.3f}'}"
                       for k, v in metrics["recall_at"].items())
    wss = "n/a" if metrics["wss95"] is None else f"{metrics['wss95']:.3f}"
    print(f"{metrics['records']} records, {metrics['included']} included (seed {args.seed})")
    print(f"recall after {recall}")
    print(f"WSS@95: {wss}")
    return 0


def run_prisma(args: argparse.Namespace) -> int:
    review = open_review(args, progress=not args.json)
    report = review.prisma
    registered = review.registered_studies
    if args.json:
        listed = json.loads(registered.to_json(orient="records")) if len(registered) else []
        print(json.dumps({**report.to_dict(), "registered_studies": listed}, indent=2))
    else:
        if notice := sample_notice(review):
            print(notice)
        print(_summary("overall", report.overall))
        for key, counts in report.by_disorder.items():
            print(_summary(key, counts))
        print("Identified counts every search's hits: a record found by several searches counts in each, and "
              "once more in 'duplicates removed' overall.")
        for listing, rows in registered.groupby("listing", sort=False):
            print(f"{str(listing).capitalize()} (Cochrane: registrations without a publication found), {len(rows)}:")
            for row in rows.itertuples():
                print(f"  {row.nct_id} {row.status}, phase {row.phase or 'not given'}, enrolment "
                      f"{row.enrolment if row.enrolment is not None else 'not given'}, completion "
                      f"{row.completion_date or 'not given'}: {_clip(str(row.title))}")
    if args.diagram:
        from ..flow_diagram import draw

        title = "PRISMA 2020 flow diagram" + (" (SAMPLE)" if review.is_sample else "")
        paths = draw(report.overall, args.diagram, title=title, note=review.sample_note or None)
        if not args.json:
            print("diagram: " + ", ".join(str(p) for p in paths))
    return 0
