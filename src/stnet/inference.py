"""Python API for running a pose model on images: :class:`PoseEstimator`.

::

    from stnet.inference import PoseEstimator

    est = PoseEstimator.from_checkpoint("runs/coco_stnet_1s")      # run dir, best.pt or last.pt
    persons = est("photo.jpg", boxes=[[x, y, w, h], ...])          # or boxes=None: est.detector
    for p in persons:
        p.keypoints   # (K, 2) float32 image pixels (x, y)
        p.scores      # (K,)  heatmap maxima
        p.box, p.score, p.skeleton

Inputs (``image``): a numpy ``uint8`` array ``(H, W, 3)`` in **RGB** (the library convention;
``color="bgr"`` for arrays from ``cv2.imread`` / ``cv2.VideoCapture``), ``(H, W)`` grayscale or
``(H, W, 4)`` RGBA (alpha dropped), a ``PIL.Image`` (any mode, converted to RGB), or a path to an
image file. Boxes: ``[x, y, w, h]`` or ``[x, y, w, h, score]`` rows in image pixels; with
``boxes=None`` the estimator's ``detector`` supplies them (default: the whole image). Boxes are
clipped to the image; a box with no area inside the image is skipped with a warning (see
:func:`stnet.detectors.sanitize_boxes`), so the result list can be shorter than ``boxes``; each
result carries the (clipped) box it came from.

All person crops of one image are warped (``cv2.warpAffine``, the training warp), normalised and
run through the model **in one batch** (split into ``max_batch`` chunks), under
``torch.inference_mode`` with BatchNorm folded into the convolutions. ``flip_test=True`` adds the
mirrored crops to the same batch and averages heatmaps. Decoding uses the model's codec (UDP + DARK
by default), then the inverse crop warp maps keypoints to image pixels.

Backends: ``"torch"`` (default, CPU or CUDA) and ``"onnxruntime"`` (the model is exported with
:func:`stnet.export.export_onnx` to a temporary file, or an existing ``.onnx`` file is used).
"""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import cv2
import numpy as np
import torch
import torch.nn as nn

from .codecs import CodecConfig, build_codec
from .codecs.flip_test import flip_heatmaps_back
from .data.dataset import normalize_image
from .data.skeletons import Skeleton, get_skeleton
from .data.transforms import box_to_center_scale, get_warp_matrix
from .detectors import as_boxes, build_detector, sanitize_boxes
from .hub import WEIGHTS_DIR, list_pretrained, shipped_weights
from .models import create_model, list_models
from .models.fuse import optimize_for_inference

__all__ = ["PoseEstimator", "PoseResult", "UntrainedWeightsWarning", "load_image", "default_skeleton",
           "resolve_checkpoint", "list_pretrained"]

_DEFAULT_SKELETON = {17: "coco17", 16: "mpii16", 14: "lsp14"}


class UntrainedWeightsWarning(UserWarning):
    """The estimator runs randomly initialised weights: its keypoints are meaningless."""


@dataclass(frozen=True)
class PoseResult:
    """One person. ``keypoints`` (K, 2) float32 (x, y) image pixels; ``scores`` (K,) float32
    (heatmap maxima, ~0..1 for a trained model); ``box`` [x, y, w, h] the person box used;
    ``score`` the person score (box score x mean keypoint score above 0.2, as in the standard
    top-down rescoring; the box score alone when no keypoint passes); ``skeleton`` the layout name;
    ``track_id`` set by :class:`stnet.tracking.Tracker` in videos."""

    keypoints: np.ndarray
    scores: np.ndarray
    box: tuple[float, float, float, float]
    score: float
    skeleton: str
    track_id: int | None = None

    def to_dict(self, ndigits: int = 2) -> dict[str, Any]:
        d = {"keypoints": np.round(self.keypoints.astype(np.float64), ndigits).tolist(),
             "scores": np.round(self.scores.astype(np.float64), 4).tolist(),
             "box": [round(float(v), ndigits) for v in self.box], "score": round(float(self.score), 4)}
        if self.track_id is not None:
            d["track_id"] = int(self.track_id)
        return d


