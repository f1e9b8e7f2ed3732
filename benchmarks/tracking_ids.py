"""Track ids on a clip with known identities: 5 real people pasted on a real background (a
coco_mini photo, blurred) and moved 3 px per frame, the top row right and the bottom row left (no
crossings), 45 frames; the right-hand person of the top row is hidden by the background for frames
20-23 (a short miss). The people are the first 5 LSP-Extended validation persons who stand upright
with all 14 joints labelled (head above hips above ankles, taller than 1.5x their width and 150 px):
a rule on the human labels, not on what any detector finds; each is cut out around its joints
(1.3x their height) and scaled to 230 px tall. ``stnet predict``'s own loop (``run_predict``:
detector, pose, tracker) runs on it with the default model, with detection on every frame and every
5th frame (``--detect-every 5``: the frames between get the previous frame's keypoint boxes). Each
predicted person is matched to the pasted crop holding its box centre and at least half its box
(the blurred background photo has people of its own: their boxes count as persons off every
identity); reported per run: distinct track ids per identity (the goal: at most one for a person
that stays in view), the frames each identity was found on (at most 45, 41 for the hidden one), and
persons matching no identity.

    python benchmarks/tracking_ids.py [--data ../shared/data] [--detector auto] [--threads 2]
                                      [--min-score 0.5] [--grids 2 3] [--width 0.6] [--model NAME]

``--min-score`` / ``--grids`` / ``--width`` set BlazePose's score floor, tilings and box width
(``--detector auto`` / ``blazepose``).

Writes benchmarks/results/tracking_ids.json and tracking_ids.md; names the CPU (stnet.cpuinfo).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

from stnet.apps.predict import run_predict
from stnet.constants import DEFAULT_MODEL
from stnet.cpuinfo import cpu_info
from stnet.data.build import default_data_root
from stnet.data.lsp import load_lsp_joints, lsp_split_indices
from stnet.detectors import BlazePoseDetector
from stnet import PoseEstimator

OUT = Path(__file__).resolve().parent / "results"
FRAMES, SIZE = 45, (540, 960)


HIDDEN, HIDE_FRAMES = 2, range(20, 24)


def upright_people(kps: np.ndarray, vis: np.ndarray, indices) -> list[int]:
    """Indices whose 14 joints are all labelled and who stand upright and tall (see the docstring)."""
    out = []
    for i in indices:
        k = kps[i]
        if vis[i].sum() < 14:
            continue
        head, hip, ankle = k[12:14, 1].mean(), k[2:4, 1].mean(), k[[0, 5], 1].mean()
        w, h = k.max(0) - k.min(0)
        if head < hip < ankle and h > 1.5 * w and h > 150:
            out.append(int(i))
    return out


def make_clip(data: Path, path: Path) -> list[list[tuple[int, int, int, int] | None]]:
    """Write the clip to ``path`` (MJPG avi); returns per frame the ``(x, y, w, h)`` of each
    identity, None while it is hidden."""
    kps, vis = load_lsp_joints(data / "lspet" / "joints.mat")
    n_img = len(list((data / "lspet" / "images").glob("im*.jpg")))
    crops = []
    for i in upright_people(kps, vis, lsp_split_indices(min(len(kps), n_img), "val"))[:5]:
        im = cv2.imread(str(data / "lspet" / "images" / f"im{i + 1:05d}.jpg"))
        lo, hi = kps[i].min(0), kps[i].max(0)
        c, h = (lo + hi) / 2, (hi - lo)[1] * 1.3
        w = max((hi - lo)[0] * 1.6, 0.55 * h)
        x0, y0 = int(max(0, c[0] - w / 2)), int(max(0, c[1] - h / 2))
        x1, y1 = int(min(im.shape[1], c[0] + w / 2)), int(min(im.shape[0], c[1] + h / 2))
        s = 230 / (y1 - y0)
        crops.append(cv2.resize(im[y0:y1, x0:x1], None, fx=s, fy=s, interpolation=cv2.INTER_AREA))
    coco = sorted((data / "coco_mini" / "train2017").glob("*.jpg"))[0]
    bg = cv2.GaussianBlur(cv2.resize(cv2.imread(str(coco)), SIZE[::-1]), (0, 0), 8)
    start = [(40, 30, 3), (420, 30, 3), (800 - 135, 30, 3), (230 + 135, 290, -3), (610 + 135, 290, -3)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 15, SIZE[::-1])  # type: ignore[attr-defined]
    truth: list[list[tuple[int, int, int, int] | None]] = []
    for f in range(FRAMES):
        frame = bg.copy()
        boxes: list[tuple[int, int, int, int] | None] = []
        for k, ((x0, y0, v), c) in enumerate(zip(start, crops)):
            x = x0 + v * f
            h, w = c.shape[:2]
            if k == HIDDEN and f in HIDE_FRAMES:
                boxes.append(None)
                continue
            frame[y0:y0 + h, x:x + w] = c
            boxes.append((x, y0, w, h))
        writer.write(frame)
        truth.append(boxes)
    writer.release()
    return truth


def overlap(box: tuple, crop: tuple) -> float:
    """The fraction of ``box``'s area (xywh) inside ``crop`` (xywh)."""
    iw = max(0.0, min(box[0] + box[2], crop[0] + crop[2]) - max(box[0], crop[0]))
    ih = max(0.0, min(box[1] + box[3], crop[1] + crop[3]) - max(box[1], crop[1]))
    return iw * ih / max(box[2] * box[3], 1e-9)


