"""Export models for deployment (ONNX; OpenVINO IR through :func:`export_openvino`).

Plain export (:func:`export_onnx`): the graph takes ``images`` (B, 3, H, W) float32,
ImageNet-normalised, and returns ``heatmaps`` (B, K, H/4, W/4); the batch dimension is dynamic.

With ``decode=True`` the heatmap decoding runs inside the graph (:class:`DecodeHead`), so an ONNX
user gets ``keypoints`` (B, K, 2) float32 and ``scores`` (B, K) float32 directly:

* integer argmax of each heatmap, score = the heatmap maximum (as :mod:`stnet.codecs`);
* DARK-style sub-pixel refinement: the heatmap is Gaussian-blurred (same kernel as DARK / the
  codec's ``blur_kernel_size``), and one Newton step on the log of the blurred map's 3x3
  neighbourhood around the argmax (stencil moved inward at the border) is taken, kept when the
  local quadratic is a maximum (no stay-near-the-argmax rule, as in the reference; the step is
  bounded by the kernel radius + 1 and the map, which only flat maps reach). This equals
  :func:`stnet.codecs.refine_dark` with ``sigma=None`` (no border-bias lookup table): it differs
  from the Python decoder only for keypoints within ~2 heatmap pixels of the crop border;
* heatmap -> crop pixels with the codec's geometry (UDP: ``x * (W-1)/(w-1)``; classic: ``x * W/w``);
* with ``with_affine=True`` a second input ``affine`` (B, 2, 3) float32 holds per-crop matrices
  mapping crop pixels to image pixels (the inverse of the crop warp, e.g.
  ``stnet.data.transforms.get_warp_matrix(center, scale, 0, (H, W), inverse=True)``) and the
  outputs are in image pixels.

BatchNorm is folded first (the function is unchanged, see stnet.models.fuse). Files are written
atomically: an existing file at ``path`` is replaced only once the new export is complete.
:func:`export_estimator` exports a :class:`~stnet.inference.PoseEstimator`'s network with its
metadata (``stnet export``), :func:`check_onnx` measures the file against PyTorch and
:func:`ort_session` opens it with onnxruntime (used by the onnxruntime backend and ``stnet bench``).

Both formats carry the same metadata json (:func:`deployment_metadata`): the ONNX file in
``metadata_props["stnet"]``, the OpenVINO IR in its rt_info under ``stnet``.
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .hub import GRAPH_METADATA_KEY
from .io import DiskFullError, atomic_write
from .models.fuse import fold_batchnorm
from .models.outputs import last_stage

if TYPE_CHECKING:
    from .inference import PoseEstimator

__all__ = ["export_onnx", "export_openvino", "export_estimator", "deployment_metadata", "check_onnx", "ort_session",
           "DecodeHead", "DecodingModel"]


def deployment_metadata(*, model: str, skeleton, input_size: Sequence[int], codec=None, unbiased: bool = True,
                        bbox_padding: float = 1.25, decode: bool = False, with_affine: bool = False,
                        untrained: bool = False, source: str | None = None) -> dict:
    """What a consumer of an exported graph needs besides the graph: the model, the keypoint
    layout, the crop size, the input normalisation and the crop conventions (how a person box
    becomes a crop), the codec and whether decoding is in the graph. Stored by ``stnet export``
    in both formats."""
    from .codecs import CodecConfig
    from .data.skeletons import get_skeleton

    skel = get_skeleton(skeleton)
    codec = codec or CodecConfig()
    h, w = int(input_size[0]), int(input_size[1])
    return {
        "model": model, "skeleton": skel.name, "keypoint_names": list(skel.keypoint_names),
        "skeleton_def": skel.to_dict(),
        "input_size": [h, w], "normalize": "ImageNet mean/std on RGB 0..255",
        "normalization": {"color": "RGB", "scale": "1/255", "mean": [0.485, 0.456, 0.406],
                          "std": [0.229, 0.224, 0.225], "layout": "NCHW float32"},
        # what a plain onnxruntime / OpenVINO user must reproduce to crop as training did
        "crop": {"box": "[x, y, w, h] image pixels", "bbox_padding": float(bbox_padding),
                 "aspect_ratio": round(w / h, 6), "pixel_mapping": "udp" if unbiased else "msra",
                 "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "color": "RGB", "scale": "1/255",
                 "rule": "centre kept, the shorter side grown to W/H, then both sides x bbox_padding",
                 "warp": "affine (stnet.data.transforms.get_warp_matrix), bilinear, zero border; " + (
                     "unbiased (UDP): region centre -> ((W-1)/2, (H-1)/2), x scale (W-1)/region_w, "
                     "y scale (H-1)/region_h; pixel centres at integers" if unbiased else
                     "classic: region centre -> (W/2, H/2), scale W/region_w on both axes"),
                 "unbiased": bool(unbiased)},
        "codec": codec.kind, "heatmap_stride": int(codec.heatmap_stride), "sigma": float(codec.sigma),
        "blur_kernel_size": int(codec.blur_kernel_size),
        "decode": bool(decode or with_affine), "with_affine": bool(with_affine),
        "untrained": bool(untrained), "source": source,
    }


#: Key of the metadata json: ONNX ``metadata_props["stnet"]``, OpenVINO IR rt_info ``["stnet"]``.
METADATA_KEY = GRAPH_METADATA_KEY  # defined with its reader, stnet.hub.read_graph_metadata


def _openvino() -> Any:
    try:
        import openvino as ov
    except ImportError:
        raise ImportError("OpenVINO export / backend needs the openvino package: pip install 'stnet[openvino]' "
                          "(or openvino>=2025.0)") from None
    return ov


def _to_openvino_model(model: nn.Module, input_size: tuple[int, int] | None, *, metadata: dict | None = None,
                       **onnx_kwargs: Any) -> Any:
    """``nn.Module`` -> ``openvino.Model`` through :func:`export_onnx` (BatchNorm folded, dynamic
    batch), with ``metadata`` in rt_info."""
    import tempfile

    ov = _openvino()
    with tempfile.TemporaryDirectory(prefix="stnet_ov_") as tmp:
        path = export_onnx(model, Path(tmp) / "model.onnx", input_size, **onnx_kwargs)
        ov_model = ov.Core().read_model(str(path))
    if metadata:
        ov_model.set_rt_info(json.dumps(metadata), [METADATA_KEY])
    return ov_model


def _save_ir(ov_model: Any, path: Path, compress_to_fp16: bool = False) -> Path:
    """Write ``path`` (.xml) + its .bin atomically: both are written under a temporary folder
    beside them, then renamed (.bin first)."""
    import tempfile

    ov = _openvino()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".stnet_ir_", dir=path.parent) as tmp:
        tmp_xml = Path(tmp) / "model.xml"
        try:
            ov.save_model(ov_model, str(tmp_xml), compress_to_fp16=compress_to_fp16)
        except RuntimeError as e:  # OpenVINO reports a full disk / unwritable folder as a RuntimeError
            if shutil.disk_usage(path.parent).free < (1 << 20):
                raise DiskFullError(path) from None
            raise OSError(errno.EIO, f"OpenVINO could not write the IR ({str(e).strip().splitlines()[-1][:200]})",
                          str(path)) from None
        os.replace(tmp_xml.with_suffix(".bin"), path.with_suffix(".bin"))
        os.replace(tmp_xml, path)
    return path


def export_openvino(model: nn.Module, path: str | os.PathLike, input_size: Sequence[int] | None = None, *,
                    metadata: dict | None = None, decode: bool = False, with_affine: bool = False,
                    unbiased: bool = True, blur_kernel_size: int = 11, opset: int = 17,
                    compress_to_fp16: bool = False) -> Path:
    """Write ``model`` as OpenVINO IR: ``path`` (``.xml``, the suffix is added when missing) and
    the matching ``.bin``; returns the ``.xml`` path. Needs the ``openvino`` package.

    The graph is the one :func:`export_onnx` writes (same inputs / outputs, dynamic batch,
    BatchNorm folded; ``decode`` / ``with_affine`` add the in-graph decoding), converted by
    OpenVINO. ``metadata`` (json-able dict, e.g. :func:`deployment_metadata`) is stored in the IR's
    rt_info under ``stnet``, the same json the ONNX export keeps in ``metadata_props["stnet"]``;
    read it back with :func:`stnet.backends.openvino.read_metadata`. Weights stay f32 unless
    ``compress_to_fp16`` (bf16 is chosen at run time, not in the file)."""
    path = Path(path)
    if path.suffix != ".xml":
        path = path.with_name(path.name + ".xml")
    size = (int(input_size[0]), int(input_size[1])) if input_size is not None else None
    ov_model = _to_openvino_model(model, size, metadata=metadata, opset=opset, decode=decode,
                                  with_affine=with_affine, unbiased=unbiased, blur_kernel_size=blur_kernel_size)
    return _save_ir(ov_model, path, compress_to_fp16)


def _blur_kernel(kernel_size: int) -> torch.Tensor:
    from .codecs.dark import blur_kernel_1d

    return torch.as_tensor(blur_kernel_1d(kernel_size), dtype=torch.float32)


class DecodeHead(nn.Module):
    """Heatmaps ``(B, K, h, w)`` -> keypoints ``(B, K, 2)`` in crop pixels (or image pixels when an
    ``affine`` ``(B, 2, 3)`` crop->image matrix is given) and scores ``(B, K)``. Traceable and
    ONNX-exportable (no data-dependent control flow); see the module docstring."""

    ratio: torch.Tensor
    gx: torch.Tensor
    gy: torch.Tensor

    def __init__(self, num_joints: int, input_size: Sequence[int], heatmap_size: Sequence[int] | None = None,
                 blur_kernel_size: int = 11, unbiased: bool = True, refine: bool = True, eps: float = 1e-10) -> None:
        super().__init__()
        hi, wi = int(input_size[0]), int(input_size[1])
        hh, wh = (int(heatmap_size[0]), int(heatmap_size[1])) if heatmap_size else (hi // 4, wi // 4)
        self.num_joints, self.heatmap_size, self.refine, self.eps = int(num_joints), (hh, wh), bool(refine), float(eps)
        if unbiased:
            ratio = [(wi - 1) / (wh - 1), (hi - 1) / (hh - 1)]
        else:
            ratio = [wi / wh, hi / hh]
        self.register_buffer("ratio", torch.tensor(ratio, dtype=torch.float32), persistent=False)
        self.ks = int(blur_kernel_size)
        if self.ks > 1 and self.ks % 2 == 0:
            raise ValueError(f"blur kernel size must be odd, got {self.ks}")
        g = _blur_kernel(max(self.ks, 1))
        k = self.num_joints
        self.register_buffer("gx", g.view(1, 1, 1, -1).repeat(k, 1, 1, 1), persistent=False)
        self.register_buffer("gy", g.view(1, 1, -1, 1).repeat(k, 1, 1, 1), persistent=False)

    def forward(self, heatmaps: torch.Tensor, affine: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        b, k, h, w = heatmaps.shape
        flat = heatmaps.reshape(b, k, h * w)
        scores, idx = flat.max(dim=-1)
        ax = idx % w
        ay = torch.div(idx, w, rounding_mode="floor")
        x = ax.to(heatmaps.dtype)
        y = ay.to(heatmaps.dtype)
        if self.refine and h >= 3 and w >= 3:
            hm = heatmaps
            if self.ks > 1:
                p = self.ks // 2
                hm = F.conv2d(hm, self.gx.to(hm.dtype), padding=(0, p), groups=k)
                hm = F.conv2d(hm, self.gy.to(hm.dtype), padding=(p, 0), groups=k)
            logm = torch.log(hm.clamp_min(self.eps)).reshape(b, k, h * w)
            cx = ax.clamp(1, w - 2)
            cy = ay.clamp(1, h - 2)
            centre = cy * w + cx
            offs = torch.tensor([-w - 1, -w, -w + 1, -1, 0, 1, w - 1, w, w + 1], dtype=centre.dtype,
                                device=centre.device)
            st = logm.gather(-1, centre.unsqueeze(-1) + offs)  # (B, K, 9): rows dy=-1,0,1 x cols dx
            ul, u, ur, l, c, r, dl, d, dr = st.unbind(-1)  # noqa: E741 - the stencil's left neighbour
            gx = 0.5 * (r - l)
            gy = 0.5 * (d - u)
            hxx = r - 2 * c + l
            hyy = d - 2 * c + u
            hxy = 0.25 * (dr - ur - dl + ul)
            det = hxx * hyy - hxy * hxy
            ok = (det > 1e-12) & (hxx < 0)
            safe = torch.where(ok, det, torch.ones_like(det))
            nx = cx.to(x.dtype) - (hyy * gx - hxy * gy) / safe
            ny = cy.to(y.dtype) - (hxx * gy - hxy * gx) / safe
            # The step bounds of refine_dark: the stencil's reach on the blurred map, and the map.
            reach = float(max(self.ks, 1) // 2 + 1)
            fx, fy = cx.to(x.dtype), cy.to(y.dtype)
            nx = (fx + (nx - fx).clamp(-reach, reach)).clamp(-0.5, w - 0.5)
            ny = (fy + (ny - fy).clamp(-reach, reach)).clamp(-0.5, h - 0.5)
            x = torch.where(ok, nx, x)
            y = torch.where(ok, ny, y)
        kp = torch.stack([x, y], dim=-1) * self.ratio.to(heatmaps.dtype)
        if affine is not None:
            a = affine.to(kp.dtype)
            kp = kp @ a[:, :, :2].transpose(1, 2) + a[:, None, :, 2]
        return kp, scores


class DecodingModel(nn.Module):
    """``model`` followed by :class:`DecodeHead`: images (+ affine) -> keypoints, scores."""

    def __init__(self, model: nn.Module, head: DecodeHead, with_affine: bool = False) -> None:
        super().__init__()
        self.model, self.head, self.with_affine = model, head, with_affine

    def forward(self, images: torch.Tensor, affine: torch.Tensor | None = None):
        return self.head(last_stage(self.model(images)), affine if self.with_affine else None)


def _model_geometry(model: nn.Module, input_size) -> tuple[tuple[int, int], int]:
    cfg = getattr(model, "cfg", None)
    if input_size is None:
        input_size = tuple(getattr(cfg, "input_size", (256, 192)))
    k = int(getattr(cfg, "num_joints", 0) or getattr(model, "num_joints", 0) or 0)
    return (int(input_size[0]), int(input_size[1])), k


#: Opsets stnet's networks export to: torch's TorchScript exporter writes at most 20; below 9 it fails
#: (9 exports STNet with and without the decoding head).
MIN_OPSET, MAX_OPSET = 9, 20


def check_export_args(path: Path | None, opset: int) -> None:
    """One-line errors for an output path that is a folder and an opset the exporter cannot write
    (torch's own errors are hundreds of lines)."""
    if path is not None and path.is_dir():
        raise ValueError(f"output {path} is a folder; give a file name, e.g. {path / 'model.onnx'}")
    if not MIN_OPSET <= int(opset) <= MAX_OPSET:
        raise ValueError(f"opset {opset} is not supported: use {MIN_OPSET} to {MAX_OPSET} (default 17)")


def export_onnx(model: nn.Module, path: str | os.PathLike, input_size: tuple[int, int] | None = None,
                opset: int = 17, fold_bn: bool = True, dynamic_batch: bool = True, *,
                decode: bool = False, with_affine: bool = False, unbiased: bool = True,
                blur_kernel_size: int = 11, metadata: dict | None = None) -> Path:
    """Write ``model`` as ONNX to ``path`` and return the path.

    ``decode``: append :class:`DecodeHead` (outputs ``keypoints``, ``scores``); ``with_affine``
    adds the ``affine`` input (implies ``decode``). ``unbiased`` / ``blur_kernel_size`` must match
    the codec the model was trained with (UDP + 11 by default). ``metadata`` (json-able dict) is
    stored in the model's ``metadata_props`` under ``stnet`` (skeleton, input size, ...).
    """
    path = Path(path)
    check_export_args(path, opset)
    input_size, k = _model_geometry(model, input_size)
    model = fold_batchnorm(model) if fold_bn else model.eval()
    decode = decode or with_affine
    dummy = torch.zeros(1, 3, *input_size)
    if decode:
        if not k:
            with torch.no_grad():
                k = int(last_stage(model(dummy)).shape[1])
        head = DecodeHead(k, input_size, blur_kernel_size=blur_kernel_size, unbiased=unbiased)
        net: nn.Module = DecodingModel(model, head, with_affine).eval()
        inputs: tuple = (dummy, torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]])) if with_affine else (dummy,)
        input_names = ["images", "affine"] if with_affine else ["images"]
        output_names = ["keypoints", "scores"]
    else:
        net, inputs, input_names, output_names = model, (dummy,), ["images"], ["heatmaps"]
    dyn = {n: {0: "batch"} for n in input_names + output_names} if dynamic_batch else None
    with atomic_write(path, suffix=".onnx") as tmp:
        with warnings.catch_warnings():
            # The TorchScript-based exporter is deprecated in favour of torch.export's, which needs
            # onnxscript; ours has no data-dependent control flow, so tracing is exact.
            warnings.simplefilter("ignore")
            torch.onnx.export(net, inputs, str(tmp), dynamo=False, opset_version=opset,
                              input_names=input_names, output_names=output_names, dynamic_axes=dyn)
        if metadata:
            try:
                import onnx

                m = onnx.load(str(tmp))
                entry = m.metadata_props.add()
                entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
                onnx.save(m, str(tmp))
            except ImportError:  # metadata is a convenience; the graph is complete without it
                pass
    return path


