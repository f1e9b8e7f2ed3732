"""Disk full and read-only, for real (issue 28 item 3): every command that writes files is run
against a small tmpfs, once with room (its outputs are kept), then again with the file system
filled to the last byte or remounted read-only. Each must fail with one line naming the file
(no traceback) and leave the files of the first run intact and no temporary file behind.

Mounting needs root (CAP_SYS_ADMIN); elsewhere the tests are skipped with the reason. As
non-root, ``unshare -rm`` (a user + mount namespace) would allow the mount too, but the code under
test would then have to run inside that namespace, in a subprocess."""
from __future__ import annotations

import errno
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from stnet.cli import main as stnet_main
from stnet.model_files import load_state as load_checkpoint
from stnet.io import DiskFullError, WriteError, atomic_write, write_text
from helpers.synthetic import make_synthetic_coco
from test_engine_train import recipe

FAST = ["--set", "runtime.max_iters_per_epoch=1", "--set", "eval.flip_test=false"]


class SmallFS:
    """A size-limited tmpfs mounted at ``root``: ``fill()`` takes every free byte, ``free()``
    gives them back, ``read_only()`` / ``writable()`` remount it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.filler = root / "filler"

    def _mount(self, *args: str) -> None:
        r = subprocess.run(["mount", *args, str(self.root)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr

    def fill(self) -> None:
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            for chunk in (b"\0" * (1 << 20), b"\0" * 4096, b"\0"):
                while True:
                    try:
                        os.write(fd, chunk)
                    except OSError as e:
                        assert e.errno == errno.ENOSPC, e
                        break
        finally:
            os.close(fd)

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)

    def read_only(self) -> None:
        self._mount("-o", "remount,ro")

    def writable(self) -> None:
        self._mount("-o", "remount,rw")


@pytest.fixture
def small_fs(tmp_path) -> Iterator[Callable[[int], SmallFS]]:
    """``small_fs(megabytes)`` mounts a tmpfs of that size (unmounted after the test)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root")
    mounted: list[Path] = []

    def mount(megabytes: int) -> SmallFS:
        root = tmp_path / f"fs{len(mounted)}"
        root.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={megabytes}m", "tmpfs", str(root)],
                           capture_output=True, text=True)
        if r.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip() or r.returncode}")
        mounted.append(root)
        return SmallFS(root)

    yield mount
    for root in mounted:
        subprocess.run(["umount", "-l", str(root)], capture_output=True)


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """Synthetic data, its recipe and a checkpoint of it (untrained weights; on the ordinary disk)
    to evaluate, pack, export and predict with."""
    from stnet.engine.checkpoint import save_checkpoint
    from stnet.engine.config import config_to_dict, load_config
    from stnet.engine.train import build_model

    root = tmp_path_factory.mktemp("df")
    make_synthetic_coco(root / "syn", num_images=6, image_size=(80, 64))
    cfg = recipe(root, root / "syn", root / "run", epochs=1)
    config = load_config(cfg)
    ckpt = save_checkpoint({"model": build_model(config, 17).state_dict(), "config": config_to_dict(config),
                            "epoch": 1, "iteration": 1, "best_metric": 0.0}, root / "run" / "best.pt")
    return {"root": root, "syn": root / "syn", "cfg": cfg, "ckpt": ckpt}


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "filler"}


def _one_line_error(rc: int, err: str, command: str, *, what: str) -> None:
    assert rc == 2, err
    lines = err.strip().splitlines()  # progress notes may come first
    assert lines[-1].startswith(f"stnet {command}: error: ") and what in lines[-1], err
    assert not any(k in line for line in lines[:-1] for k in ("error", "skipped", "Traceback")), err


def _no_temp_files(folder: Path) -> None:
    assert [p for p in folder.rglob(".*") if p.name != ".lock"] == []


def refused_then_intact(fs: SmallFS, argv: list[str], capsys: Any, how: str) -> dict[str, bytes]:
    """Run ``argv`` with room, then with ``fs`` full (``how="full"``) or read-only: one line, the
    first run's files unchanged, no temporary file. Returns the first run's files."""
    assert stnet_main(argv) == 0, capsys.readouterr().err
    before = _snapshot(fs.root)
    assert before, "the command wrote nothing under the small file system"
    capsys.readouterr()
    fs.fill() if how == "full" else fs.read_only()
    try:
        rc = stnet_main(argv)
        err = capsys.readouterr().err
    finally:
        fs.free() if how == "full" else fs.writable()
    _one_line_error(rc, err, argv[0], what="no space left on" if how == "full" else "read-only file system")
    assert str(fs.root) in err
    assert _snapshot(fs.root) == before
    _no_temp_files(fs.root)
    return before


HOW = pytest.mark.parametrize("how", ["full", "read-only"])
# The default suite keeps one case per writer; the rest run with -m slow.
HOW_SLOW_RO = pytest.mark.parametrize("how", ["full", pytest.param("read-only", marks=pytest.mark.slow)])


