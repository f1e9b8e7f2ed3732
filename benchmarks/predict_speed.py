"""End-to-end `stnet predict` speed on a video, split into detection / pose / drawing.

A short video is made from the bundled photo (``src/stnet/assets/demo.jpg``, a slow pan so boxes
move); `stnet predict`'s own loop (`stnet.apps.predict.run_predict`: decode, boxes, crops, network,
decoding, tracking, drawing, video encoding, json) runs over it with the shipped weights:

  given boxes   one fixed box per frame (what --boxes costs: no detection)
  whole         --detector whole
  hog           --detector hog (OpenCV 4.x)
  onnx          --detector DET.onnx: a yolov8-layout ONNX graph with constant outputs, so this is the
                plug-in's cost (letterbox, onnxruntime call, decoding, NMS) without a real network;
                a real YOLO / RTMDet adds its own forward time.

Frames per second are wall time over frames; detection and drawing are timed inside the run
(the detector call, the overlay), pose is the estimator call minus detection, and "other" is the
rest (video decode / encode, tracking, json). The CPU is named (stnet.cpuinfo).

    python benchmarks/predict_speed.py [--frames 30] [--threads 2]

Writes benchmarks/results/predict_speed.json and predict_speed.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

import stnet
import stnet.apps.predict as predict
from stnet.cpuinfo import cpu_info
from stnet.detectors import hog_available
from stnet import PoseEstimator

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # test-only helpers (tests/helpers)
from helpers.onnx_detectors import constant_onnx  # noqa: E402

OUT = Path(__file__).resolve().parent / "results"


def make_video(path: Path, frames: int) -> Path:
    img = cv2.imread(str(Path(stnet.__file__).parent / "assets" / "demo.jpg"))
    h, w = img.shape[:2]
    ch, cw = h * 3 // 4, w * 3 // 4
    wr = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (cw, ch))  # type: ignore[attr-defined]
    for i in range(frames):
        dx = int((w - cw) * i / max(1, frames - 1))
        wr.write(np.ascontiguousarray(img[(h - ch) // 2:(h - ch) // 2 + ch, dx:dx + cw]))
    wr.release()
    return path


class Timed:
    """Wraps a callable and sums its wall time."""

    def __init__(self, fn) -> None:
        self.fn, self.seconds, self.calls = fn, 0.0, 0

    def __call__(self, *a, **k):
        t = time.perf_counter()
        try:
            return self.fn(*a, **k)
        finally:
            self.seconds += time.perf_counter() - t
            self.calls += 1


def run(est: PoseEstimator, video: Path, out_dir: Path) -> dict:
    det = Timed(est.detector)
    e = est.with_options()
    e.detector = det
    call = Timed(e._run)  # the estimator call's body: boxes, crops, network, decoding
    e._run = call  # type: ignore[method-assign]
    draw = Timed(predict.render)
    predict.render = draw  # type: ignore[assignment]  # time the overlay inside predict's own loop
    try:
        t = time.perf_counter()
        s = predict.run_predict(e, str(video), output_dir=out_dir, progress=False, print_fn=lambda m: None)
        total = time.perf_counter() - t
    finally:
        predict.render = draw.fn
    n = s["inputs"]
    return {"frames": n, "fps": round(n / total, 2), "total_s": round(total, 3),
            "detection_ms": round(1e3 * det.seconds / n, 1),
            "pose_ms": round(1e3 * (call.seconds - det.seconds) / n, 1),
            "drawing_ms": round(1e3 * draw.seconds / n, 1),
            "other_ms": round(1e3 * (total - call.seconds - draw.seconds) / n, 1), "persons": s["persons"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=30)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    est = PoseEstimator.from_pretrained("stnet_1s.lspet_128x96")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        video = make_video(tmp_path / "pan.avi", args.frames)
        pred = np.zeros((1, 5, 1), np.float32)
        pred[0, :, 0] = [240, 320, 300, 560, 0.9]
        onnx = constant_onnx(tmp_path / "det.onnx", {"output0": pred})
        detectors = {"given boxes": lambda img: [[60, 40, 240, 400, 1.0]], "whole": "whole", "onnx": str(onnx)}
        if hog_available():
            detectors["hog"] = "hog"
        for name, spec in detectors.items():
            rows[name] = run(est.with_options(detector=spec), video, tmp_path / name.replace(" ", "_"))
            print(name, rows[name], file=sys.stderr)
    load = os.getloadavg()[0]
    result = {"cpu": cpu_info().describe(), "load_average_1min_at_end": round(load, 1),
              "torch": torch.__version__, "python": platform.python_version(),
              "threads": args.threads, "model": est.source,
              "video": f"{args.frames} frames, 480x360 (a pan across demo.jpg)",
              "command": f"python benchmarks/predict_speed.py --frames {args.frames} --threads {args.threads}",
              "rows": rows}
    OUT.mkdir(exist_ok=True)
    (OUT / "predict_speed.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [f"# `stnet predict` end to end on a video ({result['video']})", "",
             f"CPU: {result['cpu']}; torch {result['torch']}; {args.threads} threads; model {est.source}.",
             f"Command: `{result['command']}`",
             f"1-minute load average at the end: {load:.1f} on {os.cpu_count()} cores (other jobs share the CPU "
             "when it exceeds the core count: the times are then upper bounds).", "",
             "| boxes | fps | detection ms/frame | pose ms/frame | drawing ms/frame | other ms/frame |",
             "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['fps']} | {r['detection_ms']} | {r['pose_ms']} | {r['drawing_ms']} | "
                     f"{r['other_ms']} |")
    (OUT / "predict_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
