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
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_write", "write_bytes", "write_text"]


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
def atomic_write(path: str | os.PathLike, *, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; when the block ends without an exception, move the
    finished file onto ``path`` (see the module docstring). ``suffix`` ends the temporary name, for
    writers that choose a format by extension (e.g. ``".mp4"`` for ``cv2.VideoWriter``). A block
    that deletes the temporary file writes nothing (``path`` is left as it was)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if not tmp.exists():
            return
        _fsync_path(tmp)
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
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
