"""`stnet predict`, `stnet export` and `stnet bench`."""
from __future__ import annotations

import argparse
import json
import math
import sys
import warnings
from pathlib import Path

from stnet.io import refuse_overwrite


def _size(text: str) -> tuple[int, int]:
    from stnet.models.cli import parse_size

    return parse_size(text)


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", default=None,
                   help="weights for a registered model name given as MODEL: a checkpoint (or bare state_dict), "
                        "run directory, weights pack (+ .json) or shipped weights name")
    p.add_argument("--skeleton", default=None, help="keypoint layout (default: from the checkpoint / model)")
    p.add_argument("--input-size", type=_size, default=None, metavar="HxW", help="crop size (default: the model's)")


def _estimator(spec: str, args: argparse.Namespace, **kw):
    from stnet.inference.estimator import PoseEstimator, UntrainedWeightsWarning

    if args.skeleton:
        kw["skeleton"] = args.skeleton
    if args.input_size:
        kw["input_size"] = args.input_size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UntrainedWeightsWarning)  # we say it ourselves, once, below
        est = PoseEstimator(spec, weights=args.weights, **kw)
    if est.untrained:
        print(f"stnet {args.command}: WARNING: {spec} runs UNTRAINED (randomly initialised) weights - the keypoints "
              "are meaningless. Pass a checkpoint (--model runs/<name>/best.pt) or --weights.", file=sys.stderr)
    return est


# ------------------------------------------------------------------------------------------ predict
def _check_device(device: str) -> None:
    """One line for a device torch cannot use, before a model is built."""
    import torch

    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ValueError(f"--device {device!r}: not a device (expected cpu, cuda, cuda:N or mps)") from None
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if dev.index is not None and dev.index >= n or n == 0:
            raise ValueError(f"--device {device}: this machine has {n} CUDA device(s)"
                             + (f" (cuda:0 .. cuda:{n - 1})" if n else "; use --device cpu"))


