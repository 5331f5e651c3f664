"""funnel.funnel and funnel.leave1out_plot draw on the Axes they are given."""

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Polygon  # noqa: E402

from reviewkit.funnel import funnel, leave1out_plot  # noqa: E402
from reviewkit.meta import leave1out, pool, trimfill  # noqa: E402

Y = np.array([0.9, 0.2, 0.5, 1.4, 0.1, 0.7, 1.1, 0.35])
V = np.array([0.20, 0.02, 0.05, 0.30, 0.01, 0.08, 0.15, 0.04])


def test_funnel_draws_studies_reference_line_and_pseudo_confidence_region():
    fig, ax = plt.subplots()
    res = pool(Y, V, "FE")
    assert funnel(ax, Y, V, res, measure="OR") is ax
    region = [p for p in ax.patches if isinstance(p, Polygon)][0]
    top = 1.05 * math.sqrt(V.max())
    z = 1.959963984540054
    np.testing.assert_allclose(region.get_xy()[:3], [[res.estimate, 0], [res.estimate - z * top, top],
                                                     [res.estimate + z * top, top]])
    points = ax.collections[0].get_offsets()
    np.testing.assert_allclose(points, np.column_stack([Y, np.sqrt(V)]))
    assert ax.get_ylim() == (top, 0.0)  # se 0 at the top
    assert ax.lines[0].get_xdata()[0] == res.estimate
    assert ax.get_xlabel() == "Odds ratio (log scale)" and "1" in [t.get_text() for t in ax.get_xticklabels()]
    plt.close(fig)


def test_funnel_shows_trim_and_fill_studies_as_open_circles_around_the_filled_estimate():
    tf = trimfill(Y, V, "FE")
    assert tf.k0 > 0  # these data lack small studies on the left
    fig, ax = plt.subplots()
    funnel(ax, Y, V, pool(Y, V, "FE"), filled=tf, level=0.9)
    observed, imputed = ax.collections
    assert len(imputed.get_offsets()) == tf.k0
    assert tuple(imputed.get_facecolors()[0]) == (1.0, 1.0, 1.0, 1.0)
    assert ax.lines[0].get_xdata()[0] == tf.estimate
    assert "k0 = " in ax.get_legend().get_texts()[-1].get_text()
    plt.close(fig)


def test_leave1out_plot_has_one_row_per_omitted_study_against_the_full_model():
    res = pool(Y, V, "REML")
    table = leave1out(Y, V, "REML", labels=[f"S{i}" for i in range(1, 9)])
    fig, ax = plt.subplots()
    assert leave1out_plot(ax, table, res, measure="SMD") is ax
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"without S{i}" for i in range(1, 9)]
    np.testing.assert_allclose(ax.collections[-1].get_offsets()[:, 0], table.estimate)
    assert ax.lines[0].get_xdata()[0] == res.estimate
    assert sum("I\u00b2" in t.get_text() for t in ax.texts) == 8
    assert ax.get_xlabel() == "Standardised mean difference"
    plt.close(fig)


def test_plots_save_to_png(tmp_path):
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    funnel(a, Y, V, pool(Y, V))
    leave1out_plot(b, leave1out(Y, V), pool(Y, V))
    fig.savefig(tmp_path / "diagnostics.png")
    assert (tmp_path / "diagnostics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plt.close(fig)


def test_ratio_axes_get_round_ratio_ticks_even_on_a_narrow_range():
    from reviewkit.funnel import _ratio_ticks
    assert _ratio_ticks(math.log(0.09), math.log(2.5)) == [0.1, 0.2, 0.5, 1, 2]
    narrow = _ratio_ticks(math.log(0.35), math.log(0.72))
    assert len(narrow) >= 3 and all(0.35 <= t <= 0.72 for t in narrow)
