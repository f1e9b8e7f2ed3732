"""`stnet predict INPUT`: poses on an image, a folder, a video file or a webcam.

Outputs (under ``--output-dir``, default ``runs/predict``):

* images: ``<name>.png`` overlays (skeletons of keypoints scoring above ``--threshold``, person
  boxes, person score / track id), folder layout kept for a folder input. Two inputs with one stem
  (``x.jpg``, ``x.png``) get ``x_jpg.png`` and ``x_png.png``; an output path that is an input is
  refused before anything is written, so an input is never overwritten;
* videos / webcam: ``<stem>.mp4`` overlay video, H.264 when PyAV is installed (``pip install
  'stnet[video]'``; browsers and notebooks play it), else OpenCV's mp4v with a note;
* ``--json-out`` (default ``<output-dir>/predictions.json``, ``-`` for stdout), strict JSON
  (no NaN). ``--format stnet`` (default)::

      {"stnet": VERSION, "model": ..., "input_size": [H, W], "skeleton": {"name", "keypoints", "links"},
       "images": [{"file", "height", "width", "persons": [{"keypoints": K x [x, y], "scores": K,
                   "box": [x, y, w, h], "score": s}, ...]}, ...]}

  and for a video ``"video": {"file", "fps", "height", "width"}, "frames": [{"frame": i, "persons":
  [... with "track_id"]}]`` instead of ``"images"``. ``--format coco``: a COCO keypoint-results list
  (``stnet score`` / pycocotools), image ids from ``--ann`` (else numeric file stems).

Robustness: every output file is written atomically (temp file + rename), the json is rewritten
every ``--flush-every`` images and at the end (also on Ctrl-C, which ends the run with one line
saying what was saved), an unreadable / non-image file in a folder is reported and skipped, and a
failure on one image never stops the folder.
"""
from __future__ import annotations

import contextlib
import json
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

import cv2
import numpy as np

from .. import __version__
from stnet.inference.estimator import NonFiniteWarning
from stnet.inference.images import load_image
from ..io import atomic_write, write_bytes
from ..results import Results, render, skeleton_header
from ..tracking import Tracker

__all__ = ["render", "atomic_write_json", "run_predict", "IMAGE_EXTS", "VIDEO_EXTS", "output_names",
           "coco_image_ids", "carried_boxes", "JSON_FORMATS", "Results"]

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}
VIDEO_EXTS = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"}
JSON_FORMATS = ("stnet", "coco")


def atomic_write_json(path: Path, obj: Any) -> Path | None:
    """``obj`` as compact strict json (NaN / inf refused), written atomically (see :mod:`stnet.io`);
    ``-`` prints it to stdout instead."""
    text = json.dumps(obj, separators=(",", ":"), allow_nan=False) + "\n"
    if str(path) == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return None
    return write_bytes(path, text.encode())


def output_names(names: list[str]) -> dict[str, str]:
    """Overlay name (``.png``) for each input name (relative paths): ``a/x.jpg`` -> ``a/x.png``,
    unless two inputs share the stem, then ``a/x_jpg.png`` for each of them."""
    stems: dict[str, int] = {}
    for n in names:
        key = Path(n).with_suffix("").as_posix().lower()
        stems[key] = stems.get(key, 0) + 1
    out: dict[str, str] = {}
    taken: set[str] = set()
    for n in names:
        p = Path(n)
        clash = stems[p.with_suffix("").as_posix().lower()] > 1
        o = p.with_name(f"{p.stem}_{p.suffix.lstrip('.').lower()}.png") if clash else p.with_suffix(".png")
        k = 2
        while o.as_posix().lower() in taken:  # demo.png + demo.jpg + demo_png.png: one name each
            o = o.with_name(f"{o.stem.rsplit('~', 1)[0]}~{k}.png")
            k += 1
        taken.add(o.as_posix().lower())
        out[n] = o.as_posix()
    return out


