"""Crop geometry: box -> region, warp/inverse, flips, agreement with what cv2 draws."""
import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stnet.data.transforms import (affine_points, box_to_center_scale, crop_to_image,
                                   fix_aspect_ratio, flip_image, flip_keypoints, get_warp_matrix,
                                   image_to_crop, warp_image)
from stnet.data.skeletons import get_skeleton, list_skeletons

SIZES = [(256, 192), (384, 288), (256, 256)]
PROPS = settings(max_examples=200, deadline=None)


@PROPS
@given(size=st.sampled_from(SIZES), unbiased=st.booleans(),
       cx=st.floats(-500, 3000), cy=st.floats(-500, 3000), w=st.floats(2, 2000),
       aspect=st.floats(0.2, 5.0), rot=st.floats(-180, 180), seed=st.integers(0, 2**31))
def test_warp_then_inverse_is_identity(size, unbiased, cx, cy, w, aspect, rot, seed):
    center = np.array([cx, cy])
    scale = np.array([w, w / aspect])
    pts = np.random.default_rng(seed).uniform(-100, 3000, size=(17, 2))
    crop = image_to_crop(pts, center, scale, size, rot, unbiased=unbiased)
    back = crop_to_image(crop, center, scale, size, rot, unbiased=unbiased)
    assert np.abs(back - pts).max() < 1e-4


def test_batched_inverse_matches_single():
    rng = np.random.default_rng(0)
    c, s, r = rng.uniform(100, 500, (5, 2)), rng.uniform(50, 300, (5, 2)), rng.uniform(-40, 40, 5)
    pts = rng.uniform(0, 255, (5, 17, 2))
    out = crop_to_image(pts, c, s, (256, 192), r)
    for i in range(5):
        np.testing.assert_allclose(out[i], crop_to_image(pts[i], c[i], s[i], (256, 192), r[i]))
    mats = np.stack([get_warp_matrix(c[i], s[i], r[i], (256, 192)) for i in range(5)])
    np.testing.assert_allclose(affine_points(pts, mats)[2], affine_points(pts[2], mats[2]))


def test_box_to_center_scale():
    c, s = box_to_center_scale([10, 20, 100, 100], aspect_ratio=0.75, padding=1.25)
    np.testing.assert_allclose(c, [60, 70])
    np.testing.assert_allclose(s, [125, 125 / 0.75])  # tall model input: height grows
    c, s = box_to_center_scale([0, 0, 30, 200], aspect_ratio=0.75, padding=1.0)
    np.testing.assert_allclose(s, [150, 200])  # narrow box: width grows
    batch_c, batch_s = box_to_center_scale(np.array([[10, 20, 100, 100], [0, 0, 30, 200]]), 0.75)
    assert batch_c.shape == (2, 2) and batch_s.shape == (2, 2)
    np.testing.assert_allclose(fix_aspect_ratio(np.array([4.0, 1.0]), 1.0), [4, 4])
    for bad in ([0, 0, 0, 10], [0, 0, 10, -1], [0, 0, np.nan, 5]):
        with pytest.raises(ValueError, match="zero area"):
            box_to_center_scale(bad, 0.75, where="ann.json: annotation id 7")
    with pytest.raises(ValueError, match="annotation id 7"):
        box_to_center_scale([0, 0, 0, 0], 0.75, where="ann.json: annotation id 7")


@pytest.mark.parametrize("unbiased", [True, False])
def test_box_centre_lands_on_crop_centre(unbiased):
    m = get_warp_matrix([100.0, 50.0], [96.0, 128.0], 0.0, (256, 192), unbiased=unbiased)
    got = affine_points(np.array([[100.0, 50.0]]), m)[0]
    expected = [95.5, 127.5] if unbiased else [96.0, 128.0]
    np.testing.assert_allclose(got, expected)
    # Unbiased: the region's edges land on the outer pixel centres.
    if unbiased:
        np.testing.assert_allclose(affine_points(np.array([[52.0, -14.0], [148.0, 114.0]]), m),
                                   [[0, 0], [191, 255]], atol=1e-9)


