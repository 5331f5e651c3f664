"""The article audit end to end: references checked, claims weighed against this review's evidence.

One function for the ``reviewkit audit`` command and the report notebooks (both reach it
through ``reviewkit.review.Review.audit``), so both show the same verdicts from the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .citations import CandidateSource, CitationCheck, check_reference
from .claims import ClaimAudit, audit_claims, audit_table, load_claims
from .evidence import pool_analysis, pooled_effects
from .meta import SubgroupAnalysis
from .protocol import Protocol
from .references import Reference, read_references
from .text import in_sentence


@dataclass(frozen=True)
class ArticleAudit:
    """The claims audit with what it rests on: the pooled model (None when no included study is in
    the analysis), the reference checks (Reference -> CitationCheck), the included reports and one
    ClaimAudit per claim."""

    model: SubgroupAnalysis | None
    checks: dict[Reference, CitationCheck]
    included: pd.DataFrame
    claims: list[ClaimAudit]

    @property
    def table(self) -> pd.DataFrame:
        return audit_table(self.claims)


def audit_article(article_dir: str | Path, protocol: Protocol, source: CandidateSource, included: pd.DataFrame,
                  extraction: pd.DataFrame, *, analysis: str | None, method: str, hksj: bool) -> ArticleAudit:
    """Check the references of ``article_dir/references.txt`` with ``source``, then weigh each claim of
    ``article_dir/claims.yml`` against the ``included`` studies (``evidence.included_from_screening``) and
    the pooled ``analysis`` of their ``extraction`` rows (none when ``analysis`` is None or nothing is
    extracted)."""
    article_dir = Path(article_dir)
    references = read_references(article_dir / "references.txt")
    checks = {r: check_reference(r, source) for r in references if isinstance(r, Reference)}
    model = None if analysis is None or extraction.empty else \
        pool_analysis(extraction, analysis, method, hksj, included=included, disorders=tuple(protocol.searches))
    claims = load_claims(article_dir / "claims.yml", references, protocol.labels)
    pooled = pooled_effects(model, label=analysis or "", intervention=in_sentence(protocol.intervention_label))
    audits = audit_claims(claims, checks, included, pooled, protocol.labels, in_sentence(protocol.intervention_label))
    return ArticleAudit(model, checks, included, audits)