#: ``stnet export --format`` values and the file each writes.
EXPORT_FORMATS = {"onnx": ".onnx", "openvino": ".xml"}


def export_estimator(est: PoseEstimator, path: str | os.PathLike, *, format: str = "onnx", opset: int = 17,
                     decode: bool = False, with_affine: bool = False) -> Path:
    """Export a :class:`~stnet.inference.PoseEstimator`'s network with its input size and codec, and
    :func:`deployment_metadata` (model, skeleton, normalisation, crop conventions, codec,
    provenance) in the file (what ``stnet export`` does). ``format``: ``"onnx"`` (metadata in
    ``metadata_props["stnet"]``) or ``"openvino"`` (IR ``.xml`` + ``.bin``, metadata in rt_info)."""
    if format not in EXPORT_FORMATS:
        raise ValueError(f"unsupported export format {format!r} (one of {', '.join(EXPORT_FORMATS)})")
    if est.network is None:
        raise ValueError(f"{est.source} is already an exported file")
    decode = decode or with_affine
    meta = deployment_metadata(model=est.model_name, skeleton=est.skeleton, input_size=est.input_size,
                               codec=est.codec_config, unbiased=est.unbiased, bbox_padding=est.bbox_padding,
                               decode=decode, with_affine=with_affine, untrained=est.untrained, source=est.source)
    h, w = est.input_size
    kwargs: dict[str, Any] = dict(opset=opset, decode=decode, with_affine=with_affine, unbiased=est.unbiased,
                  blur_kernel_size=est.codec_config.blur_kernel_size, metadata=meta)
    if format == "openvino":
        return export_openvino(est.network, path, (h, w), **kwargs)
    return export_onnx(est.network, path, (h, w), **kwargs)


