"""The top-down dataset: record -> (augmented) crop -> heatmap targets."""
from __future__ import annotations

import os
import warnings
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from stnet import constants
from stnet.codecs import UDPHeatmap
from stnet.codecs.build import HeatmapCodec

from .augment import CropParams, color_jitter, sample_crop_params
from .config import AugmentConfig
from .records import ImageReadError, PersonRecord, check_record, read_image
from .skeletons import Skeleton, get_skeleton
from .transforms import (affine_points, box_to_center_scale, fix_aspect_ratio, flip_image,
                         flip_keypoints, get_warp_matrix, warp_image)

__all__ = ["TopDownDataset", "IMAGENET_MEAN", "IMAGENET_STD", "normalize_image", "normalize_batch",
           "denormalize_image", "align_multiscale_heatmaps"]

# On the 0..255 scale of uint8 crops (stnet.constants holds the 0..1 values).
IMAGENET_MEAN = np.array(constants.IMAGENET_MEAN, dtype=np.float32) * 255.0
IMAGENET_STD = np.array(constants.IMAGENET_STD, dtype=np.float32) * 255.0


_SCALE = (1.0 / IMAGENET_STD).astype(np.float32)
_OFFSET = (-IMAGENET_MEAN / IMAGENET_STD).astype(np.float32)


def normalize_image(crop: np.ndarray) -> np.ndarray:
    """RGB uint8 ``(H, W, 3)`` -> float32 ``(3, H, W)`` normalised with the ImageNet mean/std."""
    # Channel by channel straight into the planar output: ~6x faster than broadcasting and then
    # transposing, and this runs once per training sample.
    out = np.empty((3, *crop.shape[:2]), dtype=np.float32)
    for c in range(3):
        np.multiply(crop[..., c], _SCALE[c], out=out[c], dtype=np.float32)
        out[c] += _OFFSET[c]
    return out


