#!/usr/bin/env python
"""Benchmarks of fastinfluence against the baselines a competent user would write.

    python benchmarks/run.py                          # W1-W4 at full size (2-3 min, quiet 2-core machine)
    python benchmarks/run.py --quick                  # small sizes, under a minute
    python benchmarks/run.py --workloads W1,W2 --json results.json
    python benchmarks/run.py --threads 1,2,4,8,16     # thread scaling of W2 and W3
    python benchmarks/run.py --workloads W2,W4 --rounds 3   # methods alternate: fairer on a noisy machine
    python benchmarks/run.py --workloads W0 --rounds 3      # the fits (W0L, W0P, W0S) against scikit-learn

Peers (benchmarks/peers.py): where torch and pyDVL are installed, pyDVL's DirectInfluence and
CgInfluence run on W1, W2 and W3R (W3 reduced) beside fastinfluence; the table gives their ratio.

Workloads (seeded; logistic regression with l2 = 1e-3 throughout, but for W0's other models):

W0  the fit itself (W0L logistic, W0P Poisson, W0S least squares; dense n = 100,000, d = 100):
    fastinfluence's model against scikit-learn's solvers on the same objective (benchmarks/fits.py),
    each side's gradient norm of that objective at its solution.
W1  scikit-learn breast cancer (standardised), 455 train x 114 test: the full I_up,loss matrix.
W2  dense synthetic, n = 100,000, d = 100, m = 100 test points: the full I_up,loss matrix.
W3  dense synthetic, n = 1,000,000, d = 100, m = 1,000: top-k (k = 10) helpful/harmful
    training points per test point, and the self-influence of every training point.
W4  sparse CSR, n = 200,000, d = 50,000, 50 non-zeros per row, m = 10: H^{-1} g_test for the
    10 test gradients by conjugate gradient to a relative residual of 1e-8.
W5  multinomial (softmax, K = 10 classes), dense n = 100,000, d = 100, m = 100: the full
    I_up,loss matrix and the top-10 of each test point.

Every (workload, method) runs in a fresh subprocess of this script (``--worker``). The worker
generates the data, fits the model with fastinfluence to the optimum (untimed; both sides get
the same theta), returns free heap memory to the kernel, resets the kernel's peak-RSS counter,
and times the influence computation. Peak extra memory is VmHWM after the timed call minus
VmRSS just before it. The parent compares every result with its baseline, measures the
machine's memory bandwidth and dense matrix-product throughput (the physical limits), and
prints one table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import diagnostics
import fits
import numpy as np
import peers
from machine import check, measure_machine, physical_limit, relative_difference
from worker import MIN_LOAD_WINDOW, blas_threads_info, run_worker, wait_for_quiet, worker
from workloads import METHOD_LABELS, describe, workloads

# --------------------------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------------------------


def environment() -> dict:
    import scipy

    import fastinfluence as fi

    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        memory = float("nan")
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": memory,
        "platform": platform.platform(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", "(unset)"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "(unset)"),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "fastinfluence_build": fi.build_info(),
        "threadpools": blas_threads_info(),
    }


def print_environment(env: dict, machine: dict) -> None:
    print(f"CPU: {env['cpu']} ({env['cores']} cores), {env['memory_gib']:.1f} GiB, {env['platform']}")
    print(
        f"OPENBLAS_CORETYPE={env['OPENBLAS_CORETYPE']}  OMP_NUM_THREADS={env['OMP_NUM_THREADS']}  "
        f"numpy {env['numpy']}  scipy {env['scipy']}"
    )
    build = env["fastinfluence_build"]
    print("fastinfluence.build_info(): " + ", ".join(f"{key}={value}" for key, value in build.items()))
    print("threadpoolctl:")
    for pool in env["threadpools"]:
        print(
            f"  {pool['user_api']:<7} {pool['internal_api']:<9} {pool['version'] or '':<14} "
            f"threads={pool['num_threads']}  arch={pool['architecture']}  {pool['library']}"
        )
    print(
        f"machine: read bandwidth {machine['read_bandwidth_gbs']:.1f} GB/s (sum of "
        f"{machine['array_gib']:g} GiB, all cores), dgemm {machine['dgemm_gflops']:.1f} GFLOP/s "
        f"({machine['dgemm_size']}^2, NumPy/BLAS)"
    )


def print_table(rows: list[dict]) -> None:
    header = (
        f"{'workload':<8} {'method':<27} {'median s':>9} {'min s':>8} {'runs':>4} "
        f"{'peak extra MiB':>14} {'of it result':>12} {'speedup':>8} {'memory':>7} {'bound s':>8} "
        f"{'load':>5}  check"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        speedup = "base" if row["baseline"] else f"{row['speedup']:.2f}x"
        memory = "base" if row["baseline"] else f"{row['memory_ratio']:.3f}"
        bound = f"{row['bound_s']:.3f}" if row.get("bound_s") is not None else ""
        check_text = ("OK  " if row["check_ok"] else "FAIL ") + row["check"] if "check" in row else ""
        load = row["foreign_load_cores"]
        print(
            f"{row['workload']:<8} {METHOD_LABELS[row['method']]:<27} {row['median_s']:>9.3f} "
            f"{min(row['times']):>8.3f} {len(row['times']):>4} {row['peak_extra_mib']:>14.1f} "
            f"{row['result_mib']:>12.1f} {speedup:>8} {memory:>7} {bound:>8} "
            f"{load:>4.2f}{'!' if load > LOAD_WARNING else ' '}  {check_text}"
        )
    print(
        "speedup = baseline median / median; memory = peak extra / baseline's peak extra; 'of it result' = "
        "the returned arrays;\nbound = the physical lower bound on time; load = cores other processes took "
        f"during the timed runs (measured over at least {MIN_LOAD_WINDOW:g} s; '!' above {LOAD_WARNING}: "
        "timings disturbed)."
    )


#: Other processes using more than this many cores during a timed run make its timing suspect.
LOAD_WARNING = 0.1

TARGETS = [
    # (workload, method, what, attribute, comparison, value)
    ("W2", "fastinfluence", "speedup vs NumPy closed form", "speedup", ">=", 3.0),
    ("W2", "fastinfluence", "median / physical bound", "bound_ratio", "<=", 1.5),
    ("W2", "fastinfluence", "peak extra memory / NumPy's", "memory_ratio", "<=", 0.1),
    ("W3", "fastinfluence", "speedup vs NumPy closed form", "speedup", ">=", 6.0),
    ("W3", "fastinfluence", "median / double-precision GEMM bound", "bound_ratio", "<=", 1.3),
    ("W3", "fastinfluence", "peak extra memory / NumPy's", "memory_ratio", "<=", 0.1),
    ("W3", "fastinfluence", "peak extra memory (MiB)", "peak_extra_mib", "<=", 100.0),
    ("W4", "fastinfluence_cg", "speedup vs SciPy cg (solve only)", "speedup", ">=", 3.0),
    ("W4", "fastinfluence", "speedup vs SciPy cg (Influence end to end)", "speedup", ">=", 3.0),
    ("W5", "fastinfluence", "speedup vs NumPy closed form", "speedup", ">=", 3.0),
    ("W6L", "fastinfluence", "speedup vs statsmodels summary_frame (GLM)", "speedup", ">=", 1.0),
    ("W6S", "fastinfluence", "speedup vs statsmodels summary_frame (OLS)", "speedup", ">=", 1.0),
    (
        "W5",
        "fastinfluence",
        "peak extra memory outside the result / NumPy's",
        "memory_outside_ratio",
        "<=",
        0.1,
    ),
]


def evaluate_targets(rows: list[dict], quick: bool) -> list[dict]:
    found = {(row["workload"], row["method"]): row for row in rows}
    results = []
    for workload, method, what, attribute, comparison, value in TARGETS + fits.targets(workloads(quick)):
        row = found.get((workload, method))
        if row is None or attribute not in row:
            continue
        measured = row[attribute]
        met = measured >= value if comparison == ">=" else measured <= value
        results.append(
            {
                "workload": workload,
                "method": method,
                "target": f"{what} {comparison} {value:g}",
                "measured": measured,
                "met": bool(met),
            }
        )
    return results


# --------------------------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------------------------


def run_measured(args, spec: dict, threads: int | None) -> dict:
    """Wait for a quiet machine (``--max-wait``), then run one worker."""
    if args.max_wait > 0:
        load = wait_for_quiet(args.max_wait)
        if load > LOAD_WARNING:
            print(
                f"  (other processes still use {load:.2f} cores after waiting {args.max_wait:g} s; "
                "running anyway)",
                flush=True,
            )
    return run_worker(spec, threads)


def merge_rounds(results: list[dict]) -> dict:
    """One worker result from several rounds: all times, the largest peak and load, median phases."""
    merged = dict(results[-1])
    merged["times"] = [t for r in results for t in r["times"]]
    merged["peak_extra_mib"] = [m for r in results for m in r["peak_extra_mib"]]
    merged["foreign_load_cores"] = max(r["foreign_load_cores"] for r in results)
    merged["phases"] = {
        key: statistics.median(r["phases"][key] for r in results) for key in results[0]["phases"]
    }
    return merged


def _check_row(w, row: dict, outputs: dict) -> None:
    """A row's result against its workload's baseline (W0's rows are checked by fits.annotate)."""
    ours, base = outputs[row["method"]], outputs[w.methods[0]]
    if row["method"] in peers.PEER_MODULES:
        row["check_ok"], row["check"] = peers.check(w, row["method"], ours, base)
    elif not row["baseline"] and w.quantity == "diagnostics":
        row["check_ok"], row["check"] = diagnostics.check(ours, base)
    elif not row["baseline"] and w.quantity != "fit":
        row["check_ok"], row["check"] = check(w, row["method"], ours, base)


def benchmark(args, names: list[str], machine: dict, scratch: str) -> dict:
    all_workloads = workloads(args.quick)
    rows = []
    for name in names:
        w = all_workloads[name]
        methods = w.methods + peers.workload_peers(name, args.peers)
        print(f"\n{name}: {describe(w)}", flush=True)
        outputs, rounds = {}, {method: [] for method in methods}
        # methods alternate round by round, so that a slow spell of the machine hits all of them
        for _ in range(args.rounds):
            for method in methods:
                output = os.path.join(scratch, f"{name}_{method}.npz")
                spec = dict(
                    workload=name,
                    method=method,
                    quick=args.quick,
                    n_jobs=args.n_jobs,
                    repeats=args.repeats,
                    output=output,
                )
                rounds[method].append(run_measured(args, spec, None))
                outputs[method] = np.load(output)
        for method in methods:
            result = merge_rounds(rounds[method])
            phases = ", ".join(f"{k} {v:.3f}" for k, v in result["phases"].items())
            print(
                f"  {METHOD_LABELS[method]:<27} times {', '.join(f'{t:.3f}' for t in result['times'])} s; "
                f"peak extra {max(result['peak_extra_mib']):.1f} MiB; phases (median): {phases}; "
                f"other load {result['foreign_load_cores']:.2f} cores",
                flush=True,
            )
            rows.append(
                {
                    **result,
                    "median_s": statistics.median(result["times"]),
                    "peak_extra_mib": max(result["peak_extra_mib"]),
                    "baseline": method == w.methods[0],
                }
            )
        fit = rows[-1]
        print(
            f"  fit (untimed, fastinfluence {fit['fit_solver']}): {fit['fit_seconds']:.2f} s, "
            f"{fit['fit_iterations']} iterations, gradient norm {fit['fit_grad_norm']:.1e}; "
            f"X is {fit['data_mib']:.1f} MiB"
        )
        base = next(row for row in rows if row["workload"] == name and row["baseline"])
        iterations = None
        if w.quantity == "cg":
            iterations = int(outputs["fastinfluence_cg"]["iterations"].max())
        if w.quantity in ("fit", "diagnostics"):  # no single bound (iterations by solver; refits)
            limit = {"bytes_gb": float("nan"), "gflop": float("nan"), "bound_s": None}
        else:
            limit = physical_limit(w, base["data_mib"], iterations, machine)
        for row in rows:
            if row["workload"] != name:
                continue
            row["speedup"] = base["median_s"] / row["median_s"]
            row["memory_ratio"] = row["peak_extra_mib"] / max(base["peak_extra_mib"], 1e-9)
            outside = max(row["peak_extra_mib"] - row["result_mib"], 0.0)
            row["memory_outside_ratio"] = outside / max(base["peak_extra_mib"] - base["result_mib"], 1e-9)
            row.update(limit)
            if limit["bound_s"]:
                row["bound_ratio"] = row["median_s"] / limit["bound_s"]
            _check_row(w, row, outputs)
        workload_rows = [row for row in rows if row["workload"] == name]
        if w.quantity == "fit":  # every side against fastinfluence's solution, and the targets' ratios
            fits.annotate(workload_rows, outputs)
        ours = next(row for row in workload_rows if row["method"] == "fastinfluence")
        for row in workload_rows:
            if row["method"] in peers.PEER_MODULES:
                row["vs_fastinfluence"] = row["median_s"] / ours["median_s"]
                print(
                    f"  peer {METHOD_LABELS[row['method']]}: median {row['median_s']:.3f} s, "
                    f"{row['vs_fastinfluence']:.1f}x fastinfluence's {ours['median_s']:.3f} s; "
                    f"{'agrees' if row['check_ok'] else 'DISAGREES'} ({row['check']})"
                )
        if limit["bound_s"] is not None:
            print(
                f"  physical limit: {limit['bytes_gb']:.3f} GB to move, {limit['gflop']:.1f} GFLOP "
                f"-> at least {limit['bound_s']:.3f} s"
            )
    print()
    print_table(rows)
    targets = evaluate_targets(rows, args.quick)
    if targets:
        print(
            "\ntargets:"
            + (
                " (--quick: the targets are set for the full sizes; these are indicative only)"
                if args.quick
                else ""
            )
        )
        for t in targets:
            print(
                f"  {t['workload']} {METHOD_LABELS[t['method']]:<22} {t['target']:<52} measured "
                f"{t['measured']:8.3f}  {'MET' if t['met'] else 'MISSED'}"
            )
    failed = [row for row in rows if not row.get("check_ok", True)]
    return {"rows": rows, "targets": targets, "checks_failed": len(failed)}


def thread_scaling(args, names: list[str], thread_counts: list[int], scratch: str) -> dict:
    """fastinfluence (and with ``--with-baseline`` the NumPy closed form) at each thread count.

    ``n_jobs`` sets fastinfluence's OpenMP threads; OMP_NUM_THREADS and OPENBLAS_NUM_THREADS
    are set to the same count in the worker's environment so that BLAS follows. Speedups are
    relative to the first count given (normally 1); every result must match that run's.
    """
    all_workloads = workloads(args.quick)
    rows, failed = [], 0
    for name in names:
        w = all_workloads[name]
        if w.quantity not in ("matrix", "top_k_self"):
            print(f"\n{name}: skipped (thread scaling covers the dense workloads W1-W3)")
            continue
        print(f"\n{name}: {describe(w)}", flush=True)
        methods = w.methods if args.with_baseline else ("fastinfluence",)
        for method in methods:
            reference = None
            for threads in thread_counts:
                output = os.path.join(scratch, f"{name}_{method}_{threads}.npz")
                spec = dict(
                    workload=name,
                    method=method,
                    quick=args.quick,
                    n_jobs=threads,
                    repeats=args.repeats,
                    output=output,
                )
                result = run_measured(args, spec, threads)
                median = statistics.median(result["times"])
                arrays = np.load(output)
                if reference is None:
                    reference = (median, arrays)
                key = "matrix" if "matrix" in arrays else "self_influence"
                diff = relative_difference(arrays[key], reference[1][key])
                failed += int(diff > 1e-12)
                load = result["foreign_load_cores"]
                row = {
                    "workload": name,
                    "method": method,
                    "threads": threads,
                    "times": result["times"],
                    "median_s": median,
                    "speedup": reference[0] / median,
                    "diff_vs_first": diff,
                    "peak_extra_mib": max(result["peak_extra_mib"]),
                    "phases": result["phases"],
                    "foreign_load_cores": result["foreign_load_cores"],
                }
                rows.append(row)
                phases = ", ".join(f"{k} {v:.3f}" for k, v in result["phases"].items())
                print(
                    f"  {METHOD_LABELS[method]:<20} threads {threads:>2}: median {median:8.3f} s  speedup "
                    f"{row['speedup']:5.2f}x  (max rel diff vs {thread_counts[0]} thread(s) {diff:.0e}; "
                    f"other load {load:.2f} cores; {phases})",
                    flush=True,
                )
    cores = os.cpu_count() or 1
    if max(thread_counts) > cores:
        print(
            f"\nnote: this machine has {cores} cores; thread counts above that are oversubscribed and say "
            "nothing about scaling."
        )
    return {"scaling": rows, "checks_failed": failed}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--workloads",
        default="W0,W1,W2,W3,W4,W5,W6",
        help="comma-separated subset of W0-W6 (W0: W0L,W0P,W0S; W6: W6L,W6S,W6S100k)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke test, under a minute)")
    parser.add_argument("--repeats", type=int, default=0, help="timed runs per method (0: per workload)")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="fresh workers per method, the methods alternating (each runs --repeats times)",
    )
    parser.add_argument("--n-jobs", type=int, default=None, help="fastinfluence threads (default: all cores)")
    parser.add_argument(
        "--threads",
        default=None,
        help="thread-scaling mode: comma-separated thread counts, e.g. 1,2,4,8,16 (W2, W3)",
    )
    parser.add_argument(
        "--with-baseline",
        action="store_true",
        help="thread-scaling mode: also scale the NumPy closed form (BLAS threads)",
    )
    parser.add_argument(
        "--max-wait",
        type=float,
        default=None,
        help="before each measurement wait up to this many seconds for other processes to "
        "go quiet (default 60, with --quick 0: never wait)",
    )
    parser.add_argument("--json", default=None, help="also write every figure to this JSON file")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.max_wait is None:
        args.max_wait = 0.0 if args.quick else 60.0

    if args.worker is not None:
        print("RESULT " + json.dumps(worker(json.loads(args.worker))), flush=True)
        return 0

    names = [name.strip().upper() for name in args.workloads.split(",") if name.strip()]
    aliases = {"W0": ("W0L", "W0P", "W0S"), "W6": ("W6L", "W6S", "W6S100k")}
    names = [part for name in names for part in aliases.get(name, (name,))]
    unknown = sorted(set(names) - set(workloads(args.quick)))
    if unknown:
        parser.error(
            f"unknown workloads {unknown}; choose from W0 (W0L, W0P, W0S), W1-W5, W3R, W6 (W6L, W6S, W6S100k)"
        )
    args.peers = peers.available_peers()
    if args.peers and "W3" in names and "W3R" not in names:  # the peers run W3 reduced
        names.insert(names.index("W3") + 1, "W3R")
    started = time.perf_counter()
    command = "python benchmarks/run.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(command, flush=True)
    env = environment()
    if args.max_wait > 0:
        wait_for_quiet(args.max_wait)
    machine = measure_machine(args.quick)
    print_environment(env, machine)
    print(peers.peer_note(args.peers))
    report = {"command": command, "environment": env, "machine": machine, "quick": args.quick}
    with tempfile.TemporaryDirectory(prefix="fastinfluence-bench-") as scratch:
        if args.threads:
            counts = [int(t) for t in args.threads.split(",")]
            report.update(thread_scaling(args, names, counts, scratch))
        else:
            report.update(benchmark(args, names, machine, scratch))
    report["total_seconds"] = time.perf_counter() - started
    print(f"\ntotal {report['total_seconds']:.0f} s; {report['checks_failed']} check(s) failed")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=1, default=float)
    return 1 if report["checks_failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
