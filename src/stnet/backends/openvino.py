"""OpenVINO CPU backend: exported heatmap graphs under Intel's CPU runtime, in f32 or bf16.

::

    from stnet.backends.openvino import OpenVINOBackend

    be = OpenVINOBackend(net)                        # an nn.Module (exported to ONNX, then to IR)
    be = OpenVINOBackend("stnet.onnx")               # or an exported .onnx / OpenVINO IR .xml
    hm = be(crops)                                   # (B, 3, H, W) float32 -> (B, K, h, w) float32
    out = be.run(crops, affine)                      # BackendOutput: heatmaps, or keypoints + scores
    be.precision                                     # "f32" or "bf16": what the compiled model runs

An exported graph that decodes (``stnet export --decode``, ``--with-affine``) runs too: :meth:`run`
returns its keypoints and scores (the IR is written by :func:`stnet.export.openvino.export_openvino`).

Precision (``precision=``):

* ``"f32"``: exact up to float rounding (heatmaps within ~1e-5 relative of PyTorch fp32);
* ``"bf16"``: OpenVINO's bf16 inference (weights and activations in bf16, accumulation in f32).
  Fast where the CPU has native bf16 units (AVX512-BF16 dot products, AMX tiles);
* ``"auto"`` (default): ``"bf16"`` when :func:`stnet.cpuinfo.cpu_info` reports AVX512-BF16 or
  AMX-BF16, else ``"f32"``. This rule is measured, not assumed: on every CPU this project has
  (Intel Xeon with AMX; AMD EPYC with AVX512-BF16 and no AMX) bf16 is faster than f32 for
  stnet_1s and hrnet_w32 at 256x192 and 128x96, batch 1 and 8 (``benchmarks/results/cpu_speed.md``).
  Without bf16 units OpenVINO would emulate bf16, so auto never asks for it there.

Batching: the backend takes any batch size. Each batch size seen is compiled once as a static
shape (OpenVINO's dynamic-shape path is ~30% slower at batch 1 on CPU); after ``max_static``
distinct sizes, further sizes run on one dynamic-batch compilation.

Start-up cache (``cache_dir``, default ``~/.cache/stnet/openvino``, ``$STNET_CACHE_DIR/openvino``
when set; ``None`` disables): an ``nn.Module`` is exported once and its IR kept under
``cache_dir/ir/<digest>.xml`` (digest of the weights, model config, input size, the model and
export code, torch and OpenVINO versions), and OpenVINO's ``CACHE_DIR`` keeps the compiled blobs,
so a second start skips both the ONNX export and the compilation.
"""
from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from stnet.constants import DEFAULT_INPUT_SIZE
from stnet.cpuinfo import CpuInfo, cpu_info
from stnet.export.openvino import require_openvino as _ov
from stnet.export.openvino import save_ir, to_openvino_model
from stnet.model_files import openvino_model_metadata

from .base import BackendOutput, affine_feed, graph_card, split_outputs

__all__ = ["OpenVINOBackend", "resolve_precision", "openvino_available", "default_cache_dir", "PRECISIONS"]

PRECISIONS = ("f32", "bf16", "auto")
_ALIASES = {"f32": "f32", "fp32": "f32", "float32": "f32", "bf16": "bf16", "bfloat16": "bf16", "auto": "auto"}


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def default_cache_dir() -> Path:
    """``$STNET_CACHE_DIR/openvino`` when set, else ``~/.cache/stnet/openvino``."""
    root = os.environ.get("STNET_CACHE_DIR")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "stnet") / "openvino"


