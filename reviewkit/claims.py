"""Each claim of the article against its citation and against this review's evidence.

Inputs are plain data, passed in by the caller:

* the claims (``load_claims``: ``data/article/claims.yml`` with each ``cites``
  resolved to a parsed ``Reference``);
* the citation checks (``reviewkit.citations``), one per reference;
* ``included``: the included human studies, one row per report and disorder,
  columns ``reviewkit.evidence.INCLUDED_COLUMNS`` (``study_id`` links the reports of one study:
  the same participants, counted once; ``n`` is the number randomized or
  enrolled, nullable; designs as in the corpus: rct, crossover_rct,
  nonrandomized_controlled, open_label, case_series, case_report,
  retrospective_cohort, ...). ``reviewkit.evidence.included_from_screening``
  builds it from the screening decisions;
* ``pooled``: optionally, per disorder, a ``PooledEffect`` from the
  meta-analysis (``reviewkit.evidence.pooled_effects``);
* the disorders and their names: the protocol's searches (``Protocol.labels``),
  and the intervention's name (``Protocol.intervention_label``).

The claim verdict follows the ordered rules in ``judge`` (documented in
docs/claims-audit.md); its reason is one line built from the numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .citations import CitationCheck, Match
from .errors import ReviewkitError
from .evidence import PooledEffect
from .io import read_yaml
from .references import Reference, Unparsed
from .text import fold, in_sentence

CLAIM_VERDICTS = ("supported", "partly supported", "overstated", "unsupported", "no evidence")
RANDOMIZED = ("rct", "crossover_rct")
CONTROLLED = (*RANDOMIZED, "nonrandomized_controlled")
DESIGN_LABELS = {
    "rct": "RCT", "crossover_rct": "crossover RCT", "nonrandomized_controlled": "non-randomized controlled",
    "open_label": "open-label", "case_series": "case series", "case_report": "case report",
    "retrospective_cohort": "retrospective cohort",
}
MAX_QUOTE_WORDS = 25


@dataclass(frozen=True)
class Claim:
    id: str
    section: str
    disorder: str | None          # None: a mechanism claim naming no disorder
    quote: str
    cites: str | None             # "<surname> <year>" as written in claims.yml
    reference: Reference | None   # the resolved reference
    design: str                   # asserted: randomized controlled trial | pilot study | case report | study | mechanism
    direction: str
    significance: str             # significant | not stated
    population: str


def load_claims(path: str | Path, references: Sequence[Reference | Unparsed],
                labels: Mapping[str, str]) -> list[Claim]:
    """Read claims.yml and resolve each ``cites`` to the reference with that first-author surname and year.

    A claim's ``disorder`` must be a key of ``labels`` (the protocol's searches)."""
    path = Path(path)
    disorders = labels
    data = read_yaml(path, "claims file")  # bounded: no aliases, size and nesting capped
    if not isinstance(data, (dict, type(None))) or not isinstance((data or {}).get("claims") or [], list):
        raise ReviewkitError(f"{path}: must be a mapping whose 'claims' is a list of claims")
    refs = [r for r in references if isinstance(r, Reference)]
    claims = []
    for index, item in enumerate((data or {}).get("claims") or [], 1):
        if not isinstance(item, dict):
            raise ReviewkitError(f"{path}, claim {index}: must be a mapping (id, section, quote, asserts, ...)")
        where = f"{path}, claim {item.get('id', index)}"
        missing = [k for k in ("id", "section", "quote", "asserts") if not item.get(k)]
        if missing:
            raise ReviewkitError(f"{where}: missing {', '.join(missing)}")
        if not isinstance(item["quote"], str) or not isinstance(item["section"], str) or \
                not isinstance(item["asserts"], dict):
            raise ReviewkitError(f"{where}: quote and section must be text, asserts a mapping")
        if len(item["quote"].split()) > MAX_QUOTE_WORDS:
            raise ReviewkitError(f"{where}: quote has {len(item['quote'].split())} words (at most {MAX_QUOTE_WORDS})")
        if item.get("disorder") not in (None, *disorders):
            raise ReviewkitError(f"{where}: unknown disorder {item['disorder']!r} (the protocol's searches: "
                                 f"{', '.join(disorders)})")
        reference = None
        if item.get("cites"):
            surname, _, year = str(item["cites"]).rpartition(" ")
            hits = [r for r in refs if r.first_author and fold(r.first_author).startswith(fold(surname) + " ")
                    and str(r.year) == year]
            if len(hits) != 1:
                raise ReviewkitError(f"{where}: cites {item['cites']!r}, which matches {len(hits)} references")
            reference = hits[0]
        asserts = item["asserts"]
        claims.append(Claim(
            id=str(item["id"]), section=item["section"], disorder=item.get("disorder"), quote=item["quote"],
            cites=item.get("cites"), reference=reference, design=asserts.get("design", "study"),
            direction=asserts.get("direction", "benefit"), significance=asserts.get("significance", "not stated"),
            population=asserts.get("population", ""),
        ))
    return claims


@dataclass(frozen=True)
class Evidence:
    """What this review's included human studies show for one disorder (studies counted once)."""

    disorder: str
    label: str                               # the disorder's name, as in a sentence
    by_design: tuple[tuple[str, int], ...]   # (design, studies), most studies first
    studies: int
    reports: int
    controlled: int                          # studies of a controlled design
    randomized_participants: int             # summed over randomized studies with a known n
    randomized_without_n: int                # randomized studies without one
    pooled: PooledEffect | None

    def text(self) -> str:
        if not self.studies:
            return "no human study found"
        designs = ", ".join(f"{k} {DESIGN_LABELS.get(d, d.replace('_', ' '))}" for d, k in self.by_design)
        reports = f" ({self.reports} reports)" if self.reports != self.studies else ""
        parts = [f"{self.studies} human stud{'y' if self.studies == 1 else 'ies'}{reports}: {designs}"]
        if not self.controlled:
            parts.append("no controlled study found")
        if any(d in RANDOMIZED for d, _ in self.by_design):
            unknown = (f" ({self.randomized_without_n} randomized stud{'y' if self.randomized_without_n == 1 else 'ies'}"
                       " without a reported n)") if self.randomized_without_n else ""
            parts.append(f"{self.randomized_participants} randomized participants{unknown}")
        parts.append(self.pooled.text() if self.pooled else "no pooled effect computed")
        return "; ".join(parts)