def test_positive_rotation_turns_content_counter_clockwise():
    m = get_warp_matrix([0.0, 0.0], [191.0, 255.0], 90.0, (256, 192))
    right_of_centre = affine_points(np.array([[10.0, 0.0]]), m)[0] - [95.5, 127.5]
    np.testing.assert_allclose(right_of_centre, [0.0, -10.0], atol=1e-9)  # moved up on screen


@pytest.mark.parametrize("unbiased", [True, False])
@pytest.mark.parametrize("rot", [0.0, 33.0, -120.0])
def test_warped_image_matches_warped_points(unbiased, rot):
    # A blob drawn at a sub-pixel location must appear, after cv2 warps the image, where the
    # same matrix sends the point: this ties our pixel convention to OpenCV's.
    img = np.zeros((300, 400), np.float32)
    p = np.array([[230.3, 141.7]])
    ys, xs = np.mgrid[0:300, 0:400]
    img[:] = np.exp(-((xs - p[0, 0]) ** 2 + (ys - p[0, 1]) ** 2) / (2 * 4.0 ** 2))
    m = get_warp_matrix([210.0, 150.0], [150.0, 200.0], rot, (256, 192), unbiased=unbiased)
    crop = warp_image(img, m, (256, 192))
    q = affine_points(p, m)[0]
    yy, xx = np.mgrid[0:256, 0:192]
    wsum = crop.sum()
    centroid = np.array([(xx * crop).sum() / wsum, (yy * crop).sum() / wsum])
    assert np.abs(centroid - q).max() < 0.02


def test_flip_twice_is_identity_and_matches_image_flip():
    rng = np.random.default_rng(0)
    for name in list_skeletons():
        s = get_skeleton(name)
        kp = rng.uniform(0, 191, (3, s.num_keypoints, 2))
        vis = rng.integers(0, 2, (3, s.num_keypoints)).astype(np.float32)
        k1, v1 = flip_keypoints(kp, vis, 192, s.flip_index)
        assert not np.allclose(k1, kp)
        k2, v2 = flip_keypoints(k1, v1, 192, s.flip_index)
        np.testing.assert_allclose(k2, kp, atol=1e-12)
        np.testing.assert_array_equal(v2, vis)
        k32, _ = flip_keypoints(*flip_keypoints(kp.astype(np.float32), vis, 192, s.flip_index), 192,
                                s.flip_index)
        assert k32.dtype == np.float32
        np.testing.assert_allclose(k32, kp, atol=1e-4)
    img = rng.integers(0, 255, (8, 10, 3), dtype=np.uint8)
    np.testing.assert_array_equal(flip_image(flip_image(img)), img)
    # A marked pixel at x goes to width - 1 - x, as flip_keypoints says.
    img = np.zeros((5, 10, 3), np.uint8)
    img[2, 3] = 255
    assert tuple(np.argwhere(flip_image(img)[..., 0])[0]) == (2, 6)
    k, _ = flip_keypoints(np.array([[3.0, 2.0]]), None, 10, [0])
    assert k.tolist() == [[6.0, 2.0]]


def test_unbiased_crop_flip_equals_source_flip():
    # Under UDP, mirroring the crop == cropping the mirrored image around the mirrored centre.
    rng = np.random.default_rng(1)
    img = cv2.GaussianBlur(rng.uniform(0, 255, (120, 160)).astype(np.float32), (0, 0), 3)
    c, s = np.array([70.3, 60.2]), np.array([90.0, 120.0])
    a = flip_image(warp_image(img[..., None], get_warp_matrix(c, s, 0, (64, 48)), (64, 48))[..., None])
    c_f = np.array([160 - 1 - c[0], c[1]])
    b = warp_image(flip_image(img[..., None]), get_warp_matrix(c_f, s, 0, (64, 48)), (64, 48))
    # OpenCV 4's warpAffine interpolates with fixed-point weights (max diff ~0.12 here, on values
    # of std 7); a one-pixel centre error, the bug this guards against, differs by ~5.5.
    np.testing.assert_allclose(a[..., 0], b, atol=0.25)
