"""stnet.io.atomic_write: the one way stnet writes files that must not be seen half-written."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from stnet.io import atomic_write, write_bytes, write_text


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_writes_with_the_umask_normal_mode_and_leaves_no_temp_file(tmp_path: Path):
    umask = os.umask(0o022)
    try:
        p = write_text(tmp_path / "sub" / "a.json", "{}\n")  # the folder is created
        assert p.read_text() == "{}\n"
        assert _mode(p) == 0o644  # not mkstemp's 0600
        write_bytes(p, b"new")
        assert p.read_bytes() == b"new"
    finally:
        os.umask(umask)
    assert [f.name for f in (tmp_path / "sub").iterdir()] == ["a.json"]


def test_a_failing_writer_leaves_the_old_file(tmp_path: Path):
    p = write_text(tmp_path / "last.pt", "old")
    with pytest.raises(RuntimeError, match="writer died"):
        with atomic_write(p) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer died")
    assert p.read_text() == "old"
    assert [f.name for f in tmp_path.iterdir()] == ["last.pt"]


def test_suffix_and_writing_nothing(tmp_path: Path):
    with atomic_write(tmp_path / "v.mp4", suffix=".mp4") as tmp:
        assert tmp.name.endswith(".mp4") and tmp.parent == tmp_path
        tmp.unlink()  # e.g. the video writer could not be opened
    assert list(tmp_path.iterdir()) == []


def test_disk_full_names_the_file_system_and_file(tmp_path: Path):
    import errno

    from stnet.io import DiskFullError

    def full(path: Path) -> None:
        path.write_bytes(b"part")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFullError, match=rf"^no space left on /\S* writing {tmp_path / 'last.pt'}$") as e:
        with atomic_write(tmp_path / "last.pt") as tmp:
            full(tmp)
    assert e.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="not a disk problem"):  # other errors pass unchanged
        with atomic_write(tmp_path / "x") as tmp:
            raise ValueError("not a disk problem")
