"""Benchmark: deduplication accuracy on labelled real variations, and time and memory at volume.

Accuracy. Every record of data/corpus/records.jsonl (130 real, distinct
publications) goes in once, as PubMed when it has a PMID, else as citation
searching. Then, for each one, copies as another source would deliver them
(written to a RIS file and read back through ``reviewkit.other_methods``, as a
real citation list would be), each labelled with the record it copies:

* ``case``          title upper-cased, no PMID or DOI
* ``punctuation``   hyphens, colons and quotes changed, trailing full stop, no PMID or DOI
* ``missing_doi``   title as is, journal and year kept, no PMID or DOI
* ``doi_url``       DOI as an upper-case https://doi.org/ URL, subtitle cut (DOI rule)
* ``et_al``         first author written "Surname et al." or "Surname, E." (reference-list style)
* ``journal_abbrev`` ISO journal abbreviation instead of the full title, no PMID or DOI
* ``year_off``      epub year + 1 (print year), no PMID or DOI: a person must confirm
* ``subtitle_cut``  title before its colon only, no PMID or DOI: a person must confirm

and records that must never be merged with the article they name, built from
its title: erratum, correction, corrigendum, retraction and expression-of-
concern notices, Web of Science correction entries "(vol V, pg P, Y)", and
replies and comments ("Reply to: ...", "Re: ..."), carrying the article's first
author and year and no identifier (the hardest case: only the title differs).
Truth: records copying the same corpus record are one publication; every
other pair is distinct. Precision and recall are over pairs; a false merge is
a merged pair of distinct publications.

Volume. Synthetic records (titles of 8-16 words drawn from the corpus's title
vocabulary, corpus first authors, years 2000-2025, PMIDs from 900,000,000 and
DOIs 10.99999/bench.N that exist nowhere), 5% of them repeated as citation-
searching copies without identifiers. Each size runs in a fresh subprocess,
so peak RSS (ru_maxrss) is its own; the RSS before ``deduplicate`` is given
too.

Candidate search. The same synthetic records, but the copies vary in turn:
upper case, year + 1, one letter lost, one word lost. Deduplicated twice: as
shipped (blocking and a sorted neighbourhood) and with the neighbourhood as
wide as the set, i.e. every pair compared, as before blocking. The merges must
be the same; the review list of the second is what the first should find.

``--before`` takes a dedupe.json written by an earlier version and adds a
before/after table. Writes bench/results/dedupe.md and .json.

    .venv/bin/python bench/bench_dedupe.py [--sizes 1000 10000 100000] [--before old.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import rispy

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.outputs import write_results  # noqa: E402
from reviewkit.dedupe import deduplicate  # noqa: E402
from reviewkit.io import read_jsonl  # noqa: E402
from reviewkit.other_methods import read_other_methods  # noqa: E402

CORPUS = ROOT / "data" / "corpus" / "records.jsonl"
DUPLICATE_KINDS = ("case", "punctuation", "missing_doi", "doi_url", "et_al", "journal_abbrev",
                   "year_off", "subtitle_cut")
# Variations a person must confirm (dedupe sends them to the review list by design).
REVIEW_KINDS = ("year_off", "subtitle_cut")
NOTICE_FORMS = {"erratum": "Erratum: {t}", "correction": "Correction to: {t}", "corrigendum": 'Corrigendum to "{t}"',
                "retraction": "Retraction Note: {t}", "notice of retraction": "Notice of retraction: {t}",
                "expression of concern": "Expression of concern: {t}",
                "WoS correction entry": "{t} (vol {v}, pg {p}, {y})", "author reply": "Reply to: {t}",
                "letter (Re:)": "Re: {t}", "comment": "Comment on: {t}"}


# --- labelled set ---------------------------------------------------------------

def _ris_author(name: str) -> str:
    last, _, initials = name.rpartition(" ")
    return f"{last}, {initials}" if last else name


def _punctuation(title: str) -> str:
    text = title.replace("-", " ").replace(": ", " - ").replace("'", "\u2019").replace('"', "\u201c")
    return text.rstrip(".") + "."


def variant(rec: dict, kind: str) -> dict | None:
    """A RIS entry copying ``rec`` with one real-world variation (None when it does not apply)."""
    title, authors = rec["title"], list(rec["authors"] or [])
    entry = {"type_of_work": None, "title": title, "authors": [_ris_author(a) for a in authors],
             "year": str(rec["year"]) if rec["year"] else None, "secondary_title": rec["journal"]}
    if kind == "case":
        entry["title"] = title.upper()
    elif kind == "punctuation":
        if _punctuation(title) == title:
            return None
        entry["title"] = _punctuation(title)
    elif kind == "doi_url":
        if not rec["doi"] or ":" not in title:
            return None
        entry.update(title=title.split(":")[0], doi=f"https://doi.org/{rec['doi'].upper()}")
    elif kind == "et_al":
        if not authors:
            return None
        surname = authors[0].rpartition(" ")[0] or authors[0]
        # alternate the two reference-list styles
        entry["authors"] = [f"{surname} et al." if len(title) % 2 else f"{surname}, {authors[0][-1]}."]
    elif kind == "journal_abbrev":
        if not rec["journal_iso"]:
            return None
        entry["secondary_title"] = rec["journal_iso"]
    elif kind == "year_off":
        if not rec["year"]:
            return None
        entry["year"] = str(rec["year"] + 1)
    elif kind == "subtitle_cut":
        head = title.split(":")[0]
        if ":" not in title or len(head) < 20:
            return None
        entry["title"] = head
    return {k: v for k, v in entry.items() if v}


def notice(rec: dict, form: str) -> dict:
    """A notice or reply that names ``rec`` in its title, by its authors, the same year, no identifiers."""
    title = form.format(t=rec["title"].rstrip("."), v=rec["volume"] or "1", p=(rec["pages"] or "1").split("-")[0],
                        y=rec["year"] or "")
    entry = {"title": title, "authors": [_ris_author(a) for a in rec["authors"] or []][:1],
             "year": str(rec["year"]) if rec["year"] else None, "secondary_title": rec["journal"]}
    return {k: v for k, v in entry.items() if v}


def labelled_set(tmp: Path) -> tuple[pd.DataFrame, dict[str, str], dict[str, str]]:
    """Records table, truth (record id -> publication) and kind (record id -> variation)."""
    corpus = list(read_jsonl(CORPUS))
    originals, entries, truth, kind = [], [], {}, {}
    for line, rec in enumerate(corpus, 1):
        pub = f"corpus-{line}"
        rid = f"PMID:{rec['pmid']}" if rec["pmid"] else f"CIT:corpus-{line}"
        originals.append({"record_id": rid, "source": "PubMed" if rec["pmid"] else "Citation searching",
                          "pmid": rec["pmid"], "doi": (rec["doi"] or "").lower() or None, "title": rec["title"],
                          "year": rec["year"], "first_author": (rec["authors"] or [None])[0],
                          "authors": rec["authors"] or [], "searches": list(rec["retrieved_by"] or [])})
        truth[rid], kind[rid] = pub, "original"
        for k in DUPLICATE_KINDS:
            entry = variant(rec, k)
            if entry:
                entries.append({**entry, "id": f"{k}-{line}"})
                truth[f"CIT:{k}-{line}"], kind[f"CIT:{k}-{line}"] = pub, k
        label = list(NOTICE_FORMS)[line % len(NOTICE_FORMS)]
        entries.append({**notice(rec, NOTICE_FORMS[label]), "id": f"notice-{line}"})
        truth[f"CIT:notice-{line}"], kind[f"CIT:notice-{line}"] = f"notice-{line}", f"notice: {label}"
    ris = tmp / "variants.ris"
    ris.write_text(rispy.dumps([{"type_of_reference": "JOUR", **e} for e in entries]), encoding="utf-8")
    copies = read_other_methods(ris)
    table = pd.concat([pd.DataFrame(originals).astype({"year": "Int64"}), copies], ignore_index=True)
    return table, truth, kind


def pairs(n: int) -> int:
    return n * (n - 1) // 2


def accuracy(tmp: Path) -> dict:
    table, truth, kind = labelled_set(tmp)
    result = deduplicate(table)
    cluster = {}
    for _, row in result.records.iterrows():
        for rid in [row["record_id"], *row["merged_ids"]]:
            cluster[rid] = row["record_id"]
    both = Counter((cluster[r], truth[r]) for r in truth)
    tp = sum(pairs(n) for n in both.values())
    predicted = sum(pairs(n) for n in Counter(cluster[r] for r in truth).values())
    actual = sum(pairs(n) for n in Counter(truth.values()).values())
    false_merges = sorted({(cluster[r], r) for r in truth
                           if kind[r] != "original" and truth[cluster[r]] != truth[r]}
                          | {(cluster[r], r) for r in truth if kind[r] == "original" and cluster[r] != r})
    reviewed = set(result.review["record_id_a"]) | set(result.review["record_id_b"])
    by_kind = {}
    for k in sorted(set(kind.values()) - {"original"}):
        ids = [r for r in truth if kind[r] == k]
        if k.startswith("notice"):
            by_kind[k] = {"records": len(ids), "wrongly_merged": sum(truth[cluster[r]] != truth[r] for r in ids),
                          "sent_to_review": sum(r in reviewed for r in ids)}
        else:
            merged = [r for r in ids if truth[cluster[r]] == truth[r] and cluster[r] != r]
            by_kind[k] = {"records": len(ids), "merged_with_original": len(merged),
                          "sent_to_review": sum(r in reviewed for r in ids if r not in merged)}
    corpus = list(read_jsonl(CORPUS))
    incomplete = sum(not (r["year"] and r["authors"]) for r in corpus)
    return {"records": len(table), "publications": len(set(truth.values())),
            "corpus_records_without_year_or_author": incomplete,
            "true_duplicate_pairs": actual, "merged_pairs": predicted, "correct_merged_pairs": tp,
            "precision": round(tp / predicted, 4) if predicted else None,
            "recall": round(tp / actual, 4) if actual else None,
            "recall_excluding_review_kinds": _recall_without(truth, kind, cluster),
            "false_merges": [list(p) for p in false_merges], "review_pairs": len(result.review),
            "by_kind": by_kind}


def _recall_without(truth: dict, kind: dict, cluster: dict) -> float:
    """Recall over the variations dedupe is meant to merge on its own."""
    ids = [r for r in truth if kind[r] not in REVIEW_KINDS and not kind[r].startswith("notice")]
    tp = sum(pairs(n) for n in Counter((cluster[r], truth[r]) for r in ids).values())
    actual = sum(pairs(n) for n in Counter(truth[r] for r in ids).values())
    return round(tp / actual, 4)


# --- volume -----------------------------------------------------------------------

CHILD = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
from bench.bench_dedupe import memory_mb, synthetic
from reviewkit.dedupe import deduplicate
records = synthetic(int(sys.argv[2]))
before = memory_mb()[0]
start, cpu = time.perf_counter(), time.process_time()
result = deduplicate(records)
elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
print(len(records), len(result.records), len(result.merges), len(result.review), elapsed, cpu, before, memory_mb()[1])
"""


