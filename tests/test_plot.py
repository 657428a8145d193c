"""fastinfluence.plot: each plot is rendered to PNG, and what it draws is checked against the input."""

from __future__ import annotations

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")  # no display; set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402

from fastinfluence import plot as fiplot  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def save_png(ax, path):
    ax.figure.savefig(path, dpi=60)
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 5_000  # more than an empty canvas
    return data


def test_plot_loo_title_holds_the_pearson_correlation(tmp_path):
    rng = np.random.default_rng(0)
    actual = rng.normal(size=80)
    predicted = actual + 0.3 * rng.normal(size=80)
    ax = fiplot.plot_loo(predicted, actual)
    r = np.corrcoef(predicted, actual)[0, 1]  # independent reference
    assert f"Pearson r = {r:.3f}" in ax.get_title()
    points = ax.collections[0].get_offsets()
    np.testing.assert_array_equal(points[:, 0], actual)  # x: actual, y: predicted
    np.testing.assert_array_equal(points[:, 1], predicted)
    save_png(ax, tmp_path / "loo.png")


def test_plot_loo_draws_on_the_given_axes_and_skips_nan(tmp_path):
    _fig, (left, right) = plt.subplots(1, 2)
    actual = np.array([0.1, 0.2, np.nan, 0.4, 0.5])
    predicted = np.array([0.1, 0.25, 0.3, 0.35, 0.55])
    ax = fiplot.plot_loo(predicted, actual, ax=right)
    assert ax is right
    assert not left.collections  # nothing drawn elsewhere
    finite = np.isfinite(actual)
    r = np.corrcoef(predicted[finite], actual[finite])[0, 1]
    assert f"{r:.3f}" in ax.get_title()
    save_png(ax, tmp_path / "loo_nan.png")


def test_plot_loo_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        fiplot.plot_loo(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="one-dimensional"):
        fiplot.plot_loo(np.zeros((3, 2)), np.zeros((3, 2)))


def test_plot_top_influences_shows_the_k_most_helpful_and_harmful(tmp_path):
    rng = np.random.default_rng(1)
    scores = rng.normal(size=50)
    ax = fiplot.plot_top_influences(scores, k=4)
    bars = ax.patches
    assert len(bars) == 8
    widths = np.array([b.get_width() for b in bars])
    order = np.argsort(scores)
    # Bottom to top, sorted by score: the 4 most helpful, then the 4 most harmful.
    np.testing.assert_array_equal(widths, np.concatenate([scores[order[:4]], scores[order[-4:]]]))
    colors = [b.get_facecolor() for b in bars]
    assert colors[0] != colors[-1]
    assert colors[0] == colors[3]
    assert colors[4] == colors[7]
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert names[0] == f"train #{order[0]}"
    assert names[-1] == f"train #{order[-1]}"
    assert "helpful" in ax.get_xlabel()
    assert "harmful" in ax.get_xlabel()
    save_png(ax, tmp_path / "top.png")


def test_plot_top_influences_with_labels_and_k_above_half_shows_each_point_once(tmp_path):
    scores = np.array([-3.0, 2.0, -1.0, 0.5, 4.0])
    labels = ["a", "b", "c", "d", "e"]
    ax = fiplot.plot_top_influences(scores, k=4, labels=labels)
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert names == ["a", "c", "d", "b", "e"]  # all 5 points, once each, sorted by score
    save_png(ax, tmp_path / "top_labels.png")
    with pytest.raises(ValueError, match="labels"):
        fiplot.plot_top_influences(scores, labels=["a"])
    with pytest.raises(ValueError, match="k must be"):
        fiplot.plot_top_influences(scores, k=0)


