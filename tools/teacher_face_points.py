"""Face points (nose, eyes, ears) for LSP-Extended from a teacher: BlazePose GHUM's full landmark
model (``pose_landmark_full.tflite``, Apache-2.0), read out of the mediapipe 0.10.21 wheel and run
with OpenVINO (which reads ``.tflite`` directly), so mediapipe itself is never installed.

Get the model once (a wheel is a zip; nothing else of mediapipe is used):

    pip download mediapipe==0.10.21 --no-deps --python-version 3.11 --only-binary=:all: \\
        --platform manylinux_2_28_x86_64 -d ~/.cache/stnet/wheels
    python -c "import zipfile; zipfile.ZipFile('$HOME/.cache/stnet/wheels/mediapipe-0.10.21-cp311-cp311-\\
manylinux_2_28_x86_64.whl').extract('mediapipe/modules/pose_landmark/pose_landmark_full.tflite', \\
'$HOME/.cache/stnet/wheels/mp')"

Commands:

    python tools/teacher_face_points.py lspet  -o data/lspet_face_points.npz   # the labels file
    python tools/teacher_face_points.py coco   # the teacher against coco_mini's human face labels
    python tools/teacher_face_points.py coco --split-file ~/.cache/stnet/data/coco17_lspet/annotations/\
coco_mini_split.json --student stnet_1s.coco17_128x96   # held-out persons, teacher and student

The crop (both commands): a square around the person's box (LSP: the extent of its 14 human
joints grown by 10% a side, as stnet's LSP reader does; COCO: the ground-truth box), side 1.25 x the
box's longer side (BlazePose's own ROI margin), turned so that the human-labelled hip-to-shoulder
line points up (BlazePose expects an upright person), resampled to 256x256 RGB in [0, 1].

The model's output ``Identity`` holds 39 x (x, y, z, visibility, presence) in input pixels, the last
two as logits. A face point is kept (``keep``) when its visibility and presence are both at least
``--min-conf`` AND the teacher agrees with the human labels on the body: every human-labelled
shoulder and hip lies within ``--max-body-err`` x the person's torso size (mean of the labelled
shoulder-to-opposite-hip distances) of the teacher's, with at least 3 of the 4 labelled. Anything
else stays unlabelled.

The labels file (``.npz``, plain arrays, no pickle): ``image`` (N,) 1-based LSP-Extended image
numbers, ``xy`` (N, 5, 2) float32 image pixels of nose, left eye, right eye, left ear, right ear
(COCO order and names), ``conf`` (N, 5) uint8 min(visibility, presence) x 255, ``body_err`` (N,)
float32 the worst shoulder/hip disagreement in torso units (inf when fewer than 3 are labelled),
``keep`` (N, 5) bool, and the thresholds ``min_conf`` / ``max_body_err``.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np

from stnet.data import get_skeleton
from stnet.data.build import default_data_root
from stnet.data.lsp import box_from_joints, load_lsp_joints
from stnet.data.records import read_image
from stnet.data.transforms import affine_points, get_warp_matrix, warp_image
from stnet.io import write_bytes

DEFAULT_MODEL = Path("~/.cache/stnet/wheels/mp/mediapipe/modules/pose_landmark/pose_landmark_full.tflite")
SIZE = 256
MARGIN = 1.25
# BlazePose landmark indices (mediapipe's pose_landmarks.md): the person's own left/right, as COCO.
BP_FACE = {"nose": 0, "left_eye": 2, "right_eye": 5, "left_ear": 7, "right_ear": 8}
BP_BODY = {"left_shoulder": 11, "right_shoulder": 12, "left_hip": 23, "right_hip": 24}
FACE_NAMES = tuple(BP_FACE)


class Teacher:
    """The landmark model on OpenVINO's CPU plugin; ``__call__(crop RGB uint8 256x256)`` returns
    ``(39, 2)`` crop pixels and ``(39,)`` min(visibility, presence) probabilities."""

    def __init__(self, model: Path) -> None:
        import openvino as ov

        path = model.expanduser()
        if not path.is_file():
            raise SystemExit(f"{path}: teacher model not found (see this tool's docstring for how to extract it)")
        core = ov.Core()
        net = core.read_model(str(path))
        shape = list(net.inputs[0].get_partial_shape().to_shape())
        if shape != [1, SIZE, SIZE, 3]:
            raise SystemExit(f"{path}: input shape {shape}, expected [1, {SIZE}, {SIZE}, 3]")
        self.compiled = core.compile_model(net, "CPU", {"INFERENCE_NUM_THREADS": "1"})
        outs = {o.get_any_name(): o for o in self.compiled.outputs}
        self.landmarks = outs.get("Identity")
        if self.landmarks is None or list(self.landmarks.get_partial_shape().to_shape()) != [1, 195]:
            raise SystemExit(f"{path}: no (1, 195) 'Identity' landmark output (outputs: {sorted(outs)})")

    def __call__(self, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = crop.astype(np.float32)[None] / 255.0
        out = self.compiled([x])[self.landmarks].reshape(39, 5)
        prob = 1.0 / (1.0 + np.exp(-out[:, 3:5].astype(np.float64)))
        return out[:, :2].astype(np.float64), prob.min(1)


def upright_rotation(pts: dict[str, np.ndarray | None]) -> float:
    """Degrees (stnet's convention: positive turns content counter-clockwise in the crop) that
    bring the labelled hip-centre-to-shoulder-centre line straight up; 0 without both ends."""
    sh = [p for n, p in pts.items() if "shoulder" in n and p is not None]
    hp = [p for n, p in pts.items() if "hip" in n and p is not None]
    if not sh or not hp:
        return 0.0
    v = np.mean(sh, 0) - np.mean(hp, 0)  # image coordinates, y down; upright is (0, -1)
    if not np.any(v):
        return 0.0
    # get_warp_matrix turns a direction at angle a (from +x, y down) to a - rotation; upright is -90.
    return math.degrees(math.atan2(v[1], v[0])) + 90.0


def run_person(teacher: Teacher, image: np.ndarray, box: np.ndarray,
               body: dict[str, np.ndarray | None]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Teacher landmarks for one person: ``(39, 2)`` image pixels, ``(39,)`` confidence, and the
    crop matrix and crop (for drawing)."""
    center = box[:2] + 0.5 * box[2:]
    side = MARGIN * float(max(box[2], box[3]))
    rot = upright_rotation(body)
    mat = get_warp_matrix(center, (side, side), rot, (SIZE, SIZE), unbiased=False)
    crop = warp_image(image, mat, (SIZE, SIZE))
    xy, conf = teacher(crop)
    inv = cv2.invertAffineTransform(mat)
    return affine_points(xy, inv), conf, mat, crop


def body_error(teacher_xy: np.ndarray, body: dict[str, np.ndarray | None]) -> float:
    """Worst disagreement of the teacher's shoulders/hips with the human labels, in torso units
    (mean of the labelled shoulder-to-opposite-hip distances); inf when fewer than 3 are labelled
    or no torso size exists."""
    have = {n: p for n, p in body.items() if p is not None}
    if len(have) < 3:
        return math.inf
    diag = [np.linalg.norm(have[a] - have[b]) for a, b in (("right_shoulder", "left_hip"),
                                                          ("left_shoulder", "right_hip"))
            if a in have and b in have]
    torso = float(np.mean(diag)) if diag else 0.0
    if torso <= 0:
        return math.inf
    return max(float(np.linalg.norm(teacher_xy[BP_BODY[n]] - p)) for n, p in have.items()) / torso


def _body(names: tuple[str, ...], kps: np.ndarray, vis: np.ndarray) -> dict[str, np.ndarray | None]:
    return {n: (kps[names.index(n)].astype(np.float64) if vis[names.index(n)] > 0 else None) for n in BP_BODY}


def cmd_lspet(args: argparse.Namespace) -> None:
    root = Path(args.data_root).expanduser()
    kps, vis = load_lsp_joints(root / "lspet" / "joints.mat")
    names = get_skeleton("lsp14").keypoint_names
    teacher = Teacher(Path(args.model))
    n = args.limit or 9000
    rows: dict[str, list] = {"image": [], "xy": [], "conf": [], "body_err": []}
    for i in range(n):
        path = root / "lspet" / "images" / f"im{i + 1:05d}.jpg"
        if not path.is_file():
            break
        box = box_from_joints(kps[i], vis[i], 0.1)
        if box is None:
            continue
        body = _body(names, kps[i], vis[i])
        xy, conf, _, _ = run_person(teacher, read_image(path), box, body)
        face = [BP_FACE[f] for f in FACE_NAMES]
        rows["image"].append(i + 1)
        rows["xy"].append(xy[face].astype(np.float32))
        rows["conf"].append(np.round(conf[face] * 255).astype(np.uint8))
        rows["body_err"].append(body_error(xy, body))
        if (i + 1) % 500 == 0:
            print(f"{i + 1} images", flush=True)
    conf = np.stack(rows["conf"])
    err = np.asarray(rows["body_err"], np.float32)
    keep = (conf >= round(args.min_conf * 255)) & (err <= args.max_body_err)[:, None]
    arrays = dict(image=np.asarray(rows["image"], np.int32), xy=np.round(np.stack(rows["xy"]), 1),
                  conf=conf, body_err=err, keep=keep, names=np.asarray(FACE_NAMES),
                  min_conf=np.float32(args.min_conf), max_body_err=np.float32(args.max_body_err))
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    write_bytes(args.output, buf.getvalue())
    agree = np.isfinite(err) & (err <= args.max_body_err)
    print(f"{args.output}: {len(err)} persons; body agrees for {agree.sum()} ({100 * agree.mean():.1f}%); "
          "kept points: " + ", ".join(f"{f} {keep[:, j].sum()}" for j, f in enumerate(FACE_NAMES)))


def _oks(p: np.ndarray, gt: np.ndarray, area: float, sigma: float) -> float:
    """COCO's per-keypoint similarity exp(-d^2 / (2 s^2 k^2)), s^2 = area, k = 2 sigma."""
    return float(np.exp(-float(np.sum((p - gt) ** 2)) / (2 * max(area, 1.0) * (2 * sigma) ** 2)))


def cmd_coco(args: argparse.Namespace) -> None:
    """Teacher face points against coco_mini's human labels, with the same crop and rules; with
    ``--student``, a stnet model's face points on the same persons (ground-truth boxes, flip test)."""
    from stnet.data.coco import load_coco_records

    root = Path(args.data_root).expanduser()
    ann = root / "coco_mini" / "annotations" / "person_keypoints_train2017.json"
    recs = load_coco_records(ann, root / "coco_mini" / "train2017", "coco17")
    if args.split_file:
        ids = set(json.loads(Path(args.split_file).expanduser().read_text())["val"])
        recs = [r for r in recs if r.image_id in ids]
    names = get_skeleton("coco17").keypoint_names
    sig = get_skeleton("coco17").sigmas_array()
    teacher = Teacher(Path(args.model))
    student = None
    if args.student:
        from stnet import PoseEstimator

        student = PoseEstimator(args.student, flip_test=True, precision="fp32")
    cache: dict[str, np.ndarray] = {}
    ks: dict[str, list[float]] = {f: [] for f in FACE_NAMES}
    ks_kept: dict[str, list[float]] = {f: [] for f in FACE_NAMES}
    ks_student: dict[str, list[float]] = {f: [] for f in FACE_NAMES}
    for r in recs:
        img = cache.setdefault(str(r.image_path), read_image(r.image_path))
        body = _body(names, r.keypoints, r.visibility)
        xy, conf, _, _ = run_person(teacher, img, r.box, body)
        err = body_error(xy, body)
        area = float(r.extra.get("area", r.box[2] * r.box[3]))
        mine = student(img, boxes=[r.box]).keypoints[0] if student is not None else None
        for f in FACE_NAMES:
            j, b = names.index(f), BP_FACE[f]
            if r.visibility[j] <= 0:
                continue
            ks[f].append(_oks(xy[b], r.keypoints[j], area, sig[j]))
            if conf[b] >= args.min_conf and err <= args.max_body_err:
                ks_kept[f].append(ks[f][-1])
            if mine is not None:
                ks_student[f].append(_oks(mine[j], r.keypoints[j], area, sig[j]))
    print(f"{len(recs)} persons; per-point OKS similarity exp(-d^2/(2 area (2 sigma)^2)), mean over the "
          f"human-labelled points; kept = conf >= {args.min_conf} and body error <= {args.max_body_err}")
    head = "| point | labelled | teacher mean OKS | teacher >= 0.5 | kept | kept mean OKS |"
    print(head + (" student mean OKS | student >= 0.5 |" if student else ""))
    print("|---" * (6 + (2 if student else 0)) + "|")
    for f in [*FACE_NAMES, "all"]:
        pick = FACE_NAMES if f == "all" else (f,)
        a, b, c = (np.concatenate([np.asarray(d[g], np.float64) for g in pick]) for d in (ks, ks_kept, ks_student))
        row = (f"| {f} | {len(a)} | {a.mean():.3f} | {100 * (a >= 0.5).mean():.1f}% | {len(b)} | "
               f"{b.mean() if len(b) else float('nan'):.3f} |")
        if student:
            row += f" {c.mean():.3f} | {100 * (c >= 0.5).mean():.1f}% |"
        print(row)


def cmd_student_lspet(args: argparse.Namespace) -> None:
    """A COCO-17 model's face points on LSP-Extended val against the teacher's kept labels there,
    from the ``predictions_raw.npz`` that ``stnet eval`` (or a run's validation) writes on the
    recipe's val_lspet.json (records in file order: im08101..im09000). Distances in torso units
    (right shoulder to left hip, the PCK normaliser)."""
    raw = np.load(args.predictions, allow_pickle=False)
    labels = np.load(args.labels, allow_pickle=False)
    row = {int(i): k for k, i in enumerate(labels["image"])}
    kp, gt, vis = raw["keypoints"], raw["gt_keypoints"], raw["visible"]
    order = raw["indices"] if "indices" in raw.files else np.arange(len(kp))
    if kp.shape[1:] != (17, 2):
        raise SystemExit(f"{args.predictions}: expected coco17 predictions (N, 17, 2), got {kp.shape}")
    coco = get_skeleton("coco17")
    rs, lh = coco.index("right_shoulder"), coco.index("left_hip")
    errs = []
    for n, i in enumerate(order):
        k = row[8101 + int(i)]
        torso = float(np.linalg.norm(gt[n, rs] - gt[n, lh]))
        if not (vis[n, rs] and vis[n, lh] and torso > 0):
            continue
        e = np.linalg.norm(kp[n, :5] - labels["xy"][k], axis=1) / torso
        errs.append(np.where(labels["keep"][k], e, np.nan))
    e = np.asarray(errs)
    print(f"{args.predictions}: face points against the teacher's kept labels on LSP-Extended val "
          f"({np.isfinite(e).any(1).sum()} persons with a torso and kept labels)")
    print("| point | labels | median distance (torso) | within 0.2 torso |")
    print("|---|---|---|---|")
    for j, f in enumerate(FACE_NAMES):
        c = e[:, j][np.isfinite(e[:, j])]
        print(f"| {f} | {len(c)} | {np.median(c):.3f} | {100 * (c <= 0.2).mean():.1f}% |")


def cmd_draw(args: argparse.Namespace) -> None:
    """Draw the teacher's landmarks on a few LSP-Extended crops (a visual check of the format)."""
    root = Path(args.data_root).expanduser()
    kps, vis = load_lsp_joints(root / "lspet" / "joints.mat")
    names = get_skeleton("lsp14").keypoint_names
    teacher = Teacher(Path(args.model))
    tiles = []
    for i in args.index:
        box = box_from_joints(kps[i - 1], vis[i - 1], 0.1)
        body = _body(names, kps[i - 1], vis[i - 1])
        img = read_image(root / "lspet" / "images" / f"im{i:05d}.jpg")
        xy, conf, mat, crop = run_person(teacher, img, box, body)
        crop = np.ascontiguousarray(crop)
        for j, p in enumerate(affine_points(xy, mat)):
            col = (255, 0, 0) if j in BP_FACE.values() else (0, 255, 0) if j in BP_BODY.values() else (0, 0, 255)
            cv2.circle(crop, (int(round(p[0])), int(round(p[1]))), 3, col, -1)
        for n in BP_BODY:
            if body[n] is not None:
                q = affine_points(body[n][None], mat)[0]
                cv2.drawMarker(crop, (int(round(q[0])), int(round(q[1]))), (255, 255, 0), cv2.MARKER_CROSS, 10, 2)
        cv2.putText(crop, f"{i} err {body_error(xy, body):.2f}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1)
        tiles.append(crop)
    grid = np.concatenate(tiles, 1)
    cv2.imwrite(args.output, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))
    print(args.output)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL), help="pose_landmark_full.tflite")
    ap.add_argument("--data-root", default=str(default_data_root()))
    ap.add_argument("--min-conf", type=float, default=0.5)
    ap.add_argument("--max-body-err", type=float, default=0.2)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("lspet", help="write the face-point labels of LSP-Extended im00001..im09000")
    p.add_argument("-o", "--output", default="data/lspet_face_points.npz")
    p.add_argument("--limit", type=int, default=0, help="first N images only (a quick check)")
    p = sub.add_parser("coco", help="measure the teacher against coco_mini's human face labels")
    p.add_argument("--split-file", help="tools/make_coco17_sets.py's coco_mini_split.json: score its 'val' images only")
    p.add_argument("--student", help="also score this stnet model (a shipped name, pack or checkpoint)")
    p = sub.add_parser("student-lspet", help="a COCO-17 model's face points against the labels on LSP val")
    p.add_argument("predictions", help="predictions_raw.npz of stnet eval on the recipe's val_lspet.json")
    p.add_argument("--labels", default="data/lspet_face_points.npz")
    p = sub.add_parser("draw", help="draw the teacher's landmarks on LSP-Extended crops")
    p.add_argument("index", type=int, nargs="+", help="1-based LSP-Extended image numbers")
    p.add_argument("-o", "--output", default="/tmp/teacher_draw.jpg")
    args = ap.parse_args(argv)
    {"lspet": cmd_lspet, "coco": cmd_coco, "student-lspet": cmd_student_lspet, "draw": cmd_draw}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
