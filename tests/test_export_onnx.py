"""ONNX export parity: heatmaps and in-graph decoding vs PyTorch (randomised weights, 128x96)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from stnet.codecs import build_codec
from stnet.codecs._common import get_heatmap_maximum
from stnet.codecs.dark import refine_dark
from stnet.data.dataset import normalize_image
from stnet.codecs.decode_head import DecodeHead
from stnet.export.onnx import DecodingModel, export_onnx
from stnet.models.fuse import fold_batchnorm

ort = pytest.importorskip("onnxruntime")

SIZE = (128, 96)


@pytest.fixture(scope="module")
def model(random_stnet):
    return random_stnet


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    plain = export_onnx(model, d / "hm.onnx", SIZE)
    dec = export_onnx(model, d / "dec.onnx", SIZE, with_affine=True, metadata={"skeleton": "coco17"})
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return (ort.InferenceSession(str(plain), opts, providers=["CPUExecutionProvider"]),
            ort.InferenceSession(str(dec), opts, providers=["CPUExecutionProvider"]), dec)


@pytest.fixture(scope="module")
def real_crops(real_photos) -> torch.Tensor:
    """Two crops of real photos when the shared data is there, else of a smooth synthetic image."""
    import cv2

    n = 2
    imgs = real_photos[:n]
    crops = []
    for i in range(n):
        if i < len(imgs):
            img = cv2.imread(str(imgs[i]))[..., ::-1]
        else:
            yy, xx = np.mgrid[0:200, 0:150]
            img = np.stack([(xx * 1.7) % 255, (yy * 1.3) % 255, (xx + yy) % 255], -1).astype(np.uint8)
        crop = cv2.resize(np.ascontiguousarray(img), (SIZE[1], SIZE[0]))
        crops.append(normalize_image(crop))
    return torch.from_numpy(np.stack(crops))


def test_heatmaps_parity_random_and_real(model, exported, real_crops):
    sess = exported[0]
    folded_ref = model  # eager, as built (not folded): the export must match the original model
    for x in (torch.randn(3, 3, *SIZE), real_crops):
        with torch.inference_mode():
            ref = folded_ref(x).numpy()
        out = sess.run(None, {"images": x.numpy()})[0]
        assert out.shape == ref.shape  # dynamic batch (3 and 2, exported with 1)
        assert np.abs(ref).max() > 0.1, "randomised weights must give heatmaps far from zero"
        assert np.abs(out - ref).max() < 1e-4


def test_decoded_keypoints_parity(model, exported, real_crops):
    sess = exported[1]
    x = torch.cat([torch.randn(2, 3, *SIZE), real_crops])
    b = len(x)
    ident = np.tile(np.array([[1, 0, 0], [0, 1, 0]], np.float32), (b, 1, 1))
    kp, sc = sess.run(None, {"images": x.numpy(), "affine": ident})
    with torch.inference_mode():
        hm = model(x)
        head = DecodeHead(17, SIZE)
        ref_kp, ref_sc = head(hm)
        # the library's DARK refinement (without its border-bias table) on the same heatmaps
        hm64 = hm.double()
        coords, vals = get_heatmap_maximum(hm64)
        dark = refine_dark(hm64, coords, 11, sigma=None) * torch.tensor([(SIZE[1] - 1) / (SIZE[1] // 4 - 1),
                                                                          (SIZE[0] - 1) / (SIZE[0] // 4 - 1)],
                                                                         dtype=torch.float64)
    assert kp.shape == (b, 17, 2) and sc.shape == (b, 17)
    assert np.abs(kp - ref_kp.numpy()).max() < 1e-2
    assert np.abs(sc - ref_sc.numpy()).max() < 1e-4
    assert np.abs(kp - dark.numpy()).max() < 1e-2
    assert np.abs(sc - vals.numpy()).max() < 1e-4


def test_decoded_with_affine(model, exported):
    sess = exported[1]
    x = torch.randn(2, 3, *SIZE)
    aff = np.array([[[2.0, 0.0, 10.0], [0.0, 3.0, -5.0]], [[0.5, 0.1, 1.0], [-0.1, 0.5, 2.0]]], np.float32)
    ident = np.tile(np.array([[1, 0, 0], [0, 1, 0]], np.float32), (2, 1, 1))
    crop_kp, _ = sess.run(None, {"images": x.numpy(), "affine": ident})
    img_kp, _ = sess.run(None, {"images": x.numpy(), "affine": aff})
    expect = np.einsum("nij,nkj->nki", aff[..., :2], crop_kp) + aff[:, None, :, 2]
    assert np.abs(img_kp - expect).max() < 1e-3


def test_decode_head_matches_codec_on_gaussians():
    # Exact Gaussians away from the border: in-graph decode == the UDP codec's decode.
    codec = build_codec(input_size=SIZE)
    rng = np.random.default_rng(0)
    kp = np.stack([rng.uniform(24, SIZE[1] - 24, (3, 17)), rng.uniform(24, SIZE[0] - 24, (3, 17))], -1)
    hm, _ = codec.encode(kp)
    ref, _ = codec.decode(hm)
    out, sc = DecodeHead(17, SIZE)(torch.from_numpy(hm))
    assert np.abs(out.numpy() - ref).max() < 1e-2
    assert np.abs(out.numpy() - kp).max() < 5e-2
    assert np.allclose(sc.numpy(), hm.reshape(3, 17, -1).max(-1), atol=1e-6)


def test_metadata_and_folding(model, exported):
    import json

    import onnx

    m = onnx.load(str(exported[2]))
    meta = {p.key: p.value for p in m.metadata_props}
    assert json.loads(meta["stnet"])["skeleton"] == "coco17"
    assert [i.name for i in m.graph.input] == ["images", "affine"]
    assert [o.name for o in m.graph.output] == ["keypoints", "scores"]
    # conv-BN pairs are folded (only STNet's pre-activation BNs, BN -> ReLU -> conv, remain)
    n_bn = sum(n.op_type == "BatchNormalization" for n in m.graph.node)
    n_bn_model = sum(isinstance(x, torch.nn.BatchNorm2d) for x in model.modules())
    assert n_bn < n_bn_model / 2


def test_decoding_model_torch_shapes(model):
    net = DecodingModel(fold_batchnorm(model), DecodeHead(17, SIZE))
    with torch.inference_mode():
        kp, sc = net(torch.randn(1, 3, *SIZE))
    assert kp.shape == (1, 17, 2) and sc.shape == (1, 17)


def test_export_and_onnx_loading_errors_are_one_line(model, tmp_path, capsys):
    # issue 12: 994 lines for --opset 5, tracebacks for -o DIR and for a corrupt or empty .onnx
    from stnet.cli import main as stnet_main
    from stnet.backends.onnxruntime import ort_session

    with pytest.raises(ValueError, match=r"opset 5 is not supported: use 9 to 20"):
        export_onnx(model, tmp_path / "m.onnx", SIZE, opset=5)
    with pytest.raises(ValueError, match=rf"output {tmp_path} is a folder; give a file name"):
        export_onnx(model, tmp_path, SIZE)
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ValueError, match=r"empty.onnx is empty \(0 bytes\)"):
        ort_session(tmp_path / "empty.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"\x08\x07garbage" * 50)
    with pytest.raises(ValueError, match=r"bad.onnx cannot be loaded: it is corrupted, truncated or not an ONNX"):
        ort_session(tmp_path / "bad.onnx")
    for args in (["export", "stnet_1s", "--opset", "5"], ["export", "stnet_1s", "-o", str(tmp_path)],
                 ["export", str(tmp_path / "bad.onnx")]):
        assert stnet_main(args) == 2, args
        err = capsys.readouterr().err
        assert err.startswith(f"stnet {args[0]}: error: ") and err.count("\n") == 1, err