def test_detection_curve_counts_flipped_points_found():
    flipped = np.array([False, True, False, True])
    checked, found = fiplot.detection_curve([1, 0, 3, 2], flipped)
    np.testing.assert_allclose(checked, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(found, [0, 0.5, 0.5, 1.0, 1.0])


def test_plot_mislabel_detection_draws_three_rankings(tmp_path):
    rng = np.random.default_rng(2)
    n = 200
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, 20, replace=False)] = True
    self_influence = -np.abs(rng.normal(size=n)) - 5.0 * flipped  # flipped points stand out
    training_loss = rng.random(n) + 0.5 * flipped
    ax = fiplot.plot_mislabel_detection(self_influence, training_loss, flipped, seed=3)
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert len(lines) == 3
    by_self = next(v for k, v in lines.items() if k.startswith("self-influence"))
    # Independent reference: the 20 flipped points are exactly the 20 most negative self-influences.
    np.testing.assert_allclose(by_self.get_ydata()[20], 1.0)
    np.testing.assert_allclose(by_self.get_ydata()[:21], np.arange(21) / 20)
    random = lines["random"].get_ydata()
    expected = np.concatenate([[0], np.cumsum(flipped[np.random.default_rng(3).permutation(n)])]) / 20
    np.testing.assert_allclose(random, expected)
    for line in lines.values():
        assert line.get_ydata()[-1] == 1.0  # checking everything finds every flipped label
    assert "20 of 200" in ax.get_title()
    save_png(ax, tmp_path / "mislabel.png")


def test_plot_mislabel_detection_validates_its_input():
    with pytest.raises(TypeError, match="boolean"):
        fiplot.plot_mislabel_detection(np.zeros(3), np.zeros(3), np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="shape"):
        fiplot.plot_mislabel_detection(np.zeros(3), np.zeros(4), np.zeros(3, dtype=bool))


def test_demo_plots_render_from_the_demo_result(tmp_path):
    from fastinfluence.demo import compute_demo, write_plots

    result = compute_demo(seed=0, n_loo=20)
    paths = write_plots(result, tmp_path / "out", which=("loo", "mislabel"), dpi=50)
    assert [p.rsplit("/", 1)[-1] for p in map(str, paths)] == ["demo_loo.png", "demo_mislabel.png"]
    for path in paths:
        with open(path, "rb") as handle:
            assert handle.read(8) == PNG_MAGIC
    with pytest.raises(ValueError, match="unknown plot"):
        write_plots(result, tmp_path, which=("pie",))


def test_plot_top_influences_names_bars_by_a_series_index(tmp_path):
    pd = pytest.importorskip("pandas")
    scores = pd.Series([-3.0, 2.0, -1.0, 0.5, 4.0], index=["ann", "bob", "cy", "dee", "eve"], name="j")
    ax = fiplot.plot_top_influences(scores, k=2)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["ann", "cy", "bob", "eve"]
    np.testing.assert_array_equal([b.get_width() for b in ax.patches], [-3.0, -1.0, 2.0, 4.0])
    save_png(ax, tmp_path / "top_series.png")
    # explicit labels win; integer and tuple labels are shown as text
    assert (
        fiplot.plot_top_influences(scores, k=1, labels=list("ABCDE")).get_yticklabels()[0].get_text() == "A"
    )
    numbered = pd.Series(scores.to_numpy(), index=pd.Index([10, 11, 12, 13, 14], name="train_row"))
    assert [t.get_text() for t in fiplot.plot_top_influences(numbered, k=1).get_yticklabels()] == ["10", "14"]


def test_plot_top_influences_of_a_labelled_influence_result(tmp_path):
    pd = pytest.importorskip("pandas")
    import fastinfluence as fi

    rng = np.random.default_rng(4)
    X = pd.DataFrame(rng.normal(size=(40, 2)), columns=["a", "b"], index=[f"row{i}" for i in range(40)])
    y = (X["a"] + rng.normal(size=40) > 0).astype(int)
    inf = fi.Influence(fi.LogisticRegression(l2=0.01).fit(X, y), X, y)
    scores = inf.loss(X.iloc[:3], y.iloc[:3])["row1"]  # one test point's column, indexed by training row
    ax = fiplot.plot_top_influences(scores, k=3)
    order = np.argsort(scores.to_numpy(), kind="stable")
    expected = [X.index[i] for i in np.r_[order[:3], order[-3:]]]
    assert [t.get_text() for t in ax.get_yticklabels()] == expected
    save_png(ax, tmp_path / "top_influence_frame.png")


