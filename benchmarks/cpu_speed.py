"""CPU inference speed: stnet_1s against the hrnet_w32 baseline, in one process.

PyTorch eager (as built, and with BatchNorm folded) and onnxruntime, batch 1 and 8, at 256x192.
Runs are interleaved (one repetition of every configuration per round) so that load from other
processes hits every configuration alike; medians over rounds are reported with the ratios.

    python benchmarks/cpu_speed.py [--models stnet_1s hrnet_w32] [--rounds 15] [--threads 2]

Writes benchmarks/results/cpu_speed.json and cpu_speed.md.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from stnet.export import export_onnx
from stnet.models import create_model
from stnet.models.complexity import count_complexity
from stnet.models.fuse import fold_batchnorm, optimize_for_inference

RESULTS = Path(__file__).resolve().parent / "results"


def make_runners(name: str, size: tuple[int, int], batches: list[int], threads: int, tmp: Path):
    torch.manual_seed(0)
    model = create_model(name, input_size=size).eval()
    randomize(model)
    folded = fold_batchnorm(model)
    optimized = optimize_for_inference(model)
    c = count_complexity(model, size)
    runners = {}
    inputs = {b: torch.randn(b, 3, *size) for b in batches}
    diffs = {}
    with torch.inference_mode():
        ref = model(inputs[1])
        scale = float(ref.abs().max())
        diffs["eager_folded"] = float((folded(inputs[1]) - ref).abs().max())
        cl = {b: x.to(memory_format=torch.channels_last) for b, x in inputs.items()}
        diffs["eager_optimized"] = float((optimized(cl[1]) - ref).abs().max())
    for b in batches:
        runners[(name, "eager", b)] = (lambda m=model, x=inputs[b]: m(x))
        runners[(name, "eager_folded", b)] = (lambda m=folded, x=inputs[b]: m(x))
        runners[(name, "eager_optimized", b)] = (lambda m=optimized, x=cl[b]: m(x))
    try:
        import onnxruntime as ort

        path = export_onnx(model, tmp / f"{name}.onnx", size)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        diffs["onnxruntime"] = float(np.abs(sess.run(None, {"images": inputs[1].numpy()})[0] - ref.numpy()).max())
        for b in batches:
            feed = {"images": inputs[b].numpy()}
            runners[(name, "onnxruntime", b)] = (lambda s=sess, f=feed: s.run(None, f))
    except ImportError:
        print("onnxruntime not installed: skipping it")
    return runners, {"params": c.params, "gflops": round(c.gflops, 3), "max_abs_diff_vs_eager": diffs,
                     "max_abs_heatmap": scale}


def randomize(model: torch.nn.Module) -> None:
    """Weights and BatchNorm statistics far from the init, so the rewrites' differences are
    measured on outputs of realistic magnitude (the 0.001-std init gives ~1e-15 heatmaps)."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (1.0 / fan_in) ** 0.5)
            elif isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["stnet_1s", "hrnet_w32"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8])
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", default="256x192")
    ap.add_argument("--out", default=str(RESULTS / "cpu_speed"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    size = tuple(int(v) for v in args.size.split("x"))
    runners, info = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            r, info[name] = make_runners(name, size, args.batches, args.threads, Path(tmp))
            runners.update(r)
        times: dict[tuple, list[float]] = {k: [] for k in runners}
        with torch.inference_mode():
            for k, fn in runners.items():
                for _ in range(args.warmup):
                    fn()
            for _ in range(args.rounds):
                for k, fn in runners.items():
                    t = time.perf_counter()
                    fn()
                    times[k].append(time.perf_counter() - t)
    rows = []
    for (name, backend, b), ts in times.items():
        med = statistics.median(ts)
        rows.append({"model": name, "backend": backend, "batch": b, "median_ms": round(med * 1e3, 2),
                     "ms_per_image": round(med * 1e3 / b, 2), "img_per_s": round(b / med, 1)})
    ratios = {}
    if len(args.models) >= 2:
        base = args.models[1]
        for r in rows:
            if r["model"] == args.models[0]:
                other = next(o for o in rows if o["model"] == base and o["backend"] == r["backend"] and o["batch"] == r["batch"])
                ratios[f"{r['backend']}_b{r['batch']}"] = round(r["median_ms"] / other["median_ms"], 3)
    result = {
        "input_size": list(size), "threads": args.threads, "rounds": args.rounds,
        "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
        "cpu_count": __import__("os").cpu_count(), "models": info, "rows": rows,
        f"ratio_{args.models[0]}_over_{args.models[1] if len(args.models) > 1 else ''}": ratios,
    }
    try:
        import onnxruntime

        result["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# CPU inference speed ({size[0]}x{size[1]}, {args.threads} threads, median of {args.rounds} interleaved rounds)",
             "", f"torch {torch.__version__}, onnxruntime {result.get('onnxruntime', '-')}", "",
             "| model | params | GFLOPs | backend | batch | ms / batch | ms / image | img/s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        i = info[r["model"]]
        lines.append(f"| {r['model']} | {i['params'] / 1e6:.2f}M | {i['gflops']:.2f} | {r['backend']} | {r['batch']} | "
                     f"{r['median_ms']:.1f} | {r['ms_per_image']:.1f} | {r['img_per_s']:.1f} |")
    if ratios:
        lines += ["", f"Time ratio {args.models[0]} / {args.models[1]}: " +
                  ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items())]
    lines += ["", "Max abs heatmap difference of the rewrites vs eager (randomised weights; max |heatmap| in "
                  "brackets): " + "; ".join(f"{n} [{i['max_abs_heatmap']:.2g}]: " + ", ".join(
                      f"{k} {v:.1e}" for k, v in i["max_abs_diff_vs_eager"].items()) for n, i in info.items()),
              "", "eager: as built; eager_folded: BatchNorm folded; eager_optimized: folded + channels-last "
                  "(stnet.models.fuse.optimize_for_inference); onnxruntime: folded, exported by stnet.export."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
