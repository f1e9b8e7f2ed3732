"""Multi-scale testing: crops of scaled regions and the alignment of their heatmaps."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from stnet.codecs import UDPHeatmap
from stnet.data import PersonRecord, TopDownDataset, align_multiscale_heatmaps
from stnet.data.config import AugmentConfig
from stnet.data.transforms import affine_points, get_warp_matrix

SCALES = (0.8, 0.9, 1.0, 1.1, 1.2, 1.3)


@pytest.mark.parametrize("seed", range(5))
def test_aligned_heatmaps_peak_where_the_unscaled_crop_sees_the_joint(seed):
    rng = np.random.default_rng(seed)
    size = (256, 192)
    codec = UDPHeatmap(size)
    center, region = np.array([300.0, 250.0]), np.array([180.0, 240.0])
    kp_img = center + rng.uniform(-0.3, 0.3, (17, 2)) * region  # inside every scaled region
    maps = []
    for f in SCALES:
        kp = affine_points(kp_img, get_warp_matrix(center, region * f, 0.0, size))
        maps.append(codec.encode(kp, np.ones(17))[0])
    aligned = align_multiscale_heatmaps(torch.as_tensor(np.stack(maps))[None], SCALES)[0]
    decoded, _ = codec.decode(aligned.numpy())
    ref = affine_points(kp_img, get_warp_matrix(center, region, 0.0, size))
    # each scale's Gaussian is narrower or wider, but all are centred on the same point
    assert np.abs(decoded - ref).max() < 0.5


def test_single_scale_is_identity():
    hm = torch.rand(2, 1, 3, 8, 6)
    assert torch.equal(align_multiscale_heatmaps(hm, (1.0,)), hm[:, 0])
    with pytest.raises(ValueError, match="2 test_scales"):
        align_multiscale_heatmaps(hm, (1.0, 1.1))


def test_dataset_returns_one_crop_per_scale(tmp_path):
    import cv2

    img = np.zeros((120, 100, 3), np.uint8)
    cv2.circle(img, (50, 60), 10, (255, 255, 255), -1)
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), img)
    kps = np.tile([[50.0, 60.0]], (14, 1))
    rec = PersonRecord(image_path=path, box=np.array([20.0, 20.0, 60.0, 80.0]), keypoints=kps,
                       visibility=np.ones(14), image_id=1, instance_id=0)
    ds = TopDownDataset([rec], "lsp14", input_size=(64, 48), test_scales=(0.8, 1.0, 1.25))
    item = ds[0]
    assert item["image"].shape == (3, 3, 64, 48)
    single = TopDownDataset([rec], "lsp14", input_size=(64, 48))[0]
    np.testing.assert_array_equal(item["image"][1], single["image"])  # scale 1.0 is the plain crop
    assert not np.array_equal(item["image"][0], item["image"][2])
    with pytest.raises(ValueError, match="cannot be combined with augmentation"):
        TopDownDataset([rec], "lsp14", input_size=(64, 48), augment=AugmentConfig(), test_scales=(1.0, 1.1))
