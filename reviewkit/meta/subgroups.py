"""Subgroup analyses and the two tests for subgroup differences, each labelled.

* ``subgroup_test(yi, vi, groups, ...)`` fits each subgroup with its own tau^2
  and compares the subgroup estimates (``Q_between``: a common-effect Q across
  them, RevMan's and R meta's default; metafor's tutorial ``rma(est, sei=se,
  method="FE")``), and fits one meta-regression on the subgroup factor with
  one tau^2 shared by all subgroups (``QM``, metafor ``rma(yi, vi, mods = ~
  factor(group))``). The two agree only for common-effect models.
* ``pool_by_disorder(effects_df, ...)`` does this per disorder for the
  forest plot, keeping disorders without a study as empty subgroups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from . import dist
from .model import (
    MetaRegression,
    PoolingError,
    PoolResult,
    as_arrays,
    check_method,
    cochran_q,
    fit_moderators,
    moderator_matrix,
    pool_arrays,
)

SEPARATE_LABEL = "separate tau² per subgroup: Q between the subgroup estimates"
COMMON_LABEL = "one tau² shared by the subgroups: moderator test (QM) of a meta-regression on subgroup"


@dataclass(frozen=True)
class SubgroupTest:
    """Per-subgroup models and both tests for subgroup differences.

    ``q_between`` (df ``df_between`` = subgroups - 1): common-effect Q across
    the subgroup estimates, each subgroup with its own tau^2 (``SEPARATE_LABEL``);
    None with ``between_note`` when fewer than two subgroups, or a subgroup has
    a standard error of 0. ``moderator``: the meta-regression on the subgroup
    factor with one shared tau^2 (``COMMON_LABEL``; its ``qm``, ``qm_df``,
    ``qm_p``), None with ``moderator_note`` when it cannot be fitted (e.g.
    every subgroup has one study, so no residual df).
    """

    levels: tuple[str, ...]
    subgroups: Mapping[str, PoolResult]
    q_between: float | None
    df_between: int | None
    p_between: float | None
    moderator: MetaRegression | None
    method: str
    hksj: bool
    between_note: str | None = None
    moderator_note: str | None = None
    separate_label: str = SEPARATE_LABEL
    common_label: str = COMMON_LABEL


def _between(fitted: Sequence[PoolResult]) -> tuple[float | None, int | None, float | None, str | None]:
    if len(fitted) < 2:
        return None, None, None, "fewer than two subgroups with studies: no test for subgroup differences"
    est = np.array([r.estimate for r in fitted])
    var = np.array([r.se for r in fitted]) ** 2
    if not np.all(var > 0):
        return None, None, None, "a subgroup estimate has standard error 0 (identical yi under HKSJ): no Q between"
    q = cochran_q(est, var)
    df = len(fitted) - 1
    return q, df, float(dist.chi2_sf(q, df)), None


def subgroup_test(yi, vi, groups, method: str = "REML", hksj: bool = False, *,
                  levels: Sequence | None = None) -> SubgroupTest:
    """Pool each subgroup and test for subgroup differences both ways.

    Parameters
    ----------
    yi, vi : array-like
        Effects and sampling variances.
    groups : array-like
        The subgroup of each study (any labels; compared as text).
    method, hksj
        As in ``pool``, for the subgroup models and the meta-regression.
    levels : sequence, optional
        Subgroup order (the first is the meta-regression's reference);
        default sorted, as R's ``factor``.

    Returns
    -------
    SubgroupTest
    """
    check_method(method)
    y, v = as_arrays(yi, vi)
    labels = pd.Series(list(groups)).astype(str)
    if len(labels) != len(y):
        raise PoolingError(f"groups has {len(labels)} values for {len(y)} studies")
    order = [str(lv) for lv in levels] if levels is not None else sorted(set(labels))
    present = [lv for lv in order if (labels == lv).any()]
    missing = sorted(set(labels) - set(order))
    if missing:
        raise PoolingError(f"groups {', '.join(missing)} not among the levels {', '.join(order)}")
    subgroups = {lv: pool_arrays(y[(labels == lv).to_numpy()], v[(labels == lv).to_numpy()], method, hksj)
                 for lv in present}
    q, df, p, between_note = _between(list(subgroups.values()))
    moderator, moderator_note = None, None
    if len(present) >= 2:
        try:
            X, names = moderator_matrix(labels, present, "group")
            moderator = fit_moderators(y, v, X, names, method, hksj)
        except PoolingError as e:
            moderator_note = f"no meta-regression on subgroup: {e}"
    else:
        moderator_note = "fewer than two subgroups with studies: no meta-regression on subgroup"
    return SubgroupTest(levels=tuple(present), subgroups=subgroups, q_between=q, df_between=df, p_between=p,
                        moderator=moderator, method=method, hksj=hksj, between_note=between_note,
                        moderator_note=moderator_note)


@dataclass(frozen=True)
class SubgroupAnalysis:
    """Per-disorder pooling, the overall model, and the tests for subgroup differences.

    ``subgroups[d]`` is None where disorder d has no study in the analysis (the
    forest plot shows "no comparative study"). ``studies`` is the effects frame
    used (rows in disorder order) with ``weight`` added: percent weight within
    its disorder's model. ``q_between`` (``df_between``, ``p_between``) is the
    test with a separate tau^2 per disorder (``test.separate_label``);
    ``test.moderator`` the one with a shared tau^2 (``test.common_label``).
    Both are None when fewer than two disorders have data.
    """

    measure: str
    method: str
    hksj: bool
    subgroups: Mapping[str, PoolResult | None]
    overall: PoolResult
    q_between: float | None
    df_between: int | None
    p_between: float | None
    studies: pd.DataFrame = field(compare=False, repr=False)
    test: SubgroupTest | None = field(default=None, compare=False, repr=False)

    def table(self) -> pd.DataFrame:
        """One row per disorder plus 'overall': k and every PoolResult field (NaN where undefined)."""
        rows = []
        for name, res in [*self.subgroups.items(), ("overall", self.overall)]:
            row = {"subgroup": name, "k": 0}
            if res is not None:
                row.update(res.as_dict())
            rows.append(row)
        return pd.DataFrame(rows).set_index("subgroup")


def _study_weights(v: np.ndarray, res: PoolResult) -> np.ndarray:
    w = 1 / (v + (res.tau2 or 0.0))
    return 100 * w / w.sum()


def pool_by_disorder(
    effects_df: pd.DataFrame,
    method: str = "REML",
    hksj: bool = False,
    disorders: Sequence[str] | None = None,
) -> SubgroupAnalysis:
    """Pool ``effects_df`` (from ``effects.effect_sizes``) by its ``disorder`` column.

    Needs columns ``disorder, yi, vi, yi_measure``; every row is pooled, so
    select the rows of one analysis first (e.g. one ``reviewkit.synthesis``
    key's rows), which also guarantees each set of participants enters once. ``disorders``
    (e.g. the protocol's search keys) fixes the subgroups and their order, so a
    disorder without a study still has its (empty) subgroup; by default the
    subgroups are the disorders in ``effects_df``, in order of appearance.
    """
    for col in ("disorder", "yi", "vi", "yi_measure"):
        if col not in effects_df.columns:
            raise PoolingError(f"effects frame has no column {col!r}; compute it with effects.effect_sizes")
    if effects_df.empty:
        raise PoolingError("no studies to pool (the effects frame is empty)")
    measures = sorted(set(effects_df["yi_measure"]))
    if len(measures) != 1:
        raise PoolingError(f"effects are on different scales ({', '.join(measures)}); pool one measure at a time")
    if disorders is None:
        disorders = list(dict.fromkeys(effects_df["disorder"]))
    unknown = sorted(set(effects_df["disorder"]) - set(disorders))
    if unknown:
        raise PoolingError(f"disorder(s) {', '.join(map(str, unknown))} not among {', '.join(disorders)}")

    parts = [effects_df[effects_df["disorder"] == d] for d in disorders]
    studies = pd.concat([p for p in parts if not p.empty])
    test = subgroup_test(studies["yi"], studies["vi"], studies["disorder"], method, hksj, levels=disorders)
    subgroups: dict[str, PoolResult | None] = {d: test.subgroups.get(str(d)) for d in disorders}
    studies = pd.concat([
        rows.assign(weight=_study_weights(rows["vi"].to_numpy(float), fitted))
        for d, rows in zip(disorders, parts) if not rows.empty and (fitted := subgroups[d]) is not None
    ])
    overall = pool_arrays(*as_arrays(studies["yi"], studies["vi"]), method, hksj)
    return SubgroupAnalysis(
        measure=measures[0], method=method, hksj=hksj, subgroups=subgroups, overall=overall,
        q_between=test.q_between, df_between=test.df_between, p_between=test.p_between, studies=studies, test=test,
    )
