"""Inference speed: stnet models against the hrnet_w32 baseline, in one process.

Backends: PyTorch eager (as built), eager with BatchNorm folded, folded + channels-last
(``optimize_for_inference``, what ``PoseEstimator``'s torch backend runs), onnxruntime (CPU
execution provider) and OpenVINO in f32 and bf16 (:class:`stnet.backends.openvino.OpenVINOBackend`,
the object ``PoseEstimator(..., backend="openvino")`` calls), on CPU; on a CUDA device also eager /
folded on the GPU, the folded model replayed as a CUDA graph (``cuda_graph``, the fast path of
:mod:`stnet.backends.fast_cuda`) and onnxruntime's CUDA provider when installed. Latency is reported at batch 1
and throughput at larger batches (default 8 and 32), at one or several input sizes. Runs are
interleaved (one repetition of every configuration of every size per round) so that load from
other processes hits every configuration alike; medians over rounds are reported, with two kinds
of time ratio: the first model over the second (same backend, batch and size), and every backend
over the torch fp32 optimised path (``eager_optimized``, same model, batch and size).

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
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from stnet.backends.fast_cuda import FastRunner
from stnet.backends.onnxruntime import ort_session
from stnet.cpuinfo import cpu_info
from stnet.export.onnx import export_onnx
from stnet.io import write_text
from stnet.models import create_model
from stnet.models.complexity import count_complexity
from stnet.models.fuse import fold_batchnorm, optimize_for_inference

__all__ = ["run_benchmark", "write_results", "format_table", "randomize", "make_runners", "BASELINE_BACKEND"]

#: The backend every other one is compared with (``ratio_vs_torch_optimized``).
BASELINE_BACKEND = "eager_optimized"


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


def _size_key(size: tuple[int, int]) -> str:
    return f"{int(size[0])}x{int(size[1])}"


@dataclass
class _Case:
    """One model at one input size while its runners are built: the randomised model, inputs per
    batch size, the eager reference output, and what is collected (runners, diffs)."""

    name: str
    size: tuple[int, int]
    batches: list[int]
    want: Callable[[str], bool]
    model: torch.nn.Module
    inputs: dict[int, torch.Tensor]
    ref: torch.Tensor
    runners: dict[tuple, Callable[[], Any]] = field(default_factory=dict)
    diffs: dict[str, float] = field(default_factory=dict)

    @property
    def sk(self) -> str:
        return _size_key(self.size)

    def add(self, backend: str, batch: int, fn: Callable[[], Any]) -> None:
        if self.want(backend):
            self.runners[(self.name, backend, batch, self.sk)] = fn

    def diff(self, backend: str, out: Any) -> None:
        out = out.detach().cpu().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
        self.diffs[backend] = float(np.abs(out - self.ref.numpy()).max())


def _eager_runners(case: _Case) -> None:
    folded = fold_batchnorm(case.model)
    optimized = optimize_for_inference(case.model)
    x0 = case.inputs[case.batches[0]]
    cl = {b: x.to(memory_format=torch.channels_last) for b, x in case.inputs.items()}
    with torch.inference_mode():
        case.diff("eager_folded", folded(x0))
        case.diff("eager_optimized", optimized(cl[case.batches[0]]))
    for b in case.batches:
        case.add("eager", b, functools.partial(case.model, case.inputs[b]))
        case.add("eager_folded", b, functools.partial(folded, case.inputs[b]))
        case.add("eager_optimized", b, functools.partial(optimized, cl[b]))


def _cuda_runners(case: _Case) -> None:
    import copy

    gm, gf = copy.deepcopy(case.model).to("cuda"), fold_batchnorm(case.model).to("cuda")
    gin = {b: x.to("cuda") for b, x in case.inputs.items()}
    with torch.inference_mode():
        case.diff("cuda_folded", gf(gin[case.batches[0]]))

    def sync(fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            out = fn()
            torch.cuda.synchronize()
            return out
        return run

    # the small-batch fast path TorchBackend takes on CUDA (stnet.backends.fast_cuda)
    graphed = FastRunner(gf, "cuda", "graph", bucket=False)
    case.diff("cuda_graph", graphed(gin[case.batches[0]]))
    for b in case.batches:
        case.add("cuda_eager", b, sync(functools.partial(gm, gin[b])))
        case.add("cuda_folded", b, sync(functools.partial(gf, gin[b])))
        case.add("cuda_graph", b, sync(functools.partial(graphed, gin[b])))


def _onnx_file(case: _Case, tmp: Path) -> Path:
    """The case's model exported once (BatchNorm folded, dynamic batch); shared by onnxruntime and OpenVINO."""
    path = tmp / f"{case.name}_{case.sk}.onnx"
    if not path.is_file():
        export_onnx(case.model, path, case.size)
    return path


