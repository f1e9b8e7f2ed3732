"""OpenVINO backend (issue 15): parity with PyTorch in f32 / bf16, dynamic batch, the start-up
cache, IR export with metadata, the precision rule, PoseEstimator / ``stnet predict`` /
``stnet export`` with it, the benchmark rows. Skipped when the optional ``openvino`` package is not
installed (``pip install stnet[openvino]``)."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

ov = pytest.importorskip("openvino")

from stnet.apps.bench import randomize  # noqa: E402
from stnet.backends.openvino import OpenVINOBackend, resolve_precision  # noqa: E402
from stnet.card import ModelCard  # noqa: E402
from stnet.cpuinfo import CpuInfo  # noqa: E402
from stnet.data.skeletons import get_skeleton  # noqa: E402
from stnet.export.onnx import export_onnx  # noqa: E402
from stnet.export.openvino import export_openvino  # noqa: E402
from stnet.model_files import read_graph_metadata as read_metadata  # noqa: E402
from stnet.models import create_model  # noqa: E402

SIZE = (64, 64)
NO_BF16 = CpuInfo("Fake CPU", 2, avx512_bf16=False, amx_bf16=False)
AVX512_BF16 = CpuInfo("AMD EPYC", 2, avx512_bf16=True, amx_bf16=False)
AMX = CpuInfo("Intel Xeon", 2, avx512_bf16=True, amx_bf16=True)


@pytest.fixture(scope="module", autouse=True)
def cache_root(tmp_path_factory):
    """Never write the user's ~/.cache from the tests; one cache for the module, so a network is
    exported once however many estimators run it (the cache doing its job)."""
    root = tmp_path_factory.mktemp("stnet_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("STNET_CACHE_DIR", str(root))
        yield root


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    m = create_model("stnet_1s", input_size=SIZE).eval()
    randomize(m)
    return m


META = ModelCard(model="stnet_1s", skeleton=get_skeleton("coco17").to_dict(), input_size=SIZE, codec={"kind": "udp"},
                 provenance={"untrained": True, "source": "test"}).to_dict()


@pytest.fixture(scope="module")
def onnx_file(net, tmp_path_factory):
    """stnet_1s exported once (tracing the network is the slow part); the backends read the file."""
    return export_onnx(net, tmp_path_factory.mktemp("onnx") / "stnet_1s.onnx", SIZE, metadata=META)


class Tiny(nn.Module):
    """A few convs: fast to export and compile, for the cache / batching tests."""

    def __init__(self, k: int = 5) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.Conv2d(8, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, k, 1))
        randomize(self)

    def forward(self, x):
        return self.body(x)


@pytest.fixture(scope="module")
def crops():
    return torch.randn(3, 3, *SIZE, generator=torch.Generator().manual_seed(2))


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


def test_f32_matches_torch(net, onnx_file, crops, tmp_path):
    be = OpenVINOBackend(onnx_file, precision="f32", threads=2, cache_dir=tmp_path)
    with torch.inference_mode():
        ref = net(crops).numpy()
    out = be(crops.numpy())
    assert be.name == "openvino" and be.input_size == SIZE and be.precision == "f32"
    assert out.dtype == np.float32 and out.shape == ref.shape == (3, 17, 16, 16)
    assert _rel(out, ref) < 1e-4


def test_bf16_close_to_torch(net, onnx_file, crops, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a CPU without bf16 units: OpenVINO runs f32
        be = OpenVINOBackend(onnx_file, precision="bf16", threads=2, cache_dir=tmp_path)
    with torch.inference_mode():
        ref = net(crops).numpy()
    out = be(crops.numpy())
    assert be.precision in ("bf16", "f32")
    # bf16 keeps 8 mantissa bits: ~1% of the heatmap range after ~40 layers, argmax mostly kept
    assert _rel(out, ref) < 5e-2
    same = (out.reshape(3, 17, -1).argmax(-1) == ref.reshape(3, 17, -1).argmax(-1)).mean()
    assert same > 0.8


def test_dynamic_batch_static_shapes_then_fallback(tmp_path):
    m = Tiny().eval()
    x = torch.randn(5, 3, *SIZE)
    with torch.inference_mode():
        ref = m(x).numpy()
    be = OpenVINOBackend(m, input_size=SIZE, precision="f32", cache_dir=tmp_path, max_static=2)
    assert be.compiled_batches == [1] and be.num_joints == 5
    for b in (1, 3, 5, 2):  # 1 and 3 compiled statically; 5 and 2 run on the dynamic compilation
        np.testing.assert_allclose(be(x[:b].numpy()), ref[:b], rtol=1e-4, atol=1e-5)
    assert be.compiled_batches == [1, 3] and be._dynamic is not None
    assert be(np.zeros((0, 3, *SIZE), np.float32)).shape == (0, 5, 16, 16)
    with pytest.raises(ValueError, match="expects"):
        be(np.zeros((1, 3, 32, 32), np.float32))


def test_cache_dir_used_and_second_start_reuses_it(tmp_path):
    m = Tiny().eval()
    cache = tmp_path / "ovcache"
    first = OpenVINOBackend(m, input_size=SIZE, precision="f32", cache_dir=cache)
    assert not first.ir_from_cache
    assert len(list((cache / "ir").glob("*.xml"))) == 1 and list((cache / "ir").glob("*.bin"))
    assert list(cache.glob("*.blob")), "OpenVINO's CACHE_DIR holds no compiled blob"
    second = OpenVINOBackend(m, input_size=SIZE, precision="f32", cache_dir=cache)
    assert second.ir_from_cache
    x = np.random.default_rng(0).standard_normal((2, 3, *SIZE)).astype(np.float32)
    np.testing.assert_allclose(second(x), first(x), rtol=1e-5, atol=1e-6)
    # other weights: another IR entry, not the cached one
    with torch.no_grad():
        m.body[-1].bias.add_(1.0)
    third = OpenVINOBackend(m, input_size=SIZE, precision="f32", cache_dir=cache)
    assert not third.ir_from_cache and len(list((cache / "ir").glob("*.xml"))) == 2
    # no cache: nothing written
    off = OpenVINOBackend(m, input_size=SIZE, precision="f32", cache_dir=None)
    assert off.cache_dir is None and not off.ir_from_cache


def test_default_cache_dir_from_env(cache_root):
    be = OpenVINOBackend(Tiny().eval(), input_size=SIZE, precision="f32")
    assert be.cache_dir == cache_root / "openvino"
    assert list(be.cache_dir.glob("ir/*.xml"))


def test_ir_export_round_trip_keeps_metadata(tmp_path):
    meta = dict(META)
    assert meta["crop"]["bbox_padding"] == 1.25 and meta["normalization"]["mean"] == [0.485, 0.456, 0.406]
    m = Tiny().eval()
    xml = export_openvino(m, tmp_path / "model", SIZE, metadata=meta)  # .xml added
    assert xml.name == "model.xml" and xml.with_suffix(".bin").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temp files left behind"
    assert read_metadata(xml) == json.loads(json.dumps(meta))
    be = OpenVINOBackend(xml, precision="f32", cache_dir=None)
    assert be.card == ModelCard.from_dict(read_metadata(xml)) and be.input_size == SIZE and be.num_joints == 5
    x = torch.randn(2, 3, *SIZE)
    with torch.inference_mode():
        ref = m(x).numpy()
    assert _rel(be(x.numpy()), ref) < 1e-4
    # weights stay f32 in the file (8*3*9 + 8*8*9 + 5*8 weights + biases, 4 bytes each)
    assert xml.with_suffix(".bin").stat().st_size >= 4 * (8 * 3 * 9 + 8 * 8 * 9 + 5 * 8)


def test_onnx_metadata_read_through_openvino(onnx_file):
    pytest.importorskip("onnx")
    assert OpenVINOBackend(onnx_file, precision="f32", cache_dir=None).card == ModelCard.from_dict(META)
    assert read_metadata(onnx_file)["skeleton"] == "coco17"


def test_ir_export_with_decoding(tmp_path):
    xml = export_openvino(Tiny().eval(), tmp_path / "kp.xml", SIZE, decode=True)
    model = ov.Core().read_model(str(xml))
    assert [o.get_any_name() for o in model.outputs] == ["keypoints", "scores"]


def test_bad_sources(tmp_path):
    with pytest.raises(FileNotFoundError):
        OpenVINOBackend(tmp_path / "missing.onnx")
    (tmp_path / "w.pt").write_bytes(b"x")
    with pytest.raises(ValueError, match=".onnx or OpenVINO IR"):
        OpenVINOBackend(tmp_path / "w.pt")
    with pytest.raises(ValueError, match="precision"):
        OpenVINOBackend(Tiny(), input_size=SIZE, precision="int4")


def test_precision_auto_rule_on_faked_cpus():
    assert resolve_precision("auto", NO_BF16) == "f32"
    assert resolve_precision("auto", AVX512_BF16) == "bf16"
    assert resolve_precision("auto", AMX) == "bf16"
    assert resolve_precision("fp32", AMX) == "f32" and resolve_precision("bfloat16", AMX) == "bf16"
    with pytest.warns(RuntimeWarning, match="no bf16 units"):
        assert resolve_precision("bf16", NO_BF16) == "bf16"
    with pytest.raises(ValueError):
        resolve_precision("fp16", AMX)


def test_precision_auto_reaches_openvino(tmp_path):
    be = OpenVINOBackend(Tiny().eval(), input_size=SIZE, precision="auto", cpu=NO_BF16, cache_dir=tmp_path)
    assert be.requested_precision == "auto" and be.precision == "f32"
    assert be._config["INFERENCE_PRECISION_HINT"] == "f32"


def test_bench_openvino_rows():
    from stnet.apps.bench import format_table, run_benchmark

    r = run_benchmark(["stnet_1s"], [1], (64, 64), rounds=1, warmup=0, threads=1, cuda=False, print_fn=None,
                      backends=["eager_optimized", "openvino_f32", "openvino_bf16", "estimator_torch",
                                "estimator_openvino_bf16"], command="test")
    rows = {row["backend"]: row for row in r["rows"]}
    assert set(rows) == {"eager_optimized", "openvino_f32", "openvino_bf16", "estimator_torch",
                         "estimator_openvino_bf16"}
    assert rows["openvino_f32"]["x_torch_optimized"] > 0 and "x_torch_optimized" not in rows["eager_optimized"]
    assert r["ratio_vs_torch_optimized"]["stnet_1s"].keys() == {"openvino_f32_b1", "openvino_bf16_b1",
                                                                "estimator_torch_b1", "estimator_openvino_bf16_b1"}
    d = r["models"]["stnet_1s"]["max_abs_diff_vs_eager"]
    assert d["openvino_f32"] < 1e-3 * max(1.0, r["models"]["stnet_1s"]["max_abs_heatmap"])
    assert r["openvino"] == ov.__version__ and r["cpu"] and r["command"] == "test"
    table = format_table(r)
    assert "| openvino_bf16 |" in table and "x torch opt" in table and "Command: `test`" in table


# ------------------------------------------------------------------------------------------ estimator / CLI
IMAGE = np.random.default_rng(3).integers(0, 255, (150, 120, 3), dtype=np.uint8)
BOXES = [[10, 10, 60, 110], [50, 20, 60, 100]]


@pytest.fixture(scope="module")
def ckpt(net, tmp_path_factory):
    """A training checkpoint of ``net`` (same weights: its IR comes from the module's cache)."""
    path = tmp_path_factory.mktemp("ckpt") / "best.pt"
    cfg = {"model": {"name": "stnet_1s", "overrides": {}}, "input_size": list(SIZE),
           "train": {"skeleton": "coco17"}, "val": {"skeleton": "coco17"}}
    torch.save({"model": net.state_dict(), "config": cfg, "epoch": 1}, path)
    return path


def _kp(persons):
    return np.stack([p.keypoints for p in persons]), np.stack([p.scores for p in persons])


def test_estimator_openvino_matches_torch(net):
    from stnet import PoseEstimator

    ref_kp, ref_sc = _kp(PoseEstimator(net, skeleton="coco17")(IMAGE, boxes=BOXES))
    est = PoseEstimator(net, skeleton="coco17", backend="openvino", precision="f32", threads=1)
    assert est.backend.name == "openvino" and est.backend.precision == "f32" and est.backend.threads == 1
    assert "precision='f32'" in repr(est)
    kp, sc = _kp(est(IMAGE, boxes=BOXES))
    assert np.abs(kp - ref_kp).max() < 1e-2 and np.abs(sc - ref_sc).max() < 1e-4
    # flip test and batches larger than max_batch: same numbers as torch
    a = PoseEstimator(net, skeleton="coco17", flip_test=True, max_batch=3)(IMAGE, boxes=BOXES * 2)
    b = est.with_options(flip_test=True, max_batch=3)(IMAGE, boxes=BOXES * 2)
    assert np.abs(_kp(a)[0] - _kp(b)[0]).max() < 1e-2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        bf = PoseEstimator(net, skeleton="coco17", backend="openvino", precision="bf16")
    assert bf.backend.ir_from_cache  # exported once for the f32 estimator above
    kp16, sc16 = _kp(bf(IMAGE, boxes=BOXES))
    assert np.abs(sc16 - ref_sc).max() < 0.05 * np.abs(ref_sc).max()
    assert np.median(np.abs(kp16 - ref_kp)) < 1.0  # random weights: a few peaks may flip, most stay put


def test_estimator_from_checkpoint_onnx_and_ir(net, ckpt, onnx_file, tmp_path):
    from stnet import PoseEstimator

    ref_kp, _ = _kp(PoseEstimator(net, skeleton="coco17")(IMAGE, boxes=BOXES))
    from_ckpt = PoseEstimator(str(ckpt), backend="openvino", precision="f32")
    assert from_ckpt.backend.ir_from_cache and from_ckpt.skeleton.name == "coco17"
    assert np.abs(_kp(from_ckpt(IMAGE, boxes=BOXES))[0] - ref_kp).max() < 1e-2
    from_onnx = PoseEstimator(str(onnx_file), backend="openvino", precision="f32")
    assert from_onnx.skeleton.name == "coco17" and from_onnx.input_size == SIZE  # from the file's metadata
    assert np.abs(_kp(from_onnx(IMAGE, boxes=BOXES))[0] - ref_kp).max() < 1e-2
    xml = tmp_path / "m.xml"  # the ONNX graph as IR (export_openvino itself is tested above, on a small net)
    ov.save_model(ov.Core().read_model(str(onnx_file)), str(xml), compress_to_fp16=False)
    from_ir = PoseEstimator(str(xml), precision="f32")  # an IR: openvino by default
    assert from_ir.backend_name == "openvino" and from_ir.skeleton.name == "coco17"
    assert np.abs(_kp(from_ir(IMAGE, boxes=BOXES))[0] - ref_kp).max() < 1e-2
    with pytest.raises(ValueError, match="needs backend='openvino'"):
        PoseEstimator(str(xml), backend="onnxruntime")


def test_backend_auto_and_precision_checks(net, monkeypatch):
    import stnet.backends as backends
    from stnet import PoseEstimator

    assert backends.resolve_backend_name("auto", net) == "openvino"
    assert backends.resolve_backend_name("auto", net, device="cuda") == "torch"
    assert backends.resolve_backend_name(None, "m.xml") == "openvino"
    assert backends.resolve_backend_name(None, "m.onnx") == "onnxruntime"
    est = PoseEstimator(net, skeleton="coco17", backend="auto")
    assert est.backend_name == "openvino"
    monkeypatch.setattr(backends, "openvino_available", lambda: False)
    assert backends.resolve_backend_name("auto", net) == "torch"
    assert backends.resolve_backend_name("auto", "m.onnx") == "onnxruntime"
    with pytest.raises(ValueError, match="needs backend='openvino'"):
        PoseEstimator(net, skeleton="coco17", backend="torch", precision="bf16")
    with pytest.raises(ValueError, match="runs on the CPU"):
        backends.build_backend("openvino", net, SIZE, device="cuda")


def test_cli_predict_and_export_openvino(ckpt, tmp_path, capsys):
    import cv2

    from stnet.cli import main

    img = tmp_path / "img.png"
    cv2.imwrite(str(img), IMAGE[..., ::-1])
    outs = {}
    for backend in ("torch", "openvino"):
        out = tmp_path / backend
        rc = main(["predict", str(img), "--model", str(ckpt), "--backend", backend, "--precision",
                   "f32" if backend == "openvino" else "auto", "--detector", "whole", "--output-dir", str(out),
                   "--no-render", "--no-progress"])
        assert rc == 0
        doc = json.loads((out / "predictions.json").read_text())
        outs[backend] = next(im for im in doc["images"] if im["file"] == "img.png")["persons"]
    assert "openvino f32" in capsys.readouterr().err
    a, b = (np.array(outs[k][0]["keypoints"]) for k in ("torch", "openvino"))
    assert np.abs(a - b).max() < 0.02  # json rounds to 0.01 px
    xml = tmp_path / "exp" / "model.xml"
    rc = main(["export", str(ckpt), "--format", "openvino", "-o", str(xml)])
    text = capsys.readouterr()
    assert rc == 0 and xml.is_file() and xml.with_suffix(".bin").is_file()
    assert "openvino (f32) vs PyTorch max abs diff" in text.out
    assert float(text.out.split("max abs diff")[1].split()[0]) < 1e-3
    meta = read_metadata(xml)
    assert meta["skeleton"] == "coco17" and meta["input_size"] == list(SIZE) and meta["crop"]["bbox_padding"] == 1.25
    assert meta["normalization"]["std"] == [0.229, 0.224, 0.225] and meta["provenance"]["source"] == str(ckpt)


UPPER8 = {"name": "upper8_ov", "keypoint_names": ["sh_l", "sh_r", "el_l", "el_r", "wr_l", "wr_r", "hip_l", "hip_r"],
          "flip_pairs": [[0, 1], [2, 3], [4, 5], [6, 7]], "sigmas": [0.079, 0.079, 0.072, 0.072, 0.062, 0.062, 0.107,
                                                                       0.107],
          "joint_weights": [1.0, 1.0, 1.2, 1.2, 1.5, 1.5, 1.0, 1.0], "links": [[0, 2], [2, 4], [1, 3], [3, 5]]}


def test_ir_of_a_custom_skeleton_predicts_without_skeleton_option(tmp_path, capsys):
    """`stnet export --format openvino` carries the ONNX export's metadata (the layout
    included), and `stnet predict --model model.xml --backend openvino` reads it back."""
    import cv2

    from stnet.cli import main
    from stnet.data.skeletons import skeleton_from_dict

    torch.manual_seed(0)
    net = create_model("stnet_1s", input_size=SIZE, num_joints=8, width=8).eval()
    randomize(net)
    ck = tmp_path / "run" / "best.pt"
    ck.parent.mkdir()
    cfg = {"model": {"name": "stnet_1s", "overrides": {"width": 8}}, "input_size": list(SIZE),
           "train": {"skeleton_meta": "meta.yaml"}, "val": {}}
    torch.save({"model": net.state_dict(), "config": cfg, "epoch": 1, "skeleton": UPPER8}, ck)
    xml, onnx_path = tmp_path / "model.xml", tmp_path / "model.onnx"
    assert main(["export", str(ck.parent), "--format", "openvino", "-o", str(xml), "--no-check"]) == 0
    assert main(["export", str(ck.parent), "-o", str(onnx_path), "--no-check"]) == 0
    meta = read_metadata(xml)
    ref = read_metadata(onnx_path)
    assert {k: v for k, v in meta.items() if k != "provenance"} == {k: v for k, v in ref.items() if k != "provenance"}
    assert skeleton_from_dict(meta["skeleton_def"]) == skeleton_from_dict(UPPER8)
    assert meta["skeleton_def"]["joint_weights"][4] == 1.5 and meta["skeleton_def"]["links"] == UPPER8["links"]
    assert meta["input_size"] == list(SIZE) and meta["crop"]["pixel_mapping"] == "udp"
    img = tmp_path / "img.png"
    cv2.imwrite(str(img), IMAGE[..., ::-1])
    kps = {}
    for name, args in (("ir", ["--model", str(xml), "--backend", "openvino", "--precision", "f32"]),
                       ("run", ["--model", str(ck.parent)])):
        out = tmp_path / name
        assert main(["predict", str(img), *args, "--detector", "whole", "--output-dir", str(out), "--no-render",
                     "--no-progress"]) == 0
        doc = json.loads((out / "predictions.json").read_text())
        assert doc["skeleton"]["name"] == "upper8_ov"
        kps[name] = np.asarray(doc["images"][0]["persons"][0]["keypoints"])
    assert kps["ir"].shape == (8, 2) and np.abs(kps["ir"] - kps["run"]).max() < 0.05