def memory_mb() -> tuple[float, float]:
    """This process's resident memory now and at its peak, in MB.

    From /proc/self/status (VmRSS, VmHWM): ``ru_maxrss`` would report the
    benchmark's own peak for a child it starts, since Linux carries the peak
    over the exec of a forked (or vforked) child.
    """
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return tuple(round(int(fields[k].split()[0]) / 1024, 1) for k in ("VmRSS", "VmHWM"))


COPY_KINDS = ("case", "year_off", "letter_lost", "word_lost")


def synthetic(n: int, seed: int = 4, variations: bool = False) -> pd.DataFrame:
    """``n`` synthetic records (see module doc); none is a real publication.

    With ``variations`` the copies cycle through :data:`COPY_KINDS` (column
    ``copy_kind``); without, every copy is upper case (the volume set)."""
    rng = random.Random(seed)
    corpus = list(read_jsonl(CORPUS))
    words = sorted({w for r in corpus for w in re.findall(r"[A-Za-z][A-Za-z-]+", r["title"])})
    authors = sorted({a for r in corpus for a in r["authors"] or []})
    n_db = round(n / 1.05)
    rows = []
    for i in range(n_db):
        rows.append({"record_id": f"PMID:{900_000_000 + i}", "source": "PubMed", "pmid": str(900_000_000 + i),
                     "doi": f"10.99999/bench.{i}", "title": " ".join(rng.choices(words, k=rng.randint(8, 16))),
                     "year": rng.randint(2000, 2025), "first_author": rng.choice(authors),
                     "searches": [rng.choice(["aud", "oud", "cocaine", "gambling"])]})
    for j, i in enumerate(rng.sample(range(n_db), n - n_db)):
        copy = {**rows[i], "record_id": f"CIT:bench-{j}", "source": "Citation searching", "pmid": None,
                "doi": None, "title": rows[i]["title"].upper(), "searches": []}
        if variations:
            copy.update(_vary(rows[i], COPY_KINDS[j % len(COPY_KINDS)], rng))
        rows.append(copy)
    frame = pd.DataFrame(rows)
    frame["year"] = frame["year"].astype("Int64")
    frame["authors"] = frame["first_author"].map(lambda a: [a])
    return frame


