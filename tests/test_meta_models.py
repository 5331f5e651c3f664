"""Behaviour of reviewkit.meta beyond the reference values: the four issue-16 fixes, edge cases
(k = 1, identical yi, undefined Mantel-Haenszel estimates), and the interfaces other modules use.
Numbers are checked against independent computations here (a dense likelihood scan, the
textbook formulas), not against stored outputs."""

import math

import numpy as np
import pandas as pd
import pytest

from reviewkit.meta import (
    COMMON_LABEL,
    SEPARATE_LABEL,
    PoolingError,
    back_transform,
    confint_tau2,
    cumul,
    leave1out,
    metareg,
    pool,
    pool_mh,
    pool_peto,
    ranktest,
    regtest,
    subgroup_test,
    trimfill,
)


def loglik(y, v, t, reml):
    """(Restricted) log-likelihood up to a constant at each tau^2 in t, computed directly."""
    w = 1 / (v[None, :] + np.atleast_1d(t)[:, None])
    mu = (w @ y) / w.sum(axis=1)
    ll = -0.5 * (np.log(1 / w).sum(axis=1) + (w * (y[None, :] - mu[:, None]) ** 2).sum(axis=1))
    return ll - 0.5 * np.log(w.sum(axis=1)) if reml else ll


# Found by a random search: the (restricted) score at tau^2 = 0 is negative, so the boundary is a
# local maximum, yet the likelihood is higher inside (issue 16, discrepancy 1).
BIMODAL = {
    "ML": ([0.0316, 4.8871, 6.6955], [0.02668, 1.53342, 14.5564]),
    "REML": ([-5.1945, -0.4671, -0.5716], [1.34314, 0.04521, 0.00719]),
}


@pytest.mark.parametrize("method", ["ML", "REML"])
def test_reml_and_ml_take_the_global_maximum_not_the_boundary(method):
    y, v = (np.array(x) for x in BIMODAL[method])
    reml = method == "REML"
    eps = 1e-9
    assert loglik(y, v, eps, reml) < loglik(y, v, 0.0, reml)  # decreasing at 0: a local maximum there
    grid = np.concatenate(([0.0], np.geomspace(1e-6, 1e3, 200_000)))
    best = grid[np.argmax(loglik(y, v, grid, reml))]
    res = pool(y, v, method)
    assert res.tau2 > 0 and res.i2 > 0
    assert loglik(y, v, res.tau2, reml) >= loglik(y, v, best, reml) - 1e-12
    assert res.tau2 == pytest.approx(best, rel=1e-3)


@pytest.mark.parametrize("method", ["FE", "DL", "REML", "PM", "ML", "HE", "SJ"])
def test_hksj_with_identical_yi_gives_se_zero_as_metafor(method):
    res = pool([0.3, 0.3, 0.3, 0.3], [0.1, 0.2, 0.05, 0.3], method, hksj=True)
    assert res.estimate == 0.3 and res.se == 0.0
    assert (res.ci_low, res.ci_high) == (0.3, 0.3) and math.isinf(res.z_or_t) and res.p == 0.0
    assert res.t_df == 3 and "identical yi" in res.notes[0]
    if method != "FE":
        assert res.tau2 == 0.0 and (res.pi_low, res.pi_high) == (0.3, 0.3)


@pytest.mark.parametrize("measure,events_t,events_c,why", [
    ("RR", [0, 0, 0], [2, 5, 1], "no event in any treatment arm"),
    ("RR", [3, 1, 4], [0, 0, 0], "no event in any control arm"),
    ("OR", [0, 0, 0], [2, 5, 1], "sum(a d / N) = 0"),
    ("OR", [3, 1, 4], [0, 0, 0], "sum(b c / N) = 0"),
])
def test_mantel_haenszel_undefined_is_nan_with_a_reason_not_an_error(measure, events_t, events_c, why):
    res = pool_mh(events_t, [20, 30, 25], events_c, [20, 30, 25], measure)
    assert math.isnan(res.estimate) and math.isnan(res.se) and math.isnan(res.p)
    assert not any(math.isinf(x) for x in (res.estimate, res.ci_low, res.ci_high))
    assert res.q is None and res.i2 is None and why in res.notes[0]
    assert res.k == 3


