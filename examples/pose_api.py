"""The stnet Python API on the bundled photo: run it with `python examples/pose_api.py [OUT_DIR]`.

Shows the colour convention (numpy arrays are BGR, as cv2.imread gives them), the results object
(arrays, access by keypoint name, boxes, overlay, COCO / json output), batches and the generator
form. Uses the shipped weights (LSP, 14 keypoints).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2

import stnet
from stnet import PoseEstimator

out_dir = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/example")
photo = Path(stnet.__file__).parent / "assets" / "demo.jpg"

est = PoseEstimator.from_pretrained("stnet_1s.lspet_128x96")   # detector: the whole image by default
image = cv2.imread(str(photo))                                  # BGR, the default for numpy arrays

res = est(image)                                                # Results: one per image
print(res)                                                      # Results(1 person(s), lsp14, image ...)
print("keypoints", res.keypoints.shape, "scores", res.scores.shape)
print("box xywh", res.boxes[0].round(1).tolist(), "xyxy", res.boxes_xyxy[0].round(1).tolist())
x, y, score = res[0]["left_wrist"]                              # by keypoint name
print(f"left wrist at ({x:.1f}, {y:.1f}), score {score:.2f}")

same = est(photo)                                               # a path gives the same keypoints
assert abs(same.keypoints - res.keypoints).max() < 1e-3

res.save(out_dir / "overlay.png")                               # or cv2.imwrite(..., res.plot())
(out_dir / "result.json").write_text(json.dumps(res.to_json(), allow_nan=False))
print("COCO result:", json.dumps(res.to_coco(image_id=1))[:80], "...")

batch = est([image, image[:, ::-1].copy()])                    # a list: the crops run as one batch
print("batch:", [len(r) for r in batch])
for r in est.stream(iter([image] * 3), chunk=2):                # generator form for long folders / videos
    print("streamed", r)
print(f"wrote {out_dir / 'overlay.png'} and {out_dir / 'result.json'}")
