"""TopDownDataset end to end on synthetic images: labels must follow every augmentation."""
import dataclasses

import cv2
import numpy as np
import pytest
import torch
from scipy.io import savemat

from stnet.codecs import CodecConfig, MSRAHeatmap, UDPHeatmap
from stnet.data import (AugmentConfig, DataConfig, PersonRecord, TopDownDataset, apply_overrides,
                        build_dataloader, build_dataset, build_loader, color_jitter, config_from_dict,
                        crop_to_image, denormalize_image, get_skeleton, preset_config)

SKEL = get_skeleton("lsp14")


def _dot_image(tmp_path, rng, h=240, w=200, name="im.png"):
    """Black image with a white 5x5 dot at each of 14 joints; returns path, keypoints."""
    img = np.zeros((h, w, 3), np.uint8)
    kps = np.stack([rng.uniform(40, w - 40, 14).round(), rng.uniform(30, h - 30, 14).round()], -1)
    for x, y in kps.astype(int):
        img[y - 2:y + 3, x - 2:x + 3] = 255
    path = tmp_path / name
    cv2.imwrite(str(path), img)
    return path, kps.astype(np.float32)


def _records(tmp_path, n=4, seed=0):
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        path, kps = _dot_image(tmp_path, rng, name=f"im{i}.png")
        lo, hi = kps.min(0), kps.max(0)
        box = np.array([lo[0] - 10, lo[1] - 10, hi[0] - lo[0] + 20, hi[1] - lo[1] + 20], np.float32)
        vis = np.ones(14, np.float32)
        vis[i % 14] = 0  # one unlabelled joint per person
        recs.append(PersonRecord(image_path=path, box=box, keypoints=kps, visibility=vis,
                                 image_id=i, instance_id=i, source=f"synthetic {i}"))
    return recs


STRONG = AugmentConfig(flip_prob=0.5, scale_factor=0.3, rotation_factor=40, rotation_prob=1.0,
                       half_body_prob=0.5, half_body_min_joints=8, shift_factor=0.1)


@pytest.mark.parametrize("codec_cls", [UDPHeatmap, MSRAHeatmap])
def test_labels_follow_augmentation(tmp_path, codec_cls):
    recs = _records(tmp_path)
    ds = TopDownDataset(recs, SKEL, input_size=(256, 192), codec=codec_cls((256, 192)), augment=STRONG,
                        seed=3, normalize=False)
    seen_flip = seen_rot = 0
    for epoch in range(6):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            s = ds[i]
            crop = s["image"].transpose(1, 2, 0)[..., 0].astype(np.float32)
            seen_flip += s["flipped"]
            seen_rot += s["rotation"] != 0
            for j in np.flatnonzero(s["target_weight"] > 0):
                x, y = s["keypoints"][j]
                if 3 <= x <= 188 and 3 <= y <= 252:
                    patch = crop[int(round(y)) - 1:int(round(y)) + 2, int(round(x)) - 1:int(round(x)) + 2]
                    assert patch.max() > 100, (epoch, i, j, s["flipped"], s["rotation"])
            # Flip swaps left/right: the unlabelled joint moves to its mirror partner.
            expected_unlabelled = i % 14
            if s["flipped"]:
                expected_unlabelled = SKEL.flip_index[expected_unlabelled]
            assert s["visibility"][expected_unlabelled] == 0
    assert seen_flip > 0 and seen_rot > 0


def test_sample_fields_and_inverse_mapping(tmp_path):
    recs = _records(tmp_path, n=2)
    ds = TopDownDataset(recs, SKEL, input_size=(256, 192))
    s = ds[0]
    assert s["image"].shape == (3, 256, 192) and s["image"].dtype == np.float32
    assert s["heatmaps"].shape == (14, 64, 48) and s["target_weight"].shape == (14,)
    assert s["rotation"] == 0 and not s["flipped"]
    assert abs(float(s["image"].mean())) < 3  # normalised
    back = crop_to_image(s["keypoints"], s["center"], s["scale"], (256, 192), s["rotation"])
    np.testing.assert_allclose(back, recs[0].keypoints, atol=1e-3)
    # The codec decodes its own target back onto the labels, in image pixels.
    dec, _ = ds.codec.decode(s["heatmaps"])
    dec_img = crop_to_image(dec, s["center"], s["scale"], (256, 192))
    ok = s["target_weight"] > 0
    assert np.abs(dec_img[ok] - recs[0].keypoints[ok]).max() < 0.05
    assert np.abs(denormalize_image(s["image"]).astype(int) - denormalize_image(
        torch.from_numpy(s["image"])).astype(int)).max() == 0


