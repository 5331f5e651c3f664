"""Meta-analysis computed as R's metafor (3.8) computes it, validated against metafor's outputs.

Models (``model``): ``pool`` (``rma.uni``: FE, DL, REML, PM, ML, HE, SJ; z or
HKSJ), ``confint_tau2`` (Q-profile), ``metareg`` (one moderator),
``back_transform``. Tables (``binary``): ``pool_mh`` (``rma.mh``: OR, RR, RD),
``pool_peto`` (``rma.peto``). Sensitivity (``sensitivity``): ``leave1out``,
``cumul``. Small-study effects (``bias``): ``regtest`` (Egger), ``ranktest``
(Begg), ``trimfill``. Subgroups (``subgroups``): ``subgroup_test`` (separate
and shared tau^2, each labelled), ``pool_by_disorder``. τ² estimators live in
``tau2``.

Where metafor iterates (REML, ML, PM, Q-profile bounds) reviewkit solves to
machine precision, and REML/ML take the global maximum of the likelihood, so
results equal metafor run to convergence; ``docs/meta-analysis.md`` lists every
definition and every difference.
"""

from .bias import RankTest, RegTest, TrimFill, ranktest, regtest, trimfill
from .binary import pool_mh, pool_peto
from .model import (
    BackTransformed,
    MetaRegression,
    PoolingError,
    PoolResult,
    Tau2CI,
    back_transform,
    cochran_q,
    confint_tau2,
    metareg,
    pool,
)
from .sensitivity import cumul, leave1out
from .subgroups import COMMON_LABEL, SEPARATE_LABEL, SubgroupAnalysis, SubgroupTest, pool_by_disorder, subgroup_test
from .tau2 import METHODS

__all__ = [
    "BackTransformed", "COMMON_LABEL", "METHODS", "MetaRegression", "PoolResult", "PoolingError", "RankTest",
    "RegTest", "SEPARATE_LABEL", "SubgroupAnalysis", "SubgroupTest", "Tau2CI", "TrimFill", "back_transform",
    "cochran_q", "confint_tau2", "cumul", "leave1out", "metareg", "pool", "pool_by_disorder", "pool_mh",
    "pool_peto", "ranktest", "regtest", "subgroup_test", "trimfill",
]
