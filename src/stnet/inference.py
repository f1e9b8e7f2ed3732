"""Python API for running a pose model on images: :class:`PoseEstimator`.

::

    from stnet.inference import PoseEstimator

    est = PoseEstimator.from_checkpoint("runs/coco_stnet_1s")      # run dir, best.pt or last.pt
    persons = est("photo.jpg", boxes=[[x, y, w, h], ...])          # or boxes=None: est.detector
    for p in persons:
        p.keypoints   # (K, 2) float32 image pixels (x, y)
        p.scores      # (K,)  heatmap maxima
        p.box, p.score, p.skeleton

Inputs (``image``): a numpy ``uint8`` array ``(H, W, 3)`` in **BGR** (OpenCV's order, the
default of rtmlib, ultralytics and mmpose: a ``cv2.imread`` / ``cv2.VideoCapture`` array goes in as
is; ``color="rgb"`` for arrays from PIL / imageio / matplotlib), ``(H, W)`` grayscale or ``(H, W, 4)``
BGRA (alpha dropped), a ``PIL.Image`` (RGB by type, any mode converted), or a path to an image file
(docs/conventions.md). A list of them (or a ``(B, H, W, 3)`` array) is a batch: the call returns
one :class:`Results` per image and all their person crops go through the network together, in
chunks of ``max_batch``; :meth:`PoseEstimator.stream` is the generator form for long folders and
videos. Boxes: ``[x, y, w, h]`` or ``[x, y, w, h, score]`` rows in image pixels; with
``boxes=None`` the estimator's ``detector`` supplies them (default: the whole image). Boxes are
clipped to the image; a box with no area inside the image is skipped with a warning (see
:func:`stnet.detectors.sanitize_boxes`), so the result list can be shorter than ``boxes``; each
result carries the (clipped) box it came from.

All person crops of one call are warped (``cv2.warpAffine``, the training warp), normalised and
run through the backend **in one batch** (split into ``max_batch`` chunks). ``flip_test=True`` adds
the mirrored crops to the same batch and averages heatmaps. Decoding uses the model's codec (UDP +
DARK by default), then the inverse crop warp maps keypoints to image pixels. The person score is
the standard top-down rescoring (:func:`stnet.evaluation.metrics.rescore`). A person whose
heatmaps are not finite (NaN weights, an overflowing backend) is dropped with a
:class:`NonFiniteWarning` instead of being given NaN coordinates.

A model reference (a name, a checkpoint, an ``.onnx`` file, an OpenVINO IR ``.xml``, shipped
weights) is resolved by one factory, :func:`resolve_model`; the network then runs on a backend
(:mod:`stnet.backends`): ``"torch"`` (default, CPU or CUDA; BatchNorm folded), ``"onnxruntime"``
(the network exported to a temporary file, or an existing ``.onnx`` file), ``"openvino"``
(OpenVINO's CPU plugin, ``precision="f32"|"bf16"|"auto"``; the network exported once and cached,
an ``.onnx`` file or an IR), ``"auto"`` (openvino when installed, else the default), or any object
following the :class:`~stnet.backends.Backend` protocol.
"""
from __future__ import annotations

import difflib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import cv2
import numpy as np
import torch
import torch.nn as nn

from .backends import Backend, build_backend
from .codecs import CodecConfig, build_codec
from .codecs.flip_test import flip_heatmaps_back
from .data.dataset import normalize_image
from .data.records import check_image_pixels
from .data.skeletons import Skeleton, get_skeleton, load_skeleton, skeleton_from_dict
from .data.transforms import box_to_center_scale, get_warp_matrix
from .detectors import (DEFAULT_DET_NMS, DEFAULT_DET_SCORE, as_boxes, build_detector, filter_detections, pose_boxes,
                        sanitize_boxes)
from .evaluation.metrics import rescore
from .hub import (DEFAULT_PRETRAINED, WEIGHTS_DIR, ModelFile, default_model, list_pretrained, load_model_ref,
                  model_state, resolve_checkpoint, state_num_joints)
from .models import create_model, list_models
from .results import PoseResult, Results

