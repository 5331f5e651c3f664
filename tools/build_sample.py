"""Build the bundled offline sample snapshot from the curated corpus.

``python -m tools.build_sample`` (``make sample``) rebuilds ``data/snapshots/sample/`` from
``data/corpus/records.jsonl`` through the same code path a live search takes:
``run_search`` talks to ``CorpusTransport``, which answers ESearch and EFetch
the way PubMed would if PubMed held only the corpus. So the sample has the
snapshot format of a live run, and replaying it exercises the live code.

What goes where (and why):

* a corpus record with a PMID and a non-empty ``retrieved_by`` is a PubMed
  result of each search it lists;
* a record without a PMID is not a PubMed record: it is written to
  ``other_methods/citation_searching.ris`` (PRISMA 2020's "other methods");
* ``collection: citation-check`` records (what a live check of the article's
  references would look up) go to ``lookups/``: PMIDs as a recorded EFetch,
  the rest as RIS.

Nothing is added that the corpus does not hold: no abstract, no MeSH heading,
no identifier. The ESearch answers are synthesised (their Count is the number
of sample records, not PubMed's), and every file says so.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import rispy

from reviewkit.entrez import efetch_params, run_search
from reviewkit.errors import ReviewkitError
from reviewkit.io import atomic_write_json, atomic_write_text, read_jsonl
from reviewkit.protocol import Protocol, load_protocol
from reviewkit.snapshot import Snapshot
from reviewkit.testing.render import esearch_xml, is_et_al, pubmed_xml

# A repository tool: it builds the worked example in the repository's own data/.
ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "data" / "corpus" / "records.jsonl"
PROTOCOL = ROOT / "data" / "protocol.yml"
SAMPLE_DIR = ROOT / "data" / "snapshots" / "sample"
# The day this sample was built from the corpus; fixed so a rebuild is byte-identical.
BUILT = "2026-11-26T00:00:00Z"
SAMPLE_NOTE = (
    "SAMPLE: a curated sample of real published studies (data/corpus/), not a complete PubMed search. "
    "Counts are the sample's, not PubMed's; real searches return many more records."
)
OTHER_METHODS_RIS = "other_methods/citation_searching.ris"
LOOKUPS_RIS = "lookups/records_without_pmid.ris"


class CorpusTransport:
    """Answers ESearch/EFetch from the corpus, recording like a live transport."""

    records = True

    def __init__(self, snapshot: Snapshot, protocol: Protocol, corpus: list[dict]):
        self.snapshot = snapshot
        self.by_pmid = {r["pmid"]: r for r in corpus if r.get("pmid")}
        self.by_query = {
            protocol.query(key): sorted(
                (r["pmid"] for r in corpus if r.get("pmid") and r["collection"] == "search"
                 and key in r["retrieved_by"]), key=int)
            for key in protocol.searches
        }

    def request(self, utility: str, params: dict[str, str], *, reuse: bool = False) -> bytes:
        if utility == "esearch":
            ids = self.by_query[params["term"]]
            body = esearch_xml(len(ids), ids, 0, params["term"], comment=SAMPLE_NOTE)
        elif utility == "efetch":
            body = pubmed_xml((self.by_pmid[p] for p in params["id"].split(",")), comment=SAMPLE_NOTE)
        else:
            raise ReviewkitError(f"the sample corpus cannot answer {utility}")
        method = "POST" if params.get("id", "").count(",") >= 199 else "GET"
        return self.snapshot.put(utility, params, body, method=method).body


def _ris_entry(rec: dict, source_id: str) -> dict:
    entry = {
        "type_of_reference": "JOUR",
        "id": source_id,
        "title": rec["title"],
        "authors": [_ris_author(a) for a in rec.get("authors") or [] if not is_et_al(a)],
        "year": str(rec["year"]) if rec.get("year") else None,
        "secondary_title": rec.get("journal"),
        "volume": rec.get("volume"),
        "number": rec.get("issue"),
        "doi": rec.get("doi"),
        "language": rec.get("language"),
        "urls": [rec["source_url"]] if rec.get("source_url") else None,
        # C1: the review searches (disorders) this record bears on, from the corpus's retrieved_by.
        "custom1": "; ".join(rec.get("retrieved_by") or []) or None,
        "notes": ["reviewkit sample: curated corpus record without a verified PMID"],
    }
    if rec.get("pages"):
        start, _, end = str(rec["pages"]).partition("-")
        entry["start_page"] = start
        if end:
            entry["end_page"] = end
    return {k: v for k, v in entry.items() if v not in (None, [], "")}


def _ris_author(name: str) -> str:
    # RIS wants "Last, Initials"; the corpus writes "Last Initials".
    last, _, initials = name.rpartition(" ")
    return f"{last}, {initials}" if last else name


def corpus_ris_id(rec: dict, index: int) -> str:
    """A stable id for a corpus record without a PMID: its DOI, else its line in the corpus."""
    return f"doi:{rec['doi'].lower()}" if rec.get("doi") else f"corpus-line-{index}"


def build_sample(out: Path = SAMPLE_DIR, corpus_path: Path = CORPUS, protocol: Protocol | None = None,
                 progress: bool = False) -> Snapshot:
    protocol = protocol or load_protocol(PROTOCOL)
    corpus = list(read_jsonl(corpus_path))
    if out.exists():
        shutil.rmtree(out)
    snap = Snapshot.create(out, sample=True, note=SAMPLE_NOTE, protocol_sha256=protocol.sha256,
                           clock=lambda: BUILT)
    snap.clock = lambda: BUILT
    transport = CorpusTransport(snap, protocol, corpus)
    for search in protocol.select(None):
        run_search(transport, protocol, search.key, progress=progress)

    indexed = list(enumerate(corpus, 1))
    other = [_ris_entry(r, corpus_ris_id(r, i)) for i, r in indexed
             if not r.get("pmid") and r["collection"] == "search" and r["retrieved_by"]]
    atomic_write_text(out / OTHER_METHODS_RIS, rispy.dumps(other))

    lookups = [r for r in corpus if r["collection"] == "citation-check"]
    lookup_pmids = sorted((r["pmid"] for r in lookups if r.get("pmid")), key=int)
    params = efetch_params(lookup_pmids)
    transport.request("efetch", params)
    atomic_write_json(out / "lookups" / "manifest.json", {
        "purpose": "records a live check of the article's references would look up (corpus collection "
                   "'citation-check'); offline they stand in for that lookup",
        "pmids": lookup_pmids,
        "exchanges": [snap.get("efetch", params).id],
        "records_without_pmid": LOOKUPS_RIS,
    })
    no_pmid = [_ris_entry(r, corpus_ris_id(r, i)) for i, r in indexed
               if r["collection"] == "citation-check" and not r.get("pmid")]
    atomic_write_text(out / LOOKUPS_RIS, rispy.dumps(no_pmid))
    return snap


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Rebuild the offline sample snapshot from data/corpus/.")
    parser.add_argument("--out", type=Path, default=SAMPLE_DIR)
    args = parser.parse_args(argv)
    snap = build_sample(args.out, progress=True)
    print(f"sample snapshot written to {snap.root}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
