"""``reviewkit screen`` and ``reviewkit prisma``: screening sheets and PRISMA 2020 counts.

Both read a snapshot (offline: the bundled sample; ``--live``: the live
snapshot a ``search --live`` recorded; or ``--snapshot``) and the screening
folder (default ``data/screening/<snapshot name>``). ``screen`` writes or
updates the sheets; ``prisma`` only reads.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..flow_diagram import draw
from ..prisma import PrismaCounts, prisma_report
from ..protocol import load_protocol
from ..screening import STAGE_LABELS, STAGES
from ..screening_state import ScreeningState, build_state, write_state
from ..snapshot import SAMPLE_DIR
from .search import LIVE_DEFAULT, add_mode_arguments

SCREENING_ROOT = Path("data") / "screening"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("screen", help="write or update the screening sheets (title/abstract, full text)",
                       description="Write or update the screening sheets (CSV and XLSX). Existing decisions "
                                   "are kept; new records are added unscreened.")
    _common(p)
    p.set_defaults(func=run_screen)
    p = sub.add_parser("prisma", help="PRISMA 2020 counts (and flow diagram) from the screening state",
                       description="Print PRISMA 2020 counts computed from the records and screening sheets.")
    _common(p)
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.add_argument("--diagram", type=Path, metavar="PATH",
                   help="also draw the flow diagram to PATH.png and PATH.svg")
    p.set_defaults(func=run_prisma)


def _common(p: argparse.ArgumentParser) -> None:
    add_mode_arguments(p)
    p.add_argument("--protocol", type=Path, default=None, help="protocol file (default: data/protocol.yml)")
    p.add_argument("--screening", type=Path, default=None, metavar="DIR",
                   help="screening folder (default: data/screening/<snapshot folder name>)")


def _state(args: argparse.Namespace, progress: bool) -> tuple[ScreeningState, Path]:
    snapshot = args.snapshot or (LIVE_DEFAULT if args.live else SAMPLE_DIR)
    folder = args.screening or SCREENING_ROOT / Path(snapshot).name
    return build_state(snapshot, folder, load_protocol(args.protocol), progress=progress), folder


def run_screen(args: argparse.Namespace) -> int:
    state, folder = _state(args, progress=True)
    if state.sample:
        print(f"NOTE: {state.note}")
    changed = write_state(state, folder)
    print(f"records: {len(state.identified)} identified, {len(state.dedupe.records)} after deduplication "
          f"({len(state.dedupe.merges)} merged, {len(state.dedupe.review)} uncertain pairs to review in "
          f"{folder / 'dedupe_review.csv'})")
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
    print("wrote: " + (", ".join(str(p) for p in changed) if changed else "nothing (sheets already up to date)"))
    return 0


def _summary(name: str, c: PrismaCounts) -> str:
    db, om = c.databases, c.other_methods
    excluded = lambda r: ", ".join(f"{k} {v}" for k, v in r.excluded.items()) or "none"  # noqa: E731
    return "\n".join([
        f"[{name}]",
        f"  databases: identified {db.identified}; duplicates removed {db.duplicates_removed}; "
        f"removed for other reasons {db.removed_other}",
        f"    records screened {db.records_screened}, excluded {db.records_excluded}"
        + (f", awaiting screening {db.records_awaiting}" if db.records_awaiting else ""),
        f"    reports sought {db.reports.sought}, not retrieved {db.reports.not_retrieved}, "
        f"assessed {db.reports.assessed}, excluded: {excluded(db.reports)}",
        f"  other methods: identified {om.identified}",
        f"    reports sought {om.reports.sought}, not retrieved {om.reports.not_retrieved}, "
        f"assessed {om.reports.assessed}, excluded: {excluded(om.reports)}",
        f"  studies included {c.studies_included} (reports {c.reports_included})"
        + ("" if c.complete else "  [INCOMPLETE: records or reports still await a decision]"),
    ])


def run_prisma(args: argparse.Namespace) -> int:
    state, _ = _state(args, progress=not args.json)
    report = prisma_report(state)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        if state.sample:
            print(f"NOTE: {state.note}")
        print(_summary("overall", report.overall))
        for key, counts in report.by_disorder.items():
            print(_summary(key, counts))
        print("Per-search counts overlap: a record found by several searches counts in each.")
    if args.diagram:
        title = "PRISMA 2020 flow diagram" + (" (SAMPLE)" if state.sample else "")
        paths = draw(report.overall, args.diagram, title=title, note=state.note if state.sample else None)
        if not args.json:
            print("diagram: " + ", ".join(str(p) for p in paths))
    return 0
