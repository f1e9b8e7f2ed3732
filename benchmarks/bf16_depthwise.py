"""Speed of the ways :class:`stnet.models.layers.DepthwiseConv2d` can run STNet's atrous depthwise
convolutions in a bf16 channels_last training step (model step only: forward, loss, backward, Adam;
synthetic tensors), with the fp32 NCHW step as the machine's yardstick.

oneDNN's bf16 NHWC depthwise backward-weights kernel gives wrong gradients on AVX512-BF16 CPUs for
dilated depthwise convolutions on larger maps, so plain ``nn.Conv2d`` (NHWC) is timed at 128x96 only:
at 256x192 its gradients are wrong and its speed means nothing. The paths:

- ``space-to-batch (DepthwiseConv2d)``: what the model does now: undilated NHWC depthwise convs,
  an atrous one run on its ``d x d`` sub-grids stacked into the batch;
- ``NCHW detour``: every depthwise conv converted to NCHW and back (stnet up to 2026-12-02);
- ``plain nn.Conv2d (NHWC)``: oneDNN's dilated NHWC kernel (128x96 only).

    python benchmarks/bf16_depthwise.py [--sizes 128x96 256x192] [--rounds 3] [--iters 6]

Writes benchmarks/results/bf16_depthwise.{json,md}, labelled with the CPU model.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import statistics
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from stnet.cpuinfo import cpu_info
from stnet.models import create_model
from stnet.models.layers import DepthwiseConv2d

RESULTS = Path(__file__).resolve().parent / "results"
NOW = "space-to-batch (DepthwiseConv2d)"
DETOUR = "NCHW detour"
PLAIN = "plain nn.Conv2d (NHWC)"
FP32 = "fp32, NCHW (no autocast)"


def nchw_detour(self: DepthwiseConv2d, x: torch.Tensor) -> torch.Tensor:
    if torch.is_autocast_enabled("cpu") and x.is_contiguous(memory_format=torch.channels_last):
        w = self.weight.clone(memory_format=torch.contiguous_format)
        return self._conv_forward(x.contiguous(), w, self.bias).contiguous(memory_format=torch.channels_last)
    return nn.Conv2d.forward(self, x)


def step_speed(size: tuple[int, int], batch: int, iters: int, bf16: bool) -> float:
    torch.manual_seed(0)
    fmt = torch.channels_last if bf16 else torch.contiguous_format
    model = create_model("stnet_1s", num_joints=14, input_size=size).to(memory_format=fmt).train()
    x = torch.randn(batch, 3, *size).contiguous(memory_format=fmt)
    target = torch.rand(batch, 14, size[0] // 4, size[1] // 4)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    times = []
    for i in range(iters + 2):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext():
            y = model(x)
        loss = ((y.float() - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i >= 2:  # warm-up
            times.append(time.perf_counter() - t0)
    return batch / statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", default=["128x96"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=6)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--out", default=str(RESULTS / "bf16_depthwise"))
    args = ap.parse_args()
    now = DepthwiseConv2d.forward
    paths: dict[str, tuple[Callable, bool]] = {NOW: (now, True), DETOUR: (nchw_detour, True),
                                               PLAIN: (nn.Conv2d.forward, True), FP32: (now, False)}
    speeds: dict[str, dict[str, list[float]]] = {}
    try:
        for s in args.sizes:
            size = tuple(int(v) for v in s.split("x"))
            names = [k for k in paths if k != PLAIN or size == (128, 96)]
            speeds[s] = {k: [] for k in names}
            for r in range(args.rounds):
                for name in names:  # interleaved, so all see the same machine state
                    fwd, bf16 = paths[name]
                    DepthwiseConv2d.forward = fwd  # type: ignore[method-assign]
                    speeds[s][name].append(step_speed(size, args.batch, args.iters, bf16))  # type: ignore[arg-type]
                    print(f"{s} round {r + 1} {name}: {speeds[s][name][-1]:.1f} img/s", flush=True)
    finally:
        DepthwiseConv2d.forward = now  # type: ignore[method-assign]
    med = {s: {k: statistics.median(v) for k, v in d.items()} for s, d in speeds.items()}
    cpu = cpu_info()
    cmd = (f"python benchmarks/bf16_depthwise.py --sizes {' '.join(args.sizes)} --rounds {args.rounds} "
           f"--iters {args.iters} --batch {args.batch}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(
        {"cpu": dataclasses.asdict(cpu), "cpu_description": cpu.describe(), "torch": torch.__version__,
         "threads": torch.get_num_threads(), "command": cmd, "batch": args.batch,
         "img_per_s": speeds, "median_img_per_s": med}, indent=2) + "\n")
    names = list(paths)
    lines = ["# bf16 + channels_last training step: how the atrous depthwise convs run", "",
             f"CPU: {cpu.describe()}; torch {torch.__version__}, {torch.get_num_threads()} threads.", "",
             f"Command: `{cmd}`", "",
             f"stnet_1s, batch {args.batch}, model step only (forward, loss, backward, Adam); img/s, median of "
             f"{args.rounds} interleaved rounds. Plain NHWC is not timed above 128x96: its gradients are wrong "
             "there on AVX512-BF16 CPUs.", "",
             "| input | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for s, m in med.items():
        lines.append(f"| {s} | " + " | ".join(f"{m[k]:.1f}" if k in m else "-" for k in names) + " |")
    lines.append("")
    for s, m in med.items():
        lines.append(f"At {s} the space-to-batch path is {m[NOW] / m[DETOUR]:.2f}x the NCHW detour and "
                     f"{m[NOW] / m[FP32]:.2f}x fp32.")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
