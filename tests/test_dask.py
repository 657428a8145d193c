"""The Dask path (``fastinfluence.dask``) against the in-memory engine.

A ``distributed.LocalCluster`` (two worker processes, one thread each, on
loopback) runs the fit and every influence quantity on row chunks of uneven
size, one of them a single row; results must equal ``fastinfluence.Influence``
on the same data to 1e-9 relative. A worker process is killed (SIGKILL) in the
middle of a scoring job: the scheduler reschedules its tasks and recomputes
the results it held from the graph (``distributed.scheduler.allowed-failures``,
3 by default, bounds how often one task may be on a dying worker), and the
result must still be right. Input handling (DataFrames, sparse and empty
chunks, errors) runs on the threaded scheduler, which is faster to start.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
from conftest import HAVE_CORE, L2, assert_same_ranking, make_data, make_model

import fastinfluence as fi

REASON = "the dask extra is not installed (pip install '.[dask]' in the source checkout)"
da = pytest.importorskip("dask.array", reason=REASON)
dd = pytest.importorskip("dask.dataframe", reason=REASON)
distributed = pytest.importorskip("distributed", reason=REASON)
import dask  # noqa: E402

import fastinfluence.dask as fid  # noqa: E402

#: The acceptance tolerance of the issue: Dask and in-memory results agree to 1e-9 relative.
RTOL = 1e-9

#: Uneven row chunks with a one-row chunk: 97 rows.
CHUNKS = (30, 1, 41, 7, 18)
N = sum(CHUNKS)


def assert_agree(actual, desired, err_msg=""):
    """Equal to RTOL relative to the largest entry (entries that cancel carry the whole sum's rounding)."""
    desired = np.asarray(desired, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    assert actual.shape == desired.shape, err_msg
    scale = float(np.max(np.abs(desired))) if desired.size else 0.0
    np.testing.assert_allclose(actual, desired, rtol=RTOL, atol=RTOL * scale, err_msg=err_msg)


def chunked(X, chunks=CHUNKS):
    return da.from_array(X, chunks=(chunks, -1))


@pytest.fixture(scope="module")
def client():
    """Two worker processes with one thread each, on loopback, on ports the OS picks; closed at the end.

    ``dashboard_address=":0"``: the scheduler serves HTTP (metrics, health) even without
    a dashboard, and ``None`` means its default port 8787, so a second test run on the
    same machine failed to start its cluster ("Port 8787 is already in use").

    ``set_as_default=False``: only the tests that ask for this fixture use the
    cluster (through ``client.as_current()``), the others run on threads. (Not
    ``dask.config.set(scheduler=client)``: the nanny ships the dask config to a
    restarted worker process, and a Client in it cannot be pickled.)
    """
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
            worker_dashboard_address=":0",
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as c,
    ):
        yield c


@pytest.fixture
def on_cluster(client):
    with client.as_current():
        yield client


def problem(name, *, seed=11, weighted=True):
    X, y, s = make_data(name, n=N, d=4, seed=seed, weighted=weighted)
    X_test, y_test, _ = make_data(name, n=5, d=4, seed=seed + 1)
    return X, y, s, X_test, y_test


# ---------------------------------------------------------------------------
# On the cluster: fit and every quantity against the in-memory engine
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["squared", "logistic", "smooth_hinge", "poisson"])
def test_fit_matches_in_memory(on_cluster, name):
    X, y, s, _, _ = problem(name)
    expected = make_model(name).fit(X, y, sample_weight=s)
    model = fid.fit(make_model(name), chunked(X), y, sample_weight=s)
    assert model.converged_, model.fit_message_
    assert_agree(model.theta_, expected.theta_)
    assert model.objective_ == pytest.approx(expected.objective_, rel=1e-12)
    # the same Newton path; each iteration is one pass, plus the first evaluation (and any
    # backtracking), plus one per polishing step and one for the step that ends polishing
    assert model.n_iter_ == expected.n_iter_
    polishing = model.polish_steps_ + 1
    assert model.n_iter_ + 1 + polishing <= model.dask_passes_ <= 2 * model.n_iter_ + 1 + polishing
    if name == "squared":  # a quadratic: one full Newton step, accepted
        assert model.n_iter_ == 1


