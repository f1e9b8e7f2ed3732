"""The run folder (issue 12): one training per folder (lock), stale temp files, what --resume may change."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from stnet.engine.config import config_to_dict, load_config
from stnet.engine.rundir import (RunLock, RunLockedError, record_changes, remove_stale_temp_files,
                                 resume_changes)
from stnet.io import atomic_write


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_second_training_in_a_locked_folder_is_refused(tmp_path: Path):
    with RunLock(tmp_path) as lock:
        info = json.loads(lock.path.read_text())
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname()
        # another live process holds it: what a second `stnet train` in this folder sees
        lock.path.write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
        with pytest.raises(RunLockedError, match=rf"in use by another training \(pid {os.getppid()} on"):
            RunLock(tmp_path).acquire()
        lock.path.write_text(json.dumps(info))
    assert not lock.path.exists()  # released


def test_stale_lock_of_a_dead_process_is_taken_over_with_a_note(tmp_path: Path):
    (tmp_path / ".lock").write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname()}))
    notes: list[str] = []
    with RunLock(tmp_path, say=notes.append) as lock:
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert len(notes) == 1 and "taking over the stale lock" in notes[0]


def test_interrupted_write_temp_files_are_removed(tmp_path: Path):
    class Killed(BaseException):
        pass

    # SIGKILL skips atomic_write's cleanup: simulate by leaving its temp file in place
    with pytest.raises(Killed):
        with atomic_write(tmp_path / "last.pt") as tmp:
            tmp.write_bytes(b"x" * 100)
            kept = tmp.with_name(tmp.name + "-copy.tmp")
            kept.write_bytes(tmp.read_bytes())
            raise Killed
    (tmp_path / "eval").mkdir()
    other = tmp_path / "eval" / ".metrics.json.abc.tmp"
    other.write_text("{")
    (tmp_path / "notes.tmp").write_text("a user's file, not ours")
    assert sorted(remove_stale_temp_files(tmp_path)) == sorted([kept, other])
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["notes.tmp"]


def test_resume_refuses_changes_that_break_exact_resumption():
    old = config_to_dict(load_config(None, {"optim.lr": 1e-3}))
    new = config_to_dict(load_config(None, {"optim.lr": 5e-4, "schedule.epochs": 300}))
    with pytest.raises(ValueError, match=r"--resume last.pt: .*optim.lr: 0.001 -> 0.0005; "
                                         r"schedule.epochs: 210 -> 300"):
        resume_changes(old, new, "last.pt")
    other_skeleton = config_to_dict(load_config(None, {"train.skeleton": "lsp14"}))
    with pytest.raises(ValueError, match=r"train.skeleton: 'coco17' -> 'lsp14'"):
        resume_changes(old, other_skeleton, "last.pt")


def test_resume_records_allowed_changes_and_config_yaml_stays(tmp_path: Path):
    old = config_to_dict(load_config(None, {}))
    new = config_to_dict(load_config(None, {"runtime.workers": 1, "eval.flip_test": False}))
    changes = resume_changes(old, new, "last.pt")
    assert changes == {"eval.flip_test": {"old": True, "new": False}, "runtime.workers": {"old": 4, "new": 1}}
    assert resume_changes(old, old, "last.pt") == {}
    record_changes(tmp_path, 3, changes)
    record_changes(tmp_path, 5, {"runtime.workers": {"old": 1, "new": 2}})
    entries = yaml.safe_load((tmp_path / "config_changes.yaml").read_text())
    assert [e["resumed_after_epoch"] for e in entries] == [3, 5]
    assert entries[0]["changes"]["runtime.workers"] == {"old": 4, "new": 1}
