"""`stnet predict INPUT`: poses on an image, a folder, a video file or a webcam.

Outputs (under ``--output-dir``, default ``runs/predict``):

* images: ``<name>.png`` overlays (skeletons of keypoints scoring above ``--threshold``, person
  boxes, person score / track id), folder layout kept for a folder input;
* videos / webcam: ``<stem>.mp4`` overlay video;
* ``--json-out`` (default ``<output-dir>/predictions.json``): one json object mapping each image file
  name (relative to the input folder) - or ``<video stem>_<frame:06d>`` for video frames - to a
  list of persons ``{"keypoints": K x [x, y], "scores": K, "box": [x, y, w, h], "score": s}``
  (plus ``"track_id"`` for videos).

Robustness: every output file is written atomically (temp file + rename), the json is rewritten
every ``--flush-every`` images and at the end (also on Ctrl-C), an unreadable / non-image file in a
folder is reported and skipped, and a failure on one image never stops the folder.
"""
from __future__ import annotations

import contextlib
import json
import sys
import warnings
from pathlib import Path
from typing import Any, Iterable

import cv2
import numpy as np

from ..data.visualize import draw_skeleton
from ..inference import load_image
from ..io import atomic_write, write_bytes
from ..tracking import Tracker

__all__ = ["render", "atomic_write_json", "run_predict", "IMAGE_EXTS", "VIDEO_EXTS"]

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
_TRACK_COLOURS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
                  (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212)]


def atomic_write_json(path: Path, obj: Any) -> Path:
    """``obj`` as compact json, written atomically (see :mod:`stnet.io`)."""
    return write_bytes(path, (json.dumps(obj, separators=(",", ":")) + "\n").encode())


def render(image: np.ndarray, persons: list, skeleton, threshold: float = 0.3, untrained: bool = False) -> np.ndarray:
    """RGB overlay: boxes, skeletons (joints scoring > ``threshold``), labels, untrained banner."""
    out = np.ascontiguousarray(image.copy())
    h, w = out.shape[:2]
    lw = max(1, round(max(h, w) / 400))
    for p in persons:
        x, y, bw, bh = (int(round(v)) for v in p.box)
        colour = _TRACK_COLOURS[p.track_id % len(_TRACK_COLOURS)] if p.track_id is not None else (255, 255, 255)
        cv2.rectangle(out, (x, y), (x + bw, y + bh), colour, lw)
        out = draw_skeleton(out, p.keypoints, p.scores, skeleton, radius=max(2, lw + 1), thickness=max(1, lw + 1),
                            min_visibility=threshold)
        label = (f"#{p.track_id} " if p.track_id is not None else "") + f"{p.score:.2f}"
        _text(out, label, (x + 2, max(12, y - 4)), 0.4 * lw)
    if untrained:
        _text(out, "UNTRAINED WEIGHTS - keypoints are random", (6, 6 + 14 * lw), 0.5 * lw, (255, 60, 60))
    return out


def _text(img: np.ndarray, s: str, org: tuple[int, int], scale: float, colour=(255, 255, 255)) -> None:
    t = max(1, int(round(scale * 2)))
    cv2.putText(img, s, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), t + 2, cv2.LINE_AA)
    cv2.putText(img, s, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, t, cv2.LINE_AA)


def _progress(it: Iterable, total: int | None, desc: str, enabled: bool):
    if not enabled:
        return it
    try:
        from tqdm import tqdm
    except ImportError:
        return it
    return tqdm(it, total=total, desc=desc, unit="img" if desc == "images" else "frame", file=sys.stderr)


