"""Inference speed: stnet models against the hrnet_w32 baseline, in one process.

Backends: PyTorch eager (as built), eager with BatchNorm folded, folded + channels-last
(``optimize_for_inference``) and onnxruntime (CPU execution provider), on CPU; on a CUDA device
also eager / folded on the GPU and onnxruntime's CUDA provider when installed. Latency is reported
at batch 1 and throughput at larger batches (default 8 and 32). Runs are interleaved (one repetition
of every configuration per round) so that load from other processes hits every configuration
alike; medians over rounds are reported, with the time ratio of the first model over the second.

Weights are randomised (kaiming-like convs, random BatchNorm statistics) so the max abs heatmap
difference of every rewrite vs eager is measured on outputs of realistic magnitude.

``stnet bench`` and ``benchmarks/cpu_speed.py`` both call :func:`run_benchmark` /
:func:`write_results`.
"""
from __future__ import annotations

import functools
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .export import export_onnx, ort_session
from .io import write_text
from .models import create_model
from .models.complexity import count_complexity
from .models.fuse import fold_batchnorm, optimize_for_inference

__all__ = ["run_benchmark", "write_results", "format_table", "randomize", "make_runners"]


def randomize(model: torch.nn.Module, seed: int = 0) -> None:
    """Weights and BatchNorm statistics far from the init, so the rewrites' differences are
    measured on outputs of realistic magnitude (the 0.001-std init gives ~1e-15 heatmaps)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (1.0 / fan_in) ** 0.5)
            elif isinstance(m, torch.nn.BatchNorm2d):
                assert m.running_mean is not None and m.running_var is not None
                m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)


def make_runners(name: str, size: tuple[int, int], batches: list[int], threads: int, tmp: Path,
                 cuda: bool = False) -> tuple[dict[tuple, Callable[[], Any]], dict[str, Any]]:
    """Timed callables keyed ``(model, backend, batch)`` and the model's info (params, GFLOPs,
    max abs diff of each rewrite vs eager)."""
    torch.manual_seed(0)
    model = create_model(name, input_size=size).eval()
    randomize(model)
    folded = fold_batchnorm(model)
    optimized = optimize_for_inference(model)
    c = count_complexity(model, size)
    runners: dict[tuple, Callable[[], Any]] = {}
    inputs = {b: torch.randn(b, 3, *size) for b in batches}
    diffs: dict[str, float] = {}
    with torch.inference_mode():
        ref = model(inputs[batches[0]])
        scale = float(ref.abs().max())
        diffs["eager_folded"] = float((folded(inputs[batches[0]]) - ref).abs().max())
        cl = {b: x.to(memory_format=torch.channels_last) for b, x in inputs.items()}
        diffs["eager_optimized"] = float((optimized(cl[batches[0]]) - ref).abs().max())
    for b in batches:
        runners[(name, "eager", b)] = functools.partial(model, inputs[b])
        runners[(name, "eager_folded", b)] = functools.partial(folded, inputs[b])
        runners[(name, "eager_optimized", b)] = functools.partial(optimized, cl[b])
    if cuda:
        import copy

        gm, gf = copy.deepcopy(model).to("cuda"), fold_batchnorm(model).to("cuda")
        gin = {b: x.to("cuda") for b, x in inputs.items()}
        with torch.inference_mode():
            diffs["cuda_folded"] = float((gf(gin[batches[0]]).cpu() - ref).abs().max())

        def sync(fn):
            def run():
                out = fn()
                torch.cuda.synchronize()
                return out
            return run

        for b in batches:
            runners[(name, "cuda_eager", b)] = sync(functools.partial(gm, gin[b]))
            runners[(name, "cuda_folded", b)] = sync(functools.partial(gf, gin[b]))
    try:
        import onnxruntime as ort

        path = export_onnx(model, tmp / f"{name}.onnx", size)
        sess = ort_session(path, threads=threads, providers=["CPUExecutionProvider"])
        diffs["onnxruntime"] = float(np.abs(sess.run(None, {"images": inputs[batches[0]].numpy()})[0]
                                            - ref.numpy()).max())
        for b in batches:
            runners[(name, "onnxruntime", b)] = functools.partial(sess.run, None, {"images": inputs[b].numpy()})
        if cuda and "CUDAExecutionProvider" in ort.get_available_providers():
            gs = ort_session(path, threads=threads, providers=["CUDAExecutionProvider"])
            for b in batches:
                runners[(name, "onnxruntime_cuda", b)] = functools.partial(gs.run, None, {"images": inputs[b].numpy()})
    except ImportError:
        print("onnxruntime not installed: skipping it")
    return runners, {"params": c.params, "gflops": round(c.gflops, 3), "max_abs_diff_vs_eager": diffs,
                     "max_abs_heatmap": scale}


def run_benchmark(models: Sequence[str] = ("stnet_1s", "hrnet_w32"), batches: Sequence[int] = (1, 8, 32),
                  size: tuple[int, int] = (256, 192), rounds: int = 10, warmup: int = 2, threads: int = 2,
                  cuda: bool | None = None, print_fn: Callable[[str], None] | None = print) -> dict[str, Any]:
    """Time every (model, backend, batch); returns the result dict written by :func:`write_results`."""
    models, batches = list(models), list(batches)
    size = (int(size[0]), int(size[1]))
    torch.set_num_threads(threads)
    cuda = torch.cuda.is_available() if cuda is None else cuda
    runners: dict[tuple, Callable] = {}
    info: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            model_runners, info[name] = make_runners(name, size, batches, threads, Path(tmp), cuda=cuda)
            runners.update(model_runners)
        times: dict[tuple, list[float]] = {k: [] for k in runners}
        with torch.inference_mode():
            for fn in runners.values():
                for _ in range(warmup):
                    fn()
            for i in range(rounds):
                t_round = time.perf_counter()
                for k, fn in runners.items():
                    t = time.perf_counter()
                    fn()
                    times[k].append(time.perf_counter() - t)
                if print_fn:
                    print_fn(f"round {i + 1}/{rounds} ({time.perf_counter() - t_round:.1f} s)")
    rows = []
    for (name, backend, b), ts in times.items():
        med = statistics.median(ts)
        rows.append({"model": name, "backend": backend, "batch": b, "median_ms": round(med * 1e3, 2),
                     "ms_per_image": round(med * 1e3 / b, 2), "img_per_s": round(b / med, 1)})
    ratios: dict[str, float] = {}
    if len(models) >= 2:
        base = models[1]
        for r in rows:
            if r["model"] == models[0]:
                other = next((o for o in rows if o["model"] == base and o["backend"] == r["backend"]
                              and o["batch"] == r["batch"]), None)
                if other:
                    ratios[f"{r['backend']}_b{r['batch']}"] = round(r["median_ms"] / other["median_ms"], 3)
    result: dict[str, Any] = {
        "input_size": list(size), "threads": threads, "rounds": rounds, "models_order": models,
        "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(), "cuda": torch.cuda.get_device_name(0) if cuda else None,
        "models": info, "rows": rows,
        f"ratio_{models[0]}_over_{models[1] if len(models) > 1 else ''}": ratios,
    }
    try:
        import onnxruntime

        result["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return result


def format_table(result: dict[str, Any]) -> str:
    size, info, rows = result["input_size"], result["models"], result["rows"]
    models = result.get("models_order") or list(info)
    ratios: dict[str, float] = next((v for k, v in result.items() if k.startswith("ratio_")), {})
    lines = [f"# Inference speed ({size[0]}x{size[1]}, {result['threads']} CPU threads, median of "
             f"{result['rounds']} interleaved rounds)", "",
             f"torch {result['torch']}, onnxruntime {result.get('onnxruntime', '-')}, {result['cpu_count']} CPUs"
             + (f", GPU {result['cuda']}" if result.get("cuda") else ", no GPU"), "",
             "| model | params | GFLOPs | backend | batch | ms / batch | ms / image | img/s |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        i = info[r["model"]]
        lines.append(f"| {r['model']} | {i['params'] / 1e6:.2f}M | {i['gflops']:.2f} | {r['backend']} | {r['batch']} | "
                     f"{r['median_ms']:.1f} | {r['ms_per_image']:.1f} | {r['img_per_s']:.1f} |")
    if ratios and len(models) > 1:
        lines += ["", f"Time ratio {models[0]} / {models[1]} (lower = {models[0]} faster): " +
                  ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items())]
    lines += ["", "Max abs heatmap difference of the rewrites vs eager (randomised weights; max |heatmap| in "
                  "brackets): " + "; ".join(f"{n} [{i['max_abs_heatmap']:.2g}]: " + ", ".join(
                      f"{k} {v:.1e}" for k, v in i["max_abs_diff_vs_eager"].items()) for n, i in info.items()),
              "", "eager: as built; eager_folded: BatchNorm folded; eager_optimized: folded + channels-last "
                  "(stnet.models.fuse.optimize_for_inference, what PoseEstimator runs); onnxruntime: folded, "
                  "exported by stnet.export, CPU provider; cuda_*: same on the GPU."]
    return "\n".join(lines) + "\n"


def write_results(result: dict[str, Any], out: str | os.PathLike) -> tuple[Path, Path]:
    """``out`` without suffix -> ``out.json`` and ``out.md`` (written atomically)."""
    import json

    out = Path(out)
    js = write_text(out.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    md = write_text(out.with_suffix(".md"), format_table(result))
    return js, md
