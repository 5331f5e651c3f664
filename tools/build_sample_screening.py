"""Build the bundled sample's screening decisions from the curated corpus.

``python -m tools.build_sample_screening`` writes ``data/screening/sample/``:
the curator's ``would_include`` / ``exclusion_reason`` become ONE reviewer's
decisions (``reviewer1`` and ``final``; ``reviewer2`` stays empty, so no
kappa). data/screening/README.md says what is and is not claimed.

* Title/abstract (database records): include, or exclude with the curator's
  free-text reason mapped onto the protocol's list (original text in notes).
* Full text: the corpus holds no separate full-text judgement. A record the
  curator included goes forward as retrieved, assessed and included; a record
  from other methods (which PRISMA 2020 sends straight to retrieval) is
  assessed with the curator's judgement, its reason mapped onto the full-text
  list (the same rules, plus the reasons only that list has).
* ``ERRATA_EXCLUSIONS``: two reports the curator included fail the protocol
  on facts data/corpus/ERRATA.md checked against the published papers; they
  are excluded at full text with that reason, and the note says so.
* ``study_id`` links secondary analyses to the report of their trial where
  the corpus says so (:data:`SECONDARY_REPORTS`).

Existing decisions in the output folder are kept: the build goes through
``import_decisions``, which refuses to change a recorded decision. So after a
change to the rules below, rebuild into an empty folder (``--out``) and
replace the sheets with the result.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

from reviewkit.io import read_jsonl
from reviewkit.protocol import load_protocol
from reviewkit.screening import import_decisions
from reviewkit.screening_state import build_state, write_state

from .build_sample import CORPUS, PROTOCOL, ROOT, SAMPLE_DIR, corpus_ris_id

SAMPLE_SCREENING = ROOT / "data" / "screening" / "sample"

# Curator text (lower case) -> exclusion reason; first match wins. Study
# designs come first, so "animal study; ... not a human treatment study" is an
# animal study; "review" must name a literature review, since a "retrospective
# forensic toxicology review" of cases is primary data. The protocol gives both
# stages these reasons: records from other methods meet them at full text.
REASON_RULES = [
    (r"animal", "animal study"),
    (r"\b(narrative|systematic|scoping|literature) review\b|meta-analy|\boverview\b", "review or meta-analysis"),
    (r"editorial|commentary|perspective", "editorial or commentary"),
    (r"protocol", "protocol without results"),
    (r"case report", "single-patient case report"),
    (r"healthy|laboratory", "healthy volunteers or laboratory challenge"),
    (r"depression|bipolar|schizophrenia|chronic-pain", "not an addictive disorder"),
    (r"treatment|misuse|epidemiology|surveillance|abused drug|survey|sedation|analgesia|forensic|"
     r"drug-checking|toxicology method|ketamine co-use|chronic users", "ketamine not given as treatment"),
]
# Reasons only the full-text list has: whether a study reports usable outcomes
# is judged from the report, not from a title.
FULL_TEXT_RULES = [
    (r"no (efficacy|usable) outcome", "no usable outcome"),
]
# Secondary analyses -> (DOI of the report of the trial they analyse, where the corpus says so).
SECONDARY_REPORTS = {
    # corpus README: Rothberg 2021 is a secondary analysis of Dakwar 2020's participants
    "10.1177/0269881120970879": "10.1176/appi.ajp.2019.19070684",
    # corpus summary: secondary analysis of the 8-participant crossover, ketamine 0.41/0.71 vs lorazepam (Dakwar 2014)
    "10.1016/j.drugalcdep.2013.12.019": "10.1016/j.biopsych.2013.08.009",
    # corpus README: Dakwar 2018 reanalyses a laboratory trial; its summary (cocaine-dependent volunteers,
    # ketamine vs midazolam, laboratory) fits one corpus trial only: Dakwar 2017 (Mol Psychiatry)
    "10.1016/j.neuropharm.2018.01.005": "10.1038/mp.2016.39",
}

# Full-text exclusions the curator's flag misses, from data/corpus/ERRATA.md ("Eligibility").
# Keyed by DOI where the corpus has one, else by title.
ERRATA_EXCLUSIONS = {
    "10.1038/s41467-019-13162-w": (
        "wrong population", "about 90 hazardous drinkers neither diagnosed nor seeking treatment, "
        "outside the protocol's population"),
    "response of refractory gambling disorder to intravenous ketamine": (
        "single-patient case report", "a single-patient case report, which the protocol excludes"),
}


def errata_exclusion(rec: dict) -> tuple[str, str] | None:
    """(reason, note) when ERRATA.md shows a report the curator included fails the protocol."""
    return ERRATA_EXCLUSIONS.get((rec.get("doi") or "").lower()) or ERRATA_EXCLUSIONS.get(rec["title"].lower())


def exclusion_reason(text: str | None, stage: str) -> str:
    """The protocol reason for the curator's free-text ``exclusion_reason`` at ``stage``."""
    rules = REASON_RULES + (FULL_TEXT_RULES if stage == "full_text" else [])
    lowered = (text or "").lower()
    return next((reason for pattern, reason in rules if re.search(pattern, lowered)), "other")


