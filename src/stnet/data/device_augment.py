"""Device side of the training pipeline: crop warp, flip, colour jitter, heatmap targets and
normalisation, batched on the training device (``runtime.augment_on: device``).

A lent H200 trained at 25% utilisation with the CPU pipeline: 4 DataLoader workers per run spent
their time warping, encoding and collating float crops. With :attr:`TopDownDataset.defer_warp`
the workers only read, decode and draw (:mod:`stnet.data.deferred`); :class:`DeviceAugment`
turns such a batch into exactly what the CPU pipeline yields: ``image`` (normalised float32),
``heatmaps``, ``target_weight``, ``keypoints`` and ``visibility``.

Equivalence with the CPU pipeline (tests/test_device_augment.py), on the same draws:
keypoints, target weights and heatmaps agree to float32 rounding (the geometry is computed in
float64 on the host, only the Gaussians are drawn on the device); pixels agree to about a grey
level, not exactly: ``grid_sample`` interpolates at exact coordinates where ``cv2.warpAffine``
rounds them to 1/32 pixel and rounds its output to uint8.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from stnet.codecs import UDPHeatmap
from stnet.codecs.build import HeatmapCodec

from .dataset import IMAGENET_MEAN, IMAGENET_STD, TopDownDataset
from .deferred import collate_deferred

__all__ = ["DeviceAugment", "render_gaussians", "use_device_augment", "collate_deferred"]

_LUMA = (0.299, 0.587, 0.114)


def use_device_augment(augment_on: str, device: torch.device) -> bool:
    """``runtime.augment_on`` resolved: ``auto`` is the device pipeline on CUDA, the workers
    elsewhere (a CPU trains on the cores the workers would use: batching buys nothing there)."""
    if augment_on == "auto":
        return torch.device(device).type == "cuda"
    if augment_on not in ("device", "workers"):
        raise ValueError(f"runtime.augment_on must be 'auto', 'workers' or 'device', got {augment_on!r}")
    return augment_on == "device"


def render_gaussians(mu: torch.Tensor, valid: torch.Tensor, heatmap_size: Sequence[int], sigma: float
                     ) -> torch.Tensor:
    """Unnormalised Gaussians ``(N, K, h, w)`` peaking at ``mu`` ``(N, K, 2)`` heatmap pixels; rows
    with ``valid == False`` are zero. The device twin of ``stnet.codecs._common.gaussian_heatmaps``."""
    h, w = int(heatmap_size[0]), int(heatmap_size[1])
    m = torch.where(valid[..., None], mu, torch.zeros_like(mu))
    inv = -0.5 / (sigma * sigma)
    xs = torch.arange(w, dtype=mu.dtype, device=mu.device)
    ys = torch.arange(h, dtype=mu.dtype, device=mu.device)
    gx = torch.exp(inv * (xs - m[..., 0:1]) ** 2)
    gy = torch.exp(inv * (ys - m[..., 1:2]) ** 2) * valid[..., None].to(mu.dtype)
    return gy[..., :, None] * gx[..., None, :]


def _window_on_map(mu: np.ndarray, heatmap_size: Sequence[int], sigma: float) -> np.ndarray:
    from stnet.codecs._common import window_on_map

    return window_on_map(mu, (int(heatmap_size[0]), int(heatmap_size[1])), sigma)


def _rgb_to_hsv(img: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """OpenCV's 8-bit HSV on float ``(B, 3, H, W)`` in 0..255: hue in 0..180, S and V in 0..255."""
    r, g, b = img.unbind(1)
    v, _ = img.max(1)
    mn, _ = img.min(1)
    d = v - mn
    s = torch.where(v > 0, 255.0 * d / v.clamp_min(1e-6), torch.zeros_like(v))
    dd = d.clamp_min(1e-6)
    hue = torch.where(v == r, 60.0 * (g - b) / dd,
                      torch.where(v == g, 120.0 + 60.0 * (b - r) / dd, 240.0 + 60.0 * (r - g) / dd))
    hue = torch.where(d > 0, hue % 360.0, torch.zeros_like(hue))
    return hue / 2.0, s, v


def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    hh = (h * 2.0 % 360.0) / 60.0
    c = v * s / 255.0
    x = c * (1 - (hh % 2 - 1).abs())
    zero = torch.zeros_like(c)
    sector = hh.floor().clamp(0, 5)
    table = [(c, x, zero), (x, c, zero), (zero, c, x), (zero, x, c), (x, zero, c), (c, zero, x)]
    rgb = [sum(torch.where(sector == i, t[ch], zero) for i, t in enumerate(table)) for ch in range(3)]
    m = v - c
    return torch.stack([ch + m for ch in rgb], 1)  # type: ignore[operator]


def _color_jitter(img: torch.Tensor, color: torch.Tensor) -> torch.Tensor:
    """``stnet.data.augment.apply_color_jitter`` on a float batch, each row of ``color`` one draw."""
    apply = color[:, 0] > 0
    if not bool(apply.any()):
        return img
    luma = torch.tensor(_LUMA, dtype=img.dtype, device=img.device).view(1, 3, 1, 1)

    def per(v: torch.Tensor) -> torch.Tensor:
        return v.to(img.dtype).view(-1, 1, 1, 1)

    out = img
    for k in range(3):
        op = color[:, 1 + k]
        gray = (out * luma).sum(1, keepdim=True)
        b = per(torch.where(op == 0, color[:, 4], torch.ones_like(op)))
        c = per(torch.where(op == 1, color[:, 5], torch.ones_like(op)))
        s = per(torch.where(op == 2, color[:, 6], torch.ones_like(op)))
        mean = gray.mean((1, 2, 3), keepdim=True)
        out = out * b
        out = out * c + mean * (1 - c)
        out = out * s + gray * (1 - s)
    out = out.clamp(0, 255).floor()  # the CPU pipeline's astype(uint8)
    hue = color[:, 7]
    has_hue = apply & ~torch.isnan(hue)
    if bool(has_hue.any()):
        h, s_, v = _rgb_to_hsv(out)
        h = (h.round() + per(torch.nan_to_num(hue))[:, 0]) % 180.0
        shifted = _hsv_to_rgb(h, s_.round(), v).round().clamp(0, 255)
        out = torch.where(per(has_hue.to(img.dtype)) > 0, shifted, out)
    return torch.where(per(apply.to(img.dtype)) > 0, out, img)


