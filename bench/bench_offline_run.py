"""Benchmark: the whole offline run (`reviewkit run --offline` on the bundled sample), split by notebook.

Two measurements, each in fresh processes so the numbers are the run's alone:

* per notebook: papermill executes the notebook in a child process, which
  starts its own kernel; ``os.wait4`` on the child returns the peak RSS of the
  child and the kernel it reaped, whichever is larger (Linux ``ru_maxrss``).
* whole run: ``reviewkit run --offline`` as users type it (every notebook, the
  HTML report, the manifest), wall time and peak RSS of the largest process.

Writes bench/results/offline_run.md and .json.

    .venv/bin/python bench/bench_offline_run.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

CHILD = r"""
import sys, papermill
src, out, output_dir = sys.argv[1:4]
papermill.execute_notebook(src, out, parameters={"output_dir": output_dir}, kernel_name="python3",
                           cwd=str(__import__("pathlib").Path(src).parent), progress_bar=False)
"""


def measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS in MB of ``cmd`` (run with ``env``, default this one's) and the processes
    it waited for."""
    with tempfile.TemporaryFile() as err:  # a file, not a pipe: a chatty child cannot block on a full pipe
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.read().decode()[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the median is reported")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from bench.outputs import write_results
    from reviewkit.project import Project

    notebooks = Project.load(ROOT).notebooks()
    per_notebook: dict[str, list[tuple[float, float]]] = {nb.name: [] for nb in notebooks}
    whole: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeat):
            for nb in notebooks:
                print(f"[{r + 1}/{args.repeat}] {nb.name}", flush=True)
                out = Path(tmp) / f"run{r}"
                out.mkdir(exist_ok=True)
                per_notebook[nb.name].append(
                    measured([sys.executable, "-c", CHILD, str(nb), str(out / nb.name), str(out)]))
            print(f"[{r + 1}/{args.repeat}] reviewkit run --offline", flush=True)
            whole.append(measured([sys.executable, "-m", "reviewkit", "run", "--offline", "--no-progress",
                                   "--output", str(Path(tmp) / "reports")]))

    def median(values: list[tuple[float, float]]) -> dict:
        return {"seconds": round(statistics.median(v[0] for v in values), 2),
                "peak_rss_mb": round(max(v[1] for v in values), 1), "runs": len(values)}

    result = {
        "machine": {"arch": platform.machine(), "python": platform.python_version(), "cpus": os.cpu_count()},
        "date": date.today().isoformat(),
        "notebooks": {name: median(v) for name, v in per_notebook.items()},
        "whole_run": median(whole),
    }
    result["notebooks_total_seconds"] = round(sum(v["seconds"] for v in result["notebooks"].values()), 2)
    print(write_results(RESULTS, "offline_run", result, lambda r: markdown(r, args.repeat)))
    return 0


def markdown(result: dict, repeat: int) -> str:
    lines = [
        "# Whole offline run: `reviewkit run --offline` on the bundled sample",
        "",
        f"Machine: {result['machine']['arch']}, Python {result['machine']['python']}, "
        f"{result['machine']['cpus']} cores; run {result['date']} by `bench/bench_offline_run.py`, "
        f"median of {repeat} runs (peak RSS: the largest of the runs).",
        "Each notebook runs in a fresh process with its own kernel; peak RSS is the larger of papermill's "
        "process and the kernel's.",
        "",
        "| part | seconds | peak RSS MB |",
        "|---|---:|---:|",
        *(f"| {name} | {v['seconds']:.2f} | {v['peak_rss_mb']:.0f} |" for name, v in result["notebooks"].items()),
        f"| notebooks, sum | {result['notebooks_total_seconds']:.2f} | |",
        f"| **whole `reviewkit run`** (notebooks + HTML report + manifest) | {result['whole_run']['seconds']:.2f} "
        f"| {result['whole_run']['peak_rss_mb']:.0f} |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
