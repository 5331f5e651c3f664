"""The scale benchmarks run (bench/bench_scale.py, bench/bench_live_retrieval.py --cli), at a tiny size.

Not timings: a check that the benchmarks still work with the code they measure,
so they do not rot between the runs whose figures are in bench/results/. The
whole ``reviewkit run --offline`` (six notebooks, half a minute) and the report
stage that needs its executed notebooks are left to the benchmark itself.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _bench(name: str):
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module(f"bench.{name}")


def test_scale_benchmark_runs_every_stage_on_a_small_project(tmp_path):
    scale_project, bench_scale = _bench("scale_project"), _bench("bench_scale")
    built = scale_project.build_project(tmp_path / "project", 200)
    assert built["pubmed"] == 190 and built["other_methods"] == 10
    assert all(s["retrieved"] == s["count"] for s in built["searches"].values())

    measured = bench_scale.stages(tmp_path / "project", None, tmp_path / "scratch")
    assert set(measured["stages"]) == set(bench_scale.STAGES) - {"report"}
    assert all(s["seconds"] >= 0 and s["peak_rss_mb"] > 0 for s in measured["stages"].values())
    counts = measured["counts"]
    assert counts["pubmed_records"] == 190 and counts["other_records"] == 10
    # the planted copies that dedupe merges automatically are merged, and nothing else is lost
    assert counts["merges"] >= built["planted_auto_merge"] > 0
    assert counts["after_dedupe"] == 200 - counts["merges"]
    assert counts["title_abstract_rows"] == 190 and counts["title_abstract_decided"] > 0
    assert (tmp_path / "scratch" / "prisma_flow.svg").is_file()

    # the tables and the ratios, from two sizes' rows (the whole run's figures are not measured here)
    run = {"seconds": 1.0, "peak_rss_mb": 1, "tree_peak_rss_mb": 1, "notebooks": {"01_search.ipynb": 1.0},
           "html_mb": 0.1}
    row = {"built": built, **measured, "whole_run": run, "load_before": [0, 0, 0], "load_after": [0, 0, 0]}
    rows = [{**row, "records": 10_000}, {**row, "records": 100_000}]
    assert bench_scale.ratios(rows)["dedupe"] == 1.0
    text = bench_scale.markdown({"machine": "test", "date": "today", "commit": "x", "sizes": rows})
    assert "| dedupe |" in text and "| goal | met | measured |" in text


def test_stage_runs_keep_the_least_time_and_the_largest_peak():
    bench_scale = _bench("bench_scale")
    runs = [{"dedupe": {"seconds": 3.0, "cpu_seconds": 1.5, "rss_start_mb": 10, "peak_rss_mb": 50}},
            {"dedupe": {"seconds": 2.0, "cpu_seconds": 1.8, "rss_start_mb": 12, "peak_rss_mb": 40}}]
    least = bench_scale.least(runs)["dedupe"]
    assert (least["seconds"], least["cpu_seconds"], least["peak_rss_mb"]) == (2.0, 1.5, 50)
    assert least["runs_seconds"] == [3.0, 2.0]
    rows = [{"records": n, "stages": {"dedupe": least}, "built": {"planted_auto_merge": 0}, "whole_run": None,
             "load_before": [0], "load_after": [0], "counts": {k: 0 for k in (
                 "merges", "review_pairs", "title_abstract_rows", "title_abstract_new", "full_text_rows")}}
            for n in (10_000, 100_000)]
    text = bench_scale.markdown({"machine": "test", "date": "today", "commit": "x", "stage_runs": 2, "sizes": rows})
    assert "ran 2 times per size" in text and "| dedupe | 3.00, 2.00 | 3.00, 2.00 |" in text


def test_live_benchmark_retrieves_every_record_through_the_command_line(tmp_path, monkeypatch):
    monkeypatch.delenv("REVIEWKIT_CTGOV_URL")  # as run by hand: the benchmark serves the register itself
    bench_live = _bench("bench_live_retrieval")
    row = bench_live.cli_search(200)
    assert row["count"] == row["retrieved"] == 200
    assert 20 < row["peak_rss_mb"] < 400  # the command's own peak, not this test process's
    assert row["requests"] == {"esearch": 1, "efetch": 1} and row["retries"] == 0
    assert "| 200 | 0% | 200 | 200 |" in bench_live.cli_markdown([row])


def test_a_command_is_charged_its_own_peak_not_the_benchmark_process(tmp_path):
    # wait4 alone would charge the child this process's peak: it was spawned from it
    offline_run = _bench("bench_offline_run")
    held = bytearray(400 * 2**20)  # this process holds 400 MB, touched
    held[::4096] = b"x" * len(held[::4096])
    doc = tmp_path / "doc.json"
    doc.write_text('{"a": 1}', encoding="utf-8")
    seconds, peak = offline_run.measured([sys.executable, "-m", "json.tool", str(doc)])
    assert seconds > 0 and 1 < peak < 200
    del held