def coco_image_ids(ann: str | Path | None, names: Iterable[str]) -> dict[str, int]:
    """File name -> COCO image id, from the ``images`` of annotation json ``ann`` (matched by the
    name and by its base name), else from numeric file stems (``000000000139.jpg`` -> 139)."""
    ids: dict[str, int] = {}
    if ann is not None:
        try:
            images = json.loads(Path(ann).read_text(encoding="utf-8")).get("images", [])
            by_name = {str(im["file_name"]): int(im["id"]) for im in images}
        except (OSError, ValueError, AttributeError, KeyError, TypeError) as e:
            raise ValueError(f"--ann {ann}: expected a COCO annotation json with images[{{id, file_name}}] ({e})"
                             ) from None
        by_base = {Path(k).name: v for k, v in by_name.items()}
        for n in names:
            i = by_name.get(n, by_base.get(Path(n).name))
            if i is not None:
                ids[n] = i
        return ids
    for n in names:
        if Path(n).stem.isdigit():
            ids[n] = int(Path(n).stem)
    return ids


def _header(est, **extra: Any) -> dict[str, Any]:
    return {"stnet": __version__, "model": str(est.source), "input_size": list(est.input_size),
            "skeleton": skeleton_header(est.skeleton), **extra}


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
    if not inp.strip():
        raise ValueError("input is an empty string; expected an image, a folder, a video file or a webcam index "
                         "(use . for the current folder)")
    if inp.isdigit() and not Path(inp).exists():
        return "webcam"
    p = Path(inp)
    if p.is_dir():
        return "folder"
    if not p.exists():
        raise FileNotFoundError(f"input {inp} not found (an image, a folder, a video file or a webcam index)")
    return "video" if p.suffix.lower() in VIDEO_EXTS else "image"


def _check_outputs(inputs: list[Path], outputs: list[Path], json_out: Path, output_dir: Path) -> None:
    """Refuse a run that would write over one of its inputs, or into a file given as a folder."""
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"--output-dir {output_dir} is a file, expected a folder (or a path that does not exist)")
    if str(json_out) != "-" and json_out.is_dir():
        raise ValueError(f"--json-out {json_out} is a folder, expected a file path such as {json_out}/predictions.json")
    ins = {p.resolve() for p in inputs}
    for out in [*outputs, *([json_out] if str(json_out) != "-" else [])]:
        if out.resolve() in ins:
            raise ValueError(f"{out} is an input and would be overwritten; choose another --output-dir / --json-out")


def run_predict(est, inp: str, *, output_dir: Path, json_out: Path | str | None = None, boxes=None,
                threshold: float = 0.3, render_images: bool = True, show: bool = False, track: bool = True,
                smooth: bool = False, track_metric: str = "iou", max_frames: int | None = None,
                flush_every: int = 20, progress: bool | None = None, print_fn: Callable[[str], Any] = print,
                fmt: str = "stnet", ann: str | Path | None = None, detect_every: int = 1,
                min_cutoff: float = 1.0, beta: float = 0.01, d_cutoff: float = 1.0) -> dict[str, Any]:
    """Run ``est`` (a :class:`~stnet.inference.estimator.PoseEstimator`) over ``inp``; returns a summary
    ``{"inputs", "persons", "skipped": [(name, reason)], "json", "outputs", "interrupted", ...}``.
    Ctrl-C stops the run cleanly: what was done is saved and ``summary["interrupted"]`` is True."""
    if fmt not in JSON_FORMATS:
        raise ValueError(f"--format must be one of {', '.join(JSON_FORMATS)}, got {fmt!r}")
    kind = classify_input(inp)
    output_dir = Path(output_dir)
    json_out = Path(json_out) if json_out and str(json_out) != "-" else ("-" if json_out else
                                                                         output_dir / "predictions.json")
    progress = sys.stderr.isatty() if progress is None else progress
    summary: dict[str, Any] = {"kind": kind, "inputs": 0, "persons": 0, "skipped": [], "json": str(json_out),
                               "outputs": [], "missing_boxes": 0, "unused_boxes": [], "interrupted": False,
                               "frames_lost": 0, "no_image_id": []}
    if kind in ("image", "folder"):
        _run_images(est, inp, kind, output_dir, json_out, summary, boxes=boxes, threshold=threshold,
                    render_images=render_images, shower=_Shower(show), flush_every=flush_every, progress=progress,
                    print_fn=print_fn, fmt=fmt, ann=ann)
        return summary
    if fmt == "coco":
        raise ValueError("--format coco is for images (COCO results need image ids); use the default format for videos")
    _run_video(est, inp, kind, output_dir, json_out, summary, threshold=threshold,
               render_images=render_images, shower=_Shower(show), track=track, smooth=smooth,
               track_metric=track_metric, max_frames=max_frames, flush_every=flush_every, progress=progress,
               print_fn=print_fn, detect_every=detect_every, min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff)
    return summary