class DeviceAugment:
    """Turns a batch of deferred items (:func:`~stnet.data.deferred.collate_deferred`) into the
    CPU pipeline's batch, on ``device``.

    Args:
        input_size: crop ``(H, W)``.
        codec: the dataset's heatmap codec (UDP or MSRA; its ``unbiased`` flag must match the
            warp convention the items were drawn with, as :class:`TopDownDataset` ensures).
        flip_index: the skeleton's left/right permutation.
        normalize: normalised float32 images (True) or uint8 ``(B, 3, H, W)``.
        joint_weights: multiply ``target_weight`` by these ``(K,)`` weights.
    """

    def __init__(self, input_size: Sequence[int], codec: HeatmapCodec, flip_index: Sequence[int], *,
                 normalize: bool = True, joint_weights: np.ndarray | None = None) -> None:
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.codec = codec
        self.flip_index = torch.as_tensor(list(flip_index), dtype=torch.int64)
        self.normalize = normalize
        self.joint_weights = None if joint_weights is None else np.asarray(joint_weights, np.float32)

    @classmethod
    def from_dataset(cls, ds: TopDownDataset) -> "DeviceAugment":
        return cls(ds.input_size, ds.codec, ds.skeleton.flip_index, normalize=ds.normalize,
                   joint_weights=ds.skeleton.joint_weights_array() if ds.use_joint_weights else None)

    def targets(self, batch: dict[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
        """Keypoints and visibility in crop pixels (float64 on the host: B x K points), target
        weights by the codec's rule, and the heatmaps drawn on ``device``."""
        warp = batch["warp"].to(torch.float64).numpy()
        kp = batch["keypoints_image"].to(torch.float64).numpy()
        vis = batch["visibility_image"].numpy()
        kps = np.einsum("nij,nkj->nki", warp[..., :2], kp) + warp[:, None, :, 2]
        flipped = batch["flipped"].numpy().astype(bool)
        idx = self.flip_index.numpy()
        kps[flipped] = kps[flipped][:, idx]
        vis = vis.copy()
        vis[flipped] = vis[flipped][:, idx]
        codec = self.codec
        hm_size, sigma = codec.heatmap_size, codec.sigma
        if isinstance(codec, UDPHeatmap):
            mu = kps * codec._ratio
            valid = (vis > 0) & _window_on_map(mu, hm_size, sigma)
        else:
            finite = np.isfinite(kps).all(-1)
            mu = np.trunc(np.where(finite[..., None], kps, 0.0) / codec._stride + 0.5)
            valid = (vis > 0) & finite & _window_on_map(kps / codec._stride, hm_size, sigma)
        weights = valid.astype(np.float32)
        if self.joint_weights is not None:
            weights = weights * self.joint_weights
        mu_t = torch.from_numpy(mu).to(device, torch.float32, non_blocking=True)
        valid_t = torch.from_numpy(valid).to(device, non_blocking=True)
        return {"heatmaps": render_gaussians(mu_t, valid_t, hm_size, sigma),
                "target_weight": torch.from_numpy(weights).to(device, non_blocking=True),
                "keypoints": torch.from_numpy(kps.astype(np.float32)),
                "visibility": torch.from_numpy(vis.astype(np.float32))}

    def warp(self, batch: dict[str, Any], device: torch.device) -> torch.Tensor:
        """The crops ``(B, 3, H, W)`` float in 0..255 (bilinear, zero border, like cv2)."""
        canvas = batch["image"]
        n, hc, wc, _ = canvas.shape
        h, w = self.input_size
        # crop pixels -> patch pixels, framed in grid_sample's normalised coordinates
        # (align_corners=True: -1 and 1 are the centres of the first and last pixels).
        m = batch["patch_warp"].to(torch.float64)
        full = torch.zeros(n, 3, 3, dtype=torch.float64)
        full[:, :2] = m
        full[:, 2, 2] = 1
        inv = torch.linalg.inv(full)
        to_pix = torch.tensor([[(w - 1) / 2, 0, (w - 1) / 2], [0, (h - 1) / 2, (h - 1) / 2], [0, 0, 1]],
                              dtype=torch.float64)
        to_norm = torch.tensor([[2 / (wc - 1), 0, -1], [0, 2 / (hc - 1), -1], [0, 0, 1]], dtype=torch.float64)
        theta = (to_norm @ inv @ to_pix)[:, :2].to(torch.float32)
        src = canvas.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
        grid = F.affine_grid(theta.to(device, non_blocking=True), [n, 3, h, w], align_corners=True)
        return F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=True)

    def __call__(self, batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
        device = torch.device(device)
        img = self.warp(batch, device)
        img = _color_jitter(img, batch["color"].to(device, torch.float32, non_blocking=True))
        if self.normalize:
            mean = torch.as_tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
            std = torch.as_tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
            img = (img - mean) / std
        else:
            img = img.round().clamp(0, 255).to(torch.uint8)
        out = {k: v for k, v in batch.items() if k not in ("image", "patch_warp", "patch_size", "color")}
        out.update(self.targets(batch, device))
        out["image"] = img
        return out
