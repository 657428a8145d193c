#!/usr/bin/env python
"""Out of core on one machine: fastinfluence.dask on the threaded scheduler over a dataset larger than memory.

    python benchmarks/out_of_core.py --dir /big/disk/ooc                  # 2 x this machine's RAM (memmap)
    python benchmarks/out_of_core.py --dir /big/disk/ooc --size-gib 8     # a smaller run first
    python benchmarks/out_of_core.py --dir /big/disk/ooc --format parquet --size-gib 4
    python benchmarks/out_of_core.py --dir /big/disk/ooc --json ooc.json --keep

Not a test (it runs for tens of minutes at full size). The script generates, once, a seeded
logistic-regression dataset of ``--size-gib`` GiB in ``--dir`` (default twice the machine's RAM):

- ``memmap``: ``X.npy`` (n x d float32, C order) and ``y.npy`` (int8 labels in {0, 1}), read
  through ``numpy.load(mmap_mode="r")`` and ``fastinfluence.dask.from_memmap`` in row chunks;
- ``parquet``: a folder of Parquet files (d float32 feature columns and the ``label`` column,
  uncompressed), read by ``dask.dataframe.read_parquet``.

It then times, on Dask's default threaded scheduler (one task per core, one kernel thread per
task), exactly what a user would run:

1. ``fastinfluence.dask.fit`` of ``LogisticRegression(l2=1e-4)`` (one pass per Newton iteration);
2. ``fastinfluence.dask.Influence`` (one pass: gradient and Hessian at the optimum);
3. ``top_k`` of 100 test points, k = 10 (one pass);
4. ``self_influence`` of every training row, stored into a ``numpy.memmap`` with
   ``dask.array.store`` (one pass).

Reported per phase: wall time, passes over the data, rows per second (n x passes / time) and
peak memory of this process: peak RSS (VmHWM, reset per phase through /proc/self/clear_refs)
and the peak of its anonymous part (RssAnon, sampled every 0.2 s). File-backed pages of the
memory map count in RSS but are page cache the kernel reclaims at will; RssAnon is the memory
the computation itself holds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

GiB = 2.0**30
SEED = 20240611
L2 = 1e-4


# --------------------------------------------------------------------------------------------
# Memory of this process
# --------------------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def machine_ram_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


class PeakMemory:
    """Peak VmHWM (reset at start) and peak sampled RssAnon while the block runs."""

    def __init__(self, interval=0.2):
        self.interval = interval

    def __enter__(self):
        try:  # "5" resets the peak-RSS counter VmHWM (Linux >= 4.0)
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass
        self.peak_anon_kib = _status_kib("RssAnon")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(self.interval):
            self.peak_anon_kib = max(self.peak_anon_kib, _status_kib("RssAnon"))

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_anon_kib = max(self.peak_anon_kib, _status_kib("RssAnon"))
        self.peak_rss_kib = _status_kib("VmHWM")
        return False


# --------------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------------


def true_parameters(d):
    rng = np.random.default_rng(SEED)
    return rng.standard_normal(d) / np.sqrt(d), 0.3


def make_block(seed_sequence, rows, d):
    """Unit-variance uniform features (float32) and labels drawn from the logistic model."""
    rng = np.random.default_rng(seed_sequence)
    w, b = true_parameters(d)
    X = rng.random((rows, d), dtype=np.float32)
    X -= np.float32(0.5)
    X *= np.float32(np.sqrt(12.0))
    eta = X @ w.astype(np.float32) + np.float32(b)
    y = (rng.random(rows, dtype=np.float32) < 1.0 / (1.0 + np.exp(-eta))).astype(np.int8)
    return X, y


def blocks(n, block_rows):
    return [(start, min(n, start + block_rows)) for start in range(0, n, block_rows)]


def generate_memmap(folder, n, d, block_rows, threads):
    X = np.lib.format.open_memmap(
        os.path.join(folder, "X.npy.partial"), mode="w+", dtype=np.float32, shape=(n, d)
    )
    y = np.lib.format.open_memmap(os.path.join(folder, "y.npy.partial"), mode="w+", dtype=np.int8, shape=(n,))
    spans = blocks(n, block_rows)
    seeds = np.random.SeedSequence(SEED).spawn(len(spans))

    def write(i):
        start, stop = spans[i]
        X[start:stop], y[start:stop] = make_block(seeds[i], stop - start, d)

    with ThreadPoolExecutor(threads) as pool:
        for done, _ in enumerate(pool.map(write, range(len(spans))), 1):
            if done % max(1, len(spans) // 20) == 0:
                print(f"  generated {done}/{len(spans)} blocks", flush=True)
    X.flush()
    y.flush()
    os.replace(os.path.join(folder, "X.npy.partial"), os.path.join(folder, "X.npy"))
    os.replace(os.path.join(folder, "y.npy.partial"), os.path.join(folder, "y.npy"))


def generate_parquet(folder, n, d, block_rows, threads):
    import pyarrow as pa
    import pyarrow.parquet as pq

    partial = os.path.join(folder, "parquet.partial")
    os.makedirs(partial, exist_ok=True)
    spans = blocks(n, block_rows)
    seeds = np.random.SeedSequence(SEED).spawn(len(spans))
    names = [f"x{j}" for j in range(d)]

    def write(i):
        start, stop = spans[i]
        X, y = make_block(seeds[i], stop - start, d)
        table = pa.table([pa.array(X[:, j]) for j in range(d)] + [pa.array(y)], names=[*names, "label"])
        pq.write_table(
            table,
            os.path.join(partial, f"part-{i:05d}.parquet"),
            compression="none",
            row_group_size=stop - start,
        )

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, range(len(spans))))
    os.replace(partial, os.path.join(folder, "parquet"))


def dataset(folder, fmt, size_gib, d, block_rows, threads):
    """(description, X, y) as dask collections over the files, generating them first if needed."""
    os.makedirs(folder, exist_ok=True)
    n = int(size_gib * GiB) // (4 * d)
    meta_path = os.path.join(folder, f"{fmt}.json")
    meta = {"format": fmt, "n": n, "d": d, "seed": SEED}
    exists = False
    if os.path.exists(meta_path):
        with open(meta_path) as stored:
            exists = json.load(stored) == meta
    if not exists:
        for stale in ("X.npy", "y.npy", "parquet", f"{fmt}.json"):
            path = os.path.join(folder, stale)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
        free = shutil.disk_usage(folder).free
        need = n * (4 * d + 1) + n * 8  # features, labels, the stored self-influence
        if need > free:
            raise SystemExit(
                f"{need / GiB:.1f} GiB needed in {folder}, {free / GiB:.1f} GiB free: "
                "use a smaller --size-gib"
            )
        print(
            f"generating {n:,} rows x {d} float32 features ({n * 4 * d / GiB:.1f} GiB, {fmt}) in {folder}",
            flush=True,
        )
        start = time.perf_counter()
        (generate_memmap if fmt == "memmap" else generate_parquet)(folder, n, d, block_rows, threads)
        with open(meta_path, "w") as stored:
            json.dump(meta, stored)
        print(f"  done in {time.perf_counter() - start:.0f} s", flush=True)
    if fmt == "memmap":
        import fastinfluence.dask as fid

        # chunks are views of the mapped file (dask.array.from_array would copy the whole map)
        X = fid.from_memmap(np.load(os.path.join(folder, "X.npy"), mmap_mode="r"), chunk_rows=block_rows)
        y = np.load(os.path.join(folder, "y.npy"), mmap_mode="r")  # a memory map is chunked like X
        return n, X, y
    import dask.dataframe as dd

    frame = dd.read_parquet(os.path.join(folder, "parquet"))
    return n, frame, "label"


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


def main(argv=None):
    ram = machine_ram_bytes()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", required=True, help="folder for the generated data (needs --size-gib free)")
    parser.add_argument(
        "--size-gib",
        type=float,
        default=round(2 * ram / GiB, 1),
        help="size of X in GiB (default: twice this machine's RAM)",
    )
    parser.add_argument("--format", choices=("memmap", "parquet"), default="memmap")
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument(
        "--chunk-rows", type=int, default=2**20, help="rows per chunk (and per generated block)"
    )
    parser.add_argument("--test-points", type=int, default=100)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--json", help="write the results here")
    parser.add_argument(
        "--keep", action="store_true", help="keep the generated data (default: delete it at the end)"
    )
    args = parser.parse_args(argv)

    import dask

    import fastinfluence as fi
    import fastinfluence.dask as fid

    n, X, y = dataset(args.dir, args.format, args.size_gib, args.features, args.chunk_rows, args.threads)
    d = args.features
    rng = np.random.default_rng(SEED + 1)
    X_test, y_test = make_block(np.random.SeedSequence(SEED + 2), args.test_points, d)
    results = {
        "machine": {
            "cpus": os.cpu_count(),
            "ram_gib": round(ram / GiB, 1),
            "python": platform.python_version(),
        },
        "data": {
            "format": args.format,
            "rows": n,
            "features": d,
            "dtype": "float32",
            "size_gib": round(n * d * 4 / GiB, 2),
            "chunk_rows": args.chunk_rows,
            "size_over_ram": round(n * d * 4 / ram, 2),
        },
        "phases": [],
    }
    del rng
    print(
        f"data: {n:,} rows x {d} float32 = {n * d * 4 / GiB:.1f} GiB ({n * d * 4 / ram:.2f} x RAM), "
        f"{args.format}, chunks of {args.chunk_rows:,} rows; threaded scheduler, {args.threads} threads",
        flush=True,
    )

    def phase(name, passes_of, run):
        with PeakMemory() as memory:
            cpu = os.times()
            start = time.perf_counter()
            value = run()
            seconds = time.perf_counter() - start
            cpu_seconds = sum(os.times()[:2]) - sum(cpu[:2])
        passes = passes_of(value)
        row = {
            "phase": name,
            "seconds": round(seconds, 1),
            "passes": passes,
            "rows_per_second": round(n * passes / seconds),
            "cpu_seconds": round(cpu_seconds, 1),
            "peak_rss_gib": round(memory.peak_rss_kib / 2**20, 2),
            "peak_anon_gib": round(memory.peak_anon_kib / 2**20, 2),
            "load_average_after": os.getloadavg()[0],
        }
        results["phases"].append(row)
        print(
            f"{name:<16} {seconds:8.1f} s  {passes:3d} passes  "
            f"{row['rows_per_second'] / 1e6:7.2f} M rows/s  "
            f"cpu {cpu_seconds / seconds:4.2f} cores  peak RSS {row['peak_rss_gib']:6.2f} GiB  "
            f"peak anonymous {row['peak_anon_gib']:5.2f} GiB  (load average {os.getloadavg()[0]:.1f})",
            flush=True,
        )
        return value

    with dask.config.set(scheduler="threads", num_workers=args.threads):
        model = phase("fit", lambda m: m.dask_passes_, lambda: fid.fit(fi.LogisticRegression(l2=L2), X, y))
        print(
            f"  {model.n_iter_} Newton iterations, converged={model.converged_}, "
            f"gradient norm {model.grad_norm_:.2e}",
            flush=True,
        )
        inf = phase("Influence", lambda i: i.passes_, lambda: fid.Influence(model, X, y))
        top = phase(
            f"top_k (m={args.test_points})",
            lambda _: 1,
            lambda: inf.top_k(X_test, y_test.astype(np.float64), k=args.k),
        )
        out_path = os.path.join(args.dir, "self_influence.npy")
        out = np.lib.format.open_memmap(out_path, mode="w+", dtype=np.float64, shape=(n,))

        def store_self_influence():
            dask.array.store(inf.self_influence(), out, lock=False)
            return out

        phase("self_influence", lambda _: 1, store_self_influence)
    worst = np.argpartition(out, 10)[:10]
    results["fit"] = {
        "n_iter": model.n_iter_,
        "converged": model.converged_,
        "grad_norm": model.grad_norm_,
        "theta_error": float(np.linalg.norm(model.coef_ - true_parameters(d)[0])),
    }
    results["check"] = {
        "most_helpful_row_for_test_0": int(top.helpful_indices[0, 0]),
        "largest_self_influence_rows": sorted(int(i) for i in worst),
    }
    total = sum(p["seconds"] for p in results["phases"])
    passes = sum(p["passes"] for p in results["phases"])
    results["total"] = {
        "seconds": round(total, 1),
        "passes": passes,
        "rows_per_second": round(n * passes / total),
        "peak_rss_gib": max(p["peak_rss_gib"] for p in results["phases"]),
        "peak_anon_gib": max(p["peak_anon_gib"] for p in results["phases"]),
    }
    print(
        f"total            {total:8.1f} s  {passes:3d} passes  {n * passes / total / 1e6:7.2f} M rows/s",
        flush=True,
    )
    os.remove(out_path)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    if not args.keep:
        for stale in ("X.npy", "y.npy", "parquet", f"{args.format}.json"):
            path = os.path.join(args.dir, stale)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.remove(path)
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
