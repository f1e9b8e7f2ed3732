"""Issue 29: nothing a user owns is lost, no silent wrong score, every OS error in one line.

Each test reruns one case of the issue as written (numbered 1-10, then the "Also" cases) and
checks: a correct result or one line naming the file / field, a non-zero exit on refusal, no
file the command read changed, and no hang."""
from __future__ import annotations

import errno
import hashlib
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from helpers.synthetic import make_synthetic_coco
from stnet.cli import main as stnet_main
from stnet.engine.checkpoint import save_checkpoint
from stnet.engine.config import config_to_dict, load_config
from stnet.io import OverwriteError, refuse_overwrite, same_file


def _digest(*paths: Path) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() for p in paths]


def _one_error_line(err: str, command: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.startswith(f"stnet {command}: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def syn(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("syn")
    make_synthetic_coco(root, num_images=4, image_size=(80, 64))
    return root


@pytest.fixture
def checkpoint(tmp_path: Path) -> Path:
    cfg = config_to_dict(load_config(None, {"data_root": str(tmp_path)}))
    run = tmp_path / "run"
    return save_checkpoint({"model": {"head.weight": torch.ones(17, 4, 1, 1)}, "config": cfg, "epoch": 1},
                           run / "best.pt")


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    p = tmp_path / "imgs" / "a.png"
    p.parent.mkdir()
    cv2.imwrite(str(p), np.full((40, 30, 3), 128, np.uint8))
    return p


# ------------------------------------------------------------------------------ the shared guard
def test_refuse_overwrite_names_both_paths_and_skips_stdout(tmp_path: Path):
    a = tmp_path / "a.json"
    a.write_text("{}")
    with pytest.raises(OverwriteError, match=r"--json-out .*a.json is the --ann this command reads"):
        refuse_overwrite({"--json-out": tmp_path / "." / "a.json"}, {"--ann": a})
    with pytest.raises(OverwriteError, match="is the image .*a.json"):
        refuse_overwrite({"-o": a}, {"image": [tmp_path / "b.png", a]})
    refuse_overwrite({"--json-out": "-", "x": None}, {"--ann": a, "--boxes": None})
    link = tmp_path / "hard.json"
    link.hardlink_to(a)
    assert same_file(link, a) and not same_file(tmp_path / "missing", a)


# ------------------------------------------------------------------------------ case 1: predict
@pytest.mark.parametrize("option", ["--ann", "--boxes", "--model"])
def test_1_predict_never_writes_over_an_input(tmp_path: Path, photo: Path, capsys, option: str):
    target = tmp_path / ("best.pt" if option == "--model" else "in.json")
    target.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png"}], "annotations": []})
                      if option != "--model" else "weights")
    before = _digest(target)
    args = ["predict", str(photo.parent), option, str(target), "--json-out", str(target)]
    if option == "--ann":
        args += ["--format", "coco"]
    assert stnet_main(args) == 2
    line = _one_error_line(capsys.readouterr().err, "predict")
    assert f"--json-out {target} is the {option} this command reads" in line
    assert _digest(target) == before


# ------------------------------------------------------------------------------ case 2: train
def test_2_train_refuses_a_finished_run_without_resume(tmp_path: Path, syn: Path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    for name in ("best.pt", "last.pt", "metrics.jsonl", "config.yaml"):
        (run / name).write_text(name)
    before = _digest(*sorted(run.iterdir()))
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"data_root: {syn}\nruntime: {{output_dir: {run}}}\n")
    assert stnet_main(["train", str(recipe)]) == 2
    line = _one_error_line(capsys.readouterr().err, "train")
    assert f"run folder {run} already holds a run (last.pt, best.pt, metrics.jsonl)" in line and "--resume" in line
    assert _digest(*sorted(run.iterdir())) == before and not (run / ".lock").exists()


# ------------------------------------------------------------------------------ case 3: GT
def _gt_and_results(tmp_path: Path, **change) -> tuple[Path, Path]:
    from helpers.synthetic import gt_as_predictions, synthetic_coco_gt
    from stnet.evaluation.coco import make_results

    gt = synthetic_coco_gt(3, 4, seed=2)
    p = gt_as_predictions(gt)
    res = make_results(p["image_ids"], p["keypoints"], p["keypoint_scores"], np.ones(len(p["image_ids"])))
    for fn in change.values():
        for ann in gt["annotations"]:
            fn(ann)
    g, r = tmp_path / "gt.json", tmp_path / "res.json"
    g.write_text(json.dumps(gt))
    r.write_text(json.dumps(res))
    return g, r


@pytest.mark.parametrize("case,fix,expect", [
    ("nan_area", lambda a: a.update(area=float("nan")), "'area' is nan"),
    ("negative_area", lambda a: a.update(area=-5.0), "'area' is -5.0"),
    ("duplicate_ids", lambda a: a.update(id=7), "share 'id' 7"),
    ("all_crowd", lambda a: a.update(iscrowd=1), "all 4 persons are 'iscrowd': 1"),
])
def test_3_score_refuses_gt_that_would_score_wrong(tmp_path: Path, capsys, case, fix, expect):
    g, r = _gt_and_results(tmp_path, **{case: fix})
    assert stnet_main(["score", "--gt", str(g), "--pred", str(r)]) == 2
    line = _one_error_line(capsys.readouterr().err, "score")
    assert str(g) in line and expect in line


def test_3_zero_area_is_warned(tmp_path: Path):
    from stnet.evaluation.coco import score_results

    g, r = _gt_and_results(tmp_path, zero=lambda a: a.update(area=0))
    with pytest.warns(RuntimeWarning, match="have 'area' 0"):
        score_results(g, r)


def test_3_gt_without_ids_is_one_line(tmp_path: Path, capsys):
    g, r = _gt_and_results(tmp_path, no_id=lambda a: a.pop("id"))
    assert stnet_main(["score", "--gt", str(g), "--pred", str(r)]) == 2
    assert "annotations[0] has no 'id'" in _one_error_line(capsys.readouterr().err, "score")


# ------------------------------------------------------------------------------ case 4
def test_4_export_never_writes_over_its_model(checkpoint: Path, capsys):
    before = _digest(checkpoint)
    assert stnet_main(["export", str(checkpoint), "-o", str(checkpoint), "--no-check"]) == 2
    assert "is the model this command reads" in _one_error_line(capsys.readouterr().err, "export")
    assert _digest(checkpoint) == before


def _recipe(tmp_path: Path, syn: Path) -> Path:
    p = tmp_path / "tiny.yaml"
    p.write_text(f"model: {{name: stnet_1s, overrides: {{width: 8}}}}\ninput_size: [64, 64]\ndata_root: {syn}\n"
                 "train: {kind: coco, ann_file: annotations.json, image_dir: images}\n"
                 "val: {kind: coco, ann_file: annotations.json, image_dir: images}\n")
    return p


def test_4_cache_never_writes_over_its_annotations_or_images(tmp_path: Path, syn: Path, capsys):
    recipe = _recipe(tmp_path, syn)
    ann, img = syn / "annotations.json", sorted((syn / "images").iterdir())[0]
    before = _digest(ann, img, recipe)
    for out, what in ((ann, "ann_file"), (img, "image"), (recipe, "recipe")):
        assert stnet_main(["cache", str(recipe), "-o", str(out)]) == 2
        assert f"-o {out} is the" in (line := _one_error_line(capsys.readouterr().err, "cache")) and what in line
    assert _digest(ann, img, recipe) == before


def test_4_browse_never_writes_over_its_inputs(syn: Path, capsys):
    ann, img = syn / "annotations.json", syn / "images" / "000000.png"
    before = _digest(ann, img)
    common = ["browse", "--dataset", "coco", "--root", str(syn), "--ann-file", str(ann), "--image-dir",
              str(syn / "images"), "-n", "2"]
    for out in (img, ann):
        assert stnet_main([*common, "-o", str(out)]) == 2
        assert f"-o {out} is the" in _one_error_line(capsys.readouterr().err, "browse")
    assert _digest(ann, img) == before


def test_4_plot_and_eval_never_write_over_their_inputs(tmp_path: Path, checkpoint: Path, capsys):
    run = tmp_path / "plotrun"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": 1.0}\n')
    before = _digest(run / "metrics.jsonl")
    assert stnet_main(["plot", str(run), "--out", str(run / "metrics.jsonl")]) == 2
    assert "is the metrics file this command reads" in _one_error_line(capsys.readouterr().err, "plot")
    assert _digest(run / "metrics.jsonl") == before
    recipe = tmp_path / "metrics.json"  # a recipe that happens to be named like an eval output
    recipe.write_text("{}")
    assert stnet_main(["eval", str(recipe), "--checkpoint", str(checkpoint), "--output-dir", str(tmp_path)]) == 2
    assert "is the recipe this command reads" in _one_error_line(capsys.readouterr().err, "eval")
    assert recipe.read_text() == "{}"


# ------------------------------------------------------------------------------ case 5: YAML
def _bomb(levels: int) -> str:
    """A recipe whose optim.lr holds a ``levels``-level alias bomb (9 ** levels values)."""
    items = ["&a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        items.append(f"&a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "optim:\n  lr: [" + ",\n    ".join(items) + "]\n"


@pytest.mark.parametrize("levels", [6, 9])
def test_5_yaml_alias_bomb_fails_fast_and_short(tmp_path: Path, capsys, levels: int):
    p = tmp_path / "bomb.yaml"
    p.write_text(_bomb(levels))
    assert len(p.read_bytes()) < 700
    t = time.perf_counter()
    assert stnet_main(["train", str(p)]) == 2
    assert time.perf_counter() - t < 10
    line = _one_error_line(capsys.readouterr().err, "train")
    assert f"{p}: YAML expands to more than" in line and len(line) < 300


def test_5_set_value_alias_bomb_and_bounded_echo(tmp_path: Path, capsys):
    from stnet.config import parse_overrides

    with pytest.raises(ValueError, match="--set optim.lr: YAML expands"):
        parse_overrides(["optim.lr=" + _bomb(7).split("lr: ", 1)[1]])  # a bomb given as a --set value
    p = tmp_path / "small_bomb.yaml"  # 4 levels: allowed, but the error echoes a bounded value
    p.write_text(_bomb(4))
    assert stnet_main(["train", str(p)]) == 2
    line = _one_error_line(capsys.readouterr().err, "train")
    assert "optim.lr: expected a float" in line and len(line) < 600


# ------------------------------------------------------------------------------ case 6: atomic writes
def test_6_full_disk_during_eval_leaves_the_previous_set(tmp_path: Path, monkeypatch):
    import stnet.evaluation.base as base
    from helpers.synthetic import gt_as_predictions, synthetic_coco_gt
    from stnet.evaluation import CocoEvaluator

    gt = synthetic_coco_gt(3, 4, seed=3)
    p = gt_as_predictions(gt)
    out = tmp_path / "eval"

    def run() -> None:
        ev = CocoEvaluator(gt, box_source="gt", print_fn=None, output_dir=out)
        ev.process(p["keypoints"], keypoint_scores=p["keypoint_scores"], image_ids=p["image_ids"],
                   box_scores=p["box_scores"], areas=p["areas"])
        ev.evaluate()

    run()
    files = sorted(out.iterdir())
    assert [f.name for f in files] == ["keypoints_results.json", "metrics.json", "predictions_raw.npz"]
    before = _digest(*files)

    def full(f, **arrays):
        f.write(b"x" * 4096)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(base.np, "savez_compressed", full)
    with pytest.raises(OSError, match="no space left on"):
        run()
    assert sorted(out.iterdir()) == files and _digest(*files) == before  # no temp file, nothing cut


def test_6_plot_failure_keeps_the_old_png(tmp_path: Path, monkeypatch, capsys):
    from matplotlib.figure import Figure

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": 1.0}\n{"epoch": 2, "train_loss": 0.5}\n')
    assert stnet_main(["plot", str(run)]) == 0
    before = _digest(run / "curves.png")

    def cut(self, fname, **kw):
        Path(fname).write_bytes(b"\x89PNG cut")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", cut)
    assert stnet_main(["plot", str(run)]) == 2
    assert "no space left on" in _one_error_line(capsys.readouterr().err, "plot")
    assert _digest(run / "curves.png") == before and sorted(p.name for p in run.iterdir()) == [
        "curves.png", "metrics.jsonl"]


def test_6_full_disk_in_the_lock_file_leaves_no_lock(tmp_path: Path, monkeypatch):
    import stnet.engine.rundir as rundir
    from stnet.io import DiskFullError

    def full(obj):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(rundir.json, "dumps", full)
    with pytest.raises(DiskFullError, match="no space left on"):
        rundir.RunLock(tmp_path).acquire()
    assert not (tmp_path / ".lock").exists()


# ------------------------------------------------------------------------------ case 7: pack
def test_7_pack_does_not_replace_a_shipped_pack_without_overwrite(checkpoint: Path, tmp_path: Path,
                                                                   monkeypatch, capsys):
    import stnet.engine.pack as ship

    weights = tmp_path / "pkg_weights"
    weights.mkdir()
    (weights / "stnet_1s.x.safetensors").write_bytes(b"shipped")
    (weights / "stnet_1s.x.json").write_text("{}")
    monkeypatch.setattr(ship, "WEIGHTS_DIR", weights)
    before = _digest(*sorted(weights.iterdir()))
    assert stnet_main(["pack", str(checkpoint), "--name", "stnet_1s.x"]) == 2
    line = _one_error_line(capsys.readouterr().err, "pack")
    assert "already exists (weights shipped inside the stnet package); pass --overwrite" in line
    assert _digest(*sorted(weights.iterdir())) == before
    assert stnet_main(["pack", str(checkpoint), "--name", "stnet_1s.x", "--overwrite"]) == 0
    assert _digest(*sorted(weights.iterdir())) != before
    # never the checkpoint itself, --overwrite or not
    assert stnet_main(["pack", str(checkpoint), "--name", "best", "--out-dir", str(checkpoint.parent),
                       "--overwrite"]) == 0  # best.safetensors, not best.pt
    assert checkpoint.is_file()


# ------------------------------------------------------------------------------ case 8: bounds
def test_8_box_nms_is_vectorised_and_matches_the_greedy_reference():
    from stnet.detectors import box_iou, nms_boxes

    def reference(b: np.ndarray, thr: float) -> np.ndarray:
        keep: list[int] = []
        for i in np.argsort(-b[:, 4], kind="stable"):
            if all(box_iou(b[i], b[j]) <= thr for j in keep):
                keep.append(int(i))
        return b[keep]

    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(0, 50))
        b = np.c_[rng.uniform(0, 100, (n, 2)), rng.uniform(1, 50, (n, 2)), rng.uniform(0, 1, n)]
        for thr in (0.3, 0.5, 0.7):
            assert np.array_equal(nms_boxes(b, thr), reference(b, thr))
    many = np.c_[rng.uniform(0, 4000, (20000, 2)), rng.uniform(5, 30, (20000, 2)), rng.uniform(0, 1, 20000)]
    t = time.perf_counter()
    kept = nms_boxes(many, 0.5)
    assert time.perf_counter() - t < 10 and 0 < len(kept) <= 5000


def test_8_cache_resolution_has_an_upper_bound(tmp_path: Path, syn: Path, capsys):
    out = tmp_path / "c.npz"
    t = time.perf_counter()
    assert stnet_main(["cache", str(_recipe(tmp_path, syn)), "-o", str(out), "--resolution", "1000"]) == 2
    assert time.perf_counter() - t < 10 and not out.exists()
    assert "--resolution 1000.0: expected a number in (0, 4]" in _one_error_line(capsys.readouterr().err, "cache")


# ------------------------------------------------------------------------------ case 9: OSError
def test_9_output_under_a_file_or_a_folder_as_file_is_one_line(tmp_path: Path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": 1.0}\n')
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    assert stnet_main(["plot", str(run), "--out", str(blocker / "c.png")]) == 1
    assert f"{blocker / 'c.png'}: a folder on this path is a file" in _one_error_line(capsys.readouterr().err, "plot")
    assert stnet_main(["plot", str(run), "--out", str(tmp_path)]) == 1
    assert f"{tmp_path}: is a folder, expected a file path" in _one_error_line(capsys.readouterr().err, "plot")
    assert blocker.read_text() == "x"


def test_9_read_only_folder_is_one_line_naming_the_file(tmp_path: Path, monkeypatch, capsys):
    import tempfile

    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text('{"epoch": 1, "train_loss": 1.0}\n')

    def denied(*a, **k):  # what a read-only folder does (chmod does not stop root, who runs CI)
        raise PermissionError(errno.EACCES, "Permission denied", str(Path(k["dir"]) / ".tmpname"))

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    assert stnet_main(["plot", str(run)]) == 2  # a refused write (WriteError), like a full disk
    assert _one_error_line(capsys.readouterr().err, "plot") == \
        f"stnet plot: error: cannot write {run / 'curves.png'}: permission denied"


def test_9_any_oserror_from_a_command_is_one_line(monkeypatch, capsys):
    import stnet.engine.plot as plot

    def boom(*a, **k):
        raise OSError(errno.EIO, "Input/output error", "/some/file")

    monkeypatch.setattr(plot, "plot_run", boom)
    assert stnet_main(["plot", "x"]) == 1
    assert capsys.readouterr().err == "stnet plot: error: /some/file: Input/output error\n"


# ------------------------------------------------------------------------------ case 10: crafted inputs
def _huge_png(path: Path, w: int = 30000, h: int = 30000) -> Path:
    import struct
    import zlib

    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * (w + 1)))
                     + chunk(b"IEND", b""))
    return path


