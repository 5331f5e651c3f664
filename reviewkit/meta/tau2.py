"""The between-study variance tau^2 of ``rma.uni``'s model y = X b + u + e.

``Design`` holds yi, vi and the model matrix X (intercept first); ``estimate``
returns tau^2 and its standard error for FE, DL, HE, SJ, PM, ML or REML as
metafor 3.8 defines them (estimators truncated at 0; SJ is the two-step
estimator started at var(yi) (k - 1) / k; ``se.tau2`` by metafor's formulas).

Where metafor iterates we solve exactly:

* PM and the Q-profile bounds (``q_root``) are roots of the generalised Q,
  which decreases in tau^2: Newton's method on 1/Q for intercept-only models,
  else (or if Newton strays) Brent's method on a bracket from the OLS
  residuals, both to machine precision (metafor: uniroot with tol 1.2e-4 by
  default).
* ML and REML take the global maximum of the (restricted) likelihood over
  tau^2 >= 0. Fisher scoring (metafor) and a check of the score at 0 (earlier
  reviewkit) can both stop at a local maximum; here every stationary point is
  bracketed on a geometric grid of tau^2 up to a bound above which the score
  is provably negative, each is refined with Brent's method, and the boundary
  tau^2 = 0 competes with them on the likelihood.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import optimize

METHODS = ("FE", "DL", "REML", "PM", "ML", "HE", "SJ")

# Grid points per decade of tau^2 when bracketing likelihood maxima: each term
# of the likelihood changes on the scale of vi + tau^2 (a factor of ~2 in tau^2),
# far wider than the grid's step of 10%.
GRID_PER_DECADE = 24


class Design:
    """yi, vi and X (intercept first), centred for accuracy, with the products the estimators share.

    yi are centred on the first study, which keeps the residuals exact when the
    yi agree to many digits (metafor's test_misc_calc_q.r, Planck-constant
    measurements), and the moderator columns on their means, which keeps X'WX
    well conditioned (a year, say, otherwise costs ~5 digits). Residuals,
    projections and tau^2 do not change; ``coefficients`` maps the fitted
    coefficients and their covariance back to the original columns.
    """

    __slots__ = ("y", "v", "X", "k", "p", "shift", "means")

    def __init__(self, y: np.ndarray, v: np.ndarray, X: np.ndarray | None = None):
        self.shift = float(y[0])
        self.y = y - self.shift
        self.v = v
        if X is None:
            self.X, self.means = np.ones((len(y), 1)), np.zeros(0)
        else:
            self.means = X[:, 1:].mean(axis=0)
            self.X = np.column_stack([X[:, :1], X[:, 1:] - self.means])
        self.k, self.p = self.X.shape

    def coefficients(self, beta: np.ndarray, vb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Coefficients and covariance on the original yi and columns from those of the centred fit."""
        if self.p == 1:
            return beta + self.shift, vb
        t = np.eye(self.p)
        t[0, 1:] = -self.means
        beta = t @ beta
        beta[0] += self.shift
        return beta, t @ vb @ t.T

    def quad(self, d: np.ndarray) -> np.ndarray:
        """X' diag(d) X."""
        return (self.X * d[:, None]).T @ self.X

    def wls(self, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Weighted least squares: coefficients (centred scale), (X'WX)^-1, residuals."""
        if self.p == 1:
            sw = float(w.sum())
            b = np.array([float(np.dot(w, self.y)) / sw])
            return b, np.array([[1 / sw]]), self.y - b[0]
        inv = np.linalg.inv(self.quad(w))
        b = inv @ (self.X.T @ (w * self.y))
        return b, inv, self.y - self.X @ b

    def q(self, tau2: float) -> float:
        """Generalised Q: sum w (y - X b)^2 with w = 1 / (v + tau2); Cochran's Q at tau2 = 0."""
        w = 1 / (self.v + tau2)
        if self.p == 1:  # the root finders' hot path
            r = self.y - float(np.dot(w, self.y)) / float(w.sum())
        else:
            r = self.wls(w)[2]
        return max(0.0, float(np.dot(w, r * r)))

    def ols(self) -> tuple[float, np.ndarray]:
        """(RSS, (X'X)^-1) of the unweighted least-squares fit."""
        if self.p == 1:
            r = self.y - self.y.mean()
            return float(np.dot(r, r)), np.array([[1 / self.k]])
        inv = np.linalg.inv(self.X.T @ self.X)
        r = self.y - self.X @ (inv @ (self.X.T @ self.y))
        return float(np.dot(r, r)), inv


def _traces(d: Design, w: np.ndarray, inv: np.ndarray) -> tuple[float, float]:
    """tr(P) and tr(PP) for P = W - W X (X'WX)^-1 X' W, without forming the k x k matrix."""
    a2 = inv @ d.quad(w * w)
    tr_p = float(w.sum() - np.trace(a2))
    tr_pp = float(np.dot(w, w) - 2 * np.trace(inv @ d.quad(w**3)) + np.trace(a2 @ a2))
    return tr_p, tr_pp


def _se(value: float) -> float:
    return math.sqrt(value) if value >= 0 else math.nan


def tau2_dl(d: Design) -> tuple[float, float]:
    """DerSimonian-Laird: (Q - (k - p)) / tr(P), W = diag(1 / vi)."""
    w = 1 / d.v
    _, inv, r = d.wls(w)
    tr_p, tr_pp = _traces(d, w, inv)
    df = d.k - d.p
    tau2 = max(0.0, (float(np.dot(w, r * r)) - df) / tr_p)
    return tau2, _se((2 * df + 4 * tau2 * tr_p + 2 * tau2**2 * tr_pp) / tr_p**2)


def tau2_he(d: Design) -> tuple[float, float]:
    """Hedges (HE): (RSS_OLS - tr(P V)) / (k - p), P the OLS residual projector."""
    rss, inv = d.ols()
    cv = inv @ d.quad(d.v)
    tr_pv = float(d.v.sum() - np.trace(cv))
    tr_pvpv = float(np.dot(d.v, d.v) - 2 * np.trace(inv @ d.quad(d.v**2)) + np.trace(cv @ cv))
    df = d.k - d.p
    tau2 = max(0.0, (rss - tr_pv) / df)
    return tau2, _se(2 * tr_pvpv + 4 * tau2 * tr_pv + 2 * tau2**2 * df) / df


def tau2_sj(d: Design) -> tuple[float, float]:
    """Sidik-Jonkman two-step: tau0 = var(yi) (k - 1) / k, then tau0 * Q(tau0) / (k - p)."""
    tau0 = float(np.mean((d.y - d.y.mean()) ** 2))
    w = 1 / (d.v + tau0)
    _, inv, r = d.wls(w)
    df = d.k - d.p
    tau2 = tau0 * float(np.dot(w, r * r)) / df
    _, tr_pp = _traces(d, w, inv)
    a2v = inv @ d.quad(w * w * d.v)
    tr_pvpv = float(np.dot(w * w, d.v**2) - 2 * np.trace(inv @ d.quad(w**3 * d.v**2)) + np.trace(a2v @ a2v))
    tr_ppv = float(np.dot(w * w, d.v) - 2 * np.trace(inv @ d.quad(w**3 * d.v))
                   + np.trace(inv @ d.quad(w * w) @ a2v))
    return tau2, tau0 / df * _se(2 * tr_pvpv + 4 * tau2 * tr_ppv + 2 * tau2**2 * tr_pp)


def q_root(d: Design, target: float) -> float:
    """The tau^2 where the generalised Q equals ``target`` (> 0); 0 if Q(0) is below it.

    Q(tau2) decreases in tau2 and Q(tau2) <= RSS_OLS / (min(vi) + tau2), so the
    root lies below RSS_OLS / target. Intercept-only models first try Newton's
    method on 1/Q (nearly linear in tau2); Brent's method on the bracket is the
    general (and fallback) solver.
    """
    q0 = d.q(0.0)
    if q0 < target:
        return 0.0
    if d.p == 1:
        root = _newton_root(d, target, q0)
        if root is not None:
            return root
    hi = max(d.ols()[0] / target, float(d.v.min()))
    while d.q(hi) > target:  # only if rounding defeats the bound
        hi *= 2
    return float(optimize.brentq(lambda t: d.q(t) - target, 0.0, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps,
                                 maxiter=2000))


def _newton_root(d: Design, target: float, q0: float) -> float | None:
    """Newton's method on 1/Q(t) - 1/target (d(1/Q)/dt = sum (w r)^2 / Q^2) for an intercept-only model.

    Starts where Q(t) ~ Q(0) vt / (vt + t) meets the target (exact when all vi
    are equal), keeps the iterates inside the bracket it learns, and gives up
    (None) rather than leave it or stall.
    """
    w0 = 1 / d.v
    vt = (d.k - 1) * float(w0.sum()) / (float(w0.sum()) ** 2 - float(np.dot(w0, w0)))
    t, lo, hi = max(vt * (q0 / target - 1), 0.0), 0.0, math.inf
    for _ in range(50):
        w = 1 / (d.v + t)
        r = d.y - float(np.dot(w, d.y)) / float(w.sum())
        q = float(np.dot(w, r * r))
        if q >= target:
            lo = t
        else:
            hi = t
        if q <= 0:
            return None
        step = (1 / target - 1 / q) * q * q / float(np.dot(w * w, r * r))
        if abs(step) <= 4 * np.finfo(float).eps * t:
            return t
        t += step
        if not lo <= t <= hi:
            return None
    return None


def tau2_pm(d: Design) -> tuple[float, float]:
    """Paule-Mandel: generalised Q(tau2) = k - p."""
    tau2 = q_root(d, d.k - d.p)
    w = 1 / (d.v + tau2)
    return tau2, math.sqrt(2 * d.k**2 / (d.k - d.p)) / float(w.sum())


def _profile(d: Design, ts: np.ndarray, reml: bool) -> tuple[np.ndarray, np.ndarray]:
    """Score (x 2) and log-likelihood (up to a constant) at each tau^2 in ``ts``.

    ML score: sum (w r)^2 - sum w; REML: sum (w r)^2 - tr(P); the REML
    log-likelihood adds -log det(X'WX) / 2.
    """
    W = 1 / (d.v[None, :] + ts[:, None])
    if d.p == 1:
        sw = W.sum(axis=1)
        R = d.y[None, :] - ((W @ d.y) / sw)[:, None]
        logdet = np.log(sw)
        extra = (W * W).sum(axis=1) / sw
    else:
        xtwx = np.einsum("gk,ki,kj->gij", W, d.X, d.X)
        inv = np.linalg.inv(xtwx)
        b = np.einsum("gij,gj->gi", inv, np.einsum("gk,ki,k->gi", W, d.X, d.y))
        R = d.y[None, :] - b @ d.X.T
        logdet = np.linalg.slogdet(xtwx)[1]
        extra = np.einsum("gij,gji->g", inv, np.einsum("gk,ki,kj->gij", W * W, d.X, d.X))
    WR = W * R
    trace = W.sum(axis=1) - (extra if reml else 0.0)
    score = (WR * WR).sum(axis=1) - trace
    loglik = -0.5 * (np.log(d.v[None, :] + ts[:, None]).sum(axis=1) + (WR * R).sum(axis=1)
                     + (logdet if reml else 0.0))
    return score, loglik


def _score_intercept(d: Design, t: float, reml: bool) -> float:
    """``_profile``'s score at one tau^2 for an intercept-only model (the root finder's hot path)."""
    w = 1 / (d.v + t)
    sw = float(w.sum())
    wr = w * (d.y - float(np.dot(w, d.y)) / sw)
    return float(np.dot(wr, wr)) - (sw - float(np.dot(w, w)) / sw if reml else sw)


def _score_bound(d: Design, reml: bool) -> float:
    """A tau^2 above which the (restricted) score is negative.

    With t >= k max(vi): sum (w r)^2 <= w_max^2 RSS_OLS and tr(P) >= sum w - p w_max
    (sum w for ML), so the score is negative once (min(vi) + t) c > RSS_OLS with
    c = k^2 / (k + 1) - p (REML) or k^2 / (k + 1) (ML), which is > 0 whenever k > p.
    """
    c = d.k**2 / (d.k + 1) - (d.p if reml else 0)
    return 2 * max(d.k * float(d.v.max()), d.ols()[0] / c)


def tau2_likelihood(d: Design, reml: bool) -> tuple[float, float]:
    """ML or REML tau^2 at the global maximum over tau^2 >= 0, and its se (metafor's formulas)."""
    hi = _score_bound(d, reml)
    lo = 1e-2 * min(float(d.v.min()), hi)
    n = int(math.ceil(GRID_PER_DECADE * math.log10(hi / lo))) + 1
    # Far below min(vi) every term is nearly linear in tau^2: three points cover that range.
    ts = np.concatenate(([0.0, 1e-4 * lo, 1e-2 * lo], np.exp(np.linspace(math.log(lo), math.log(hi), n))))
    score, loglik = _profile(d, ts, reml)
    candidates = [(float(loglik[0]), 0.0)] if score[0] <= 0 else []
    f = (lambda t: _score_intercept(d, t, reml)) if d.p == 1 else (lambda t: float(_profile(d, np.array([t]), reml)[0][0]))
    for i in np.flatnonzero((score[:-1] > 0) & (score[1:] <= 0)):
        root = float(optimize.brentq(f, ts[i], ts[i + 1], xtol=1e-16 * float(d.v.min()),
                                     rtol=4 * np.finfo(float).eps, maxiter=500))
        candidates.append((float(_profile(d, np.array([root]), reml)[1][0]), root))
    tau2 = max(candidates)[1]
    w = 1 / (d.v + tau2)
    if not reml:
        return tau2, math.sqrt(2 / float(np.dot(w, w)))
    _, inv, _ = d.wls(w)
    return tau2, math.sqrt(2 / _traces(d, w, inv)[1])


def estimate(d: Design, method: str) -> tuple[float, float]:
    """(tau^2, se of tau^2) for ``method``; FE gives (0, nan). Needs k > p."""
    if method == "FE":
        return 0.0, math.nan
    if method == "DL":
        return tau2_dl(d)
    if method == "HE":
        return tau2_he(d)
    if method == "SJ":
        return tau2_sj(d)
    if method == "PM":
        return tau2_pm(d)
    return tau2_likelihood(d, reml=(method == "REML"))
