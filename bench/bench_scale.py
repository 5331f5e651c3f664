"""Benchmark: a review at 1,000, 10,000 and 100,000 records, stage by stage and as one `reviewkit run --offline`.

For each size, ``bench/scale_project.py`` builds a project (the worked example
with a synthetic snapshot ``scale`` recorded through the live code against the
loopback emulator, a citation-searching RIS file with planted duplicates, and
screening sheets of a review in progress; its docstring says how the records
are made). Built projects are kept in ``bench/results/tmp/`` (ignored by git)
and reused while the builder's inputs are unchanged.

Then, each in a fresh process:

* **stages**, one after another in one process, each timed and its peak RSS
  taken (``VmHWM`` reset before the stage through ``/proc/self/clear_refs``, so
  a stage's peak is its own; the RSS it started from is given too):
  search replay (``Review.search``: ESearch and EFetch answered from the
  snapshot and checked against its manifests), records table (PubMed records
  parsed from the snapshot, other-method records read), dedupe, sheets (both
  stages' sheets read, decisions carried onto fresh sheets, written: CSV and
  XLSX, atomically), PRISMA (counts and flow diagram), report (the HTML report
  from the executed notebooks of the whole run below);
* **the whole run**: ``reviewkit run --offline`` as a user types it (state
  built once and handed to six notebooks, HTML report, manifest), its wall time
  and the peak RSS of the largest process (the command's own VmHWM or that of the
  kernels it reaped), with each notebook's seconds from its ``run.json``.

The machine is shared: the load average (1, 5, 15 min) is recorded before and
after each size. Writes bench/results/scale.json and scale.md; ``--before``
adds a before/after table from an earlier scale.json.

The stages run ``--stage-runs`` times per size (3 by default), each time in a
fresh process; a stage's time is its least over the runs (load only adds to
a run's time), its peak the largest, and every run's time is kept.

A whole run is stopped (and its row says so) above ``--whole-run-limit-mb`` for
its processes together or after ``--whole-run-timeout`` seconds;
``--whole-run-sizes`` limits it to some sizes. ``--recheck`` times the first
three stages alone (least of ``--repeat`` runs, imports done beforehand) at
10,000 and 100,000 records into scale_recheck.{json,md}: on a shared machine a
single run's ratio can be far off.

    .venv/bin/python bench/bench_scale.py [--sizes 1000 10000 100000] [--before old.json]
    .venv/bin/python bench/bench_scale.py --recheck [--repeat 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
WORK = RESULTS / "tmp"
sys.path.insert(0, str(ROOT))

from bench.bench_offline_run import measured  # noqa: E402
from bench.outputs import write_results  # noqa: E402

STAGES = ("search replay", "records table", "dedupe", "sheets", "PRISMA", "report")
GOAL_RATIO, GOAL_SECONDS, GOAL_MB = 15, 300, 2048


# --- the child: stages in one process ---------------------------------------------

def _memory() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


class _Stage:
    def __init__(self, results: dict, name: str):
        self.results, self.name = results, name

    def __enter__(self):
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS: the peak measured is this stage's
        self.rss, _ = _memory()
        self.start, self.cpu = time.perf_counter(), time.process_time()

    def __exit__(self, *exc):
        seconds, cpu = time.perf_counter() - self.start, time.process_time() - self.cpu
        self.results[self.name] = {"seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
                                   "rss_start_mb": round(self.rss), "peak_rss_mb": round(_memory()[1])}
        print(f"  {self.name}: {seconds:.2f} s, peak {_memory()[1]:.0f} MB", file=sys.stderr, flush=True)


def stages(project_dir: Path, executed: Path | None, scratch: Path) -> dict:
    """Run every stage on the project; what each took (module doc)."""
    import pandas as pd

    from reviewkit import flow_diagram, report
    from reviewkit.dedupe import DATABASE_SOURCES, deduplicate
    from reviewkit.prisma import prisma_report
    from reviewkit.project import Project
    from reviewkit.review import Review
    from reviewkit.screening import agreement, build_sheet, conflicts, read_sheet, update_sheet
    from reviewkit.screening_state import ScreeningState, full_text_candidates, write_state

    out: dict = {}
    review = Review(Project.load(project_dir))
    protocol, snap = review.protocol, review.snapshot
    with _Stage(out, "search replay"):
        searched = review.search()
    with _Stage(out, "records table"):
        pubmed, other = review.records(), review.other_records()
        identified = pd.concat([f for f in (pubmed, other) if not f.empty], ignore_index=True)
    with _Stage(out, "dedupe"):
        dedupe = deduplicate(identified)
    with _Stage(out, "sheets"):
        # the steps of reviewkit.screening_state.build_state after dedupe, then write_state
        terms, updates = tuple(protocol.intervention.text), {}
        for stage in ("title_abstract", "full_text"):
            candidates = (dedupe.records[dedupe.records["source"].isin(DATABASE_SOURCES)] if stage == "title_abstract"
                          else full_text_candidates(dedupe.records, updates["title_abstract"].sheet))
            existing = read_sheet(review.screening_dir, stage, protocol.screening_reasons.get(stage, ()))
            updates[stage] = update_sheet(existing, build_sheet(candidates, stage, terms), stage)
        state = ScreeningState(
            snapshot=snap.root.resolve(), screening_dir=review.screening_dir.resolve(),
            protocol_sha256=protocol.sha256, sample=snap.is_sample, note=snap.info.get("note", ""),
            search_keys=tuple(protocol.searches), identified=identified, dedupe=dedupe, updates=updates,
            agreement={s: agreement(u.sheet, s) for s, u in updates.items()},
            conflicts={s: conflicts(u.sheet) for s, u in updates.items()})
        write_state(state, scratch / "screening")
    with _Stage(out, "PRISMA"):
        prisma = prisma_report(state)
        flow_diagram.draw(prisma.overall, scratch / "prisma_flow", title="PRISMA 2020 flow diagram")
    if executed is not None:
        notebooks = sorted(executed.glob("*.ipynb"))
        info = {"title": "scale benchmark", "run_id": "bench", "mode": "offline", "snapshot": str(snap.root),
                "sample_note": review.sample_note, "parameters": {}, "snapshot_info": snap.info, "versions": {}}
        with _Stage(out, "report"):
            page = report.write_report(scratch / "index.html", info, notebooks)
        out["report"]["html_mb"] = round(page.stat().st_size / 2**20, 1)
    ta, ft = state.sheet("title_abstract"), state.sheet("full_text")
    return {"stages": out, "counts": {
        "pubmed_records": len(pubmed), "other_records": len(other),
        "count_per_search": {r.key: r.count for r in searched}, "after_dedupe": len(dedupe.records),
        "merges": len(dedupe.merges), "review_pairs": len(dedupe.review), "title_abstract_rows": len(ta),
        "title_abstract_new": len(updates["title_abstract"].new_ids),
        "title_abstract_decided": int((ta["final"] != "").sum()), "full_text_rows": len(ft),
        "prisma": prisma.overall.boxes()}}


def recheck_child(project_dir: Path, repeat: int) -> dict:
    """The three first stages alone, ``repeat`` times each on a fresh Review, modules imported beforehand:
    the least wall and CPU seconds of each (the shared machine's load adds to some runs, never takes away)."""
    import pandas as pd

    import reviewkit.entrez
    import reviewkit.other_methods
    import reviewkit.records  # noqa: F401 (imported here, not in the timings)
    from reviewkit.dedupe import deduplicate
    from reviewkit.project import Project
    from reviewkit.review import Review

    best: dict[str, list[float]] = {}

    def timed(name: str, work):
        start, cpu = time.perf_counter(), time.process_time()
        out = work()
        wall, used = time.perf_counter() - start, time.process_time() - cpu
        old = best.setdefault(name, [wall, used])
        best[name] = [min(old[0], wall), min(old[1], used)]
        return out

    for _ in range(repeat):
        review = Review(Project.load(project_dir))
        timed("search replay", review.search)
        identified = timed("records table", lambda r=review: pd.concat([r.records(), r.other_records()],
                                                                          ignore_index=True))
        timed("dedupe", lambda t=identified: deduplicate(t))
    return {name: {"seconds": round(w, 3), "cpu_seconds": round(c, 3)} for name, (w, c) in best.items()}


def recheck(sizes: list[int], repeat: int, out: Path) -> str:
    rows = {}
    for n in sizes:
        project, _ = project_for(n)
        child = subprocess.run([sys.executable, __file__, "--recheck-child", str(project), str(repeat)], cwd=ROOT,
                               capture_output=True, text=True, check=True)
        rows[n] = {"stages": json.loads(child.stdout), "load_after": [round(x, 2) for x in os.getloadavg()]}
    result = {"machine": f"{platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores",
              "date": time.strftime("%Y-%m-%d"), "repeat": repeat, "sizes": rows}
    return write_results(out, "scale_recheck", result, recheck_markdown)


def recheck_markdown(result: dict) -> str:
    repeat, rows = result["repeat"], result["sizes"]
    names = list(next(iter(rows.values()))["stages"])
    lines = ["# Scale benchmark: the first three stages again, each alone", "",
             f"Machine: {result['machine']} (shared); run {result['date']} by `bench/bench_scale.py --recheck`. "
             f"Each stage {repeat} times on a fresh Review in one fresh process per size, modules imported "
             "before the timings; the least wall and CPU seconds of the runs.", "",
             "| stage | " + " | ".join(f"{n:,}: s (CPU s)" for n in rows) + " | ratio (CPU) |",
             "|---|" + "---:|" * len(rows) + "---:|"]
    for name in names:
        cells = [f"{r['stages'][name]['seconds']:.2f} ({r['stages'][name]['cpu_seconds']:.2f})" for r in rows.values()]
        first, last = (rows[n]["stages"][name] for n in (min(rows), max(rows)))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {last['seconds'] / first['seconds']:.1f} "
                     f"({last['cpu_seconds'] / first['cpu_seconds']:.1f}) |")
    lines += ["", "Load average after each size: " + "; ".join(f"{n:,}: {r['load_after']}" for n, r in rows.items())]
    return "\n".join(lines) + "\n"