def normalize_batch(images: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, 3, H, W)`` batches (``normalize=False`` datasets) -> normalised float32, on the
    tensor's device. Moving uint8 from the workers and normalising on the GPU quarters the bytes
    that cross process boundaries and the host-to-device copy."""
    if images.dtype != torch.uint8:
        raise TypeError(f"normalize_batch expects uint8 images, got {images.dtype}")
    mean = torch.as_tensor(IMAGENET_MEAN, device=images.device).view(1, 3, 1, 1)
    std = torch.as_tensor(IMAGENET_STD, device=images.device).view(1, 3, 1, 1)
    return (images.float() - mean) / std


def denormalize_image(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """Inverse of :func:`normalize_image`: ``(3, H, W)`` float -> RGB uint8 ``(H, W, 3)``.
    uint8 input (``normalize=False`` datasets) is only transposed."""
    x = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    x = x.transpose(1, 2, 0)
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x)
    return np.clip(x * IMAGENET_STD + IMAGENET_MEAN, 0, 255).astype(np.uint8)


class TopDownDataset(Dataset):
    """One item per person: the crop the model sees and its training targets.

    Args:
        records: person records from a reader (``load_coco_records``, ``load_mpii_records``,
            ``load_lsp_records``) or built by hand.
        skeleton: the keypoint layout (name or :class:`Skeleton`).
        input_size: crop ``(H, W)``.
        codec: heatmap codec; default ``UDPHeatmap(input_size)``. Its ``unbiased`` flag also
            selects the crop warp convention, so targets and crops always agree.
        augment: training augmentation; None (or ``enabled=False``) for a fixed crop.
        bbox_padding: box -> region padding (1.25).
        normalize: return the image normalised float32 (True) or as uint8 ``(3, H, W)``.
        use_joint_weights: multiply ``target_weight`` by the skeleton's joint weights.
        skip_bad_images: on an unreadable image, warn, count and return another sample instead
            of raising (default: when augmenting, i.e. training). More than ``max_bad_images`` in
            one process raises, since then something is wrong with the data, not a few files.
        placeholder_bad_images: evaluation: an unreadable image gives an item with ``valid=False``
            (a blank crop) instead of an error; the evaluation loop leaves such items out, counts
            them and enforces ``max_bad_images`` (``stnet.engine.evaluate``). Every item carries
            ``valid``.
        test_scales: multi-scale testing (no augmentation only): ``image`` becomes ``(S, 3, H, W)``,
            the crops of regions scaled by each factor around the same centre; ``center`` and
            ``scale`` stay those of the unscaled region, which ``align_multiscale_heatmaps`` maps
            every scale's heatmaps onto. None or ``(1.0,)``: a single crop.
        seed: fixed seed: the ``n``-th draw of sample ``i`` (after ``set_epoch(e)``) is then
            augmented identically in every run with the same sampler seed and worker count; None
            draws from a per-worker generator seeded by PyTorch.

    Each item is a dict (numpy arrays; the default collate turns them into tensors)::

        image            (3, H, W) float32 normalised (uint8 if normalize=False)
        heatmaps         (K, h, w) float32 targets
        target_weight    (K,) float32
        keypoints        (K, 2) float32 target keypoints in crop pixels (after augmentation)
        visibility       (K,) float32 (after the flip's left/right swap)
        center, scale    (2,) float64 the region that was cropped (image pixels), for the inverse
        rotation         float32 degrees; flipped: bool
        keypoints_image  (K, 2), visibility_image (K,): the record's labels in image pixels
        box (4,), score, image_id, instance_id, index, image_path, valid (bool)
    """

    def __init__(self, records: Sequence[PersonRecord], skeleton: str | Skeleton, *,
                 input_size: Sequence[int] = (256, 192), codec: HeatmapCodec | None = None,
                 augment: AugmentConfig | None = None, bbox_padding: float = 1.25,
                 normalize: bool = True, use_joint_weights: bool = False,
                 skip_bad_images: bool | None = None, max_bad_images: int = 50,
                 placeholder_bad_images: bool = False,
                 seed: int | None = None, test_scales: Sequence[float] | None = None) -> None:
        self.records = list(records)
        self.skeleton = get_skeleton(skeleton)
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.codec = codec if codec is not None else UDPHeatmap(self.input_size)
        if tuple(self.codec.input_size) != self.input_size:
            raise ValueError(f"codec input_size {self.codec.input_size} != dataset input_size "
                             f"{self.input_size}")
        self.augment = augment if augment is not None and augment.enabled else None
        self.bbox_padding = float(bbox_padding)
        self.normalize = normalize
        self.use_joint_weights = use_joint_weights
        self.skip_bad_images = self.augment is not None if skip_bad_images is None else skip_bad_images
        self.max_bad_images = int(max_bad_images)
        self.placeholder_bad_images = bool(placeholder_bad_images)
        self.seed = seed
        self.test_scales = tuple(float(v) for v in test_scales) if test_scales else None
        if self.test_scales and self.augment is not None:
            raise ValueError("TopDownDataset: test_scales is for evaluation; it cannot be combined with augmentation")
        if self.test_scales and min(self.test_scales) <= 0:
            raise ValueError(f"TopDownDataset: test_scales must be positive, got {self.test_scales}")
        # Set by the trainer for the device pipeline (stnet.data.device_augment): items then hold
        # the decoded pixels and the draws, and the warp and targets are made on the device.
        self.defer_warp = False
        self.epoch = 0
        self.num_bad_images = 0  # per process: each DataLoader worker counts its own
        self._rng: np.random.Generator | None = None
        self._rng_key: tuple[int, int] | None = None
        self._draws: np.ndarray | None = None
        k = self.skeleton.num_keypoints
        for rec in self.records:
            check_record(rec, k)

    @property
    def unbiased(self) -> bool:
        return bool(self.codec.unbiased)

    @property
    def aspect_ratio(self) -> float:
        return self.input_size[1] / self.input_size[0]

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Only matters with a fixed ``seed``: restarts the per-sample draws for ``epoch``."""
        self.epoch = int(epoch)
        self._draws = None

    def rng_for(self, index: int) -> np.random.Generator:
        """Generator for one draw of sample ``index``."""
        if self.seed is not None:
            # Seeded: a function of (seed, epoch, index, how often this process has served the
            # index). The counter makes every pass differ even when set_epoch cannot reach
            # persistent DataLoader workers, and is deterministic for a seeded sampler and a
            # fixed number of workers (batches go to workers round-robin).
            if self._draws is None or len(self._draws) != len(self.records):
                self._draws = np.zeros(len(self.records), dtype=np.int64)
            n = int(self._draws[index])
            self._draws[index] += 1
            return np.random.default_rng([self.seed, self.epoch, index, n])
        key = (os.getpid(), torch.initial_seed())
        if self._rng is None or self._rng_key != key:
            # torch seeds every DataLoader worker differently (and anew each epoch unless
            # workers persist); deriving from it avoids identical augmentation across workers.
            self._rng = np.random.default_rng(key[1] % (2 ** 63))
            self._rng_key = key
        return self._rng

    def region(self, rec: PersonRecord) -> tuple[np.ndarray, np.ndarray]:
        """Un-augmented crop centre and size ``(w, h)`` for a record."""
        if rec.center is not None and rec.scale is not None:
            return (np.asarray(rec.center, np.float64),
                    fix_aspect_ratio(np.asarray(rec.scale, np.float64), self.aspect_ratio))
        return box_to_center_scale(rec.box, self.aspect_ratio, self.bbox_padding, where=rec.source)

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Any]:
        if isinstance(index, tuple):
            # (epoch, index) from EpochTaggedSampler: the epoch reaches persistent workers this way.
            epoch, index = int(index[0]), int(index[1])
            if epoch != self.epoch:
                self.set_epoch(epoch)
        rng = self.rng_for(index)
        tried = 0
        while True:
            try:
                return self.load(index, rng)
            except ImageReadError as e:
                if self.placeholder_bad_images and not self.skip_bad_images:
                    self.num_bad_images += 1
                    return self.load(index, rng, image=_BLANK)
                if not self.skip_bad_images:
                    raise
                self.num_bad_images += 1
                tried += 1
                if self.num_bad_images > self.max_bad_images or tried > 10:
                    raise RuntimeError(
                        f"{self.num_bad_images} unreadable images in this process (max_bad_images="
                        f"{self.max_bad_images}); last: {e}") from e
                warnings.warn(f"{e}; sample skipped ({self.num_bad_images} unreadable image(s) so far "
                              "in this process)", RuntimeWarning, stacklevel=2)
                # Another random sample, never the same one again.
                n = len(self)
                index = int((index + 1 + rng.integers(n - 1)) % n) if n > 1 else index

    def read(self, rec: PersonRecord) -> np.ndarray:
        """The RGB image ``rec`` lives in (a subclass may serve it from elsewhere, e.g. a crop cache)."""
        return read_image(rec.image_path)

    def _to_input(self, crop: np.ndarray) -> np.ndarray:
        return normalize_image(crop) if self.normalize else np.ascontiguousarray(crop.transpose(2, 0, 1))

    def load(self, index: int, rng: np.random.Generator | None = None, *,
             image: np.ndarray | None = None) -> dict[str, Any]:
        """Item ``index`` without the skip-on-bad-image logic (errors propagate); ``image`` replaces
        the record's image (the blank placeholder of an unreadable one: ``valid`` is then False)."""
        rec = self.records[index]
        valid = image is None
        image = self.read(rec) if image is None else image
        center, scale = self.region(rec)
        params = CropParams(center=center, scale=scale)
        if self.augment is not None:
            params = sample_crop_params(center, scale, rec.keypoints, rec.visibility, self.skeleton,
                                        self.augment, self.aspect_ratio,
                                        rng if rng is not None else self.rng_for(index))
        if self.defer_warp:  # the device pipeline warps and encodes; draw the jitter as below
            from .deferred import color_row, deferred_item

            color = color_row(self.augment, rng if rng is not None else self.rng_for(index))
            return deferred_item(self.input_size, self.unbiased, rec, image, params, color, index, valid)
        mat = get_warp_matrix(params.center, params.scale, params.rotation, self.input_size,
                              unbiased=self.unbiased)
        crop = warp_image(image, mat, self.input_size)
        kps = affine_points(rec.keypoints, mat).astype(np.float32)
        vis = rec.visibility.astype(np.float32)
        if params.flip:
            crop = flip_image(crop)
            kps, vis = flip_keypoints(kps, vis, self.input_size[1], self.skeleton.flip_index)  # type: ignore[assignment]
        if self.augment is not None and self.augment.color_jitter_prob > 0:
            r = rng if rng is not None else self.rng_for(index)
            if r.random() < self.augment.color_jitter_prob:
                crop = color_jitter(crop, self.augment, r)
        heatmaps, weights = self.codec.encode(kps, vis)
        if self.use_joint_weights:
            weights = weights * self.skeleton.joint_weights_array()
        img = self._to_input(crop)
        if self.test_scales and self.test_scales != (1.0,):
            img = np.stack([img if f == 1.0 else self._to_input(warp_image(
                image, get_warp_matrix(params.center, params.scale * f, params.rotation, self.input_size,
                                       unbiased=self.unbiased), self.input_size)) for f in self.test_scales])
        return {
            "image": img,
            "heatmaps": heatmaps,
            "target_weight": weights.astype(np.float32),
            "keypoints": kps.astype(np.float32),
            "visibility": vis.astype(np.float32),
            # float64 so that mapping predictions back stays exact for large images.
            "center": params.center.astype(np.float64),
            "scale": params.scale.astype(np.float64),
            "rotation": np.float32(params.rotation),
            "flipped": bool(params.flip),
            "keypoints_image": rec.keypoints.astype(np.float32),
            "visibility_image": rec.visibility.astype(np.float32),
            "box": rec.box.astype(np.float32),
            "score": np.float32(rec.score),
            "image_id": rec.image_id,
            "instance_id": int(rec.instance_id),
            "index": int(index),
            "image_path": str(rec.image_path),
            "valid": valid,
        }


