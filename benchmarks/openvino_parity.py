"""Accuracy parity of the OpenVINO backend (f32, bf16) against PyTorch fp32, on real crops.

The shipped model (default ``stnet_1s.lspet_128x96``) runs on the LSP-Extended val split (the
project's LSP reader, ``stnet.data.build.preset_config("lsp", split="val")``: 900 persons, 654
with a usable torso) through ``PoseEstimator(..., backend=B)`` for each backend B (the heatmaps
``PoseEstimator.heatmaps`` returns, i.e. the backend object the estimator calls), fed through the
evaluation path of ``stnet eval`` (``stnet.engine.evaluate.evaluate``: flip test, codec decoding,
crop -> image mapping) and scored by its ``PCKEvaluator`` (PCK@0.2 by torso). Reported per
backend: PCK@0.2 (and its change against torch fp32, in points), and the keypoints' distance to
torch fp32's in image pixels (max, mean, 99th percentile, share over 1 px) and in heatmap pixels.

    python benchmarks/openvino_parity.py [--model stnet_1s.lspet_128x96] [--threads 2] [--limit N]

Writes benchmarks/results/openvino_parity.json and openvino_parity.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from stnet.cpuinfo import cpu_info
from stnet.data.build import build_dataloader, build_dataset, preset_config
from stnet.data.transforms import box_to_center_scale
from stnet.engine.config import EvalConfig
from stnet.engine.evaluate import evaluate
from stnet.evaluation import PCKEvaluator
from stnet import PoseEstimator
from stnet.io import write_text

RESULTS = Path(__file__).resolve().parent / "results"
BACKENDS = (("torch_fp32", "torch", None), ("openvino_f32", "openvino", "f32"), ("openvino_bf16", "openvino", "bf16"))


class HeatmapModule(nn.Module):
    """``evaluate`` runs an nn.Module on image tensors: this one hands them to an estimator's
    backend and returns its heatmaps, so the rest of the evaluation path is the stock one."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.fn(x.detach().float().cpu().numpy())))


class Recording:
    """The evaluator, with the keypoints it is fed kept (loader order) for the parity figures."""

    def __init__(self, inner: PCKEvaluator) -> None:
        self.inner, self.keypoints = inner, []

    def reset(self) -> None:
        self.keypoints = []
        self.inner.reset()

    def process(self, keypoints: Any, *args: Any, **kwargs: Any) -> None:
        self.keypoints.append(np.asarray(keypoints, np.float64))
        self.inner.process(keypoints, *args, **kwargs)

    def evaluate(self) -> dict[str, float]:
        return self.inner.evaluate()


