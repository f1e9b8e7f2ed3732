"""Fuzzed inputs of the remaining readers (issue 28): COCO annotation json, ``--boxes`` json, COCO
results json for ``stnet score``, weights packs (sidecar json + safetensors, the model card),
recipe YAML, the crop cache ``.npz`` (``stnet cache``) and the model card an exported ONNX graph or
OpenVINO IR carries in its metadata. Every generated input ends in a result or a ValueError /
KeyError / TypeError / FileNotFoundError whose message is one line naming the file (the CLI prints
those as one line), never another exception type. Examples are bounded so the whole file runs in
well under a minute."""
from __future__ import annotations

import io
import itertools
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stnet import PoseEstimator
from stnet.backends.base import graph_card
from stnet.card import ModelCard
from stnet.constants import GRAPH_METADATA_KEY
from stnet.data.build import build_dataset, build_skeleton, load_records
from stnet.data.coco import load_coco_records
from stnet.data.config import DataConfig
from stnet.data.crop_cache import build_crop_cache, load_cache_records
from stnet.data.records import ImageReadError
from stnet.detectors import load_boxes_file
from stnet.engine.config import load_config
from stnet.evaluation.coco import load_results, validate_results
from stnet.model_files import load_state, openvino_model_metadata, pack_metadata

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OK_ERRORS = (ValueError, KeyError, TypeError, FileNotFoundError)

scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=6))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=10)
numbers = st.floats(-1e4, 1e4) | st.integers(-10**4, 10**4)


def maybe(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly a plausible value for a field, sometimes any JSON value."""
    return st.one_of(valid, valid, json_values)


def documents(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Text of a file: a plausible document, any json, bytes, or json nested too deep."""
    return st.one_of(valid.map(json.dumps), valid.map(json.dumps), json_values.map(json.dumps),
                     st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
                     st.integers(1, 50_000).map(lambda n: "[" * n))


def check_error(e: BaseException, path: Path | str) -> None:
    text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    assert "\n" not in text and str(path) in text, f"{type(e).__name__}: {text}"


def run(fn, path, *args, **kw):
    try:
        return fn(*args, **kw)
    except OK_ERRORS as e:
        check_error(e, path)
        return None


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz_readers")


# ------------------------------------------------------------------------------ COCO annotation json
kp17 = st.lists(numbers, min_size=51, max_size=51)
coco_image = st.fixed_dictionaries({}, optional={
    "id": maybe(st.integers(1, 3)), "file_name": maybe(st.text(max_size=5)),
    "width": maybe(st.integers(1, 500)), "height": maybe(st.integers(1, 500))})
coco_ann = st.fixed_dictionaries({}, optional={
    "id": maybe(st.integers(1, 9)), "image_id": maybe(st.integers(1, 3)), "category_id": maybe(st.just(1)),
    "iscrowd": maybe(st.integers(0, 1)), "keypoints": maybe(kp17), "area": maybe(numbers),
    "bbox": maybe(st.lists(numbers, min_size=4, max_size=4)), "num_keypoints": maybe(st.integers(0, 17))})
coco_cat = st.fixed_dictionaries({"id": maybe(st.just(1)), "name": maybe(st.just("person"))},
                                 optional={"keypoints": maybe(st.lists(st.text(max_size=3), min_size=17, max_size=17)),
                                           "skeleton": json_values})
coco_doc = st.fixed_dictionaries({}, optional={"images": maybe(st.lists(coco_image, max_size=3)),
                                               "annotations": maybe(st.lists(coco_ann, max_size=3)),
                                               "categories": maybe(st.lists(coco_cat, max_size=2))})


@FUZZ
@given(text=documents(coco_doc))
def test_coco_annotation_reader_fuzzed(folder, text):
    path = folder / "ann.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    records = run(load_coco_records, path, path, folder, on_bad_box="skip")
    for r in records or []:
        assert np.isfinite(r.box).all() and (r.box[2:] > 0).all()


# ------------------------------------------------------------------------------ --boxes json
box = st.lists(numbers, min_size=4, max_size=5)
boxes_doc = st.one_of(st.dictionaries(st.text(max_size=5), maybe(st.lists(box, max_size=3)), max_size=3),
                      st.lists(st.fixed_dictionaries({}, optional={
                          "image_id": maybe(st.integers(1, 3)), "bbox": maybe(box),
                          "score": maybe(st.floats(0, 1)), "category_id": maybe(st.just(1))}), max_size=3),
                      coco_doc)


@FUZZ
@given(text=documents(boxes_doc), with_ann=st.booleans())
def test_boxes_reader_fuzzed(folder, text, with_ann):
    path = folder / "boxes.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    ann = folder / "boxes_ann.json"
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.jpg"}], "annotations": [],
                               "categories": []}))
    boxes = run(load_boxes_file, path, path, ann if with_ann else None)
    if boxes is not None:
        for k in boxes.keys():
            b = boxes.lookup_key(k)[0]
            assert b is None or np.isfinite(np.asarray(b, np.float64)).all()


