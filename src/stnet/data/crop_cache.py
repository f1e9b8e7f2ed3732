"""A dataset's person crops packed into one file, for training where disk or transfer is the limit
(a lent GPU machine that receives only tens of MB, a network file system, a huge image folder).

Each person is cut from its image once, with room around it for the scale and rotation
augmentation (``margin`` x the padded region), resampled to ``resolution`` x the model input,
and stored as JPEG bytes with its keypoints, visibility, box and crop region re-expressed in
crop pixels, plus the 2x3 matrix back to the original image. :class:`CropCacheDataset` serves
them exactly like :class:`~stnet.data.dataset.TopDownDataset` serves whole images, so the
augmentation, targets and evaluation are unchanged; only the images come from memory.

File format: a NumPy ``.npz`` of plain arrays (read with ``allow_pickle=False``: loading a cache
runs no code)::

    jpeg        (total_bytes,) uint8    all crops' JPEG bytes, concatenated
    offsets     (N + 1,) int64          crop i is jpeg[offsets[i]:offsets[i + 1]]
    keypoints   (N, K, 2) float32       crop pixels
    visibility  (N, K) float32
    box         (N, 4) float32          [x, y, w, h] in crop pixels
    center      (N, 2) float64          the un-augmented region in crop pixels
    scale       (N, 2) float64
    to_image    (N, 2, 3) float64       crop pixels -> original image pixels
    split       (N,) <U5                "train" / "val"
    image_id    (N,) <U..               the dataset's image ids, as text
    instance_id (N,) int64
    score       (N,) float32
    meta        (bytes,) uint8          UTF-8 JSON: skeleton name and keypoint names, sizes, source

PCK (normalised by torso or box) is unchanged by the uniform scaling into crop pixels; end-point
errors are in crop pixels. COCO AP needs the original annotation file: evaluate COCO on it.
"""
from __future__ import annotations

import json
import lzma
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from stnet.io import atomic_write, parse_json

from .dataset import TopDownDataset
from .records import ImageReadError, PersonRecord, check_image_pixels, read_image
from .skeletons import Skeleton
from .transforms import affine_points, box_to_center_scale, fix_aspect_ratio, get_warp_matrix, warp_image

__all__ = ["build_crop_cache", "load_cache_records", "CropCacheDataset", "CACHE_VERSION", "check_cache_members",
           "validate_cache_arrays", "check_cache_resolution", "MAX_MEMBER_BYTES"]

CACHE_VERSION = 1
#: Every array the reader uses (``to_image`` is for the user): one missing is refused up front,
#: naming the file, instead of a bare KeyError when the first record is built.
REQUIRED_MEMBERS = ("jpeg", "offsets", "meta", "keypoints", "visibility", "box", "center", "scale", "split",
                    "image_id", "instance_id", "score")


def _region(rec: PersonRecord, aspect: float, padding: float) -> tuple[np.ndarray, np.ndarray]:
    if rec.center is not None and rec.scale is not None:
        return np.asarray(rec.center, np.float64), fix_aspect_ratio(np.asarray(rec.scale, np.float64), aspect)
    return box_to_center_scale(rec.box, aspect, padding, where=rec.source)


