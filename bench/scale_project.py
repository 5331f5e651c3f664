"""A review project at scale: N synthetic records in a snapshot recorded by the live code, for benchmarks.

``build_project(folder, n)`` makes a copy of the worked example (``reviewkit init
--example ketamine``) whose offline snapshot ``scale`` holds ``n`` records
identified in all, and a screening folder with the decisions of a review in
progress. The records are synthetic but shaped like the real ones:

* **PubMed records** (95%): titles are real corpus titles (``data/corpus``)
  with about 60% of their words swapped for words of other corpus titles, so
  lengths, capitals, colons and subtitles vary as real titles do while every
  title is new; authors are corpus surnames with random initials, as many as
  corpus records have (a few records have none); journals are corpus journals;
  years lean towards recent ones (1970-2026); abstracts are structured
  (BACKGROUND/METHODS/RESULTS/CONCLUSIONS) or plain, 80-300 words of corpus
  title vocabulary with sample sizes and p-values, and 15% have none;
  publication types and MeSH humans/animals tags follow a typical PubMed mix;
  each record belongs to the protocol searches in the proportions the corpus
  shows (some to several searches).
* **Other methods** (5%, a citation-searching RIS file): 70% are copies of
  PubMed records as a reference list gives them, each with one of the
  variations of ``bench_dedupe`` (case, punctuation, missing DOI, DOI URL,
  "et al", journal abbreviation: merged automatically; year off by one,
  subtitle cut: listed for a person), 10% are notices and replies naming a
  PubMed record (erratum, retraction, "Reply to: ..."; never merged), 20% are
  records no search found. So 3.5% of all records are duplicates of another.

PMIDs start at 90,000,001 (``reviewkit.testing.emulator.synthetic_records``'
range, far above any real PMID); DOIs are ``10.0000/synthetic.<pmid>``, a prefix
no registrant has. The snapshot is marked as a sample whose note says the
records are synthetic, so every report made from it carries that banner.

The snapshot is recorded the way a live search records one: ``run_searches``
over ``LiveTransport`` against the loopback E-utilities emulator (rate limit
off), so searches above 9,999 records are split by date as on PubMed, and
replaying it exercises the same code as replaying a real search.

Screening: the title/abstract sheet holds decisions for 90% of the database
records (8% included, the rest excluded with a protocol reason; 30% screened
twice, with 5% disagreement, and a column a reviewer added), the last 10% are
new since the sheet was saved; the full-text sheet holds decisions for 70% of
its reports.

    .venv/bin/python bench/scale_project.py DIR --records 10000
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import rispy  # noqa: E402

from bench.bench_dedupe import DUPLICATE_KINDS, NOTICE_FORMS, REVIEW_KINDS, notice, variant  # noqa: E402
from reviewkit.io import atomic_write_text, read_jsonl  # noqa: E402

CORPUS = ROOT / "data" / "corpus" / "records.jsonl"
SNAPSHOT = "scale"
FIRST_PMID = 90_000_001
OTHER_SHARE = 0.05
COPY_SHARE, NOTICE_SHARE = 0.70, 0.10  # of the other-method records; the rest are found by no search
NOTE = ("SYNTHETIC records for reviewkit's scale benchmark (bench/scale_project.py): titles and abstracts are "
        "made from words of real titles, PMIDs from 90,000,001 and DOIs 10.0000/... exist nowhere. "
        "Not a PubMed search; no number here is about real studies.")

_FUNCTION = ("the", "of", "in", "and", "with", "for", "was", "were", "a", "to", "among", "after", "than",
             "compared", "patients", "participants", "treatment", "use", "disorder", "group", "weeks")
_LABELS = ("BACKGROUND", "METHODS", "RESULTS", "CONCLUSIONS")
_PUBLICATION_TYPES = [
    (["Journal Article"], 62), (["Journal Article", "Randomized Controlled Trial"], 8),
    (["Journal Article", "Review"], 9), (["Journal Article", "Systematic Review", "Meta-Analysis"], 2),
    (["Case Reports", "Journal Article"], 5), (["Editorial"], 2), (["Letter"], 2), (["Comment", "Letter"], 1),
    (["Clinical Trial", "Journal Article"], 4), (["Journal Article", "Observational Study"], 5),
]
_MESH = [([], 35), (["Humans"], 25), (["Humans", "Male", "Female", "Adult"], 25), (["Animals", "Rats", "Male"], 10),
         (["Animals", "Mice"], 5)]
_SEARCH_MIX_FALLBACK = [(("aud",), 1)]
_WORD = r"\b[A-Za-z][a-z]{3,}(?:-[a-z]+)*\b"  # words of four letters or more, hyphenated ones whole


class Vocabulary:
    """What the synthetic records are made of, all from the real corpus."""

    def __init__(self, corpus: list[dict]):
        self.titles = [r["title"] for r in corpus if r.get("title")]
        self.words = sorted({w for t in self.titles for w in re.findall(_WORD, t)})
        self.surnames = sorted({a.rpartition(" ")[0] or a for r in corpus for a in r.get("authors") or []})
        self.author_counts = [len(r.get("authors") or []) for r in corpus]
        journals = {(r["journal"], r.get("journal_iso")) for r in corpus if r.get("journal")}
        self.journals = sorted(journals, key=lambda j: (j[0], j[1] or ""))
        mix = Counter(tuple(sorted(r["retrieved_by"])) for r in corpus if r.get("retrieved_by"))
        self.search_mix = sorted(mix.items()) or _SEARCH_MIX_FALLBACK


def _weighted(rng: random.Random, options: list) -> object:
    values, weights = zip(*options)
    return rng.choices(values, weights=weights)[0]


def _title(rng: random.Random, vocab: Vocabulary) -> str:
    """A real title's shape with about 60% of its longer words replaced (capitalised where the original was)."""
    def swap(match: re.Match) -> str:
        if rng.random() > 0.6:
            return match.group()
        word = rng.choice(vocab.words)
        return word[0].upper() + word[1:] if match.group()[0].isupper() else word.lower()

    return re.sub(_WORD, swap, rng.choice(vocab.titles))