def _ort_runners(case: _Case, tmp: Path, threads: int, cuda: bool) -> None:
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime not installed: skipping it")
        return
    path = _onnx_file(case, tmp)
    sess = ort_session(path, threads=threads, providers=["CPUExecutionProvider"])
    case.diff("onnxruntime", sess.run(None, {"images": case.inputs[case.batches[0]].numpy()})[0])
    for b in case.batches:
        case.add("onnxruntime", b, functools.partial(sess.run, None, {"images": case.inputs[b].numpy()}))
    if cuda and case.want("onnxruntime_cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        gs = ort_session(path, threads=threads, providers=["CUDAExecutionProvider"])
        for b in case.batches:
            case.add("onnxruntime_cuda", b, functools.partial(gs.run, None, {"images": case.inputs[b].numpy()}))


def _openvino_runners(case: _Case, tmp: Path, threads: int, precisions: list[str]) -> dict[str, Any]:
    """``openvino_<precision>`` rows; returns the backends (the estimator rows reuse them)."""
    from stnet.backends.openvino import OpenVINOBackend

    backends = {}
    for p in precisions:
        # The ONNX graph onnxruntime runs, as OpenVINOBackend(module) would export it; no start-up
        # cache (randomised weights are never loaded twice, and compile time is not timed).
        be = backends[p] = OpenVINOBackend(_onnx_file(case, tmp), precision=p, threads=threads, cache_dir=None)
        case.diff(f"openvino_{p}", be(case.inputs[case.batches[0]].numpy()))
        for b in case.batches:
            if case.want(f"openvino_{p}"):
                be(case.inputs[b].numpy())  # compile this batch size's static shape outside the timing
                case.add(f"openvino_{p}", b, functools.partial(be, case.inputs[b].numpy()))
    return backends


def _estimator_runners(case: _Case, ov_backends: dict[str, Any], batches: tuple[int, ...]) -> None:
    """The heatmap path of PoseEstimator itself (array in, chunking, backend call, array out): the
    "through PoseEstimator(..., backend=...)" figure, on the torch backend and the OpenVINO backends."""
    import warnings

    from stnet.inference.estimator import PoseEstimator

    ests: dict[str, Any] = {"estimator_torch": "torch"}
    ests.update({f"estimator_openvino_{p}": be for p, be in ov_backends.items()})
    for key, backend in ests.items():
        if not case.want(key):
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # randomised weights: the untrained warning
            est = PoseEstimator(case.model, backend=backend)
        for b in batches:
            x = case.inputs[b].numpy() if b in case.inputs else torch.randn(b, 3, *case.size).numpy()
            est.heatmaps(x)
            case.add(key, b, functools.partial(est.heatmaps, x))


def make_runners(name: str, size: tuple[int, int], batches: list[int], threads: int, tmp: Path,
                 cuda: bool = False, openvino_precisions: tuple[str, ...] = (),
                 backends: set[str] | None = None, estimator_batches: tuple[int, ...] = ()
                 ) -> tuple[dict[tuple, Callable[[], Any]], dict[str, Any]]:
    """Timed callables keyed ``(model, backend, batch, "HxW")`` and the model's info at this size
    (params, GFLOPs, max abs diff of each rewrite vs eager). ``backends`` limits which are timed
    (None: all available); ``openvino_precisions`` adds ``openvino_<precision>`` rows;
    ``estimator_batches`` adds ``estimator_torch`` / ``estimator_openvino_<precision>`` rows at those
    batch sizes (``PoseEstimator.heatmaps`` on the torch backend and on the OpenVINO backends)."""
    def want(backend: str) -> bool:
        return backends is None or backend in backends

    torch.manual_seed(0)
    model = create_model(name, input_size=size).eval()
    randomize(model)
    inputs = {b: torch.randn(b, 3, *size) for b in batches}
    with torch.inference_mode():
        ref = model(inputs[batches[0]])
    case = _Case(name, (int(size[0]), int(size[1])), list(batches), want, model, inputs, ref)
    _eager_runners(case)
    if cuda:
        _cuda_runners(case)
    if want("onnxruntime") or (cuda and want("onnxruntime_cuda")):
        _ort_runners(case, tmp, threads, cuda)
    precisions = [p for p in openvino_precisions
                  if want(f"openvino_{p}") or (estimator_batches and want(f"estimator_openvino_{p}"))]
    ov_backends = _openvino_runners(case, tmp, threads, precisions) if precisions else {}
    if estimator_batches:
        _estimator_runners(case, ov_backends, tuple(estimator_batches))
    c = count_complexity(model, size)
    return case.runners, {"params": c.params, "gflops": round(c.gflops, 3), "max_abs_diff_vs_eager": case.diffs,
                          "max_abs_heatmap": float(ref.abs().max())}


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):
        return None


