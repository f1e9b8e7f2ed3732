#!/usr/bin/env python3
"""One device call for a lent GPU (a 15-minute lease: one command of at most 10 minutes, at most
8 result files of 16 MiB under $OUT). Three measurements, in this order:

1. pipeline: stnet_1s training img/s and GPU utilisation with the DataLoader pipeline
   (``runtime.augment_on=workers``) and with the device pipeline (``device``), same workers;
2. claim: the paper's central claim at 256x192 on LSP-Extended: stnet_1s against hrnet_w32,
   both from scratch, the same recipe and the same number of epochs (chosen from the measured
   speed to fit the budget), run side by side on the GPU with the device pipeline; PCK@0.2 at
   every validated epoch;
3. inference: stnet_1s/2s/3s and hrnet_w32 at 256x192, bf16 autocast, channels-last, batch 1/64/256,
   eager against the CUDA-graph fast path (stnet.backends.fast_cuda.FastRunner).

Writes 6 files to $OUT: summary.json, summary.md, gpu_util.csv, claim_stnet_1s.jsonl,
claim_hrnet_w32.jsonl, log.txt (the training logs, cut to their last 2 MB).

Prepare once, on the CPU machine (39.2 MiB: 160x120 JPEG crops of LSP-Extended's 9,000 persons):

    stnet cache configs/stnet_1s_lspet_256x192_b32x1_e60.yaml -o .carry/lspet_256x192_q75.npz \\
        --resolution 0.625 --quality 75

Rehearse on the CPU (tiny sizes, about 4 minutes on 2 shared cores; writes all six files):

    OUT=/tmp/gpu_out .venv/bin/python tools/gpu_device_check.py --rehearsal

Device call (the budget covers the command; the machine's start comes on top):

    run(command="python3 tools/gpu_device_check.py", carry=[".carry"], timeout_s=600)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

RECIPE = "configs/stnet_1s_lspet_256x192_b32x1_e60.yaml"
TRAIN_PERSONS = 8100


class UtilSampler:
    """GPU utilisation and memory every 0.5 s (NVML, else nvidia-smi; nothing on a CPU)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float, float]] = []  # (time, util %, MiB used)
        self._stop = threading.Event()
        self._read = self._nvml() or self._smi()
        self.source = getattr(self._read, "source", None)
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def _nvml() -> Any:
        try:
            import pynvml

            pynvml.nvmlInit()
            h = pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:  # no NVML or no GPU: try nvidia-smi
            return None

        def read() -> tuple[float, float]:
            return (float(pynvml.nvmlDeviceGetUtilizationRates(h).gpu),
                    pynvml.nvmlDeviceGetMemoryInfo(h).used / 2**20)
        read.source = "nvml"  # type: ignore[attr-defined]
        return read

    @staticmethod
    def _smi() -> Any:
        cmd = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits"]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None

        def read() -> tuple[float, float]:
            u, m = subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.split("\n")[0].split(",")
            return float(u), float(m)
        read.source = "nvidia-smi"  # type: ignore[attr-defined]
        return read

    def _loop(self) -> None:
        while not self._stop.wait(0.5):
            try:
                u, m = self._read()
            except Exception:  # a missed sample is no reason to stop measuring
                continue
            self.samples.append((time.time(), u, m))

    def start(self) -> "UtilSampler":
        if self._read is not None:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def window(self, t0: float, t1: float) -> dict[str, Any]:
        """Utilisation between ``t0`` and ``t1``, from the first busy sample on (start-up excluded)."""
        s = [x for x in self.samples if t0 <= x[0] <= t1]
        busy = next((i for i, x in enumerate(s) if x[1] > 0), None)
        if busy is None:
            return {"samples": len(s), "util_mean": None, "util_median": None, "mem_max_mib": None}
        s = s[busy:]
        return {"samples": len(s), "util_mean": round(statistics.fmean(x[1] for x in s), 1),
                "util_median": statistics.median(x[1] for x in s), "mem_max_mib": round(max(x[2] for x in s))}