# --- the parent ---------------------------------------------------------------------

def _inputs_digest() -> str:
    """What a built project depends on: the builder and the worked example it copies (data/, notebooks/)."""
    digest = hashlib.sha256()
    example = sorted(p for folder in ("data", "notebooks") for p in (ROOT / folder).rglob("*")
                     if p.is_file() and p.suffix != ".xlsx")  # xlsx: written on demand, ignored by git
    for path in (ROOT / "bench" / "scale_project.py", ROOT / "bench" / "bench_dedupe.py", *example):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:16]


def project_for(n: int) -> tuple[Path, dict]:
    """The built project of ``n`` records (built now unless a current one is kept) and what it holds."""
    folder, stamp = WORK / f"scale-{n}", WORK / f"scale-{n}.json"
    digest = _inputs_digest()
    if stamp.is_file():
        built = json.loads(stamp.read_text(encoding="utf-8"))
        if built.get("digest") == digest and folder.is_dir():
            return folder, built
    shutil.rmtree(folder, ignore_errors=True)
    print(f"building a project of {n:,} records in {folder.relative_to(ROOT)} ...", flush=True)
    from bench.scale_project import build_project

    start = time.perf_counter()
    built = {**build_project(folder, n), "digest": digest, "build_seconds": round(time.perf_counter() - start, 1)}
    stamp.write_text(json.dumps(built, indent=2) + "\n", encoding="utf-8")
    return folder, built


