"""Atomic file writes: the one place stnet writes a file that must never be seen half-written.

::

    with atomic_write(run_dir / "last.pt") as tmp:
        torch.save(state, tmp)           # any writer that takes a path

    write_text(path, text)               # shorthands for the common cases
    write_bytes(path, data)

The writer fills a temporary file in the destination's folder (same file system, so the final
``os.replace`` is atomic); on success the file is fsynced, given the mode a plain ``open()`` would
create (``0o666 & ~umask``, 0644 under the usual umask, instead of ``mkstemp``'s 0600), renamed over
the destination and the folder is fsynced. On an exception the temporary file is removed and the
destination is untouched: a kill at any moment leaves the old file or the new one, never half of one.
A write that fails because the disk is full raises :class:`DiskFullError` ("no space left on DEVICE
writing PATH") whatever the writer raised (torch reports it as "unexpected pos").
"""
from __future__ import annotations

import contextlib
import json
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator

__all__ = ["atomic_write", "write_bytes", "write_text", "read_json", "DiskFullError", "TMP_PREFIX", "TMP_SUFFIX"]

#: Temporary files of :func:`atomic_write` are ``.<name>.<random><suffix>`` next to the destination.
TMP_PREFIX, TMP_SUFFIX = ".", ".tmp"

#: Below this many free bytes a failed write is taken for a full disk (writers such as torch.save
#: report ENOSPC as a RuntimeError without the errno).
_NEARLY_FULL = 1 << 20


class DiskFullError(OSError):
    """A write that failed for lack of space; the message names the file system and the file."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        super().__init__(errno.ENOSPC, f"no space left on {_mount_point(self.path.parent)} writing {self.path}")

    def __str__(self) -> str:
        return str(self.strerror)


def _mount_point(folder: Path) -> str:
    """The mount point holding ``folder`` (what ``df`` calls the file system), else the folder."""
    try:
        p = folder.resolve()
        dev = p.stat().st_dev
        while p.parent != p and p.parent.stat().st_dev == dev:
            p = p.parent
        return str(p)
    except OSError:
        return str(folder)


def _disk_full(exc: BaseException, folder: Path) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    if isinstance(exc, (OSError, RuntimeError)):
        try:
            return shutil.disk_usage(folder).free < _NEARLY_FULL
        except OSError:
            return False
    return False


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _fsync_path(path: str | os.PathLike, directory: bool = False) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:  # e.g. a folder that cannot be opened on this platform
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, *, suffix: str = TMP_SUFFIX) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block ends without an exception, move the
    finished file onto ``path`` (see the module docstring). ``suffix`` ends the temporary name, for
    writers that choose a format by extension (e.g. ``".mp4"`` for ``cv2.VideoWriter``). A block
    that deletes the temporary file writes nothing (``path`` is left as it was)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if not tmp.exists():
            return
        _fsync_path(tmp)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException as e:
        full = _disk_full(e, path.parent)  # before unlinking, which frees the space
        with contextlib.suppress(OSError):
            tmp.unlink()
        if full and not isinstance(e, DiskFullError):
            raise DiskFullError(path) from e
        raise
    _fsync_path(path.parent, directory=True)  # make the rename itself durable


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_write(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    return write_bytes(path, text.encode("utf-8"))


def read_json(path: str | os.PathLike, what: str = "") -> Any:
    """The parsed json of ``path``; a missing file raises FileNotFoundError and an unreadable one
    ValueError, each one line naming the file (and ``what`` it is, e.g. "the sidecar of x.pt")."""
    p = Path(path)
    label = f"{p} ({what})" if what else str(p)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(f"{label} not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{label}: cannot be read ({e})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"{label}: not valid JSON: {e}") from None
