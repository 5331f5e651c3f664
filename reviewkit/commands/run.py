"""``reviewkit run``: execute every notebook, write the HTML report, the manifest and what changed.

Live, the searches run here first (recorded in the run folder's snapshot,
started from the previous live run's), so the notebooks only replay them. The
screening state is built once and handed to every notebook.

Exit codes: 0 done; 2 a notebook failed or the input is wrong (the message
names the notebook and cell); 3 the report was written but a search count
fell since the previous run (a scheduled run must not pass quietly).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..errors import ReviewkitError
from .common import open_project

COUNT_DROP_EXIT = 3
# Set by reviewkit run itself, never by -p.
RESERVED = {"offline": "--offline/--live", "output_dir": "--output", "project": "--project",
            "protocol": "--protocol"}

log = logging.getLogger("reviewkit.run")


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "run", parents=[common],
        help="run the review notebooks and write the HTML report",
        description="Execute the project's notebooks in order with papermill and write, in a new dated folder of "
                    "the output root: the executed notebooks, index.html (one self-contained report), run.json "
                    "and exports. Compares the run with the previous one in the same output root.",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--offline", dest="live", action="store_false",
                      help="replay a recorded snapshot (default; the project's, or -p snapshot NAME|DIR)")
    mode.add_argument("--live", dest="live", action="store_true",
                      help="run the searches against PubMed and record them in <run folder>/snapshot "
                           "(starting from the previous live run's, so only new records are fetched); "
                           "credentials come from NCBI_EMAIL / NCBI_API_KEY")
    p.set_defaults(live=False)
    p.add_argument("--output", type=Path, default=None, metavar="DIR",
                   help="output root holding one dated folder per run (default: the project's reports folder)")
    p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"), default=[],
                   help="notebook parameter, VALUE read as the type the notebooks declare: true/false, a number, "
                        "text, or a list (e.g. -p searches '[aud, oud]'); repeatable")
    p.add_argument("--max-count-drop", type=_records, default=0, metavar="N",
                   help="records a search may lose since the previous run before the run fails (default 0)")
    p.add_argument("--pdf", action="store_true",
                   help="also print the report to report.pdf next to index.html (A4), with headless Chromium "
                        "(refused before anything runs when Chromium is not installed)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run)


def _records(text: str) -> int:
    """--max-count-drop: a whole number of records, 0 or more."""
    if not text.strip().isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of records (0 or more)")
    return int(text)


def run(args: argparse.Namespace) -> int:
    from .. import report, runs
    from ..protocol import METHODS
    from ..review import Review

    project = open_project(args)
    notebooks = project.notebooks()
    for name, _ in args.parameter:
        if name in RESERVED:
            raise ReviewkitError(f"parameter {name!r} is set by reviewkit run itself (use {RESERVED[name]})")
    # Every value is checked against the notebooks' declared types before anything runs or is created.
    user: dict[str, Any] = report.parse_parameters(args.parameter, report.declared_parameters(notebooks))
    if args.live and "snapshot" in user:
        raise ReviewkitError("--live records a new snapshot in the run folder; -p snapshot is for --offline")
    if user.get("method") and user["method"] not in METHODS:
        raise ReviewkitError(f"parameter 'method': {user['method']!r} is not one of {', '.join(METHODS)}")
    output_root = (args.output.expanduser().resolve() if args.output else project.path("reports"))
    chromium = report.require_chromium() if args.pdf else None  # say so now, not after the notebooks ran

    snapshot, screening = user.pop("snapshot", None), user.pop("screening", None)
    # A missing snapshot, a bad protocol or an unknown search is refused before a run folder exists.
    project.protocol().select(user.get("searches") or None)
    if not args.live:
        replayed = Review(project, snapshot=snapshot, screening=screening).snapshot
        log.debug("replaying snapshot %s", project.relative(replayed.root))
    started = datetime.now(UTC)
    run_dir = runs.make_run_dir(output_root, runs.new_run_id(started))
    try:
        review, params, manifest = _prepare(args, project, output_root, run_dir, started, snapshot, screening, user)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)  # nothing has run yet: no half-made folder is left
        raise
    runs.write_manifest(run_dir, manifest)  # "running": a run killed from here on still says what it was
    try:
        return _execute(args, review, notebooks, params, manifest, run_dir, output_root, started, chromium)
    except BaseException as exc:  # every run folder says how its run ended, whatever stopped it
        if manifest["status"] == "running":
            reason = str(exc) if isinstance(exc, ReviewkitError) else f"{type(exc).__name__} (see the terminal)"
            manifest.update(status="failed", error=reason, finished=_now())
            runs.write_manifest(run_dir, manifest)
        raise


def _prepare(args: argparse.Namespace, project, output_root: Path, run_dir: Path, started: datetime, snapshot,
             screening, user: dict[str, Any]):
    """The run's Review (live: its snapshot seeded from the previous live run's), parameters and manifest."""
    from .. import report, runs
    from ..review import LIVE_NOTE, Review
    from ..snapshot import Snapshot

    if args.live:
        snapshot = run_dir / "snapshot"
        seeded = runs.seed_snapshot(output_root, run_dir.name, snapshot)
        if seeded:
            log.info("starting from the previous live run's snapshot (%s); only new records will be fetched",
                     project.relative(seeded))
        else:
            Snapshot.create(snapshot, sample=False, note=LIVE_NOTE, name=project.snapshots["live"],
                            protocol_sha256=project.protocol().sha256)
    review = Review(project, live=args.live, snapshot=snapshot, screening=screening,
                    searches=user.get("searches") or None, output_dir=run_dir, progress=args.progress)
    rel = project.relative
    params = {"project": str(project.root), "protocol": str(project.protocol_file or ""), "offline": True,
              "snapshot": str(review.snapshot_dir), "screening": str(review.screening_dir),
              "output_dir": str(run_dir), **user}
    log.info("%s run, snapshot %s, %d notebooks, output %s", "live" if args.live else "offline",
             rel(review.snapshot_dir), len(project.notebooks()), rel(run_dir))
    manifest: dict[str, Any] = {
        "run_id": run_dir.name,
        "status": "running",
        "started": started.isoformat(timespec="seconds"),
        "mode": "live" if args.live else "offline",
        "parameters": {**params, "project": ".", "protocol": rel(project.protocol_path),
                       "snapshot": rel(review.snapshot_dir), "screening": rel(review.screening_dir),
                       "output_dir": rel(run_dir)},
        "versions": report.versions(),
        "notebooks": [],
    }
    return review, params, manifest


def _execute(args: argparse.Namespace, review, notebooks: list[Path], params: dict[str, Any], manifest: dict,
             run_dir: Path, output_root: Path, started: datetime, chromium: str | None) -> int:
    """Search (live), build the screening state, run the notebooks, compare, write the report and manifest."""
    from .. import report, runs
    from ..screening_state import handoff_built

    rel = review.project.relative
    t0 = time.perf_counter()
    if args.live:
        review.search()  # the notebooks replay what this records

    def facts(state) -> dict:  # what the manifest records of the data: small, computed where the state is
        from ..prisma import prisma_report

        return runs.snapshot_facts(review.snapshot, state, prisma_report(state).overall,
                                   snapshot_path=rel(review.snapshot_dir), screening_path=rel(review.screening_dir),
                                   searches=review.searches or None)

    # The state is built in a child process that writes the handed file: this process, alive while
    # every kernel loads its own copy, never holds it (about 1 GB at 100,000 records).
    with handoff_built(lambda: review.state, facts) as (env, data), report.kernel_environment(env):
        executed = report.execute_notebooks(notebooks, run_dir / "notebooks", params, progress=args.progress,
                                            log=log.info)

    manifest["notebooks"] = [{"name": r.name, "seconds": round(r.seconds, 2)} for r in executed]
    manifest.update(data)
    previous = runs.previous_manifest(output_root, before=run_dir.name)
    changes = runs.compare(previous, manifest)
    problems = runs.count_drops(changes, args.max_count_drop)
    manifest.update(
        changes=changes,
        problems=problems,
        seconds=round(time.perf_counter() - t0, 2),
        finished=_now(),
    )

    log.info("writing index.html")
    info = {
        "title": f"{review.protocol.title}: review report",
        "run_id": run_dir.name,
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "mode": manifest["mode"],
        "snapshot": rel(review.snapshot_dir),
        "sample_note": review.sample_note,
        "parameters": manifest["parameters"],
        "snapshot_info": manifest["snapshot"],
        "versions": manifest["versions"],
        "changes_html": runs.changes_html(changes),
        "problems": problems,
    }
    report.write_report(run_dir / "index.html", info, [r.executed for r in executed])
    manifest["status"] = "count-drop" if problems else "ok"  # only once everything is written
    runs.write_manifest(run_dir, manifest)
    if chromium:
        log.info("printing report.pdf with %s", Path(chromium).name)
        try:
            manifest["pdf"] = report.write_pdf(run_dir / "index.html", chromium=chromium).name
        except ReviewkitError as exc:
            raise ReviewkitError(f"the report was written ({run_dir / 'index.html'}) but not its PDF: {exc}") from None
        runs.write_manifest(run_dir, manifest)

    for line in runs.changes_text(changes):
        print(line)
    print(f"report: {run_dir / 'index.html'} ({manifest['seconds']:.1f} s)")
    if chromium:
        print(f"pdf: {run_dir / manifest['pdf']}")
    if problems:
        for problem in problems:
            print(f"reviewkit run: error: {problem}", file=sys.stderr)
        print("reviewkit run: the report was written, but a search count fell; check the searches "
              "(or allow it with --max-count-drop)", file=sys.stderr)
        return COUNT_DROP_EXIT
    return 0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
