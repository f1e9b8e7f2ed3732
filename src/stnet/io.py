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
writing PATH") whatever the writer raised (torch reports it as "unexpected pos", safetensors as its
own error type); one refused by the file system (mounted read-only, no permission on the folder)
raises :class:`WriteError` ("cannot write PATH: read-only file system MOUNT"). Both are
:class:`WriteError`, which the CLI reports in one line.
"""
from __future__ import annotations

import contextlib
import json
import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Union

__all__ = ["atomic_write", "write_bytes", "write_text", "read_json", "WriteError", "DiskFullError", "write_error",
           "TMP_PREFIX", "TMP_SUFFIX", "OverwriteError", "refuse_overwrite", "same_file", "os_error_line"]

#: Temporary files of :func:`atomic_write` are ``.<name>.<random><suffix>`` next to the destination.
TMP_PREFIX, TMP_SUFFIX = ".", ".tmp"

#: Below this many free bytes a failed write is taken for a full disk (writers such as torch.save
#: report ENOSPC as a RuntimeError without the errno).
_NEARLY_FULL = 1 << 20


#: errno values of a file system that refuses the write itself (not the data being written).
_REFUSED = (errno.EROFS, errno.EACCES, errno.EPERM)


class WriteError(OSError):
    """A file that could not be written; the message names the file, and the file system when it
    is read-only. ``errno`` is the original one."""

    def __init__(self, path: str | os.PathLike, code: int = errno.EROFS, message: str | None = None) -> None:
        self.path = Path(path)
        if message is None:
            reason = os.strerror(code).lower()
            where = f" {_mount_point(self.path.parent)}" if code == errno.EROFS else ""
            message = f"cannot write {self.path}: {reason}{where}"
        super().__init__(code, message)

    def __str__(self) -> str:
        return str(self.strerror)


class DiskFullError(WriteError):
    """A write that failed for lack of space; the message names the file system and the file."""

    def __init__(self, path: str | os.PathLike) -> None:
        path = Path(path)
        super().__init__(path, errno.ENOSPC, f"no space left on {_mount_point(path.parent)} writing {path}")


def write_error(exc: BaseException, path: str | os.PathLike) -> WriteError | None:
    """The :class:`WriteError` that ``exc``, raised while writing ``path``, stands for (a full disk,
    a read-only or forbidden folder), or None when it is about something else."""
    path = Path(path)
    if isinstance(exc, WriteError):
        return exc
    if isinstance(exc, OSError) and exc.errno in _REFUSED:
        # only when it is about the file written (or its temporary file), not one the writer read
        if exc.filename is None or path.is_relative_to(Path(exc.filename).parent):
            return WriteError(path, exc.errno)
        return None
    return DiskFullError(path) if _disk_full(exc, path.parent) else None


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
    if os.strerror(errno.ENOSPC) in str(exc):  # e.g. safetensors' own error type
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
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, expected a file path", str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f"{TMP_PREFIX}{path.name}.", suffix=suffix, dir=path.parent)
    except (FileExistsError, NotADirectoryError):
        raise NotADirectoryError(errno.ENOTDIR, "a folder on this path is a file", str(path)) from None
    except OSError as e:  # name the file asked for, not the temporary one (read-only folder, full disk)
        failed = write_error(e, path)
        if failed is not None:
            raise failed from e
        raise OSError(e.errno, e.strerror, str(path)) from None
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
        failed = write_error(e, path)  # before unlinking, which frees the space
        with contextlib.suppress(OSError):
            tmp.unlink()
        if failed is not None and failed is not e:
            raise failed from e
        raise
    _fsync_path(path.parent, directory=True)  # make the rename itself durable


class OverwriteError(ValueError):
    """An output path that is one of the command's inputs (or a file it must not replace)."""


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether ``a`` and ``b`` name one file: the same resolved path, or (both existing) the same
    inode, which also catches hard links and case-insensitive file systems."""
    try:
        if Path(a).resolve() == Path(b).resolve():
            return True
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


PathLike = Union[str, os.PathLike]


def refuse_overwrite(outputs: Mapping[str, PathLike | None],
                     inputs: Mapping[str, PathLike | Iterable[PathLike] | None]) -> None:
    """The one rule of every command that writes: no output may be a file the command reads.
    ``outputs`` and ``inputs`` map what the user calls each path (``"--json-out"``, ``"--ann"``)
    to the path (None, ``""`` and ``-`` for stdin / stdout are skipped); an input may also be a
    collection of paths (the images a dataset reads). Raises :class:`OverwriteError` naming both,
    before anything is written."""
    for out_name, out in outputs.items():
        if out is None or str(out) in ("", "-"):
            continue
        for in_name, inp in inputs.items():
            if inp is None or str(inp) in ("", "-"):
                continue
            if isinstance(inp, (str, os.PathLike)):
                hit: PathLike | None = inp if same_file(out, inp) else None
            else:  # many paths: compare spellings (no system call per path), then the one match
                want = {os.path.abspath(out), str(Path(out).resolve())}
                hit = next((p for p in inp if os.path.abspath(p) in want), None)
            if hit is not None:
                what = in_name if hit == inp else f"{in_name} {hit}"
                raise OverwriteError(f"{out_name} {out} is the {what} this command reads and would be "
                                     f"overwritten; choose another {out_name}")


def os_error_line(e: OSError) -> str:
    """One line for an OSError: the path(s) and the cause (``PATH: Permission denied``), without
    the ``[Errno 13]`` noise; errors raised with a message of their own keep it."""
    if isinstance(e, DiskFullError) or not e.filename:
        return str(e)
    where = f"{e.filename}" + (f" -> {e.filename2}" if e.filename2 else "")
    cause = e.strerror or str(e)
    return f"{where}: {cause}"


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
    return parse_json(text, label)


def parse_json(text: str | bytes, label: str) -> Any:
    """The parsed json of ``text`` (a file's, or a json string a file holds: a crop cache's meta, a
    graph's card); ValueError ``"LABEL: not valid JSON: ..."`` in one line otherwise, bytes that
    are not UTF-8 and nesting past the parser's stack included."""
    try:
        return json.loads(text)
    except RecursionError:  # [[[[... deeper than the parser's stack
        raise ValueError(f"{label}: not valid JSON: nested too deeply") from None
    except ValueError as e:  # JSONDecodeError, or UnicodeDecodeError for bytes
        raise ValueError(f"{label}: not valid JSON: {str(e).splitlines()[0][:200] if str(e) else type(e).__name__}"
                         ) from None
