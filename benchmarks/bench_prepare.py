"""Audio validation throughput in jobs/prepare.py: one file at a time vs the thread pool.

    python benchmarks/bench_prepare.py [--clips-per-class 100] [--seconds 4] [--workers 0]

Prints files/s for each and the ratio (decoding and hashing release the GIL, so threads scale with
cores until the disk is the limit).
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from synthio_ray.config import DataConfig  # noqa: E402
from synthio_ray.data.embedded import write_embedded_dataset  # noqa: E402
from synthio_ray.data.sources import read_source  # noqa: E402
from synthio_ray.data.validate import validate_rows  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips-per-class", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--workers", type=int, default=0, help="0 = one per core")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        manifest = write_embedded_dataset(Path(tmp), args.clips_per_class, args.seconds)
        src = read_source(manifest, DataConfig())
        validate_rows(copy.deepcopy(src.rows), src.root, 1)  # warm the page cache for both runs
        times = {}
        for name, workers in (("serial", 1), ("pool", args.workers)):
            rows = copy.deepcopy(src.rows)
            t0 = time.perf_counter()
            validate_rows(rows, src.root, workers)
            times[name] = time.perf_counter() - t0
            assert all(r["error"] is None for r in rows)
        n = len(src.rows)
        for name, t in times.items():
            print(f"{name:>6}: {n / t:8.1f} files/s ({t:.2f} s for {n} files of {args.seconds:g} s)")
        print(f" ratio: {times['serial'] / times['pool']:.2f}x with {args.workers or os.cpu_count()} workers")


if __name__ == "__main__":
    main()
