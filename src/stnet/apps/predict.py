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

  A ``--json-out`` ending in ``.jsonl`` (images, ``--format stnet``) streams JSON Lines instead:
  line 1 the header above (without ``images``), then one image record per line, appended and
  flushed as each image is done; ``--resume`` skips the images already in such a file.

Robustness: every output file is written atomically (temp file + rename), the json is rewritten
every ``--flush-every`` images and at the end (also on Ctrl-C, which ends the run with one line
saying what was saved), an unreadable / non-image file in a folder is reported and skipped, and a
failure on one image never stops the folder. With ``.jsonl`` a kill loses at most the line being
written (a torn last line is cut off on ``--resume``) and memory does not grow with the folder.
Images are decoded by a reader thread a few images ahead of the model (:func:`read_ahead`).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import queue
import sys
import threading
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable

import cv2
import numpy as np

from .. import __version__
from stnet.inference.estimator import NonFiniteWarning
from stnet.inference.images import load_image
from ..io import WriteError, atomic_write, os_error_line, write_bytes, write_error
from ..results import Results, render, skeleton_header
from ..detectors import filter_detections, pose_boxes
from ..tracking import Tracker

__all__ = ["render", "atomic_write_json", "run_predict", "IMAGE_EXTS", "VIDEO_EXTS", "output_names",
           "coco_image_ids", "carried_boxes", "JSON_FORMATS", "Results", "JsonLines", "read_jsonl"]

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
                min_cutoff: float = 1.0, beta: float = 0.01, d_cutoff: float = 1.0,
                resume: bool = False) -> dict[str, Any]:
    """Run ``est`` (a :class:`~stnet.inference.estimator.PoseEstimator`) over ``inp``; returns a summary
    ``{"inputs", "persons", "skipped": [(name, reason)], "json", "outputs", "interrupted", ...}``.
    Ctrl-C stops the run cleanly: what was done is saved and ``summary["interrupted"]`` is True.
    A ``json_out`` ending in ``.jsonl`` streams one line per image (see :class:`JsonLines`);
    ``resume`` then skips the images already in it (``summary["resumed"]`` of them)."""
    if fmt not in JSON_FORMATS:
        raise ValueError(f"--format must be one of {', '.join(JSON_FORMATS)}, got {fmt!r}")
    kind = classify_input(inp)
    output_dir = Path(output_dir)
    json_out = Path(json_out) if json_out and str(json_out) != "-" else ("-" if json_out else
                                                                         output_dir / "predictions.json")
    progress = sys.stderr.isatty() if progress is None else progress
    summary: dict[str, Any] = {"kind": kind, "inputs": 0, "persons": 0, "skipped": [], "json": str(json_out),
                               "outputs": [], "missing_boxes": 0, "unused_boxes": [], "interrupted": False,
                               "frames_lost": 0, "no_image_id": [], "resumed": 0}
    lines = _is_jsonl(json_out)
    if lines and (kind not in ("image", "folder") or fmt != "stnet"):
        raise ValueError(f"--json-out {json_out}: JSON Lines output is for images with --format stnet; "
                         "use a .json file for videos, webcams and --format coco")
    if resume and not lines:
        raise ValueError(f"--resume needs a JSON Lines --json-out (a path ending in .jsonl), got {json_out}")
    if kind in ("image", "folder"):
        _run_images(est, inp, kind, output_dir, json_out, summary, boxes=boxes, threshold=threshold,
                    render_images=render_images, shower=_Shower(show), flush_every=flush_every, progress=progress,
                    print_fn=print_fn, fmt=fmt, ann=ann, resume=resume)
        return summary
    if fmt == "coco":
        raise ValueError("--format coco is for images (COCO results need image ids); use the default format for videos")
    _run_video(est, inp, kind, output_dir, json_out, summary, threshold=threshold,
               render_images=render_images, shower=_Shower(show), track=track, smooth=smooth,
               track_metric=track_metric, max_frames=max_frames, flush_every=flush_every, progress=progress,
               print_fn=print_fn, detect_every=detect_every, min_cutoff=min_cutoff, beta=beta, d_cutoff=d_cutoff)
    return summary


def _predict_one(est, img: np.ndarray, name: str, boxes, used: set[str], summary: dict[str, Any],
                 print_fn) -> Results:
    """Poses of one decoded image (its --boxes entry when given), box / non-finite warnings printed."""
    img_boxes = None
    if boxes is not None:
        img_boxes, key = boxes.lookup_key(name)
        if img_boxes is None:
            summary["missing_boxes"] += 1
            img_boxes = np.zeros((0, 5))
        else:
            used.add(key)
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


# Errors of one input file that skip it (reported) rather than stop the folder.
_SKIP_ERRORS = (ValueError, TypeError, OSError, cv2.error)
# Decoded images waiting for the model: enough to hide a slow decode behind inference, few enough
# that memory stays bounded (a handful of full-size frames) whatever the folder size.
READ_AHEAD = 6


