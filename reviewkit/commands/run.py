"""``reviewkit run``: execute every notebook, write the HTML report, the manifest and what changed.

Exit codes: 0 done; 2 a notebook failed or the input is wrong (the message
names the notebook and cell); 3 the report was written but a search count
fell since the previous run (a scheduled run must not pass quietly).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from .. import report, runs
from ..errors import ReviewkitError
from ..notebook import resolve_data
from ..protocol import load_protocol

COUNT_DROP_EXIT = 3


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "run",
        help="run the review notebooks and write the HTML report",
        description="Execute the notebooks in order with papermill and write, in a new dated folder of the "
                    "output root: the executed notebooks, index.html (one self-contained report), run.json "
                    "and exports. Compares the run with the previous one in the same output root.",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--offline", dest="offline", action="store_true", default=True,
                      help="replay a recorded snapshot (default; the bundled sample unless -p snapshot is given)")
    mode.add_argument("--live", dest="offline", action="store_false",
                      help="run the searches against PubMed and record them in <run folder>/snapshot "
                           "(starting from the previous live run's, so only new records are fetched); "
                           "credentials come from NCBI_EMAIL / NCBI_API_KEY")
    p.add_argument("--output", type=Path, default=None, metavar="DIR",
                   help="output root holding one dated folder per run (default: reports/ in the project)")
    p.add_argument("-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"), default=[],
                   help="notebook parameter, VALUE read as YAML (e.g. -p searches '[aud, oud]'); repeatable")
    p.add_argument("--max-count-drop", type=int, default=0, metavar="N",
                   help="records a search may lose since the previous run before the run fails (default 0)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    root = report.project_root()
    notebooks = report.list_notebooks(root)
    output_root = (args.output or root / "reports").expanduser().resolve()
    user = report.parse_parameters(args.parameter)
    for reserved in ("offline", "output_dir"):
        if reserved in user:
            raise ReviewkitError(f"parameter {reserved!r} is set by reviewkit run itself (use --offline/--live, --output)")

    if not args.offline and "snapshot" in user:
        raise ReviewkitError("--live records a new snapshot in the run folder; -p snapshot is for --offline")
    # As `reviewkit screen` does: the sample's decisions offline, data/screening/live/ for live searches.
    user.setdefault("screening", "sample" if args.offline else "live")
    user["screening"] = _from_here(user["screening"])

    started = datetime.now(timezone.utc)
    run_dir = runs.make_run_dir(output_root, runs.new_run_id(started))
    snapshot = _from_here(user.pop("snapshot", "sample")) if args.offline else str(run_dir / "snapshot")
    params = {"offline": args.offline, "snapshot": str(snapshot), "output_dir": str(run_dir), **user}
    snapshot_dir = resolve_data(str(snapshot), root, "snapshots")
    if not args.offline:
        seeded = runs.seed_snapshot(output_root, run_dir.name, snapshot_dir)
        if seeded:
            print(f"reviewkit run: starting from the previous live run's snapshot ({seeded}); "
                  "only new records will be fetched", flush=True)

    print(f"reviewkit run: {'offline' if args.offline else 'live'}, snapshot {snapshot_dir}, "
          f"{len(notebooks)} notebooks, output {run_dir}", flush=True)
    manifest = {
        "run_id": run_dir.name,
        "status": "running",
        "started": started.isoformat(timespec="seconds"),
        "mode": "offline" if args.offline else "live",
        "parameters": params,
        "versions": report.versions(),
        "notebooks": [],
    }
    t0 = time.perf_counter()
    try:
        executed = report.execute_notebooks(notebooks, run_dir / "notebooks", params, progress=args.progress,
                                            log=lambda msg: print(msg, flush=True))
    except ReviewkitError as exc:
        manifest.update(status="failed", error=str(exc), finished=_now())
        runs.write_manifest(run_dir, manifest)
        raise

    manifest["notebooks"] = [{"name": r.name, "seconds": round(r.seconds, 2)} for r in executed]
    manifest.update(runs.snapshot_facts(snapshot_dir, resolve_data(str(params["screening"]), root, "screening"),
                                        params.get("searches") or None))
    previous = runs.previous_manifest(output_root, before=run_dir.name)
    changes = runs.compare(previous, manifest)
    problems = runs.count_drops(changes, args.max_count_drop)
    manifest.update(
        status="count-drop" if problems else "ok",
        changes=changes,
        problems=problems,
        seconds=round(time.perf_counter() - t0, 2),
        finished=_now(),
    )

    print("writing index.html", flush=True)
    info = {
        "title": f"{load_protocol().title}: review report",
        "run_id": run_dir.name,
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "mode": manifest["mode"],
        "snapshot": str(snapshot),
        "sample_note": manifest["snapshot"].get("note") if manifest["snapshot"].get("sample") else "",
        "parameters": params,
        "snapshot_info": manifest["snapshot"],
        "versions": manifest["versions"],
        "changes_html": runs.changes_html(changes),
        "problems": problems,
    }
    report.write_report(run_dir / "index.html", info, [r.executed for r in executed])
    runs.write_manifest(run_dir, manifest)

    for line in runs.changes_text(changes):
        print(line)
    print(f"report: {run_dir / 'index.html'} ({manifest['seconds']:.1f} s)")
    if problems:
        for problem in problems:
            print(f"reviewkit run: error: {problem}", file=sys.stderr)
        print("reviewkit run: the report was written, but a search count fell; check the searches "
              "(or allow it with --max-count-drop)", file=sys.stderr)
        return COUNT_DROP_EXIT
    return 0


def _from_here(value):
    """A folder given as a relative path means relative to where the user typed it; a bare name is left
    for the notebooks to find under data/."""
    if isinstance(value, str) and len(Path(value).parts) > 1:
        return str(Path(value).expanduser().resolve())
    return value


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