def test_mh_risk_ratio_keeps_tables_where_both_arms_have_only_events():
    a, n1, c, n2 = (np.array(x, float) for x in ([5, 12, 20], [20, 30, 20], [9, 14, 20], [21, 28, 20]))
    n = n1 + n2
    r, s = np.sum(a * n2 / n), np.sum(c * n1 / n)  # Greenland-Robins, every table
    var = np.sum(n1 * n2 * (a + c) / n**2 - a * c / n) / (r * s)
    res = pool_mh(a, n1, c, n2, "RR")
    assert res.estimate == pytest.approx(math.log(r / s), rel=1e-12)
    assert res.se == pytest.approx(math.sqrt(var), rel=1e-12)
    # The all-event table counts for the estimate but, as in rma.mh, not for Q (k.yi = 2).
    assert res.k == 3 and res.q_df == 1
    dropped = pool_mh(a[:2], n1[:2], c[:2], n2[:2], "RR")
    assert dropped.se > res.se


def test_mh_risk_difference_and_peto_against_their_formulas():
    a, n1, c, n2 = (np.array(x, float) for x in ([4, 0, 10, 7], [40, 25, 60, 50], [9, 3, 15, 7], [41, 24, 60, 48]))
    n = n1 + n2
    rd = np.sum((a * n2 - c * n1) / n) / np.sum(n1 * n2 / n)
    assert pool_mh(a, n1, c, n2, "RD").estimate == pytest.approx(rd, rel=1e-12)
    e = (a + c) * n1 / n
    v = (a + c) * (n - a - c) * n1 * n2 / (n**2 * (n - 1))
    peto = pool_peto(a, n1, c, n2)
    assert peto.estimate == pytest.approx(np.sum(a - e) / np.sum(v), rel=1e-12)
    assert peto.se == pytest.approx(1 / math.sqrt(np.sum(v)), rel=1e-12) and peto.method == "Peto"
    nothing = pool_peto([0, 0], [10, 12], [0, 0], [11, 9])
    assert math.isnan(nothing.estimate) and "no table has both outcomes" in nothing.notes[0]
    with pytest.raises(PoolingError, match="table 2: control arm has 13 events of 12"):
        pool_mh([1, 2], [10, 10], [1, 13], [10, 12], "OR")


def test_he_and_sj_estimators_follow_their_definitions():
    y, v = np.array([0.1, 0.9, -0.4, 1.6, 0.3]), np.array([0.05, 0.08, 0.04, 0.1, 0.06])
    assert pool(y, v, "HE").tau2 == pytest.approx(np.var(y, ddof=1) - v.mean(), rel=1e-12)
    t0 = np.var(y)  # var(yi) (k - 1) / k
    w = 1 / (v + t0)
    mu = np.sum(w * y) / w.sum()
    assert pool(y, v, "SJ").tau2 == pytest.approx(t0 * np.sum(w * (y - mu) ** 2) / 4, rel=1e-12)


def test_confint_tau2_bounds_are_where_generalised_q_meets_the_quantiles():
    from scipy import stats
    y, v = np.array([0.1, 0.9, -0.4, 1.6, 0.3]), np.array([0.05, 0.08, 0.04, 0.1, 0.06])
    ci = confint_tau2(y, v, "DL", level=0.9)
    for t, p in ((ci.tau2_low, 0.95), (ci.tau2_high, 0.05)):
        w = 1 / (v + t)
        mu = np.sum(w * y) / np.sum(w)
        assert np.sum(w * (y - mu) ** 2) == pytest.approx(stats.chi2.ppf(p, 4), rel=1e-9)
    assert ci.tau2 == pool(y, v, "DL").tau2 and ci.i2_low < ci.i2 < ci.i2_high and ci.level == 0.9
    with pytest.raises(PoolingError, match="no tau"):
        confint_tau2(y, v, "FE")


def test_leave1out_and_cumul_refit_the_model():
    y, v = np.array([0.1, 0.9, -0.4, 1.6, 0.3]), np.array([0.05, 0.08, 0.04, 0.1, 0.06])
    l1o = leave1out(y, v, "DL", labels=list("ABCDE"))
    assert list(l1o.index) == list("ABCDE") and l1o.index.name == "omitted"
    for i, label in enumerate("ABCDE"):
        res = pool(np.delete(y, i), np.delete(v, i), "DL")
        assert l1o.loc[label, "estimate"] == res.estimate and l1o.loc[label, "i2"] == res.i2
    two = leave1out(y[:2], v[:2], "REML")
    assert two.k.tolist() == [1, 1] and two.q.isna().all() and two.estimate.tolist() == [0.9, 0.1]
    cu = cumul(y, v, order=[2003, 2001, 2003, 1999, 2001], method="FE")
    assert cu.study.tolist() == [3, 1, 4, 0, 2]  # ties keep input order, as R's order()
    assert cu.k.tolist() == [1, 2, 3, 4, 5] and cu.estimate.iloc[-1] == pool(y, v, "FE").estimate
    assert cumul(y, v, order=[2003, 2001, 2003, 1999, 2001], decreasing=True).study.tolist() == [0, 2, 1, 4, 3]