def read_ahead(items: Iterable[tuple[Path, str]], depth: int = READ_AHEAD
               ) -> Iterable[tuple[Path, str, np.ndarray | BaseException]]:
    """``(file, name, RGB image or the error that made it unreadable)`` for each of ``items``, in
    order, decoded by one background thread at most ``depth`` images ahead of the consumer, so
    decoding overlaps inference. Video files get a ValueError (skipped by the caller). Closing the
    generator (or an exception in the consumer, Ctrl-C included) stops the thread."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():  # a timeout, so a consumer that went away never leaves us blocked
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for f, name in items:
                if f.suffix.lower() in VIDEO_EXTS:
                    got: np.ndarray | BaseException = ValueError(
                        "a video inside an image folder (run predict on it separately)")
                else:
                    try:
                        got = load_image(f)
                    except BaseException as e:  # noqa: B036 -- handed to the consumer, which skips or
                        got = e  # re-raises it there, where Ctrl-C and failures are handled
                if not put((f, name, got)):
                    return
        finally:
            put(done)

    thread = threading.Thread(target=work, name="stnet-predict-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def _is_jsonl(json_out: Path | str) -> bool:
    return str(json_out) != "-" and str(json_out).lower().endswith(".jsonl")


def read_jsonl(path: Path | str, repair: bool = False) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The header and the image records of a ``predict`` JSON Lines file. A last line without its
    newline (a run killed while writing it) is ignored, and with ``repair`` cut off the file so
    appending starts on a clean line; any other bad line is a ValueError naming the file and line."""
    p = Path(path)
    data = p.read_bytes()
    end = data.rfind(b"\n") + 1  # bytes up to the last complete line
    header: dict[str, Any] | None = None
    records: list[dict[str, Any]] = []
    for i, raw in enumerate(data[:end].splitlines(), 1):
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{p}: line {i} is not valid JSON ({e}); not a stnet predict .jsonl?") from None
        if not isinstance(obj, dict) or (i > 1 and not isinstance(obj.get("file"), str)):
            raise ValueError(f"{p}: line {i} is not a stnet predict record (an object with a \"file\")")
        if i == 1 and "stnet" in obj:
            header = obj
        elif i == 1:
            raise ValueError(f"{p}: line 1 is not a stnet predict header (no \"stnet\" key)")
        else:
            records.append(obj)
    if repair and end < len(data):
        with open(p, "r+b") as fh:
            fh.truncate(end)
    return header, records


def _stream_error(e: OSError, path: Path) -> WriteError:
    """A failed append to the JSON Lines file as a WriteError naming it (a full disk, a read-only
    folder, or the cause), so the run stops rather than skipping image after image."""
    return write_error(e, path) or WriteError(path, e.errno or errno.EIO, f"cannot write {path}: {os_error_line(e)}")


class JsonLines:
    """``predict`` results as JSON Lines: line 1 the header of the json document (``stnet``,
    ``model``, ``input_size``, ``skeleton``), then one ``{"file", "height", "width", "persons"}``
    line per image, each appended and flushed as it comes, so a killed run loses at most the line
    being written and memory does not grow with the folder. ``sync_every`` lines also reach the
    disk (fsync); closing syncs the rest."""

    def __init__(self, path: Path, header: dict[str, Any], *, append: bool, sync_every: int = 20) -> None:
        self.path, self.sync_every, self._n = Path(path), max(0, int(sync_every)), 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "ab" if append else "wb")
            if not append or self._fh.tell() == 0:
                self.write(header)
        except OSError as e:
            raise _stream_error(e, self.path) from None

    def write(self, obj: dict[str, Any]) -> None:
        try:
            self._fh.write(json.dumps(obj, separators=(",", ":"), allow_nan=False).encode() + b"\n")
            self._fh.flush()
            self._n += 1
            if self.sync_every and self._n % self.sync_every == 0:
                os.fsync(self._fh.fileno())
        except OSError as e:
            raise _stream_error(e, self.path) from None

    def close(self) -> None:
        if self._fh.closed:
            return
        try:
            self._fh.flush()
            os.fsync(self._fh.fileno())
        except OSError as e:
            raise _stream_error(e, self.path) from None
        finally:
            self._fh.close()


def _resume_state(est, json_out: Path, resume: bool) -> tuple[set[str], bool]:
    """(names already in ``json_out``, whether to append): nothing and False unless ``resume`` and
    the file exists. A file written by another model or skeleton is refused, not mixed."""
    if not resume or not json_out.exists():
        return set(), False
    header, records = read_jsonl(json_out, repair=True)
    if header is not None:
        want = _header(est)
        for key in ("model", "skeleton", "input_size"):
            if header.get(key) != want[key]:
                raise ValueError(f"--resume: {json_out} has {key} {header.get(key)!r}, this run {want[key]!r}; "
                                 "resume with the same model, or choose another --json-out")
    return {str(r["file"]) for r in records}, header is not None