@pytest.mark.parametrize("name", ["logistic", "poisson"])
def test_fit_newton_cg_matches_in_memory(name):
    # the matrix-free fit: one pass per CG iteration (threads: many short passes)
    X, y, s, _, _ = problem(name)
    expected = make_model(name, method="newton_cg").fit(X, y, sample_weight=s)
    model = fid.fit(make_model(name, method="newton_cg"), chunked(X), y, sample_weight=s)
    assert model.converged_, model.fit_message_
    assert_agree(model.theta_, expected.theta_)
    assert model.n_iter_ == expected.n_iter_


@pytest.mark.parametrize("name", ["squared", "logistic", "smooth_hinge", "poisson"])
def test_influence_quantities_match_in_memory(on_cluster, name):
    X, y, s, X_test, y_test = problem(name)
    model = make_model(name).fit(X, y, sample_weight=s)  # the Dask fit is tested above
    expected = fi.Influence(model, X, y, sample_weight=s)
    inf = fid.Influence(model, chunked(X), y, sample_weight=s)

    assert_agree(inf.hessian_, expected.hessian_)
    rows = np.array([96, 0, 30, 31, 30])  # unsorted, repeated, the one-row chunk
    lazy = {
        "params": (inf.params(), expected.params()),
        "loss": (inf.loss(X_test, y_test), expected.loss(X_test, y_test)),
        "self_influence": (inf.self_influence(), expected.self_influence()),
        "leverage": (inf.leverage(), expected.leverage()),
        "pert_loss": (inf.pert_loss(X_test, y_test), expected.pert_loss(X_test, y_test)),
        "loo_influence": (inf.loo(X_test, y_test), expected.loo(X_test, y_test)),
        "loo_newton": (
            inf.loo(X_test, y_test, method="newton"),
            expected.loo(X_test, y_test, method="newton"),
        ),
        "loo_params_influence": (inf.loo_params(), expected.loo_params()),
        "loo_params_newton": (inf.loo_params(method="newton"), expected.loo_params(method="newton")),
        "loss_derivative_": (inf.loss_derivative_, expected.loss_derivative_),
    }
    for key, (result, _) in lazy.items():
        assert isinstance(result, da.Array), key
        assert result.chunks[0] == CHUNKS, key  # chunked like X: nothing of size n on the client
    lazy["loss_rows"] = (inf.loss(X_test, y_test, indices=rows), expected.loss(X_test, y_test, indices=rows))
    lazy["self_influence_rows"] = (inf.self_influence(indices=rows), expected.self_influence(indices=rows))
    computed = dask.compute(*(result for result, _ in lazy.values()))  # one job for all
    for (key, (_, reference)), result in zip(lazy.items(), computed):
        assert_agree(result, reference, err_msg=key)

    scores = expected.loss(X_test, y_test)
    for k in (3, N + 5):  # k above the smallest chunks, and above n
        top, reference = inf.top_k(X_test, y_test, k=k), expected.top_k(X_test, y_test, k=k)
        for field in ("helpful_indices", "harmful_indices"):  # near-ties may swap: scores agree to RTOL
            assert_same_ranking(getattr(top, field), getattr(reference, field), scores, RTOL, err_msg=field)
        for field in ("helpful_scores", "harmful_scores"):
            assert_agree(getattr(top, field), getattr(reference, field), err_msg=field)

    spectrum, reference = inf.hessian_spectrum(), expected.hessian_spectrum()
    assert spectrum["smallest_eigenvalue"] == pytest.approx(reference["smallest_eigenvalue"], rel=RTOL)


