"""Cost of the NCHW detour of :class:`stnet.models.layers.DepthwiseConv2d` in a bf16 channels_last
training step (model step only: forward, loss, backward, Adam; batch 32; synthetic tensors).

oneDNN's bf16 NHWC depthwise backward-weights kernel gives wrong gradients on AVX512-BF16 CPUs for
STNet's atrous depthwise convolutions on larger maps; DepthwiseConv2d convolves in NCHW under CPU
bf16 autocast. This measures what that costs against plain ``nn.Conv2d`` (NHWC, the faulty path), at
128x96 only: at 256x192 the plain path's gradients are wrong, so its speed means nothing.

    python benchmarks/bf16_depthwise.py [--rounds 3] [--iters 6]

Writes benchmarks/results/bf16_depthwise.{json,md}, labelled with the CPU model.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn as nn

from stnet.cpuinfo import cpu_info
from stnet.models import create_model
from stnet.models.layers import DepthwiseConv2d

RESULTS = Path(__file__).resolve().parent / "results"


def step_speed(size: tuple[int, int], batch: int, iters: int) -> float:
    torch.manual_seed(0)
    model = create_model("stnet_1s", num_joints=14, input_size=size).to(memory_format=torch.channels_last).train()
    x = torch.randn(batch, 3, *size).contiguous(memory_format=torch.channels_last)
    target = torch.rand(batch, 14, size[0] // 4, size[1] // 4)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    times = []
    for i in range(iters + 2):
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16):
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
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=6)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--out", default=str(RESULTS / "bf16_depthwise"))
    args = ap.parse_args()
    detour = DepthwiseConv2d.forward
    paths = {"NCHW detour (DepthwiseConv2d)": detour, "plain nn.Conv2d (NHWC)": nn.Conv2d.forward}
    speeds: dict[str, list[float]] = {k: [] for k in paths}
    try:
        for r in range(args.rounds):
            for name, fwd in paths.items():  # interleaved, so both see the same machine state
                DepthwiseConv2d.forward = fwd  # type: ignore[method-assign]
                speeds[name].append(step_speed((128, 96), args.batch, args.iters))
                print(f"round {r + 1} {name}: {speeds[name][-1]:.1f} img/s", flush=True)
    finally:
        DepthwiseConv2d.forward = detour  # type: ignore[method-assign]
    med = {k: statistics.median(v) for k, v in speeds.items()}
    cpu = cpu_info()
    cmd = f"python benchmarks/bf16_depthwise.py --rounds {args.rounds} --iters {args.iters} --batch {args.batch}"
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(
        {"cpu": dataclasses.asdict(cpu), "cpu_description": cpu.describe(), "torch": torch.__version__,
         "threads": torch.get_num_threads(), "command": cmd, "input_size": [128, 96], "batch": args.batch,
         "img_per_s": speeds, "median_img_per_s": med}, indent=2) + "\n")
    a, b = med["NCHW detour (DepthwiseConv2d)"], med["plain nn.Conv2d (NHWC)"]
    lines = ["# bf16 + channels_last training step: the depthwise NCHW detour's cost", "",
             f"CPU: {cpu.describe()}; torch {torch.__version__}, {torch.get_num_threads()} threads.", "",
             f"Command: `{cmd}`", "",
             f"stnet_1s, 128x96, batch {args.batch}, model step only; median of {args.rounds} interleaved rounds.", "",
             "| depthwise path | img/s |", "|---|---|",
             *(f"| {k} | {v:.1f} |" for k, v in med.items()), "",
             f"The detour costs {100 * (1 - a / b):.0f}% of the step here."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
