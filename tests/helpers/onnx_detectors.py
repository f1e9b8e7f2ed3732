"""Tiny ONNX "detectors" with fixed, known outputs (tests and benchmarks): the graph returns the
given constants (+ 0 x the input mean, so the input is consumed like a real model's)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def constant_onnx(path: Path, outputs: dict[str, np.ndarray], size: tuple[int, int] = (640, 640)) -> Path:
    """Write an ONNX model with input ``images (1, 3, *size)`` and the given float32 / int64 outputs."""
    from onnx import TensorProto, helper, numpy_helper, save

    nodes = [helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["z"])]
    inits = [numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    outs = []
    for name, value in outputs.items():
        inits.append(numpy_helper.from_array(value, name + "_c"))
        if value.dtype == np.float32:
            nodes.append(helper.make_node("Add", [name + "_c", "z"], [name]))
            outs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, value.shape))
        else:
            nodes.append(helper.make_node("Identity", [name + "_c"], [name]))
            outs.append(helper.make_tensor_value_info(name, TensorProto.INT64, value.shape))
    graph = helper.make_graph(nodes, "det", [helper.make_tensor_value_info("images", TensorProto.FLOAT,
                                                                            [1, 3, *size])], outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(path))
    return path