def test_cg_solver_matches_in_memory(on_cluster):
    X, y, s, X_test, y_test = problem("logistic")
    model = make_model("logistic").fit(X, y, sample_weight=s)
    expected = fi.Influence(model, X, y, sample_weight=s, solver="cg", damping=0.01)
    inf = fid.Influence(model, chunked(X), y, sample_weight=s, solver="cg", damping=0.01)
    assert inf.hessian_ is None
    assert_agree(inf.loss(X_test, y_test).compute(), expected.loss(X_test, y_test))
    assert_agree(inf.self_influence().compute(), expected.self_influence())
    assert np.all(inf.solver_.residual_ <= 1e-10)
    spectrum, reference = inf.hessian_spectrum(), expected.hessian_spectrum()
    assert spectrum["largest_eigenvalue"] == pytest.approx(reference["largest_eigenvalue"], rel=RTOL)


def _slow_copy(block):
    """Test-only: a chunk read that takes a while, so a scoring job is still running when a worker dies.
    (Worker processes import this module: multiprocessing's spawn passes them the parent's sys.path.)"""
    time.sleep(0.1)
    return block.copy()


def test_worker_killed_during_scoring_is_recovered(on_cluster):
    client = on_cluster
    X, y, s, X_test, y_test = problem("logistic")
    model = make_model("logistic").fit(X, y, sample_weight=s)
    expected = fi.Influence(model, X, y, sample_weight=s).loss(X_test, y_test)
    slow_chunks = (6,) * 16 + (1,)  # 17 tasks of 0.1 s on two workers: about a second per pass
    X_slow = chunked(X, slow_chunks).map_blocks(_slow_copy, dtype=X.dtype)
    inf = fid.Influence(model, X_slow, y, sample_weight=s)

    pids = client.run(os.getpid)
    future = client.compute(inf.loss(X_test, y_test))
    deadline = time.monotonic() + 10
    while not any(client.processing().values()) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    assert not future.done(), "the scoring job finished before a worker could be killed"
    victim = next(address for address, tasks in client.processing().items() if tasks)
    os.kill(pids[victim], signal.SIGKILL)  # the nanny starts a fresh worker process
    result = future.result(timeout=60)
    assert_agree(result, expected)
    assert victim not in client.scheduler_info()["workers"]  # it really died (a restart has a new address)
    client.wait_for_workers(2, timeout=60)  # the nanny's fresh worker, for the tests that follow


# ---------------------------------------------------------------------------
# Passes, broadcasting and the threaded scheduler
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["cpp", "numpy"])
def test_threaded_scheduler_matches_in_memory(backend):
    X, y, s, X_test, y_test = problem("poisson", seed=3)
    model = fid.fit(make_model("poisson", backend=backend), chunked(X), y, sample_weight=s)
    expected = fi.Influence(model, X, y, sample_weight=s, backend=backend)
    inf = fid.Influence(model, chunked(X), y, sample_weight=s, backend=backend)
    assert_agree(inf.loss(X_test, y_test).compute(scheduler="threads"), expected.loss(X_test, y_test))
    assert_agree(inf.self_influence().compute(scheduler="threads"), expected.self_influence())


def test_test_side_is_solved_once_and_shared_by_all_chunks(monkeypatch):
    X, y, s, X_test, y_test = problem("logistic")
    model = make_model("logistic").fit(X, y, sample_weight=s)
    inf = fid.Influence(model, chunked(X), y, sample_weight=s)
    solves = []
    original = inf.solver_.solve
    monkeypatch.setattr(inf.solver_, "solve", lambda B: solves.append(B.shape) or original(B))
    result = inf.loss(X_test, y_test)
    assert solves == [(5, 5)]  # all m test gradients in one solve, on the client
    graph = dict(result.__dask_graph__())
    shared = [key for key, value in graph.items() if isinstance(value, dict) and "M" in value]
    assert len(shared) <= 1  # one key holding V = H^{-1} G_test (or a literal task producing it)
    per_chunk = [key for key in graph if isinstance(key, tuple) and key[0] == result.name]
    assert len(per_chunk) == len(CHUNKS)
    result.compute()
    assert solves == [(5, 5)]  # computing does not solve again