def test_seeded_augmentation_is_reproducible(tmp_path):
    recs = _records(tmp_path, n=2)
    a = TopDownDataset(recs, SKEL, augment=STRONG, seed=7)
    b = TopDownDataset(recs, SKEL, augment=STRONG, seed=7)
    first = a[1]["keypoints"]
    np.testing.assert_array_equal(first, b[1]["keypoints"])
    assert not np.array_equal(first, a[1]["keypoints"])  # the next pass differs by itself
    b.set_epoch(1)
    c = TopDownDataset(recs, SKEL, augment=STRONG, seed=7)
    c.set_epoch(1)
    np.testing.assert_array_equal(b[1]["keypoints"], c[1]["keypoints"])
    assert not np.array_equal(first, c[1]["keypoints"])


def test_half_body_zooms_in(tmp_path):
    rng = np.random.default_rng(0)
    path, _ = _dot_image(tmp_path, rng)
    kps = np.zeros((14, 2), np.float32)
    kps[:, 0] = np.linspace(60, 140, 14)
    kps[SKEL.lower_body_ids, 1] = np.linspace(150, 220, 6)  # legs low, upper body high
    kps[SKEL.upper_body_ids, 1] = np.linspace(20, 100, 8)
    rec = PersonRecord(image_path=path, box=np.array([50, 10, 100, 220], np.float32), keypoints=kps,
                       visibility=np.ones(14, np.float32), image_id=0, instance_id=0)
    only_half = AugmentConfig(flip_prob=0, scale_factor=0, rotation_factor=0, half_body_prob=1.0)
    plain = TopDownDataset([rec], SKEL)[0]
    ds = TopDownDataset([rec], SKEL, augment=only_half, seed=0)
    groups = set()
    for e in range(8):
        ds.set_epoch(e)
        s = ds[0]
        assert s["scale"][1] < plain["scale"][1]
        inside = set(np.flatnonzero(s["target_weight"] > 0))
        group = set(SKEL.upper_body_ids) if set(SKEL.upper_body_ids) <= inside else set(SKEL.lower_body_ids)
        assert group <= inside
        groups.add(min(group))
        np.testing.assert_allclose(s["center"], kps[sorted(group)].mean(0), atol=1e-4)
    assert len(groups) == 2  # both halves get picked


def test_joint_weights_and_validation(tmp_path):
    recs = _records(tmp_path, n=1)
    s = TopDownDataset(recs, SKEL, use_joint_weights=True)[0]
    np.testing.assert_allclose(s["target_weight"], (recs[0].visibility > 0) * SKEL.joint_weights_array())
    with pytest.raises(ValueError, match="synthetic 0: keypoints have shape"):
        TopDownDataset(recs, "coco17")
    bad = dataclasses.replace(recs[0], box=np.array([0, 0, 0, 5], np.float32), source="rec 9")
    with pytest.raises(ValueError, match="rec 9: box .* zero area"):
        TopDownDataset([bad], SKEL)
    with pytest.raises(ValueError, match="codec input_size"):
        TopDownDataset(recs, SKEL, input_size=(256, 256), codec=UDPHeatmap((256, 192)))


def test_color_jitter():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (32, 24, 3), dtype=np.uint8)
    out = color_jitter(img, AugmentConfig(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1), rng)
    assert out.shape == img.shape and out.dtype == np.uint8 and not np.array_equal(out, img)


