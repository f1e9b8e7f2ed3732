"""The run folder: one training at a time (a lock file), no stale temporary files, and what a
``--resume`` may change.

* :class:`RunLock` ``RUN_DIR/.lock`` holds the pid and host of the training that owns the folder.
  A second training in the same folder fails with one line; a lock left by a process that no
  longer exists (killed, machine rebooted) is taken over with a note.
* :func:`remove_stale_temp_files` deletes the ``.NAME.XXXX.tmp`` files an interrupted
  :func:`stnet.io.atomic_write` left behind (a SIGKILL cannot run its cleanup); only safe under the
  lock, when no other writer can be mid-write.
* :func:`resume_changes` compares the checkpoint's config with the new one: a change to a field
  that decides what is trained (model, data, optimiser, schedule, loss, seed, batch size, ...) is
  refused, since the restored optimiser/scheduler state would silently override it; changes to
  how the run is executed or validated (:data:`RESUME_MAY_CHANGE`) are allowed and recorded in
  ``config_changes.yaml``. ``config.yaml`` always stays the config the run started with.
"""
from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Mapping

import yaml

from stnet.io import TMP_PREFIX, TMP_SUFFIX, write_error, write_text
from stnet.model_files import load_state

from .config import _flatten

__all__ = ["RunLock", "RunLockedError", "remove_stale_temp_files", "resume_changes", "record_changes",
           "saved_note", "write_run_config", "check_new_run_dir", "RESUME_MAY_CHANGE", "LOCK_NAME", "CHANGES_NAME",
           "RUN_FILES"]

LOCK_NAME = ".lock"
CHANGES_NAME = "config_changes.yaml"

#: Config fields (dotted; a trailing "." covers a section) a resumed run may change: where and how
#: it runs and how it is validated, not what is trained. ``runtime.device`` and ``runtime.workers``
#: change the floating-point / augmentation order, so a run resumed with them changed is no longer
#: bit-identical to an uninterrupted one (they are recorded like every change).
RESUME_MAY_CHANGE = ("name", "data_root", "eval.", "val.", "runtime.device", "runtime.workers",
                     "runtime.val_batch_size", "runtime.val_interval", "runtime.limit_val",
                     "runtime.log_interval", "runtime.tensorboard", "runtime.output_dir",
                     "runtime.augment_on")  # the same draws either way, pixels within a grey level


#: Files that make a folder a run: a training that does not resume refuses a folder holding one.
RUN_FILES = ("last.pt", "best.pt", "metrics.jsonl")


def check_new_run_dir(run_dir: str | os.PathLike) -> None:
    """Refuse to start a new training in a folder that already holds a run (its checkpoints and
    metrics would be replaced or mixed with the new run's): one line naming what it holds."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ValueError(f"run folder {run_dir} is a file, expected a folder (runtime.output_dir / --output-dir)")
    held = [n for n in RUN_FILES if (run_dir / n).exists()]
    if held:
        raise ValueError(f"run folder {run_dir} already holds a run ({', '.join(held)}); continue it with "
                         "--resume auto, or start a new one with another --output-dir (or --set name=...)")


class RunLockedError(ValueError):
    """The run folder belongs to another training that is still running."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class RunLock:
    """``with RunLock(run_dir):`` owns ``run_dir`` for the block (see the module docstring)."""

    def __init__(self, run_dir: str | os.PathLike, say: Any = print) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self.say = say
        self.held = False

    def _owner(self) -> dict[str, Any]:
        try:
            info = json.loads(self.path.read_text(encoding="utf-8"))
            return info if isinstance(info, dict) else {}
        except (OSError, ValueError):
            return {}  # a lock cut short by a kill while it was written: nobody's

    def acquire(self) -> None:
        try:
            self._acquire()
        except OSError as e:  # a full, read-only or forbidden run folder: one line, not a traceback
            failed = write_error(e, self.path)
            if failed is None or failed is e:
                raise
            raise failed from None

    def _acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                pid, host = owner.get("pid"), owner.get("host")
                same_host = host == me["host"]
                if isinstance(pid, int) and pid != me["pid"] and (not same_host or _pid_alive(pid)):
                    raise RunLockedError(
                        f"run folder {self.path.parent} is in use by another training (pid {pid} on {host}, "
                        f"since {owner.get('started', '?')}); use another --output-dir, or delete "
                        f"{self.path} if that training is gone") from None
                self.say(f"note: taking over the stale lock {self.path} (pid {pid} on {host} is no longer running)")
                try:
                    self.path.unlink()
                except FileNotFoundError:
                    pass
                continue
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as f:
                    f.write(json.dumps(me))
            except BaseException:  # a full disk or Ctrl-C: no empty .lock left behind (acquire says why)
                self.path.unlink(missing_ok=True)
                raise
            self.held = True
            return
        raise RunLockedError(f"could not lock {self.path}: another training keeps taking it")

    def release(self) -> None:
        if self.held:
            self.held = False
            if self._owner().get("pid") == os.getpid():
                try:
                    self.path.unlink(missing_ok=True)
                except OSError:  # the folder turned read-only: the lock stays, and is stale once we exit
                    pass

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def remove_stale_temp_files(run_dir: str | os.PathLike) -> list[Path]:
    """Delete the temporary files interrupted atomic writes left in ``run_dir`` (and its
    subfolders); returns them. Call it only while holding the run's :class:`RunLock`."""
    root = Path(run_dir)
    if not root.is_dir():
        return []
    gone = []
    for p in root.rglob(f"{TMP_PREFIX}*{TMP_SUFFIX}"):
        if p.is_file():
            p.unlink(missing_ok=True)
            gone.append(p)
    return gone