# ------------------------------------------------------------------------------ COCO results json
result_entry = st.fixed_dictionaries({}, optional={
    "image_id": maybe(st.integers(1, 3)), "category_id": maybe(st.just(1)), "keypoints": maybe(kp17),
    "score": maybe(st.floats(0, 1))})


@FUZZ
@given(text=documents(st.lists(result_entry, max_size=3)))
def test_results_reader_fuzzed(folder, text):
    path = folder / "results.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    results = run(load_results, path, path)
    if results is not None:
        run(validate_results, path, results, None, num_keypoints=17, category_id=1, source=str(path))


# ------------------------------------------------------------------------------ weights packs
card_dict = st.fixed_dictionaries({}, optional={
    "model": maybe(st.just("stnet_1s")), "card_version": maybe(st.integers(0, 3)),
    "input_size": maybe(st.lists(st.integers(1, 512), min_size=2, max_size=2)),
    "skeleton": maybe(st.just("coco17")), "num_keypoints": maybe(st.integers(1, 20)),
    "skeleton_def": json_values, "metrics": json_values, "dataset": json_values, "license": json_values})


@FUZZ
@given(d=st.one_of(card_dict, json_values))
def test_model_card_fuzzed(d):
    try:
        ModelCard.from_dict(d, where="pack.json")
    except OK_ERRORS as e:
        check_error(e, "pack.json")


@FUZZ
@given(text=documents(card_dict))
def test_pack_sidecar_fuzzed(folder, text):
    pack = folder / "w.safetensors"
    pack.write_bytes(b"")
    side = folder / "w.json"
    side.write_text(text, encoding="utf-8", errors="surrogatepass")
    run(pack_metadata, side, pack)


def _safetensors(header: bytes, body: bytes = b"") -> bytes:
    return struct.pack("<Q", len(header)) + header + body


safetensors_files = st.one_of(
    st.binary(min_size=1, max_size=64),
    st.builds(lambda h, b: _safetensors(json.dumps(h).encode(), b),
              st.dictionaries(st.text(max_size=5), st.fixed_dictionaries({}, optional={
                  "dtype": maybe(st.sampled_from(["F32", "F16", "I64", "X9"])),
                  "shape": maybe(st.lists(st.integers(0, 4), max_size=3)),
                  "data_offsets": maybe(st.lists(st.integers(0, 64), min_size=2, max_size=2))}), max_size=2),
              st.binary(max_size=64)),
    st.binary(max_size=16).map(lambda b: struct.pack("<Q", 2**40) + b))  # a header length past the end


@FUZZ
@given(data=safetensors_files)
def test_safetensors_reader_fuzzed(folder, data):
    path = folder / "x.safetensors"
    path.write_bytes(data)
    run(load_state, path, path)


# ------------------------------------------------------------------------------ recipe YAML
yaml_text = st.one_of(
    st.dictionaries(st.sampled_from(["model", "optim", "train", "val", "epochs", "batch_size", "input_size",
                                     "name", "seed", "x"]), json_values, max_size=3).map(json.dumps),
    st.text(max_size=40), st.binary(max_size=40).map(lambda b: b.decode("latin-1")),
    st.sampled_from(["a: [1, 2", "{", ": :", "model: {name: 1}", "optim: {lr: .nan}", "epochs: -1",
                     "a: &x [*x]", "!!python/object:os.system {}", "epochs: 1e999"]))