def build_crop_cache(splits: dict[str, Sequence[PersonRecord]], skeleton: Skeleton, out: str | os.PathLike, *,
                     input_size: tuple[int, int], resolution: float = 1.5, margin: float = 1.4,
                     quality: int = 85, bbox_padding: float = 1.25, source: str = "",
                     progress: bool = True) -> dict[str, Any]:
    """Cut every record of ``splits`` (``{"train": records, "val": records}``) into ``out``.

    The crop covers ``margin`` x the padded, aspect-fixed region the dataset would use, at
    ``round(resolution * input_size)`` pixels. Unreadable images are left out and counted.
    Returns a summary (persons per split, bytes, skipped images). The file is written atomically.
    """
    if not 0 < quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    check_cache_resolution(resolution)
    if not 1 <= margin <= 4:
        raise ValueError(f"margin must be in [1, 4], got {margin}")
    h_in, w_in = int(input_size[0]), int(input_size[1])
    size = (int(round(h_in * resolution)), int(round(w_in * resolution)))
    aspect = w_in / h_in
    cols: dict[str, list[Any]] = {k: [] for k in ("keypoints", "visibility", "box", "center", "scale", "to_image",
                                                   "split", "image_id", "instance_id", "score")}
    blobs: list[bytes] = []
    skipped: list[str] = []
    items = [(name, r) for name, recs in splits.items() for r in recs]
    last_path, image = None, None
    for n, (split, rec) in enumerate(items):
        if rec.image_path != last_path:
            try:
                image = read_image(rec.image_path)
            except ImageReadError as e:
                skipped.append(str(e))
                image = None
            last_path = rec.image_path
        if image is None:
            continue
        center, scale = _region(rec, aspect, bbox_padding)
        wide = scale * margin
        mat = get_warp_matrix(center, wide, 0.0, size, unbiased=False)
        crop = warp_image(image, mat, size)
        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        if not ok:
            raise RuntimeError(f"{rec.source or rec.image_path}: JPEG encoding failed")
        blobs.append(buf.tobytes())
        corners = affine_points(np.array([rec.box[:2], rec.box[:2] + rec.box[2:]], np.float64), mat)
        factor = size[1] / wide[0]  # the same along both axes: the region has the crop's aspect ratio
        cols["keypoints"].append(affine_points(rec.keypoints, mat).astype(np.float32))
        cols["visibility"].append(rec.visibility.astype(np.float32))
        cols["box"].append(np.r_[corners[0], corners[1] - corners[0]].astype(np.float32))
        cols["center"].append(affine_points(center[None], mat)[0])
        cols["scale"].append(scale * factor)
        cols["to_image"].append(get_warp_matrix(center, wide, 0.0, size, unbiased=False, inverse=True))
        cols["split"].append(split)
        cols["image_id"].append(str(rec.image_id))
        cols["instance_id"].append(int(rec.instance_id))
        cols["score"].append(float(rec.score))
        if progress and (n + 1) % 1000 == 0:
            print(f"cache: {n + 1}/{len(items)} persons", flush=True)
    if not blobs:
        raise ValueError(f"no readable person crops to cache ({len(skipped)} unreadable images)")
    offsets = np.zeros(len(blobs) + 1, np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blobs])
    meta = {"version": CACHE_VERSION, "skeleton": skeleton.name, "keypoint_names": list(skeleton.keypoint_names),
            "input_size": [h_in, w_in], "crop_size": list(size), "resolution": resolution, "margin": margin,
            "quality": quality, "bbox_padding": bbox_padding, "source": source,
            "int_image_ids": all(isinstance(r.image_id, (int, np.integer)) for _, r in items)}
    arrays: dict[str, Any] = {"jpeg": np.frombuffer(b"".join(blobs), np.uint8), "offsets": offsets,
              "meta": np.frombuffer(json.dumps(meta).encode(), np.uint8),
              **{k: np.asarray(v) for k, v in cols.items()}}
    arrays["keypoints"] = arrays["keypoints"].astype(np.float32)
    arrays["split"] = arrays["split"].astype("<U5")
    out = Path(out)
    with atomic_write(out) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    per_split = {s: int(sum(1 for x in cols["split"] if x == s)) for s in splits}
    return {"path": str(out), "persons": per_split, "bytes": int(out.stat().st_size),
            "crop_size": list(size), "skipped_images": len(skipped), "skipped_examples": skipped[:3]}