def test_regtest_ranktest_and_trimfill_interfaces():
    rng = np.random.default_rng(7)
    v = rng.uniform(0.01, 0.4, 20)
    y = 0.2 + 1.5 * np.sqrt(v) + rng.normal(0, np.sqrt(v))  # small-study effect built in
    eg = regtest(y, v, "REML")
    assert eg.slope > 0 and eg.z == eg.slope / eg.slope_se and eg.df is None
    assert eg.limit_ci_low < eg.limit_estimate < eg.limit_ci_high
    lm = regtest(y, v, model="lm")
    assert lm.df == 18 and lm.model == "lm"
    rk = ranktest(y, v)
    assert -1 <= rk.tau <= 1 and 0 < rk.p <= 1 and rk.exact
    tf = trimfill(y, v, "REML")
    assert tf.side == "left" and tf.k0 == sum(tf.filled) and len(tf.yi) == 20 + tf.k0
    assert tf.model.k == 20 + tf.k0 and tf.estimate == tf.model.estimate
    with pytest.raises(PoolingError, match="Egger's test cannot be fitted"):
        regtest([0.1, 0.4, 0.2], [0.1, 0.1, 0.1])
    with pytest.raises(PoolingError, match="give side='left' or 'right'"):
        trimfill([0.1, 0.4, 0.2], [0.1, 0.1, 0.1])
    assert trimfill([0.1, 0.4, 0.2], [0.1, 0.1, 0.1], side="left").k0 >= 0


def test_metareg_numeric_and_categorical_and_both_subgroup_tests():
    y = np.array([0.1, 0.8, -0.3, 0.9, 1.8, 0.2, 0.5])
    v = np.array([0.04, 0.05, 0.03, 0.06, 0.05, 0.04, 0.05])
    groups = ["b", "b", "b", "a", "a", "a", "c"]
    mr = metareg(y, v, groups, "REML", name="g")
    assert mr.coef_names == ("intrcpt", "gb", "gc") and mr.qm_df == (2, None)
    hk = metareg(y, v, groups, "REML", hksj=True, levels=["b", "a", "c"], name="g")
    assert hk.coef_names == ("intrcpt", "ga", "gc") and hk.qm_df == (2, 4) and hk.t_df == 4
    num = metareg(y, v, [1, 2, 3, 4, 5, 6, 7], "DL")
    assert num.coef_names == ("intrcpt", "mods") and num.table().shape == (2, 6)
    st = subgroup_test(y, v, groups, "REML")
    assert st.levels == ("a", "b", "c") and st.subgroups["c"].k == 1
    assert st.separate_label == SEPARATE_LABEL and st.common_label == COMMON_LABEL
    assert st.df_between == 2 and st.moderator.qm == pytest.approx(mr.qm)
    assert st.q_between != pytest.approx(st.moderator.qm)  # separate vs shared tau^2
    fe = subgroup_test(y, v, groups, "FE")
    assert fe.q_between == pytest.approx(fe.moderator.qm, rel=1e-10)  # they coincide for FE
    ones = subgroup_test(y[:3], v[:3], ["a", "b", "c"], "REML")
    assert ones.moderator is None and "needs more than 3 studies" in ones.moderator_note
    with pytest.raises(PoolingError, match="collinear"):
        metareg(y, v, [2.0] * 7)


def test_back_transform_of_ratios_and_proportions():
    res = pool([0.2, 0.5, 0.1], [0.04, 0.05, 0.03], "REML")
    bt = back_transform(res, "OR")
    assert bt.estimate == pytest.approx(math.exp(res.estimate)) and bt.scale == "ratio"
    plo = back_transform(res, "PLO")
    assert plo.ci_low == pytest.approx(1 / (1 + math.exp(-res.ci_low))) and plo.scale == "proportion"
    assert back_transform(pool([0.2, 0.5], [0.1, 0.1], "FE"), "PR").pi_low is None


def test_pool_by_disorder_reports_both_subgroup_tests():
    from reviewkit.meta import pool_by_disorder
    e = pd.DataFrame({"disorder": ["aud", "aud", "cocaine", "cocaine"], "yi": [0.2, 0.6, 1.5, 1.1],
                      "vi": [0.1, 0.2, 0.3, 0.2], "yi_measure": "OR"})
    sub = pool_by_disorder(e, disorders=("aud", "oud", "cocaine"))
    assert sub.test.levels == ("aud", "cocaine") and sub.q_between == sub.test.q_between
    assert sub.test.moderator is not None and sub.test.moderator.qm_df == (1, None)