@FUZZ
@given(text=yaml_text)
def test_recipe_yaml_fuzzed(folder, text):
    path = folder / "recipe.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    run(load_config, path, path)


# ------------------------------------------------------------------------------ crop cache .npz
SPRUNG: list[str] = []


def _spring() -> None:  # what a pickle in a cache would run: the reader must never get here
    SPRUNG.append("pickle executed")


class _Trap:
    def __reduce__(self):
        return (_spring, ())


class _Arrays(dict):
    def __repr__(self) -> str:  # hypothesis prints the fixture with a failing example
        return "<the arrays of a valid cache>"


@pytest.fixture(scope="module")
def cache_arrays(tmp_path_factory) -> dict[str, np.ndarray]:
    """The arrays of a valid 2-person cache (`stnet cache`'s writer on synthetic images)."""
    from helpers.synthetic import make_synthetic_coco

    root = tmp_path_factory.mktemp("cache_src")
    make_synthetic_coco(root, num_images=2, image_size=(60, 50))
    dc = DataConfig(kind="coco", ann_file=str(root / "annotations.json"), image_dir=str(root / "images"),
                    input_size=(32, 24))
    recs = load_records(dc, build_skeleton(dc))
    out = root / "crops.npz"
    build_crop_cache({"train": recs[:1], "val": recs[1:]}, build_skeleton(dc), out, input_size=(32, 24),
                     progress=False)
    with np.load(out, allow_pickle=False) as z:
        return _Arrays({k: z[k] for k in z.files})


CACHE_KEYS = ["jpeg", "offsets", "keypoints", "visibility", "box", "center", "scale", "to_image", "split",
              "image_id", "instance_id", "score", "meta"]
odd_dtypes = st.sampled_from(["f4", "f8", "i1", "u8", "i8", "c8", "?", "<U3", "S2", "V4", "M8[s]",
                              "f2,i4", "O"])


def _odd_array(draw, like: np.ndarray) -> np.ndarray:
    """``like`` recast to an odd dtype (a pickled object one included), reshaped, cut, made a
    scalar, or a small random array: what the shape and dtype checks must refuse."""
    kind = draw(st.sampled_from(["dtype", "dtype", "shape", "cut", "random", "scalar", "object"]))
    if kind == "dtype":
        dt = np.dtype(draw(odd_dtypes))
        if dt.hasobject:
            return np.array([_Trap()] * max(like.size, 1), dtype=object)
        try:
            return like.astype(dt)
        except (ValueError, TypeError):
            return np.zeros(like.shape, dt)
    if kind == "shape":
        return like.reshape(-1) if like.ndim > 1 else like.reshape(-1, 1)
    if kind == "cut":
        return like[:draw(st.integers(0, max(len(like) - 1, 0)))] if like.ndim else like
    if kind == "scalar":
        return np.asarray(draw(st.integers(-3, 3) | st.floats(allow_nan=True) | st.text(max_size=3)))
    if kind == "object":
        return np.array([_Trap(), 1], dtype=object)
    shape = tuple(draw(st.lists(st.integers(0, 3), max_size=3)))
    return np.asarray(draw(st.lists(st.integers(-5, 300), min_size=int(np.prod(shape)),
                                    max_size=int(np.prod(shape))))).reshape(shape).astype(
        draw(st.sampled_from(["f4", "i8", "u1"])))


def _odd_values(draw, like: np.ndarray) -> np.ndarray:
    """``like`` with its dtype and shape but some odd numbers (NaN, inf, 0, -1, huge; offsets out
    of order), or ``like`` as float64 (passes the dtype check) with one of them."""
    out = like.astype(np.float64) if draw(st.booleans()) and like.dtype.kind in "iu" else like.copy()
    if out.dtype.kind not in "iuf" or not out.size:
        return out
    odd = ([np.nan, np.inf, -np.inf, 0.0, -1.0, 1e30, -1e30, 1e-30, 3.5] if out.dtype.kind == "f"
           else [0, 1, 7, 2**40, -1])
    for _ in range(draw(st.integers(1, 3))):
        with np.errstate(all="ignore"):
            out.flat[draw(st.integers(0, out.size - 1))] = np.array(draw(st.sampled_from(odd))).astype(out.dtype)
    return out


