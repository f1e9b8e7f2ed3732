"""Python API for running a pose model on images: :class:`PoseEstimator`.

::

    from stnet import PoseEstimator

    est = PoseEstimator()                                          # the shipped default weights
    est = PoseEstimator("runs/coco_stnet_1s")                      # or any model reference: run dir,
                                                                   # checkpoint, pack, .onnx, .xml, name
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

All person crops of one call are warped (:func:`stnet.data.transforms.warp_image`, the training
warp), normalised and run through the backend **in one batch** (split into ``max_batch`` chunks).
``flip_test=True`` runs :func:`stnet.codecs.flip.flip_test` (the mirrored crops in the same batch).
Decoding uses the model's codec (UDP + DARK by default), or the graph's own when it decodes
(``stnet export --decode``), then :func:`stnet.data.transforms.crop_to_image` maps keypoints to
image pixels, as evaluation does. The person score is
the standard top-down rescoring (:func:`stnet.evaluation.metrics.rescore`). A person whose
heatmaps are not finite (NaN weights, an overflowing backend) is dropped with a
:class:`NonFiniteWarning` instead of being given NaN coordinates.

A model reference (a name, a checkpoint, an ``.onnx`` file, an OpenVINO IR ``.xml``, shipped
weights) is resolved by one factory, :func:`stnet.inference.model.resolve_model`; the network then
runs on a backend
(:mod:`stnet.backends`): ``"torch"`` (default, CPU or CUDA; BatchNorm folded), ``"onnxruntime"``
(the network exported to a temporary file, or an existing ``.onnx`` file), ``"openvino"``
(OpenVINO's CPU plugin, ``precision="f32"|"bf16"|"auto"``; the network exported once and cached,
an ``.onnx`` file or an IR), ``"auto"`` (openvino when installed, else the default), or any object
following the :class:`~stnet.backends.Backend` protocol.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.nn as nn

from stnet.backends import Backend, BackendOutput, as_backend, build_backend
from stnet.codecs import CodecConfig, build_codec
from stnet.codecs.flip import flip_test
from stnet.constants import DEFAULT_INPUT_SIZE, DEFAULT_MODEL
from stnet.data.dataset import normalize_image
from stnet.data.skeletons import Skeleton, load_skeleton
from stnet.data.transforms import box_to_center_scale, crop_to_image, get_warp_matrix, warp_image
from stnet.detectors import (DEFAULT_DET_NMS, DEFAULT_DET_SCORE, DEFAULT_POSE_NMS, as_boxes, build_detector,
                             filter_detections, pose_boxes, sanitize_boxes)
from stnet.evaluation.metrics import rescore
from stnet.evaluation.nms import oks_nms
from stnet.export.onnx import export_onnx
from stnet.export.openvino import export_openvino
from stnet.model_files import list_pretrained
from stnet.models import list_models
from stnet.results import PoseResult, Results

from .images import image_name, is_batch, load_image
from .model import ModelRef, resolve_model

__all__ = ["PoseEstimator", "NonFiniteWarning", "UntrainedWeightsWarning", "default_skeleton", "EXPORT_FORMATS"]

_DEFAULT_SKELETON = {17: "coco17", 16: "mpii16", 14: "lsp14"}

#: ``PoseEstimator.export`` / ``stnet export --format`` values and the file each writes.
EXPORT_FORMATS = {"onnx": ".onnx", "openvino": ".xml"}


class UntrainedWeightsWarning(UserWarning):
    """The estimator runs randomly initialised weights: its keypoints are meaningless."""


class NonFiniteWarning(UserWarning):
    """A person's heatmaps were not finite (NaN / inf weights or backend output); it was dropped."""


def default_skeleton(num_joints: int) -> str:
    try:
        return _DEFAULT_SKELETON[int(num_joints)]
    except KeyError:
        raise ValueError(f"no built-in skeleton has {num_joints} keypoints; pass skeleton=") from None


