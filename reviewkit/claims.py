"""Each claim of an article against its citation and against this review's syntheses: two verdicts.

Inputs are plain data, passed in by the caller:

* the claims (``load_claims``: the article's ``claims.yml``, each ``cites`` resolved to
  a parsed ``Reference``), each saying which disorders (the protocol's searches),
  outcome domains and comparison it is about, and how strongly it is worded;
* the citation checks (``reviewkit.citations``), one per reference;
* ``included``: the included reports (``reviewkit.evidence.included_from_screening``);
* ``syntheses``: ``reviewkit.synthesis.Synthesis`` objects with their GRADE certainty.

A claim gets two verdicts, judged apart, because a fabricated citation does not make
a true statement false and a real citation does not make a false statement true:

* **citation**: ``verified``, ``exists_with_errors``, ``not_found``, ``ambiguous`` or
  ``no reference cited``, and whether the cited work is about the claim (an included
  study of the claim's disorder) at all;
* **statement**: ``supported``, ``partly supported``, ``not supported``,
  ``contradicted`` or ``no eligible evidence``, judged only on the syntheses of the
  claim's own disorders, outcome domains and comparison (never another outcome), with
  the certainty of that evidence. Rules (``judge_statement``): each matching synthesis
  shows a benefit (the 95% CI excludes no effect on the intervention's side, or for a
  synthesis without numbers every study reports a benefit), harm (the CI excludes no
  effect on the comparator's side), or no difference. All benefit: supported; harm and
  no benefit: contradicted; some benefit: partly supported; none: not supported. A
  *strong* claim ("a growing body of evidence supports the efficacy", "significantly")
  resting on evidence of low or very low certainty, or on directions without an effect
  estimate, is at most partly supported, and the reason says why. The verdict's
  certainty is GRADE's overall rating across outcomes: the highest of the matching
  syntheses when all point the same way, else the lowest (``overall_certainty``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .citations import CitationCheck, Match
from .errors import ReviewkitError
from .extraction import DESIGN_LABELS
from .grade import LEVELS
from .io import read_yaml
from .references import Reference, Unparsed
from .text import fold, in_sentence

STATEMENT_VERDICTS = ("supported", "partly supported", "not supported", "contradicted", "no eligible evidence")
STRENGTHS = ("strong", "modest")
KINDS = ("effect", "mechanism")
ASSERTS = ("design", "direction", "significance", "strength", "population")
MAX_QUOTE_WORDS = 25


@dataclass(frozen=True)
class Claim:
    id: str
    section: str
    kind: str                       # effect | mechanism (outside the review question)
    disorders: tuple[str, ...]      # the protocol searches the claim is about
    outcome_domains: tuple[str, ...]
    comparison: str | None          # a protocol comparison key
    quote: str
    cites: str | None               # "<surname> <year>" as written in claims.yml
    reference: Reference | None     # the resolved reference
    design: str                     # asserted: randomized controlled trial | pilot study | case report | study | mechanism
    strength: str                   # strong | modest
    significance: str               # significant | not stated
    population: str


def load_claims(path: str | Path, references: Sequence[Reference | Unparsed], protocol) -> list[Claim]:
    """Read claims.yml and resolve each ``cites`` to the reference with that first-author surname and year.

    A claim's disorders must be the protocol's searches, its outcome domains the protocol's outcomes,
    its comparison one of the protocol's comparisons; problems name the claim."""
    path = Path(path)
    data = read_yaml(path, "claims file") or {}  # bounded: no aliases, size and nesting capped
    refs = [r for r in references if isinstance(r, Reference)]
    claims = []
    items = data.get("claims") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise ReviewkitError(f"{path}: needs a list under 'claims'")
    for index, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise ReviewkitError(f"{path}, claim {index}: must be a mapping")
        where = f"{path}, claim {str(item.get('id', index))[:20]}"
        missing = [k for k in ("id", "section", "quote", "asserts", "kind") if not item.get(k)]
        if missing:
            raise ReviewkitError(f"{where}: missing {', '.join(missing)}")
        if not isinstance(item["quote"], str) or not isinstance(item["section"], str):
            raise ReviewkitError(f"{where}: quote and section must be text")
        quote = item["quote"]
        if len(quote.split()) > MAX_QUOTE_WORDS:
            raise ReviewkitError(f"{where}: quote has {len(quote.split())} words (at most {MAX_QUOTE_WORDS})")
        kind = item["kind"]
        if kind not in KINDS:
            raise ReviewkitError(f"{where}: kind must be one of {', '.join(KINDS)}")
        disorders = _keys(item.get("disorders"), protocol.searches, where, "disorders", "the protocol's searches")
        domains = _keys(item.get("outcome_domains"), protocol.outcomes, where, "outcome_domains",
                        "the protocol's outcomes")
        comparison = item.get("comparison")
        if comparison is not None and comparison not in protocol.comparisons:
            raise ReviewkitError(f"{where}: comparison {str(comparison)[:30]!r} is not one of "
                                 f"{', '.join(protocol.comparisons)}")
        if kind == "effect" and not (disorders and domains and comparison):
            raise ReviewkitError(f"{where}: an effect claim needs disorders, outcome_domains and a comparison")
        reference = None
        if item.get("cites"):
            surname, _, year = str(item["cites"]).rpartition(" ")
            hits = [r for r in refs if r.first_author and fold(r.first_author).startswith(fold(surname) + " ")
                    and str(r.year) == year]
            if len(hits) != 1:
                raise ReviewkitError(f"{where}: cites {str(item['cites'])[:40]!r}, which matches {len(hits)} references")
            reference = hits[0]
        asserts = item["asserts"]
        if not isinstance(asserts, dict):
            raise ReviewkitError(f"{where}: asserts must be a mapping ({', '.join(ASSERTS)})")
        unknown = [str(k)[:30] for k in asserts if k not in ASSERTS]
        if unknown:  # e.g. an unquoted comma in a flow mapping splits a value into a key
            raise ReviewkitError(f"{where}: unknown asserts {', '.join(unknown)} (known: {', '.join(ASSERTS)})")
        strength = asserts.get("strength", "modest")
        if strength not in STRENGTHS:
            raise ReviewkitError(f"{where}: asserts.strength must be one of {', '.join(STRENGTHS)}")
        claims.append(Claim(
            id=str(item["id"]), section=str(item["section"]), kind=kind, disorders=disorders,
            outcome_domains=domains, comparison=comparison, quote=quote, cites=item.get("cites"),
            reference=reference, design=str(asserts.get("design", "study")), strength=strength,
            significance=str(asserts.get("significance", "not stated")),
            population=str(asserts.get("population", "")),
        ))
    return claims