class TreeMemory:
    """The largest sum of RSS over this process's descendants, sampled every ``interval`` seconds while in
    the block: the whole run's processes together (the command and the kernel it runs at that moment).
    Pages shared between processes count once per process, so it is an upper bound.

    A watchdog too, on a shared machine: above ``limit_mb`` together, or after ``timeout`` seconds, it ends
    those processes (by their ids) and says why in ``stopped``."""

    def __init__(self, interval: float = 0.25, limit_mb: float | None = None, timeout: float | None = None):
        import threading

        self.interval, self.peak_mb, self.limit_mb, self.timeout = interval, 0.0, limit_mb, timeout
        self.stopped: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        import psutil

        me, start = psutil.Process(), time.monotonic()
        while not self._done.wait(self.interval):
            total = 0
            children = me.children(recursive=True)
            for proc in children:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:  # ended between listing and reading
                    pass
            self.peak_mb = max(self.peak_mb, total / 2**20)
            if self.stopped is None and self.limit_mb and self.peak_mb > self.limit_mb:
                self.stopped = f"stopped by the benchmark: its processes held {self.peak_mb:,.0f} MB together"
            elif self.stopped is None and self.timeout and time.monotonic() - start > self.timeout:
                self.stopped = f"stopped by the benchmark after {self.timeout:.0f} s"
            if self.stopped:
                for proc in children:
                    try:
                        proc.kill()
                    except psutil.Error:
                        pass

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()