def _predict_one(est, f: Path, name: str, boxes, used: set[str], summary: dict[str, Any], print_fn) -> Results:
    """Poses of one image file (its --boxes entry when given), box / non-finite warnings printed."""
    img_boxes = None
    if boxes is not None:
        img_boxes, key = boxes.lookup_key(name)
        if img_boxes is None:
            summary["missing_boxes"] += 1
            img_boxes = np.zeros((0, 5))
        else:
            used.add(key)
    img = load_image(f)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = est(img, boxes=img_boxes, color="rgb")
    for w in caught:
        if "box" in str(w.message) or issubclass(w.category, NonFiniteWarning):
            print_fn(f"stnet predict: {name}: {w.message}")
    res.path = name
    summary["inputs"] += 1
    summary["persons"] += len(res)
    return res


def _list_inputs(inp: str, kind: str) -> tuple[list[Path], list[str]]:
    """The files of an image or folder input and their names (relative to the folder)."""
    if kind == "image":
        return [Path(inp)], [Path(inp).name]
    root = Path(inp)
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise ValueError(f"folder {inp} contains no files")
    return files, [f.relative_to(root).as_posix() for f in files]


def _run_images(est, inp, kind, output_dir, json_out, summary, *, boxes, threshold, render_images,
                shower, flush_every, progress, print_fn, fmt, ann) -> None:
    files, names = _list_inputs(inp, kind)
    overlay = output_names(names)
    _check_outputs(files, [output_dir / overlay[n] for n in names] if render_images else [], Path(json_out),
                   output_dir)
    ids = coco_image_ids(ann, names) if fmt == "coco" else {}
    if fmt == "coco" and not ids:
        raise ValueError(f"--format coco: no image of {inp} has an image id "
                         + (f"in --ann {ann} (annotations of another dataset?)" if ann else
                            "(pass --ann ANNOTATIONS.json, or use numeric file names)"))
    images: list[dict[str, Any]] = []
    coco: list[dict[str, Any]] = []

    def flush() -> None:
        atomic_write_json(json_out, coco if fmt == "coco" else _header(est, images=images))

    used: set[str] = set()
    try:
        for n, (f, name) in enumerate(_progress(list(zip(files, names)), len(files), "images",
                                                 progress and kind == "folder")):
            if f.suffix.lower() in VIDEO_EXTS:
                summary["skipped"].append((name, "a video inside an image folder (run predict on it separately)"))
                continue
            try:
                res = _predict_one(est, f, name, boxes, used, summary, print_fn)
                if fmt == "coco":
                    if name in ids:
                        coco.extend(res.to_coco(ids[name]))
                    else:
                        summary["no_image_id"].append(name)
                images.append(res.to_json())
                if render_images or shower.enabled:
                    over = render(res.image, res, est.skeleton, threshold, est.untrained)
                    if render_images:
                        out = output_dir / overlay[name]
                        ok, buf = cv2.imencode(".png", over[..., ::-1])
                        if not ok:
                            raise OSError(f"cannot encode the overlay of {name}")
                        write_bytes(out, buf.tobytes())
                        summary["outputs"].append(str(out))
                    shower(over, 0 if kind == "image" else 1)
            except (ValueError, TypeError, OSError, cv2.error) as e:
                summary["skipped"].append((name, str(e)))
                print_fn(f"stnet predict: skipped {name}: {e}")
            if flush_every and (n + 1) % flush_every == 0 and str(json_out) != "-":
                flush()
    except KeyboardInterrupt:
        summary["interrupted"] = True
    finally:
        flush()
    if boxes is not None and kind == "folder" and not summary["interrupted"]:
        summary["unused_boxes"] = sorted(set(boxes.keys()) - used)