def test_plot_loo_matches_series_by_label_and_names_the_largest(tmp_path):
    pd = pytest.importorskip("pandas")
    labels = [f"r{i}" for i in range(8)]
    actual = pd.Series([0.1, -0.9, 0.2, 0.05, 0.7, -0.3, 0.0, 0.4], index=labels)
    predicted = actual.iloc[::-1] * 1.1  # the same rows in another order
    ax = fiplot.plot_loo(predicted, actual, annotate=2)
    points = ax.collections[0].get_offsets()
    # in predicted's order, each point at (actual, predicted) of its own row
    np.testing.assert_allclose(points[:, 0], actual.iloc[::-1].to_numpy())
    np.testing.assert_allclose(points[:, 1], predicted.to_numpy())
    assert [t.get_text() for t in ax.texts] == ["r1", "r4"]  # the largest |actual| changes
    assert ax.texts[0].xy == pytest.approx((-0.9, -0.99))
    save_png(ax, tmp_path / "loo_series.png")
    assert len(fiplot.plot_loo(predicted, actual).texts) == 5  # a Series: the 5 largest by default
    assert not fiplot.plot_loo(predicted.to_numpy(), actual.iloc[::-1].to_numpy()).texts  # arrays: none
    assert [
        t.get_text() for t in fiplot.plot_loo(np.ones(3), np.array([0.0, 3.0, -1.0]), annotate=1).texts
    ] == ["#1"]
    with pytest.raises(
        ValueError, match=r"actual lacks the labels 'r7' and has labels the others do not have"
    ):
        fiplot.plot_loo(predicted, actual.rename({"r7": "zz"}))
    with pytest.raises(ValueError, match=r"annotate must be an integer >= 0"):
        fiplot.plot_loo(predicted, actual, annotate=-1)


def test_plot_mislabel_detection_matches_series_by_label():
    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(5)
    n = 60
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(n, 6, replace=False)] = True
    index = pd.Index([f"p{i}" for i in range(n)])
    self_influence = pd.Series(-np.abs(rng.normal(size=n)) - 5.0 * flipped, index=index)
    training_loss = pd.Series(rng.random(n), index=index)
    shuffled = rng.permutation(n)
    ax = fiplot.plot_mislabel_detection(
        self_influence, training_loss.iloc[shuffled], pd.Series(flipped, index=index).iloc[::-1]
    )
    lines = {line.get_label(): line for line in ax.get_lines()}
    by_self = next(v for k, v in lines.items() if k.startswith("self-influence"))
    np.testing.assert_allclose(by_self.get_ydata()[:7], np.arange(7) / 6)  # matched, not by position
    reference = fiplot.plot_mislabel_detection(self_influence.to_numpy(), training_loss.to_numpy(), flipped)
    loss_line = next(v for k, v in lines.items() if k == "training loss")
    reference_loss = next(v for v in reference.get_lines() if v.get_label() == "training loss")
    np.testing.assert_array_equal(loss_line.get_ydata(), reference_loss.get_ydata())


def test_plot_loo_on_symmetric_log_axes_and_its_refusals():
    rng = np.random.default_rng(0)
    actual = np.concatenate([rng.normal(0, 1e-5, 95), [0.2, -0.05, 0.1, 0.03, -0.01]])
    ax = fiplot.plot_loo(actual * 1.01, actual, scale="symlog")
    assert ax.get_xscale() == ax.get_yscale() == "symlog"
    assert ax.xaxis.get_transform().linthresh == pytest.approx(2e-4)  # 1/1000 of the largest |actual|
    assert fiplot.plot_loo(actual, actual).get_xscale() == "linear"
    with pytest.raises(ValueError, match="scale must be 'linear' or 'symlog'"):
        fiplot.plot_loo(actual, actual, scale="log")