def _check_ann(path: str) -> None:
    """``--ann``: a COCO annotation json whose ``images`` are objects with ``id`` and ``file_name``
    (one line naming the entry, before any image is read)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--ann {p}: annotation file not found")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ValueError(f"--ann {p}: not valid JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(f"--ann {p}: expected a COCO annotation json (an object with an 'images' list), "
                         f"got {type(data).__name__ if not isinstance(data, dict) else 'no images list'}")
    for i, im in enumerate(data["images"]):
        if not isinstance(im, dict) or "id" not in im or "file_name" not in im:
            raise ValueError(f"--ann {p}: images[{i}] needs 'id' and 'file_name'")
        try:
            int(im["id"])
        except (TypeError, ValueError):
            raise ValueError(f"--ann {p}: images[{i}] 'id' {str(im['id'])[:40]!r} is not an integer") from None


def cmd_predict(args: argparse.Namespace) -> int:
    from stnet.apps.predict import classify_input, run_predict
    from stnet.detectors import build_detector, load_boxes_file

    classify_input(args.input)  # fail early on a missing input, before loading the model
    json_out = args.json_out or str(Path(args.output_dir) / "predictions.json")
    refuse_overwrite({"--json-out": json_out}, {"--ann": args.ann, "--boxes": args.boxes, "--model": args.model,
                                                 "--weights": args.weights, "--detector": args.detector})
    if args.resume and not json_out.lower().endswith(".jsonl"):  # before the model loads
        raise ValueError(f"--resume needs a JSON Lines --json-out (a path ending in .jsonl), got {json_out}")
    if not math.isfinite(args.det_score) or not math.isfinite(args.det_nms):
        raise ValueError(f"--det-score {args.det_score} / --det-nms {args.det_nms}: expected finite numbers")
    if not 0 <= args.pose_nms <= 1:  # NaN fails too
        raise ValueError(f"--pose-nms {args.pose_nms}: expected an OKS between 0 and 1 (1: off)")
    for opt, low in (("smooth_min_cutoff", "> 0"), ("smooth_beta", ">= 0"), ("smooth_d_cutoff", "> 0")):
        v = getattr(args, opt)  # checked before the model loads, not after the first frame
        if not math.isfinite(v) or v < 0 or (v == 0 and low == "> 0"):
            raise ValueError(f"--{opt.replace('_', '-')} {v}: expected a finite number {low}")
    _check_device(args.device)
    if args.ann and not args.boxes and args.format != "coco":
        raise ValueError("--ann is only used with --boxes (a COCO detection-results json) or --format coco")
    if args.ann:
        _check_ann(args.ann)
    boxes = load_boxes_file(args.boxes, args.ann, min_score=args.det_score, nms_iou=args.det_nms) \
        if args.boxes else None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        detector = build_detector(args.detector) if not boxes else None
    for w in caught:
        print(f"stnet predict: note: {w.message}", file=sys.stderr)
    if args.model is None:
        from stnet.constants import DEFAULT_MODEL

        args.model = DEFAULT_MODEL
    est = _estimator(args.model, args, flip_test=args.flip, device=args.device, backend=args.backend,
                     precision=args.precision, threads=args.threads, detector=detector, det_score=args.det_score,
                     det_nms=args.det_nms, max_batch=args.batch, refine_boxes=args.refine,
                     pose_nms=args.pose_nms)
    refuse_overwrite({"--json-out": json_out}, {"model file": str(est.source)})  # e.g. --model RUN_DIR
    prec = getattr(est.backend, "precision", None)
    print(f"stnet predict: {est.source} ({est.skeleton.name}, {est.input_size[0]}x{est.input_size[1]}, "
          f"{est.backend_name}{' ' + prec if prec else ''}), boxes: "
          f"{'--boxes ' + args.boxes if boxes else est.detector!r}", file=sys.stderr)
    out_dir = Path(args.output_dir)
    threshold = args.threshold if args.threshold is not None else (-1.0 if est.untrained else 0.3)
    s = run_predict(est, args.input, output_dir=out_dir, json_out=args.json_out,
                    boxes=boxes, threshold=threshold, render_images=not args.no_render, show=args.show,
                    track=not args.no_track, smooth=args.smooth, track_metric=args.track_metric,
                    max_frames=args.max_frames, flush_every=args.flush_every,
                    progress=None if not args.no_progress else False, print_fn=lambda m: print(m, file=sys.stderr),
                    fmt=args.format, ann=args.ann, detect_every=args.detect_every,
                    min_cutoff=args.smooth_min_cutoff, beta=args.smooth_beta, d_cutoff=args.smooth_d_cutoff,
                    resume=args.resume)
    unit = "frame" if s["kind"] in ("video", "webcam") else "image"
    if s["unused_boxes"]:
        u = s["unused_boxes"]
        print(f"stnet predict: {len(u)} --boxes entr{'y' if len(u) == 1 else 'ies'} name no file of {args.input}: "
              + ", ".join(u[:5]) + (" ..." if len(u) > 5 else ""), file=sys.stderr)
    if s["no_image_id"]:
        n = s["no_image_id"]
        print(f"stnet predict: {len(n)} image(s) have no image id in --ann and are not in the COCO results: "
              + ", ".join(n[:5]) + (" ..." if len(n) > 5 else ""), file=sys.stderr)
    line = (f"stnet predict: {s['inputs']} {unit}(s), {s['persons']} person(s)"
            + (f", {s['resumed']} already in {s['json']} (--resume)" if s["resumed"] else "")
            + (f", {len(s['skipped'])} skipped" if s["skipped"] else "")
            + (f", {s['missing_boxes']} image(s) not in --boxes (no persons)" if s["missing_boxes"] else "")
            + f"; json: {s['json']}" + (f"; overlays: {out_dir}" if s["outputs"] else ""))
    if s["interrupted"]:
        print(f"stnet predict: interrupted; saved the results of {s['inputs']} {unit}(s) to {s['json']}"
              + (f" and {len(s['outputs'])} overlay file(s) under {out_dir}" if s["outputs"] else ""), file=sys.stderr)
        return 130
    # The summary goes to stderr when the json itself is on stdout.
    print(line, file=sys.stderr if s["json"] == "-" else sys.stdout)
    if est.untrained:
        print("stnet predict: (untrained weights: the keypoints drawn are random)", file=sys.stderr)
    return 0 if s["inputs"] or not s["skipped"] else 1


# ------------------------------------------------------------------------------------------ export
def cmd_export(args: argparse.Namespace) -> int:
    from stnet.export.check import check_export
    from stnet.export.onnx import check_export_args
    from stnet.inference.estimator import EXPORT_FORMATS

    if args.format not in EXPORT_FORMATS:
        raise ValueError(f"unsupported export format {args.format!r} (one of {', '.join(EXPORT_FORMATS)})")
    check_export_args(Path(args.output) if args.output else None, args.opset)  # before loading the model
    if args.format == "openvino":
        from stnet.backends.openvino import openvino_available

        if not openvino_available():
            raise ImportError("stnet export --format openvino needs the openvino package: "
                              "pip install 'stnet[openvino]'")
    outs = {"--output": args.output, "--output (.bin)": Path(args.output).with_suffix(".bin")
            if args.output and args.format == "openvino" else None}
    refuse_overwrite(outs, {"model": args.model, "--weights": args.weights})
    est = _estimator(args.model, args)
    stem = args.model if est.model_name == args.model else Path(str(args.model).rstrip("/")).stem
    decode = args.decode or args.with_affine
    out = Path(args.output or f"{stem}{'_decode' if decode else ''}{EXPORT_FORMATS[args.format]}")
    outs = {"--output": out, "--output (.bin)": out.with_suffix(".bin") if args.format == "openvino" else None}
    refuse_overwrite(outs, {"model": args.model, "model file": str(est.source), "--weights": args.weights})
    path = est.export(out, format=args.format, opset=args.opset, decode=args.decode, with_affine=args.with_affine)
    assert est.network is not None  # export() refuses an exported file
    size_mb = sum(p.stat().st_size for p in {path, path.with_suffix(".bin")} if p.is_file()) / 1e6
    print(f"stnet export: wrote {path}{' + ' + path.with_suffix('.bin').name if args.format == 'openvino' else ''} "
          f"({size_mb:.1f} MB; inputs: images (B, 3, "
          f"{est.input_size[0]}, {est.input_size[1]})" + (", affine (B, 2, 3)" if args.with_affine else "")
          + "; outputs: " + ("keypoints (B, K, 2), scores (B, K)" if decode else "heatmaps (B, K, h, w)") + ")")
    if not args.no_check:
        runtime = "openvino" if args.format == "openvino" else "onnxruntime"
        try:
            diff = check_export(est.network, path, est.input_size, decode=decode, with_affine=args.with_affine,
                              unbiased=est.unbiased, blur_kernel_size=est.codec_config.blur_kernel_size,
                              runtime=runtime)
            print(f"stnet export: {runtime}{' (f32)' if runtime == 'openvino' else ''} vs PyTorch max abs diff "
                  f"{diff:.2e}")
        except ImportError:
            print(f"stnet export: {runtime} not installed; parity not checked")
    return 0


# ------------------------------------------------------------------------------------------ bench
#: Row names ``stnet bench --backends`` can time (bench.py's make_runners).
BENCH_BACKENDS = ("eager", "eager_folded", "eager_optimized", "onnxruntime", "onnxruntime_cuda", "cuda_eager",
                  "cuda_folded", "openvino_f32", "openvino_bf16", "estimator_torch", "estimator_openvino_f32",
                  "estimator_openvino_bf16")


def cmd_bench(args: argparse.Namespace) -> int:
    from stnet.apps.bench import format_table, run_benchmark, write_results

    unknown = [b for b in args.backends or () if b not in BENCH_BACKENDS]
    if unknown:  # an unknown name would time nothing and still exit 0
        raise ValueError(f"--backends {' '.join(unknown)}: unknown; one or more of {', '.join(BENCH_BACKENDS)}")
    result = run_benchmark(args.models, args.batches, args.size, rounds=args.rounds, warmup=args.warmup,
                           threads=args.threads, cuda=False if args.no_cuda else None,
                           print_fn=lambda m: print(m, file=sys.stderr), sizes=args.sizes,
                           openvino=False if args.no_openvino else None, backends=args.backends,
                           estimator_batches=tuple(args.estimator_batches),
                           command=" ".join(["stnet", *sys.argv[1:]]) if sys.argv[1:2] == ["bench"] else None)
    if args.out:
        j, m = write_results(result, args.out)
        print(f"stnet bench: wrote {j} and {m}", file=sys.stderr)
    print(json.dumps(result) if args.json else format_table(result))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    from stnet.detectors import DEFAULT_DET_NMS, DEFAULT_DET_SCORE, DEFAULT_POSE_NMS

    p = sub.add_parser("predict", help="pose estimation on an image, folder, video or webcam",
                       description="Estimate poses; writes overlays and a json of keypoints (see docs/inference.md).")
    p.add_argument("input", help="image file, folder of images, video file, or webcam index (0)")
    p.add_argument("--model", default=None,
                   help="shipped weights name, registered model name (untrained unless --weights), checkpoint "
                        "file, run directory, exported .onnx or OpenVINO IR .xml (default: the shipped weights, "
                        "stnet.constants.DEFAULT_MODEL)")
    _add_model_args(p)
    p.add_argument("--detector", default=None, metavar="whole|auto|blazepose|hog|DET.onnx",
                   help="person boxes when --boxes is not given (default: whole, as in the Python API): the "
                        "whole image (right for one person filling the photo; warns when BlazePose sees several "
                        "people); auto, the best detector installed (blazepose with the openvino extra, else "
                        "hog); blazepose, MediaPipe's BlazePose person detector, bundled (finds people whose face "
                        "shows; misses people seen from behind and small ones); hog, OpenCV's HOG people detector "
                        "(upright, unoccluded people over ~100 px only; OpenCV 4.x); or an exported ONNX "
                        "detector: RTMDet/YOLOX as rtmlib/mmdeploy export them, YOLOv8/YOLO11 as ultralytics "
                        "does (docs/inference.md)")
    p.add_argument("--refine", action="store_true",
                   help="run the pose a second time on the box around the first pass's keypoints (detector boxes "
                        "only; --boxes are used as given); off by default: it did not help the shipped model")
    p.add_argument("--boxes", default=None,
                   help="person boxes by image file name, from: a json {image file name: [[x, y, w, h(, score)], "
                        "...]}; a COCO detection-results json [{image_id, bbox, score}, ...] (with --ann for the "
                        "file names); or a COCO annotation json (images + annotations: its ground-truth person "
                        "boxes, as the ground-truth-box protocol takes them)")
    p.add_argument("--ann", default=None, help="COCO annotation json: image ids of --boxes detections and of "
                                               "--format coco results")
    p.add_argument("--det-score", "--box-score", dest="det_score", type=float, default=DEFAULT_DET_SCORE,
                   help=f"drop detector / --boxes boxes scoring below this (default {DEFAULT_DET_SCORE})")
    p.add_argument("--det-nms", type=float, default=DEFAULT_DET_NMS, metavar="IOU",
                   help=f"merge detector / --boxes boxes overlapping above this IoU (default {DEFAULT_DET_NMS}; "
                        "1: off)")
    p.add_argument("--pose-nms", type=float, default=DEFAULT_POSE_NMS, metavar="OKS",
                   help="of the persons on detector boxes (and a video's carried boxes), drop one whose keypoints "
                        f"match a higher-scoring one's above this OKS: one person seen through two boxes (default "
                        f"{DEFAULT_POSE_NMS}; 1: off; --boxes are kept as given)")
    p.add_argument("--format", default="stnet", choices=["stnet", "coco"],
                   help="json layout: stnet (header + images / frames, default) or coco (a keypoint-results list "
                        "that stnet score and pycocotools read; image ids from --ann)")
    p.add_argument("--batch", type=int, default=32, help="person crops per forward pass (default 32)")
    p.add_argument("--detect-every", type=int, default=1, metavar="N",
                   help="video: run the detector every N frames; between them the previous frame's persons "
                        "give the boxes (default 1)")
    p.add_argument("--output-dir", default="runs/predict", help="overlays and json go here (default runs/predict)")
    p.add_argument("--json-out", default=None,
                   help="results json (default OUTPUT_DIR/predictions.json; - prints it to stdout); a path "
                        "ending in .jsonl streams JSON Lines, a header line then one line per image as it is "
                        "done (for large folders: bounded memory, a killed run can --resume)")
    p.add_argument("--resume", action="store_true",
                   help="with a .jsonl --json-out that exists: skip the images already in it and append the rest "
                        "(without --resume an existing output is replaced)")
    p.add_argument("--threshold", type=float, default=None,
                   help="draw keypoints scoring above this (default 0.3; with untrained weights all are drawn)")
    p.add_argument("--flip", action="store_true", help="flip test (2x compute, a little more accurate)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--backend", default=None, choices=["torch", "onnxruntime", "openvino", "auto"],
                   help="torch, onnxruntime, openvino (pip install 'stnet[openvino]'), or auto: openvino when "
                        "installed, else the default (torch; onnxruntime for an .onnx model, openvino for an IR .xml)")
    p.add_argument("--precision", default="auto", choices=["auto", "f32", "bf16"],
                   help="openvino backend: f32, bf16, or auto (bf16 on CPUs with AVX512-BF16 or AMX; default)")
    p.add_argument("--threads", type=int, default=None, help="openvino backend: inference threads (default: torch's)")
    p.add_argument("--show", action="store_true", help="show overlays in a window (needs a GUI OpenCV build)")
    p.add_argument("--no-render", action="store_true", help="json only, no overlay images / video")
    p.add_argument("--no-track", action="store_true", help="video: do not track person ids")
    p.add_argument("--track-metric", default="iou", choices=["iou", "oks"])
    p.add_argument("--smooth", action="store_true", help="video: one-euro smoothing of tracked keypoints")
    p.add_argument("--smooth-min-cutoff", type=float, default=1.0, metavar="HZ",
                   help="one-euro min cut-off (lower: smoother when still; default 1.0)")
    p.add_argument("--smooth-beta", type=float, default=0.01, help="one-euro beta (higher: less lag; default 0.01)")
    p.add_argument("--smooth-d-cutoff", type=float, default=1.0, metavar="HZ",
                   help="one-euro derivative cut-off (default 1.0)")
    p.add_argument("--max-frames", type=int, default=None, help="video/webcam: stop after N frames")
    p.add_argument("--flush-every", type=int, default=20, metavar="N",
                   help="rewrite the json every N images / frames, and at the end (default 20; 0: only at the "
                        "end); .jsonl: sync it to disk every N lines")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_predict)

    e = sub.add_parser("export", help="export a model to ONNX or OpenVINO IR (optionally with decoding in the graph)",
                       description="Export to ONNX (or OpenVINO IR with --format openvino) with a dynamic batch and "
                                   "the model's metadata (skeleton, input size, normalisation, crop conventions). "
                                   "--decode adds argmax + DARK-style sub-pixel refinement (outputs keypoints, "
                                   "scores); --with-affine adds a per-crop 2x3 "
                                   "crop->image matrix input so keypoints come out in image pixels.")
    e.add_argument("model", help="registered model name, checkpoint file or run directory")
    _add_model_args(e)
    e.add_argument("--format", default="onnx", choices=["onnx", "openvino"],
                   help="onnx, or openvino: IR (.xml + .bin) with the same metadata in its rt_info")
    e.add_argument("--output", "-o", default=None,
                   help="output path (default <model>[_decode].onnx, or .xml for openvino)")
    e.add_argument("--decode", action="store_true", help="decode heatmaps to keypoints + scores inside the graph")
    e.add_argument("--with-affine", action="store_true", help="also map crop -> image pixels (implies --decode)")
    e.add_argument("--opset", type=int, default=17)
    e.add_argument("--no-check", action="store_true", help="skip the onnxruntime vs PyTorch parity check")
    e.set_defaults(func=cmd_export)

    b = sub.add_parser("bench", help="inference speed: eager vs onnxruntime vs openvino, stnet vs hrnet_w32",
                       description="Latency (batch 1) and throughput (batch 8/32), PyTorch eager / folded / "
                                   "optimised, onnxruntime and OpenVINO f32 / bf16 (when installed) on CPU (and "
                                   "GPU when present), interleaved rounds, ratios vs the torch optimised path and "
                                   "stnet vs hrnet, params / GFLOPs, rewrite diffs.")
    b.add_argument("--models", nargs="+", default=["stnet_1s", "hrnet_w32"])
    b.add_argument("--batches", nargs="+", type=int, default=[1, 8, 32])
    b.add_argument("--size", type=_size, default=(256, 192), metavar="HxW")
    b.add_argument("--sizes", type=_size, nargs="+", default=None, metavar="HxW",
                   help="several input sizes timed in the same interleaved rounds (overrides --size)")
    b.add_argument("--backends", nargs="+", default=None,
                   help="time only these (eager eager_folded eager_optimized onnxruntime openvino_f32 openvino_bf16 "
                        "estimator_torch estimator_openvino_f32 estimator_openvino_bf16)")
    b.add_argument("--no-openvino", action="store_true", help="skip the OpenVINO rows even when it is installed")
    b.add_argument("--estimator-batches", nargs="*", type=int, default=[1],
                   help="batch sizes of the PoseEstimator.heatmaps rows (torch vs openvino; none: no rows)")
    b.add_argument("--rounds", type=int, default=10)
    b.add_argument("--warmup", type=int, default=2)
    b.add_argument("--threads", type=int, default=2)
    b.add_argument("--no-cuda", action="store_true")
    b.add_argument("--out", default=None, help="also write OUT.json and OUT.md")
    b.add_argument("--json", action="store_true", help="print json instead of the table")
    b.set_defaults(func=cmd_bench)