__all__ = ["PoseEstimator", "PoseResult", "Results", "NonFiniteWarning", "ModelRef", "resolve_model",
           "from_model_file", "load_model_ref",
           "UntrainedWeightsWarning", "load_image",
           "default_skeleton", "resolve_checkpoint", "list_pretrained", "default_model", "DEFAULT_PRETRAINED",
           "WEIGHTS_DIR"]

_DEFAULT_SKELETON = {17: "coco17", 16: "mpii16", 14: "lsp14"}


class UntrainedWeightsWarning(UserWarning):
    """The estimator runs randomly initialised weights: its keypoints are meaningless."""


class NonFiniteWarning(UserWarning):
    """A person's heatmaps were not finite (NaN / inf weights or backend output); it was dropped."""


def load_image(image: Any, color: str | None = None) -> np.ndarray:
    """Any supported input (see the module docstring) -> contiguous RGB ``uint8 (H, W, 3)`` (the
    order used inside the package). ``color`` is the channel order of a numpy array: ``None`` /
    ``"bgr"`` (default, OpenCV's) or ``"rgb"``; files and PIL images carry their own order, so
    ``color`` only applies to them when it contradicts nothing (it is ignored)."""
    color = "bgr" if color is None else color.lower()
    if color not in ("rgb", "bgr"):
        raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
    if isinstance(image, (str, os.PathLike)):
        p = Path(image)
        if not p.is_file():
            raise FileNotFoundError(f"image {p} not found")
        data = np.fromfile(str(p), dtype=np.uint8)
        check_image_pixels(data, p)
        img = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if img is None:
            raise ValueError(f"{p}: not a readable image (OpenCV cannot decode it)")
        return np.ascontiguousarray(img[..., ::-1])
    if hasattr(image, "convert") and hasattr(image, "size") and not isinstance(image, np.ndarray):  # PIL
        return np.ascontiguousarray(np.asarray(image.convert("RGB")))
    if isinstance(image, torch.Tensor):
        raise TypeError("pass images as numpy uint8 (H, W, 3) arrays, PIL images or paths, not tensors")
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise TypeError(f"image arrays must be uint8 (H, W, 3), got dtype {arr.dtype}")
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :3]
    elif arr.ndim == 3 and arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 1:
        raise ValueError(f"image must be (H, W, 3), got shape {arr.shape}")
    if color == "bgr":
        arr = arr[..., ::-1]
    return np.ascontiguousarray(arr)


def _is_batch(image: Any) -> bool:
    """A list / tuple of images or a ``(B, H, W, 3)`` array (a single image is 2-D or 3-D)."""
    if isinstance(image, (list, tuple)):
        return True
    return isinstance(image, np.ndarray) and image.ndim == 4


def default_skeleton(num_joints: int) -> str:
    try:
        return _DEFAULT_SKELETON[int(num_joints)]
    except KeyError:
        raise ValueError(f"no built-in skeleton has {num_joints} keypoints; pass skeleton=") from None


@dataclass(frozen=True)
class ModelRef:
    """What a model reference resolves to (:func:`resolve_model`): the network to run (None for
    an exported file: ``onnx_path`` holds the ``.onnx`` graph, which onnxruntime or OpenVINO can
    run, or the OpenVINO IR ``.xml``), where it came from, and what its weights say about the
    skeleton, crop size and codec (None: not known, the estimator's defaults apply)."""

    network: nn.Module | None
    name: str
    source: str
    untrained: bool = False
    onnx_path: Path | None = None
    skeleton: str | Skeleton | None = None
    input_size: tuple[int, int] | None = None
    codec: CodecConfig | None = None