def test_configs():
    assert AugmentConfig.mpii().scale_factor == 0.25 and AugmentConfig.mpii().rotation_factor == 30
    assert AugmentConfig().scale_factor == 0.35 and AugmentConfig().rotation_factor == 45
    with pytest.raises(ValueError, match="flip_prob"):
        AugmentConfig(flip_prob=1.5)
    cfg = DataConfig()
    cfg2 = apply_overrides(cfg, {"augment.rotation_factor": 30, "codec.kind": "msra",
                                 "input_size": [384, 288]})
    assert cfg2.augment.rotation_factor == 30 and cfg2.codec.kind == "msra"
    assert cfg2.input_size == (384, 288) and cfg.augment.rotation_factor == 45
    with pytest.raises(ValueError, match="did you mean 'rotation_factor'"):
        apply_overrides(cfg, {"augment.rotation_factr": 3})
    with pytest.raises(ValueError, match="unknown DataConfig"):
        apply_overrides(cfg, {"batchsize": 3})
    c = config_from_dict(DataConfig, {"kind": "lsp", "augment": {"flip_prob": 0.0},
                                      "codec": {"sigma": 3.0}})
    assert c.augment.flip_prob == 0 and c.codec.sigma == 3.0 and isinstance(c.codec, CodecConfig)


def _lsp_folder(tmp_path, n=6):
    rng = np.random.default_rng(0)
    joints = np.zeros((14, 3, n))
    (tmp_path / "images").mkdir()
    for i in range(n):
        path, kps = _dot_image(tmp_path / "images", rng, name=f"im{i + 1:05d}.jpg")
        joints[:, :2, i] = kps + 1
        joints[:, 2, i] = 1
    savemat(tmp_path / "joints.mat", {"joints": joints})
    return tmp_path


def test_dataloader_batches(tmp_path):
    root = _lsp_folder(tmp_path)
    ds = build_dataset(preset_config("lsp", root, "train"))
    assert len(ds) == 5  # 6 images, last ceil(0.6) = 1 is val
    loader = build_dataloader(ds, batch_size=2, train=True, num_workers=0)
    batch = next(iter(loader))
    assert batch["image"].shape == (2, 3, 256, 192) and batch["image"].dtype == torch.float32
    assert batch["heatmaps"].shape == (2, 14, 64, 48) and batch["center"].dtype == torch.float64
    assert len(loader) == 2  # drop_last for training
    val = build_dataloader(build_dataset(preset_config("lsp", root, "val")), batch_size=4, train=False,
                           num_workers=0)
    assert isinstance(val.sampler, torch.utils.data.SequentialSampler) and len(val) == 1
    cfg = preset_config("lsp", root, "train", batch_size=4, num_workers=0)
    loader = build_loader(cfg)
    assert loader.batch_size == 4 and loader.dataset.augment is not None and len(loader) == 1


def test_dataloader_two_workers(tmp_path):
    root = _lsp_folder(tmp_path)
    ds = build_dataset(preset_config("lsp", root, "train"))
    loader = build_dataloader(ds, batch_size=2, train=True, num_workers=2, persistent_workers=False)
    batches = list(loader)
    assert len(batches) == 2 and all(b["image"].shape[0] == 2 for b in batches)


def test_dataloader_uses_distributed_sampler(tmp_path):
    import torch.distributed as dist

    root = _lsp_folder(tmp_path)
    ds = build_dataset(preset_config("lsp", root, "train"))
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        loader = build_dataloader(ds, batch_size=2, num_workers=0)
        assert isinstance(loader.sampler, torch.utils.data.DistributedSampler)
    finally:
        dist.destroy_process_group()


def test_browse_cli_writes_png(tmp_path, capsys):
    from stnet.cli import main

    root = _lsp_folder(tmp_path)
    out = tmp_path / "out" / "b.png"
    assert main(["browse", "--dataset", "lsp", "--root", str(root), "-n", "3", "--cols", "2",
                 "--set", "codec.kind=msra", "-o", str(out)]) == 0
    img = cv2.imread(str(out))
    assert img is not None and img.shape[1] > 2 * 2 * 192
    assert "wrote" in capsys.readouterr().out
    assert main(["browse", "--dataset", "lsp", "--root", str(root), "--set", "augment.flip=1",
                 "-o", str(out)]) == 2
    assert "did you mean 'flip_prob'" in capsys.readouterr().err