def resolve_precision(precision: str = "auto", cpu: CpuInfo | None = None) -> str:
    """``"f32"`` / ``"bf16"`` for a requested precision on ``cpu`` (default: this machine's).

    ``"auto"`` is ``"bf16"`` exactly when the CPU has native bf16 arithmetic (AVX512-BF16 or
    AMX-BF16; see the module docstring for the measurements behind the rule), else ``"f32"``.
    Asking for ``"bf16"`` on a CPU without bf16 units warns (OpenVINO then runs f32 or emulates)."""
    p = _ALIASES.get(str(precision).lower())
    if p is None:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    cpu = cpu or cpu_info()
    if p == "auto":
        return "bf16" if cpu.has_bf16 else "f32"
    if p == "bf16" and not cpu.has_bf16:
        warnings.warn(f"precision='bf16' on {cpu.describe()}: this CPU has no bf16 units, so OpenVINO runs "
                      "f32 (or emulates bf16, slowly); precision='auto' picks f32 here", RuntimeWarning, stacklevel=3)
    return p


# ------------------------------------------------------------------------------------------ IR cache
def _code_digest() -> str:
    """Digest of the code that shapes an exported graph (models + export), so a cached IR of an
    nn.Module is rebuilt when that code changes even at the same version number."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for p in sorted([*(root / "models").rglob("*.py"), *(root / "export").rglob("*.py"), root / "codecs" / "dark.py",
                     root / "codecs" / "decode_head.py"]):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def module_digest(model: Any, input_size: Sequence[int] | None) -> str:
    """Cache key of an ``nn.Module`` export: weights and buffers, class, config, input size,
    model/export code, torch and OpenVINO versions."""
    import torch

    ov = _ov()
    h = hashlib.sha256()
    cfg = getattr(model, "cfg", None)
    for part in ("stnet-openvino-ir-v1", f"{type(model).__module__}.{type(model).__qualname__}", repr(cfg),
                 repr(tuple(input_size) if input_size else None), torch.__version__, ov.__version__, _code_digest()):
        h.update(part.encode())
        h.update(b"\0")
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update((t.float() if t.dtype == torch.bfloat16 else t).numpy().tobytes())
    return h.hexdigest()[:32]


# ------------------------------------------------------------------------------------------ backend
class OpenVINOBackend:
    """Heatmaps from an exported graph on OpenVINO's CPU plugin (see the module docstring).

    Args:
        model: an ``nn.Module`` (exported through :func:`stnet.export.onnx.export_onnx`), a path to
            an ``.onnx`` file, or an OpenVINO IR ``.xml`` (with its ``.bin`` beside it), heatmaps or
            decoding (``stnet export --decode``).
        input_size: crop ``(H, W)``; default the file's static input shape, else the module's
            config, else 256x192.
        precision: ``"f32"``, ``"bf16"`` or ``"auto"`` (see :func:`resolve_precision`).
        threads: ``INFERENCE_NUM_THREADS`` (default: OpenVINO's choice, all cores).
        cache_dir: start-up cache (IR of modules + compiled blobs); ``None`` disables it.
        performance_hint: OpenVINO's ``PERFORMANCE_HINT`` (``"LATENCY"``: one stream, all threads
            on one request, as a per-image estimator wants).
        max_static: distinct batch sizes compiled with static shapes before the dynamic fallback.
        metadata: stored with an IR export of a module (otherwise read from the file).
        cpu: the :class:`~stnet.cpuinfo.CpuInfo` ``"auto"`` decides on (tests fake it).
    """

    name = "openvino"

    def __init__(self, model: Any, *, input_size: Sequence[int] | None = None, precision: str = "auto",
                 threads: int | None = None, cache_dir: str | os.PathLike | None | bool = True,
                 performance_hint: str = "LATENCY", max_static: int = 8, metadata: dict | None = None,
                 cpu: CpuInfo | None = None) -> None:
        ov = _ov()
        self.requested_precision = str(precision)
        want = resolve_precision(precision, cpu)
        if cache_dir is True:
            cache_dir = default_cache_dir()
        self.cache_dir: Path | None = Path(cache_dir).expanduser() if cache_dir else None
        if self.cache_dir is not None:
            try:
                self.cache_dir.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                warnings.warn(f"OpenVINO cache dir {self.cache_dir} unusable ({e}); compiling without a cache",
                              RuntimeWarning, stacklevel=2)
                self.cache_dir = None
        self.ir_from_cache = False
        self.source: str
        size = (int(input_size[0]), int(input_size[1])) if input_size is not None else None
        if isinstance(model, (str, os.PathLike)):
            p = Path(model)
            if p.suffix not in (".onnx", ".xml"):
                raise ValueError(f"{p}: OpenVINOBackend reads .onnx or OpenVINO IR .xml files")
            if not p.is_file():
                raise FileNotFoundError(f"model file {p} not found")
            try:
                ov_model = ov.Core().read_model(str(p))
            except RuntimeError as e:  # OpenVINO's message is a multi-line C++ trace
                lines = [ln for ln in str(e).splitlines() if ln.strip()]
                raise ValueError(f"{p}: OpenVINO cannot read this model: damaged, truncated or not an IR / ONNX "
                                 f"file ({(lines[-1] if lines else 'no detail')[:160]})") from None
            self.source = str(p)
        else:
            ov_model = self._module_model(model, size, metadata)
            if size is None:
                cfg_size = getattr(getattr(model, "cfg", None), "input_size", None)
                size = (int(cfg_size[0]), int(cfg_size[1])) if cfg_size else None
            self.source = type(model).__name__
        self.card = graph_card(openvino_model_metadata(ov_model, where=self.source),
                               [_name(i) for i in ov_model.inputs], [_name(o) for o in ov_model.outputs], self.source)
        shape = ov_model.inputs[0].get_partial_shape()
        if shape.rank.is_static and shape.rank.get_length() == 4 and shape[2].is_static and shape[3].is_static:
            file_size = (shape[2].get_length(), shape[3].get_length())
            if size is not None and tuple(size) != file_size:
                raise ValueError(f"{self.source}: the graph's input is {file_size[0]}x{file_size[1]}, "
                                 f"not the requested {size[0]}x{size[1]}")
            size = file_size
        if size is None:
            size = self.card.input_size or DEFAULT_INPUT_SIZE
        self.input_size: tuple[int, int] = (int(size[0]), int(size[1]))
        self._model = ov_model
        self._model.reshape(self._shapes(-1))
        out = self._model.outputs[0].get_partial_shape()
        self.num_joints = out[1].get_length() if out.rank.is_static and out[1].is_static else None
        self.heatmap_size = ((out[2].get_length(), out[3].get_length())
                             if out.rank.is_static and out.rank.get_length() == 4 and out[2].is_static
                             and out[3].is_static else (self.input_size[0] // 4, self.input_size[1] // 4))
        self.threads = int(threads) if threads else None
        self.performance_hint = str(performance_hint).upper()
        self.max_static = max(0, int(max_static))
        self._core = ov.Core()
        self._config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": want, "PERFORMANCE_HINT": self.performance_hint}
        if self.threads:
            self._config["INFERENCE_NUM_THREADS"] = self.threads
        if self.cache_dir is not None:
            self._config["CACHE_DIR"] = str(self.cache_dir)
        self._static: dict[int, Any] = {}
        self._dynamic: Any = None
        first = self._request(1)  # compile now: errors surface here, and batch 1 is the common case
        self.precision: str = self._precision_of(first)

    # ------------------------------------------------------------------ building
    def _module_model(self, model: Any, size: tuple[int, int] | None, metadata: dict | None) -> Any:
        ov = _ov()
        model = model.eval()
        if self.cache_dir is None:
            return to_openvino_model(model, size, metadata=metadata)
        key = module_digest(model, size)
        if metadata:
            key = hashlib.sha256((key + json.dumps(metadata, sort_keys=True)).encode()).hexdigest()[:32]
        xml = self.cache_dir / "ir" / f"{key}.xml"
        if xml.is_file() and xml.with_suffix(".bin").is_file():
            try:
                m = ov.Core().read_model(str(xml))
                self.ir_from_cache = True
                return m
            except Exception:  # noqa: BLE001 - a damaged cache entry is rebuilt
                pass
        m = to_openvino_model(model, size, metadata=metadata)
        try:
            save_ir(m, xml)
        except OSError as e:
            warnings.warn(f"could not cache the OpenVINO IR in {xml.parent} ({e})", RuntimeWarning, stacklevel=3)
        return m

    def _shapes(self, batch: int) -> dict[Any, Any]:
        """Input shapes for ``batch`` (-1: dynamic): the crops, and the crop->image matrices of a
        graph that takes them."""
        ov = _ov()
        shapes = {self._model.inputs[0]: ov.PartialShape([batch, 3, *self.input_size])}
        if self.card.with_affine:
            shapes[self._model.inputs[1]] = ov.PartialShape([batch, 2, 3])
        return shapes

    def _compile(self, batch: int | None) -> Any:
        m = self._model.clone()
        shapes = self._shapes(batch if batch else -1)
        try:
            m.reshape({m.inputs[i]: v for i, v in enumerate(shapes.values())})
            return self._core.compile_model(m, "CPU", self._config)
        except RuntimeError as e:  # a graph that does not take (B, 3, H, W): OpenVINO's C++ trace
            lines = [ln for ln in str(e).splitlines() if ln.strip() and not ln.startswith(("Check ", "Exception"))]
            raise ValueError(f"{self.source}: OpenVINO cannot compile the graph for (B, 3, {self.input_size[0]}, "
                             f"{self.input_size[1]}) inputs ({(lines[0] if lines else 'no detail')[:200]})") from None

    def _request(self, batch: int) -> Any:
        req = self._static.get(batch)
        if req is not None:
            return req
        if len(self._static) < self.max_static:
            req = self._static[batch] = self._compile(batch).create_infer_request()
            return req
        if self._dynamic is None:
            self._dynamic = self._compile(None).create_infer_request()
        return self._dynamic

    @staticmethod
    def _precision_of(request: Any) -> str:
        try:
            t = request.get_compiled_model().get_property("INFERENCE_PRECISION_HINT")
        except Exception:  # noqa: BLE001
            return "unknown"
        s = str(getattr(t, "type_name", None) or t).lower()
        return "bf16" if "bf16" in s or "bfloat16" in s else "f32" if "f32" in s or "float32" in s else s

    # ------------------------------------------------------------------ the call
    def run(self, batch: np.ndarray, affine: np.ndarray | None = None) -> BackendOutput:
        x = np.ascontiguousarray(batch, dtype=np.float32)
        if x.ndim != 4 or x.shape[1] != 3 or tuple(x.shape[2:]) != self.input_size:
            raise ValueError(f"OpenVINOBackend expects (B, 3, {self.input_size[0]}, {self.input_size[1]}) crops, "
                             f"got {x.shape}")
        k = self.num_joints or 0
        if len(x) == 0:
            empty = [np.zeros((0, k, 2), np.float32), np.zeros((0, k), np.float32)] if self.card.decode else \
                [np.zeros((0, k, *self.heatmap_size), np.float32)]
            return split_outputs(empty, self.card)
        feed: dict[int, np.ndarray] = {0: x}
        a = affine_feed(self.card, affine, len(x), self.source)
        if a is not None:
            feed[1] = a
        res = self._request(len(x)).infer(feed)
        return split_outputs([np.asarray(res[i]) for i in range(len(self._model.outputs))], self.card)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """Heatmaps of a heatmap graph (see :meth:`run` for any graph)."""
        out = self.run(batch)
        if out.heatmaps is None:
            raise ValueError(f"{self.source} decodes keypoints in the graph; use run() for its keypoints")
        return out.heatmaps

    @property
    def compiled_batches(self) -> list[int]:
        """Batch sizes compiled with static shapes so far."""
        return sorted(self._static)

    def describe(self) -> str:
        threads = f", {self.threads} threads" if self.threads else ""
        return f"openvino {_ov().__version__} {self.precision}{threads}, {self.input_size[0]}x{self.input_size[1]}"

    def __repr__(self) -> str:
        return (f"OpenVINOBackend({self.source!r}, input_size={self.input_size}, precision={self.precision!r}, "
                f"threads={self.threads}, cache_dir={str(self.cache_dir) if self.cache_dir else None!r})")


def _name(port: Any) -> str:
    try:
        return str(port.get_any_name())
    except Exception:  # noqa: BLE001 - an unnamed port
        return ""
