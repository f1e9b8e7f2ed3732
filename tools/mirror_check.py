"""How many of a PCK evaluation's misses are left/right mix-ups: reads the raw predictions that
``stnet eval`` writes (``predictions_raw.npz``) of an LSP-layout (lsp14) model.

    python tools/mirror_check.py RUN/eval/predictions_raw.npz

Prints PCK@0.2 (torso: right shoulder to left hip), the share of missed joints that lie within the
radius of the opposite side's label, the persons whose mirrored labels fit better (and those where
they halve the error), and the PCK a per-person mirror would give: a bound on what mirrored labels,
or the model's own left/right confusion, cost.
"""
from __future__ import annotations

import argparse

import numpy as np

from stnet.data import get_skeleton


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("npz")
    args = ap.parse_args()
    sk = get_skeleton("lsp14")
    d = np.load(args.npz, allow_pickle=False)
    missing = {"keypoints", "gt_keypoints", "visible"} - set(d.files)
    if missing:
        raise SystemExit(f"{args.npz}: not stnet eval's predictions_raw.npz (missing {sorted(missing)})")
    pred, gt, vis = d["keypoints"], d["gt_keypoints"], d["visible"]
    if gt.shape[1:] != (sk.num_keypoints, 2):
        raise SystemExit(f"{args.npz}: expected lsp14 keypoints (N, {sk.num_keypoints}, 2), got {gt.shape}")
    rs, lh = sk.index("right_shoulder"), sk.index("left_hip")
    torso = np.linalg.norm(gt[:, rs] - gt[:, lh], axis=-1)
    keep = vis[:, rs] & vis[:, lh] & (torso > 0)
    pred, gt, vis, torso = pred[keep], gt[keep], vis[keep], torso[keep]
    mirror = np.asarray(sk.flip_index)
    err = np.linalg.norm(pred - gt, axis=-1) / torso[:, None]
    err_m = np.linalg.norm(pred - gt[:, mirror], axis=-1) / torso[:, None]
    vis_m = vis & vis[:, mirror]
    sided = mirror != np.arange(len(mirror))
    miss = (err > 0.2) & vis
    near_other = miss & (err_m <= 0.2) & vis_m & sided[None]
    per = (err * vis).sum(1) / vis.sum(1)
    per_m = (err_m * vis_m).sum(1) / np.maximum(vis_m.sum(1), 1)
    best = np.where((per_m < per)[:, None], err_m, err)
    print(f"persons scored {len(pred)}; PCK@0.2 {100 * ((err <= 0.2) & vis).sum() / vis.sum():.1f}")
    print(f"missed joints {miss.sum()}, within the radius of the opposite side's label "
          f"{near_other.sum()} ({100 * near_other.sum() / max(miss.sum(), 1):.0f}%)")
    print(f"persons whose mirrored labels fit better {(per_m < per).sum()}, by half the error "
          f"{(per_m < 0.5 * per).sum()}")
    print(f"PCK@0.2 with a per-person mirror {100 * ((best <= 0.2) & vis).sum() / vis.sum():.1f}")


if __name__ == "__main__":
    main()
