"""Training throughput of the real training step, data included: img/s of ``train_one_epoch`` on
the LSP-Extended training split (synthetic images when ../shared/data is absent), stnet_1s, Adam.

Settings compared, interleaved round by round in one process so they share the machine's state:

  before      the loop as it was: fp32, NCHW, DataLoader workers re-forked every epoch, torch's
              per-tensor Adam loop
  after       the defaults now: ``runtime.amp=auto`` (bf16 autocast on CPUs with AVX512-BF16 or
              AMX, detected at run time), ``runtime.channels_last=true``, persistent workers, and
              the optimiser ``stnet train`` builds (single-kernel Adam where torch has it)

Each setting runs ``--epochs`` short epochs of ``--iters`` steps (so worker start-up is counted the
way a real run pays it); the first epoch of the first round warms up and is not timed.

    python benchmarks/train_speed.py [--sizes 128x96 256x192] [--batch 32] [--workers 2]
                                     [--settings before after]

``--settings after`` times the defaults alone (no speed-up then), e.g. with long epochs.

Writes benchmarks/results/train_speed.json and train_speed.md, labelled with the CPU model.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

from stnet.cpuinfo import cpu_info
from stnet.data.build import build_dataloader, build_dataset, default_data_root, preset_config
from stnet.engine.config import TrainConfig
from stnet.engine.schedule import build_optimizer
from stnet.engine.train import HeatmapLoss, amp_settings, train_one_epoch
from stnet.models import create_model

RESULTS = Path(__file__).resolve().parent / "results"

SETTINGS = {
    "before": {"amp": "off", "channels_last": False, "persistent": False, "fused_adam": False},
    "after": {"amp": "auto", "channels_last": True, "persistent": True, "fused_adam": True},
}


def dataset(size: tuple[int, int], tmp: Path):
    root = default_data_root() / "lspet"
    if (root / "joints.mat").is_file():
        return build_dataset(preset_config("lsp", split="train", input_size=size, seed=0), train=True), "LSP-Extended"
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # test-only helpers (tests/helpers)
    from helpers.synthetic import make_synthetic_coco

    make_synthetic_coco(tmp, num_images=64, image_size=(240, 250))
    from stnet.data.config import DataConfig

    dc = DataConfig(kind="coco", ann_file=str(tmp / "annotations.json"), image_dir=str(tmp / "images"),
                    input_size=size, seed=0)
    return build_dataset(dc, train=True), "synthetic"


def measure(size, batch, workers, iters, epochs, rounds, tmp, settings=tuple(SETTINGS)):
    ds, data_name = dataset(size, tmp)
    device = torch.device("cpu")
    out = {}
    runners = {}
    for name, st in ((k, SETTINGS[k]) for k in settings):
        model = create_model("stnet_1s", num_joints=ds.skeleton.num_keypoints, input_size=size)
        if st["channels_last"]:
            model = model.to(memory_format=torch.channels_last)
        opt = (build_optimizer(TrainConfig(), model) if st["fused_adam"]
               else torch.optim.Adam(model.parameters(), lr=1e-3))
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda it: 1.0)
        amp = amp_settings(st["amp"], device)
        loader = build_dataloader(ds, batch_size=batch, train=True, num_workers=workers, seed=0,
                                  persistent_workers=st["persistent"])
        runners[name] = (model, opt, sched, amp, loader, st)
        out[name] = {**st, "amp_resolved": str(amp[1]) if amp[0] else "fp32", "img_per_s": []}
    loss_fn = HeatmapLoss()
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    for r in range(rounds):
        for name, (model, opt, sched, amp, loader, st) in runners.items():
            images, secs = 0, 0.0
            for e in range(epochs):
                loader.sampler.set_epoch(e)
                t0 = time.perf_counter()
                stats = train_one_epoch(model, loader, loss_fn, opt, sched, scaler, device=device, epoch=e,
                                        amp=amp, max_iters=iters, show=False,
                                        channels_last=st["channels_last"])
                if r == 0 and e == 0:
                    continue  # warm-up
                secs += time.perf_counter() - t0
                images += stats["iters"] * batch
            out[name]["img_per_s"].append(images / secs)
            print(f"{size[0]}x{size[1]} round {r + 1} {name}: {images / secs:.1f} img/s", flush=True)
    for name in out:
        out[name]["median_img_per_s"] = statistics.median(out[name]["img_per_s"])
    return {"input_size": list(size), "data": data_name, "settings": out,
            "speedup": out["after"]["median_img_per_s"] / out["before"]["median_img_per_s"]
            if {"before", "after"} <= set(out) else None}


def write_results(args: argparse.Namespace, cpu, runs: list[dict]) -> list[str]:
    result = {"cpu": dataclasses.asdict(cpu), "cpu_description": cpu.describe(), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "python": platform.python_version(),
              "batch": args.batch, "workers": args.workers, "iters": args.iters, "epochs": args.epochs,
              "rounds": args.rounds, "command": "python benchmarks/train_speed.py " + " ".join(
                  f"--{k} {' '.join(v) if isinstance(v, list) else v}" for k, v in vars(args).items()
                  if k not in ("out", "threads") or v), "runs": runs}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Training throughput (stnet_1s, batch {args.batch}, {args.workers} DataLoader workers)", "",
             f"CPU: {cpu.describe()}; torch {torch.__version__}, {torch.get_num_threads()} threads.", "",
             f"Command: `{result['command']}`", "",
             "Real training step (`train_one_epoch`: data loading, forward, loss, backward, Adam), median "
             f"of {args.rounds} rounds, each {args.epochs} epochs of {args.iters} steps.", "",
             "| input | data | before: fp32, NCHW, re-forked workers, Adam loop | after: amp auto, channels_last, "
             "persistent workers, fused Adam | speed-up |", "|---|---|---|---|---|"]
    for r in runs:
        b, a = r["settings"].get("before"), r["settings"].get("after")
        if b is None or a is None:  # --settings with one of them: its rounds instead of a speed-up
            name, one = ("after", a) if a else ("before", b)
            lines.append(f"| {r['input_size'][0]}x{r['input_size'][1]} | {r['data']} | " + (
                f"- | {one['median_img_per_s']:.1f} img/s ({one['amp_resolved']}; rounds " if a else
                f"{one['median_img_per_s']:.1f} img/s (rounds ") + ", ".join(f"{v:.1f}" for v in one["img_per_s"])
                + (") | - |" if a else ") | - | - |"))
            continue
        lines.append(f"| {r['input_size'][0]}x{r['input_size'][1]} | {r['data']} | {b['median_img_per_s']:.1f} img/s | "
                     f"{a['median_img_per_s']:.1f} img/s ({a['amp_resolved']}) | {r['speedup']:.2f}x |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["128x96", "256x192"])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--iters", type=int, default=8, help="steps per short epoch")
    ap.add_argument("--epochs", type=int, default=2, help="short epochs per setting and round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    ap.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    ap.add_argument("--out", default=str(RESULTS / "train_speed"))
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    import tempfile

    cpu = cpu_info()
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for s in args.sizes:
            h, w = (int(v) for v in s.lower().split("x"))
            runs.append(measure((h, w), args.batch, args.workers, args.iters, args.epochs, args.rounds, Path(tmp),
                                tuple(args.settings)))
            lines = write_results(args, cpu, runs)  # after every size: a later failure keeps these
    print("\n".join(lines))


if __name__ == "__main__":
    main()
