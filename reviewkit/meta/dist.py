"""Tail probabilities and quantiles of the normal, t, chi^2 and F distributions.

The same ``scipy.special`` functions ``scipy.stats`` calls, without its
per-call argument handling, which costs more than a whole model fit. Like R,
an infinite statistic gives p = 0 and a NaN one (or df 0) gives NaN.
"""

from __future__ import annotations

import numpy as np
from scipy import special


def norm_sf(x):
    return special.ndtr(-np.asarray(x, dtype=float))


def norm_isf(q: float) -> float:
    return float(-special.ndtri(q))


def t_sf(x, df):
    return special.stdtr(df, -np.asarray(x, dtype=float))


def t_isf(q: float, df: float) -> float:
    return float(-special.stdtrit(df, q))


def chi2_sf(x: float, df: float) -> float:
    return float(special.chdtrc(df, x))


def chi2_ppf(p: float, df: float) -> float:
    return float(2 * special.gammaincinv(df / 2, p))


def chi2_isf(q: float, df: float) -> float:
    return float(2 * special.gammainccinv(df / 2, q))


def f_sf(x: float, dfn: float, dfd: float) -> float:
    return float(special.fdtrc(dfn, dfd, x))