def test_memory_maps_are_read_in_place(tmp_path, on_cluster):
    # workers reopen the file by its path (the map is never pickled as data, nor copied by from_array)
    X, y, _s, X_test, y_test = problem("logistic")
    np.save(tmp_path / "X.npy", X.astype(np.float32))
    np.save(tmp_path / "y.npy", y.astype(np.int8))
    X_map = np.load(tmp_path / "X.npy", mmap_mode="r")
    y_map = np.load(tmp_path / "y.npy", mmap_mode="r")
    chunks = fid.from_memmap(X_map, chunk_rows=20)
    assert chunks.chunks == ((20, 20, 20, 20, 17), (4,))
    model = fid.fit(make_model("logistic"), chunks, y_map)
    expected_model = make_model("logistic").fit(X_map, y_map)
    assert_agree(model.theta_, expected_model.theta_)
    inf = fid.Influence(model, X_map, y_map)  # a memory map directly: chunked by from_memmap
    assert_agree(inf.loss(X_test, y_test).compute(), fi.Influence(model, X_map, y_map).loss(X_test, y_test))
    with pytest.raises(ValueError, match="not a slice"):
        fid.from_memmap(X_map[10:])


def test_loss_into_memmap(tmp_path):
    X, y, s, X_test, y_test = problem("squared")
    model = make_model("squared").fit(X, y, sample_weight=s)
    out = np.lib.format.open_memmap(tmp_path / "scores.npy", mode="w+", dtype=np.float64, shape=(N, 5))
    inf = fid.Influence(model, chunked(X), y, sample_weight=s)
    assert inf.loss(X_test, y_test, out=out) is out
    expected = fi.Influence(model, X, y, sample_weight=s).loss(X_test, y_test)
    assert_agree(np.load(tmp_path / "scores.npy"), expected)


def test_results_written_with_to_zarr_as_the_readme_shows(tmp_path):
    """The README's Dask section writes the lazy results with ``to_zarr`` (zarr is in the dask extra)."""
    zarr = pytest.importorskip("zarr", reason="the dask extra installs zarr")
    X, y, s, X_test, y_test = problem("logistic")
    regular = (25, 25, 25, 22)  # zarr stores regular chunks (Dask rechunks others, with a warning)
    model = fid.fit(make_model("logistic"), chunked(X, regular), y, sample_weight=s)
    inf = fid.Influence(model, chunked(X, regular), y, sample_weight=s)
    inf.self_influence().to_zarr(str(tmp_path / "self_influence.zarr"))
    inf.loss(X_test, y_test).to_zarr(str(tmp_path / "influence.zarr"))
    expected = fi.Influence(model, X, y, sample_weight=s)
    assert_agree(zarr.open(str(tmp_path / "self_influence.zarr"), mode="r")[:], expected.self_influence())
    assert_agree(zarr.open(str(tmp_path / "influence.zarr"), mode="r")[:], expected.loss(X_test, y_test))


# ---------------------------------------------------------------------------
# Inputs: DataFrames, labels, float32, sparse and empty chunks
# ---------------------------------------------------------------------------