class PoseEstimator:
    """Top-down pose estimation on whole images (see the module docstring): a network run by a
    backend, plus everything around it.

    Args:
        model: None (default): the shipped default weights (``stnet.constants.DEFAULT_MODEL``); or
            anything :func:`~stnet.inference.model.resolve_model` accepts (shipped weights' name, a
            checkpoint file or run directory, a pack, an exported ``.onnx`` / ``.xml`` file, an
            ``nn.Module``, a registered architecture name), or its result. An architecture name
            without ``weights`` is untrained, only when asked for so: a
            :class:`UntrainedWeightsWarning` is emitted and ``untrained`` is True.
        weights: weights for a registered architecture name (a checkpoint, run directory, pack or
            bare ``state_dict``; ``model`` then names the network of a bare ``state_dict``).
        use_ema: the EMA weights of a training checkpoint when it has them.
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
        pose_nms: of the persons found on detector boxes, one whose keypoints match a
            higher-scoring person's at OKS (the skeleton's sigmas, the boxes' areas) above this is
            dropped: two boxes on one person give two near-identical poses, drawn twice and given two
            track ids in a video (:meth:`suppress_duplicates`; 1 disables it). Distinct people score
            far below 0.5: on coco_mini's BlazePose persons (block-5 weights) 0.49 at most apart from the 5 duplicate
            pairs (0.74-0.95), whose removal left AP unchanged (benchmarks/pose_nms.py). Boxes a
            call passes are kept as given.
    """

    def __init__(self, model: str | os.PathLike | nn.Module | ModelRef | None = None,
                 weights: str | os.PathLike | None = None, *, use_ema: bool = True,
                 skeleton: str | Skeleton | None = None,
                 input_size: Sequence[int] | None = None, codec: CodecConfig | None = None,
                 model_overrides: dict | None = None, backend: str | Backend | None = None,
                 device: str | torch.device = "cpu", precision: str = "auto", threads: int | None = None,
                 flip_test: bool = False, detector: str | Callable | None = None,
                 max_batch: int = 32, bbox_padding: float = 1.25, det_score: float = DEFAULT_DET_SCORE,
                 det_nms: float = DEFAULT_DET_NMS, refine_boxes: bool = False,
                 pose_nms: float = DEFAULT_POSE_NMS) -> None:
        ref = resolve_model(DEFAULT_MODEL if model is None else model, weights, use_ema=use_ema, skeleton=skeleton,
                            input_size=input_size, codec=codec, model_overrides=model_overrides)
        if backend is None or isinstance(backend, str):
            backend = (build_backend(backend, ref.network, ref.card.input_size or DEFAULT_INPUT_SIZE, device,
                                     precision=precision, threads=threads)
                       if ref.network is not None else  # an exported file: the graph may fix the size
                       build_backend(backend, str(ref.graph), ref.card.input_size, device,
                                     precision=precision, threads=threads))
        self.network: nn.Module | None = ref.network.eval() if ref.network is not None else None  # for export
        self.backend: Backend = as_backend(backend)
        self.model_name, self.source, self.untrained = ref.name, ref.source, ref.untrained
        self.flip_test, self.max_batch = bool(flip_test), max(1, int(max_batch))
        self.bbox_padding = float(bbox_padding)
        self.detector = build_detector(detector)
        self.det_score, self.det_nms = float(det_score), float(det_nms)
        self.refine_boxes, self.refine_threshold = bool(refine_boxes), 0.3
        if not 0 <= pose_nms <= 1:  # NaN fails too; below 0 it would keep one person per image
            raise ValueError(f"pose_nms must be an OKS between 0 and 1 (1: off), got {pose_nms}")
        self.pose_nms = float(pose_nms)
        self.input_size = tuple(int(v) for v in self.backend.input_size)
        self.skeleton = self._skeleton(ref.skeleton)
        self.codec_config = ref.codec or CodecConfig()
        try:
            self.codec = build_codec(self.codec_config, self.input_size)
        except ValueError as e:  # the codec and crop size a file records may not fit together: name it
            raise ValueError(f"{self.source}: {e}") from None
        self.unbiased = bool(getattr(self.codec, "unbiased", True))
        #: what this estimator runs: the file's card with the options applied and what the backend returns
        self.card = ref.card.replace(
            input_size=self.input_size, num_joints=self.skeleton.num_keypoints, skeleton=self.skeleton.to_dict(),
            skeleton_name=None, codec=dict(vars(self.codec_config)), decode=self.backend.card.decode,
            with_affine=self.backend.card.with_affine,
            provenance={**ref.card.provenance, "source": self.source, "untrained": self.untrained,
                        "bbox_padding": self.bbox_padding})
        if self.untrained:
            warnings.warn(f"PoseEstimator({self.model_name}): running UNTRAINED (randomly initialised) weights; "
                          "keypoints are meaningless. Pass weights= or a trained model (PoseEstimator() runs "
                          "the shipped weights).", UntrainedWeightsWarning, stacklevel=2)

    def _skeleton(self, skeleton: str | Skeleton | None) -> Skeleton:
        """The layout, checked against the number of heatmaps the model predicts."""
        cfg = getattr(self.network, "cfg", None)
        num_joints = getattr(cfg, "num_joints", None) if self.network is not None else \
            getattr(self.backend, "num_joints", None)
        if skeleton is None:
            if num_joints is None:
                raise ValueError(f"{self.source}: cannot tell the number of keypoints; pass skeleton=")
            skeleton = default_skeleton(int(num_joints))
        sk = load_skeleton(skeleton)
        if num_joints is not None and int(num_joints) != sk.num_keypoints:
            # named: the skeleton may come from the file's own card (a graph's metadata)
            raise ValueError(f"{self.source}: skeleton {sk.name!r} has {sk.num_keypoints} keypoints but the "
                             f"model predicts {num_joints}: the weights were trained for another skeleton")
        return sk

    @classmethod
    def from_pretrained(cls, name: str | os.PathLike = DEFAULT_MODEL, **kwargs: Any) -> PoseEstimator:
        """Trained weights: a shipped name (``stnet/weights/<name>.safetensors`` + its card), or any
        file or run directory holding weights and their card. Unlike the constructor, a bare
        registered architecture name (untrained) is refused."""
        if str(name) in list_models():
            raise FileNotFoundError(
                f"{name!r} is an architecture, not pretrained weights; shipped: "
                f"{', '.join(list_pretrained()) or 'none yet'}. PoseEstimator({str(name)!r}) builds it untrained.")
        if not Path(os.path.expanduser(str(name))).exists() and str(name) not in list_pretrained():
            raise FileNotFoundError(
                f"no pretrained weights named {str(name)!r}; available: {', '.join(list_pretrained()) or 'none yet'}. "
                "Train a model (stnet train) and use PoseEstimator('runs/<name>') instead.")
        return cls(name, **kwargs)

    # ------------------------------------------------------------------ the network's output
    def _infer(self, crops: np.ndarray, affine: np.ndarray | None = None) -> BackendOutput:
        """The backend's output for all ``crops``, in chunks of ``max_batch``."""
        outs = [self.backend.run(np.ascontiguousarray(crops[i:i + self.max_batch]),
                                 None if affine is None else affine[i:i + self.max_batch])
                for i in range(0, len(crops), self.max_batch)]
        if not outs:
            k = self.skeleton.num_keypoints
            return BackendOutput(heatmaps=np.zeros((0, k, 1, 1), np.float32))
        if outs[0].heatmaps is not None:
            return BackendOutput(heatmaps=np.concatenate([o.heatmaps for o in outs], 0))  # type: ignore[misc]
        return BackendOutput(keypoints=np.concatenate([o.keypoints for o in outs], 0),  # type: ignore[misc]
                             scores=np.concatenate([o.scores for o in outs], 0),  # type: ignore[misc]
                             image_pixels=outs[0].image_pixels)

    def heatmaps(self, crops: np.ndarray | torch.Tensor) -> np.ndarray:
        """Model heatmaps ``(B, K, h, w)`` float32 for normalised crops ``(B, 3, H, W)``, with
        flip test when enabled, in chunks of ``max_batch`` crops."""
        x = np.asarray(crops.detach().cpu() if isinstance(crops, torch.Tensor) else crops, dtype=np.float32)
        if self.backend.card.decode:
            raise ValueError(f"{self.source} decodes keypoints in the graph; it gives no heatmaps "
                             "(export it without --decode)")

        def run(batch: np.ndarray) -> np.ndarray:
            return self._infer(batch).heatmaps  # type: ignore[return-value]

        if self.flip_test:
            return flip_test(run, x, self.skeleton.flip_index, unbiased=self.unbiased)
        return run(x)

    # ------------------------------------------------------------------ the call
    def crops(self, image: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Normalised crops ``(N, 3, H, W)``, box centres and scales ``(N, 2)`` for ``(N, 5)`` boxes
        (the training crop: :func:`stnet.data.transforms.warp_image`)."""
        h, w = self.input_size
        center, scale = box_to_center_scale(boxes[:, :4], w / h, self.bbox_padding)
        crops = np.empty((len(boxes), 3, h, w), np.float32)
        for i in range(len(boxes)):
            mat = get_warp_matrix(center[i], scale[i], 0.0, (h, w), unbiased=self.unbiased)
            crops[i] = normalize_image(warp_image(image, mat, (h, w)))
        return crops, np.asarray(center).reshape(-1, 2), np.asarray(scale).reshape(-1, 2)

    def keypoints(self, crops: np.ndarray, center: np.ndarray, scale: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(keypoints (N, K, 2) image pixels, scores (N, K), finite (N,))`` of normalised crops
        cut at ``center`` / ``scale``: the codec decodes the heatmaps (flip test when enabled), or
        the graph decodes itself; :func:`~stnet.data.transforms.crop_to_image` maps crop pixels to
        image pixels."""
        if self.backend.card.decode:
            if self.flip_test:
                raise ValueError(f"--flip needs heatmaps; {self.source} decodes keypoints in the graph "
                                 "(export it without --decode for flip test)")
            affine = None
            if self.backend.card.with_affine:
                affine = np.stack([get_warp_matrix(c, s, 0.0, self.input_size, unbiased=self.unbiased, inverse=True)
                                   for c, s in zip(center, scale)]).astype(np.float32)
            out = self._infer(crops, affine)
            kp, sc = np.asarray(out.keypoints, np.float64), np.asarray(out.scores, np.float32)
            finite = np.asarray(np.isfinite(kp).reshape(len(kp), -1).all(1)
                                & np.isfinite(sc).reshape(len(sc), -1).all(1))
            if out.image_pixels:
                return kp.astype(np.float32), sc, finite
        else:
            hm = self.heatmaps(crops)
            if tuple(hm.shape[-2:]) != tuple(self.codec.heatmap_size):  # e.g. a file's card with another stride
                raise ValueError(f"{self.source}: the model outputs {hm.shape[-2]}x{hm.shape[-1]} heatmaps for "
                                 f"{crops.shape[2]}x{crops.shape[3]} crops, the codec (heatmap_stride "
                                 f"{self.codec_config.heatmap_stride}) expects {self.codec.heatmap_size[0]}x"
                                 f"{self.codec.heatmap_size[1]}")
            finite = np.asarray(np.isfinite(hm).reshape(len(hm), -1).all(1))
            kp, sc = self.codec.decode(np.where(np.isfinite(hm), hm, 0.0).astype(np.float32))
        img_kp = crop_to_image(np.asarray(kp, np.float64), center, scale, self.input_size, unbiased=self.unbiased)
        return img_kp.astype(np.float32), np.asarray(sc, np.float32), finite

    def __call__(self, image: Any, boxes: Any = None, *, color: str | None = None, box_format: str = "xywh"
                 ) -> Any:
        """Poses of the persons in ``image``: a :class:`Results` (a list of :class:`PoseResult`,
        one per usable box). For a batch (a list of images or a ``(B, H, W, 3)`` array) a list of
        :class:`Results`, with ``boxes`` None or one entry (boxes or None) per image.
        ``color``: channel order of numpy arrays (default ``"bgr"``, see docs/conventions.md)."""
        if is_batch(image):
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
        cut = [self.crops(img, b) for img, b in zip(imgs, per_image) if len(b)]
        if cut:
            img_kp, sc, finite = self.keypoints(*(np.concatenate(parts, 0) for parts in zip(*cut)))
        out = []
        start = 0
        for i, (img, b) in enumerate(zip(imgs, per_image)):
            persons = []
            if len(b):
                sl = slice(start, start + len(b))
                start += len(b)
                person = rescore(b[:, 4], sc[sl])
                for j, ok in enumerate(finite[sl]):
                    if not ok:
                        warnings.warn(f"{image_name(images[i])}: the heatmaps of the person in box "
                                      f"{np.round(b[j, :4], 1).tolist()} are not finite (NaN / inf weights?); "
                                      "person dropped", NonFiniteWarning, stacklevel=3)
                        continue
                    x, y, w, h = (float(v) for v in b[j, :4])
                    persons.append(PoseResult(img_kp[sl][j], sc[sl][j], (x, y, w, h), float(person[j]),
                                              self.skeleton.name))
            if boxes[i] is None:
                persons = self.suppress_duplicates(persons)
            path = str(images[i]) if isinstance(images[i], (str, os.PathLike)) else None
            out.append(Results(persons, img, self.skeleton, path=path, untrained=self.untrained))
        return out

    def suppress_duplicates(self, persons: Sequence[PoseResult]) -> list[PoseResult]:
        """``persons`` (one image's) without those whose keypoints match a higher-scoring one's at
        OKS above ``pose_nms``, in their order: greedy OKS-NMS with the skeleton's sigmas and each
        person's box area (:func:`stnet.evaluation.nms.oks_nms`). ``stnet predict`` applies it to a
        video frame's carried boxes too, where a pose run on a stray box can land on a tracked person."""
        persons = list(persons)
        if len(persons) < 2 or not self.pose_nms < 1:
            return persons
        kp = np.stack([np.asarray(p.keypoints, np.float64)[:, :2] for p in persons])
        areas = np.array([max(float(p.box[2]) * float(p.box[3]), 1.0) for p in persons])
        keep = oks_nms(kp, np.array([p.score for p in persons]), areas, np.asarray(self.skeleton.sigmas),
                       thr=self.pose_nms)
        return [persons[k] for k in keep]

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

    def export(self, path: str | os.PathLike, *, format: str = "onnx", opset: int = 17, decode: bool = False,
               with_affine: bool = False) -> Path:
        """Write this estimator's network as a graph with its card inside (what ``stnet export``
        does): ``format`` ``"onnx"`` (card in ``metadata_props["stnet"]``) or ``"openvino"`` (IR
        ``.xml`` + ``.bin``, card in rt_info); ``decode`` puts the decoding in the graph,
        ``with_affine`` also the mapping to image pixels."""
        if format not in EXPORT_FORMATS:
            raise ValueError(f"unsupported export format {format!r} (one of {', '.join(EXPORT_FORMATS)})")
        if self.network is None:
            raise ValueError(f"{self.source} is already an exported file")
        decode = decode or with_affine
        meta = self.card.replace(decode=decode, with_affine=with_affine).to_dict()
        kwargs: dict[str, Any] = dict(opset=opset, decode=decode, with_affine=with_affine, unbiased=self.unbiased,
                                      blur_kernel_size=self.codec_config.blur_kernel_size, metadata=meta)
        size = (int(self.input_size[0]), int(self.input_size[1]))
        if format == "openvino":
            return export_openvino(self.network, path, size, **kwargs)
        return export_onnx(self.network, path, size, **kwargs)

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