class Log:
    def __init__(self, out: Path) -> None:
        self.path = out / "log.txt"
        self.path.write_text("")

    def __call__(self, msg: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {msg}"
        print(line, flush=True)
        with open(self.path, "a") as f:
            f.write(line + "\n")


def train_cmd(args: argparse.Namespace, model: str, run_dir: Path, sets: dict[str, Any]) -> list[str]:
    base = {"model.name": model, "train.kind": "cache", "train.ann_file": args.cache, "val.kind": "cache",
            "val.ann_file": args.cache, "runtime.batch_size": args.batch, "optim.lr": args.lr,
            "runtime.workers": args.workers, "runtime.amp": "auto", "runtime.channels_last": "true",
            "runtime.tensorboard": "false", "runtime.log_interval": 1000, "schedule.decay": "cosine",
            "schedule.warmup_iters": args.warmup_iters, "schedule.min_lr_ratio": 0.0,
            "input_size": f"[{args.input_hw[0]},{args.input_hw[1]}]"}
    base.update(sets)
    if args.rehearsal:
        base.update({"runtime.limit_train": args.batch * 2, "runtime.limit_val": 16, "eval.flip_test": "false"})
    cmd = [sys.executable, "-m", "stnet.cli", "train", RECIPE, "--output-dir", str(run_dir)]
    for k, v in base.items():
        cmd += ["--set", f"{k}={v}"]
    return cmd


def launch(cmd: list[str], log_file: Path, threads: int | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"}
    if threads:  # a CPU rehearsal: trainings side by side must not fight over a few shared cores
        env["OMP_NUM_THREADS"] = str(threads)
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(log_file, "w"), stderr=subprocess.STDOUT)


def wait(procs: list[subprocess.Popen], deadline: float, log: Log) -> list[int | None]:
    while any(p.poll() is None for p in procs) and time.time() < deadline:
        time.sleep(1)
    for p in procs:
        if p.poll() is None:
            log(f"pid {p.pid} over its time: terminated")
            p.terminate()
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
    return [p.returncode for p in procs]


def metrics(run_dir: Path) -> list[dict[str, Any]]:
    f = run_dir / "metrics.jsonl"
    return [json.loads(x) for x in f.read_text().splitlines() if x.strip()] if f.is_file() else []


def pipeline_phase(args: argparse.Namespace, work: Path, util: UtilSampler, log: Log, seconds: float) -> dict[str, Any]:
    """stnet_1s img/s and GPU utilisation, DataLoader pipeline against the device pipeline."""
    out: dict[str, Any] = {"model": "stnet_1s", "num_workers": args.workers, "batch": args.batch,
                           "seconds_each": seconds}
    for mode in ("workers", "device"):
        run_dir = work / f"pipeline_{mode}"
        # short epochs, many of them: the median epoch after the first (worker start, cuDNN tuning)
        sets = {"runtime.augment_on": mode, "schedule.epochs": 500, "runtime.max_iters_per_epoch": args.pipeline_iters,
                "schedule.time_budget_min": round(seconds / 60, 3), "runtime.val_interval": 1000,
                "runtime.limit_val": 128}
        t0 = time.time()
        rc = wait([launch(train_cmd(args, "stnet_1s", run_dir, sets), work / f"pipeline_{mode}.log",
                          1 if args.rehearsal else None)],
                  t0 + seconds + args.grace_s, log)[0]
        t1 = time.time()
        recs = metrics(run_dir)
        rates = [r["img_per_s"] for r in recs[1:]] or [r["img_per_s"] for r in recs]
        out[mode] = {"returncode": rc, "wall_s": round(t1 - t0, 1), "epochs": len(recs),
                     "img_per_s_median": round(statistics.median(rates), 1) if rates else None,
                     "img_per_s_epochs": [round(r, 1) for r in rates], "gpu": util.window(t0, t1)}
        log(f"pipeline {mode}: {out[mode]}")
    w, d = out["workers"].get("img_per_s_median"), out["device"].get("img_per_s_median")
    out["speedup"] = round(d / w, 2) if w and d else None
    return out


def claim_phase(args: argparse.Namespace, work: Path, util: UtilSampler, log: Log, seconds: float,
                stnet_rate: float | None, out_dir: Path) -> dict[str, Any]:
    """stnet_1s against hrnet_w32 from scratch, equal epochs, side by side."""
    # Side by side on one GPU, HRNet-W32 costing about twice stnet_1s per image: the pair needs
    # ~3 stnet-images of GPU time per epoch-image (an estimate; the time budget guards the rest).
    rate = stnet_rate or 100.0
    train_s = 0.8 * seconds
    epochs = args.claim_epochs or max(1, min(60, int(train_s * rate / (3 * TRAIN_PERSONS))))
    if args.rehearsal:
        epochs = args.claim_epochs or 2
    val_interval = max(1, epochs // 6)
    log(f"claim: {epochs} epochs each (stnet_1s alone: {rate} img/s), validated every {val_interval}")
    sets = {"runtime.augment_on": args.claim_augment_on, "schedule.epochs": epochs,
            "schedule.time_budget_min": round(seconds / 60, 3), "runtime.val_interval": val_interval,
            "runtime.workers": args.claim_workers}
    t0 = time.time()
    procs = {m: launch(train_cmd(args, m, work / f"claim_{m}", sets), work / f"claim_{m}.log",
                       1 if args.rehearsal else None)
             for m in ("stnet_1s", "hrnet_w32")}
    rcs = wait(list(procs.values()), t0 + seconds + args.grace_s, log)
    t1 = time.time()
    res: dict[str, Any] = {"epochs_planned": epochs, "val_interval": val_interval, "input_size": list(args.input_hw),
                           "recipe": RECIPE, "batch": args.batch, "lr": args.lr, "augment_on": args.claim_augment_on,
                           "workers_each": args.claim_workers, "wall_s": round(t1 - t0, 1), "gpu": util.window(t0, t1)}
    pck: dict[str, dict[int, float]] = {}
    for (m, _), rc in zip(procs.items(), rcs):
        recs = metrics(work / f"claim_{m}")
        src = work / f"claim_{m}" / "metrics.jsonl"
        # written even when empty: a missing file would look like a lost transfer
        (out_dir / f"claim_{m}.jsonl").write_text(src.read_text() if src.is_file() else "")
        pck[m] = {r["epoch"]: r["metric"] for r in recs if "metric" in r}
        rates = [r["img_per_s"] for r in recs[1:]] or [r["img_per_s"] for r in recs]
        res[m] = {"returncode": rc, "epochs": len(recs), "final_pck": recs[-1].get("metric") if recs else None,
                  "best_pck": max(pck[m].values()) if pck[m] else None,
                  "img_per_s_median": round(statistics.median(rates), 1) if rates else None,
                  "train_minutes": round(sum(r.get("epoch_time_s", 0) for r in recs) / 60, 2)}
    common = sorted(set(pck["stnet_1s"]) & set(pck["hrnet_w32"]))
    res["pck_at_equal_epochs"] = [{"epoch": e, "stnet_1s": pck["stnet_1s"][e], "hrnet_w32": pck["hrnet_w32"][e]}
                                  for e in common]
    log(f"claim: {json.dumps({k: res[k] for k in ('stnet_1s', 'hrnet_w32', 'pck_at_equal_epochs')})}")
    return res


def inference_phase(args: argparse.Namespace, log: Log, deadline: float) -> dict[str, Any]:
    import torch

    from stnet.backends.fast_cuda import FastRunner
    from stnet.models import create_model
    from stnet.models.fuse import optimize_for_inference

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    if args.rehearsal:  # OpenMP threads spinning on a shared, overloaded CPU cost 100x
        torch.set_num_threads(1)
    if cuda:
        torch.backends.cudnn.benchmark = True
    # bf16 as in the H200 table; none on a CPU rehearsal (emulated bf16 would only be slow)
    amp = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if cuda else None
    batches = (1, 2) if args.rehearsal else (1, 64, 256)
    h, w = args.input_hw
    rows: list[dict[str, Any]] = []
    for name in ("stnet_1s", "hrnet_w32", "stnet_2s", "stnet_3s"):  # the pair first, should time run out
        model = optimize_for_inference(create_model(name, num_joints=17, input_size=(h, w)).eval(),
                                       channels_last=True).to(device)
        for mode in ("eager", "graph"):
            runner = FastRunner(model, device, mode, amp_dtype=amp, channels_last=True, bucket=False)
            for b in batches:
                if time.time() > deadline:
                    log(f"inference: out of time before {name} {mode} b{b}")
                    return {"rows": rows, "amp": str(amp), "device": str(device), "input_size": [h, w],
                            "cut_short": True}
                x = torch.randn(b, 3, h, w, device=device)
                for _ in range(3):
                    runner(x)
                if cuda:
                    torch.cuda.synchronize()
                n = 2 if args.rehearsal else max(5, min(100, 2048 // b))
                t0 = time.perf_counter()
                for _ in range(n):
                    runner(x)
                if cuda:
                    torch.cuda.synchronize()
                ms = 1000 * (time.perf_counter() - t0) / n
                rows.append({"model": name, "path": runner.mode, "requested": mode, "batch": b,
                             "ms_per_batch": round(ms, 3), "img_per_s": round(1000 * b / ms, 1)})
                log(f"inference {rows[-1]}")
        del model
        if cuda:
            torch.cuda.empty_cache()
    return {"rows": rows, "amp": str(amp), "device": str(device), "input_size": [h, w], "cut_short": False}


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}"


def write_md(summary: dict[str, Any], path: Path) -> None:
    L = [f"# Device check ({summary['env'].get('gpu') or 'CPU rehearsal'})", "",
         f"torch {summary['env']['torch']}, Python {summary['env']['python']}, {summary['env']['cpus']} CPUs; "
         f"`python3 tools/gpu_device_check.py {' '.join(summary['argv'])}`; {summary['wall_s']} s in all.", ""]
    p = summary.get("pipeline")
    if p:
        size = "x".join(str(v) for v in summary["claim"]["input_size"])
        L += [f"## Training pipeline (stnet_1s {size}, batch {p['batch']}, {p['num_workers']} workers)", "",
              "| pipeline | img/s (median epoch) | GPU util mean / median % | GPU MiB |", "|---|---|---|---|"]
        for mode in ("workers", "device"):
            r = p[mode]
            g = r["gpu"]
            L.append(f"| {mode} | {r['img_per_s_median']} | {g['util_mean']} / {g['util_median']} | "
                     f"{g['mem_max_mib']} |")
        L += ["", f"device / workers: {p['speedup']}x", ""]
    c = summary.get("claim")
    if c:
        L += [f"## Claim: stnet_1s vs hrnet_w32 from scratch, {c['epochs_planned']} epochs each, side by side", "",
              "| model | epochs | img/s | final PCK@0.2 | best | train min |", "|---|---|---|---|---|---|"]
        for m in ("stnet_1s", "hrnet_w32"):
            r = c[m]
            L.append(f"| {m} | {r['epochs']} | {r['img_per_s_median']} | {_pct(r['final_pck'])} | "
                     f"{_pct(r['best_pck'])} | {r['train_minutes']} |")
        L += ["", "| epoch | stnet_1s | hrnet_w32 |", "|---|---|---|"]
        L += [f"| {r['epoch']} | {_pct(r['stnet_1s'])} | {_pct(r['hrnet_w32'])} |" for r in c["pck_at_equal_epochs"]]
        L.append("")
    i = summary.get("inference")
    if i and i.get("rows"):
        size = "x".join(str(v) for v in i["input_size"])
        L += [f"## Inference {size} ({i['amp']} autocast, channels-last), ms per batch / img/s", "",
              "| model | path | " + " | ".join(f"b{b}" for b in sorted({r['batch'] for r in i['rows']})) + " |",
              "|---|---|" + "---|" * len({r['batch'] for r in i['rows']})]
        keys = sorted({(r["model"], r["requested"], r["path"]) for r in i["rows"]},
                      key=lambda k: (k[0], k[1] != "eager"))
        for m, mode, ran in keys:
            cells = [f"{r['ms_per_batch']:.2f} ms / {r['img_per_s']:.1f}" for r in i["rows"]
                     if r["model"] == m and r["requested"] == mode]
            label = mode if ran == mode else f"{mode} (ran {ran}: no CUDA)"
            L.append(f"| {m} | {label} | " + " | ".join(cells) + " |")
    path.write_text("\n".join(L) + "\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT"), help="result folder (default $OUT)")
    ap.add_argument("--cache", default=".carry/lspet_256x192_q75.npz")
    ap.add_argument("--budget-s", type=float, default=540.0, help="the whole script's wall time")
    ap.add_argument("--rehearsal", action="store_true", help="tiny sizes for a CPU rehearsal")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup-iters", type=int, default=300)
    ap.add_argument("--workers", type=int, default=4, help="DataLoader workers in the pipeline comparison")
    ap.add_argument("--claim-workers", type=int, default=6, help="workers of each claim run")
    ap.add_argument("--claim-augment-on", default="device")
    ap.add_argument("--claim-epochs", type=int, default=0, help="0: from the measured speed")
    ap.add_argument("--pipeline-iters", type=int, default=40, help="iterations per (short) pipeline epoch")
    ap.add_argument("--grace-s", type=float, default=25.0, help="start-up and final validation beyond a budget")
    ap.add_argument("--input", default="256x192", help="HxW of every run (the rehearsal: 128x96)")
    args = ap.parse_args()
    if not args.out:
        ap.error("set --out or $OUT")
    if args.rehearsal:
        args.batch, args.workers, args.claim_workers, args.pipeline_iters = 4, 1, 1, 2
        args.warmup_iters = 2
        args.input, args.grace_s = "128x96", max(args.grace_s, 240.0)
    args.input_hw = tuple(int(v) for v in args.input.split("x"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not (ROOT / args.cache).is_file() and not Path(args.cache).is_file():
        print(f"crop cache {args.cache} not found: build it first (see this script's docstring)", file=sys.stderr)
        return 2
    work = Path(os.environ.get("WORK", "/tmp/stnet_device_check"))
    work.mkdir(parents=True, exist_ok=True)
    start = time.time()
    log = Log(out)
    import torch

    env = {"torch": torch.__version__, "python": platform.python_version(), "cpus": os.cpu_count(),
           "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
           "cuda": torch.version.cuda}
    log(f"env {env}")
    util = UtilSampler().start()
    summary: dict[str, Any] = {"env": env, "argv": sys.argv[1:], "util_source": util.source}
    b = args.budget_s
    # Shares of the budget: pipeline 2 x 9% (+ start-up), inference 15% at the end, the claim the rest.
    summary["pipeline"] = pipeline_phase(args, work, util, log, 0.09 * b)
    left = b - (time.time() - start)
    stnet_rate = (summary["pipeline"]["device"] or {}).get("img_per_s_median")
    claim_s = max(90.0 if args.rehearsal else 30.0, left - 0.15 * b - args.grace_s)
    summary["claim"] = claim_phase(args, work, util, log, claim_s, stnet_rate, out)
    # a CPU rehearsal overruns its shares; it still times one pass of every inference row
    summary["inference"] = inference_phase(args, log, time.time() + 120 if args.rehearsal else start + b - 5)
    util.stop()
    summary["wall_s"] = round(time.time() - start, 1)
    with open(out / "gpu_util.csv", "w") as f:
        f.write("time_s,util_pct,mem_mib\n")
        f.writelines(f"{t - start:.1f},{u:.0f},{m:.0f}\n" for t, u, m in util.samples)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    try:
        write_md(summary, out / "summary.md")
    except (KeyError, TypeError, ValueError) as e:  # the numbers are in summary.json either way
        (out / "summary.md").write_text(f"summary.md could not be written ({e!r}); see summary.json\n")
    # the runs' logs, for a failure's traceback; cut to their ends
    with open(out / "log.txt", "a") as f:
        for p in sorted(work.glob("*.log")):
            text = p.read_text(errors="replace")
            f.write(f"\n===== {p.name} =====\n" + text[-400_000:])
    log(f"done in {summary['wall_s']} s; files: {sorted(x.name for x in out.iterdir())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