class _Cache:
    """The arrays of one cache file (read once per process; workers share them after fork)."""

    _open: dict[str, "_Cache"] = {}

    def __init__(self, path: Path) -> None:
        self.path = path
        check_cache_members(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                self.arrays = {k: z[k] for k in z.files}
        except (KeyError, *_ZIP_ERRORS) as e:
            raise ValueError(f"{path}: not a readable stnet crop cache ({e})") from None
        missing = set(REQUIRED_MEMBERS) - set(self.arrays)
        if missing:
            raise ValueError(f"{path}: not an stnet crop cache (missing {', '.join(sorted(missing))})")
        self.meta = validate_cache_arrays(self.arrays, path)
        if self.meta.get("version") != CACHE_VERSION:
            raise ValueError(f"{path}: crop cache version {self.meta.get('version')}, this stnet reads "
                             f"{CACHE_VERSION}; rebuild it with `stnet cache`")

    @classmethod
    def get(cls, path: str | os.PathLike) -> "_Cache":
        hit = cls._open.get(str(path))  # per item: skip resolve()'s system calls when the path was seen
        if hit is not None:
            return hit
        key = str(Path(path).resolve())
        if key not in cls._open:
            cls._open[key] = cls(Path(path))
        if os.path.isabs(path):  # a relative name may mean another file after a chdir
            cls._open[str(path)] = cls._open[key]
        return cls._open[key]

    def decode(self, i: int) -> np.ndarray:
        o = self.arrays["offsets"]
        buf = self.arrays["jpeg"][o[i]:o[i + 1]]
        img = None
        if buf.size:
            crop = self.meta.get("crop_size")
            # A crop is at most its declared size; a forged header must not make it allocate more.
            check_image_pixels(buf, f"{self.path}: crop {i} of the cache", limit=int(np.prod(crop)) if crop else None)
            try:
                img = cv2.imdecode(buf, cv2.IMREAD_COLOR)
            except cv2.error:
                img = None
        if img is None:
            # the file named: a training run's "sample skipped" warning shows only this message
            raise ImageReadError(f"{self.path}: crop {i} of the cache cannot be decoded")
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


#: Largest cache member stnet reads (uncompressed): far above any dataset's crops (COCO train at
#: 1.5x 256x192 is about 3 GB), far below what a crafted file could declare.
MAX_MEMBER_BYTES = 64 << 30
#: Members are written uncompressed (``np.savez``); one that inflates more than this is refused.
MAX_INFLATION = 50
#: What reading a damaged or foreign zip raises besides BadZipFile: encrypted members
#: (RuntimeError), unknown compression methods (NotImplementedError), corrupt compressed data
#: (zlib.error, lzma.LZMAError, OSError from bz2), cut files (EOFError).
_ZIP_ERRORS = (zipfile.BadZipFile, OSError, EOFError, ValueError, RuntimeError, NotImplementedError, zlib.error,
               lzma.LZMAError)


def check_cache_members(path: str | os.PathLike, max_bytes: int = MAX_MEMBER_BYTES) -> None:
    """Refuse a cache file before loading it when a member's declared size is absurd: over
    ``max_bytes``, inflating more than :data:`MAX_INFLATION` x (a zip bomb), or an ``.npy`` header
    whose shape needs more bytes than the member holds. Reads only the zip directory and headers."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
        # np.load picks the format from the first bytes while zipfile finds an archive at the end:
        # an .npy (of any declared size) with a cache appended would be read as that one array
        if head not in (b"PK\x03\x04", b"PK\x05\x06"):
            raise ValueError(f"{path}: not a readable stnet crop cache (not a zip of .npy arrays: it starts "
                             f"with {head!r})")
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                where = f"{path}: member {info.filename}"
                if info.file_size > max_bytes or (info.file_size > (16 << 20)
                                                  and info.file_size > MAX_INFLATION * max(info.compress_size, 1)):
                    raise ValueError(f"{where} declares {info.file_size} bytes from {info.compress_size} stored; "
                                     "refused (not a file `stnet cache` writes)")
                with zf.open(info) as f:
                    fmt = np.lib.format
                    version = fmt.read_magic(f)
                    read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                    shape, _, dtype = read(f)
                if dtype.hasobject:
                    raise ValueError(f"{path}: not a readable stnet crop cache (member {info.filename} holds "
                                     "Python objects; refused)")
                need = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if need > info.file_size:
                    raise ValueError(f"{where} declares shape {shape} ({need} bytes) but holds "
                                     f"{info.file_size} bytes; damaged or forged")
    except _ZIP_ERRORS as e:
        if str(e).startswith(str(path)):
            raise
        raise ValueError(f"{path}: not a readable stnet crop cache ({e})") from None


def validate_cache_arrays(a: dict[str, np.ndarray], path: str | os.PathLike) -> dict[str, Any]:
    """The cache's meta dict, after checking that the arrays agree: ``offsets`` an increasing
    integer index 0 .. len(jpeg) with one entry per person + 1, and every per-person array with one
    row per person of its expected shape. ValueError naming the file and the array otherwise."""
    raw = a["meta"]
    if raw.dtype != np.uint8 or raw.ndim != 1:  # a cast of floats (NaN) or text would warn or raise
        raise ValueError(f"{path}: 'meta' must be 1-D uint8 (UTF-8 JSON bytes), got {raw.dtype} {raw.shape}")
    meta = parse_json(raw.tobytes(), f"{path}: 'meta' is not UTF-8 JSON")
    if not isinstance(meta, dict):
        raise ValueError(f"{path}: 'meta' is {type(meta).__name__}, expected an object")
    names = meta.get("keypoint_names")
    crop = meta.get("crop_size")
    if (not isinstance(names, list) or not isinstance(crop, list) or len(crop) != 2
            or not all(isinstance(v, int) and 0 < v <= 8192 for v in crop)):
        raise ValueError(f"{path}: 'meta' needs keypoint_names (a list) and crop_size ([h, w], 1..8192)")
    jpeg, off = a["jpeg"], a["offsets"]
    if jpeg.dtype != np.uint8 or jpeg.ndim != 1:
        raise ValueError(f"{path}: 'jpeg' must be 1-D uint8, got {jpeg.dtype} {jpeg.shape}")
    if off.dtype.kind not in "iu" or off.ndim != 1 or off.size < 1:
        raise ValueError(f"{path}: 'offsets' must be a 1-D integer array, got {off.dtype} {off.shape}")
    falling = bool((off[1:] < off[:-1]).any())  # not np.diff: it wraps around for unsigned offsets
    if off[0] != 0 or off[-1] != jpeg.size or falling:
        raise ValueError(f"{path}: 'offsets' must rise from 0 to len(jpeg) = {jpeg.size}; got {off[0]} .. "
                         f"{off[-1]}{' (not increasing)' if falling else ''}")
    n, k = off.size - 1, len(names)
    shapes = {"keypoints": (n, k, 2), "visibility": (n, k), "box": (n, 4), "center": (n, 2), "scale": (n, 2),
              "to_image": (n, 2, 3), "split": (n,), "image_id": (n,), "instance_id": (n,), "score": (n,)}
    for name, shape in shapes.items():
        if name in a and a[name].shape != shape:
            raise ValueError(f"{path}: '{name}' has shape {a[name].shape}, expected {shape} ({n} persons, "
                             f"{k} keypoints)")
        if name in a and name not in ("split", "image_id") and a[name].dtype.kind not in "iuf":
            raise ValueError(f"{path}: '{name}' must hold numbers, got {a[name].dtype}")
    _check_cache_values(a, path)
    return meta


def _check_cache_values(a: dict[str, np.ndarray], path: str | os.PathLike) -> None:
    """What the records are built from, beyond shapes: values a bare ``int()``, ``== "train"`` or
    the crop warp would fail on later with an error that does not name the file."""
    for name in ("keypoints", "visibility", "box", "center", "scale", "to_image", "score"):
        # `stnet cache` writes finite numbers only; NaN / inf would reach the warp as garbage crops
        if name in a and a[name].dtype.kind == "f" and not np.isfinite(a[name]).all():
            raise ValueError(f"{path}: '{name}' has {int((~np.isfinite(a[name])).sum())} NaN/inf value(s); "
                             "damaged (rebuild it with `stnet cache`)")
    if "scale" in a and a["scale"].size and not (a["scale"] > 0).all():  # the crop region's (w, h)
        raise ValueError(f"{path}: 'scale' has values <= 0 (a crop region's width and height); damaged")
    if "split" in a and a["split"].dtype.kind != "U":  # records are picked by comparing it with "train"
        raise ValueError(f"{path}: 'split' must hold text ('train' / 'val'), got {a['split'].dtype}")
    if "instance_id" in a and a["instance_id"].dtype.kind not in "iu":  # int() of NaN / inf raises
        raise ValueError(f"{path}: 'instance_id' must hold integers, got {a['instance_id'].dtype}")


def check_cache_resolution(resolution: float, limit: float = 4.0) -> None:
    """``stnet cache --resolution``: crops of ``resolution`` x the model input, > 0 and at most
    ``limit`` (already 16x the pixels; more only costs disk and time)."""
    if not (0 < resolution <= limit):
        raise ValueError(f"--resolution {resolution}: expected a number in (0, {limit:g}] (crop size = "
                         "resolution x the model input)")


def load_cache_records(path: str | os.PathLike, skeleton: Skeleton, split: str = "train") -> list[PersonRecord]:
    """Records of ``split`` (``train``, ``val`` or ``all``) in crop pixels; ``image_path`` is
    ``<cache>#<row>`` and ``extra["cache_row"]`` the row."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"crop cache {p} not found (build one with `stnet cache RECIPE -o {p.name}`)")
    c = _Cache.get(p)
    names = c.meta.get("keypoint_names", [])
    if list(names) != list(skeleton.keypoint_names):
        raise ValueError(f"{p}: cache keypoints {names} do not match skeleton {skeleton.name!r} "
                         f"{list(skeleton.keypoint_names)}; set train.skeleton/val.skeleton to "
                         f"{c.meta.get('skeleton')!r}")
    a = c.arrays
    rows = np.flatnonzero(a["split"] == split) if split != "all" else np.arange(len(a["split"]))
    as_int = bool(c.meta.get("int_image_ids"))
    return [PersonRecord(image_path=Path(f"{p}#{i}"), box=a["box"][i].astype(np.float64),
                         keypoints=a["keypoints"][i], visibility=a["visibility"][i],
                         image_id=_int_id(a["image_id"][i], p, int(i)) if as_int else str(a["image_id"][i]),
                         instance_id=int(a["instance_id"][i]), score=float(a["score"][i]),
                         center=a["center"][i], scale=a["scale"][i], source=f"{p}#{i}",
                         extra={"cache_row": int(i)})
            for i in rows]


def _int_id(v: Any, path: Path, row: int) -> int:
    """Row ``row``'s image id when the cache's meta says the ids are integers (a bare int() of
    "x", NaN or inf would escape without naming the file)."""
    try:
        return int(v)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{path}: 'image_id' of row {row} is {str(v)[:40]!r}, not an integer as the cache's "
                         "meta (int_image_ids) says") from None


class CropCacheDataset(TopDownDataset):
    """:class:`TopDownDataset` whose images are the cached crops (decoded from memory)."""

    def __init__(self, cache_path: str | os.PathLike, records: list[PersonRecord], skeleton: Skeleton,
                 **kwargs: Any) -> None:
        super().__init__(records, skeleton, **kwargs)
        self.cache_path = Path(cache_path).absolute()

    def read(self, rec: PersonRecord) -> np.ndarray:
        return _Cache.get(self.cache_path).decode(int(rec.extra["cache_row"]))
