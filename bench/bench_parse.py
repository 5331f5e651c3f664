"""Benchmark: PubMed XML parsing throughput and peak memory, reviewkit vs Bio.Entrez.read.

Synthesises files of 20,000 and 100,000 PubmedArticle records by repeating the
real NCBI recordings in tests/fixtures/eutils/ with new PMIDs (synthetic files,
never shipped), then parses each file in a fresh subprocess per parser so peak
RSS (ru_maxrss) is that parser's alone. reviewkit runs twice: as a user gets it
(worker processes for a large file) and in one process (workers=1). CPU time
counts the workers too. Writes bench/results/parse.md and .json.

    .venv/bin/python bench/bench_parse.py [--sizes 20000 100000]
"""

from __future__ import annotations

import argparse
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.outputs import write_results  # noqa: E402

FIXTURES = [ROOT / "tests" / "fixtures" / "eutils" / f"pubmed{i}.xml" for i in (1, 2, 4, 5, 6, 7)]
PARSERS = ("reviewkit", "reviewkit, 1 process", "Bio.Entrez.read")
HEADER = (b'<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, '
          b'1st January 2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n<PubmedArticleSet>\n')

CHILD = r"""
import resource, sys, time
path, parser = sys.argv[1], sys.argv[2]
# Imports are not timed: reviewkit's pulls in pandas, which a parse does not measure.
from Bio import Entrez
from reviewkit.pubmed import _worker_count, iter_pubmed_xml
start, cpu = time.perf_counter(), time.process_time()
if parser.startswith("reviewkit"):
    workers = 1 if parser.endswith("1 process") else None
    n = sum(1 for _ in iter_pubmed_xml(path, workers=workers))
    workers = _worker_count(workers)
else:
    with open(path, "rb") as fh:
        n = len(Entrez.read(fh)["PubmedArticle"])
    workers = 1
elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
children = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu += children.ru_utime + children.ru_stime
print(n, elapsed, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, children.ru_maxrss, workers)
"""


def articles() -> list[bytes]:
    out = []
    for path in FIXTURES:
        text = path.read_bytes()
        # The 2025 DTD accepts every fixture's content; articles are copied whole.
        out += re.findall(rb"<PubmedArticle>.*?</PubmedArticle>", text, re.S)
    return out


def synthesise(n: int, path: Path) -> None:
    pool = articles()
    with open(path, "wb") as fh:
        fh.write(HEADER)
        for i in range(n):
            art = pool[i % len(pool)]
            pmid = str(90_000_000 + i).encode()
            art = re.sub(rb'<PMID Version="1">\d+</PMID>', b'<PMID Version="1">' + pmid + b"</PMID>", art, count=1)
            fh.write(art + b"\n")
        fh.write(b"</PubmedArticleSet>\n")


def run(path: Path, parser: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), parser], capture_output=True, text=True, check=True)
    n, elapsed, cpu, rss_kb, worker_rss_kb, workers = done.stdout.split()
    return {"records": int(n), "seconds": float(elapsed), "cpu_seconds": float(cpu),
            "peak_rss_mb": int(rss_kb) / 1024, "peak_rss_per_worker_mb": int(worker_rss_kb) / 1024,
            "processes": int(workers)}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[20_000, 100_000])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"pubmed_{n}.xml"
            synthesise(n, path)
            size_mb = path.stat().st_size / 2**20
            for parser in PARSERS:
                print(f"parsing {n:,} records ({size_mb:.0f} MB) with {parser} ...", flush=True)
                r = run(path, parser)
                assert r["records"] == n, r
                r.update(parser=parser, n=n, file_mb=round(size_mb, 1),
                         records_per_second=round(n / r["seconds"]))
                rows.append(r)
    speedups = {}
    for n in args.sizes:
        bio = next(r for r in rows if r["n"] == n and r["parser"] == "Bio.Entrez.read")
        speedups[n] = {}
        for ours in (r for r in rows if r["n"] == n and r["parser"] != "Bio.Entrez.read"):
            speedups[n][ours["parser"]] = {"wall": round(bio["seconds"] / ours["seconds"], 1),
                                           "cpu": round(bio["cpu_seconds"] / ours["cpu_seconds"], 1)}
    result = {"machine": f"{platform.machine()}, {platform.python_version()}, "
                         f"{__import__('os').cpu_count()} cores",
              "date": time.strftime("%Y-%m-%d"), "rows": rows, "speedup_vs_bio_entrez_read": speedups}
    print(write_results(args.out, "parse", result, markdown))
    return 0


def markdown(result: dict) -> str:
    lines = ["# PubMed XML parsing: reviewkit.read_pubmed_xml vs Bio.Entrez.read", "",
             f"Machine: {result['machine']}; run {result['date']} by `bench/bench_parse.py`.",
             "Files are synthesised from the NCBI fixtures with new PMIDs; each parse runs in a fresh process.",
             "Wall time depends on what else the machine is doing; CPU time (all processes) much less so.",
             "'reviewkit' is the default a user gets: a file of 32 MB or more is split between worker",
             "processes (one per core, at most 4). 'reviewkit, 1 process' is workers=1.",
             "", "| records | file MB | parser | processes | wall s | CPU s | records/s (wall) "
                 "| peak RSS MB | peak RSS per worker MB |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for r in result["rows"]:
        worker = f"{r['peak_rss_per_worker_mb']:.0f}" if r["processes"] > 1 else "-"
        lines.append(f"| {r['n']:,} | {r['file_mb']} | {r['parser']} | {r['processes']} | {r['seconds']:.2f} | "
                     f"{r['cpu_seconds']:.2f} | {r['records_per_second']:,} | {r['peak_rss_mb']:.0f} | {worker} |")
    lines += ["", "Throughput ratio, Bio.Entrez.read time / reviewkit time:", ""]
    lines += [f"- {n:,} records, {parser}: {s['wall']}x wall, {s['cpu']}x CPU"
              for n, per in result["speedup_vs_bio_entrez_read"].items() for parser, s in per.items()]
    lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