def whole_run(project: Path, out: Path, limit_mb: float | None = None, timeout: float | None = None) -> dict:
    try:
        with TreeMemory(limit_mb=limit_mb, timeout=timeout) as tree:
            start = time.perf_counter()
            seconds, peak = measured([sys.executable, "-m", "reviewkit", "run", "--offline", "--no-progress",
                                      "--project", str(project), "--output", str(out)])
    except SystemExit as failed:
        return {"stopped": tree.stopped or str(failed)[-300:], "seconds": round(time.perf_counter() - start, 2),
                "tree_peak_rss_mb": round(tree.peak_mb),
                "notebooks_written": sorted(p.name for p in out.glob("*/notebooks/*.ipynb"))}
    manifest = json.loads(next(out.glob("*/run.json")).read_text(encoding="utf-8"))
    html = next(out.glob("*/index.html"))
    return {"seconds": round(seconds, 2), "peak_rss_mb": round(peak), "tree_peak_rss_mb": round(tree.peak_mb),
            "run_dir": str(html.parent),
            "notebooks": {nb["name"]: nb["seconds"] for nb in manifest["notebooks"]},
            "html_mb": round(html.stat().st_size / 2**20, 1)}


def least(runs) -> dict:
    """Per stage over several runs of the stages: the least wall and CPU seconds (the shared machine's load
    adds to a run's time, never takes from it), the largest peak RSS, and every run's wall seconds."""
    runs = list(runs)
    out = {}
    for name in runs[0]:
        each = [r[name] for r in runs]
        out[name] = {**each[0], "seconds": min(e["seconds"] for e in each),
                     "cpu_seconds": min(e["cpu_seconds"] for e in each),
                     "peak_rss_mb": max(e["peak_rss_mb"] for e in each), "runs_seconds": [e["seconds"] for e in each]}
    return out


def size(n: int, whole: bool = True, limit_mb: float | None = None, timeout: float | None = None,
         stage_runs: int = 3) -> dict:
    project, built = project_for(n)
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        run: dict | None = None
        if whole:
            print(f"[{n:,}] reviewkit run --offline ...", flush=True)
            run = whole_run(project, Path(tmp) / "reports", limit_mb, timeout)
        executed = run.pop("run_dir") if run and "run_dir" in run else "-"  # "-": no report stage
        runs = []
        for i in range(stage_runs):
            print(f"[{n:,}] stages, run {i + 1} of {stage_runs} ...", flush=True)
            child = subprocess.run([sys.executable, __file__, "--child", str(project), executed, tmp],
                                   cwd=ROOT, capture_output=True, text=True)
            if child.returncode != 0:
                raise SystemExit(f"stages at {n:,} records failed:\n{child.stderr[-3000:]}")
            runs.append(json.loads(child.stdout))
        measured_stages = {**runs[0], "stages": least(r["stages"] for r in runs)}
    return {"records": n, "built": {k: v for k, v in built.items() if k != "digest"}, **measured_stages,
            "whole_run": run, "load_before": load_before, "load_after": [round(x, 2) for x in os.getloadavg()]}


def _done(run: dict | None) -> bool:
    """Whether a whole run was measured to its end."""
    return bool(run) and "stopped" not in run


def ratios(rows: list[dict], big: int = 100_000, small: int = 10_000, what: str = "seconds") -> dict[str, float]:
    """Per stage, its ``what`` (wall ``seconds`` or ``cpu_seconds``) at ``big`` records over that at ``small``."""
    by = {r["records"]: r for r in rows}
    if big not in by or small not in by:
        return {}
    out = {name: round(by[big]["stages"][name][what] / by[small]["stages"][name][what], 1)
           for name in STAGES if name in by[big]["stages"] and name in by[small]["stages"]
           and by[small]["stages"][name][what] > 0}
    if _done(by[big]["whole_run"]) and _done(by[small]["whole_run"]):
        out["whole run"] = round(by[big]["whole_run"]["seconds"] / by[small]["whole_run"]["seconds"], 1)
    return out


def _whole_cell(run: dict | None) -> str:
    if not run:
        return "not run"
    if "stopped" in run:
        return f"{run['stopped']} ({run['seconds']:.0f} s)"
    return f"{run['seconds']:.1f} s"