def _sentence(rng: random.Random, vocab: Vocabulary) -> str:
    words = [rng.choice(vocab.words).lower() if rng.random() < 0.55 else rng.choice(_FUNCTION)
             for _ in range(rng.randint(8, 24))]
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words)), f"(n = {rng.randint(12, 2400)})")
    if rng.random() < 0.2:
        words.append(f"(p = {rng.choice(['0.001', '0.01', '0.03', '0.04', '0.21', '0.47'])})")
    return " ".join(words).capitalize() + "."


def _abstract(rng: random.Random, vocab: Vocabulary) -> str:
    if rng.random() < 0.15:
        return ""
    if rng.random() < 0.7:
        return " ".join(f"{label}: " + " ".join(_sentence(rng, vocab) for _ in range(rng.randint(1, 4)))
                        for label in _LABELS)
    return " ".join(_sentence(rng, vocab) for _ in range(rng.randint(4, 10)))


def _authors(rng: random.Random, vocab: Vocabulary) -> list[str]:
    count = rng.choice(vocab.author_counts)
    if count == 0 and rng.random() < 0.7:
        count = rng.randint(1, 6)  # the corpus leaves some unknown; PubMed records mostly have authors
    return [f"{rng.choice(vocab.surnames)} {''.join(rng.choices('ABCDEFGHJKLMNPRSTW', k=rng.randint(1, 2)))}"
            for _ in range(count)]


def pubmed_records(n: int, vocab: Vocabulary, rng: random.Random) -> list[dict]:
    """``n`` synthetic PubMed records as the emulator serves them (records-table fields, ``pdat``, ``terms``)."""
    out = []
    for i in range(n):
        pmid = FIRST_PMID + i
        year = min(2026, int(2026 - rng.expovariate(1 / 12)))
        year = max(year, 1970)
        day = dt.date(year, 1, 1) + dt.timedelta(days=rng.randrange(365 if year < 2026 else 300))
        journal, iso = rng.choice(vocab.journals)
        first_page = rng.randint(1, 2400)
        out.append({
            "pmid": str(pmid), "doi": f"10.0000/synthetic.{pmid}" if rng.random() < 0.9 else None,
            "title": _title(rng, vocab), "abstract": _abstract(rng, vocab), "authors": _authors(rng, vocab),
            "journal": journal, "journal_iso": iso, "year": year, "volume": str(rng.randint(1, 120)),
            "issue": str(rng.randint(1, 12)), "pages": f"{first_page}-{first_page + rng.randint(2, 14)}",
            "language": "eng" if rng.random() < 0.95 else rng.choice(["ger", "fre", "spa", "chi"]),
            "publication_types": list(_weighted(rng, _PUBLICATION_TYPES)),  # type: ignore[call-overload]
            "mesh_terms": list(_weighted(rng, _MESH)),  # type: ignore[call-overload]
            "pdat": day.strftime("%Y/%m/%d"), "terms": list(_weighted(rng, vocab.search_mix)),  # type: ignore[call-overload]
        })
    return out


def other_method_entries(n: int, pubmed: list[dict], vocab: Vocabulary, rng: random.Random) -> tuple[list[dict], Counter]:
    """``n`` RIS entries from citation searching: copies, notices and new records (module doc), and what they are."""
    entries, kinds = [], Counter()
    copies, notices = round(n * COPY_SHARE), round(n * NOTICE_SHARE)
    originals = rng.sample(range(len(pubmed)), min(len(pubmed), copies + notices))
    for j, i in enumerate(originals):
        rec = {**pubmed[i], "journal_iso": pubmed[i]["journal_iso"] or None}
        if j < copies:
            kind = DUPLICATE_KINDS[j % len(DUPLICATE_KINDS)]
            entry = variant(rec, kind) or variant(rec, "case")
            kinds["copy: " + (kind if variant(rec, kind) else "case")] += 1
        else:
            form = list(NOTICE_FORMS)[j % len(NOTICE_FORMS)]
            entry = notice(rec, NOTICE_FORMS[form])
            kinds["notice"] += 1
        entries.append({"type_of_reference": "JOUR", **entry, "id": f"scale-{j}",
                        "custom1": "; ".join(pubmed[i]["terms"])})
    for j in range(len(originals), n):
        rec = pubmed_records(1, vocab, rng)[0]
        entries.append({"type_of_reference": "JOUR", "id": f"scale-{j}", "title": rec["title"],
                        "authors": [f"{a.rpartition(' ')[0]}, {a.rpartition(' ')[2]}" for a in rec["authors"]],
                        "year": str(rec["year"]), "secondary_title": rec["journal"],
                        "custom1": "; ".join(rec["terms"])})
        kinds["new record"] += 1
    return entries, kinds