def _vary(row: dict, kind: str, rng: random.Random) -> dict:
    words = row["title"].split()
    at = rng.randrange(len(words))
    if kind == "year_off":
        return {"year": row["year"] + 1, "copy_kind": kind}
    if kind == "letter_lost":
        words[at] = words[at][:-1] if len(words[at]) > 1 else words[at]
    elif kind == "word_lost":
        del words[at]
    return {"title": " ".join(words), "copy_kind": kind}


def completeness(n: int) -> dict:
    """Blocking and sorted neighbourhood against every pair, on copies that vary (module doc)."""
    from reviewkit import dedupe

    records = synthetic(n, variations=True)
    start = time.perf_counter()
    shipped = deduplicate(records)
    seconds = time.perf_counter() - start
    saved, dedupe.WINDOW = dedupe.WINDOW, n
    try:
        start = time.perf_counter()
        everything = deduplicate(records)
        seconds_all = time.perf_counter() - start
    finally:
        dedupe.WINDOW = saved
    found = {tuple(p) for p in shipped.review[["record_id_a", "record_id_b"]].to_numpy()}
    exhaustive = {tuple(p) for p in everything.review[["record_id_a", "record_id_b"]].to_numpy()}
    by_kind = {}
    for kind in COPY_KINDS:
        ids = set(records.loc[records["copy_kind"] == kind, "record_id"])
        merged = ids & set(shipped.merges["removed_id"])
        by_kind[kind] = {"copies": len(ids), "merged": len(merged),
                         "listed": len({r for p in found for r in p} & (ids - merged)),
                         "listed_when_every_pair": len({r for p in exhaustive for r in p} & (ids - merged))}
    return {"records": n, "merges_equal": bool(shipped.merges.equals(everything.merges)),
            "merges": len(shipped.merges), "review_pairs": len(found), "review_pairs_every_pair": len(exhaustive),
            "pairs_missed": len(exhaustive - found), "pairs_not_in_every_pair": len(found - exhaustive),
            "seconds": round(seconds, 2), "seconds_every_pair": round(seconds_all, 2), "by_kind": by_kind}