def resolve_model(ref: str | os.PathLike | nn.Module | ModelRef, weights: str | os.PathLike | None = None, *,
                  model: str | None = None, use_ema: bool = True, skeleton: str | Skeleton | None = None,
                  input_size: Sequence[int] | None = None, codec: CodecConfig | None = None,
                  model_overrides: dict | None = None) -> ModelRef:
    """The one factory for "a model" as a user names it: an ``nn.Module``; a registered model name
    (untrained unless ``weights``: anything :func:`stnet.hub.load_model_ref` reads that holds
    weights); or any model reference :func:`stnet.hub.load_model_ref` reads (a checkpoint file or
    run directory, ``model`` naming the network of a bare ``state_dict``; a pack with its json;
    shipped weights' name; an exported ``.onnx`` or OpenVINO IR ``.xml``). The skeleton, input
    size and codec come from the file; ``skeleton``, ``input_size`` and ``codec`` override them,
    and one that contradicts the file raises naming both. EMA weights are used when a checkpoint
    has them and ``use_ema``."""
    size = _tuple(input_size)
    if isinstance(ref, ModelRef):
        given = {"weights": weights, "model": model, "skeleton": skeleton, "input_size": input_size,
                 "codec": codec, "model_overrides": model_overrides}
        if any(v is not None for v in given.values()):
            raise ValueError(f"{', '.join(k for k, v in given.items() if v is not None)} cannot change a resolved "
                             "ModelRef; pass them to resolve_model()")
        return ref
    if isinstance(ref, nn.Module):
        if weights is not None:
            raise ValueError("weights= goes with a registered model name; load them into the module yourself")
        cfg = getattr(ref, "cfg", None)
        return ModelRef(ref, type(ref).__name__, type(ref).__name__, skeleton=skeleton,
                        input_size=size or _tuple(getattr(cfg, "input_size", None)), codec=codec)
    s = str(ref)
    if weights is not None and s not in list_models():
        raise ValueError(f"--weights goes with a registered model name (--model NAME), not with --model {s}")
    if s in list_models():
        if weights is None:
            return _named(s, None, s, use_ema=use_ema, skeleton=skeleton, input_size=size, codec=codec,
                          overrides=model_overrides)
        mf = load_model_ref(weights)
        if mf.kind in ("pack", "shipped"):
            if mf.model != s:
                raise ValueError(f"--model {s} contradicts --weights {weights}, a pack of {mf.model!r} "
                                 f"(its .json); drop --model or pass --model {weights}")
            return from_model_file(mf, skeleton=skeleton, input_size=size, codec=codec)
        return _named(s, mf.weights("--weights"), str(weights), use_ema=use_ema, skeleton=skeleton, input_size=size,
                      codec=codec, overrides=model_overrides)
    try:
        mf = load_model_ref(s)
    except KeyError:
        names = list_models() + list_pretrained()
        hint = difflib.get_close_matches(s, names, n=1)
        raise KeyError(f"unknown model {s!r}: neither a registered model, a checkpoint file / run directory, a pack, "
                       f"an .onnx / .xml file nor shipped weights"
                       f"{'; did you mean ' + repr(hint[0]) + '?' if hint else ''} "
                       f"(models: {', '.join(list_models())}; shipped: {', '.join(list_pretrained()) or 'none yet'})"
                       ) from None
    return from_model_file(mf, model=model, use_ema=use_ema, skeleton=skeleton, input_size=size, codec=codec)


def from_model_file(mf: ModelFile, *, model: str | None = None, use_ema: bool = True,
                    skeleton: str | Skeleton | None = None, input_size: Sequence[int] | None = None,
                    codec: CodecConfig | None = None) -> ModelRef:
    """The :class:`ModelRef` of a read model file: the network built with its weights (an exported
    graph: its path), with the skeleton, crop size and codec the file records unless given. A
    skeleton with other keypoints than the file's is an error naming both; so is an input size
    other than a pack's or a graph's (running at another size silently degrades the keypoints; a
    training checkpoint may be run at another size on purpose)."""
    size = _tuple(input_size)
    record = "its .json" if mf.kind in ("pack", "shipped") else "its metadata"
    where = f"checkpoint {mf.path}" if mf.kind == "checkpoint" else f"{mf.path} ({record})"
    if size is not None and mf.input_size is not None and size != mf.input_size and mf.kind != "checkpoint":
        raise ValueError(f"--input-size {size[0]}x{size[1]} contradicts {mf.path}, trained at "
                         f"{mf.input_size[0]}x{mf.input_size[1]} ({record}); drop --input-size")
    skel = _agree(skeleton, _file_skeleton(mf, where), where)
    if codec is None and mf.codec:
        codec = CodecConfig(**{k: v for k, v in mf.codec.items() if k in CodecConfig.__dataclass_fields__})
    if mf.is_graph:
        return ModelRef(None, mf.path.stem, mf.source, onnx_path=mf.path, skeleton=skel, input_size=size, codec=codec)
    name = model or mf.model
    if not name:
        raise ValueError(f"checkpoint {mf.path} stores no config (a bare state_dict?); name its network: "
                         f"--model NAME --weights {mf.path} (Python: model=NAME; one of {', '.join(list_models())})")
    return _named(name, mf.weights("--model"), str(mf.path), use_ema=use_ema if mf.kind == "checkpoint" else True,
                  skeleton=skel, input_size=size or mf.input_size, codec=codec, overrides=mf.overrides)