def _meta_bytes(draw, meta: dict) -> np.ndarray:
    """The ``meta`` member: the valid dict with fields changed, any JSON, or not JSON at all."""
    kind = draw(st.sampled_from(["fields", "fields", "json", "bytes", "deep"]))
    if kind == "fields":
        m = dict(meta)
        for key in draw(st.lists(st.sampled_from(["version", "keypoint_names", "crop_size", "int_image_ids",
                                                  "skeleton", "input_size"]), min_size=1, max_size=3)):
            if draw(st.booleans()):
                m.pop(key, None)
            else:
                m[key] = draw(maybe(st.just(m.get(key))))
        raw = json.dumps(m).encode()
    elif kind == "json":
        raw = json.dumps(draw(json_values)).encode()
    elif kind == "deep":
        raw = b"[" * draw(st.integers(1, 50_000))
    else:
        raw = draw(st.binary(max_size=32))
    return np.frombuffer(raw, np.uint8)


NUMERIC_KEYS = ["offsets", "keypoints", "visibility", "box", "center", "scale", "to_image", "instance_id", "score"]


@st.composite
def bad_caches(draw, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A valid cache with odd numbers in some arrays (the common case: it gets past the shape
    checks to the records and the crops), or with members missing, recast, reshaped, cut, pickled,
    or ``meta`` damaged."""
    a = dict(arrays)
    if draw(st.integers(0, 2)):
        for key in draw(st.lists(st.sampled_from(NUMERIC_KEYS), min_size=1, max_size=3, unique=True)):
            a[key] = _odd_values(draw, a[key])
    else:
        for key in draw(st.lists(st.sampled_from(CACHE_KEYS), min_size=1, max_size=2, unique=True)):
            action = draw(st.sampled_from(["drop", "odd", "odd"]))
            if action == "drop":
                a.pop(key)
            elif key == "meta" and draw(st.booleans()):
                a[key] = _meta_bytes(draw, json.loads(a["meta"].tobytes()))
            else:
                a[key] = _odd_array(draw, a[key])
    if "image_id" in a and draw(st.integers(0, 3)) == 0:  # ids the meta says are integers, but are not
        a["image_id"] = np.full(a["image_id"].shape, draw(st.sampled_from(["x", "1e9", "", "-", "NaN", "1"])))
    return a


def _npz_bytes(arrays: dict[str, np.ndarray], compressed: bool = False) -> bytes:
    buf = io.BytesIO()
    # object arrays are pickled here, as a hostile writer would; compressed members fail in zlib
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def _zip_bytes(members: list[tuple[str, bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data, method in members:
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return buf.getvalue()


npy_header = st.builds(lambda v, d: b"\x93NUMPY" + bytes([v, 0]) + d, st.sampled_from([1, 2, 3, 9]),
                       st.binary(max_size=40))
zip_members = st.lists(st.tuples(st.sampled_from([k + ".npy" for k in CACHE_KEYS] + ["x", "a/../b.npy"]),
                                 npy_header | st.binary(max_size=40), st.sampled_from([0, 8, 12, 14])),
                       max_size=4, unique_by=lambda m: m[0])


@st.composite
def cache_files(draw, arrays: dict[str, np.ndarray]) -> bytes:
    """Bytes of a would-be cache: random bytes, a zip of random members, a damaged valid cache,
    a valid one truncated or with bytes flipped, or a valid one behind an ``.npy`` / junk prefix."""
    kind = draw(st.sampled_from(["bytes", "zip", "bad", "bad", "bad", "bad", "truncated", "flipped", "prefixed"]))
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    if kind == "zip":
        data = _zip_bytes(draw(zip_members))
        if draw(st.booleans()):  # a member's header flags it encrypted or an unknown compression
            i = data.find(b"PK\x03\x04")
            if i >= 0:
                data = data[:i + 6] + draw(st.sampled_from([b"\x01\x00", b"\x00\x00\x63\x00"])) + data[i + 8:]
        return data
    if kind == "bad":
        return _npz_bytes(draw(bad_caches(arrays)))
    data = _npz_bytes(arrays, compressed=draw(st.booleans()))
    if kind == "truncated":
        return data[:draw(st.integers(0, len(data) - 1))]
    if kind == "flipped":
        b = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            b[draw(st.integers(0, len(b) - 1))] ^= draw(st.integers(1, 255))
        return bytes(b)
    return draw(st.sampled_from([_NPY_HUGE, b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f4'}", b"junk",
                                 b"PK\x03\x04"])) + data


def _npy(descr: str, shape: tuple) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    return buf.getvalue()


#: A whole .npy declaring 80 GB: np.load reads a file that starts like this as that one array.
_NPY_HUGE = _npy("<f8", (10**10,))


_cache_names = itertools.count()  # a new file per example: the reader keeps each cache it opened


@settings(FUZZ, max_examples=300)  # many file shapes, a few ms each
@given(data=st.data())
def test_crop_cache_reader_fuzzed(folder, cache_arrays, data):
    path = folder / f"cache{next(_cache_names)}.npz"
    path.write_bytes(data.draw(cache_files(cache_arrays)))
    split = data.draw(st.sampled_from(["train", "val", "all"]))
    dc = DataConfig(kind="cache", ann_file=str(path), split=split, input_size=(32, 24))
    try:
        if load_cache_records(path, build_skeleton(dc), split):
            item = build_dataset(dc, train=False).load(0)  # the records, then a crop decoded and warped
            assert all(np.isfinite(item[k]).all() for k in ("image", "heatmaps", "keypoints"))
    except ImageReadError as e:  # an undecodable crop (OSError): training skips it, evaluation blanks it
        check_error(e, path)
    except OK_ERRORS as e:
        check_error(e, path)
    finally:
        path.unlink()
    assert not SPRUNG, "a pickle in the cache was run"


# ------------------------------------------------------------------------------ ONNX / OpenVINO IR metadata
codec_dict = st.fixed_dictionaries({}, optional={
    "kind": maybe(st.sampled_from(["udp", "msra", "dark"])), "sigma": maybe(st.floats(0.5, 4)),
    "heatmap_stride": maybe(st.sampled_from([1, 2, 4, 8])),
    "refine": maybe(st.sampled_from(["dark", "quarter", "none"])), "blur_kernel_size": maybe(st.sampled_from([3, 11]))})
indices = st.integers(-1, 20) | numbers | st.sampled_from([float("inf"), float("nan"), 1e300])  # JSON Infinity, NaN
names17 = st.lists(st.text(min_size=1, max_size=3), min_size=17, max_size=17, unique=True)
skeleton_def = st.fixed_dictionaries({"keypoint_names": maybe(names17)},
                                     optional={"name": maybe(st.just("mine")),
                                               "flip_pairs": maybe(st.lists(st.lists(indices, min_size=2,
                                                                                     max_size=2), max_size=2)),
                                               "sigmas": maybe(st.lists(st.floats(0.01, 1), min_size=17, max_size=17)),
                                               "upper_body_ids": maybe(st.lists(indices, max_size=2)),
                                               "links": maybe(st.lists(st.lists(indices, min_size=2, max_size=2),
                                                                       max_size=2))})


def _graph_card(m) -> st.SearchStrategy:
    """A graph's card: ``m`` (``maybe`` or as is) mixes wrong types into its fields."""
    return st.fixed_dictionaries({}, optional={
        "card_version": m(st.integers(0, 2)), "model": m(st.just("stnet_1s")),
        "input_size": m(st.lists(st.sampled_from([8, 16, 30, 32, 64]), min_size=2, max_size=2)),
        "num_joints": m(st.integers(1, 20)), "skeleton": m(st.sampled_from(["coco17", "mpii16", "nope"])),
        "skeleton_def": m(skeleton_def), "codec": m(codec_dict | st.sampled_from(["udp", "msra"])),
        "sigma": m(st.floats(0.5, 4)), "normalization": json_values, "decode": json_values,
        "with_affine": json_values, "provenance": m(st.fixed_dictionaries({}, optional={
            "bbox_padding": m(st.floats(1, 2))})), "bbox_padding": m(st.floats(1, 2)), "metrics": json_values})


#: The ``stnet`` metadata value: none, a card with plausible or wrong-typed fields, any JSON,
#: any text, JSON nested too deep.
metadata_values = st.one_of(st.none(), _graph_card(lambda s: s).map(json.dumps), _graph_card(maybe).map(json.dumps),
                            _graph_card(maybe).map(json.dumps), json_values.map(json.dumps), st.text(max_size=20),
                            st.integers(1, 50_000).map(lambda n: "[" * n))


#: Cards the fuzzing once found mishandled, run every time: a codec stride the graph does not
#: have, another skeleton than the graph's heatmaps, a size the stride does not divide, a JSON
#: Infinity as a skeleton index.
PINNED_CARDS = [{"codec": {"heatmap_stride": 1}}, {"skeleton": "mpii16"}, {"input_size": [30, 30]},
                {"skeleton_def": {"keypoint_names": [f"k{i}" for i in range(17)], "links": [[float("inf"), 1]]}}]


def pinned(test):
    for card in PINNED_CARDS:
        test = example(value=json.dumps(card))(test)
    return test


@pytest.fixture(scope="module")
def tiny_graph():
    """A 17-heatmap pose graph of any input size (4x average pooling, a 1x1 convolution), built
    with onnx's helpers: what an exported graph looks like to the readers, in microseconds."""
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).normal(size=(17, 3, 1, 1)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("AveragePool", ["images"], ["pooled"], kernel_shape=[4, 4], strides=[4, 4]),
         helper.make_node("Conv", ["pooled", "w"], ["heatmaps"])], "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, "height", "width"])],
        [helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, ["batch", 17, "h", "w"])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _estimate(path: Path, image: np.ndarray, **kw) -> None:
    """Load ``path`` as a user would and run it on one person: a working model or an error (the
    card's codec may contradict the graph's heatmaps, which only a run shows)."""
    est = run(PoseEstimator, path, str(path), **kw)
    res = run(est, path, image, boxes=[[20, 10, 60, 120]], color="rgb") if est is not None else None
    if res is not None:
        assert len(res) == 1 and np.isfinite(res[0].keypoints).all()
        assert est.card.to_dict()["input_size"] == list(est.input_size)


