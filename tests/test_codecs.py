"""Heatmap codecs: round trips (property-based), shapes, weights, numpy/torch, DARK, flip test."""
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stnet.codecs import (CodecConfig, MSRAHeatmap, UDPHeatmap, build_codec, flip_heatmaps_back,
                          flip_test, refine_dark)
from stnet.codecs._common import get_heatmap_maximum
from stnet.data.skeletons import get_skeleton
from stnet.data.transforms import flip_keypoints

SIZES = [(256, 192), (384, 288), (256, 256)]
PROPS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _random_keypoints(seed, size, n=8, k=17):
    h, w = size
    rng = np.random.default_rng(seed)
    return rng.uniform([-0.5, -0.5], [w - 0.5, h - 0.5], size=(n, k, 2))


@PROPS
@given(size=st.sampled_from(SIZES), sigma=st.floats(1.0, 3.5), seed=st.integers(0, 2**32 - 1))
def test_udp_dark_round_trip(size, sigma, seed):
    kernel = 11 if sigma <= 2.5 else 17
    codec = UDPHeatmap(size, sigma=sigma, refine="dark", blur_kernel_size=kernel)
    kp = _random_keypoints(seed, size)
    heatmaps, weights = codec.encode(kp)
    assert weights.all()  # every keypoint inside the crop is inside the UDP heatmap
    decoded, scores = codec.decode(heatmaps)
    err = np.linalg.norm(decoded - kp, axis=-1)
    assert err.mean() < 0.05, (err.mean(), err.max())  # input pixels
    assert err.max() < 0.5
    assert (scores > 0.5).all()


@PROPS
@given(size=st.sampled_from(SIZES), sigma=st.floats(1.0, 3.5), seed=st.integers(0, 2**32 - 1),
       refine=st.sampled_from(["quarter", "dark"]))
def test_classic_round_trip(size, sigma, seed, refine):
    codec = MSRAHeatmap(size, sigma=sigma, refine=refine, blur_kernel_size=11 if sigma <= 2.5 else 17)
    kp = _random_keypoints(seed, size)
    heatmaps, weights = codec.encode(kp)
    decoded, _ = codec.decode(heatmaps)
    stride = size[1] / codec.heatmap_size[1]
    err_hm = np.linalg.norm(decoded - kp, axis=-1)[weights > 0] / stride
    # The centre is quantised to the heatmap grid: up to half a heatmap pixel per axis is lost
    # by design, so the bound is in heatmap pixels (uniform error -> mean ~0.38).
    assert err_hm.mean() < 0.5, err_hm.mean()
    assert err_hm.max() <= np.sqrt(2) * 0.5 + 1e-6 + (1.0 if refine == "quarter" else 0.0)


@pytest.mark.parametrize("size", SIZES)
def test_udp_dark_round_trip_interior_is_exact(size):
    codec = UDPHeatmap(size, sigma=2.0)
    h, w = size
    kp = np.random.default_rng(0).uniform([20, 20], [w - 20, h - 20], size=(64, 17, 2))
    decoded, _ = codec.decode(codec.encode(kp)[0])
    assert np.abs(decoded - kp).max() < 1e-3


def test_udp_peak_is_one_at_exact_location():
    codec = UDPHeatmap((256, 192), sigma=2.0)
    ratio = 47 / 191
    kp = np.array([[100.0, 60.0], [191 * 10 / 47, 255 * 20 / 63]])  # second lands on pixel (10, 20)
    hm, w = codec.encode(kp)
    assert hm.shape == (2, 64, 48) and hm.dtype == np.float32 and w.tolist() == [1.0, 1.0]
    assert hm[1, 20, 10] == pytest.approx(1.0, abs=1e-6) and hm[1].max() == hm[1, 20, 10]
    mx, my = 100 * ratio, 60 * 63 / 255
    ys, xs = np.mgrid[0:64, 0:48]
    expected = np.exp(-((xs - mx) ** 2 + (ys - my) ** 2) / (2 * 2.0 ** 2))
    np.testing.assert_allclose(hm[0], expected, atol=1e-6)


def test_weights_zero_for_invisible_and_outside():
    for codec in (UDPHeatmap((256, 192)), MSRAHeatmap((256, 192))):
        # (-40, 30) and (30, 300): 3-sigma window entirely off the 64x48 map
        kp = np.array([[10.0, 10.0], [50.0, 50.0], [-40.0, 30.0], [30.0, 300.0], [np.nan, 3.0],
                       [191.2, 255.2]])
        vis = np.array([1, 0, 1, 1, 1, 2])
        hm, w = codec.encode(kp, vis)
        assert w.tolist() == [1, 0, 0, 0, 0, 1]
        assert (hm[w == 0] == 0).all() and np.isfinite(hm).all()
        assert hm[0].max() > 0.5