def goals(rows: list[dict]) -> list[tuple[str, bool | None, str]]:
    """(goal, met (None: not measured), the figures) for the issue's three goals."""
    by = {r["records"]: r for r in rows}
    if 100_000 not in by:
        return []
    big = by[100_000]
    rat = {k: v for k, v in ratios(rows).items() if k != "whole run"}
    worst = max(rat, key=lambda k: rat[k]) if rat else None
    stage_names = ", ".join(big["stages"])
    missing = [s for s in STAGES if s not in big["stages"]]
    run = big["whole_run"]
    peaks = [s["peak_rss_mb"] for s in big["stages"].values()] + ([run["tree_peak_rss_mb"]] if run else [])
    return [(f"each stage at 100,000 records at most {GOAL_RATIO}x its time at 10,000",
             (all(v <= GOAL_RATIO for v in rat.values()) if rat else None),
             (f"largest: {worst} {rat[worst]}x" if worst else "10,000 not measured")
             + (f"; not measured at 100,000: {', '.join(missing)}" if missing else "")),
            ("whole offline run at 100,000 records under 5 minutes",
             (run["seconds"] < GOAL_SECONDS) if _done(run) else (False if run else None), _whole_cell(run)),
            ("peak memory under 2 GB (a stage's process; the whole run's processes together)",
             max(peaks) < GOAL_MB, f"{max(peaks):,} MB (of: {stage_names}" + ("; whole run)" if run else ")"))]


def _table(rows: list[dict]) -> list[str]:
    lines = ["| stage | " + " | ".join(f"{r['records']:,} s | peak MB" for r in rows)
             + " | 100k/10k | 100k/10k CPU time |", "|---|" + "---:|---:|" * len(rows) + "---:|---:|"]
    rat, cpu = ratios(rows), ratios(rows, what="cpu_seconds")
    for name in STAGES:
        cells = []
        for r in rows:
            s = r["stages"].get(name)
            cells.append(f"{s['seconds']:.2f} | {s['peak_rss_mb']:,}" if s else "not measured | –")
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {rat.get(name, '–')} | {cpu.get(name, '–')} |")

    def whole(run: dict | None) -> str:
        if not _done(run):
            return f"{_whole_cell(run)} | {run['tree_peak_rss_mb']:,}" if run else "not run | –"
        return f"**{run['seconds']:.1f}** | {run['tree_peak_rss_mb']:,}"

    lines.append("| **whole `reviewkit run --offline`** (peak: its processes together) | "
                 + " | ".join(whole(r["whole_run"]) for r in rows) + f" | {rat.get('whole run', '–')} | – |")
    return lines


def markdown(result: dict) -> str:
    rows = result["sizes"]
    done = [r for r in rows if _done(r["whole_run"])]
    lines = [
        "# A review at scale: 1,000 to 100,000 records, stage by stage and as one offline run", "",
        f"Machine: {result['machine']}; run {result['date']} (commit {result['commit']}) by `bench/bench_scale.py` "
        "(how the records and the project are made: `bench/scale_project.py`).", "",
        "Synthetic records shaped like the corpus' (95% PubMed, 5% citation searching of which 70% copy a PubMed "
        "record): stages run one after another in one fresh process, each with its own peak RSS"
        + (f"; the stages ran {result['stage_runs']} times per size, each time in a fresh process, and the table "
           "gives each stage's least wall and CPU time (the shared machine's load only adds to a run) and its "
           "largest peak (every run's time is below the tables)" if result.get("stage_runs", 1) > 1 else "")
        + "; the whole run is "
        "`reviewkit run --offline` in a fresh process, its peak the largest sum of its processes' RSS (the "
        "command and the notebook kernel it runs), sampled every 0.25 s; the largest single process "
        "(the command's own VmHWM at exit or that of a process it reaped) is in the second table. The report "
        "stage renders the whole run's executed notebooks, so it is measured only where the whole run was.", "",
        *_table(rows), "",
        "| size | load average before | after | merges (planted auto-merge copies) | review pairs | "
        "TA rows (new) | FT rows | HTML report MB | whole run: largest process MB |",
        "|---:|---|---|---:|---:|---:|---:|---:|---:|",
        *(f"| {r['records']:,} | {r['load_before']} | {r['load_after']} | {r['counts']['merges']:,} "
          f"({r['built']['planted_auto_merge']:,}) | {r['counts']['review_pairs']:,} | "
          f"{r['counts']['title_abstract_rows']:,} ({r['counts']['title_abstract_new']:,}) | "
          f"{r['counts']['full_text_rows']:,} | "
          + (f"{r['whole_run']['html_mb']} | {r['whole_run']['peak_rss_mb']:,} |" if _done(r["whole_run"])
             else "– | – |")
          for r in rows),
    ]
    if done:
        names = list(done[0]["whole_run"]["notebooks"])
        lines += ["", "Notebooks within the whole run (seconds):", "",
                  "| size | " + " | ".join(names) + " |", "|---:|" + "---:|" * len(names),
                  *(f"| {r['records']:,} | " + " | ".join(f"{s:.1f}" for s in r["whole_run"]["notebooks"].values())
                    + " |" for r in done)]
    spread = [r for r in rows if any("runs_seconds" in st for st in r["stages"].values())]
    if spread:
        lines += ["", "Every run of the stages (wall seconds, in order):", "",
                  "| stage | " + " | ".join(f"{r['records']:,}" for r in spread) + " |", "|---|" + "---|" * len(spread),
                  *(f"| {name} | " + " | ".join(", ".join(f"{x:.2f}" for x in r["stages"][name].get("runs_seconds", []))
                                                if name in r["stages"] else "–" for r in spread) + " |"
                    for name in STAGES)]
    met = goals(rows)
    if met:
        lines += ["", "| goal | met | measured |", "|---|:-:|---|",
                  *(f"| {g} | {_met(ok)} | {figure} |" for g, ok, figure in met)]
    before = result.get("before")
    if before:
        lines += ["", f"## Before (run {before['date']}, {before['commit']})", "", *_table(before["sizes"]), "",
                  "Load average during the before run: " + "; ".join(
                      f"{r['records']:,}: {r['load_before']} -> {r['load_after']}" for r in before["sizes"])]
        old = goals(before["sizes"])
        if old:
            lines += ["", "| goal, before | met | measured |", "|---|:-:|---|",
                      *(f"| {g} | {_met(ok)} | {figure} |" for g, ok, figure in old)]
    return "\n".join(lines) + "\n"