def _file_skeleton(mf: ModelFile, where: str) -> Skeleton | None:
    """The layout a model file records: its full definition (custom layouts included), else a
    built-in name (files written before the definition travelled)."""
    if mf.skeleton is not None:
        return skeleton_from_dict(mf.skeleton, where=f"{where} skeleton")
    if mf.skeleton_name:
        try:
            return get_skeleton(mf.skeleton_name)
        except KeyError:  # a custom layout not registered here: the caller passes --skeleton
            return None
    return None


def _tuple(size: Sequence[int] | None) -> tuple[int, int] | None:
    return (int(size[0]), int(size[1])) if size is not None else None


def _named(name: str, state: dict[str, Any] | None, source: str, *, use_ema: bool, skeleton: str | Skeleton | None,
           input_size: tuple[int, ...] | None, codec: CodecConfig | None, overrides: dict | None) -> ModelRef:
    """Registered model ``name`` with the weights of ``state`` (None: untrained)."""
    overrides = dict(overrides or {})
    sd = model_state(state, use_ema) if state is not None else None
    if "num_joints" not in overrides:
        k = state_num_joints(sd) if sd is not None else None
        if k is not None:
            overrides["num_joints"] = k
        elif skeleton is not None:
            overrides["num_joints"] = load_skeleton(skeleton).num_keypoints
    if input_size is not None:
        overrides["input_size"] = input_size
    net = create_model(name, **overrides)
    if sd is not None:
        try:
            net.load_state_dict(sd)
        except RuntimeError as e:
            first = [ln.strip() for ln in str(e).splitlines() if ln.strip()][1:3]
            raise ValueError(f"weights {source} do not fit model {name!r} ({'; '.join(first)})") from None
    return ModelRef(net, name, source, untrained=sd is None, skeleton=skeleton,
                    input_size=_tuple(getattr(getattr(net, "cfg", None), "input_size", None)), codec=codec)


def _agree(given: str | Skeleton | None, stored: Skeleton | None, source: str) -> str | Skeleton | None:
    """The skeleton to use: the file's unless ``--skeleton`` is given; one with other keypoints than
    the file's is an error naming both."""
    if given is None or stored is None:
        return given if given is not None else stored
    sk = load_skeleton(given)
    if sk.keypoint_names != stored.keypoint_names:
        raise ValueError(f"--skeleton {sk.name} contradicts {source}, trained for skeleton {stored.name!r} "
                         f"({stored.num_keypoints} keypoints: {', '.join(stored.keypoint_names[:4])}, ...)")
    return sk


