"""Start-up time of the OpenVINO backend, cold and warm: ``PoseEstimator.from_pretrained(NAME,
backend="openvino")`` plus its first heatmap call, first with an empty start-up cache (ONNX export,
conversion, compilation) and then again with the cache the first start filled. Each start runs in a
fresh process, as a user's second run would.

    python benchmarks/openvino_startup.py [--model stnet_1s.lspet_128x96] [--precision auto]

Writes benchmarks/results/openvino_startup.{json,md}, labelled with the CPU model.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

CHILD = """
import sys, time
t0 = time.perf_counter()
import numpy as np
from stnet import PoseEstimator
est = PoseEstimator.from_pretrained(sys.argv[1], backend="openvino", precision=sys.argv[2])
h, w = est.input_size
est.heatmaps(np.zeros((1, 3, h, w), np.float32))
print(time.perf_counter() - t0, est.backend.precision)
"""


def start(model: str, precision: str, cache_root: str) -> tuple[float, str]:
    env = {**os.environ, "STNET_CACHE_DIR": cache_root}
    out = subprocess.run([sys.executable, "-c", CHILD, model, precision], env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[-2]), out[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="stnet_1s.lspet_128x96")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--out", default=str(RESULTS / "openvino_startup"))
    args = ap.parse_args()
    from stnet.cpuinfo import cpu_info

    with tempfile.TemporaryDirectory() as cache:
        cold, precision = start(args.model, args.precision, cache)
        warm, _ = start(args.model, args.precision, cache)
    cpu = cpu_info()
    cmd = f"python benchmarks/openvino_startup.py --model {args.model} --precision {args.precision}"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(
        {"cpu": dataclasses.asdict(cpu), "cpu_description": cpu.describe(), "command": cmd, "model": args.model,
         "precision": precision, "cold_s": cold, "warm_s": warm}, indent=2) + "\n")
    lines = ["# OpenVINO backend start-up (import, load, export/compile or cache, first call)", "",
             f"CPU: {cpu.describe()}.", "", f"Command: `{cmd}`", "",
             "| model | precision | empty cache | second start (cache filled) |", "|---|---|---|---|",
             f"| {args.model} | {precision} | {cold:.1f} s | {warm:.1f} s |"]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