def test_batched_single_numpy_torch_agree():
    codec = UDPHeatmap((256, 192))
    kp = _random_keypoints(1, (256, 192), n=3)
    hm_b, w_b = codec.encode(kp)
    hm_s, w_s = codec.encode(kp[1])
    assert hm_b.shape == (3, 17, 64, 48) and w_b.shape == (3, 17)
    np.testing.assert_array_equal(hm_b[1], hm_s)
    np.testing.assert_array_equal(w_b[1], w_s)
    k_np, s_np = codec.decode(hm_b)
    k_t, s_t = codec.decode(torch.from_numpy(hm_b))
    assert isinstance(k_t, torch.Tensor) and k_t.dtype == torch.float32 and k_t.shape == (3, 17, 2)
    assert isinstance(k_np, np.ndarray) and s_np.shape == (3, 17)
    np.testing.assert_allclose(k_t.numpy(), k_np, atol=1e-4)
    k1, s1 = codec.decode(hm_b[1])
    assert k1.shape == (17, 2) and s1.shape == (17,)
    np.testing.assert_allclose(k1, k_np[1], atol=1e-4)
    # torch keypoints in, as a training loop would pass them
    hm_t, _ = codec.encode(torch.from_numpy(kp), torch.ones(3, 17))
    np.testing.assert_array_equal(hm_t, hm_b)


def test_decode_empty_and_noisy_heatmaps():
    codec = UDPHeatmap((256, 192))
    kp, scores = codec.decode(np.zeros((2, 17, 64, 48), np.float32))
    assert np.isfinite(kp).all() and (scores == 0).all()
    rng = np.random.default_rng(0)
    target = _random_keypoints(3, (256, 192), n=4)
    target = np.clip(target, 12, 180)
    hm, _ = codec.encode(target)
    noisy = hm + rng.normal(0, 0.05, hm.shape).astype(np.float32)
    dark, _ = codec.decode(noisy)
    argmax_only, _ = UDPHeatmap((256, 192), refine="none").decode(noisy)
    e_dark = np.linalg.norm(dark - target, axis=-1).mean()
    e_arg = np.linalg.norm(argmax_only - target, axis=-1).mean()
    assert np.isfinite(dark).all() and e_dark < e_arg


def _reference_window_weight(mu, sigma, w, h):
    """The target-weight rule of HRNet's generate_target / mmpose 1.3.2, written out per joint."""
    r = sigma * 3
    m = (mu + 0.5).astype(np.int64)  # truncates toward zero, as theirs
    left, top = (m - r).astype(np.int64)
    right, bottom = (m + r + 1).astype(np.int64)
    return 0.0 if (left >= w or top >= h or right < 0 or bottom < 0) else 1.0


@pytest.mark.parametrize("sigma", [2.0, 3.0, 1.5])
def test_weights_follow_reference_window_rule(sigma):
    # A joint whose centre is just off the heatmap keeps weight 1 while its 3-sigma window
    # overlaps the map (the reference); it used to get weight 0.
    udp, msra = UDPHeatmap((256, 192), sigma=sigma), MSRAHeatmap((256, 192), sigma=sigma)
    hm, w = udp.encode(np.array([[-5.0, 30.0], [100.0, 258.0]]))
    assert w.tolist() == [1.0, 1.0] and hm[0, :, 0].max() > 0.1 and hm[1, -1].max() > 0.1
    xs = np.concatenate([np.linspace(-60, 0, 121), np.linspace(186, 250, 129)])
    kp = np.stack([xs, np.full_like(xs, 100.0)], -1)
    for codec, to_hm in ((udp, lambda p: p * udp._ratio), (msra, lambda p: p / msra._stride)):
        _, got = codec.encode(kp)
        want = [_reference_window_weight(to_hm(p), sigma, 48, 64) for p in kp]
        assert got.tolist() == want, type(codec).__name__
        assert 0 < sum(want) < len(want)  # both sides of the rule are exercised


def test_dark_follows_the_peak_when_argmax_is_on_a_spike():
    # Reference (mmpose 1.3.2 refine_keypoints_dark_udp, kernel 11): (20.09, 30.00). The argmax is
    # the spike at (22, 30); the old "stay within 1.5 px of the argmax" rule returned (22, 30).
    ys, xs = np.mgrid[0:64, 0:48]
    hm = np.exp(-((xs - 20.0) ** 2 + (ys - 30.0) ** 2) / (2 * 3.0 ** 2))
    hm[30, 22] += 0.25
    t = torch.from_numpy(hm)[None, None]
    coords, _ = get_heatmap_maximum(t)
    assert coords.tolist() == [[[22.0, 30.0]]]
    for sigma in (None, 3.0):
        out = refine_dark(t, coords, 11, sigma=sigma)[0, 0]
        assert out[0].item() == pytest.approx(20.092, abs=0.01) and out[1].item() == pytest.approx(30.0, abs=0.01)


