"""Run an `stnet export --decode` model with onnxruntime, numpy and OpenCV only (no stnet import).

    python examples/onnxruntime_plain.py model_decode.onnx photo.jpg X Y W H
The crop follows the conventions stored in the file's "stnet" metadata ("crop"): the box is grown
to the input's aspect ratio, padded by 1.25, warped with the UDP pixel mapping; RGB, /255, ImageNet mean/std.
"""
import json
import sys

import cv2
import numpy as np
import onnx
import onnxruntime as ort

path, image, box = sys.argv[1], sys.argv[2], [float(v) for v in sys.argv[3:7]]
meta = json.loads({p.key: p.value for p in onnx.load(path).metadata_props}["stnet"])
h, w = meta["input_size"]
crop_cfg = meta["crop"]
x, y, bw, bh = box
cx, cy = x + bw / 2, y + bh / 2
bw, bh = (bh * w / h, bh) if bw < bh * w / h else (bw, bw * h / w)  # aspect fix
sw, sh = bw * crop_cfg["bbox_padding"], bh * crop_cfg["bbox_padding"]
# UDP: pixel centres map to pixel centres, so the crop spans (w - 1) x (h - 1) pixel steps
mat = np.array([[(w - 1) / sw, 0, (w - 1) / 2 - cx * (w - 1) / sw], [0, (h - 1) / sh, (h - 1) / 2 - cy * (h - 1) / sh]])
img = cv2.cvtColor(cv2.imread(image), cv2.COLOR_BGR2RGB)
crop = cv2.warpAffine(img, mat, (w, h), flags=cv2.INTER_LINEAR).astype(np.float32) / 255
crop = (crop - np.array(crop_cfg["mean"], np.float32)) / np.array(crop_cfg["std"], np.float32)
sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
kp, scores = sess.run(["keypoints", "scores"], {"images": crop.transpose(2, 0, 1)[None].astype(np.float32)})
inv = cv2.invertAffineTransform(mat)
kp_img = kp[0] @ inv[:, :2].T + inv[:, 2]  # crop pixels -> image pixels
for name, (px, py), s in zip(meta["skeleton_def"]["keypoint_names"], kp_img, scores[0]):
    print(f"{name:16s} {px:8.1f} {py:8.1f}  {s:.3f}")