def _coco_ids(inp: str, ann: str | Path | None, names: list[str]) -> dict[str, int]:
    ids = coco_image_ids(ann, names)
    if not ids:
        raise ValueError(f"--format coco: no image of {inp} has an image id "
                         + (f"in --ann {ann} (annotations of another dataset?)" if ann else
                            "(pass --ann ANNOTATIONS.json, or use numeric file names)"))
    return ids


def _add_coco(coco: list[dict[str, Any]], res: Results, name: str, ids: dict[str, int],
              summary: dict[str, Any]) -> None:
    if name in ids:
        coco.extend(res.to_coco(ids[name]))
    else:
        summary["no_image_id"].append(name)


def _overlay(est, res: Results, out: Path | None, threshold: float, summary: dict[str, Any],
             show: Callable[[np.ndarray], Any]) -> None:
    """Draw ``res``; write the overlay to ``out`` (when given) and show it."""
    over = render(res.image, res, est.skeleton, threshold, est.untrained)
    if out is not None:
        ok, buf = cv2.imencode(".png", over[..., ::-1])
        if not ok:
            raise OSError(f"cannot encode the overlay of {res.path}")
        write_bytes(out, buf.tobytes())
        summary["outputs"].append(str(out))
    show(over)


def _run_images(est, inp, kind, output_dir, json_out, summary, *, boxes, threshold, render_images,
                shower, flush_every, progress, print_fn, fmt, ann, resume=False) -> None:
    files, names = _list_inputs(inp, kind)
    overlay = output_names(names)
    _check_outputs(files, [output_dir / overlay[n] for n in names] if render_images else [], Path(json_out),
                   output_dir)
    ids = _coco_ids(inp, ann, names) if fmt == "coco" else {}
    images: list[dict[str, Any]] = []
    coco: list[dict[str, Any]] = []
    stream: JsonLines | None = None
    todo = list(zip(files, names))
    if _is_jsonl(json_out):
        done, append = _resume_state(est, Path(json_out), resume)
        todo = [(f, n) for f, n in todo if n not in done]
        summary["resumed"] = len(files) - len(todo)
        stream = JsonLines(Path(json_out), _header(est), append=append, sync_every=flush_every)

    def flush() -> None:
        if stream is None:
            atomic_write_json(json_out, coco if fmt == "coco" else _header(est, images=images))

    used: set[str] = set()
    reader = read_ahead(todo)
    try:
        for n, (_file, name, got) in enumerate(_progress(reader, len(todo), "images", progress and kind == "folder")):
            try:
                if isinstance(got, BaseException):
                    raise got
                res = _predict_one(est, got, name, boxes, used, summary, print_fn)
                if fmt == "coco":
                    _add_coco(coco, res, name, ids, summary)
                if stream is not None:
                    stream.write(res.to_json())
                else:
                    images.append(res.to_json())
                if render_images or shower.enabled:
                    _overlay(est, res, output_dir / overlay[name] if render_images else None, threshold,
                             summary, lambda over: shower(over, 0 if kind == "image" else 1))
            except _SKIP_ERRORS as e:
                if isinstance(e, WriteError):
                    # An output (overlay or results file) cannot be written: a full or read-only
                    # disk does not recover for the next image, so stop with one line, keeping what
                    # was written, rather than report every later image as skipped.
                    raise
                summary["skipped"].append((name, str(e)))
                print_fn(f"stnet predict: skipped {name}: {e}")
            if flush_every and (n + 1) % flush_every == 0 and str(json_out) != "-":
                flush()
    except KeyboardInterrupt:
        summary["interrupted"] = True
    finally:
        reader.close()  # type: ignore[attr-defined]
        if stream is not None:
            stream.close()
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
    estimator pads it like any box), or its box when fewer than 3 keypoints pass.

    The box score is the mean score of those keypoints (0 when none pass), not the person's score:
    that is already the box score times the keypoints' (``rescore``), so carrying it compounded
    frame after frame (0.41, 0.30, 0.21, 0.14, 0.09 on benchmarks/tracking_ids.py's clip) until the
    tracker treated a well-seen person as a doubtful one and gave it a new id."""
    if not persons:
        return np.zeros((0, 5))
    kps = np.stack([np.asarray(p.keypoints, np.float64) for p in persons])
    scores = np.stack([np.asarray(p.scores, np.float64) for p in persons])
    boxes = np.array([[*p.box, 0.0] for p in persons], np.float64)
    out = pose_boxes(kps, scores, boxes, threshold=threshold, min_points=3, grow=1.1)
    ok = scores > threshold
    out[:, 4] = np.where(ok.any(1), (scores * ok).sum(1) / np.maximum(ok.sum(1), 1), 0.0)
    return out


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
                # Carried boxes are filtered like a detector's: a pose run on a stray box can land on
                # a person another box already holds, and both would be carried on as two people.
                given = None if idx % detect_every == 0 or not prev else filter_detections(
                    carried_boxes(prev, rgb.shape), est.det_score, est.det_nms)
                persons = list(est(rgb, boxes=given, color="rgb"))
                if given is not None:  # two carried boxes can land on one person: keep one of them
                    persons = est.suppress_duplicates(persons)
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