def test_dataframe_with_target_and_weight_columns():
    pd = pytest.importorskip("pandas")
    X, y, s, X_test, y_test = problem("logistic")
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"]).assign(label=y.astype(bool), weight=s)
    frame["b"] = frame["b"].astype(np.float32)  # mixed dtypes become float64
    ddf = dd.from_pandas(frame, npartitions=4)
    X_mixed = frame[["a", "b", "c", "d"]].to_numpy(dtype=np.float64)
    expected_model = fi.LogisticRegression(l2=L2).fit(X_mixed, y.astype(bool), sample_weight=s)
    model = fid.fit(fi.LogisticRegression(l2=L2), ddf, "label", sample_weight="weight")
    np.testing.assert_array_equal(model.classes_, [False, True])
    assert_agree(model.theta_, expected_model.theta_)
    inf = fid.Influence(model, ddf, "label", sample_weight="weight")
    expected = fi.Influence(expected_model, X_mixed, y.astype(bool), sample_weight=s)
    assert_agree(inf.loss(X_test, y_test.astype(bool)).compute(), expected.loss(X_test, y_test.astype(bool)))

    np.testing.assert_array_equal(model.feature_names_in_, ["a", "b", "c", "d"])
    with pytest.raises(ValueError, match="order"):  # feature names are checked as in memory
        fid.Influence(model, ddf[["b", "a", "c", "d", "label", "weight"]], "label", sample_weight="weight")

    # a target given as a Series of the features' frame, labels in {-1, +1}
    features = ddf[["a", "b", "c", "d"]]
    model = fid.fit(make_model("smooth_hinge"), features, ddf["label"].astype(int) * 2 - 1)
    np.testing.assert_array_equal(model.classes_, [-1, 1])
    assert_agree(model.theta_, make_model("smooth_hinge").fit(X_mixed, np.where(y > 0, 1, -1)).theta_)

    # class names, learnt in the pass that learns the partition lengths
    named = ddf.assign(label=ddf["label"].map({True: "spam", False: "ham"}, meta=("label", object)))
    model = fid.fit(fi.LogisticRegression(l2=L2), named, "label", sample_weight="weight")
    np.testing.assert_array_equal(model.classes_, ["ham", "spam"])
    assert_agree(model.theta_, expected_model.theta_)
    # no backtracking here: one pass per iteration and polishing step, the first, maybe the last attempt
    assert (
        model.n_iter_ + 1 + model.polish_steps_
        <= model.dask_passes_
        <= model.n_iter_ + 2 + model.polish_steps_
    )


def test_float32_and_sparse_chunks():
    sparse = pytest.importorskip("scipy.sparse")
    X, y, _, X_test, y_test = problem("logistic", weighted=False)
    X32 = X.astype(np.float32)
    model = fid.fit(make_model("logistic"), chunked(X32), y)
    assert_agree(model.theta_, make_model("logistic").fit(X32, y).theta_)
    assert_agree(
        fid.Influence(model, chunked(X32), y).self_influence().compute(),
        fi.Influence(model, X32, y).self_influence(),
    )

    X_csr = sparse.random(N, 6, density=0.4, random_state=2, format="csr")
    X_test = X_test[:, :2] @ np.ones((2, 6))
    X_chunks = da.from_array(X_csr, chunks=(CHUNKS, -1), asarray=False)
    model = fid.fit(make_model("logistic"), X_chunks, y)
    expected_model = make_model("logistic").fit(X_csr, y)
    assert_agree(model.theta_, expected_model.theta_)
    assert_agree(
        fid.Influence(model, X_chunks, y).loss(X_test, y_test).compute(),
        fi.Influence(expected_model, X_csr, y).loss(X_test, y_test),
    )


def test_empty_chunk():
    X, y, s, X_test, y_test = problem("poisson")
    chunks = (40, 0, 1, 0, 56)
    model = fid.fit(make_model("poisson"), chunked(X, chunks), y, sample_weight=s)
    expected = fi.Influence(model, X, y, sample_weight=s)
    inf = fid.Influence(model, chunked(X, chunks), y, sample_weight=s)
    assert_agree(
        inf.loo(X_test, y_test, method="newton").compute(), expected.loo(X_test, y_test, method="newton")
    )
    assert_same_ranking(
        inf.top_k(X_test, y_test, k=4).harmful_indices,
        expected.top_k(X_test, y_test, k=4).harmful_indices,
        expected.loss(X_test, y_test),
        RTOL,
    )