def volume(n: int, repeats: int) -> dict:
    """Deduplicate ``n`` synthetic records in a fresh process ``repeats`` times; the fastest run is
    reported (the machine is shared: slower runs measure the other work), with every run's seconds."""
    runs = []
    for _ in range(repeats):
        done = subprocess.run([sys.executable, "-c", CHILD, str(ROOT), str(n)], capture_output=True, text=True,
                              check=True, cwd=ROOT)
        runs.append(done.stdout.split())
    n_in, n_out, merges, review, seconds, cpu, before_mb, peak_mb = min(runs, key=lambda r: float(r[4]))
    return {"records": int(n_in), "after_dedupe": int(n_out), "merges": int(merges), "review_pairs": int(review),
            "seconds": round(float(seconds), 2), "cpu_seconds": round(float(cpu), 2),
            "all_seconds": [round(float(r[4]), 2) for r in runs], "rss_before_mb": round(float(before_mb)),
            "peak_rss_mb": round(float(peak_mb))}


# --- report ---------------------------------------------------------------------

def markdown(result: dict) -> str:
    acc = result["accuracy"]
    lines = ["# Deduplication: accuracy on labelled real variations, time and memory at volume", "",
             f"Machine: {result['machine']}; run {result['date']} by `bench/bench_dedupe.py` "
             "(how the sets are built: its docstring).", "",
             "## Accuracy (130 real corpus records, their copies and notices)", "",
             f"{acc['records']} records, {acc['publications']} publications; "
             f"{acc['true_duplicate_pairs']} true duplicate pairs, {acc['merged_pairs']} pairs merged, "
             f"{acc['correct_merged_pairs']} of them correct.", "",
             f"* **Precision {acc['precision']}**; **false merges: {len(acc['false_merges'])}**",
             f"* Recall {acc['recall']} over all labelled duplicates; {acc['recall_excluding_review_kinds']} "
             f"over the variations meant to merge automatically (all but {', '.join(REVIEW_KINDS)}, "
             "which go to the review list for a person)",
             f"* {acc['review_pairs']} pairs on the review list. Copies left unmerged by the exact-title kinds "
             f"are copies of the {acc['corpus_records_without_year_or_author']} corpus records that have no year "
             "or no author (the corpus leaves unknown fields null): a title match alone is not enough to merge.",
             "",
             "| variation | records | merged with its original | sent to review |", "|---|---:|---:|---:|"]
    for k, v in acc["by_kind"].items():
        if not k.startswith("notice"):
            lines.append(f"| {k} | {v['records']} | {v['merged_with_original']} | {v['sent_to_review']} |")
    lines += ["", "| must stay separate | records | wrongly merged | sent to review |", "|---|---:|---:|---:|"]
    for k, v in acc["by_kind"].items():
        if k.startswith("notice"):
            lines.append(f"| {k[8:]} | {v['records']} | {v['wrongly_merged']} | {v['sent_to_review']} |")
    if acc["false_merges"]:
        lines += ["", "False merges (kept id, merged id): " + "; ".join(f"{a} <- {b}" for a, b in acc["false_merges"])]
    comp = result.get("completeness")
    if comp:
        lines += ["", f"## Candidate search against every pair ({comp['records']:,} synthetic records, copies that vary)",
                  "", f"Same merges as comparing every pair: **{'yes' if comp['merges_equal'] else 'NO'}** "
                  f"({comp['merges']} merges). Review list: {comp['review_pairs']} pairs, against "
                  f"{comp['review_pairs_every_pair']} when every pair is compared ({comp['pairs_missed']} missed, "
                  f"{comp['pairs_not_in_every_pair']} not in it). {comp['seconds']} s as shipped, "
                  f"{comp['seconds_every_pair']} s comparing every pair.", "",
                  "| copy | copies | merged | others listed for review | ... when every pair is compared |",
                  "|---|---:|---:|---:|---:|"]
        for k, v in comp["by_kind"].items():
            lines.append(f"| {k} | {v['copies']} | {v['merged']} | {v['listed']} | {v['listed_when_every_pair']} |")
    lines += ["", "## Time and peak memory (synthetic records, fresh process per size)", "",
              f"Load average (1, 5, 15 min) before: {result['load_before']}, after: {result['load_after']} "
              "(other work shares the cores: times are upper bounds).", "",
              f"Each size ran {result['repeats']} time(s), each in a fresh process; the fastest run is shown "
              "(all runs: last column). CPU seconds count every thread (rapidfuzz scores on all cores). Memory is "
              "the child's own VmRSS before deduplicating and VmHWM after.", "",
              "| records | after dedupe | merges | review pairs | seconds | CPU seconds | RSS before MB | peak RSS MB "
              "| all runs, s |", "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in result["volume"]:
        lines.append(f"| {r['records']:,} | {r['after_dedupe']:,} | {r['merges']:,} | {r['review_pairs']:,} | "
                     f"{r['seconds']} | {r['cpu_seconds']} | {r['rss_before_mb']} | {r['peak_rss_mb']} | "
                     f"{', '.join(map(str, r['all_seconds']))} |")
    before = result.get("before")
    if before:
        lines += ["", f"## Before and after (before: {before['source']}, run {before['date']}, fastest of "
                  f"{before['repeats']} run(s), load average {before['load_before']} before and "
                  f"{before['load_after']} after)", "",
                  "| records | seconds before | seconds after | CPU seconds before | after | peak RSS MB before "
                  "| after |", "|---:|---:|---:|---:|---:|---:|---:|"]
        old = {r["records"]: r for r in before["volume"]}
        for r in result["volume"]:
            o = old.get(r["records"], {})
            lines.append(f"| {r['records']:,} | {o.get('seconds', '')} | {r['seconds']} | {o.get('cpu_seconds', '')} | "
                         f"{r['cpu_seconds']} | {o.get('peak_rss_mb', '')} | {r['peak_rss_mb']} |")
        for label, vol in (("before", list(old.values())), ("after", result["volume"])):
            wall, cpu = _ratio(vol, "seconds"), _ratio(vol, "cpu_seconds")
            if wall:
                lines.append(f"\nTime at 100,000 records / time at 10,000, {label}: {wall}x wall, {cpu}x CPU"
                             + (" (goal: at most 15x)" if label == "after" else ""))
        acc_before = before["accuracy"]
        lines += ["", "| accuracy | before | after |", "|---|---:|---:|",
                  f"| precision | {acc_before['precision']} | {acc['precision']} |",
                  f"| false merges | {len(acc_before['false_merges'])} | {len(acc['false_merges'])} |",
                  f"| recall, all labelled duplicates | {acc_before['recall']} | {acc['recall']} |",
                  f"| recall, variations meant to merge | {acc_before['recall_excluding_review_kinds']} | "
                  f"{acc['recall_excluding_review_kinds']} |",
                  f"| pairs on the review list | {acc_before['review_pairs']} | {acc['review_pairs']} |"]
    return "\n".join(lines) + "\n"


def _ratio(volume_rows: list[dict], field: str, big: int = 100_000, small: int = 10_000) -> float | None:
    seconds = {r["records"]: r.get(field) for r in volume_rows}
    return round(seconds[big] / seconds[small], 1) if seconds.get(big) and seconds.get(small) else None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    ap.add_argument("--repeats", type=int, default=3, help="runs per size; the fastest is reported")
    ap.add_argument("--completeness", type=int, default=4_000, help="records for the candidate-search check (0: skip)")
    ap.add_argument("--before", type=Path, help="dedupe.json of an earlier version, for a before/after table")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = ap.parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        acc = accuracy(Path(tmp))
    comp = completeness(args.completeness) if args.completeness else None
    vol = []
    for n in args.sizes:
        print(f"deduplicating {n:,} synthetic records ...", flush=True)
        vol.append(volume(n, args.repeats))
    result = {"machine": f"{platform.machine()}, Python {platform.python_version()}, {os.cpu_count()} cores",
              "date": time.strftime("%Y-%m-%d"), "load_before": load_before,
              "load_after": [round(x, 2) for x in os.getloadavg()], "repeats": args.repeats, "accuracy": acc,
              "completeness": comp, "volume": vol}
    if args.before:
        before = json.loads(args.before.read_text(encoding="utf-8"))
        result["before"] = {"source": args.before.name, "date": before["date"], "accuracy": before["accuracy"],
                            "volume": before["volume"], "load_before": before.get("load_before"),
                            "load_after": before.get("load_after"), "repeats": before.get("repeats", 1)}
    print(write_results(args.out, "dedupe", result, markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
