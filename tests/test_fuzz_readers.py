"""Fuzzed inputs of the remaining readers (issue 28): COCO annotation json, ``--boxes`` json, COCO
results json for ``stnet score``, weights packs (sidecar json + safetensors, the model card) and
recipe YAML. Every generated input ends in a result or a ValueError / KeyError / TypeError /
FileNotFoundError whose message is one line naming the file (the CLI prints those as one line),
never another exception type. Examples are bounded so the whole file runs in well under a minute."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stnet.card import ModelCard
from stnet.data.coco import load_coco_records
from stnet.detectors import load_boxes_file
from stnet.engine.config import load_config
from stnet.evaluation.coco import load_results, validate_results
from stnet.model_files import load_state, pack_metadata

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