def load_image(image: Any, color: str = "rgb") -> np.ndarray:
    """Any supported input (see the module docstring) -> contiguous RGB ``uint8 (H, W, 3)``."""
    color = color.lower()
    if color not in ("rgb", "bgr"):
        raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
    if isinstance(image, (str, os.PathLike)):
        p = Path(image)
        if not p.is_file():
            raise FileNotFoundError(f"image {p} not found")
        data = np.fromfile(str(p), dtype=np.uint8)
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


def default_skeleton(num_joints: int) -> str:
    try:
        return _DEFAULT_SKELETON[int(num_joints)]
    except KeyError:
        raise ValueError(f"no built-in skeleton has {num_joints} keypoints; pass skeleton=") from None


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint file, or a run directory (``best.pt``, else ``last.pt``)."""
    p = Path(path)
    if p.is_dir():
        for name in ("best.pt", "last.pt"):
            if (p / name).is_file():
                return p / name
        raise FileNotFoundError(f"run directory {p} has no best.pt or last.pt")
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint {p} not found")
    return p


#: Shipped weights ``stnet predict`` and ``default_model()`` use when no model is named.
DEFAULT_PRETRAINED = "stnet_1s.lspet_128x96"


def default_model() -> str:
    """The shipped default weights when present in this install, else the untrained ``stnet_1s``."""
    return DEFAULT_PRETRAINED if DEFAULT_PRETRAINED in list_pretrained() else "stnet_1s"


def _load_state(path: Path) -> dict[str, Any]:
    try:
        from .engine.checkpoint import load_checkpoint
    except ImportError:  # engine not in this build: same format, read directly
        load_checkpoint = None
    if load_checkpoint is not None:
        return load_checkpoint(path)
    state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {path} holds a {type(state).__name__}, not a dict")
    if "model" not in state:
        return {"model": state}
    return state


def _strip_prefix(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for pre in ("module.", "_orig_mod."):
        if sd and all(k.startswith(pre) for k in sd):
            sd = {k[len(pre):]: v for k, v in sd.items()}
    return sd


def _state_num_joints(sd: dict[str, torch.Tensor]) -> int | None:
    w = sd.get("head.weight")
    return int(w.shape[0]) if isinstance(w, torch.Tensor) and w.ndim == 4 else None


class PoseEstimator:
    """Top-down pose estimation on whole images (see the module docstring).

    Args:
        model: a registered model name (``stnet.models.list_models()``), an ``nn.Module``, or for
            ``backend="onnxruntime"`` also a path to an exported heatmap ``.onnx`` file.
        weights: optional path to a checkpoint (training checkpoint dict or bare ``state_dict``)
            loaded into the named model. Without weights the model is untrained: a
            :class:`UntrainedWeightsWarning` is emitted and ``untrained`` is True.
        skeleton: keypoint layout name or :class:`Skeleton`; default from the number of joints
            (17 coco17, 16 mpii16, 14 lsp14). Must have the model's number of keypoints.
        input_size: crop ``(H, W)``; default the model config's.
        codec: :class:`~stnet.codecs.CodecConfig` (default UDP + DARK, as trained by stnet).
        flip_test: average with the mirrored crops' heatmaps (2x the compute).
        detector: person boxes when a call passes ``boxes=None``: ``"whole"`` (default), ``"hog"``
            or a callable returning boxes (see :mod:`stnet.detectors`).
        device: ``"cpu"``, ``"cuda"``, ... (torch backend).
        backend: ``"torch"`` or ``"onnxruntime"``.
        max_batch: crops per forward pass.
        bbox_padding: the box is enlarged by this factor (1.25, as in training).
        model_overrides: config overrides when building the model by name.
    """

    def __init__(self, model: str | nn.Module | os.PathLike = "stnet_1s", weights: str | os.PathLike | None = None,
                 *, skeleton: str | Skeleton | None = None, input_size: Sequence[int] | None = None,
                 codec: CodecConfig | None = None, flip_test: bool = False,
                 detector: str | Callable | None = None, device: str | torch.device = "cpu",
                 backend: str = "torch", max_batch: int = 32, bbox_padding: float = 1.25,
                 model_overrides: dict | None = None, untrained: bool | None = None,
                 _state: dict | None = None, _source: str | None = None) -> None:
        if backend not in ("torch", "onnxruntime"):
            raise ValueError(f"backend must be 'torch' or 'onnxruntime', got {backend!r}")
        self.backend, self.flip_test, self.max_batch = backend, bool(flip_test), max(1, int(max_batch))
        self.bbox_padding, self.device = float(bbox_padding), torch.device(device)
        self.detector = build_detector(detector)
        overrides = dict(model_overrides or {})
        onnx_path: Path | None = None
        if isinstance(model, (str, os.PathLike)) and str(model).endswith(".onnx"):
            if backend != "onnxruntime":
                raise ValueError(f"{model}: an .onnx file needs backend='onnxruntime'")
            onnx_path = Path(model)
            if not onnx_path.is_file():
                raise FileNotFoundError(f"ONNX model {onnx_path} not found")
            net = None
            self.model_name = onnx_path.stem
        elif isinstance(model, nn.Module):
            net = model
            self.model_name = type(model).__name__
        else:
            name = str(model)
            if name not in list_models():
                if Path(name).exists():
                    raise ValueError(f"{name} is a file or directory; use PoseEstimator.from_checkpoint({name!r})")
                create_model(name)  # raises KeyError with the registered names and a suggestion
            self.model_name = name
            state = _state
            if weights is not None and state is None:
                state = _load_state(resolve_checkpoint(weights))
            sd = _strip_prefix(dict(state["model"])) if state is not None else None
            if sd is not None and "num_joints" not in overrides:
                k = _state_num_joints(sd)
                if k is not None:
                    overrides["num_joints"] = k
            if skeleton is not None and "num_joints" not in overrides:
                overrides["num_joints"] = get_skeleton(skeleton).num_keypoints
            if input_size is not None:
                overrides["input_size"] = tuple(int(v) for v in input_size)
            net = create_model(name, **overrides)
            if sd is not None:
                try:
                    net.load_state_dict(sd)
                except RuntimeError as e:
                    first = [ln.strip() for ln in str(e).splitlines() if ln.strip()][1:3]
                    raise ValueError(f"weights {weights or _source} do not fit model {name!r} "
                                     f"({'; '.join(first)})") from None
            if untrained is None:
                untrained = sd is None
        cfg = getattr(net, "cfg", None) if net is not None else None
        self.input_size = tuple(int(v) for v in (input_size or getattr(cfg, "input_size", None) or (256, 192)))
        num_joints = getattr(cfg, "num_joints", None)
        self._onnx_meta: dict = {}
        if onnx_path is not None:
            self._session = self._ort_session(onnx_path)
            inp = self._session.get_inputs()[0]
            if isinstance(inp.shape[2], int) and isinstance(inp.shape[3], int) and input_size is None:
                self.input_size = (inp.shape[2], inp.shape[3])
            out = self._session.get_outputs()[0]
            num_joints = out.shape[1] if isinstance(out.shape[1], int) else None
            self._onnx_meta = self._read_onnx_meta(onnx_path)
        if skeleton is None:
            if num_joints is None:
                raise ValueError("cannot tell the number of keypoints; pass skeleton=")
            skeleton = default_skeleton(int(num_joints))
        self.skeleton = get_skeleton(skeleton)
        if num_joints is not None and int(num_joints) != self.skeleton.num_keypoints:
            raise ValueError(f"skeleton {self.skeleton.name!r} has {self.skeleton.num_keypoints} keypoints but the "
                             f"model predicts {num_joints}: the weights were trained for another skeleton")
        self.codec_config = codec or CodecConfig()
        self.codec = build_codec(self.codec_config, self.input_size)
        self.unbiased = bool(getattr(self.codec, "unbiased", True))
        self.untrained = bool(untrained) if untrained is not None else False
        self.source = _source or (str(weights) if weights else self.model_name)
        if self.untrained:
            warnings.warn(f"PoseEstimator({self.model_name}): running UNTRAINED (randomly initialised) weights; "
                          "keypoints are meaningless. Pass weights=, use PoseEstimator.from_checkpoint(...) "
                          "or from_pretrained(...).", UntrainedWeightsWarning, stacklevel=2)
        self.model: nn.Module | None = None
        self.network: nn.Module | None = net  # the unfolded eval-mode network (for export)
        self._tmpdir: tempfile.TemporaryDirectory | None = None
        if net is not None:
            net = net.eval()
            if backend == "onnxruntime":
                from .export import export_onnx

                self._tmpdir = tempfile.TemporaryDirectory(prefix="stnet_ort_")
                path = export_onnx(net, Path(self._tmpdir.name) / "model.onnx", self.input_size)
                self._session = self._ort_session(path)
            else:
                self._channels_last = self.device.type == "cpu"
                self.model = optimize_for_inference(net, channels_last=self._channels_last).to(self.device)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, *, model: str | None = None, use_ema: bool = True,
                        **kwargs) -> "PoseEstimator":
        """From a training checkpoint (``stnet train``'s ``best.pt`` / ``last.pt``, or a run
        directory holding them): model name, overrides, input size, skeleton and codec are read
        from its stored config. A bare ``state_dict`` needs ``model=NAME``. EMA weights are used
        when present (``use_ema``). ``skeleton=`` given and different from the checkpoint's raises."""
        p = resolve_checkpoint(path)
        state = _load_state(p)
        cfg = state.get("config") or {}
        name = model or (cfg.get("model") or {}).get("name")
        if not name:
            raise ValueError(f"checkpoint {p} stores no config (a bare state_dict?); pass model=NAME "
                             f"(one of {', '.join(list_models())})")
        if use_ema and state.get("ema"):
            ema = state["ema"]
            state = {**state, "model": ema.get("module", ema.get("model", ema)) if isinstance(ema, dict)
                     and not all(isinstance(v, torch.Tensor) for v in ema.values()) else ema}
        overrides = dict((cfg.get("model") or {}).get("overrides") or {})
        if cfg.get("input_size") and "input_size" not in kwargs:
            kwargs["input_size"] = tuple(cfg["input_size"])
        data = cfg.get("val") or cfg.get("train") or {}
        ck_skel = data.get("skeleton")
        if data.get("skeleton_meta"):
            ck_skel = None  # custom layout: the caller must register/pass it
        if ck_skel:
            want = kwargs.get("skeleton")
            if want is not None and get_skeleton(want).name != get_skeleton(ck_skel).name:
                raise ValueError(f"checkpoint {p} was trained for skeleton {get_skeleton(ck_skel).name!r}, "
                                 f"not {get_skeleton(want).name!r}")
            kwargs.setdefault("skeleton", ck_skel)
        if cfg.get("codec") and "codec" not in kwargs:
            c = cfg["codec"]
            kwargs["codec"] = CodecConfig(**{k: v for k, v in c.items() if k in CodecConfig.__dataclass_fields__})
        if "num_joints" in overrides:
            overrides.pop("num_joints")  # taken from the weights
        return cls(name, model_overrides=overrides, _state=state, _source=str(p), untrained=False, **kwargs)

    @classmethod
    def from_pretrained(cls, name: str, **kwargs) -> "PoseEstimator":
        """Weights shipped with the package (``stnet/weights/<name>.pt`` + ``<name>.json``, the
        json holding ``{"model": ..., "skeleton": ..., "input_size": [H, W], "overrides": {...}}``)."""
        if name not in list_pretrained():
            raise FileNotFoundError(
                f"no pretrained weights named {name!r}; available: {', '.join(list_pretrained()) or 'none yet'}. "
                "Train a model (stnet train) and use PoseEstimator.from_checkpoint('runs/<name>') instead.")
        pt, info = shipped_weights(name)
        kwargs.setdefault("skeleton", info.get("skeleton"))
        if info.get("input_size"):
            kwargs.setdefault("input_size", tuple(info["input_size"]))
        return cls(info.get("model", name), weights=pt, model_overrides=info.get("overrides"), **kwargs)

    @classmethod
    def from_spec(cls, spec: str | os.PathLike, weights: str | os.PathLike | None = None, **kwargs) -> "PoseEstimator":
        """One entry point for "a model" as a user names it on the command line: a registered
        model name (with optional ``weights``), a checkpoint file or run directory, an exported
        heatmap ``.onnx`` file (onnxruntime backend), or a shipped pretrained name."""
        s = str(spec)
        if s.endswith(".onnx"):
            kwargs["backend"] = "onnxruntime"
            return cls(s, **kwargs)
        if s in list_models():
            return cls(s, weights=weights, **kwargs)
        if Path(s).exists():
            return cls.from_checkpoint(s, **({"model": kwargs.pop("model")} if "model" in kwargs else {}), **kwargs)
        if s in list_pretrained():
            return cls.from_pretrained(s, **kwargs)
        if any(c in s for c in "/\\") or s.endswith((".pt", ".pth", ".ckpt")):
            raise FileNotFoundError(f"checkpoint {s} not found")
        import difflib

        names = list_models() + list_pretrained()
        hint = difflib.get_close_matches(s, names, n=1)
        raise ValueError(f"{s!r} is neither a registered model, a checkpoint file/run directory nor pretrained "
                         f"weights{'; did you mean ' + repr(hint[0]) + '?' if hint else ''} "
                         f"(models: {', '.join(list_models())}; pretrained: {', '.join(list_pretrained()) or 'none yet'})")

    # ------------------------------------------------------------------ backends
    def _ort_session(self, path: Path):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError("backend='onnxruntime' needs the onnxruntime package (pip install onnxruntime)") from None
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        threads = torch.get_num_threads()
        so.intra_op_num_threads = threads
        providers = ["CPUExecutionProvider"]
        if self.device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        return ort.InferenceSession(str(path), so, providers=providers)

    @staticmethod
    def _read_onnx_meta(path: Path) -> dict:
        try:
            import onnx

            for p in onnx.load(str(path), load_external_data=False).metadata_props:
                if p.key == "stnet":
                    return json.loads(p.value)
        except Exception:  # noqa: BLE001 - metadata is optional
            pass
        return {}

    def heatmaps(self, crops: np.ndarray | torch.Tensor) -> np.ndarray:
        """Model heatmaps ``(B, K, h, w)`` float32 for normalised crops ``(B, 3, H, W)``, with
        flip test when enabled."""
        x = torch.as_tensor(crops, dtype=torch.float32)
        if self.flip_test:
            x = torch.cat([x, x.flip(-1)], 0)
        outs = []
        for i in range(0, len(x), self.max_batch):
            outs.append(self._forward(x[i:i + self.max_batch]))
        hm = np.concatenate(outs, 0) if outs else np.zeros((0, self.skeleton.num_keypoints, 1, 1), np.float32)
        if self.flip_test:
            n = len(hm) // 2
            hm = 0.5 * (hm[:n] + flip_heatmaps_back(hm[n:], self.skeleton.flip_index, shift=not self.unbiased))
        return hm

    def _forward(self, x: torch.Tensor) -> np.ndarray:
        if self.model is None:
            return self._session.run(None, {self._session.get_inputs()[0].name: x.numpy()})[0]
        with torch.inference_mode():
            x = x.to(self.device)
            if getattr(self, "_channels_last", False):
                x = x.contiguous(memory_format=torch.channels_last)
            out = self.model(x)
            while isinstance(out, (list, tuple)):
                out = out[-1]
            return out.float().cpu().numpy()

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

    def __call__(self, image: Any, boxes: Any = None, *, color: str = "rgb", box_format: str = "xywh"
                 ) -> list[PoseResult]:
        """Poses of the persons in ``image`` (one :class:`PoseResult` per usable box)."""
        img = load_image(image, color)
        if boxes is None:
            b = as_boxes(self.detector(img))
        else:
            b = as_boxes(boxes, box_format)
        b, _ = sanitize_boxes(b, img.shape[:2])
        if len(b) == 0:
            return []
        crops, inv = self.crops(img, b)
        hm = self.heatmaps(crops)
        kp, sc = self.codec.decode(hm)
        kp = np.asarray(kp, np.float64)
        img_kp = np.einsum("nij,nkj->nki", inv[..., :2], kp) + inv[:, None, :, 2]
        results = []
        for i in range(len(b)):
            s = np.asarray(sc[i], np.float32)
            good = s > 0.2
            person = float(b[i, 4]) * (float(s[good].mean()) if good.any() else 1.0)
            results.append(PoseResult(img_kp[i].astype(np.float32), s, tuple(float(v) for v in b[i, :4]),
                                      person, self.skeleton.name))
        return results

    predict = __call__

    def __repr__(self) -> str:
        return (f"PoseEstimator({self.model_name!r}, skeleton={self.skeleton.name!r}, input_size={self.input_size}, "
                f"backend={self.backend!r}, flip_test={self.flip_test}, untrained={self.untrained})")

    def with_options(self, **changes) -> "PoseEstimator":
        """Shallow copy with attributes changed (``flip_test``, ``detector``, ``max_batch``)."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        for k, v in changes.items():
            if k == "detector":
                v = build_detector(v)
            setattr(new, k, v)
        return new

