"""Benchmark: PubMed XML parsing throughput and peak memory, reviewkit vs Bio.Entrez.read.

Synthesises files of 20,000 and 100,000 PubmedArticle records by repeating the
real NCBI recordings in tests/fixtures/eutils/ with new PMIDs (synthetic files,
never shipped), then parses each file in a fresh subprocess per parser so peak
RSS (ru_maxrss) is that parser's alone. Writes bench/results/parse.md and .json.

    .venv/bin/python bench/bench_parse.py [--sizes 20000 100000]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = [ROOT / "tests" / "fixtures" / "eutils" / f"pubmed{i}.xml" for i in (1, 2, 4, 5, 6, 7)]
HEADER = (b'<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, '
          b'1st January 2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n<PubmedArticleSet>\n')

CHILD = r"""
import resource, sys, time
path, parser = sys.argv[1], sys.argv[2]
start, cpu = time.perf_counter(), time.process_time()
if parser == "reviewkit":
    from reviewkit.pubmed import iter_pubmed_xml
    n = sum(1 for _ in iter_pubmed_xml(path))
else:
    from Bio import Entrez
    with open(path, "rb") as fh:
        n = len(Entrez.read(fh)["PubmedArticle"])
elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
print(n, elapsed, cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
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
    n, elapsed, cpu, rss_kb = done.stdout.split()
    return {"records": int(n), "seconds": float(elapsed), "cpu_seconds": float(cpu),
            "peak_rss_mb": int(rss_kb) / 1024}


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
            for parser in ("reviewkit", "Bio.Entrez.read"):
                print(f"parsing {n:,} records ({size_mb:.0f} MB) with {parser} ...", flush=True)
                r = run(path, parser)
                assert r["records"] == n, r
                r.update(parser=parser, n=n, file_mb=round(size_mb, 1),
                         records_per_second=round(n / r["seconds"]))
                rows.append(r)
    speedups = {}
    for n in args.sizes:
        ours = next(r for r in rows if r["n"] == n and r["parser"] == "reviewkit")
        bio = next(r for r in rows if r["n"] == n and r["parser"] == "Bio.Entrez.read")
        speedups[n] = {"wall": round(bio["seconds"] / ours["seconds"], 1),
                       "cpu": round(bio["cpu_seconds"] / ours["cpu_seconds"], 1)}
    result = {"machine": f"{platform.machine()}, {platform.python_version()}, "
                         f"{__import__('os').cpu_count()} cores",
              "date": time.strftime("%Y-%m-%d"), "rows": rows, "speedup_vs_bio_entrez_read": speedups}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "parse.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# PubMed XML parsing: reviewkit.read_pubmed_xml vs Bio.Entrez.read", "",
             f"Machine: {result['machine']}; run {result['date']} by `bench/bench_parse.py`.",
             "Files are synthesised from the NCBI fixtures with new PMIDs; each parse runs in a fresh process.",
             "Wall time depends on what else the machine is doing; CPU time (process_time) much less so.",
             "", "| records | file MB | parser | wall s | CPU s | records/s (wall) | peak RSS MB |",
             "|---:|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['n']:,} | {r['file_mb']} | {r['parser']} | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} | "
                     f"{r['records_per_second']:,} | {r['peak_rss_mb']:.0f} |")
    lines += ["", "Throughput ratio, Bio.Entrez.read time / reviewkit time: "
              + "; ".join(f"{n:,} records: {s['wall']}x wall, {s['cpu']}x CPU" for n, s in speedups.items()), ""]
    (args.out / "parse.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
