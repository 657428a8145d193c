"""Checks against the baselines, and the machine's physical limits (bandwidth, GEMM throughput)."""

from __future__ import annotations

import os
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from workloads import MiB, Workload

# --------------------------------------------------------------------------------------------
# Checks against the baseline
# --------------------------------------------------------------------------------------------


def relative_difference(a, b) -> float:
    """max |a - b| / max |b|: the worst entry relative to the scale of the reference."""
    scale = float(np.max(np.abs(b))) or 1.0
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) / scale


def column_relative_difference(a, b) -> float:
    """max_j ||a_j - b_j|| / ||b_j|| over columns."""
    norms = np.linalg.norm(b, axis=0)
    return float(np.max(np.linalg.norm(a - b, axis=0) / np.where(norms > 0, norms, 1.0)))


def check(w: Workload, method: str, ours, base) -> tuple[bool, str]:
    """Compare a result with the baseline's; returns (passed, one-line summary)."""
    if w.quantity == "matrix_top_k":  # the matrix, and the top k of each of its columns
        diff = relative_difference(ours["matrix"], base["matrix"])
        notes, passed = [f"matrix rel diff {diff:.1e}"], diff <= 1e-8
        for side in ("helpful", "harmful"):
            score_diff = relative_difference(ours[f"{side}_scores"], base[f"{side}_scores"])
            passed &= score_diff <= 1e-8
            notes.append(f"{side} score diff {score_diff:.0e}")
        return passed, "; ".join(notes)
    if w.quantity == "matrix" or (w.quantity == "cg" and method == "fastinfluence"):
        diff = relative_difference(ours["matrix"], base["matrix"])
        limit = 1e-8 if w.quantity == "matrix" else 10 * w.tol
        return diff <= limit, f"matrix rel diff {diff:.1e}"
    if w.quantity == "cg":
        diff = column_relative_difference(ours["solution"], base["solution"])
        iters = f"iters {int(ours['iterations'].max())} vs {int(base['iterations'].max())}/column"
        return diff <= 10 * w.tol, f"solution rel diff {diff:.1e}, {iters}"
    # top-k: scores agree; indices agree except where the k-th score is tied to within rounding
    notes, passed = [], True
    for side in ("helpful", "harmful"):
        diff = relative_difference(ours[f"{side}_scores"], base[f"{side}_scores"])
        same = np.sort(ours[f"{side}_indices"], axis=1) == np.sort(base[f"{side}_indices"], axis=1)
        mismatched_rows = int((~same.all(axis=1)).sum())
        passed &= diff <= 1e-8
        notes.append(f"{side} score diff {diff:.0e}, index sets differ in {mismatched_rows} rows")
    diff = relative_difference(ours["self_influence"], base["self_influence"])
    passed &= diff <= 1e-8
    notes.append(f"self-influence diff {diff:.0e}")
    return passed, "; ".join(notes)


# --------------------------------------------------------------------------------------------
# The machine: memory bandwidth and dense throughput
# --------------------------------------------------------------------------------------------


def measure_machine(quick: bool) -> dict:
    """Read bandwidth (sum of a large array, one slice per core, median of 5) and dgemm GFLOP/s."""
    cores = os.cpu_count() or 1
    x = np.ones((256 if quick else 1024) * 2**20 // 8)
    parts = np.array_split(x, cores)
    samples = []
    with ThreadPoolExecutor(cores) as pool:  # NumPy's sum releases the GIL
        for _ in range(5):
            start = time.perf_counter()
            sum(pool.map(np.sum, parts))
            samples.append(x.nbytes / (time.perf_counter() - start))
    bandwidth = statistics.median(samples)
    size = 1024 if quick else 2048
    a, b = np.ones((size, size)), np.ones((size, size))
    flops = []
    for _ in range(3):
        start = time.perf_counter()
        a @ b
        flops.append(2.0 * size**3 / (time.perf_counter() - start))
    return {
        "read_bandwidth_gbs": bandwidth / 1e9,
        "array_gib": x.nbytes / 2**30,
        "dgemm_gflops": statistics.median(flops) / 1e9,
        "dgemm_size": size,
    }


def physical_limit(w: Workload, data_mib: float, iterations: int | None, machine: dict) -> dict:
    """Bytes the fastest possible implementation must move and flops it must do, and the time they take.

    W1/W2: one pass over X for H, one for the scores, plus writing the (n, m) result; flops
    n p^2 (H, symmetric) + 2 n p m (scores). W3: one pass for H and one for scoring and
    self-influence together; flops n p^2 + 2 n p m + n p^2. W4: one pass over X per CG
    iteration (all test gradients share it) plus one for the curvature weights. W5 (K classes,
    q = d + 1): one pass for H, K (K + 1)/2 symmetric q x q blocks, n q^2 flops each; one for the
    scores, 2 n q K m flops (the top k come from the same scores), plus writing the result.
    """
    data = data_mib * MiB
    p = (30 if w.data == "cancer" else w.d) + 1
    n = 455 if w.data == "cancer" else w.n
    if w.quantity == "matrix_top_k":
        K = w.classes
        moved = 2 * data + 8.0 * n * w.m
        flops = K * (K + 1) / 2 * n * p * p + 2.0 * n * p * K * w.m
    elif w.quantity == "matrix":
        moved, flops = 2 * data + 8.0 * n * w.m, n * p * p + 2.0 * n * p * w.m
    elif w.quantity == "top_k_self":
        moved, flops = 2 * data, 2.0 * n * p * p + 2.0 * n * p * w.m
    else:
        passes = (iterations or 0) + 1
        moved, flops = passes * data, passes * 4.0 * w.n * w.nnz_per_row * w.m
    seconds = max(moved / (machine["read_bandwidth_gbs"] * 1e9), flops / (machine["dgemm_gflops"] * 1e9))
    return {"bytes_gb": moved / 1e9, "gflop": flops / 1e9, "bound_s": seconds}
