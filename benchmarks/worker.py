"""One (workload, method) measured in a fresh process: memory, foreign load, BLAS threads."""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np
from diagnostics import DIAGNOSTICS_METHODS
from fits import FIT_METHODS, gradient_diagnostics, model_class
from methods import METHODS, PhaseTimer, scipy_cg, scipy_cg_scores
from peers import PEER_METHODS
from workloads import MiB, data_bytes, make_data, workloads

# --------------------------------------------------------------------------------------------
# The worker: one (workload, method) in a fresh process
# --------------------------------------------------------------------------------------------


def _proc_status_mib(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"{field} not in /proc/self/status")


def _release_free_heap() -> None:
    """Return the allocator's free memory to the kernel (glibc ``malloc_trim``), so that the timed
    call's allocations show up in RSS instead of silently reusing pages freed during setup."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def busy_cpu_seconds() -> float:
    """Busy CPU seconds of all cores since boot (user, nice, system, irq, softirq, steal): /proc/stat."""
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, stat.readline().split()[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


#: Seconds over which the load of other processes is measured, at least.
MIN_LOAD_WINDOW = 1.0


class ForeignLoad:
    """CPU time other processes (and the hypervisor, as steal) took while a block ran, in cores.

    Busy CPU seconds of the whole machine minus this process's own, divided by the wall time:
    0 on a quiet machine, 1.0 when another process kept one core busy throughout.
    """

    def __enter__(self):
        self._wall, self._own, self._busy = time.perf_counter(), time.process_time(), busy_cpu_seconds()
        return self

    def __exit__(self, *exc):
        wall = max(time.perf_counter() - self._wall, 1e-9)
        foreign = (busy_cpu_seconds() - self._busy) - (time.process_time() - self._own)
        self.cores = max(0.0, foreign / wall)


def wait_for_quiet(max_wait: float, threshold: float = 0.2, interval: float = 1.0) -> float:
    """Wait (up to ``max_wait`` s) until other processes use less than ``threshold`` cores.

    Returns the load seen last; the benchmark still runs after ``max_wait`` and reports it.
    """
    deadline = time.perf_counter() + max_wait
    while True:
        with ForeignLoad() as load:
            time.sleep(interval)
        if load.cores < threshold or time.perf_counter() >= deadline:
            return load.cores


def blas_threads_info() -> list[dict]:
    from threadpoolctl import threadpool_info

    keys = ("user_api", "internal_api", "version", "num_threads", "architecture", "threading_layer")
    return [
        {**{key: pool.get(key) for key in keys}, "library": os.path.basename(pool.get("filepath", ""))}
        for pool in threadpool_info()
    ]


def worker(spec: dict) -> dict:
    w = workloads(spec["quick"])[spec["workload"]]
    n_jobs = spec["n_jobs"]
    X, y, X_test, y_test = make_data(w)
    start = time.perf_counter()
    model = model_class(w)(l2=w.l2, n_jobs=n_jobs).fit(X, y)
    fit_seconds = time.perf_counter() - start
    ctx = dict(
        X=X,
        y=y,
        X_test=X_test,
        y_test=y_test,
        model=model,
        theta=model.theta_,
        n_jobs=n_jobs,
        k=w.k,
        tol=w.tol,
        classes=w.classes,
        data=w.data,
        model_class=model_class(w),
    )
    method = {**METHODS, **FIT_METHODS, **PEER_METHODS, **DIAGNOSTICS_METHODS}[(w.quantity, spec["method"])]
    if hasattr(method, "prepare"):  # imports and first-call costs of a library, untimed (W0, the peers)
        method.prepare(ctx)
    repeats = spec["repeats"] or w.repeats
    times, extras, phases = [], [], []
    result = None
    loop_start = time.perf_counter()
    with ForeignLoad() as load:
        for _ in range(repeats):
            result = None
            gc.collect()
            _release_free_heap()
            peak_reset = _reset_peak_rss()
            rss_before = _proc_status_mib("VmRSS")
            timer = PhaseTimer()
            start = time.perf_counter()
            result = method(ctx, timer)
            times.append(time.perf_counter() - start)
            extras.append(_proc_status_mib("VmHWM") - rss_before if peak_reset else float("nan"))
            phases.append(timer.phases)
        # /proc/stat counts in clock ticks (10 ms): measure the load over at least a second,
        # idling after short runs (an idle worker adds nothing to it)
        time.sleep(max(0.0, MIN_LOAD_WINDOW - (time.perf_counter() - loop_start)))
    result_mib = sum(np.asarray(value).nbytes for value in result.values()) / MiB
    if method is scipy_cg:  # the scores for checking Influence.loss end to end, untimed
        result["matrix"] = scipy_cg_scores(ctx, result["solution"])
    if w.quantity == "fit":  # each side's ||grad R|| by fastinfluence's kernel, untimed
        result.update(gradient_diagnostics(ctx, result))
    np.savez(spec["output"], **result)
    return {
        "workload": w.name,
        "method": spec["method"],
        "times": times,
        "peak_extra_mib": extras,
        "result_mib": result_mib,
        "foreign_load_cores": load.cores,
        "phases": {name: statistics.median(p[name] for p in phases) for name in phases[0]},
        "fit_seconds": fit_seconds,
        "fit_iterations": model.n_iter_,
        "fit_solver": model.fit_method(model.theta_.size),
        "fit_grad_norm": model.grad_norm_,
        "data_mib": data_bytes(X) / MiB,
        "rss_before_mib": rss_before,
        "n_jobs": n_jobs,
        "threadpools": blas_threads_info(),
    }


def run_worker(spec: dict, threads: int | None) -> dict:
    """Run one worker in a fresh interpreter; ``threads`` caps OpenMP and BLAS through the environment."""
    env = dict(os.environ)
    if threads is not None:
        for key in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[key] = str(threads)
    proc = subprocess.run(
        [
            sys.executable,
            os.path.join(os.path.dirname(os.path.abspath(__file__)), "run.py"),
            "--worker",
            json.dumps(spec),
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"worker {spec['workload']}/{spec['method']} failed (exit {proc.returncode}):\n"
            f"{proc.stdout}\n{proc.stderr}"
        )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(f"worker printed no result:\n{proc.stdout}\n{proc.stderr}")