def _met(ok: bool | None) -> str:
    return "not measured" if ok is None else ("yes" if ok else "**no**")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--before", type=Path, help="scale.json of an earlier version, for a before/after table")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--whole-run-sizes", type=int, nargs="*", metavar="N",
                        help="sizes at which the whole reviewkit run is measured (default: every size)")
    parser.add_argument("--whole-run-limit-mb", type=float, default=8192,
                        help="stop a whole run whose processes hold more than this together (default 8192)")
    parser.add_argument("--whole-run-timeout", type=float, default=1800, help="stop a whole run after this (s)")
    parser.add_argument("--render", type=Path, metavar="JSON", help="only write scale.md again from a scale.json")
    parser.add_argument("--recheck", action="store_true",
                        help="time search replay, records table and dedupe alone, --repeat times (scale_recheck.md)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stage-runs", type=int, default=3,
                        help="runs of the stages per size, each in a fresh process; the least time counts (default 3)")
    parser.add_argument("--recheck-child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--child", nargs=3, metavar=("PROJECT", "EXECUTED", "SCRATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        project, executed, scratch = (Path(p) for p in args.child)
        print(json.dumps(stages(project, None if args.child[1] == "-" else executed / "notebooks", scratch)))
        return 0
    if args.recheck_child:
        print(json.dumps(recheck_child(Path(args.recheck_child[0]), int(args.recheck_child[1]))))
        return 0
    if args.recheck:
        print(recheck(args.sizes if args.sizes != [1_000, 10_000, 100_000] else [10_000, 100_000], args.repeat,
                      args.out))
        return 0
    if args.render:
        print(write_results(args.out, "scale", json.loads(args.render.read_text(encoding="utf-8")), markdown,
                            tables_only=True))
        return 0
    whole_sizes = set(args.sizes if args.whole_run_sizes is None else args.whole_run_sizes)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    result = {"machine": f"{platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores",
              "date": time.strftime("%Y-%m-%d"), "commit": commit.strip(), "stage_runs": args.stage_runs,
              "sizes": []}
    if args.before:
        before = json.loads(args.before.read_text(encoding="utf-8"))
        result["before"] = {k: before[k] for k in ("date", "commit", "sizes")}
    for n in args.sizes:  # written after each size, so a size that fails keeps the ones measured
        result["sizes"].append(size(n, n in whole_sizes, args.whole_run_limit_mb, args.whole_run_timeout,
                                    args.stage_runs))
        text = write_results(args.out, "scale", result, markdown)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
