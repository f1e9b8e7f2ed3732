"""`stnet predict` at scale: JSON Lines output, --resume after a kill, the read-ahead thread."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from stnet.apps.predict import read_ahead, read_jsonl
from stnet.cli import main

SIZE = (128, 96)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, random_stnet) -> Path:
    d = tmp_path_factory.mktemp("ckpt")
    cfg = {"model": {"name": "stnet_1s", "overrides": {}}, "input_size": list(SIZE),
           "train": {"skeleton": "coco17"}, "val": {"skeleton": "coco17"}}
    torch.save({"model": random_stnet.state_dict(), "config": cfg, "epoch": 1}, d / "best.pt")
    return d / "best.pt"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    for i in range(6):
        cv2.imwrite(str(d / f"im{i}.jpg"), rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    return d


def _predict(ckpt, folder, out, *extra) -> int:
    return main(["predict", str(folder), "--model", str(ckpt), "--no-render", "--no-progress",
                 "--output-dir", str(out.parent), "--json-out", str(out), *extra])


def test_jsonl_equals_the_json_document(ckpt, folder, tmp_path):
    assert _predict(ckpt, folder, tmp_path / "r.json") == 0
    assert _predict(ckpt, folder, tmp_path / "r.jsonl") == 0
    doc = json.loads((tmp_path / "r.json").read_text())
    lines = [json.loads(x) for x in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert lines[0] == {k: v for k, v in doc.items() if k != "images"}
    assert lines[1:] == doc["images"] and len(lines) == 7
    header, records = read_jsonl(tmp_path / "r.jsonl")
    assert header == lines[0] and records == doc["images"]


def test_resume_after_a_kill_redoes_nothing(ckpt, folder, tmp_path, capsys):
    out = tmp_path / "r.jsonl"
    assert _predict(ckpt, folder, out) == 0
    full = out.read_bytes()
    lines = full.splitlines(keepends=True)
    # a kill while writing image 3's line: header + 2 records, then half a line
    out.write_bytes(b"".join(lines[:3]) + lines[3][: len(lines[3]) // 2])
    capsys.readouterr()
    assert _predict(ckpt, folder, out, "--resume") == 0
    assert "2 already in" in capsys.readouterr().out
    files = [json.loads(x)["file"] for x in out.read_text().splitlines()[1:]]
    assert files == [f"im{i}.jpg" for i in range(6)]  # each once, the torn one redone, order kept
    assert out.read_bytes() == full  # same results as the uninterrupted run (one model, one input)
    assert _predict(ckpt, folder, out, "--resume") == 0  # all done: nothing appended
    assert out.read_bytes() == full
    assert _predict(ckpt, folder, out) == 0  # without --resume: replaced, as a .json is
    assert out.read_bytes() == full


def test_resume_refusals(ckpt, folder, tmp_path, capsys):
    assert _predict(ckpt, folder, tmp_path / "r.json", "--resume") == 2
    assert "--resume needs a JSON Lines" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"stnet": "0", "model": "other.pt", "input_size": [1, 1], "skeleton": {}}\n')
    assert _predict(ckpt, folder, bad, "--resume") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--resume" in err and "model" in err and str(bad) in err
    bad.write_text('{"stnet": "0"}\nnot json\n{"file": "x"}\n')
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        read_jsonl(bad)


def test_read_ahead_keeps_order_and_hands_errors_over(tmp_path):
    rng = np.random.default_rng(1)
    items = []
    for i in range(20):
        p = tmp_path / f"{i:02d}.png"
        if i % 7 == 3:
            p.write_bytes(b"not an image")
        else:
            cv2.imwrite(str(p), rng.integers(0, 255, (8 + i, 10, 3), dtype=np.uint8))
        items.append((p, p.name))
    items.append((tmp_path / "clip.mp4", "clip.mp4"))
    got = list(read_ahead(items, depth=2))
    assert [n for _, n, _ in got] == [n for _, n in items]
    for (_, n, x) in got[:-1]:
        bad = int(n[:2]) % 7 == 3
        assert isinstance(x, ValueError) if bad else x.shape == (8 + int(n[:2]), 10, 3)
    assert isinstance(got[-1][2], ValueError) and "video" in str(got[-1][2])
    gen = read_ahead(items, depth=1)
    next(gen)
    gen.close()  # a consumer that stops early leaves no thread blocked on the full queue


def test_folder_skips_unreadable_images_in_jsonl(ckpt, tmp_path, capfd):
    d = tmp_path / "in"
    d.mkdir()
    cv2.imwrite(str(d / "a.jpg"), np.zeros((40, 30, 3), np.uint8))
    (d / "b.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (d / "c.txt").write_text("hello")
    cv2.imwrite(str(d / "d.png"), np.full((40, 30, 3), 90, np.uint8))
    png = cv2.imencode(".png", np.zeros((50, 50, 3), np.uint8))[1].tobytes()
    (d / "e.png").write_bytes(png[:60])  # truncated inside its first chunk
    out = tmp_path / "r.jsonl"
    assert _predict(ckpt, d, out) == 0
    err = capfd.readouterr().err  # fd 2: what OpenCV's decoders print as well as Python's
    assert "skipped b.jpg" in err and "skipped c.txt" in err
    assert "skipped e.png" in err and "damaged or truncated PNG" in err
    assert "WARN" not in err and "libpng" not in err and "grfmt" not in err, err
    _, records = read_jsonl(out)
    assert [r["file"] for r in records] == ["a.jpg", "d.png"]
