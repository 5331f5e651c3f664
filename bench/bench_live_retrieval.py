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

``--cli`` measures instead ``reviewkit search --live`` as a user runs it, in a
fresh process against an emulator serving N records for one search (default
5,000, 20,000 and 100,000; with an API key, so at 10 requests a second): wall
time, peak RSS (the command's own VmHWM at exit), retrieved against Count from the snapshot's
manifest, and how the snapshot grew while the search ran (EFetch answers on
disk, sampled every half second), so memory that stays flat and records written
as they arrive show in the figures; then once more at the largest size with
``--fault-rate`` (default 2%) of the answers faulted at random, counting the
failed answers by kind and the retries they cost. Figures go to
bench/results/live_scale.{json,md}.

    .venv/bin/python bench/bench_live_retrieval.py            # all cases (~15 min)
    .venv/bin/python bench/bench_live_retrieval.py --sizes 1000 10000
    .venv/bin/python bench/bench_live_retrieval.py --cli      # 5k, 20k, 100k, 100k faulted (~2 min)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

from Bio import Entrez

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_offline_run import measured  # noqa: E402
from reviewkit.entrez import NCBI_EUTILS, PUBMED_RETRIEVAL_CAP, Credentials, LiveTransport, run_search  # noqa: E402
from reviewkit.io import atomic_write_json, atomic_write_text  # noqa: E402
from reviewkit.protocol import load_protocol  # noqa: E402
from reviewkit.ratelimit import ncbi_rate  # noqa: E402
from reviewkit.scaffold import init_project  # noqa: E402
from reviewkit.snapshot import Snapshot  # noqa: E402
from reviewkit.testing.ctgov_emulator import CtgovEmulator  # noqa: E402
from reviewkit.testing.emulator import Emulator, Faults, synthetic_records  # noqa: E402

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


def cli_search(n: int, fault_rate: float = 0.0, seed: int = 0) -> dict:
    """``reviewkit search --live --only aud`` in a fresh process against ``n`` records (module doc), with
    ``fault_rate`` of the answers faulted at random (5xx, 429, reset, truncated, slow, ``<ERROR>``,
    expired WebEnv, empty EFetch: ``reviewkit.testing.emulator.Faults``, seeded)."""
    faults = Faults(rate=fault_rate, seed=seed)
    # the protocol searches ClinicalTrials.gov too: an empty register on loopback answers it, so the run
    # measures PubMed retrieval and never reaches for the network
    with tempfile.TemporaryDirectory() as tmp, Emulator(synthetic_records(n, terms=[KEY]), faults=faults,
                                                        aliases={PROTOCOL.query(KEY): KEY}) as emu, \
            CtgovEmulator() as ctgov:
        project = init_project(Path(tmp) / "project", example="ketamine")
        exchanges = project.path("snapshots") / "live" / "exchanges"
        env = {**os.environ, "REVIEWKIT_EUTILS_URL": emu.base_url, "REVIEWKIT_CTGOV_URL": ctgov.base_url,
               "NCBI_EMAIL": "bench@example.org", "NCBI_API_KEY": "bench-key"}
        growth: list[tuple[float, int]] = []
        done = threading.Event()

        def sample() -> None:  # EFetch answers on disk while the search runs
            start = time.monotonic()
            while not done.wait(0.5):
                on_disk = sum(1 for _ in exchanges.glob("*.body")) if exchanges.is_dir() else 0
                growth.append((round(time.monotonic() - start, 1), on_disk))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            seconds, peak = measured([sys.executable, "-m", "reviewkit", "search", "--live", "--only", KEY,
                                      "--project", str(project.root)], env=env)
        finally:
            done.set()
            sampler.join()
        manifest = json.loads((exchanges.parent / "searches" / f"{KEY}.json").read_text(encoding="utf-8"))
        snapshot_mb = sum(p.stat().st_size for p in exchanges.iterdir()) / 2**20
        requests = {u: len(emu.requests(u)) for u in ("esearch", "efetch")}
        # every answer that was not a good one made the client ask again: injected faults, and 429s
        # the emulator sent because the client went over the rate limit ("rate-limit")
        failed = Counter(e.fault for e in emu.log if e.fault is not None and e.fault != "expired")
        expired = sum(e.fault == "expired" for e in emu.log)
        # a run without any failure sends each recorded answer's request once (ESearch of every window
        # visited, EFetch of every batch)
        need, ran = len(set(manifest["exchanges"])), sum(requests.values())
    row = {"records": n, "fault_rate": fault_rate, "count": manifest["count"],
           "retrieved": len(manifest["fetched_pmids"]), "seconds": round(seconds, 1), "peak_rss_mb": round(peak),
           "requests": requests, "failed_answers": dict(sorted(failed.items())), "webenv_expired": expired,
           "retries": ran - need, "records_per_s": round(manifest["count"] / seconds),
           "windows": len(manifest.get("split_into_windows", [])), "snapshot_mb": round(snapshot_mb, 1),
           "exchanges_on_disk_while_running": _quartiles(growth)}
    print(json.dumps(row), flush=True)
    return row


def _quartiles(growth: list[tuple[float, int]]) -> list[tuple[float, int]]:
    """(seconds, exchange files) at a quarter, half and three quarters of the run, and at its end."""
    if not growth:
        return []
    return [growth[min(len(growth) - 1, round(len(growth) * q) - 1)] for q in (0.25, 0.5, 0.75, 1.0)]


def cli_markdown(rows: list[dict]) -> str:
    load = [round(x, 2) for x in os.getloadavg()]
    lines = [
        "# `reviewkit search --live` at scale (E-utilities emulator on 127.0.0.1, API key: 10 requests/s)", "",
        f"Machine: {platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores (shared); run "
        f"{time.strftime('%Y-%m-%d')} by `bench/bench_live_retrieval.py --cli`. One search (aud) whose Count is "
        "N synthetic records; a fresh `reviewkit search --live --only aud` process per row; peak RSS is the "
        "command's own (its VmHWM at exit; wait4 would charge it this benchmark's process, which holds the "
        "emulator's records); the emulator enforces NCBI's rate limit. Faulted rows: that share of answers "
        "replaced at random (seeded) by a 5xx, a 429, a reset connection, a truncated body, a slow answer, an "
        "`<ERROR>` body, an empty EFetch or an expired WebEnv. Retries: requests sent beyond one per recorded "
        f"answer. Load average after the runs (1, 5, 15 min): {load}.", "",
        "| N | faults | Count | retrieved | ESearch / EFetch requests | date windows | failed answers | retries "
        "| seconds | records/s | peak RSS MB | snapshot MB "
        "| exchange files on disk at 1/4, 1/2, 3/4 of the run and at its end (s: files) |",
        "|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        grown = ", ".join(f"{t} s: {k}" for t, k in r["exchanges_on_disk_while_running"])
        failed = ", ".join(f"{k} {v}" for k, v in r["failed_answers"].items()) or "none"
        if r["webenv_expired"]:
            failed += f"; WebEnv expired {r['webenv_expired']}x"
        lines.append(f"| {r['records']:,} | {r['fault_rate']:.0%} | {r['count']:,} | {r['retrieved']:,} | "
                     f"{r['requests']['esearch']} / {r['requests']['efetch']} | {r['windows']} | {failed} | "
                     f"{r['retries']} | {r['seconds']} | {r['records_per_s']:,} | {r['peak_rss_mb']} | "
                     f"{r['snapshot_mb']} | {grown} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--no-keyless", action="store_true", help="skip the runs without an API key")
    parser.add_argument("--cli", action="store_true", help="reviewkit search --live at 5k, 20k, 100k (module doc)")
    parser.add_argument("--fault-rate", type=float, default=0.02,
                        help="--cli: share of answers faulted in one more run at the largest size (0: none)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.cli:
        sizes = args.sizes or [5_000, 20_000, 100_000]
        cli_rows = [cli_search(n) for n in sizes]
        if args.fault_rate:
            cli_rows.append(cli_search(max(sizes), args.fault_rate))
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(args.out / "live_scale.json", {"load_after": os.getloadavg(), "sizes": cli_rows})
        atomic_write_text(args.out / "live_scale.md", cli_markdown(cli_rows))
        print(cli_markdown(cli_rows))
        return 0
    args.sizes = args.sizes or [1000, 10_000, 30_000]
    keys = ["bench-key"] + ([] if args.no_keyless else [None])
    rows = [case(n, key, args.batch) for n in args.sizes for key in keys]
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "live_retrieval.json", rows)
    atomic_write_text(RESULTS / "live_retrieval.md", markdown(rows))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