@HOW_SLOW_RO
def test_training_checkpoints(trained, small_fs, capsys, monkeypatch, how):
    """The disk fills up (or turns read-only) after epoch 1 was saved and logged: epoch 2's first
    checkpoint write fails with one line, last.pt/best.pt/metrics of epoch 1 stay whole, and once
    there is room again the run resumes and finishes."""
    import stnet.engine.logger as logger

    fs = small_fs(64)
    out = fs.root / "run"
    (trained["root"] / f"train_{how}").mkdir()
    cfg = str(recipe(trained["root"] / f"train_{how}", trained["syn"], out, epochs=2))
    real_log = logger.RunLogger.log_epoch

    def log_then_break_the_disk(self: Any, record: dict[str, Any]) -> None:
        real_log(self, record)
        fs.fill() if how == "full" else fs.read_only()

    monkeypatch.setattr(logger.RunLogger, "log_epoch", log_then_break_the_disk)
    try:
        rc = stnet_main(["train", cfg, *FAST])
    finally:
        monkeypatch.undo()
        fs.free() if how == "full" else fs.writable()
    err = capsys.readouterr().err
    _one_line_error(rc, err, "train", what="no space left on" if how == "full" else "read-only file system")
    assert f"writing {out / 'last.pt'}; {out / 'last.pt'} holds epoch 1 (continue with --resume auto)" in err \
        or f"cannot write {out / 'last.pt'}: read-only file system {fs.root}; {out / 'last.pt'} holds epoch 1" in err
    assert load_checkpoint(out / "last.pt")["epoch"] == 1 and load_checkpoint(out / "best.pt")["epoch"] == 1
    assert [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()] == [1]
    _no_temp_files(out)
    assert not (out / ".lock").exists() or how == "read-only"  # a read-only folder keeps its lock file
    assert stnet_main(["train", cfg, *FAST, "--resume", "auto"]) == 0
    assert load_checkpoint(out / "last.pt")["epoch"] == 2


@pytest.mark.slow
@HOW
def test_resume_on_a_full_or_read_only_disk(trained, small_fs, capsys, how):
    """Starting (resuming) a run in a folder that cannot be written is one line, nothing changes."""
    fs = small_fs(64)
    out = fs.root / "run"
    (trained["root"] / f"resume_{how}").mkdir()
    cfg = str(recipe(trained["root"] / f"resume_{how}", trained["syn"], out, epochs=2))
    assert stnet_main(["train", cfg, *FAST, "--set", "schedule.epochs=1"]) == 0
    capsys.readouterr()
    before = _snapshot(fs.root)
    fs.fill() if how == "full" else fs.read_only()
    try:
        rc = stnet_main(["train", cfg, *FAST, "--set", "schedule.epochs=1", "--resume", "auto"])
        err = capsys.readouterr().err
    finally:
        fs.free() if how == "full" else fs.writable()
    _one_line_error(rc, err, "train", what="no space left on" if how == "full" else "read-only file system")
    assert _snapshot(fs.root) == before
    _no_temp_files(fs.root)


@HOW_SLOW_RO
def test_eval_outputs(trained, small_fs, capsys, how):
    fs = small_fs(16)
    refused_then_intact(fs, ["eval", str(trained["cfg"]), "--checkpoint", str(trained["ckpt"]), "--output-dir",
                             str(fs.root / "ev"), *FAST], capsys, how)


@HOW
def test_crop_cache(trained, small_fs, capsys, how):
    fs = small_fs(16)
    refused_then_intact(fs, ["cache", str(trained["cfg"]), "-o", str(fs.root / "crops.npz")], capsys, how)


@HOW
def test_pack(trained, small_fs, capsys, how):
    fs = small_fs(48)
    # --overwrite: the second run must reach the full disk, not the refusal to replace the first pack
    refused_then_intact(fs, ["pack", str(trained["ckpt"]), "--name", "tiny.syn_64x64", "--out-dir",
                             str(fs.root / "w"), "--overwrite"], capsys, how)


@pytest.mark.slow
@HOW
def test_export(trained, small_fs, capsys, how):
    pytest.importorskip("onnx")
    fs = small_fs(48)
    refused_then_intact(fs, ["export", str(trained["ckpt"]), "-o", str(fs.root / "m.onnx"), "--no-check"],
                        capsys, how)


@HOW
def test_predict_outputs(trained, small_fs, capsys, how):
    fs = small_fs(16)
    out = fs.root / "out"
    refused_then_intact(fs, ["predict", str(trained["syn"] / "images"), "--model", str(trained["ckpt"]),
                             "--output-dir", str(out), "--json-out", str(out / "res.json"), "--no-progress"],
                        capsys, how)


def test_write_errors_without_a_mount(tmp_path, monkeypatch):
    """What the mounts above show, where no file system can be mounted: a refused temporary file
    is a WriteError naming the destination; an error that only says "No space left on device" in
    its text (safetensors) is a DiskFullError; an error about another file passes unchanged."""
    def refused(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / ".x.json.abc.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refused)
    with pytest.raises(WriteError, match=rf"^cannot write {tmp_path / 'x.json'}: read-only file system /"):
        write_text(tmp_path / "x.json", "{}")
    monkeypatch.undo()

    class SafetensorError(Exception):
        pass

    with pytest.raises(DiskFullError, match=rf"^no space left on /\S* writing {tmp_path / 'w.safetensors'}$"):
        with atomic_write(tmp_path / "w.safetensors"):
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
    with pytest.raises(PermissionError):  # reading another folder's file is not a failed write
        with atomic_write(tmp_path / "out" / "y.bin"):
            raise PermissionError(errno.EACCES, "Permission denied", "/elsewhere/input.jpg")
    assert [p.name for p in tmp_path.rglob("*")] == ["out"]  # no temporary file left