def test_dark_step_on_flat_maps_is_bounded():
    # On a broad, flat blob the Newton step from a point 20 px off its peak is taken (no 1.5 px
    # rule) but bounded by the stencil's reach on the blurred map (kernel radius + 1 = 6).
    ys, xs = np.mgrid[0:64, 0:48]
    blob = np.exp(-((xs - 30.0) ** 2 + (ys - 32.0) ** 2) / (2 * 12.0 ** 2))
    t = torch.from_numpy(blob)[None, None]
    out = refine_dark(t, torch.tensor([[[10.0, 32.0]]], dtype=torch.float64), 11)[0, 0]
    assert out.tolist() == pytest.approx([16.0, 32.0], abs=1e-6)
    near = refine_dark(t, torch.tensor([[[27.0, 30.0]]], dtype=torch.float64), 11)[0, 0]
    assert near.tolist() == pytest.approx([30.0, 32.0], abs=1e-3)  # inside the bound: exact
    # no blur: the stencil reaches 1 px
    off = torch.from_numpy(np.exp(-((xs + 30.0) ** 2 + (ys - 32.0) ** 2) / (2 * 20.0 ** 2)))[None, None]
    out = refine_dark(off, torch.tensor([[[0.0, 32.0]]], dtype=torch.float64), 1)[0, 0]
    assert out.tolist() == pytest.approx([0.0, 32.0], abs=1e-6)  # stencil centre 1, bound 1


def test_refine_dark_keeps_argmax_when_not_a_peak():
    hm = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    hm[0, 0, 5:8, 5:8] = 1.0  # flat plateau: log-Hessian is not negative definite at the corner
    coords, _ = get_heatmap_maximum(hm)
    out = refine_dark(hm, coords, 1)
    assert torch.isfinite(out).all()
    assert (out - coords).abs().max() <= 1.5


def test_build_codec():
    c = build_codec(CodecConfig(), (256, 192))
    assert isinstance(c, UDPHeatmap) and c.heatmap_size == (64, 48) and c.refine == "dark"
    c = build_codec(CodecConfig(kind="msra", sigma=3), (384, 288))
    assert isinstance(c, MSRAHeatmap) and c.heatmap_size == (96, 72) and c.refine == "quarter"
    with pytest.raises(ValueError, match="divisible"):
        build_codec(CodecConfig(), (255, 192))
    with pytest.raises(ValueError, match="unknown codec"):
        build_codec(CodecConfig(kind="simcc"), (256, 192))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="heatmaps are"):
        c.decode(np.zeros((17, 64, 48), np.float32))


# ----------------------------------------------------------------------------- flip test

@pytest.mark.parametrize("size", SIZES)
def test_udp_flip_back_is_exact(size):
    skel = get_skeleton("coco17")
    codec = UDPHeatmap(size)
    kp = _random_keypoints(5, size, n=4)
    hm, _ = codec.encode(kp)
    kp_f, _ = flip_keypoints(kp, None, size[1], skel.flip_index)
    hm_f, _ = codec.encode(kp_f)  # what a perfect model outputs for the mirrored crop
    back = flip_heatmaps_back(hm_f, skel.flip_index)
    np.testing.assert_allclose(back, hm, atol=1e-6)
    back_t = flip_heatmaps_back(torch.from_numpy(hm_f), skel.flip_index)
    np.testing.assert_allclose(back_t.numpy(), hm, atol=1e-6)


def test_classic_flip_back_needs_the_shift():
    skel = get_skeleton("coco17")
    size = (256, 192)
    codec = MSRAHeatmap(size, refine="dark")
    kp = np.clip(_random_keypoints(6, size, n=16), 16, 176)
    hm, _ = codec.encode(kp)
    kp_f, _ = flip_keypoints(kp, None, size[1], skel.flip_index)
    hm_f, _ = codec.encode(kp_f)
    err = {}
    for shift in (False, True):
        dec, _ = codec.decode(flip_heatmaps_back(hm_f, skel.flip_index, shift=shift))
        err[shift] = np.abs(dec[..., 0] - kp[..., 0]).mean()
    assert err[True] < err[False]


def test_flip_test_averages_model_outputs():
    skel = get_skeleton("lsp14")
    size = (256, 192)
    codec = UDPHeatmap(size)
    kp = np.clip(_random_keypoints(7, size, n=2, k=14), 10, 180)

    def perfect_model(images):
        # "Sees" the keypoints: mirrored input -> mirrored (and side-swapped) keypoints.
        out = []
        for img in images:
            mirrored = bool(img[0, 0, 0] < 0)
            k = kp[len(out) % len(kp)]  # one call sees the crops, then their mirrors
            if mirrored:
                k, _ = flip_keypoints(k, None, size[1], skel.flip_index)
            out.append(codec.encode(k)[0])
        return [torch.zeros(1), torch.from_numpy(np.stack(out))]  # multi-stage: last is used

    images = torch.zeros(2, 3, *size)
    images[..., 0] = 1.0  # left column positive; after the flip the first column is 0 -> use -1
    images[..., -1] = -1.0
    avg = flip_test(perfect_model, images, skel.flip_index, unbiased=True)
    dec, _ = codec.decode(avg)
    assert np.abs(dec.numpy() - kp).max() < 0.05