def _keys(value, allowed, where: str, field: str, named: str) -> tuple[str, ...]:
    if value in (None, []):
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ReviewkitError(f"{where}: {field} must be a list of keys")
    unknown = [v for v in value if v not in allowed]
    if unknown:
        raise ReviewkitError(f"{where}: unknown {field} {', '.join(u[:30] for u in unknown)} ({named}: "
                             f"{', '.join(allowed)})")
    return tuple(value)


# --------------------------------------------------------------------------- the evidence in words


def studies_text(included: pd.DataFrame, disorder: str) -> str:
    """"8 studies (10 reports): 5 RCT, 3 retrospective cohort; 136 randomized participants": one disorder's
    included studies, counted once however many reports they have."""
    rows = included[included["disorder"] == disorder] if len(included) else included
    if not len(rows):
        return "no included study"
    studies = rows.drop_duplicates("study_id")
    designs = studies["design"].fillna("not recorded").value_counts()
    text = (f"{len(studies)} included stud{'y' if len(studies) == 1 else 'ies'}"
            + (f" ({len(rows)} reports)" if len(rows) != len(studies) else "") + ": "
            + ", ".join(f"{k} {DESIGN_LABELS.get(d, d.replace('_', ' '))}" for d, k in designs.items()))
    randomized = studies[studies["design"].isin(("rct", "crossover_rct"))]
    if len(randomized):
        known = randomized["n"].dropna()
        text += f"; {int(known.sum())} randomized participants"
        unknown = len(randomized) - len(known)
        if unknown:
            text += f" ({unknown} randomized stud{'y' if unknown == 1 else 'ies'} without a reported n)"
    return text


def finding(s) -> str:
    """What one synthesis shows: ``benefit``, ``harm``, ``no difference``, ``benefit (direction only)``,
    ``harm (direction only)``, ``mixed (direction only)`` or ``none``."""
    if s.model is not None:
        return {"intervention": "benefit", "comparator": "harm", "neither": "no difference"}[s.favours]
    directions = set(s.narrative["reported_direction"])
    if not directions:
        return "none"
    if directions == {"favours intervention"}:
        return "benefit (direction only)"
    if directions == {"no difference"}:
        return "no difference"
    if directions == {"favours comparator"}:
        return "harm (direction only)"
    return "mixed (direction only)"


def synthesis_text(s, labels: Mapping[str, str]) -> str:
    """One synthesis in a sentence: what, how many, the estimate, the certainty."""
    what = (f"{in_sentence(labels.get(s.disorder, s.disorder))}, {labels.get(s.outcome_domain, s.outcome_domain).lower()}, "
            f"{in_sentence(labels.get(s.comparison, s.comparison))}")
    cert = f"; certainty {s.certainty.level}" if s.certainty else ""
    if s.model is not None:
        low, high = s.ci
        n = f", {s.participants} participants" if s.participants is not None else ""
        measure = "proportion" if s.single_arm else s.measure
        return (f"{what}: {measure} {s.estimate:.2f} (95% CI {low:.2f} to {high:.2f}; {s.k} {s.design_group} "
                f"stud{'y' if s.k == 1 else 'ies'}{n}){cert}")
    said = "; ".join(f"{r['study']}: {r['reported_direction']}" for _, r in s.narrative.iterrows())
    return f"{what}: no effect estimate ({said}){cert}"


