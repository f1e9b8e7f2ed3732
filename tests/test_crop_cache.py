"""Crop cache (`stnet cache`): round trip to the original images, same network input as the
image-folder dataset, safe loading, and training from it through the CLI."""
from __future__ import annotations

import numpy as np
import pytest

from helpers.synthetic import make_synthetic_coco
from stnet.cli import main as stnet_main
from stnet.data.build import build_dataset, build_skeleton, load_records
from stnet.data.config import AugmentConfig, DataConfig
from stnet.data.crop_cache import build_crop_cache, load_cache_records
from stnet.data.transforms import affine_points


@pytest.fixture(scope="module")
def syn(tmp_path_factory):
    root = tmp_path_factory.mktemp("syn")
    make_synthetic_coco(root, num_images=6, image_size=(120, 100))
    return root


def _dc(syn, **kw) -> DataConfig:
    return DataConfig(kind="coco", ann_file=str(syn / "annotations.json"), image_dir=str(syn / "images"),
                      input_size=(64, 48), **kw)


@pytest.fixture(scope="module")
def cache(syn, tmp_path_factory):
    dc = _dc(syn)
    recs = load_records(dc, build_skeleton(dc))
    out = tmp_path_factory.mktemp("cache") / "crops.npz"
    summary = build_crop_cache({"train": recs[:4], "val": recs[4:]}, build_skeleton(dc), out,
                               input_size=(64, 48), progress=False)
    assert summary["persons"] == {"train": 4, "val": 2} and summary["crop_size"] == [96, 72]
    return out, recs


def test_cached_keypoints_map_back_to_the_image(cache):
    out, recs = cache
    skel = build_skeleton(DataConfig())
    cached = load_cache_records(out, skel, "all")
    with np.load(out, allow_pickle=False) as z:
        to_image = z["to_image"]
    for rec, c in zip(recs, cached):
        back = affine_points(c.keypoints, to_image[c.extra["cache_row"]])
        np.testing.assert_allclose(back, rec.keypoints, atol=1e-3)
    assert [c.image_id for c in cached] == [r.image_id for r in recs]  # int ids stay ints
    assert len(load_cache_records(out, skel, "val")) == 2


def test_cache_dataset_gives_the_same_network_input(syn, cache):
    """Without augmentation a cached person yields the crop and targets of the image folder
    (up to JPEG and resampling error): the region travels into crop pixels exactly."""
    out, _ = cache
    plain = build_dataset(_dc(syn, split="train"), train=False)
    cached = build_dataset(DataConfig(kind="cache", ann_file=str(out), split="all", input_size=(64, 48)),
                           train=False)
    for i in range(4):
        a, b = plain[i], cached[i]
        np.testing.assert_allclose(b["keypoints"], a["keypoints"], atol=1e-3)
        np.testing.assert_array_equal(b["target_weight"], a["target_weight"])
        # the synthetic images are pixel noise, which JPEG and resampling do not keep: compare 4x4 means
        pool = [x["image"].reshape(3, 16, 4, 12, 4).mean((2, 4)) for x in (a, b)]
        assert np.abs(pool[0] - pool[1]).mean() < 0.06  # ImageNet-normalised units
    # augmentation works on cached crops as on images
    aug = build_dataset(DataConfig(kind="cache", ann_file=str(out), split="train", input_size=(64, 48),
                                   augment=AugmentConfig(rotation_factor=30.0), seed=0), train=True)
    assert aug[0]["image"].shape == (3, 64, 48)


def test_not_a_cache_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.npz"
    np.savez(bad, a=np.zeros(3))
    with pytest.raises(ValueError, match="not an stnet crop cache"):
        load_cache_records(bad, build_skeleton(DataConfig()))
    with pytest.raises(FileNotFoundError, match="stnet cache"):
        load_cache_records(tmp_path / "missing.npz", build_skeleton(DataConfig()))
    # a pickled object array is refused, never unpickled
    evil = tmp_path / "evil.npz"
    np.savez(evil, meta=np.array([object()], dtype=object), jpeg=np.zeros(1, np.uint8))
    with pytest.raises(ValueError, match="not a readable stnet crop cache"):
        load_cache_records(evil, build_skeleton(DataConfig()))


def test_cli_cache_then_train_from_it(syn, tmp_path):
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(f"""\
model: {{name: stnet_1s, overrides: {{width: 8}}}}
input_size: [64, 64]
data_root: {syn}
train: {{kind: coco, ann_file: annotations.json, image_dir: images}}
val: {{kind: coco, ann_file: annotations.json, image_dir: images, split: val}}
schedule: {{epochs: 1}}
runtime: {{batch_size: 2, workers: 0, tensorboard: false, output_dir: {tmp_path / 'run'}}}
""")
    cache = tmp_path / "c.npz"
    assert stnet_main(["cache", str(recipe), "-o", str(cache), "--quality", "90"]) == 0
    # as on a GPU host that carries only the .npz: the recipe's image folders do not exist there
    elsewhere = tmp_path / "no_images_here"
    elsewhere.mkdir()
    assert stnet_main(["train", str(recipe), "--set", f"data_root={elsewhere}", "--set", "train.kind=cache",
                       "--set", f"train.ann_file={cache}", "--set", "val.kind=cache",
                       "--set", f"val.ann_file={cache}"]) == 0
    assert (tmp_path / "run" / "best.pt").is_file()
