"""Requests and wall time to retrieve N records from the E-utilities emulator.

For N in 1,000 / 10,000 / 30,000 (synthetic records, spread over 2000-2024),
with and without an API key, three numbers per case:

* reviewkit: ``run_search`` (split past 9,999, batches of ``--batch``), over real HTTP;
* minimum: what the protocol allows at the rate limit: the ESearch calls the
  slices need (1 when N <= 9,999, else 1 for Count + ceil(N/9,999) windows)
  plus ceil(N/batch) EFetch calls, spaced at 1/rate seconds;
* plain Bio.Entrez loop of the kind users write: one ESearch with usehistory,
  then EFetch pages by retstart/retmax from the history set; it cannot get past
  9,999 (the emulator caps history paging like PubMed's ESearch), so it
  retrieves fewer records than N above the cap, and the table says how many.

The emulator enforces NCBI's limits (3/s, 10/s with a key), so the times are
real-rate times. Figures go to bench/results/live_retrieval.{json,md}.

    .venv/bin/python bench/bench_live_retrieval.py            # all cases (~15 min)
    .venv/bin/python bench/bench_live_retrieval.py --sizes 1000 10000
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from Bio import Entrez

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reviewkit.emulator import Emulator, synthetic_records  # noqa: E402
from reviewkit.entrez import NCBI_EUTILS, PUBMED_RETRIEVAL_CAP, Credentials, LiveTransport, run_search  # noqa: E402
from reviewkit.io import atomic_write_json, atomic_write_text  # noqa: E402
from reviewkit.protocol import load_protocol  # noqa: E402
from reviewkit.ratelimit import ncbi_rate  # noqa: E402
from reviewkit.snapshot import Snapshot  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PROTOCOL = load_protocol(ROOT / "data" / "protocol.yml")
KEY = "aud"


def minimum(n: int, batch: int, rate: float) -> tuple[int, float]:
    esearch = 1 if n <= PUBMED_RETRIEVAL_CAP else 1 + math.ceil(n / PUBMED_RETRIEVAL_CAP)
    requests = esearch + math.ceil(n / batch)
    return requests, (requests - 1) / rate


def run_reviewkit(emu: Emulator, api_key: str | None, batch: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        snap = Snapshot.create(Path(tmp) / "snap", sample=False, note="benchmark")
        tr = LiveTransport(snap, Credentials("bench@example.org", api_key), base_url=emu.base_url)
        start = time.monotonic()
        result = run_search(tr, PROTOCOL, KEY, batch_size=batch, progress=False)
        return {"seconds": time.monotonic() - start, "retrieved": result.retrieved}


class _ToEmulator(urllib.request.BaseHandler):
    handler_order = 100

    def __init__(self, base: str):
        self.base = base

    def https_request(self, req):
        req.full_url = req.full_url.replace(NCBI_EUTILS, self.base)
        return req


def run_plain_loop(emu: Emulator, api_key: str | None, batch: int) -> dict:
    """The loop from Biopython's tutorial: ESearch with history, EFetch pages."""
    urllib.request.install_opener(urllib.request.build_opener(urllib.request.ProxyHandler({}), _ToEmulator(emu.base_url)))
    Entrez.email, Entrez.api_key, Entrez.max_tries = "bench@example.org", api_key, 3
    start = time.monotonic()
    retrieved = 0
    try:
        found = Entrez.read(Entrez.esearch(db="pubmed", term=PROTOCOL.query(KEY), usehistory="y",
                                           **PROTOCOL.dates.params()))
        count = int(found["Count"])
        for retstart in range(0, count, batch):
            body = Entrez.efetch(db="pubmed", retmode="xml", retstart=retstart, retmax=batch,
                                 webenv=found["WebEnv"], query_key=found["QueryKey"]).read()
            if b"<ERROR>" in body:
                break  # past the history cap: what such loops silently stop at
            retrieved += body.count(b"<PubmedArticle>")
    except Exception as exc:  # noqa: BLE001 - the figure records how the plain loop ended
        return {"seconds": time.monotonic() - start, "retrieved": retrieved, "ended_with": type(exc).__name__}
    finally:
        urllib.request.install_opener(None)
    return {"seconds": time.monotonic() - start, "retrieved": retrieved}


def case(n: int, api_key: str | None, batch: int) -> dict:
    records = synthetic_records(n, terms=[KEY])
    aliases = {PROTOCOL.query(KEY): KEY}
    rate = ncbi_rate(bool(api_key))
    row = {"records": n, "api_key": bool(api_key), "batch": batch, "rate_per_s": rate}
    req_min, t_min = minimum(n, batch, rate)
    row["minimum"] = {"requests": req_min, "seconds": round(t_min, 2)}
    for name, runner in (("reviewkit", run_reviewkit), ("plain_biopython", run_plain_loop)):
        with Emulator(records, aliases=aliases) as emu:
            out = runner(emu, api_key, batch)
            out["requests"] = len(emu.log)
            out["rate_limited_429"] = sum(e.status == 429 for e in emu.log)
        out["seconds"] = round(out["seconds"], 2)
        row[name] = out
    rk = row["reviewkit"]
    row["reviewkit_vs_minimum"] = {"requests": round(rk["requests"] / req_min, 2),
                                   "seconds": round(rk["seconds"] / max(t_min, 1e-9), 2)}
    pl = row["plain_biopython"]
    row["reviewkit_vs_plain"] = {"requests": round(rk["requests"] / pl["requests"], 2),
                                 "seconds": round(rk["seconds"] / pl["seconds"], 2),
                                 "plain_retrieved_fraction": round(pl["retrieved"] / n, 3)}
    print(json.dumps(row), flush=True)
    return row


def markdown(rows: list[dict]) -> str:
    lines = [
        "# Live retrieval benchmark (E-utilities emulator on 127.0.0.1, NCBI rate limits enforced)",
        "",
        "Synthetic records; `minimum` = ESearch calls the slices need + ceil(N/batch) EFetch calls at the rate limit.",
        "`plain` = Bio.Entrez ESearch(usehistory) + EFetch pages by retstart (stops at the 9,999 cap).",
        "",
        "| N | key | batch | reviewkit req | min req | plain req | reviewkit s | min s | plain s "
        "| req ratio vs min | time ratio vs min | time ratio vs plain | plain retrieved |",
        "|---:|:-:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        rk, mn, pl = r["reviewkit"], r["minimum"], r["plain_biopython"]
        lines.append(
            f"| {r['records']:,} | {'yes' if r['api_key'] else 'no'} | {r['batch']} | {rk['requests']} | "
            f"{mn['requests']} | {pl['requests']} | {rk['seconds']} | {mn['seconds']} | {pl['seconds']} | "
            f"{r['reviewkit_vs_minimum']['requests']} | {r['reviewkit_vs_minimum']['seconds']} | "
            f"{r['reviewkit_vs_plain']['seconds']} | {pl['retrieved']:,} of {r['records']:,}{_ended(pl)} |"
        )
    return "\n".join(lines) + "\n"


def _ended(plain: dict) -> str:
    if "ended_with" not in plain:
        return ""
    return f" (stopped: {plain['ended_with']} after {plain['rate_limited_429']} × HTTP 429)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 30_000])
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--no-keyless", action="store_true", help="skip the runs without an API key")
    args = parser.parse_args(argv)
    keys = ["bench-key"] + ([] if args.no_keyless else [None])
    rows = [case(n, key, args.batch) for n in args.sizes for key in keys]
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "live_retrieval.json", rows)
    atomic_write_text(RESULTS / "live_retrieval.md", markdown(rows))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