# --------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class ClaimAudit:
    claim: Claim
    citation: CitationCheck | None
    citation_about_claim: str       # yes | no | not assessed | not assessable
    citation_reason: str
    statement_verdict: str          # one of STATEMENT_VERDICTS
    certainty: str | None           # of the evidence the statement verdict rests on
    reason: str
    evidence: tuple                 # the matching syntheses
    studies: str                    # the included studies of the claim's disorders, in words

    def as_dict(self) -> dict:
        c, cit = self.claim, self.citation
        nearest = cit.nearest if cit else None
        return {
            "id": c.id, "section": c.section, "kind": c.kind, "disorders": list(c.disorders),
            "outcome_domains": list(c.outcome_domains), "comparison": c.comparison, "quote": c.quote,
            "cites": c.cites, "asserted_design": c.design, "strength": c.strength,
            "citation_verdict": cit.verdict if cit else "no reference cited",
            "citation_about_claim": self.citation_about_claim, "citation_reason": self.citation_reason,
            "field_errors": list(cit.field_errors) if cit else [],
            "nearest_record": nearest.label() if nearest else None,
            "live_could_change": bool(cit and cit.live_could_change),
            "citation_sources_searched": list(cit.sources_searched) if cit else [],
            "citation_found_in": cit.found_in if cit else None,
            "citation_retracted": cit.retracted if cit else None,
            "statement_verdict": self.statement_verdict, "certainty": self.certainty, "reason": self.reason,
            "studies": self.studies,
            "evidence": [s.as_dict() for s in self.evidence],
        }


def _included_row(match: Match | None, included: pd.DataFrame, disorders: Sequence[str]) -> pd.Series | None:
    """The included report the cited record is (same PMID, DOI or title) among the claim's disorders."""
    if match is None or not len(included):
        return None
    rows = included[included["disorder"].isin(disorders)] if disorders else included
    for _, row in rows.iterrows():
        if (match.pmid and str(row.get("pmid") or "") == match.pmid) or \
                (match.doi and str(row.get("doi") or "").lower() == match.doi.lower()) or \
                fold(row.get("title")) == fold(match.title):
            return row
    return None


def judge_citation(claim: Claim, citation: CitationCheck | None, included: pd.DataFrame,
                   labels: Mapping[str, str], intervention: str) -> tuple[str, str]:
    """(about the claim?, reason): is the cited work a study of the claim's question at all."""
    if citation is None:
        return "not assessable", "the claim cites no reference"
    where = f"in {citation.searched}"
    if citation.verdict == "not_found":
        return "not assessable", f"cited {claim.cites} not found {where}"
    if citation.verdict == "ambiguous":
        return "not assessable", f"cited {claim.cites} matches {len(citation.candidates)} records {where}"
    if citation.verdict == "retracted":
        notices = "; ".join(citation.retraction.notices[:2]) or "a retraction notice"
        return "not assessable", f"cited {claim.cites} is retracted ({notices}): it supports no statement"
    m = citation.match
    assert m is not None  # verified or exists_with_errors: one record is identified
    errors = f", with errors in {', '.join(citation.field_errors)}" if citation.field_errors else ""
    record = f"cited {claim.cites} is {m.first_author} {m.year} ({m.journal}){errors}"
    if claim.kind == "mechanism":
        return "not assessed", f"{record}; a mechanism claim, outside this review's evidence"
    study = _included_row(m, included, claim.disorders)
    names = " or ".join(in_sentence(labels.get(d, d)) for d in claim.disorders)
    if study is None:
        return "no", f"{record}, which is not an included study of {intervention} for {names}"
    design = DESIGN_LABELS.get(study["design"], study["design"]) if isinstance(study["design"], str) else "study"
    if claim.design == "randomized controlled trial" and study["design"] not in ("rct", "crossover_rct"):
        return "yes", f"{record}, an included {design} of {names}, but not the RCT the claim says"
    return "yes", f"{record}, an included {design} of {names}"


def matching(claim: Claim, syntheses: Sequence) -> list:
    """The syntheses of the claim's disorders, outcome domains and comparison (any design group)."""
    return [s for s in syntheses if s.disorder in claim.disorders and s.outcome_domain in claim.outcome_domains
            and s.comparison == claim.comparison]