def test_10_pixel_limit_before_decoding(tmp_path: Path, monkeypatch):
    from stnet.data.records import ImageTooLargeError, check_image_pixels, read_image
    from stnet.inference.images import load_image

    big = _huge_png(tmp_path / "big.png")
    t = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match=r"big.png: image of .* over the 200 MP limit"):
        read_image(big)
    with pytest.raises(ValueError, match="STNET_MAX_IMAGE_PIXELS"):
        load_image(big)
    assert time.perf_counter() - t < 5
    small = _huge_png(tmp_path / "s.png", 300, 200)
    with pytest.raises(ImageTooLargeError, match=r"300x200 \(0 MP\) is over"):
        check_image_pixels(small.read_bytes(), small, limit=1000)
    monkeypatch.setenv("STNET_MAX_IMAGE_PIXELS", "1000")
    with pytest.raises(ImageTooLargeError):
        check_image_pixels(small.read_bytes(), small)
    monkeypatch.setenv("STNET_MAX_IMAGE_PIXELS", "lots")
    with pytest.raises(ValueError, match="STNET_MAX_IMAGE_PIXELS='lots'"):
        check_image_pixels(small.read_bytes(), small)


def test_10_one_huge_image_does_not_stop_a_folder(tmp_path: Path, photo: Path, capsys):
    _huge_png(photo.parent / "b_huge.png")
    out = tmp_path / "out"
    assert stnet_main(["predict", str(photo.parent), "--output-dir", str(out), "--no-render", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "skipped b_huge.png:" in err and "MP limit" in err
    assert [im["file"] for im in json.loads((out / "predictions.json").read_text())["images"]] == ["a.png"]


@pytest.fixture
def good_cache(tmp_path: Path, syn: Path) -> Path:
    out = tmp_path / "good.npz"
    assert stnet_main(["cache", str(_recipe(tmp_path, syn)), "-o", str(out), "--resolution", "1"]) == 0
    return out


def _rewrite(src: Path, dst: Path, **change) -> Path:
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays.update(change)
    np.savez(dst, **arrays)
    return dst


def _load(path: Path):
    from stnet.data.build import build_skeleton
    from stnet.data.config import DataConfig
    from stnet.data.crop_cache import _Cache, load_cache_records

    _Cache._open.clear()
    return load_cache_records(path, build_skeleton(DataConfig(skeleton="coco17")))


@pytest.mark.parametrize("field,make,expect", [
    ("offsets", lambda a: a["offsets"] + 10**12, "'offsets' must rise from 0"),
    ("offsets", lambda a: -a["offsets"], "'offsets' must rise from 0"),
    ("offsets", lambda a: a["offsets"][:-2], "'offsets' must rise from 0"),
    ("offsets", lambda a: np.r_[a["offsets"][:-2], a["offsets"][-1]], "'keypoints' has shape"),
    ("meta", lambda a: np.frombuffer(b"[1, 2]", np.uint8), "'meta' is list"),
    ("meta", lambda a: np.frombuffer(b"\xff\xfe", np.uint8), "'meta' is not UTF-8 JSON"),
    ("jpeg", lambda a: a["jpeg"].astype(np.float32), "'jpeg' must be 1-D uint8"),
])
def test_10_crafted_cache_arrays_are_one_line(tmp_path: Path, good_cache: Path, field, make, expect):
    with np.load(good_cache) as z:
        arrays = {k: z[k] for k in z.files}
    bad = _rewrite(good_cache, tmp_path / "bad.npz", **{field: make(arrays)})
    with pytest.raises(ValueError, match=expect):
        _load(bad)


def test_10_cache_zip_bomb_and_forged_shape_are_refused_before_loading(tmp_path: Path, good_cache: Path):
    with np.load(good_cache) as z:
        arrays = {k: z[k] for k in z.files}
    bomb = tmp_path / "bomb.npz"
    np.savez_compressed(bomb, **{**arrays, "jpeg": np.zeros(40 << 20, np.uint8)})
    assert bomb.stat().st_size < (1 << 20)
    with pytest.raises(ValueError, match="member jpeg.npy declares .* refused"):
        _load(bomb)
    import zipfile

    forged = tmp_path / "forged.npz"
    header = np.lib.format  # a 1e15-element header over a few bytes of data
    with zipfile.ZipFile(forged, "w") as zf:
        for k, v in arrays.items():
            with zf.open(f"{k}.npy", "w") as f:
                if k == "jpeg":
                    header.write_array_header_1_0(f, {"descr": "|u1", "fortran_order": False,
                                                      "shape": (10**15,)})
                    f.write(b"\0" * 64)
                else:
                    header.write_array(f, v)
    with pytest.raises(ValueError, match=r"declares shape \(1000000000000000,\)"):
        _load(forged)


def test_10_noise_jpeg_bytes_fail_as_an_unreadable_crop(tmp_path: Path, good_cache: Path):
    from stnet.data.crop_cache import _Cache
    from stnet.data.records import ImageReadError

    with np.load(good_cache) as z:
        arrays = {k: z[k] for k in z.files}
    noise = np.random.default_rng(0).integers(0, 256, arrays["jpeg"].size, dtype=np.uint8)
    bad = _rewrite(good_cache, tmp_path / "noise.npz", jpeg=noise)
    _load(bad)
    with pytest.raises(ImageReadError, match="crop 0 of the cache cannot be decoded"):
        _Cache.get(bad).decode(0)


# ------------------------------------------------------------------------------ "Also" cases
def _onnx_graph(path: Path, out_shape: list, op: str = "Reshape") -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    inp = helper.make_tensor_value_info("images", TensorProto.FLOAT, ["b", 3, 64, 48])
    out = helper.make_tensor_value_info("heatmaps", TensorProto.FLOAT, out_shape)
    shape = helper.make_tensor("shape", TensorProto.INT64, [3], [-1, 14, 16])
    nodes = [helper.make_node("Constant", [], ["s"], value=shape), helper.make_node(op, ["images", "s"], ["heatmaps"])]
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", [inp], [out]),
                                opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_also_wrong_shaped_onnx_model_is_one_line(tmp_path: Path, photo: Path, capsys):
    pytest.importorskip("onnxruntime")
    model = _onnx_graph(tmp_path / "rank3.onnx", ["b", 14, 16])
    rc = stnet_main(["predict", str(photo), "--model", str(model), "--skeleton", "lsp", "--output-dir",
                     str(tmp_path / "o"), "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1 and "Traceback" not in err
    assert f"skipped a.png: {model}: the graph fails on a (1, 3, 64, 48) input" in err


def test_also_damaged_openvino_ir_is_one_line(tmp_path: Path, photo: Path, capsys):
    pytest.importorskip("openvino")
    xml = tmp_path / "bad.xml"
    xml.write_text("<net><garbage")
    xml.with_suffix(".bin").write_bytes(b"junk")
    assert stnet_main(["predict", str(photo), "--model", str(xml), "--output-dir", str(tmp_path / "o")]) == 2
    assert f"{xml}: OpenVINO cannot read this model" in _one_error_line(capsys.readouterr().err, "predict")


def test_also_wrong_shaped_graph_on_openvino_is_one_line(tmp_path: Path, photo: Path, capsys):
    pytest.importorskip("openvino")
    model = _onnx_graph(tmp_path / "rank3.onnx", ["b", 14, 16])
    assert stnet_main(["predict", str(photo), "--model", str(model), "--skeleton", "lsp", "--backend", "openvino",
                       "--output-dir", str(tmp_path / "o")]) == 2
    assert "OpenVINO cannot compile the graph" in _one_error_line(capsys.readouterr().err, "predict")


def test_also_score_stdin_with_a_bad_bbox(tmp_path: Path, monkeypatch, capsys):
    import io

    g, r = _gt_and_results(tmp_path)
    res = json.loads(r.read_text())
    res[0]["bbox"] = "x"
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps(res)))
    assert stnet_main(["score", "--gt", str(g), "--pred", "-"]) == 2
    assert "entry 0 (image_id" in (line := _one_error_line(capsys.readouterr().err, "score")) and "'bbox' is x" in line


def test_also_pack_json_input_size_is_bounded_and_sha256_checked(checkpoint: Path, tmp_path: Path):
    from stnet.engine.pack import pack_weights
    from stnet.model_files import load_model_ref

    pt, js = pack_weights(checkpoint, "mine", out_dir=tmp_path / "w")
    assert load_model_ref(pt).kind == "pack"
    meta = json.loads(js.read_text())
    js.write_text(json.dumps({**meta, "input_size": [100000, 100000]}))
    with pytest.raises(ValueError, match=r"input_size \[100000, 100000\]: expected \[H, W\], integers from 8"):
        load_model_ref(pt)
    js.write_text(json.dumps(meta))
    data = bytearray(pt.read_bytes())
    data[-1] ^= 0xFF
    pt.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match its json: sha256"):
        load_model_ref(pt)


def test_also_ann_whose_top_level_is_a_list(tmp_path: Path, photo: Path, capsys):
    ann = tmp_path / "ann.json"
    ann.write_text("[1, 2]")
    assert stnet_main(["predict", str(photo), "--format", "coco", "--ann", str(ann), "--output-dir",
                       str(tmp_path / "o")]) == 2
    assert f"--ann {ann}: expected a COCO annotation json" in _one_error_line(capsys.readouterr().err, "predict")
    ann.write_text(json.dumps({"images": [{"file_name": "a.png"}]}))
    assert stnet_main(["predict", str(photo), "--format", "coco", "--ann", str(ann)]) == 2
    assert "images[0] needs 'id' and 'file_name'" in _one_error_line(capsys.readouterr().err, "predict")


@pytest.mark.parametrize("scale", ["0", "nan", "-1", "1000"])
def test_also_browse_scale(syn: Path, tmp_path: Path, capsys, scale: str):
    assert stnet_main(["browse", "--dataset", "coco", "--root", str(syn), "--ann-file", str(syn / "annotations.json"),
                       "--image-dir", str(syn / "images"), "--scale", scale, "-o", str(tmp_path / "b.png")]) == 2
    assert "--scale" in _one_error_line(capsys.readouterr().err, "browse")
    assert not (tmp_path / "b.png").exists()


def test_also_predict_empty_input_is_refused(tmp_path: Path, capsys):
    assert stnet_main(["predict", "", "--output-dir", str(tmp_path / "o")]) == 2
    assert "input is an empty string" in _one_error_line(capsys.readouterr().err, "predict")
    assert not (tmp_path / "o").exists()


def test_also_overlay_names_never_collide():
    from stnet.apps.predict import output_names

    names = ["demo.jpg", "demo.png", "demo_png.png", "Demo_PNG.jpeg", "a/x.png"]
    out = output_names(names)
    assert len({v.lower() for v in out.values()}) == len(names)
    assert out["demo.png"] == "demo_png.png" and out["a/x.png"] == "a/x.png"


@pytest.mark.parametrize("args,expect", [
    (["predict", "IMG", "--det-score", "nan"], "--det-score nan"),
    (["predict", "IMG", "--det-nms", "inf"], "--det-nms inf"),
    (["predict", "IMG", "--smooth-beta", "nan"], "--smooth-beta nan: expected a finite number >= 0"),
    (["predict", "IMG", "--smooth-min-cutoff", "0"], "--smooth-min-cutoff 0.0: expected a finite number > 0"),
    (["bench", "--backends", "foo", "eager"], "--backends foo: unknown"),
])
def test_also_bad_numbers_and_names_fail_before_work(photo: Path, capsys, args, expect):
    args = [str(photo) if a == "IMG" else a for a in args]
    assert stnet_main(args) == 2
    assert expect in _one_error_line(capsys.readouterr().err, args[0])


def test_also_pack_metrics_with_nan(checkpoint: Path, tmp_path: Path, capsys):
    m = tmp_path / "m.json"
    m.write_text('{"AP": NaN}')
    assert stnet_main(["pack", str(checkpoint), "--name", "n", "--out-dir", str(tmp_path / "w"),
                       "--metrics", str(m)]) == 2
    assert "--metrics" in (line := _one_error_line(capsys.readouterr().err, "pack")) and "NaN" in line
    assert not (tmp_path / "w").exists()


def test_also_a_bare_key_error_says_what_it_is(monkeypatch, capsys):
    import stnet.engine.plot as plot

    def missing(*a, **k):
        raise KeyError("lr_lambdas")

    monkeypatch.setattr(plot, "plot_run", missing)
    assert stnet_main(["plot", "x"]) == 2
    assert _one_error_line(capsys.readouterr().err, "plot") == (
        "stnet plot: error: a file this command read lacks the field 'lr_lambdas' (STNET_DEBUG=1 shows where)")


def test_also_resume_from_best_pt_does_not_duplicate_epoch_rows(tmp_path: Path):
    from stnet.engine.logger import RunLogger, read_metrics

    log = RunLogger(tmp_path, tensorboard=False)
    for e in (1, 2, 3):
        log.log_epoch({"epoch": e, "train_loss": 1.0 / e})
    log.forget_after(1)  # resuming from best.pt saved after epoch 1 trains epochs 2 and 3 again
    log.log_epoch({"epoch": 2, "train_loss": 0.4})
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["epoch"] for ln in lines] == [1, 2]
    assert [r["train_loss"] for r in read_metrics(tmp_path)] == [1.0, 0.4]
    assert (tmp_path / "metrics.csv").read_text().splitlines()[1:] == ["1,,1.0,,,,,", "2,,0.4,,,,,"]


def test_also_resume_with_a_foreign_scheduler_state_names_it(tmp_path: Path):
    from types import SimpleNamespace

    from stnet.engine.state import restore_run_state
    from stnet.model_files import CheckpointError

    model = torch.nn.Linear(2, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda e: 1.0)
    run = SimpleNamespace(model=model, optimizer=opt, scheduler=sched, scaler=None, ema=None)
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": {}, "epoch": 1, "iteration": 1}
    with pytest.raises(CheckpointError, match=r"--resume x.pt: its scheduler state does not fit this run"):
        restore_run_state(run, state, Path("x.pt"))  # type: ignore[arg-type]