def test_separable_data_without_penalty_reports_no_minimiser():
    rng = np.random.default_rng(5)
    X = np.r_[rng.random((20, 2)) + 1.0, -rng.random((20, 2)) - 1.0]
    y = np.r_[np.ones(20), np.zeros(20)]
    with pytest.warns(fi.ConvergenceWarning) as expected_warning:
        expected = fi.LogisticRegression(l2=0.0, max_iter=5).fit(X, y)
    with pytest.warns(fi.ConvergenceWarning) as warning:
        model = fid.fit(fi.LogisticRegression(l2=0.0, max_iter=5), chunked(X, (7,) * 5 + (5,)), y)
    assert not model.converged_
    assert model.fit_message_ == expected.fit_message_
    assert "separable" in str(warning[0].message)
    assert str(warning[0].message) == str(expected_warning[0].message)


def test_not_at_optimum_warns():
    X, y, s, _, _ = problem("logistic")
    model = make_model("logistic").fit(X[:50], y[:50])
    with pytest.warns(fi.NotAtOptimumWarning, match="not at the optimum"):
        fid.Influence(model, chunked(X), y, sample_weight=s)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------


def test_errors_name_the_problem():
    X, y, _s, _, _ = problem("logistic")
    model = make_model("logistic").fit(X, y)
    with pytest.raises(TypeError, match=r"dask\.array\.from_array"):
        fid.fit(make_model("logistic"), X, y)
    with pytest.raises(ValueError, match="expected \\(97,\\)"):
        fid.fit(make_model("logistic"), chunked(X), y[:-1])
    with pytest.raises(ValueError, match="solver='lissa' is not available"):
        fid.Influence(model, chunked(X), y, solver="lissa")
    with pytest.raises(ValueError, match="features"):
        fid.Influence(model, chunked(X[:, :3]), y)
    bad = X.copy()
    bad[35, 1] = np.nan
    with pytest.raises(ValueError, match=r"X\[31:72\] contains NaN"):  # the chunk's rows are named
        fid.fit(make_model("logistic"), chunked(bad), y)
    with pytest.raises(ValueError, match=r"binary labels.*found 3 classes"):  # (y + 2 is two classes)
        fid.fit(make_model("logistic"), chunked(X), np.arange(N) % 3)
    with pytest.raises(ValueError, match="zero everywhere"):
        fid.fit(make_model("squared"), chunked(X), y, sample_weight=np.zeros(N))
    pd = pytest.importorskip("pandas")
    ddf = dd.from_pandas(pd.DataFrame(X, columns=list("abcd")).assign(label=y, note="x"), npartitions=2)
    with pytest.raises(TypeError, match=r"numeric or bool.*note"):
        fid.fit(make_model("logistic"), ddf, "label")
    with pytest.raises(ValueError, match="not in the DataFrame"):
        fid.fit(make_model("logistic"), ddf, "target")


def test_import_fastinfluence_does_not_import_dask():
    code = "import sys, fastinfluence; sys.exit('dask' in sys.modules or 'distributed' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60, check=False).returncode == 0


def test_single_class_with_penalty_reports_no_minimiser_on_dask():
    # Regression (issue: trust): the intercept is unpenalised, so one class only has no minimiser.
    rng = np.random.default_rng(8)
    X = da.from_array(rng.standard_normal((200, 3)), chunks=(50, 3))
    y = da.from_array(np.zeros(200), chunks=50)
    with pytest.warns(fi.ConvergenceWarning, match="one class only"):
        model = fid.fit(fi.LogisticRegression(l2=1e-2), X, y)
    assert not model.converged_


# ---------------------------------------------------------------------------
# One Influence, two engines: behaviour the Dask copy of the formulas had lost
# ---------------------------------------------------------------------------