def _may_change(key: str) -> bool:
    return any(key == f or (f.endswith(".") and key.startswith(f)) for f in RESUME_MAY_CHANGE)


def resume_changes(old: Mapping[str, Any], new: Mapping[str, Any], source: str | os.PathLike
                   ) -> dict[str, dict[str, Any]]:
    """``{field: {"old": ..., "new": ...}}`` for the fields that differ between the checkpoint's
    config ``old`` and ``new`` (both :func:`~stnet.engine.config.config_to_dict` dicts). Raises
    ValueError naming every changed field that a resumed run cannot honour."""
    a, b = _flatten(old), _flatten(new)
    changed = {k: {"old": a.get(k), "new": b.get(k)} for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}
    refused = [k for k in changed if not _may_change(k)]
    if refused:
        listed = "; ".join(f"{k}: {changed[k]['old']!r} -> {changed[k]['new']!r}" for k in refused)
        raise ValueError(f"--resume {source}: cannot resume exactly with changed {listed} (the checkpoint's "
                         "optimiser, schedule and weights belong to the old values); resume with the "
                         "run's config.yaml, or start a new run from these weights with "
                         f"--set model.weights={source}")
    return changed


def record_changes(run_dir: str | os.PathLike, epoch: int, changes: Mapping[str, Any]) -> Path:
    """Append ``changes`` (made when resuming after ``epoch`` completed epochs) to
    ``RUN_DIR/config_changes.yaml``, a list of ``{epoch, changes}`` entries."""
    path = Path(run_dir) / CHANGES_NAME
    entries: list[Any] = []
    if path.is_file():
        entries = yaml.safe_load(path.read_text(encoding="utf-8")) or []
    entries.append({"resumed_after_epoch": int(epoch), "time": time.strftime("%Y-%m-%d %H:%M:%S"),
                    "changes": {k: dict(v) for k, v in changes.items()}})
    write_text(path, yaml.safe_dump(entries, sort_keys=False))
    return path


def saved_note(run_dir: str | os.PathLike) -> str:
    """What ``run_dir`` holds to continue from, for the message of a stopped training."""
    last = Path(run_dir) / "last.pt"
    if not last.is_file():
        return "no checkpoint saved yet"
    try:
        epoch = load_state(last).get("epoch")
    except ValueError:
        return f"{last} is unreadable"
    return f"{last} holds epoch {epoch} (continue with --resume auto)"


def write_run_config(run_dir: str | os.PathLike, config: Mapping[str, Any], state: Mapping[str, Any] | None,
                     changes: Mapping[str, Any]) -> None:
    """``config.yaml`` is the config the run started with (``config``, or the resumed checkpoint's);
    a resume with (allowed) changes appends them to ``config_changes.yaml`` instead of rewriting it."""
    run_dir = Path(run_dir)
    path = run_dir / "config.yaml"
    run_dir.mkdir(parents=True, exist_ok=True)
    if state is None or not path.is_file():
        start = state.get("config") if state is not None and isinstance(state.get("config"), dict) else None
        write_text(path, yaml.safe_dump(dict(start if start is not None else config), sort_keys=False))
    if state is not None and changes:
        record_changes(run_dir, int(state["epoch"]), changes)