_BLANK = np.zeros((1, 1, 3), dtype=np.uint8)


def align_multiscale_heatmaps(heatmaps: torch.Tensor, scales: Sequence[float]) -> torch.Tensor:
    """Average multi-scale heatmaps ``(B, S, K, h, w)`` in the frame of the unscaled crop.

    The crop of scale ``f`` covers a region ``f`` times larger around the same centre, so with
    the UDP (and, to within half a pixel, the classic) convention its heatmap pixel
    ``uc + (u - uc) / f`` sees what the unscaled crop's pixel ``u`` sees (``uc`` the map centre).
    Each map is resampled there (bilinear) and the ``S`` maps are averaged: ``(B, K, h, w)``.
    """
    b, n, k, h, w = heatmaps.shape
    if n != len(scales):
        raise ValueError(f"{n} heatmap scales for {len(scales)} test_scales")
    out = torch.zeros(b, k, h, w, dtype=heatmaps.dtype, device=heatmaps.device)
    for i, f in enumerate(scales):
        hm = heatmaps[:, i]
        if f != 1.0:
            theta = torch.tensor([[1.0 / f, 0.0, 0.0], [0.0, 1.0 / f, 0.0]], dtype=hm.dtype,
                                 device=hm.device).expand(b, 2, 3)
            grid = torch.nn.functional.affine_grid(theta, [b, k, h, w], align_corners=True)
            hm = torch.nn.functional.grid_sample(hm, grid, mode="bilinear", padding_mode="zeros",
                                                 align_corners=True)
        out += hm
    return out / n