def _studies(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per study: the design of its main report (the report the others point to, else its first),
    and the largest n any of its reports gives (they describe the same participants)."""
    if rows.empty:
        return pd.DataFrame(columns=["study_id", "design", "n"])
    # A report without a study_id is a study of its own.
    key = rows["study_id"].where(rows["study_id"].notna() & (rows["study_id"] != ""), rows["record_id"]) \
        if "study_id" in rows.columns else rows["record_id"]
    out = []
    for study, reports in rows.groupby(key, sort=False):
        main = reports[reports["record_id"] == study]
        design = (main if len(main) else reports).iloc[0]["design"]
        n = pd.to_numeric(reports["n"], errors="coerce").max()
        out.append({"study_id": study, "design": "not recorded" if pd.isna(design) else str(design), "n": n})
    return pd.DataFrame(out, columns=["study_id", "design", "n"])


def summarize_evidence(included: pd.DataFrame, pooled: Mapping[str, PooledEffect] | None,
                       labels: Mapping[str, str]) -> dict[str, Evidence]:
    """Evidence per disorder (``labels``: key -> name, the protocol's searches) from the
    included-studies table (see module docstring)."""
    pooled = pooled or {}
    out = {}
    for disorder, label in labels.items():
        rows = included[included["disorder"] == disorder] if len(included) else included
        studies = _studies(rows)
        counts = studies["design"].value_counts()
        randomized = studies[studies["design"].isin(RANDOMIZED)]
        out[disorder] = Evidence(
            disorder=disorder, label=in_sentence(label),
            by_design=tuple(sorted(((str(d), int(k)) for d, k in counts.items()), key=lambda x: (-x[1], x[0]))),
            studies=len(studies), reports=len(rows), controlled=int(studies["design"].isin(CONTROLLED).sum()),
            randomized_participants=int(randomized["n"].sum(skipna=True)),
            randomized_without_n=int(randomized["n"].isna().sum()),
            pooled=pooled.get(disorder),
        )
    return out


def _included_row(match: Match | None, included: pd.DataFrame, disorder: str | None) -> pd.Series | None:
    """The included study the cited record is (same PMID, DOI or title), if any."""
    if match is None or not len(included):
        return None
    rows = included if disorder is None else included[included["disorder"] == disorder]
    for _, row in rows.iterrows():
        if (match.pmid and str(row.get("pmid") or "") == match.pmid) or \
                (match.doi and str(row.get("doi") or "").lower() == match.doi.lower()) or \
                fold(row.get("title")) == fold(match.title):
            return row
    return None


@dataclass(frozen=True)
class ClaimAudit:
    claim: Claim
    citation: CitationCheck | None
    evidence: Evidence | None
    verdict: str          # one of CLAIM_VERDICTS
    reason: str

    def as_dict(self) -> dict:
        c, cit = self.claim, self.citation
        nearest = cit.nearest if cit else None
        return {
            "id": c.id, "section": c.section, "disorder": c.disorder, "quote": c.quote, "cites": c.cites,
            "asserted_design": c.design, "asserted_significance": c.significance,
            "citation_verdict": cit.verdict if cit else "no reference cited",
            "field_errors": list(cit.field_errors) if cit else [],
            "nearest_record": nearest.label() if nearest else None,
            "evidence": self.evidence.text() if self.evidence else "mechanism claim: outside the review's question",
            "verdict": self.verdict, "reason": self.reason,
            "live_could_change": bool(cit and cit.live_could_change),
        }


def _cited(claim: Claim, citation: CitationCheck | None) -> str:
    if citation is None:
        return "cites no reference"
    where = f"in {citation.searched}"
    if citation.verdict == "not_found":
        return f"cited {claim.cites} not found {where}"
    if citation.verdict == "ambiguous":
        return f"cited {claim.cites} matches {len(citation.candidates)} records {where}"
    m = citation.match
    assert m is not None  # verified or exists_with_errors: one record is identified
    errors = f" with errors in {', '.join(citation.field_errors)}" if citation.field_errors else ""
    return f"cited {claim.cites} is {m.first_author} {m.year} ({m.journal}){errors}"


def _shortfall(evidence: Evidence) -> str | None:
    """Why the controlled evidence does not back a claim of benefit, or None when it does not contradict it."""
    if not evidence.controlled:
        return "no controlled study"
    p = evidence.pooled
    if p is not None and p.favours != "intervention":
        what = f"the pooled {p.analysis + ' ' if p.analysis else ''}{p.measure}"
        return f"{what} favours control" if p.favours == "control" else f"{what}'s CI includes {p.null:g}"
    return None


def judge(claim: Claim, citation: CitationCheck | None, evidence: Evidence | None,
          included: pd.DataFrame, intervention: str) -> tuple[str, str]:
    """The claim verdict and its reason; rules in order, first that applies wins."""
    cited = _cited(claim, citation)
    found = citation is not None and citation.verdict in ("verified", "exists_with_errors")
    if claim.disorder is None:
        # 1. Mechanism claims: the review holds no evidence on mechanism, only on the citation.
        if not found:
            return "unsupported", f"{cited}; mechanism claim outside this review's question"
        assert citation is not None
        if _included_row(citation.match, included, None) is None:
            return "partly supported", (f"{cited}, a real record, but not an included study of {intervention} in "
                                        "this review, so it shows no effect on the review's question")
        return "supported", f"{cited}, an included study of this review"
    assert evidence is not None
    label = evidence.label
    if not evidence.studies:
        # 2. Nothing to compare with.
        return "no evidence", f"{cited}; no human study of {intervention} for {label} in this review's evidence"
    ev = f"{label}: {evidence.text()}"
    shortfall = _shortfall(evidence)
    if citation is None:
        # 3. Uncited claims are judged on the evidence alone.
        if evidence.pooled is not None and evidence.pooled.favours == "intervention":
            return "supported", f"{cited}; {ev}"
        if shortfall is None:
            return "partly supported", f"{cited}; controlled studies but no pooled effect in {intervention}'s favour; {ev}"
        return "overstated", f"{cited}; claims a benefit, but {shortfall}; {ev}"
    study = _included_row(citation.match, included, claim.disorder) if found else None
    if study is None:
        # 4. The citation does not lead to a study of this disorder: the claim rests on nothing it names.
        what = cited if not found else f"{cited}, which is not an included study of {label}"
        return "unsupported", f"{what}; {ev}"
    design = study["design"]
    if claim.design == "randomized controlled trial" and not pd.isna(design) and design not in RANDOMIZED:
        # 5. The cited study is real but not the design claimed.
        return "overstated", f"{cited}, a {DESIGN_LABELS.get(design, design)}, not an RCT; {ev}"
    if (claim.design == "randomized controlled trial" or claim.significance == "significant") and shortfall:
        # 6. "Significant" or "RCT" claims need controlled evidence that agrees.
        asserted = "a significant effect" if claim.significance == "significant" else "an RCT's benefit"
        return "overstated", f"{cited}; claims {asserted}, but {shortfall}; {ev}"
    if citation.field_errors:
        return "partly supported", f"{cited}; {ev}"
    return "supported", f"{cited}; {ev}"


def audit_claims(claims: Sequence[Claim], checks: Mapping[Reference, CitationCheck], included: pd.DataFrame,
                 pooled: Mapping[str, PooledEffect] | None, labels: Mapping[str, str],
                 intervention: str) -> list[ClaimAudit]:
    """One ``ClaimAudit`` per claim (``labels``: the protocol's searches; ``intervention``: its name in
    sentences, e.g. "ketamine")."""
    evidence = summarize_evidence(included, pooled, labels)
    out = []
    for claim in claims:
        citation = checks.get(claim.reference) if claim.reference else None
        ev = evidence.get(claim.disorder) if claim.disorder else None
        verdict, reason = judge(claim, citation, ev, included, intervention)
        out.append(ClaimAudit(claim, citation, ev, verdict, reason))
    return out


def audit_table(audits: Sequence[ClaimAudit]) -> pd.DataFrame:
    return pd.DataFrame([a.as_dict() for a in audits])