def build_project(folder: str | Path, n: int, *, seed: int = 0, progress: bool = False) -> dict:
    """The project (module doc) in ``folder``, which must not exist or be empty; returns what it holds."""
    from reviewkit.entrez import Credentials, LiveTransport, run_searches
    from reviewkit.scaffold import init_project
    from reviewkit.snapshot import Snapshot
    from reviewkit.testing.emulator import Emulator

    rng = random.Random(seed)  # noqa: S311 (synthetic benchmark data)
    vocab = Vocabulary(list(read_jsonl(CORPUS)))
    project = init_project(folder, example="ketamine")
    marker = project.root / "reviewkit.yml"
    marker.write_text(marker.read_text(encoding="utf-8").replace("offline: sample", f"offline: {SNAPSHOT}"),
                      encoding="utf-8")
    protocol = project.protocol()
    n_other = round(n * OTHER_SHARE)
    pubmed = pubmed_records(n - n_other, vocab, rng)
    entries, kinds = other_method_entries(n_other, pubmed, vocab, rng)

    snap_dir = project.path("snapshots") / SNAPSHOT
    snap = Snapshot.create(snap_dir, sample=True, note=NOTE, protocol_sha256=protocol.sha256)
    aliases = {protocol.query(k): k for k in protocol.searches}
    with Emulator(pubmed, aliases=aliases, rate_limit=False) as emu:
        transport = LiveTransport(snap, Credentials("bench@example.org"), base_url=emu.base_url, rate=10_000)
        results = run_searches(transport, protocol, progress=progress)
    atomic_write_text(snap_dir / "other_methods" / "citation_searching.ris", rispy.dumps(entries))
    decisions = _screening(project, protocol, rng)
    return {"records": n, "pubmed": len(pubmed), "other_methods": n_other, "other_kinds": dict(sorted(kinds.items())),
            "planted_duplicates": sum(v for k, v in kinds.items() if k.startswith("copy")),
            "planted_auto_merge": sum(v for k, v in kinds.items() if k.startswith("copy")
                                      and k[6:] not in REVIEW_KINDS),
            "searches": {r.key: {"count": r.count, "retrieved": r.retrieved,
                                 "windows": len(r.manifest.get("split_into_windows", []))} for r in results},
            "screening": decisions}


def _screening(project, protocol, rng: random.Random) -> dict:
    """Decisions of a review in progress in the snapshot's screening folder (module doc)."""
    from reviewkit.screening import write_sheet
    from reviewkit.screening_state import build_state

    snapshot = project.snapshot_dir(SNAPSHOT)
    folder = project.screening_dir(snapshot)
    folder.mkdir(parents=True, exist_ok=True)
    reasons = protocol.screening_reasons
    state = build_state(snapshot, folder, protocol)
    sheet = state.sheet("title_abstract").copy()
    sheet["my_tags"] = ""
    decided = round(len(sheet) * 0.9)
    for pos in range(decided):
        final = "include" if rng.random() < 0.08 else "exclude"
        sheet.iat[pos, sheet.columns.get_loc("final")] = final
        if final == "exclude":
            sheet.iat[pos, sheet.columns.get_loc("exclusion_reason")] = rng.choice(reasons["title_abstract"])
        if rng.random() < 0.3:
            other = final if rng.random() > 0.05 else ("include" if final == "exclude" else "exclude")
            sheet.iat[pos, sheet.columns.get_loc("reviewer1")] = final
            sheet.iat[pos, sheet.columns.get_loc("reviewer2")] = other
        if rng.random() < 0.02:
            sheet.iat[pos, sheet.columns.get_loc("my_tags")] = rng.choice(["check dose", "ask author", "pilot"])
    write_sheet(folder, "title_abstract", sheet.iloc[:decided])
    state = build_state(snapshot, folder, protocol)
    full = state.sheet("full_text").copy()
    assessed = round(len(full) * 0.7)
    for pos in range(assessed):
        full.iat[pos, full.columns.get_loc("retrieved")] = "yes"
        final = "include" if rng.random() < 0.25 else "exclude"
        full.iat[pos, full.columns.get_loc("final")] = final
        if final == "exclude":
            full.iat[pos, full.columns.get_loc("exclusion_reason")] = rng.choice(reasons["full_text"])
    write_sheet(folder, "full_text", full)
    return {"title_abstract_rows_saved": decided, "title_abstract_new": len(state.sheet("title_abstract")) - decided,
            "full_text_rows": len(full), "full_text_decided": assessed}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(build_project(args.folder, args.records, seed=args.seed, progress=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