def _open_video(inp: str, kind: str, max_frames: int | None) -> tuple[Any, np.ndarray, float, int | None, int | None]:
    """(capture, first frame, fps, frames to expect or None, frames in the container or None)."""
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
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if kind == "video" else None
    count = count if count and count > 0 else None
    total = min(count, max_frames) if count and max_frames else (count or max_frames)
    return cap, frame, fps, total, count


class _AVWriter:
    """H.264 (yuv420p, what browsers play) through PyAV, which bundles its own FFmpeg."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int]) -> None:
        import av
        from fractions import Fraction

        self.container = av.open(str(path), mode="w", format="mp4")
        self.stream = self.container.add_stream("libx264", rate=Fraction(round(fps * 1000), 1000))
        h, w = size
        # yuv420p needs even sizes; pad one pixel rather than rescale the overlay.
        self.stream.width, self.stream.height = w + w % 2, h + h % 2
        self.stream.pix_fmt = "yuv420p"
        self._av = av

    def write(self, bgr: np.ndarray) -> None:
        h, w = self.stream.height, self.stream.width
        if bgr.shape[:2] != (h, w):
            bgr = cv2.copyMakeBorder(bgr, 0, h - bgr.shape[0], 0, w - bgr.shape[1], cv2.BORDER_REPLICATE)
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(bgr), format="bgr24")
        for packet in self.stream.encode(frame):
            self.container.mux(packet)

    def release(self) -> None:
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def _video_writer(path: Path, fps: float, frame: np.ndarray, print_fn) -> Any:
    """An H.264 writer (PyAV) for frames like ``frame``; else OpenCV's mp4v (said once: browsers do
    not play it); None (said) when neither opens."""
    h, w = frame.shape[:2]
    try:
        return _AVWriter(path, fps, (h, w))
    except ImportError:
        print_fn("stnet predict: note: writing mp4v video (browsers and notebooks do not play it); "
                 "pip install 'stnet[video]' (PyAV) for H.264")
    except Exception as e:  # a PyAV build without libx264: PyAV raises its own error types
        print_fn(f"stnet predict: note: PyAV cannot write H.264 ({str(e).splitlines()[0][:120]}); writing mp4v")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))  # type: ignore[attr-defined]
    if writer.isOpened():
        return writer
    print_fn("stnet predict: cannot open an mp4 writer; no overlay video will be written")
    return None


def carried_boxes(persons: list, image_shape: tuple[int, ...], threshold: float = 0.3) -> np.ndarray:
    """Boxes for a frame without detection, from the previous frame's persons: the extent of each
    person's keypoints scoring above ``threshold`` (grown 10 % so a moving person stays inside; the
    estimator pads it like any box), or its box when fewer than 3 keypoints pass."""
    out = []
    for p in persons:
        ok = p.scores > threshold
        if ok.sum() >= 3:
            lo, hi = p.keypoints[ok].min(0), p.keypoints[ok].max(0)
            c, wh = (lo + hi) / 2, np.maximum(hi - lo, 1.0) * 1.1
            out.append([c[0] - wh[0] / 2, c[1] - wh[1] / 2, wh[0], wh[1], p.score])
        else:
            out.append([*p.box, p.score])
    return np.asarray(out, np.float64).reshape(-1, 5)


def _run_video(est, inp, kind, output_dir, json_out, summary, *, threshold, render_images, shower, track,
               smooth, track_metric, max_frames, flush_every, progress, print_fn, detect_every=1,
               min_cutoff=1.0, beta=0.01, d_cutoff=1.0) -> None:
    stem = f"webcam{inp}" if kind == "webcam" else Path(inp).stem
    out_video = output_dir / f"{stem}.mp4"
    _check_outputs([Path(inp)] if kind == "video" else [], [out_video] if render_images else [], Path(json_out),
                   output_dir)
    cap, frame, fps, total, count = _open_video(inp, kind, max_frames)
    tracker = Tracker(metric=track_metric, smooth=smooth, fps=fps, sigmas=est.skeleton.sigmas,
                      min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff) if track else None
    detect_every = max(1, int(detect_every))
    frames: list[dict[str, Any]] = []
    h, w = frame.shape[:2]
    doc = _header(est, video={"file": str(inp), "fps": round(float(fps), 3), "height": h, "width": w}, frames=frames)
    ended, failure = False, None  # type: tuple[bool, Exception | None]
    with contextlib.ExitStack() as stack:
        tmp_video = stack.enter_context(atomic_write(out_video, suffix=".mp4")) if render_images else None
        writer = _video_writer(tmp_video, fps, frame, print_fn) if tmp_video is not None else None
        if tmp_video is not None and writer is None:
            tmp_video.unlink()  # atomic_write then writes nothing
        bar = _progress(iter(int, 1), total, "frames", progress)  # endless iterator; we break ourselves
        idx, prev = 0, []  # type: tuple[int, list]
        try:
            for _ in bar:
                rgb = np.ascontiguousarray(frame[..., ::-1])
                given = None if idx % detect_every == 0 or not prev else carried_boxes(prev, rgb.shape)
                persons = list(est(rgb, boxes=given, color="rgb"))
                if tracker is not None:
                    persons = tracker.update(persons, idx)
                prev = persons
                frames.append({"frame": idx, "persons": [p.to_dict() for p in persons]})
                summary["inputs"] += 1
                summary["persons"] += len(persons)
                if writer is not None or shower.enabled:
                    over = render(rgb, persons, est.skeleton, threshold, est.untrained)
                    if writer is not None:
                        writer.write(np.ascontiguousarray(over[..., ::-1]))
                    if not shower(over, 1):
                        break
                if flush_every and (idx + 1) % flush_every == 0 and str(json_out) != "-":
                    atomic_write_json(json_out, doc)
                idx += 1
                if max_frames and idx >= max_frames:
                    break
                ok, frame = cap.read()
                if not ok or frame is None:
                    ended = True
                    break
        except KeyboardInterrupt:  # keep the video so far: it is complete up to here
            summary["interrupted"] = True
        except Exception as e:  # a failure: keep the video and json so far too, then report it
            failure = e
        finally:
            cap.release()
            if hasattr(bar, "close"):
                bar.close()
            if writer is not None:
                writer.release()
            atomic_write_json(json_out, doc)
    _finish_video(inp, summary, print_fn, read=idx, announced=count if ended else None,
                  video=out_video if writer is not None else None, failure=failure)


def _finish_video(inp: str, summary: dict[str, Any], print_fn, *, read: int, announced: int | None,
                  video: Path | None, failure: Exception | None) -> None:
    """Report frames lost (the file ended before the count its header announces), the video
    written, and re-raise a failure once everything so far is saved."""
    if announced and read < announced:
        summary["frames_lost"] = announced - read
        print_fn(f"stnet predict: video {inp}: read {read} of the {announced} frames its header announces; "
                 f"{announced - read} frame(s) lost (truncated or damaged file)")
    if video is not None:
        summary["outputs"].append(str(video))
    if failure is not None:
        raise failure