def count_ids(frames: list[dict], truth: list[list[tuple[int, int, int, int] | None]]) -> dict:
    ids: dict[int, set[int]] = {k: set() for k in range(len(truth[0]))}
    found = dict.fromkeys(ids, 0)
    stray = 0
    for fr, boxes in zip(frames, truth):
        for p in fr["persons"]:
            x, y, w, h = p["box"]
            cx, cy = x + w / 2, y + h / 2
            # The crop holding the box centre and at least half the box: the background photo's own
            # (blurred) people give boxes spanning several crops, which are strays, not a crop's person.
            hit = [k for k, b in enumerate(boxes) if b is not None and b[0] <= cx < b[0] + b[2]
                   and b[1] <= cy < b[1] + b[3] and overlap((x, y, w, h), b) >= 0.5]
            if not hit:
                stray += 1
                continue
            ids[hit[0]].add(int(p["track_id"]))
            found[hit[0]] += 1
    return {"ids_per_person": [len(ids[k]) for k in ids], "frames_found": [found[k] for k in ids],
            "stray_persons": stray, "distinct_ids": len({p["track_id"] for fr in frames for p in fr["persons"]})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=str(default_data_root()))
    ap.add_argument("--detector", default="auto", help="auto / blazepose / hog / whole, or blazepose-whole: "
                    "BlazePose on the whole frame only, without its tiles (14x less detection time)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--min-score", type=float, default=None, help="BlazePose's score floor (default: its own)")
    ap.add_argument("--grids", type=int, nargs="*", default=None, help="BlazePose's tilings (default: its own)")
    ap.add_argument("--width", type=float, default=None, help="BlazePose's body box width in r (default: its own)")
    ap.add_argument("--model", default=DEFAULT_MODEL, help=f"pose model (default {DEFAULT_MODEL})")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    det: object = args.detector
    if args.detector in ("auto", "blazepose", "blazepose-whole"):
        kw: dict = {"threads": args.threads}
        if args.min_score is not None:
            kw["min_score"] = args.min_score
        if args.width is not None:
            kw["width"] = args.width
        if args.detector == "blazepose-whole":
            kw["grids"] = ()
        elif args.grids is not None:
            kw["grids"] = tuple(args.grids)
        det = BlazePoseDetector(**kw)
    est = PoseEstimator(args.model, detector=det, threads=args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "people.avi"
        truth = make_clip(Path(args.data), clip)
        for every in (1, 5):
            out = Path(tmp) / f"every{every}"
            run_predict(est, str(clip), output_dir=out, render_images=False, detect_every=every, progress=False,
                        print_fn=lambda m: None)
            frames = json.loads((out / "predictions.json").read_text())["frames"]
            rows.append({"detect_every": every, **count_ids(frames, truth)})
            print(rows[-1], flush=True)
    info = {"cpu": cpu_info().model, "threads": args.threads, "model": args.model, "detector": repr(est.detector),
            "frames": FRAMES, "command": "python benchmarks/tracking_ids.py " + " ".join(sys.argv[1:])}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "tracking_ids.json").write_text(json.dumps({"info": info, "runs": rows}, indent=1))
    md = [f"# Track ids on a {FRAMES}-frame clip of 5 people ({info['command']})", "",
          f"Detector {info['detector']}, model {args.model}, CPU {info['cpu']} ({args.threads} threads, shared).", "",
          "| detect every | ids per person | frames found per person | persons off every identity | ids in all |",
          "|---|---|---|---|---|"]
    md += [f"| {r['detect_every']} | {r['ids_per_person']} | {r['frames_found']} | {r['stray_persons']} | "
           f"{r['distinct_ids']} |" for r in rows]
    (OUT / "tracking_ids.md").write_text("\n".join(md) + "\n")


if __name__ == "__main__":
    main()
