"""`stnet predict` at scale: throughput and peak memory on folders of 100 / 1,000 / 10,000 images,
and a killed 10,000-image run resumed.

Synthetic folders of small JPEGs (64x48 noise, written once under ``~/.cache/stnet/bench/``) go
through ``stnet predict FOLDER --json-out X.jsonl --no-render`` in a child process with a
randomly initialised ``stnet_1s`` checkpoint (speed and memory do not depend on the weights'
values; ``--input-size`` sets the network input). For each folder:

  images/s   images over the time from the JSON Lines header (model loaded) to the end
             (polled by the parent), so start-up is not counted; ``wall_s`` includes it
  peak RSS   the child's ``ru_maxrss`` (``os.wait4``)
  CPU        the child's user + system CPU seconds (``os.wait4``); the CPU ms per extra image
             between two folder sizes does not depend on what else runs on the machine

The child runs with ``--threads`` torch threads (``OMP_NUM_THREADS``, default 1).

Then the 10,000 run once more, killed with SIGKILL once its file holds ``--kill-at`` lines, and
rerun with ``--resume``: the final file must hold each image exactly once.

    python benchmarks/predict_scale.py [--sizes 100 1000 10000] [--kill-at 3000]
        [--input-size 128 96] [--threads 1]

Writes benchmarks/results/predict_scale.json and predict_scale.md.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

# Torch threads of the child: on a shared machine two threads wait on each other (one forward took
# 1.7 s at 2 threads vs 0.05 s at 1 here at 32x32), which would hide what this measures.
ENV = dict(os.environ)
OUT = Path(__file__).resolve().parent / "results"
CACHE = Path(os.environ.get("STNET_BENCH_CACHE", Path.home() / ".cache" / "stnet" / "bench")) / "predict_scale"


def make_folder(n: int) -> Path:
    """``n`` 64x48 noise JPEGs, written once (a marker file says the folder is complete)."""
    d = CACHE / f"n{n}"
    if (d / ".complete").exists():
        return d
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    for i in range(n):
        cv2.imwrite(str(d / f"{i:06d}.jpg"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    (d / ".complete").write_text("")
    return d


def make_model(path: Path, input_size: tuple[int, int]) -> Path:
    import torch

    from stnet.models import create_model

    torch.manual_seed(0)
    net = create_model("stnet_1s", input_size=input_size).eval()
    cfg = {"model": {"name": "stnet_1s", "overrides": {}}, "input_size": list(input_size),
           "train": {"skeleton": "coco17"}, "val": {"skeleton": "coco17"}}
    torch.save({"model": net.state_dict(), "config": cfg, "epoch": 1}, path)
    return path


def lines_in(path: Path) -> int:
    try:
        with open(path, "rb") as fh:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


def predict(folder: Path, model: Path, out: Path, *, resume: bool = False, kill_at: int | None = None
            ) -> dict:
    """Run ``stnet predict`` in a child; its wall time, rate after start-up, peak RSS, exit status.
    ``kill_at``: SIGKILL the child once ``out`` holds that many lines (header included)."""
    cmd = [sys.executable, "-m", "stnet", "predict", str(folder), "--model", str(model), "--json-out", str(out),
           "--output-dir", str(out.parent), "--no-render", "--no-progress"] + (["--resume"] if resume else [])
    before = lines_in(out) if resume else 0
    t0 = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=ENV)
    t_start = None  # first new line (the header, or a resumed run's first record): model loaded
    status, usage = 0, None
    while True:
        pid, status, usage = os.wait4(child.pid, os.WNOHANG)
        if pid:
            break
        if t_start is None or kill_at:
            n = lines_in(out) if out.exists() else 0
            if t_start is None and n > before:
                t_start = time.perf_counter()
            if kill_at and n >= kill_at:
                os.kill(child.pid, signal.SIGKILL)
                _, status, usage = os.wait4(child.pid, 0)
                break
        time.sleep(0.05)
    t_end = time.perf_counter()
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
    log = child.stdout.read().decode(errors="replace") if child.stdout else ""
    done = lines_in(out) - max(before, 1)
    busy = t_end - (t_start or t0)
    return {"exit": child.returncode, "wall_s": round(t_end - t0, 2), "images_written": done,
            "images_per_s": round(done / busy, 2) if busy > 0 and done > 0 else None,
            "peak_rss_mib": round(usage.ru_maxrss / 1024, 1) if usage else None,
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2) if usage else None,
            "log_tail": log.strip().splitlines()[-1:] if log.strip() else []}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1000, 10000])
    ap.add_argument("--kill-at", type=int, default=3000, help="lines in the 10,000 file when it is killed")
    ap.add_argument("--input-size", type=int, nargs=2, default=[128, 96], metavar=("H", "W"))
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the child (OMP_NUM_THREADS)")
    args = ap.parse_args()
    ENV["OMP_NUM_THREADS"] = str(args.threads)
    from stnet.cpuinfo import cpu_info

    work = Path(tempfile.mkdtemp(prefix="stnet_scale_"))
    model = make_model(work / "model.pt", tuple(args.input_size))
    runs = {}
    for n in args.sizes:
        folder = make_folder(n)
        out = work / f"n{n}.jsonl"
        r = predict(folder, model, out)
        files = [json.loads(x)["file"] for x in out.read_text().splitlines()[1:]]
        r["unique_files"] = len(set(files))
        runs[str(n)] = r
        print(n, r, flush=True)
    largest = max(args.sizes)
    folder, out = make_folder(largest), work / "killed.jsonl"
    killed = predict(folder, model, out, kill_at=args.kill_at)
    at_kill = lines_in(out) - 1
    torn = not out.read_bytes().endswith(b"\n")
    resumed = predict(folder, model, out, resume=True)
    files = [json.loads(x)["file"] for x in out.read_text().splitlines()[1:]]
    kr = {"images": largest, "killed_after_s": killed["wall_s"], "exit_when_killed": killed["exit"],
          "complete_lines_at_kill": at_kill, "torn_last_line": torn, "resumed": resumed,
          "final_lines": len(files), "unique_files": len(set(files)),
          "redone": len(files) - len(set(files)), "missing": largest - len(set(files))}
    print("kill/resume", kr, flush=True)
    small, big = runs[str(min(args.sizes))], runs[str(largest)]
    # CPU seconds per extra image between consecutive folder sizes: the child's own CPU time, so
    # other processes on the machine do not change it (its wall-clock rate they do), and the
    # difference of two runs cancels the start-up. Flat = the work per image does not grow with
    # the folder.
    sizes = sorted(args.sizes)
    marginal = {f"{a}->{b}": round((runs[str(b)]["cpu_s"] - runs[str(a)]["cpu_s"]) / (b - a) * 1000, 2)
                for a, b in zip(sizes, sizes[1:])}
    import platform

    result = {
        "cpu": cpu_info().describe(), "python": platform.python_version(),
        "load_average_1min_at_end": round(os.getloadavg()[0], 1),
        "command": "python benchmarks/predict_scale.py " + " ".join(sys.argv[1:]),
        "model": f"stnet_1s, random weights, input {args.input_size[0]}x{args.input_size[1]}, whole-image box, "
                 f"{args.threads} torch thread(s)",
        "images": "64x48 noise JPEGs", "runs": runs, "kill_resume": kr,
        "rss_ratio_largest_over_smallest": round(big["peak_rss_mib"] / small["peak_rss_mib"], 3),
        "rate_ratio_largest_over_smallest": round(big["images_per_s"] / small["images_per_s"], 3),
        "cpu_ms_per_extra_image": marginal,
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "predict_scale.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = ["# `stnet predict` at scale (JSON Lines output, --resume)", "",
             f"CPU: {result['cpu']}; load average at the end {result['load_average_1min_at_end']} "
             "(a training run shared the machine)", f"Model: {result['model']}; images: {result['images']}",
             f"Command: `{result['command']}`", "",
             "| images | images/s (after start-up) | wall s | child CPU s | peak RSS MiB | lines = unique files |",
             "|---:|---:|---:|---:|---:|:---:|"]
    for n, r in runs.items():
        lines.append(f"| {int(n):,} | {r['images_per_s']} | {r['wall_s']} | {r['cpu_s']} | {r['peak_rss_mib']} | "
                     f"{r['images_written'] == r['unique_files'] == int(n)} |")
    lines += ["", f"Peak RSS {largest:,} / {min(args.sizes):,}: {result['rss_ratio_largest_over_smallest']}x; "
              f"images/s {largest:,} / {min(args.sizes):,}: {result['rate_ratio_largest_over_smallest']}x.",
              "CPU ms per extra image (the child's CPU time, start-up cancelled): " + ", ".join(
                  f"{k} images: {v}" for k, v in marginal.items()) + ".", "",
              f"Kill and resume ({largest:,} images): SIGKILL after {kr['killed_after_s']} s with "
              f"{kr['complete_lines_at_kill']} complete lines (torn last line: {kr['torn_last_line']}); "
              f"`--resume` wrote {resumed['images_written']} more in {resumed['wall_s']} s; final file "
              f"{kr['final_lines']} records, {kr['unique_files']} unique, {kr['redone']} redone, "
              f"{kr['missing']} missing."]
    (OUT / "predict_scale.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
