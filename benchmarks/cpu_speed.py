"""CPU inference speed: stnet_1s against the hrnet_w32 baseline, in one process.

A thin wrapper around :mod:`stnet.apps.bench` (also ``stnet bench``): PyTorch eager (as built, BatchNorm
folded, folded + channels-last), onnxruntime and OpenVINO f32 / bf16 (when installed), latency at
batch 1 and throughput at batch 8 (/ 32), at 256x192 and the shipped model's 128x96 in the same
interleaved rounds, medians, ratios against the torch optimised path and stnet / hrnet; GPU rows
too when CUDA is present.

    python benchmarks/cpu_speed.py [--models stnet_1s hrnet_w32] [--batches 1 8] [--sizes 256x192 128x96]
                                   [--rounds 10] [--threads 2] [--backends ...] [--no-openvino]
                                   [--estimator-batches 1]

The estimator_* rows time ``PoseEstimator.heatmaps`` (torch backend vs the OpenVINO backends), the
path the issue-15 "done when" ratio is stated for.

Writes benchmarks/results/cpu_speed.json and cpu_speed.md.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from stnet.apps.bench import format_table, run_benchmark, write_results

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["stnet_1s", "hrnet_w32"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sizes", nargs="+", default=["256x192", "128x96"])
    ap.add_argument("--backends", nargs="+", default=None, help="time only these backends")
    ap.add_argument("--no-openvino", action="store_true")
    ap.add_argument("--estimator-batches", nargs="*", type=int, default=[1],
                    help="batch sizes of the PoseEstimator.heatmaps rows (none: no rows)")
    ap.add_argument("--out", default=str(RESULTS / "cpu_speed"))
    args = ap.parse_args()
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes]
    result = run_benchmark(args.models, args.batches, sizes[0], rounds=args.rounds, warmup=args.warmup,
                           threads=args.threads, sizes=sizes, backends=args.backends,
                           openvino=False if args.no_openvino else None,
                           estimator_batches=tuple(args.estimator_batches),
                           command=" ".join(["python", "benchmarks/cpu_speed.py", *sys.argv[1:]]))
    write_results(result, args.out)
    print(format_table(result))


if __name__ == "__main__":
    main()