@FUZZ
@given(value=metadata_values)
@pinned
def test_onnx_metadata_fuzzed(folder, tiny_graph, test_image, value):
    import onnx

    model = onnx.ModelProto()
    model.CopyFrom(tiny_graph)
    if value is not None:
        entry = model.metadata_props.add()
        entry.key, entry.value = GRAPH_METADATA_KEY, value
    path = folder / "graph.onnx"
    onnx.save(model, str(path))
    _estimate(path, test_image, backend="onnxruntime")


@pytest.fixture(scope="module")
def tiny_ir(folder, tiny_graph):
    """The tiny graph as an OpenVINO IR, and one backend compiled from it (compiling per example
    would be slow, and many compiled models in one process upset later forking tests)."""
    import onnx

    ov = pytest.importorskip("openvino", reason="OpenVINO IR metadata needs the optional openvino package")
    from stnet.backends.openvino import OpenVINOBackend

    src = folder / "tiny.onnx"
    onnx.save(tiny_graph, str(src))
    xml = folder / "tiny_base.xml"
    ov.save_model(ov.Core().read_model(str(src)), str(xml), compress_to_fp16=False)
    return xml, OpenVINOBackend(xml, precision="f32", threads=1, cache_dir=None)


@FUZZ
@given(value=metadata_values)
@pinned
def test_openvino_ir_metadata_fuzzed(folder, tiny_ir, test_image, value):
    import openvino as ov

    base, backend = tiny_ir
    model = ov.Core().read_model(str(base))
    if value is not None:
        model.set_rt_info(value, [GRAPH_METADATA_KEY])
    path = folder / "graph.xml"
    ov.save_model(model, str(path), compress_to_fp16=False)
    # what OpenVINOBackend reads from the file (without compiling it again) ...
    read = ov.Core().read_model(str(path))
    run(lambda: graph_card(openvino_model_metadata(read, where=str(path)), ["images"], ["heatmaps"], str(path)), path)
    # ... and the file as a model reference, run by the backend compiled once
    _estimate(path, test_image, backend=backend)
