"""CPU inference speed: stnet_1s against the hrnet_w32 baseline, in one process.

A thin wrapper around :mod:`stnet.bench` (also ``stnet bench``): PyTorch eager (as built, BatchNorm
folded, folded + channels-last) and onnxruntime, latency at batch 1 and throughput at batch 8 / 32,
at 256x192, interleaved rounds, medians and ratios; GPU rows too when CUDA is present.

    python benchmarks/cpu_speed.py [--models stnet_1s hrnet_w32] [--batches 1 8 32] [--rounds 10] [--threads 2]

Writes benchmarks/results/cpu_speed.json and cpu_speed.md.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from stnet.bench import format_table, run_benchmark, write_results

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["stnet_1s", "hrnet_w32"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", default="256x192")
    ap.add_argument("--out", default=str(RESULTS / "cpu_speed"))
    args = ap.parse_args()
    size = tuple(int(v) for v in args.size.lower().split("x"))
    result = run_benchmark(args.models, args.batches, size, rounds=args.rounds, warmup=args.warmup,
                           threads=args.threads)
    write_results(result, args.out)
    print(format_table(result))


if __name__ == "__main__":
    main()
