"""Fuzzed MPII json and LSP joints.mat files (issue 28 item 1): whatever a user hands the readers
ends in records with finite geometry or in a one-line ValueError naming the file (and, for a
record, the record and its field), never another exception type or a traceback-worthy crash.

Examples are bounded (small documents, ``max_examples``) so the whole file runs in seconds."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stnet.data.lsp import load_lsp_records
from stnet.data.mpii import load_mpii_records

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

scalars = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True)
           | st.text(max_size=6))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=10)
numbers = st.floats(-1e4, 1e4) | st.integers(-10**4, 10**4)


def maybe(valid: st.SearchStrategy) -> st.SearchStrategy:
    """Mostly a plausible value for a field, sometimes any JSON value."""
    return st.one_of(valid, valid, json_values)


mpii_record = st.fixed_dictionaries({}, optional={
    "image": maybe(st.text(min_size=1, max_size=8)),
    "center": maybe(st.lists(numbers, min_size=2, max_size=2)),
    "scale": maybe(st.floats(0.01, 10) | st.integers(1, 5)),
    "joints": maybe(st.lists(st.lists(numbers, min_size=2, max_size=3), min_size=15, max_size=17)),
    "joints_vis": maybe(st.lists(st.integers(0, 1), min_size=15, max_size=17)),
})
mpii_document = st.one_of(st.lists(mpii_record, max_size=3).map(json.dumps),
                          json_values.map(json.dumps),
                          st.binary(max_size=64).map(lambda b: b.decode("latin-1")),
                          st.integers(1, 50_000).map(lambda n: "[" * n))  # nested too deep for json


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz")
    (root / "images").mkdir()
    for i in range(1, 4):  # the LSP reader only probes that the images exist
        (root / "images" / f"im{i:05d}.jpg").write_bytes(b"")
    return root


def assert_one_line_naming(err: Exception, path: Path) -> None:
    text = str(err)
    assert "\n" not in text and text.startswith(f"{path}:"), text


@FUZZ
@given(text=mpii_document)
def test_mpii_reader_fuzzed(folder, text):
    path = folder / "mpii.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        records = load_mpii_records(path, folder / "images")
    except ValueError as e:
        assert_one_line_naming(e, path)
        if "record [" in str(e):
            assert any(f in str(e) for f in ("'image'", "'center'", "'scale'", "'joints'", "'joints_vis'",
                                              "center", "joints", "expected an object", "missing field")), e
        return
    for r in records:
        assert np.isfinite(r.box).all() and np.isfinite(r.center).all() and np.isfinite(r.scale).all()
        assert (r.scale > 0).all() and np.isfinite(r.keypoints).all() and r.keypoints.shape == (16, 2)


def _mat_bytes(arrays: dict) -> bytes:
    from scipy.io import savemat

    buf = io.BytesIO()
    savemat(buf, arrays)
    return buf.getvalue()


joints_arrays = st.one_of(
    st.tuples(st.sampled_from([(14, 3), (3, 14), (13, 3), (3, 16), (14, 2)]), st.integers(0, 4)).flatmap(
        lambda s: st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32) | st.floats(-300, 300),
                           min_size=s[0][0] * s[0][1] * s[1], max_size=s[0][0] * s[0][1] * s[1]).map(
            lambda v, s=s: np.asarray(v, np.float64).reshape(*s[0], s[1]))),
    st.lists(st.integers(-5, 5), max_size=6).map(np.asarray),
    st.text(max_size=5).map(np.asarray),
    st.just(np.asarray([np.zeros(3), "x"], dtype=object)),  # a cell array
)


@st.composite
def mat_files(draw) -> bytes:
    kind = draw(st.sampled_from(["joints", "other", "truncated", "junk"]))
    if kind == "junk":
        return draw(st.binary(max_size=256))
    data = _mat_bytes({"joints" if kind != "other" else "points": draw(joints_arrays)})
    if kind == "truncated":
        return data[: draw(st.integers(0, len(data) - 1))]
    return data


@FUZZ
@given(data=mat_files())
def test_lsp_reader_fuzzed(folder, data):
    path = folder / "joints.mat"
    path.write_bytes(data)
    try:
        records = load_lsp_records(path, folder / "images", split="all")
    except ValueError as e:
        assert_one_line_naming(e, path)
        return
    for r in records:
        assert np.isfinite(r.box).all() and (r.box[2:] > 0).all() and np.isfinite(r.keypoints).all()
