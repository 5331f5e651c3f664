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


# Runs ``python -m MODULE ARGS`` and, at exit, writes to a file the larger of its own peak RSS (VmHWM, kB) and
# that of the processes it waited for. wait4's ru_maxrss alone cannot be used: a child spawned (vfork, then exec)
# from the benchmark is charged the benchmark process's own peak (an emulator's records, a project just built).
# The command's own children are charged at most the command's own peak, so the larger of the two is right.
OWN_PEAK = """import atexit, resource, runpy, sys
out, module = sys.argv.pop(1), sys.argv.pop(1)
def peak():
    with open('/proc/self/status') as status:
        own = int(next(line.split()[1] for line in status if line.startswith('VmHWM:')))
    with open(out, 'w') as fh:
        fh.write(str(max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)))
atexit.register(peak)
sys.argv[0] = module
runpy.run_module(module, run_name='__main__', alter_sys=True)
"""


def measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS in MB of ``cmd`` (run with ``env``, default this one's) and the processes
    it waited for. A ``python -m MODULE`` command reports its own peak (``OWN_PEAK``); any other is
    measured by wait4, which is right only when this process is small."""
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile() as err:  # err a file: never blocks
        peak_file = Path(tmp) / "peak"
        own = cmd[1:2] == ["-m"]
        run = [cmd[0], "-c", OWN_PEAK, str(peak_file), *cmd[2:]] if own else cmd
        start = time.perf_counter()
        proc = subprocess.Popen(run, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.read().decode()[-2000:]}")
        kb = int(peak_file.read_text(encoding="ascii")) if own else usage.ru_maxrss
    return seconds, kb / 1024


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
