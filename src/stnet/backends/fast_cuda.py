"""Small-batch GPU inference without launch overhead: CUDA graphs (or ``torch.compile``) for
fixed input shapes.

STNet's many small kernels (depthwise convolutions, squeeze-excite, the stair branches) make
batch 1 launch-bound on a GPU: on an H200, eager stnet_1s took 17.4 ms per 256x192 image while
the arithmetic is a fraction of a millisecond. A CUDA graph records the whole forward pass once
per input shape and replays it with one launch. :class:`FastRunner` does that per shape, under
optional bf16 autocast and channels-last, and is a plain call to the module anywhere else (CPU,
MPS), so callers select it once and never branch again.

Modes (:func:`resolve_mode`): ``eager`` (the module as is), ``graph`` (CUDA graphs, one per input
shape, captured on first use after a few warm-up passes on a side stream), ``compile``
(``torch.compile(mode="reduce-overhead")``: fused kernels plus CUDA graphs, but tens of seconds
of compilation per shape), ``auto`` = ``graph`` on CUDA, ``eager`` elsewhere.
"""
from __future__ import annotations

from typing import Any, Callable, Literal

import torch
import torch.nn as nn

__all__ = ["FastRunner", "resolve_mode", "FastMode"]

FastMode = Literal["auto", "eager", "graph", "compile"]


def resolve_mode(mode: str, device: torch.device | str) -> str:
    """The mode a runner uses on ``device``: graphs and compilation only on CUDA (elsewhere the
    request falls back to ``eager``, which is what ``auto`` means off CUDA)."""
    if mode not in ("auto", "eager", "graph", "compile"):
        raise ValueError(f"fast inference mode must be auto, eager, graph or compile, got {mode!r}")
    if torch.device(device).type != "cuda":
        return "eager"
    return "graph" if mode == "auto" else mode


class _Graph:
    """One captured forward pass: a static input buffer and the output it produces on replay."""

    def __init__(self, fn: Callable[[torch.Tensor], Any], example: torch.Tensor, warmup: int) -> None:
        self.input = example.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up (cuDNN autotuning, allocator) outside the graph
            for _ in range(warmup):
                fn(self.input)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.output = fn(self.input)

    def __call__(self, x: torch.Tensor) -> Any:
        self.input.copy_(x, non_blocking=True)
        self.graph.replay()
        return self.output


def _first(out: Any, n: int) -> Any:
    """The first ``n`` rows of every tensor in a model output (a tensor, list, tuple or dict)."""
    if isinstance(out, torch.Tensor):
        return out[:n]
    if isinstance(out, dict):
        return {k: _first(v, n) for k, v in out.items()}
    if isinstance(out, (list, tuple)):
        return type(out)(_first(o, n) for o in out)
    return out


class FastRunner:
    """Calls ``model`` on batches, through CUDA graphs / ``torch.compile`` where ``mode`` allows.

    Args:
        model: an inference-ready module (eval mode), already on ``device``.
        device: where it runs; off CUDA the runner is a plain call.
        mode: see the module docstring.
        amp_dtype: autocast dtype (``torch.bfloat16``) or None for the module's own precision.
        channels_last: feed channels-last inputs (tensor-core friendly).
        warmup: eager passes before a graph is captured.
        bucket: pad the batch to the next power of two before a graph runs (and cut the output
            back), so that a stream of varying batch sizes (persons per frame) captures at most
            log2(largest batch) graphs instead of one per size; each graph holds its own memory.

    A graph's output is overwritten by the next call with the same shape: copy it (``.cpu()``,
    ``.clone()``) before calling again. Inputs of a new shape capture a new graph.
    """

    def __init__(self, model: nn.Module, device: torch.device | str, mode: str = "auto", *,
                 amp_dtype: torch.dtype | None = None, channels_last: bool = False, warmup: int = 3,
                 bucket: bool = True) -> None:
        self.model = model
        self.device = torch.device(device)
        self.mode = resolve_mode(mode, self.device)
        self.amp_dtype = amp_dtype
        self.channels_last = channels_last
        self.warmup = int(warmup)
        self.bucket = bucket
        self._graphs: dict[tuple[Any, ...], _Graph] = {}
        self._compiled: Callable[..., Any] | None = None
        if self.mode == "compile":
            self._compiled = torch.compile(model, mode="reduce-overhead", dynamic=False)

    def _forward(self, x: torch.Tensor) -> Any:
        fn = self._compiled if self._compiled is not None else self.model
        if self.amp_dtype is not None:
            with torch.autocast(self.device.type, dtype=self.amp_dtype):
                return fn(x)
        return fn(x)

    def __call__(self, x: torch.Tensor) -> Any:
        with torch.inference_mode():
            x = x.to(self.device, non_blocking=True)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if self.mode != "graph":
                return self._forward(x)
            n = x.shape[0]
            size = 1 << (n - 1).bit_length() if self.bucket and n > 0 else n
            if size != n:
                x = torch.cat([x, x.new_zeros((size - n, *x.shape[1:]))])
                if self.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
            key = (tuple(x.shape), x.dtype, x.stride())
            graph = self._graphs.get(key)
            if graph is None:
                graph = self._graphs[key] = _Graph(self._forward, x, self.warmup)
            return _first(graph(x), n) if size != n else graph(x)

    @property
    def captured_shapes(self) -> list[tuple[int, ...]]:
        return [k[0] for k in self._graphs]

    def __repr__(self) -> str:
        return (f"FastRunner(mode={self.mode!r}, device={str(self.device)!r}, amp={self.amp_dtype}, "
                f"channels_last={self.channels_last})")