class _Shower:
    """cv2.imshow when a GUI build of OpenCV is present; warns once and turns off otherwise."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, rgb: np.ndarray, wait: int = 1) -> bool:
        """Show; returns False when the user pressed q / Esc."""
        if not self.enabled:
            return True
        try:
            cv2.imshow("stnet predict", rgb[..., ::-1])
            key = cv2.waitKey(wait) & 0xFF
        except cv2.error:
            print("stnet predict: --show needs an OpenCV build with GUI support (opencv-python, not "
                  "-headless); continuing without a window", file=sys.stderr)
            self.enabled = False
            return True
        return key not in (ord("q"), 27)


def classify_input(inp: str) -> str:
    """'webcam' | 'folder' | 'video' | 'image' (raises FileNotFoundError for a missing path)."""
    if inp.isdigit() and not Path(inp).exists():
        return "webcam"
    p = Path(inp)
    if p.is_dir():
        return "folder"
    if not p.exists():
        raise FileNotFoundError(f"input {inp} not found (an image, a folder, a video file or a webcam index)")
    return "video" if p.suffix.lower() in VIDEO_EXTS else "image"


def run_predict(est, inp: str, *, output_dir: Path, json_out: Path | None = None, boxes=None,
                threshold: float = 0.3, render_images: bool = True, show: bool = False, track: bool = True,
                smooth: bool = False, track_metric: str = "iou", max_frames: int | None = None,
                flush_every: int = 20, progress: bool | None = None, print_fn=print) -> dict[str, Any]:
    """Run ``est`` (a :class:`~stnet.inference.PoseEstimator`) over ``inp``; returns a summary
    ``{"inputs", "persons", "skipped": [(name, reason)], "json", "outputs"}``."""
    kind = classify_input(inp)
    output_dir = Path(output_dir)
    json_out = Path(json_out) if json_out else output_dir / "predictions.json"
    progress = sys.stderr.isatty() if progress is None else progress
    shower = _Shower(show)
    results: dict[str, list] = {}
    summary: dict[str, Any] = {"kind": kind, "inputs": 0, "persons": 0, "skipped": [], "json": str(json_out),
                               "outputs": [], "missing_boxes": 0}
    if kind in ("image", "folder"):
        if kind == "image":
            root, files = Path(inp).parent, [Path(inp)]
        else:
            root = Path(inp)
            files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
            if not files:
                raise ValueError(f"folder {inp} contains no files")
        try:
            for n, f in enumerate(_progress(files, len(files), "images", progress and kind == "folder")):
                name = f.relative_to(root).as_posix() if kind == "folder" else f.name
                if f.suffix.lower() in VIDEO_EXTS:
                    summary["skipped"].append((name, "a video inside an image folder (run predict on it separately)"))
                    continue
                try:
                    img_boxes = None
                    if boxes is not None:
                        img_boxes = boxes.lookup(name)
                        if img_boxes is None:
                            summary["missing_boxes"] += 1
                            img_boxes = np.zeros((0, 5))
                    img = load_image(f)
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always")
                        persons = est(img, boxes=img_boxes)
                    for w in caught:
                        if "box" in str(w.message):
                            print_fn(f"stnet predict: {name}: {w.message}")
                    results[name] = [p.to_dict() for p in persons]
                    summary["inputs"] += 1
                    summary["persons"] += len(persons)
                    if render_images or show:
                        over = render(img, persons, est.skeleton, threshold, est.untrained)
                        if render_images:
                            out = output_dir / Path(name).with_suffix(".png")
                            ok, buf = cv2.imencode(".png", over[..., ::-1])
                            if not ok:
                                raise OSError(f"cannot encode the overlay of {name}")
                            write_bytes(out, buf.tobytes())
                            summary["outputs"].append(str(out))
                        shower(over, 0 if kind == "image" else 1)
                except (ValueError, TypeError, OSError, cv2.error) as e:
                    summary["skipped"].append((name, str(e)))
                    print_fn(f"stnet predict: skipped {name}: {e}")
                if flush_every and (n + 1) % flush_every == 0:
                    atomic_write_json(json_out, results)
        finally:
            atomic_write_json(json_out, results)
        return summary
    _run_video(est, inp, kind, output_dir, json_out, results, summary, threshold=threshold,
               render_images=render_images, shower=shower, track=track, smooth=smooth, track_metric=track_metric,
               max_frames=max_frames, flush_every=flush_every, progress=progress, print_fn=print_fn)
    return summary


def _open_video(inp: str, kind: str, max_frames: int | None) -> tuple[Any, np.ndarray, float, int | None]:
    """(capture, first frame, fps, frames to expect or None) of a video file or webcam."""
    name = f"webcam {inp}" if kind == "webcam" else f"video {inp}"
    cap = cv2.VideoCapture(int(inp) if kind == "webcam" else str(inp))
    if not cap.isOpened():
        raise ValueError(f"cannot open {name}")
    ok, frame = cap.read()
    if not ok or frame is None:
        cap.release()
        raise ValueError(f"{name} has no readable frames (empty file or unsupported codec)")
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    fps = fps if 0 < fps < 1000 else 30.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if kind == "video" else None
    if total is not None and total <= 0:
        total = None
    if max_frames:
        total = min(total, max_frames) if total else max_frames
    return cap, frame, fps, total


def _video_writer(path: Path, fps: float, frame: np.ndarray, print_fn) -> Any:
    """An mp4 writer for frames like ``frame``, or None (said once) when OpenCV cannot open one."""
    h, w = frame.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))  # type: ignore[attr-defined]
    if writer.isOpened():
        return writer
    print_fn("stnet predict: cannot open an mp4 writer; no overlay video will be written")
    return None


def _run_video(est, inp, kind, output_dir, json_out, results, summary, *, threshold, render_images, shower, track,
               smooth, track_metric, max_frames, flush_every, progress, print_fn) -> None:
    cap, frame, fps, total = _open_video(inp, kind, max_frames)
    stem = f"webcam{inp}" if kind == "webcam" else Path(inp).stem
    tracker = Tracker(metric=track_metric, smooth=smooth, fps=fps, sigmas=est.skeleton.sigmas) if track else None
    out_video = output_dir / f"{stem}.mp4"
    interrupted: BaseException | None = None
    with contextlib.ExitStack() as stack:
        tmp_video = stack.enter_context(atomic_write(out_video, suffix=".mp4")) if render_images else None
        writer = _video_writer(tmp_video, fps, frame, print_fn) if tmp_video is not None else None
        if tmp_video is not None and writer is None:
            tmp_video.unlink()  # atomic_write then writes nothing
        bar = _progress(iter(int, 1), total, "frames", progress)  # endless iterator; we break ourselves
        idx = 0
        try:
            for _ in bar:
                rgb = np.ascontiguousarray(frame[..., ::-1])
                persons = est(rgb)
                if tracker is not None:
                    persons = tracker.update(persons, idx)
                results[f"{stem}_{idx:06d}"] = [p.to_dict() for p in persons]
                summary["inputs"] += 1
                summary["persons"] += len(persons)
                if writer is not None or shower.enabled:
                    over = render(rgb, persons, est.skeleton, threshold, est.untrained)
                    if writer is not None:
                        writer.write(np.ascontiguousarray(over[..., ::-1]))
                    if not shower(over, 1):
                        break
                if flush_every and (idx + 1) % flush_every == 0:
                    atomic_write_json(json_out, results)
                idx += 1
                if max_frames and idx >= max_frames:
                    break
                ok, frame = cap.read()
                if not ok or frame is None:
                    break
        except BaseException as e:  # Ctrl-C or a failure: keep the video so far, it is complete up to here
            interrupted = e
        finally:
            cap.release()
            if hasattr(bar, "close"):
                bar.close()
            if writer is not None:
                writer.release()
            atomic_write_json(json_out, results)
    if writer is not None:
        summary["outputs"].append(str(out_video))
    if interrupted is not None:
        raise interrupted