def corpus_record_ids(corpus: list[dict]) -> dict[int, str]:
    """Corpus line -> record id as the sample snapshot names it (PubMed or citation searching)."""
    ids = {}
    for line, rec in enumerate(corpus, 1):
        if rec["collection"] != "search" or not rec["retrieved_by"]:
            continue
        ids[line] = f"PMID:{rec['pmid']}" if rec.get("pmid") else f"CIT:{corpus_ris_id(rec, line)}"
    return ids


def decisions_from_corpus(corpus: list[dict], other_method_ids: set[str]) -> dict[str, pd.DataFrame]:
    """Per stage, a decisions table keyed by record id."""
    ids = corpus_record_ids(corpus)
    by_doi = {rec["doi"].lower(): ids[line] for line, rec in enumerate(corpus, 1) if line in ids and rec.get("doi")}
    ta, ft = [], []
    for line, rid in ids.items():
        rec = corpus[line - 1]
        original = rec.get("exclusion_reason")
        if rec["would_include"]:
            decision = {"reviewer1": "include", "final": "include", "exclusion_reason": "",
                        "notes": "curator (corpus would_include): include"}
        else:
            decision = {"reviewer1": "exclude", "final": "exclude",
                        "exclusion_reason": exclusion_reason(original, "title_abstract"),
                        "notes": f"curator (corpus exclusion_reason): {original or 'none given'}"}
        if rid not in other_method_ids:
            ta.append({"record_id": rid, **decision})
        if rid in other_method_ids or rec["would_include"]:
            reason = "" if rec["would_include"] else exclusion_reason(original, "full_text")
            study = by_doi.get(SECONDARY_REPORTS.get((rec.get("doi") or "").lower(), ""), "")
            row = {"record_id": rid, "retrieved": "yes", **decision, "exclusion_reason": reason, "study_id": study,
                   "notes": decision["notes"] + "; sample: full-text stage carries the curator's judgement"}
            errata = errata_exclusion(rec) if rec["would_include"] else None
            if errata:
                row.update(reviewer2="exclude", final="exclude", exclusion_reason=errata[0],
                           notes=row["notes"] + f"; errata check (data/corpus/ERRATA.md): {errata[1]}")
            ft.append(row)
    return {"title_abstract": pd.DataFrame(ta), "full_text": pd.DataFrame(ft)}


def build_sample_screening(out: Path = SAMPLE_SCREENING, snapshot: Path = SAMPLE_DIR,
                           corpus_path: Path = CORPUS) -> list[Path]:
    protocol = load_protocol(PROTOCOL)
    corpus = list(read_jsonl(corpus_path))
    state = build_state(snapshot, out, protocol)
    other_ids = set(state.identified.loc[state.identified["source"] != "PubMed", "record_id"])
    decisions = decisions_from_corpus(corpus, other_ids)
    ta = import_decisions(state.sheet("title_abstract"), decisions["title_abstract"], "title_abstract",
                          protocol.screening_reasons["title_abstract"], str(corpus_path))
    # Full-text candidates follow the title/abstract decisions: write, then rebuild.
    changed = write_state(state.with_sheet("title_abstract", ta), out)
    state = build_state(snapshot, out, protocol)
    ft = import_decisions(state.sheet("full_text"), decisions["full_text"], "full_text",
                          protocol.screening_reasons["full_text"], str(corpus_path))
    return changed + [p for p in write_state(state.with_sheet("full_text", ft), out) if p not in changed]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the sample's screening decisions from data/corpus/.")
    parser.add_argument("--out", type=Path, default=SAMPLE_SCREENING)
    args = parser.parse_args(argv)
    for path in build_sample_screening(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