def ort_session(path: str | os.PathLike, *, threads: int | None = None, providers: Sequence[str] | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` with all graph optimisations; ``threads`` intra-op
    threads (default torch's), ``providers`` (default CPU)."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ImportError("backend='onnxruntime' needs the onnxruntime package (pip install onnxruntime)") from None
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"ONNX model {p} not found")
    if p.stat().st_size == 0:
        raise ValueError(f"ONNX model {p} is empty (0 bytes); export it again")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = torch.get_num_threads() if threads is None else int(threads)
    try:
        return ort.InferenceSession(str(p), so, providers=list(providers or ["CPUExecutionProvider"]))
    except Exception as e:  # noqa: BLE001 - onnxruntime raises its own types (InvalidProtobuf, Fail, ...)
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ValueError(f"ONNX model {p} cannot be loaded: it is corrupted, truncated or not an ONNX "
                         f"file ({first})") from None


def check_onnx(model: nn.Module, path: str | os.PathLike, input_size: tuple[int, int], *, decode: bool = False,
               with_affine: bool = False, unbiased: bool = True, blur_kernel_size: int = 11,
               runtime: str = "onnxruntime") -> float:
    """Max abs difference between the exported file at ``path`` (as :func:`export_onnx` /
    :func:`export_openvino` wrote it with these options) and ``model`` (BatchNorm folded) on a
    random batch of 2 (fixed seed, so the number is reproducible). ``runtime``: ``"onnxruntime"``
    (an ``.onnx`` file) or ``"openvino"`` (an ``.onnx`` or IR ``.xml``, run in f32); needs that
    package."""
    x = torch.randn(2, 3, *input_size, generator=torch.Generator().manual_seed(0))
    net = fold_batchnorm(model)
    feed = {"images": x.numpy()}
    aff = torch.tensor([[[2.0, 0, 5], [0, 2.0, 7]]] * 2)
    if with_affine:
        feed["affine"] = aff.numpy()
    if runtime == "openvino":
        try:
            import openvino as ov
        except ImportError:
            raise ImportError("checking an OpenVINO export needs the openvino package") from None
        compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        res = compiled(feed)
        outs = [np.asarray(res[o]) for o in compiled.outputs]
    else:
        outs = ort_session(path, providers=["CPUExecutionProvider"]).run(None, feed)
    with torch.inference_mode():
        hm = last_stage(net(x))
        if not (decode or with_affine):
            return float(np.abs(outs[0] - hm.numpy()).max())
        head = DecodeHead(int(hm.shape[1]), input_size, unbiased=unbiased, blur_kernel_size=blur_kernel_size)
        ref = head(hm, aff if with_affine else None)
    return float(max(np.abs(o - r.numpy()).max() for o, r in zip(outs, ref)))
