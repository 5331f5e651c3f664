"""Sensitivity analyses that refit ``pool``: leave-one-out (``leave1out``) and cumulative (``cumul``).

Both return a DataFrame with one row per refit and the columns of metafor's
output: ``estimate, se, z_or_t, p, ci_low, ci_high, q, q_p, tau2, i2, h2`` plus
``k``. A refit of a single study has NaN heterogeneity (metafor prints Q = 0,
I^2 = 0 there; a single study has none to measure), and a common-effect model
has NaN ``tau2``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .model import PoolingError, PoolResult, as_arrays, check_method, pool_arrays

COLUMNS = ("estimate", "se", "z_or_t", "p", "ci_low", "ci_high", "q", "q_p", "tau2", "i2", "h2", "k")


def _row(res: PoolResult) -> dict:
    return {c: np.nan if getattr(res, c) is None else getattr(res, c) for c in COLUMNS}


def _labels(labels: Sequence | None, k: int) -> list:
    if labels is None:
        return list(range(k))
    if len(labels) != k:
        raise PoolingError(f"labels has {len(labels)} entries for {k} studies")
    return list(labels)


def leave1out(yi, vi, method: str = "REML", hksj: bool = False, *, labels: Sequence | None = None) -> pd.DataFrame:
    """Refit the model k times, each time without one study (metafor ``leave1out``).

    Parameters
    ----------
    yi, vi : array-like
        Effects and sampling variances, k >= 2.
    method, hksj
        As in ``pool``.
    labels : sequence, optional
        Study labels for the index; default 0 .. k-1.

    Returns
    -------
    pandas.DataFrame
        One row per omitted study, in input order, indexed by ``labels`` (index
        name ``omitted``), columns ``estimate, se, z_or_t, p, ci_low, ci_high,
        q, q_p, tau2, i2, h2, k``.
    """
    check_method(method)
    y, v = as_arrays(yi, vi)
    k = len(y)
    if k < 2:
        raise PoolingError("leave-one-out needs at least 2 studies")
    keep = ~np.eye(k, dtype=bool)
    rows = [_row(pool_arrays(y[keep[i]], v[keep[i]], method, hksj, with_ci=False)) for i in range(k)]
    return pd.DataFrame(rows, columns=list(COLUMNS), index=pd.Index(_labels(labels, k), name="omitted"))


def cumul(yi, vi, order=None, method: str = "REML", hksj: bool = False, *, decreasing: bool = False,
          labels: Sequence | None = None) -> pd.DataFrame:
    """Cumulative meta-analysis: add the studies one at a time in the order of ``order`` (metafor ``cumul``).

    Parameters
    ----------
    yi, vi : array-like
        Effects and sampling variances.
    order : array-like, optional
        One sort key per study (e.g. publication year); ties keep input order,
        as R's ``order()``. Default: input order.
    method, hksj
        As in ``pool``.
    decreasing : bool
        Sort from the largest key.
    labels : sequence, optional
        Study labels for the index; default 0 .. k-1.

    Returns
    -------
    pandas.DataFrame
        Row j is the model of the first j + 1 studies in that order, indexed by
        the label of the study added (index name ``added``), with column
        ``study`` (its 0-based input position) and the columns of ``leave1out``.
    """
    check_method(method)
    y, v = as_arrays(yi, vi)
    k = len(y)
    names = _labels(labels, k)
    if order is None:
        idx = np.arange(k)
    else:
        keys = pd.Series(list(order))
        if len(keys) != k:
            raise PoolingError(f"order has {len(keys)} entries for {k} studies")
        if keys.isna().any():
            raise PoolingError("order has missing values")
        idx = keys.sort_values(kind="stable", ascending=not decreasing).index.to_numpy()
    rows = [{"study": int(idx[j]), **_row(pool_arrays(y[idx[:j + 1]], v[idx[:j + 1]], method, hksj, with_ci=False))}
            for j in range(k)]
    return pd.DataFrame(rows, columns=["study", *COLUMNS], index=pd.Index([names[i] for i in idx], name="added"))
