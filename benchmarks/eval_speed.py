"""Scoring speed of the COCO val2017 detector-box protocol, on synthetic data of that size.

5,000 images, 6,352 persons with keypoints (+ 4,652 without, ignored by COCOeval as in val2017),
104,125 detector boxes (the size of the standard AP_H_56 person detection file) with predicted
keypoints. Timed stages, each once on the full set:

  rescore            box score x mean keypoint score > 0.2 (vectorised)
  oks_nms            OKS-NMS at 0.9 per image (vectorised), and the loop reference for comparison
  results_json       official results list + json.dump
  cocoeval_*         pycocotools loadRes / evaluate / accumulate / summarize
  evaluator_total    CocoEvaluator.evaluate() end to end (all of the above, as a user runs it)

and, for the "scoring must not take longer than the forward passes" requirement, the forward time
of stnet_1s on this CPU for the same 104,125 crops with flip test (2 passes each), extrapolated
from a measured batch.

    python benchmarks/eval_speed.py [--boxes 104125] [--images 5000] [--skip-reference] [--skip-forward]

Writes benchmarks/results/eval_speed.json and eval_speed.md.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from stnet.evaluation import CocoEvaluator, load_coco_gt, make_results, oks_nms, rescore
from stnet.evaluation.sigmas import resolve_sigmas

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # test-only helpers (tests/helpers)
from helpers.nms_reference import oks_nms_reference  # noqa: E402
from helpers.synthetic import synthetic_coco_gt, synthetic_predictions  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def forward_estimate(num_crops: int, batch: int = 8, reps: int = 3) -> dict:
    import torch

    from stnet.models import create_model

    torch.manual_seed(0)
    model = create_model("stnet_1s", input_size=(256, 192)).eval()
    x = torch.randn(batch, 3, 256, 192)
    with torch.inference_mode():
        model(x)  # warm-up
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - t)
    per_img = float(np.median(times)) / batch
    return {"model": "stnet_1s", "input": "256x192", "batch": batch, "threads": torch.get_num_threads(),
            "s_per_crop": per_img, "crops": 2 * num_crops, "estimated_s": per_img * 2 * num_crops,
            "note": "eager PyTorch on this CPU, flip test = 2 forward passes per box"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=5000)
    ap.add_argument("--persons", type=int, default=6352)
    ap.add_argument("--persons-without-keypoints", type=int, default=4652)
    ap.add_argument("--images-with-persons", type=int, default=2693)
    ap.add_argument("--boxes", type=int, default=104125)
    ap.add_argument("--skip-reference", action="store_true", help="do not time the loop reference NMS")
    ap.add_argument("--skip-forward", action="store_true", help="do not measure the model forward pass")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    print(f"building synthetic GT ({args.images} images, {args.persons} persons) and {args.boxes} boxes ...")
    gt, t_gt = timed(lambda: synthetic_coco_gt(args.images, args.persons,
                                               num_persons_without_keypoints=args.persons_without_keypoints,
                                               images_with_persons=args.images_with_persons, seed=0))
    pred, t_pred = timed(lambda: synthetic_predictions(gt, args.boxes, seed=0))
    sigmas, _ = resolve_sigmas("coco17")
    stages: dict[str, float] = {}

    scores, stages["rescore"] = timed(lambda: rescore(pred["box_scores"], pred["keypoint_scores"], 0.2))
    keep, stages["oks_nms"] = timed(lambda: oks_nms(pred["keypoints"], scores, pred["areas"], sigmas,
                                                    pred["image_ids"], 0.9))
    if not args.skip_reference:
        ref, stages["oks_nms_reference_loop"] = timed(lambda: oks_nms_reference(
            pred["keypoints"], scores, pred["areas"], sigmas, pred["image_ids"], 0.9))
        assert np.array_equal(ref, keep), "vectorised OKS-NMS differs from the reference"
    print(f"rescore {stages['rescore']:.3f}s, OKS-NMS {stages['oks_nms']:.2f}s -> {keep.size} kept")

    def write_results():
        res = make_results(pred["image_ids"][keep], pred["keypoints"][keep], pred["keypoint_scores"][keep],
                           scores[keep])
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "r.json").write_text(json.dumps(res))
        return res

    results, stages["results_json"] = timed(write_results)

    from pycocotools.cocoeval import COCOeval

    coco_gt, stages["load_gt"] = timed(lambda: load_coco_gt(gt))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt, stages["cocoeval_loadRes"] = timed(lambda: coco_gt.loadRes(results))
        ev = COCOeval(coco_gt, coco_dt, "keypoints")
        ev.params.kpt_oks_sigmas = sigmas
        _, stages["cocoeval_evaluate"] = timed(ev.evaluate)
        _, stages["cocoeval_accumulate"] = timed(ev.accumulate)
        _, stages["cocoeval_summarize"] = timed(ev.summarize)
    print(f"COCOeval: evaluate {stages['cocoeval_evaluate']:.1f}s, accumulate {stages['cocoeval_accumulate']:.1f}s"
          f" -> AP {ev.stats[0]:.3f}")

    def full():
        e = CocoEvaluator(gt, box_source="synthetic detector boxes (benchmark)", print_fn=None)
        for s in range(0, args.boxes, 4096):  # batches as a data loader would deliver them
            sl = slice(s, s + 4096)
            e.process(pred["keypoints"][sl], keypoint_scores=pred["keypoint_scores"][sl],
                      image_ids=pred["image_ids"][sl], box_scores=pred["box_scores"][sl], areas=pred["areas"][sl])
        return e.evaluate(), e.report

    (metrics, report), stages["evaluator_total"] = timed(full)
    assert abs(metrics["AP"] - ev.stats[0]) < 1e-12
    print(f"CocoEvaluator.evaluate end to end: {stages['evaluator_total']:.1f}s")

    forward = None
    if not args.skip_forward:
        try:
            forward = forward_estimate(args.boxes)
            print(f"stnet_1s forward (CPU): {forward['s_per_crop'] * 1e3:.1f} ms/crop -> "
                  f"{forward['estimated_s']:.0f}s for {forward['crops']} crops")
        except Exception as e:  # models area unavailable: the scoring numbers stand alone
            print(f"forward estimate skipped: {e}")

    out = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(), "numpy": np.__version__},
        "data": {"images": args.images, "images_with_persons": args.images_with_persons,
                 "persons_with_keypoints": args.persons,
                 "persons_without_keypoints": args.persons_without_keypoints,
                 "boxes": args.boxes, "results_after_nms": int(keep.size),
                 "build_gt_s": round(t_gt, 3), "build_predictions_s": round(t_pred, 3)},
        "seconds": {k: round(v, 3) for k, v in stages.items()},
        "scoring_seconds": round(stages["rescore"] + stages["oks_nms"] + stages["results_json"]
                                 + stages["cocoeval_loadRes"] + stages["cocoeval_evaluate"]
                                 + stages["cocoeval_accumulate"] + stages["cocoeval_summarize"], 3),
        "AP": metrics["AP"], "AR": metrics["AR"],
        "forward_estimate": forward,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "eval_speed.json").write_text(json.dumps(out, indent=2) + "\n")
    (args.out / "eval_speed.md").write_text(render_md(out))
    print(f"wrote {args.out / 'eval_speed.json'} and eval_speed.md")


def render_md(r: dict) -> str:
    d, s = r["data"], r["seconds"]
    lines = [
        "# COCO val2017-sized scoring speed (synthetic data)",
        "",
        f"{d['images']} images ({d['images_with_persons']} with persons), {d['persons_with_keypoints']} persons "
        f"with keypoints + {d['persons_without_keypoints']} without, {d['boxes']} detector boxes -> "
        f"{d['results_after_nms']} results after OKS-NMS. Machine: {r['machine']['cpu_count']} CPUs, "
        f"{r['machine']['platform']}, numpy {r['machine']['numpy']}. Single run, wall-clock seconds.",
        "",
        "| stage | seconds |",
        "|---|---:|",
    ]
    for k, v in s.items():
        lines.append(f"| {k} | {v:.3f} |")
    lines += ["", f"Scoring (rescore + OKS-NMS + results json + COCOeval) = **{r['scoring_seconds']:.1f} s**; "
              f"`CocoEvaluator.evaluate()` end to end (validation, rescoring, NMS, COCOeval; no output_dir, so "
              "no json file written) = "
              f"**{s['evaluator_total']:.1f} s**. Synthetic AP {r['AP']:.3f}, AR {r['AR']:.3f} "
              "(meaningless as accuracy; the data only has the right size and structure)."]
    if "oks_nms_reference_loop" in s:
        lines.append(f"Vectorised OKS-NMS is {s['oks_nms_reference_loop'] / max(s['oks_nms'], 1e-9):.0f}x faster "
                     "than the loop reference, with identical kept sets.")
    f = r.get("forward_estimate")
    if f:
        lines += ["", f"For comparison, the forward passes this scoring follows: {f['model']} at {f['input']}, "
                  f"eager PyTorch on this CPU ({f['threads']} threads, batch {f['batch']}): "
                  f"{f['s_per_crop'] * 1e3:.1f} ms/crop x {f['crops']} crops (flip test) ~ "
                  f"**{f['estimated_s'] / 60:.0f} min** (extrapolated from a measured batch). "
                  f"Scoring is {100 * r['scoring_seconds'] / f['estimated_s']:.1f}% of that. On a GPU the "
                  "forward passes are far faster; not measured here (no GPU in this run), but a GPU doing "
                  f"the {f['crops']} crops in under {r['scoring_seconds']:.0f} s would need "
                  f"{f['crops'] / max(r['scoring_seconds'], 1e-9):,.0f} crops/s."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