class PoseEstimator:
    """Top-down pose estimation on whole images (see the module docstring): a network run by a
    backend, plus everything around it.

    Args:
        model: anything :func:`resolve_model` accepts (a registered model name, an ``nn.Module``,
            a checkpoint file or run directory, an exported heatmap ``.onnx`` file, shipped weights'
            name), or its result. A model without weights is untrained: a
            :class:`UntrainedWeightsWarning` is emitted and ``untrained`` is True.
        weights: checkpoint (training checkpoint dict or bare ``state_dict``) for a model name.
        skeleton: keypoint layout name or :class:`Skeleton`; default from the weights, else from the
            number of joints (17 coco17, 16 mpii16, 14 lsp14). Must have the model's number of keypoints.
        input_size: crop ``(H, W)``; default the weights' / model config's.
        codec: :class:`~stnet.codecs.CodecConfig` (default: the checkpoint's, else UDP + DARK).
        model_overrides: config overrides when building the model by name.
        backend: a :class:`~stnet.backends.Backend` object, or ``"torch"`` / ``"onnxruntime"`` /
            ``"openvino"`` / ``"auto"`` (openvino when installed and ``device`` is the CPU, else
            the default: torch, onnxruntime for an ``.onnx`` file, openvino for an IR ``.xml``).
        device: ``"cpu"``, ``"cuda"``, ... (for a backend built by name).
        precision: ``"f32"`` / ``"bf16"`` / ``"auto"`` for the openvino backend (auto: bf16 on
            CPUs with AVX512-BF16 or AMX, see :func:`stnet.backends.openvino.resolve_precision`);
            the torch and onnxruntime backends run fp32.
        threads: OpenVINO inference threads (default torch's thread count).
        flip_test: average with the mirrored crops' heatmaps (2x the compute).
        detector: person boxes when a call passes ``boxes=None``: ``"whole"`` (default, the same as
            ``stnet predict``'s), ``"hog"``, an exported ONNX detector's path, or a callable returning
            boxes (see :mod:`stnet.detectors`).
        max_batch: crops per forward pass (all crops of a call, across its images, are batched).
        det_score, det_nms: detector boxes scoring below ``det_score`` are dropped, then greedy NMS
            at IoU ``det_nms`` (1 disables it); boxes passed by the caller are used as given.
        bbox_padding: the box is enlarged by this factor (1.25, as in training).
        refine_boxes: run the pose twice on detector boxes: the second pass on the box around the
            first pass's keypoints scoring above 0.3 (:func:`stnet.detectors.pose_boxes`; tighter
            and better centred than a detector's box, at twice the pose cost). Boxes a call passes
            are used as given. Off by default: with the shipped LSP model it did not help
            (benchmarks/person_boxes.py, tools/demo_check.py --refine).
    """

    def __init__(self, model: str | os.PathLike | nn.Module | ModelRef = "stnet_1s",
                 weights: str | os.PathLike | None = None, *, skeleton: str | Skeleton | None = None,
                 input_size: Sequence[int] | None = None, codec: CodecConfig | None = None,
                 model_overrides: dict | None = None, backend: str | Backend | None = None,
                 device: str | torch.device = "cpu", precision: str = "auto", threads: int | None = None,
                 flip_test: bool = False, detector: str | Callable | None = None,
                 max_batch: int = 32, bbox_padding: float = 1.25, det_score: float = DEFAULT_DET_SCORE,
                 det_nms: float = DEFAULT_DET_NMS, refine_boxes: bool = False) -> None:
        ref = resolve_model(model, weights, skeleton=skeleton, input_size=input_size, codec=codec,
                            model_overrides=model_overrides)
        if backend is None or isinstance(backend, str):
            backend = (build_backend(backend, ref.network, ref.input_size or (256, 192), device,
                                     precision=precision, threads=threads)
                       if ref.network is not None else  # an exported file: the graph may fix the size
                       build_backend(backend, str(ref.onnx_path), ref.input_size, device,
                                     precision=precision, threads=threads))
        self.network: nn.Module | None = ref.network.eval() if ref.network is not None else None  # for export
        self.backend: Backend = backend
        self.model_name, self.source, self.untrained = ref.name, ref.source, ref.untrained
        self.flip_test, self.max_batch = bool(flip_test), max(1, int(max_batch))
        self.bbox_padding = float(bbox_padding)
        self.detector = build_detector(detector)
        self.det_score, self.det_nms = float(det_score), float(det_nms)
        self.refine_boxes, self.refine_threshold = bool(refine_boxes), 0.3
        self.input_size = tuple(int(v) for v in backend.input_size)
        self.skeleton = self._skeleton(ref.skeleton)
        self.codec_config = ref.codec or CodecConfig()
        self.codec = build_codec(self.codec_config, self.input_size)
        self.unbiased = bool(getattr(self.codec, "unbiased", True))
        if self.untrained:
            warnings.warn(f"PoseEstimator({self.model_name}): running UNTRAINED (randomly initialised) weights; "
                          "keypoints are meaningless. Pass weights=, use PoseEstimator.from_checkpoint(...) "
                          "or from_pretrained(...).", UntrainedWeightsWarning, stacklevel=2)

    def _skeleton(self, skeleton: str | Skeleton | None) -> Skeleton:
        """The layout, checked against the number of heatmaps the model predicts."""
        cfg = getattr(self.network, "cfg", None)
        num_joints = getattr(cfg, "num_joints", None) if self.network is not None else \
            getattr(self.backend, "num_joints", None)
        if skeleton is None:
            if num_joints is None:
                raise ValueError("cannot tell the number of keypoints; pass skeleton=")
            skeleton = default_skeleton(int(num_joints))
        sk = load_skeleton(skeleton)
        if num_joints is not None and int(num_joints) != sk.num_keypoints:
            raise ValueError(f"skeleton {sk.name!r} has {sk.num_keypoints} keypoints but the "
                             f"model predicts {num_joints}: the weights were trained for another skeleton")
        return sk

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, *, model: str | None = None, use_ema: bool = True,
                        **kwargs: Any) -> PoseEstimator:
        """From a training checkpoint (``stnet train``'s ``best.pt`` / ``last.pt``, or a run
        directory holding them): model name, overrides, input size, skeleton and codec are read
        from its stored config. A bare ``state_dict`` needs ``model=NAME``. EMA weights are used
        when present (``use_ema``). ``skeleton=`` given and different from the checkpoint's raises."""
        ref = from_model_file(load_model_ref(resolve_checkpoint(path)), model=model, use_ema=use_ema,
                              **_ref_options(kwargs))
        return cls(ref, **kwargs)

    @classmethod
    def from_pretrained(cls, name: str, **kwargs: Any) -> PoseEstimator:
        """Weights shipped with the package (``stnet/weights/<name>.safetensors`` + ``<name>.json``, the
        json holding ``{"model": ..., "skeleton": ..., "input_size": [H, W], "overrides": {...}}``)."""
        if name not in list_pretrained():
            raise FileNotFoundError(
                f"no pretrained weights named {name!r}; available: {', '.join(list_pretrained()) or 'none yet'}. "
                "Train a model (stnet train) and use PoseEstimator.from_checkpoint('runs/<name>') instead.")
        return cls(from_model_file(load_model_ref(name), **_ref_options(kwargs)), **kwargs)

    @classmethod
    def from_spec(cls, spec: str | os.PathLike, weights: str | os.PathLike | None = None, *, model: str | None = None,
                  **kwargs: Any) -> PoseEstimator:
        """One entry point for "a model" as a user names it on the command line (see
        :func:`resolve_model`); ``model`` names the network of a bare ``state_dict``."""
        overrides = kwargs.pop("model_overrides", None)
        ref = resolve_model(spec, weights, model=model, model_overrides=overrides, **_ref_options(kwargs))
        return cls(ref, **kwargs)

    # ------------------------------------------------------------------ heatmaps
    def heatmaps(self, crops: np.ndarray | torch.Tensor) -> np.ndarray:
        """Model heatmaps ``(B, K, h, w)`` float32 for normalised crops ``(B, 3, H, W)``, with
        flip test when enabled, in chunks of ``max_batch`` crops."""
        x = np.asarray(crops.detach().cpu() if isinstance(crops, torch.Tensor) else crops, dtype=np.float32)
        if self.flip_test:
            x = np.concatenate([x, x[..., ::-1]], 0)
        outs = [self.backend(np.ascontiguousarray(x[i:i + self.max_batch])) for i in range(0, len(x), self.max_batch)]
        hm = np.concatenate(outs, 0) if outs else np.zeros((0, self.skeleton.num_keypoints, 1, 1), np.float32)
        if self.flip_test:
            n = len(hm) // 2
            hm = 0.5 * (hm[:n] + flip_heatmaps_back(hm[n:], self.skeleton.flip_index, shift=not self.unbiased))
        return hm

    # ------------------------------------------------------------------ the call
    def crops(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalised crops ``(N, 3, H, W)`` and crop->image matrices ``(N, 2, 3)`` for ``(N, 5)`` boxes."""
        h, w = self.input_size
        center, scale = box_to_center_scale(boxes[:, :4], w / h, self.bbox_padding)
        crops = np.empty((len(boxes), 3, h, w), np.float32)
        inv = np.empty((len(boxes), 2, 3), np.float64)
        for i in range(len(boxes)):
            mat = get_warp_matrix(center[i], scale[i], 0.0, (h, w), unbiased=self.unbiased)
            crop = cv2.warpAffine(image, mat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
            crops[i] = normalize_image(crop)
            inv[i] = get_warp_matrix(center[i], scale[i], 0.0, (h, w), unbiased=self.unbiased, inverse=True)
        return crops, inv

    def __call__(self, image: Any, boxes: Any = None, *, color: str | None = None, box_format: str = "xywh"
                 ) -> Any:
        """Poses of the persons in ``image``: a :class:`Results` (a list of :class:`PoseResult`,
        one per usable box). For a batch (a list of images or a ``(B, H, W, 3)`` array) a list of
        :class:`Results`, with ``boxes`` None or one entry (boxes or None) per image.
        ``color``: channel order of numpy arrays (default ``"bgr"``, see docs/conventions.md)."""
        if _is_batch(image):
            images = list(image)
            per_image = [None] * len(images) if boxes is None else list(boxes)
            if len(per_image) != len(images):
                raise ValueError(f"boxes has {len(per_image)} entries for {len(images)} images; pass one per image "
                                 "(None: the detector's)")
            return self._run(images, per_image, color, box_format)
        return self._run([image], [boxes], color, box_format)[0]

    def stream(self, images: Iterable[Any], boxes: Iterable[Any] | None = None, *, color: str | None = None,
               box_format: str = "xywh", chunk: int | None = None) -> Iterator[Results]:
        """Generator form of a batch call for long folders and videos: reads ``chunk`` images
        (default ``max_batch``) at a time from the iterable, runs their crops together and yields
        one :class:`Results` per image, in order, so memory stays bounded."""
        chunk = max(1, int(chunk or self.max_batch))
        box_iter = iter(boxes) if boxes is not None else None
        pending: list[Any] = []
        pending_boxes: list[Any] = []
        for img in images:
            pending.append(img)
            pending_boxes.append(next(box_iter, None) if box_iter is not None else None)
            if len(pending) == chunk:
                yield from self._run(pending, pending_boxes, color, box_format)
                pending, pending_boxes = [], []
        if pending:
            yield from self._run(pending, pending_boxes, color, box_format)

    def detect(self, image: np.ndarray) -> np.ndarray:
        """Person boxes ``(N, 5)`` of an RGB image from ``detector``, filtered by ``det_score`` and
        NMS at IoU ``det_nms`` (the same defaults as ``stnet predict``)."""
        return filter_detections(as_boxes(self.detector(image)), self.det_score, self.det_nms)

    def _run(self, images: Sequence[Any], boxes: Sequence[Any], color: str | None, box_format: str
             ) -> list[Results]:
        """Load, box, crop all images; one pass of all crops through the backend; split back."""
        imgs = [load_image(im, color) for im in images]
        per_image = []
        for img, bx in zip(imgs, boxes):
            b = self.detect(img) if bx is None else as_boxes(bx, box_format)
            per_image.append(sanitize_boxes(b, img.shape[:2])[0])
        if self.refine_boxes and not self.untrained and any(bx is None for bx in boxes):  # untrained: noise
            per_image = self._refined(imgs, per_image, [bx is None for bx in boxes])
        crops, inv = [], []
        for img, b in zip(imgs, per_image):
            if len(b):
                c, m = self.crops(img, b)
                crops.append(c)
                inv.append(m)
        out = []
        if crops:
            inv_all = np.concatenate(inv, 0)
            if getattr(self.backend, "decoded", False):  # an ONNX graph that decodes itself
                if self.flip_test:
                    raise ValueError(f"--flip needs heatmaps; {self.source} decodes keypoints in the graph "
                                     "(export it without --decode for flip test)")
                kp, sc = self.backend.keypoints(np.concatenate(crops, 0), inv_all)  # type: ignore[attr-defined]
                finite = np.isfinite(kp).reshape(len(kp), -1).all(1) & np.isfinite(sc).reshape(len(sc), -1).all(1)
            else:
                hm = self.heatmaps(np.concatenate(crops, 0))
                finite = np.isfinite(hm).reshape(len(hm), -1).all(1)
                kp, sc = self.codec.decode(np.where(np.isfinite(hm), hm, 0.0).astype(np.float32))
            kp = np.asarray(kp, np.float64)
            if getattr(self.backend, "with_affine", False):
                img_kp = kp.astype(np.float32)  # already in image pixels
            else:
                img_kp = (np.einsum("nij,nkj->nki", inv_all[..., :2], kp) + inv_all[:, None, :, 2]).astype(np.float32)
            sc = np.asarray(sc, np.float32)
        start = 0
        for i, (img, b) in enumerate(zip(imgs, per_image)):
            persons = []
            if len(b):
                sl = slice(start, start + len(b))
                start += len(b)
                person = rescore(b[:, 4], sc[sl])
                for j, ok in enumerate(finite[sl]):
                    if not ok:
                        warnings.warn(f"{_name(images[i])}: the heatmaps of the person in box "
                                      f"{np.round(b[j, :4], 1).tolist()} are not finite (NaN / inf weights?); "
                                      "person dropped", NonFiniteWarning, stacklevel=3)
                        continue
                    x, y, w, h = (float(v) for v in b[j, :4])
                    persons.append(PoseResult(img_kp[sl][j], sc[sl][j], (x, y, w, h), float(person[j]),
                                              self.skeleton.name))
            path = str(images[i]) if isinstance(images[i], (str, os.PathLike)) else None
            out.append(Results(persons, img, self.skeleton, path=path, untrained=self.untrained))
        return out

    def _refined(self, imgs: list[np.ndarray], per_image: list[np.ndarray], detected: list[bool]
                 ) -> list[np.ndarray]:
        """Detector boxes replaced by boxes around a first pass's confident keypoints
        (:func:`stnet.detectors.pose_boxes`); boxes a caller gave are kept as given."""
        first = self.with_options(refine_boxes=False)._run(imgs, per_image, "rgb", "xywh")
        out = []
        for img, b, res, det in zip(imgs, per_image, first, detected):
            if det and len(res) and len(res) == len(b):  # (a person dropped as non-finite: keep the boxes)
                b = sanitize_boxes(pose_boxes(res.keypoints, res.scores, b, self.refine_threshold), img.shape[:2])[0]
            out.append(b)
        return out

    predict = __call__

    @property
    def backend_name(self) -> str:
        return str(getattr(self.backend, "name", type(self.backend).__name__))

    def __repr__(self) -> str:
        prec = getattr(self.backend, "precision", None)
        return (f"PoseEstimator({self.model_name!r}, skeleton={self.skeleton.name!r}, input_size={self.input_size}, "
                f"backend={self.backend_name!r}{f', precision={prec!r}' if prec else ''}, "
                f"flip_test={self.flip_test}, untrained={self.untrained})")

    def with_options(self, **changes) -> "PoseEstimator":
        """Shallow copy with attributes changed (``flip_test``, ``detector``, ``max_batch``)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        for k, v in changes.items():
            if k == "detector":
                v = build_detector(v)
            setattr(new, k, v)
        return new



def _name(image: Any) -> str:
    return str(image) if isinstance(image, (str, os.PathLike)) else "image"


def _ref_options(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Pop the options that shape the model (``skeleton``, ``input_size``, ``codec``) out of a
    constructor's ``kwargs``; the rest configure the estimator."""
    size = kwargs.pop("input_size", None)
    return {"skeleton": kwargs.pop("skeleton", None), "codec": kwargs.pop("codec", None),
            "input_size": tuple(int(v) for v in size) if size is not None else None}