def test_newton_estimates_use_the_in_memory_leverage_floor():
    # Regression: the Dask engine kept an absolute floor 1 - h <= 1e-12 (and counted risky rows over
    # the whole data whatever `indices` selected) after the in-memory one had moved to a floor tied
    # to the conditioning; at condition 1e10 their Newton estimates differed.
    rng = np.random.default_rng(5)
    base = rng.standard_normal((40, 2))
    X = np.column_stack([base, base[:, 0] + 1e-3 * rng.standard_normal(40)])
    X[0] = [1000.0, 0.0, 1000.0]
    y = X @ [1.0, -1.0, 0.5] + 0.1 * rng.standard_normal(40)
    model = fi.LinearRegression(l2=0.0).fit(X, y)
    expected = fi.Influence(model, X, y)
    inf = fid.Influence(model, chunked(X, (13, 27)), y)
    # the same rule on the same H (the in-memory engine factorises it on centred columns: its
    # condition estimate differs by a few per cent)
    assert inf._leverage_floor() == pytest.approx(expected._leverage_floor(), rel=0.2)
    with pytest.warns(fi.LeverageWarning, match="rounding error of h_i"):
        reference = expected.loo_params("newton")
    with pytest.warns(fi.LeverageWarning, match="rounding error of h_i"):
        estimate = inf.loo_params("newton").compute()
    np.testing.assert_array_equal(np.isnan(estimate), np.isnan(reference))
    ok = ~np.isnan(reference[:, 0])
    # at condition ~1e10 the plain factorisation (Dask: centring needs the rows) carries ~1e-4
    np.testing.assert_allclose(
        estimate[ok], reference[ok], rtol=1e-3, atol=1e-3 * np.abs(reference[ok]).max()
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", fi.LeverageWarning)  # row 0 is not among those selected
        inf.loo_params("newton", indices=[1, 2, 3]).compute()


def test_params_of_a_few_rows_by_cg_are_solved_per_row():
    # k < p rows with the CG solver: k solves rather than p (as in memory), still a dask array.
    X, y, s, _, _ = problem("logistic")
    X = np.hstack([X, np.random.default_rng(3).normal(size=(N, 6))])
    model = make_model("logistic").fit(X, y, sample_weight=s)
    expected = fi.Influence(model, X, y, sample_weight=s, solver="cg")
    inf = fid.Influence(model, chunked(X), y, sample_weight=s, solver="cg")
    passes = inf.passes_
    result = inf.params(indices=[4, 60])
    assert isinstance(result, da.Array)
    assert inf.solver_.iterations_.shape == (2,)  # two right-hand sides, not p = 11
    assert inf.passes_ - passes == int(inf.solver_.iterations_.max())  # one pass per CG iteration
    assert_agree(result.compute(), expected.params(indices=[4, 60]))


def test_cg_refuses_a_singular_hessian_as_in_memory():
    # Regression: the Dask CG solver had no conditioning check, so a duplicated column with l2 = 0
    # gave influence values without meaning where the in-memory engine refuses.
    rng = np.random.default_rng(2)
    X = rng.normal(size=(N, 3))
    X = np.column_stack([X, X[:, 0]])
    y = X[:, :3].sum(axis=1) + rng.normal(size=N)
    model = fi.LinearRegression(l2=0.0, method="newton_cg").fit(X, y)
    with pytest.raises(fi.IllConditionedHessianError, match=r"singular|not positive definite"):
        fi.Influence(model, X, y, solver="cg")
    with pytest.raises(fi.IllConditionedHessianError, match=r"singular|not positive definite"):
        fid.Influence(model, chunked(X), y, solver="cg")


def test_repr_says_what_it_holds_and_its_chunks():
    X, y, s, _X_test, _y_test = problem("logistic")
    model = make_model("logistic").fit(X, y, sample_weight=s)
    inf = fid.Influence(model, chunked(X), y, sample_weight=s, solver="cg")
    n_chunks = len(chunked(X).chunks[0])
    assert n_chunks > 1
    assert repr(inf) == (
        f"Influence(model=LogisticRegression(l2={L2!r}), n={X.shape[0]}, p={X.shape[1] + 1}, solver='cg', "
        f"damping=0.0, backend='{'cpp' if HAVE_CORE else 'numpy'}', chunks={n_chunks})"
    )
