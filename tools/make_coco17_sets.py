"""Write the COCO-17 training and validation sets of the ``stnet_1s.coco17_128x96`` recipe as plain
COCO keypoint files, so the ordinary COCO reader trains and validates on them:

    python tools/make_coco17_sets.py            # -> ~/.cache/stnet/data/coco17_lspet
    stnet train configs/stnet_1s_coco17-lspet_128x96_b32x1_e60.yaml ...

Folder written (``-o``; the recipe's ``data_root``):

    annotations/train.json          LSP-Extended train (im00001-im08100) + coco_mini train images
    annotations/val_lspet.json      LSP-Extended val (im08101-im09000), 12 body joints only
    annotations/val_coco_mini.json  the held-out coco_mini images, all their annotations, as COCO
    annotations/coco_mini_split.json  {"train": [...], "val": [...]} image ids
    images/lspet -> DATA_ROOT/lspet/images, images/coco_mini -> DATA_ROOT/coco_mini/train2017

LSP-Extended persons, in COCO's order: the 12 human-labelled body joints (LSP's "visible" joints,
v=2; the rest v=0, so their target weight is 0) and the teacher's face points where
``data/lspet_face_points.npz`` keeps them (``tools/teacher_face_points.py``; v=2), nothing else. The
box is the one stnet's LSP reader uses (the extent of all 14 human joints, head top and neck
included, grown by 10% a side) and the images carry no width/height, so the crops are exactly those
the LSP-14 model was trained and validated on. The validation file has no face points: its PCK@0.2
(torso = right shoulder to left hip) scores the same 12 body joints the humans labelled.

coco_mini: images sorted by id, every second one (the 2nd, 4th, ...) held out for validation, with
all its annotations (crowd regions too, as COCO's own files); the others train, except the bundled
demo photo (``src/stnet/assets/demo.jpg`` is coco_mini image 535506): it is neither trained nor
validated on, so ``make demo`` and ``tools/demo_check.py`` show a photo the model never saw. (The
weights packed before 2026-12-05 trained on it: one of their 50 COCO persons.) ``--coco-repeat N``
lists each coco_mini training person N times in ``train.json`` (N views per epoch, each with its
own augmentation), so the few COCO persons weigh more against 8,100 LSP-Extended ones.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from stnet.data import get_skeleton
from stnet.data.build import default_data_root
from stnet.data.lsp import box_from_joints, load_lsp_joints, lsp_split_indices
from stnet.io import write_text

LSP_IMAGE_ID = 900_000_000  # LSP image k gets id LSP_IMAGE_ID + k: far from COCO's ids
DEMO_IMAGE_ID = 535506  # src/stnet/assets/demo.jpg (its README): never trained on
FACE_FILE = Path(__file__).resolve().parents[1] / "data" / "lspet_face_points.npz"


def coco_category() -> dict:
    sk = get_skeleton("coco17")
    return {"id": 1, "name": "person", "supercategory": "person", "keypoints": list(sk.keypoint_names),
            "skeleton": [[a + 1, b + 1] for a, b in sk.links]}


def load_face_points(path: Path, min_conf: float | None, max_body_err: float | None) -> dict[int, np.ndarray]:
    """LSP image number -> ``(5, 3)`` x, y, v of nose, eyes, ears (v 2 where kept, else 0)."""
    d = np.load(path, allow_pickle=False)
    keep = d["keep"]
    if min_conf is not None or max_body_err is not None:
        mc = float(d["min_conf"]) if min_conf is None else min_conf
        mb = float(d["max_body_err"]) if max_body_err is None else max_body_err
        keep = (d["conf"] >= round(mc * 255)) & (d["body_err"] <= mb)[:, None]
    out = {}
    for img, xy, k in zip(d["image"].tolist(), d["xy"], keep):
        out[int(img)] = np.concatenate([xy, np.where(k, 2.0, 0.0)[:, None]], 1)
    return out


def lsp_annotations(root: Path, split: str, faces: dict[int, np.ndarray] | None) -> tuple[list, list]:
    """COCO ``images`` and ``annotations`` of one LSP-Extended split (the project's split)."""
    kps, vis = load_lsp_joints(root / "lspet" / "joints.mat")
    lsp = get_skeleton("lsp14").keypoint_names
    coco = get_skeleton("coco17").keypoint_names
    n = 0
    while n < len(kps) and (root / "lspet" / "images" / f"im{n + 1:05d}.jpg").is_file():
        n += 1
    images, anns = [], []
    for i in lsp_split_indices(n, split):  # type: ignore[arg-type]
        box = box_from_joints(kps[i], vis[i], 0.1)
        if box is None:
            continue  # the LSP reader leaves these out too
        k = np.zeros((17, 3))
        for j, name in enumerate(coco):
            if name in lsp and vis[i, lsp.index(name)] > 0:
                k[j] = (*kps[i, lsp.index(name)], 2)
        if faces is not None and i + 1 in faces:
            k[:5] = faces[i + 1]
        k[k[:, 2] == 0, :2] = 0
        if not (k[:, 2] > 0).any():
            continue
        iid = LSP_IMAGE_ID + i + 1
        images.append({"id": iid, "file_name": f"lspet/im{i + 1:05d}.jpg"})
        b = [round(float(v), 2) for v in box]
        anns.append({"id": iid, "image_id": iid, "category_id": 1, "iscrowd": 0, "bbox": b,
                     "area": round(b[2] * b[3], 2), "num_keypoints": int((k[:, 2] > 0).sum()),
                     "keypoints": [round(float(v), 2) for v in k.reshape(-1)]})
    return images, anns


def coco_mini_split(data: dict) -> tuple[list[int], list[int]]:
    """Image ids with at least one person with keypoints, sorted; every second one is held out,
    and the demo photo is left out of training (the held-out half stays the same)."""
    ids = sorted({a["image_id"] for a in data["annotations"] if a.get("num_keypoints", 0) > 0 and not a.get("iscrowd")})
    return [i for i in ids[0::2] if i != DEMO_IMAGE_ID], ids[1::2]


def repeated(anns: list, times: int, first_id: int) -> list:
    """``anns`` listed ``times`` times; the copies get ids from ``first_id`` on (above every id in use)."""
    copies = [{**a, "id": first_id + n} for n, a in enumerate(a for _ in range(times - 1) for a in anns)]
    return list(anns) + copies


def subset(data: dict, ids: list[int], prefix: str) -> tuple[list, list]:
    keep = set(ids)
    images = [{**im, "file_name": f"{prefix}/{im['file_name']}"} for im in data["images"] if im["id"] in keep]
    anns = [a for a in data["annotations"] if a["image_id"] in keep]
    return images, anns


def write_json(path: Path, images: list, anns: list) -> None:
    write_text(path, json.dumps({"info": {"description": "written by tools/make_coco17_sets.py"},
                                 "images": images, "annotations": anns, "categories": [coco_category()]}))
    print(f"{path}: {len(images)} images, {len(anns)} annotations")


def link(target: Path, name: Path) -> None:
    if name.is_symlink() or name.exists():
        if name.is_symlink() and Path(os.readlink(name)) == target:
            return
        name.unlink()
    name.symlink_to(target, target_is_directory=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-o", "--output", default="~/.cache/stnet/data/coco17_lspet")
    ap.add_argument("--data-root", default=str(default_data_root()))
    ap.add_argument("--faces", default=str(FACE_FILE), help="the teacher's labels (tools/teacher_face_points.py)")
    ap.add_argument("--no-faces", action="store_true", help="LSP-Extended persons without face points")
    ap.add_argument("--min-conf", type=float, help="re-apply the teacher's confidence rule (default: the file's)")
    ap.add_argument("--max-body-err", type=float, help="re-apply the body-agreement rule (default: the file's)")
    ap.add_argument("--coco-repeat", type=int, default=1, metavar="N",
                    help="list each coco_mini training person N times in train.json (default 1)")
    args = ap.parse_args(argv)
    root = Path(args.data_root).expanduser().resolve()
    out = Path(args.output).expanduser()
    (out / "annotations").mkdir(parents=True, exist_ok=True)
    (out / "images").mkdir(exist_ok=True)
    link(root / "lspet" / "images", out / "images" / "lspet")
    link(root / "coco_mini" / "train2017", out / "images" / "coco_mini")
    faces = None if args.no_faces else load_face_points(Path(args.faces), args.min_conf, args.max_body_err)
    coco = json.loads((root / "coco_mini" / "annotations" / "person_keypoints_train2017.json").read_text())
    train_ids, val_ids = coco_mini_split(coco)
    write_text(out / "annotations" / "coco_mini_split.json", json.dumps({"train": train_ids, "val": val_ids}))

    li, la = lsp_annotations(root, "train", faces)
    if args.coco_repeat < 1:
        raise SystemExit(f"--coco-repeat {args.coco_repeat}: expected a whole number >= 1")
    ci, ca = subset(coco, train_ids, "coco_mini")
    ca = repeated(ca, args.coco_repeat, 1 + max(int(a["id"]) for a in la + ca))
    write_json(out / "annotations" / "train.json", li + ci, la + ca)
    vi, va = lsp_annotations(root, "val", None)
    write_json(out / "annotations" / "val_lspet.json", vi, va)
    write_json(out / "annotations" / "val_coco_mini.json", *subset(coco, val_ids, "coco_mini"))


if __name__ == "__main__":
    main()
