"""Streaming top-k and writing into a caller's array: equal to the full matrix, in bounded memory."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import assert_same_ranking

import fastinfluence as fi
from fastinfluence import influence as influence_module

BACKENDS = ["cpp", "numpy"]


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(5)
    n, d = 3000, 8
    X = rng.standard_normal((n, d))
    y = (rng.random(n) < 1 / (1 + np.exp(-X @ rng.standard_normal(d)))).astype(int)
    X_test = rng.standard_normal((25, d))
    y_test = (rng.random(25) < 0.5).astype(int)
    model = fi.LogisticRegression(l2=1e-3).fit(X, y)
    return model, X, y, X_test, y_test


def _expected_top_k(scores, k):
    """Reference: full sort of each column by (score, row) — ties to the lower row."""
    rows = np.arange(scores.shape[0])
    helpful = np.array([np.lexsort((rows, col))[:k] for col in scores.T])
    harmful = np.array([np.lexsort((rows, -col))[:k] for col in scores.T])
    return helpful, harmful


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("k", [1, 7, 3000, 5000])
def test_top_k_equals_full_sort(setup, backend, k):
    model, X, y, X_test, y_test = setup
    inf = fi.Influence(model, X, y, backend=backend)
    scores = inf.loss(X_test, y_test)
    result = inf.top_k(X_test, y_test, k=k)
    helpful, harmful = _expected_top_k(scores, min(k, X.shape[0]))
    # the streaming scores are computed in other row blocks than the full matrix (equal to 1e-12,
    # not bitwise), so near-ties may swap places
    assert_same_ranking(result.helpful_indices, helpful, scores, 1e-12)
    assert_same_ranking(result.harmful_indices, harmful, scores, 1e-12)
    np.testing.assert_allclose(result.helpful_scores, np.take_along_axis(scores.T, helpful, 1), rtol=1e-12)
    np.testing.assert_allclose(result.harmful_scores, np.take_along_axis(scores.T, harmful, 1), rtol=1e-12)
    assert np.all(np.diff(result.helpful_scores, axis=1) >= 0)  # most helpful (most negative) first
    assert np.all(np.diff(result.harmful_scores, axis=1) <= 0)


def test_top_k_ties_go_to_the_lower_row_for_any_thread_count():
    # binary features and a test set of one-hot rows: scores take few distinct values, many exact ties
    rng = np.random.default_rng(1)
    Xb = (rng.random((2000, 4)) < 0.5).astype(np.float64)
    yb = (rng.random(2000) < 0.5).astype(int)
    model_b = fi.LogisticRegression(l2=1e-2).fit(Xb, yb)
    X_test_b, y_test_b = np.eye(4), np.array([0, 1, 0, 1])
    results = [fi.Influence(model_b, Xb, yb, n_jobs=j).top_k(X_test_b, y_test_b, k=30) for j in (1, 2)]
    for a, b in zip(
        (results[0].helpful_indices, results[0].harmful_scores),
        (results[1].helpful_indices, results[1].harmful_scores),
    ):
        np.testing.assert_array_equal(a, b)
    for indices, scores in (
        (results[0].helpful_indices, results[0].helpful_scores),
        (results[0].harmful_indices, results[0].harmful_scores),
    ):
        tied = np.diff(scores, axis=1) == 0
        assert tied.any(), "the data were meant to produce ties"
        assert np.all(np.diff(indices, axis=1)[tied] > 0)  # equal scores: lower row first


def test_top_k_on_sparse_and_float32(setup):
    model, X, y, X_test, y_test = setup
    X32 = X.astype(np.float32)
    scores = fi.Influence(model, X32, y).loss(X_test, y_test)
    for Xin in (X32, sp.csr_matrix(X32)):
        result = fi.Influence(model, Xin, y).top_k(X_test, y_test, k=5)
        helpful, harmful = _expected_top_k(scores, 5)
        # sparse products sum in another order than dense ones
        assert_same_ranking(result.helpful_indices, helpful, scores, 1e-12)
        assert_same_ranking(result.harmful_indices, harmful, scores, 1e-12)


def test_top_k_rejects_bad_k(setup):
    model, X, y, X_test, y_test = setup
    with pytest.raises(ValueError, match="k must be a positive integer"):
        fi.Influence(model, X, y).top_k(X_test, y_test, k=0)


def test_loss_into_memmap(setup, tmp_path):
    model, X, y, X_test, y_test = setup
    inf = fi.Influence(model, X, y)
    expected = inf.loss(X_test, y_test)
    out = np.lib.format.open_memmap(
        tmp_path / "scores.npy", mode="w+", dtype=np.float64, shape=expected.shape
    )
    returned = inf.loss(X_test, y_test, out=out)
    assert returned is out or np.shares_memory(returned, out)
    out.flush()
    np.testing.assert_array_equal(np.load(tmp_path / "scores.npy"), expected)


def test_out_is_checked(setup):
    model, X, y, X_test, y_test = setup
    inf = fi.Influence(model, X, y)
    with pytest.raises(ValueError, match="out must be a writable C-contiguous float64 array of shape"):
        inf.loss(X_test, y_test, out=np.empty((X.shape[0], 3)))
    with pytest.raises(ValueError, match="out must be"):
        inf.loss(X_test, y_test, out=np.empty((X.shape[0], 25), dtype=np.float32))
    with pytest.raises(ValueError, match="out must be"):
        inf.loss(X_test, y_test, out=np.empty((25, X.shape[0])).T)


def test_large_results_are_refused_with_pointers(setup, monkeypatch):
    model, X, y, X_test, y_test = setup
    inf = fi.Influence(model, X, y)
    monkeypatch.setattr(influence_module, "MAX_RESULT_BYTES", 1000)
    with pytest.raises(MemoryError, match=r"top_k.*out="):
        inf.loss(X_test, y_test)
    with pytest.raises(MemoryError, match="MAX_RESULT_BYTES"):
        inf.loo(X_test, y_test, method="newton")
    # top_k and out= still work
    inf.top_k(X_test, y_test, k=3)
    inf.loss(X_test, y_test, out=np.empty((X.shape[0], 25)))
    assert inf.loss(X_test, y_test, indices=[1, 2]).shape == (2, 25)


def test_self_influence_streams_on_many_rows():
    rng = np.random.default_rng(0)
    n, d = 200_000, 5
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(int)
    model = fi.LogisticRegression(l2=1e-3).fit(X, y)
    inf = fi.Influence(model, X, y)
    values = inf.self_influence()
    assert values.shape == (n,)
    assert np.all(values <= 0)
    subset = [0, 123, n - 1]
    np.testing.assert_allclose(
        values[subset], fi.Influence(model, X, y, backend="numpy").self_influence(subset), rtol=1e-10
    )
