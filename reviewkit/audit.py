"""The article audit end to end: references checked, each claim judged on its citation and on the syntheses.

One function for the ``reviewkit audit`` command and the report notebooks (both reach it
through ``reviewkit.review.Review.audit``), so both show the same verdicts from the same inputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .citations import CandidateSource, CitationCheck, check_reference
from .claims import ClaimAudit, audit_claims, audit_table, load_claims
from .protocol import Protocol
from .references import Reference, read_references
from .text import in_sentence


@dataclass(frozen=True)
class ArticleAudit:
    """The claims audit with what it rests on: the reference checks (Reference -> CitationCheck), the
    included reports, the syntheses and one ClaimAudit per claim."""

    checks: dict[Reference, CitationCheck]
    included: pd.DataFrame
    syntheses: tuple
    claims: list[ClaimAudit]

    @property
    def table(self) -> pd.DataFrame:
        return audit_table(self.claims)


def labels_of(protocol: Protocol) -> dict[str, str]:
    """Every key the protocol defines (searches, outcome domains, comparisons) -> its name."""
    return {**protocol.labels, **{k: o.label for k, o in protocol.outcomes.items()},
            **{k: c.label for k, c in protocol.comparisons.items()}}


def audit_article(article_dir: str | Path, protocol: Protocol, source: CandidateSource, included: pd.DataFrame,
                  syntheses: Sequence) -> ArticleAudit:
    """Check the references of ``article_dir/references.txt`` with ``source``, then judge each claim of
    ``article_dir/claims.yml`` on its citation and on the ``syntheses`` (with their certainty) of its
    disorders, outcome domains and comparison."""
    article_dir = Path(article_dir)
    references = read_references(article_dir / "references.txt")
    checks = {r: check_reference(r, source) for r in references if isinstance(r, Reference)}
    claims = load_claims(article_dir / "claims.yml", references, protocol)
    audits = audit_claims(claims, checks, included, syntheses, labels_of(protocol),
                          in_sentence(protocol.intervention_label))
    return ArticleAudit(checks, included, tuple(syntheses), audits)