def _time(runners: dict[tuple, Callable], rounds: int, warmup: int,
          print_fn: Callable[[str], None] | None) -> dict[tuple, list[float]]:
    """Warm-up calls, then ``rounds`` rounds of one call of every runner in turn (interleaved)."""
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
    return times


def _ratios(rows: list[dict], models: list[str], multi: bool) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Time ratios: first model over the second (same backend, batch, size), and every backend over
    :data:`BASELINE_BACKEND` of the same model, batch and size (also stored in the rows)."""
    def key(r: dict) -> str:
        return f"{r['backend']}_b{r['batch']}" + (f"_{r['input_size']}" if multi else "")

    by = {(r["model"], r["backend"], r["batch"], r["input_size"]): r for r in rows}
    ratios: dict[str, float] = {}
    vs_torch: dict[str, dict[str, float]] = {}
    for r in rows:
        other = by.get((models[1], r["backend"], r["batch"], r["input_size"])) \
            if len(models) >= 2 and r["model"] == models[0] else None
        if other:
            ratios[key(r)] = round(r["median_ms"] / other["median_ms"], 3)
        base = by.get((r["model"], BASELINE_BACKEND, r["batch"], r["input_size"]))
        if base and r["backend"] != BASELINE_BACKEND:
            r["x_torch_optimized"] = round(r["median_ms"] / base["median_ms"], 3)
            vs_torch.setdefault(r["model"], {})[key(r)] = r["x_torch_optimized"]
    return ratios, vs_torch


def run_benchmark(models: Sequence[str] = ("stnet_1s", "hrnet_w32"), batches: Sequence[int] = (1, 8, 32),
                  size: tuple[int, int] = (256, 192), rounds: int = 10, warmup: int = 2, threads: int = 2,
                  cuda: bool | None = None, print_fn: Callable[[str], None] | None = print, *,
                  sizes: list[tuple[int, int]] | None = None, openvino: bool | None = None,
                  openvino_precisions: tuple[str, ...] = ("f32", "bf16"), backends: list[str] | None = None,
                  estimator_batches: Sequence[int] = (1,), command: str | None = None) -> dict[str, Any]:
    """Time every (model, backend, batch, size); returns the result dict written by :func:`write_results`.

    ``sizes`` (default ``[size]``) are all timed in the same interleaved rounds. ``openvino``: add
    the ``openvino_<precision>`` rows (default: when the package is installed). ``backends``: time
    only these (e.g. ``["eager_optimized", "onnxruntime", "openvino_f32", "openvino_bf16"]``).
    ``estimator_batches``: batch sizes of the ``estimator_*`` rows (``PoseEstimator.heatmaps`` on the
    torch and OpenVINO backends; ``()`` for none). ``command`` is recorded with the results
    (default: this process's command line)."""
    models, batches = list(models), list(batches)
    sizes = [(int(s[0]), int(s[1])) for s in (sizes or [size])]
    torch.set_num_threads(threads)
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if openvino is None:
        from stnet.backends.openvino import openvino_available

        openvino = openvino_available()
    want = set(backends) if backends else None
    runners: dict[tuple, Callable] = {}
    info: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in models:
            for sz in sizes:
                r, i = make_runners(name, sz, batches, threads, Path(tmp), cuda=cuda,
                                    openvino_precisions=tuple(openvino_precisions) if openvino else (),
                                    backends=want, estimator_batches=tuple(estimator_batches))
                runners.update(r)
                entry = info.setdefault(name, {"params": i["params"], **i, "sizes": {}})
                entry["sizes"][_size_key(sz)] = {k: i[k] for k in ("gflops", "max_abs_diff_vs_eager",
                                                                   "max_abs_heatmap")}
        load_before = _loadavg()
        times = _time(runners, rounds, warmup, print_fn)
        load_after = _loadavg()
    rows = []
    for (name, backend, b, sk), ts in times.items():
        med = statistics.median(ts)
        rows.append({"model": name, "backend": backend, "batch": b, "input_size": sk,
                     "median_ms": round(med * 1e3, 2), "ms_per_image": round(med * 1e3 / b, 2),
                     "img_per_s": round(b / med, 1)})
    ratios, vs_torch = _ratios(rows, models, len(sizes) > 1)
    cpu = cpu_info()
    result: dict[str, Any] = {
        "input_size": list(sizes[0]), "input_sizes": [list(s) for s in sizes], "threads": threads,
        "rounds": rounds, "warmup": warmup, "models_order": models, "batches": batches,
        "command": command if command is not None else " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "torch": torch.__version__, "machine": platform.processor() or platform.machine(),
        "cpu": cpu.describe(), "cpu_model": cpu.model, "cpu_count": os.cpu_count(),
        # other processes' load during the timed rounds (1-minute load average before / after):
        # far above the thread count, absolute times are inflated and torch's spinning OpenMP
        # threads suffer more than OpenVINO's and onnxruntime's, so ratios to torch drop too
        "loadavg_1min": [load_before, load_after],
        "cuda": torch.cuda.get_device_name(0) if cuda else None,
        "models": info, "rows": rows,
        f"ratio_{models[0]}_over_{models[1] if len(models) > 1 else ''}": ratios,
        "ratio_vs_torch_optimized": vs_torch,
    }
    try:
        import onnxruntime

        result["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    if openvino:
        import openvino as ov

        result["openvino"] = ov.__version__
    return result


def format_table(result: dict[str, Any]) -> str:
    info, rows = result["models"], result["rows"]
    sizes = result.get("input_sizes") or [result["input_size"]]
    models = result.get("models_order") or list(info)
    ratios: dict[str, float] = next((v for k, v in result.items()
                                     if k.startswith("ratio_") and k != "ratio_vs_torch_optimized"), {})
    size_txt = ", ".join(f"{h}x{w}" for h, w in sizes)
    lines = [f"# Inference speed ({size_txt}, {result['threads']} CPU threads, median of "
             f"{result['rounds']} interleaved rounds)", "",
             f"CPU: {result.get('cpu') or result.get('machine')}; torch {result['torch']}, onnxruntime "
             f"{result.get('onnxruntime', '-')}, openvino {result.get('openvino', '-')}, {result['cpu_count']} CPUs"
             + (f", GPU {result['cuda']}" if result.get("cuda") else ", no GPU"), ""]
    if result.get("command"):
        lines += [f"Command: `{result['command']}`", ""]
    if result.get("loadavg_1min"):
        lines += [f"Load average (1 min) before / after the timed rounds: "
                  f"{' / '.join(str(v) for v in result['loadavg_1min'])} (the machine has {result['cpu_count']} CPUs; "
                  "other processes' load inflates every time, torch's most)", ""]
    lines += ["| model | input | params | GFLOPs | backend | batch | ms / batch | ms / image | img/s | x torch opt |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        i = info[r["model"]]
        sk = r.get("input_size") or f"{sizes[0][0]}x{sizes[0][1]}"
        gf = (i.get("sizes") or {}).get(sk, i)["gflops"]
        x = r.get("x_torch_optimized")
        lines.append(f"| {r['model']} | {sk} | {i['params'] / 1e6:.2f}M | {gf:.2f} | {r['backend']} | {r['batch']} | "
                     f"{r['median_ms']:.1f} | {r['ms_per_image']:.1f} | {r['img_per_s']:.1f} | "
                     f"{f'{x:.2f}x' if x is not None else ('1' if r['backend'] == BASELINE_BACKEND else '-')} |")
    lines += ["", f"x torch opt: time over the torch fp32 optimised path ({BASELINE_BACKEND}) of the same model, "
                  "batch and input size, in the same run (lower = faster)."]
    if ratios and len(models) > 1:
        lines += ["", f"Time ratio {models[0]} / {models[1]} (lower = {models[0]} faster): " +
                  ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items())]

    def diff_txt(d: dict) -> str:
        return ", ".join(f"{k} {v:.1e}" for k, v in d["max_abs_diff_vs_eager"].items())

    parts = []
    for n, i in info.items():
        for sk, d in (i.get("sizes") or {"": i}).items():
            parts.append(f"{n}{' ' + sk if sk else ''} [{d['max_abs_heatmap']:.2g}]: {diff_txt(d)}")
    lines += ["", "Max abs heatmap difference of the rewrites vs eager (randomised weights; max |heatmap| in "
                  "brackets): " + "; ".join(parts),
              "", "eager: as built; eager_folded: BatchNorm folded; eager_optimized: folded + channels-last "
                  "(stnet.models.fuse.optimize_for_inference, what PoseEstimator's torch backend runs); onnxruntime: "
                  "folded, exported by stnet.export.onnx, CPU provider; "
                  "openvino_f32 / openvino_bf16: the same ONNX graph "
                  "under OpenVINO's CPU plugin (stnet.backends.openvino.OpenVINOBackend, latency hint, static batch "
                  "shape, INFERENCE_PRECISION_HINT f32 / bf16); estimator_torch / estimator_openvino_*: "
                  "PoseEstimator.heatmaps (its whole heatmap path: chunking, backend call) on the torch backend and "
                  "on those OpenVINO backends; cuda_*: same on the GPU."]
    return "\n".join(lines) + "\n"


def write_results(result: dict[str, Any], out: str | os.PathLike) -> tuple[Path, Path]:
    """``out`` without suffix -> ``out.json`` and ``out.md`` (written atomically)."""
    import json

    out = Path(out)
    js = write_text(out.with_suffix(".json"), json.dumps(result, indent=2) + "\n")
    md = write_text(out.with_suffix(".md"), format_table(result))
    return js, md
