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