def judge_statement(claim: Claim, syntheses: Sequence, labels: Mapping[str, str]) -> tuple[str, str | None, str]:
    """(statement verdict, certainty of its evidence, reason); rules in the module docstring."""
    if claim.kind == "mechanism":
        return "no eligible evidence", None, ("a claim about mechanism: outside this review's question, which asks "
                                              "about effects on outcomes of people treated")
    found = matching(claim, syntheses)
    wanted = (f"{', '.join(labels.get(d, d).lower() for d in claim.outcome_domains)} in "
              f"{' or '.join(in_sentence(labels.get(d, d)) for d in claim.disorders)}, "
              f"{in_sentence(labels.get(claim.comparison or '', claim.comparison or ''))}")
    if not found:
        other = sorted({f"{labels.get(s.outcome_domain, s.outcome_domain).lower()} "
                        f"({in_sentence(labels.get(s.comparison, s.comparison))})"
                        for s in syntheses if s.disorder in claim.disorders})
        return "no eligible evidence", None, (f"no included study reports {wanted}"
                                              + (f"; this review has evidence only on: {'; '.join(other)}" if other
                                                 else ""))
    covered = {s.outcome_domain for s in found}
    uncovered = [d for d in claim.outcome_domains if d not in covered]
    gap = (f"; no included study reports {', '.join(labels.get(d, d).lower() for d in uncovered)} for this "
           "comparison") if uncovered else ""
    unstudied = [d for d in claim.disorders if d not in {s.disorder for s in found}]
    if unstudied:  # a claim about several disorders, evidence on some
        uncovered += unstudied
        gap += (f"; no included study reports these outcomes in "
                f"{' or '.join(in_sentence(labels.get(d, d)) for d in unstudied)}")
    findings = [(s, finding(s)) for s in found]
    benefit = [s for s, f in findings if f.startswith("benefit")]
    harm = [s for s, f in findings if f.startswith("harm")]
    directions = {f.split(" (")[0] for _, f in findings}
    certainty = overall_certainty(found, same_direction=len(directions) == 1 and directions <= {
        "benefit", "harm", "no difference"})
    evidence = "; ".join(synthesis_text(s, labels) for s in found)
    if harm and not benefit:
        return "contradicted", certainty, f"the evidence favours the comparator: {evidence}{gap}"
    if not benefit:
        return "not supported", certainty, f"no benefit shown: {evidence}{gap}"
    if len(benefit) < len(found):
        return "partly supported", certainty, (f"a benefit in {len(benefit)} of {len(found)} syntheses the claim "
                                               f"concerns: {evidence}{gap}")
    if claim.strength == "strong" and certainty in ("low", "very low"):
        return "partly supported", certainty, (f"the evidence points the claim's way, but at {certainty} certainty "
                                               f"it cannot bear a claim worded this strongly: {evidence}{gap}")
    if all(s.model is None for s in benefit):
        return "partly supported", certainty, (f"the studies report a benefit, but give no effect estimate: "
                                               f"{evidence}{gap}")
    if claim.significance == "significant" and any(s.model is None for s in benefit):
        return "partly supported", certainty, (f"'significant' is claimed, but not every result has an estimate: "
                                               f"{evidence}{gap}")
    if uncovered:
        return "partly supported", certainty, f"{evidence}{gap}"
    return "supported", certainty, evidence


def overall_certainty(items: Sequence, same_direction: bool) -> str | None:
    """The certainty of a body of evidence across outcomes (GRADE guidelines 11, Guyatt 2013, J Clin
    Epidemiol 66:151): the highest when every result points the same way, else the lowest."""
    levels = [s.certainty.level for s in items if s.certainty]
    if not levels:
        return None
    return max(levels, key=LEVELS.index) if same_direction else min(levels, key=LEVELS.index)


def audit_claims(claims: Sequence[Claim], checks: Mapping[Reference, CitationCheck], included: pd.DataFrame,
                 syntheses: Sequence, labels: Mapping[str, str], intervention: str) -> list[ClaimAudit]:
    """One ``ClaimAudit`` per claim (``labels``: the protocol's names of searches, outcomes and comparisons;
    ``intervention``: its name in sentences, e.g. "ketamine")."""
    out = []
    for claim in claims:
        citation = checks.get(claim.reference) if claim.reference else None
        about, citation_reason = judge_citation(claim, citation, included, labels, intervention)
        verdict, certainty, reason = judge_statement(claim, syntheses, labels)
        studies = "; ".join(f"{in_sentence(labels.get(d, d))}: {studies_text(included, d)}" for d in claim.disorders)
        out.append(ClaimAudit(claim, citation, about, citation_reason, verdict, certainty, reason,
                              tuple(matching(claim, syntheses)), studies))
    return out


def audit_table(audits: Sequence[ClaimAudit]) -> pd.DataFrame:
    return pd.DataFrame([a.as_dict() for a in audits])