def _sig(v: float, digits: int = 4) -> float:
    """``digits`` significant digits (a 2e-5 px difference must not print as 0)."""
    return float(f"{float(v):.{digits}g}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="stnet_1s.lspet_128x96", help="shipped weights name (or checkpoint)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--limit", type=int, default=None, help="first N val persons only (quick check)")
    ap.add_argument("--out", default=str(RESULTS / "openvino_parity"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    ests = {}
    for key, backend, precision in BACKENDS:
        kw = {"precision": precision, "threads": args.threads} if backend == "openvino" else {}
        ests[key] = PoseEstimator(args.model, backend=backend, **kw)
    ref = ests["torch_fp32"]
    ev = EvalConfig()
    dc = preset_config("lsp", split="val", input_size=ref.input_size, codec=ref.codec_config)
    ds = build_dataset(dc, train=False)
    if args.limit:
        ds.records = ds.records[: args.limit]
    loader = build_dataloader(ds, batch_size=args.batch, train=False, num_workers=args.workers,
                              persistent_workers=False)

    results: dict[str, Any] = {}
    kps: dict[str, np.ndarray] = {}
    for key, est in ests.items():
        rec = Recording(PCKEvaluator(joint_names=ds.skeleton.keypoint_names, threshold=ev.pck_threshold,
                                     normalize=ev.pck_normalize, print_fn=None))
        t = time.perf_counter()
        metrics = evaluate(HeatmapModule(est.with_options(flip_test=False).heatmaps), loader, rec,
                           device=torch.device("cpu"), flip=ev.flip_test)
        kps[key] = np.concatenate(rec.keypoints)
        pck = f"PCK@{ev.pck_threshold:g}"
        results[key] = {"backend": est.backend_name, "precision": getattr(est.backend, "precision", "fp32"),
                        pck: round(float(metrics[pck]), 3), "AUC": round(float(metrics.get("AUC", float("nan"))), 3),
                        "EPE_px": round(float(metrics.get("EPE", float("nan"))), 3),
                        "eval_pass_s": round(time.perf_counter() - t, 1)}
        print(f"{key}: {pck} {results[key][pck]:.2f}", file=sys.stderr)

    pck = f"PCK@{ev.pck_threshold:g}"
    stride = ds.codec.input_size[1] / ds.codec.heatmap_size[1]
    # image px -> heatmap px: a crop of W px covers region_w image px (box grown to the crop aspect, padded)
    h_in, w_in = ds.input_size
    region_w = np.array([(r.scale if r.scale is not None else
                          box_to_center_scale(r.box, w_in / h_in, dc.bbox_padding)[1])[0]
                         for r in ds.records[: len(kps["torch_fp32"])]])
    for key in ests:
        d = np.linalg.norm(kps[key] - kps["torch_fp32"], axis=-1)  # (N, K) image px
        r = results[key]
        r[f"{pck}_delta_points"] = round(r[pck] - results["torch_fp32"][pck], 3)
        r["kp_diff_px"] = {"max": _sig(d.max()), "mean": _sig(d.mean()), "p99": _sig(np.percentile(d, 99)),
                           "share_over_1px": _sig((d > 1).mean())}
        if np.isfinite(region_w).all():
            hm = d / (region_w[:, None] / ds.input_size[1] * stride)
            r["kp_diff_heatmap_px"] = {"max": _sig(hm.max()), "mean": _sig(hm.mean())}

    cpu = cpu_info()
    import openvino

    out = {"model": args.model, "split": "LSP-Extended val (stnet.data.build.preset_config('lsp', split='val'))",
           "persons": len(kps["torch_fp32"]), "input_size": list(ref.input_size), "flip_test": ev.flip_test,
           "threads": args.threads, "cpu": cpu.describe(), "cpu_model": cpu.model,
           "torch": torch.__version__, "openvino": openvino.__version__,
           "command": " ".join(["python", "benchmarks/openvino_parity.py", *sys.argv[1:]]),
           "reference": "torch_fp32 (PoseEstimator backend='torch': BatchNorm folded, channels-last, fp32)",
           "median_box_height_px": round(float(np.median([r.box[3] for r in ds.records[: len(region_w)]])), 1),
           "median_heatmap_px_in_image_px": round(float(np.median(region_w / ds.input_size[1] * stride)), 2),
           "results": results}
    lines = [f"# OpenVINO parity: {args.model} on LSP-Extended val ({out['persons']} persons, "
             f"{ref.input_size[0]}x{ref.input_size[1]}, flip test)", "",
             f"CPU: {out['cpu']}; torch {out['torch']}, openvino {out['openvino']}, {args.threads} threads", "",
             f"Command: `{out['command']}`", "",
             f"| backend | precision | {pck} | change (points) | kp diff vs torch fp32: max px | mean px | "
             "p99 px | share > 1 px |", "|---|---|---|---|---|---|---|---|"]
    for key, r in results.items():
        k = r["kp_diff_px"]
        lines.append(f"| {key} | {r['precision']} | {r[pck]:.2f} | {r[f'{pck}_delta_points']:+.2f} | {k['max']:.3g} | "
                     f"{k['mean']:.3g} | {k['p99']:.3g} | {100 * k['share_over_1px']:.2f}% |")
    lines += ["", f"Keypoints in original-image pixels (median person box height {out['median_box_height_px']:.0f} px; "
                  f"one heatmap pixel is ~{out['median_heatmap_px_in_image_px']:.1f} image px); each backend's "
                  "keypoints against torch fp32's for the same person, after flip test and DARK decoding. "
                  f"PCK by {ev.pck_normalize}, the `stnet eval` protocol (PCKEvaluator), "
                  "keypoints through `stnet.engine.evaluate.evaluate` with each estimator's backend."]
    write_text(Path(args.out).with_suffix(".json"), json.dumps(out, indent=2) + "\n")
    write_text(Path(args.out).with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
