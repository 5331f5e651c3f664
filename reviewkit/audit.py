"""The article audit end to end: references checked, claims weighed against this review's evidence.

One function for the ``reviewkit audit`` command and the report notebooks, so
both show the same verdicts from the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .citations import CandidateSource, CitationCheck, check_reference
from .claims import ClaimAudit, audit_claims, audit_table, load_claims
from .evidence import DEFAULT_POOL_GROUP, included_from_screening, pool_analysis, pooled_effects
from .extraction import load_extraction
from .meta import SubgroupAnalysis
from .protocol import load_protocol
from .references import Reference, read_references
from .screening_state import ScreeningState, build_state

DATA = Path(__file__).resolve().parent.parent / "data"
ARTICLE_DIR = DATA / "article"
CORPUS_RECORDS = DATA / "corpus" / "records.jsonl"


@dataclass(frozen=True)
class ArticleAudit:
    """The claims audit with what it rests on: the screening state, the pooled model (None when no
    included study is in the analysis), the reference checks (Reference -> CitationCheck), the
    included reports and one ClaimAudit per claim."""

    state: ScreeningState
    model: SubgroupAnalysis | None
    checks: dict[Reference, CitationCheck]
    included: pd.DataFrame
    claims: list[ClaimAudit]

    @property
    def table(self) -> pd.DataFrame:
        return audit_table(self.claims)


def audit_article(snapshot_dir: str | Path, screening_dir: str | Path, source: CandidateSource, *,
                  analysis: str = DEFAULT_POOL_GROUP, method: str = "REML", hksj: bool = False,
                  article_dir: Path = ARTICLE_DIR, corpus_records: Path = CORPUS_RECORDS) -> ArticleAudit:
    """Check the article's references with ``source``, then weigh each claim against the studies
    included at full text in ``screening_dir`` and the pooled ``analysis`` of their extraction rows."""
    protocol = load_protocol()
    references = read_references(article_dir / "references.txt")
    checks = {r: check_reference(r, source) for r in references if isinstance(r, Reference)}
    extraction = load_extraction(protocol=protocol)
    state = build_state(snapshot_dir, screening_dir, protocol)
    included = included_from_screening(state, corpus_records, extraction)
    model = pool_analysis(extraction, analysis, method, hksj, included=included, disorders=tuple(protocol.searches))
    claims = load_claims(article_dir / "claims.yml", references, protocol.labels)
    audits = audit_claims(claims, checks, included, pooled_effects(model, label=analysis), protocol.labels)
    return ArticleAudit(state, model, checks, included, audits)
