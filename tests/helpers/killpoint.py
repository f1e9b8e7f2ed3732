"""Run the ``stnet`` CLI and SIGKILL it at a planned point (crash-consistency tests; test-only).

::

    KILLPOINT=write-half:3:*.pt python tests/helpers/killpoint.py train recipe.yaml --resume auto

``KILLPOINT`` is ``KIND:N[:GLOB]``: the process kills itself (``SIGKILL``, so no ``finally``, no
atexit, no flush runs, as with ``kill -9`` or the OOM killer) the ``N``-th time it reaches ``KIND``:

* ``write-start``  inside :func:`stnet.io.atomic_write`, the temporary file created, nothing written
* ``write-half``   inside it, the writer done and the temporary file cut to half its size (a kill
  in the middle of writing it)
* ``write-full``   inside it, the temporary file complete, not yet renamed over the destination
* ``write-done``   just after the rename (the new file in place)
* ``step``         at a training step's loss (inside an epoch)
* ``val``          at a validation batch's inference (inside a validation)
* ``log``          just before an epoch's row is logged (its checkpoint saved)
* ``logged``       just after an epoch's row is logged (between epochs)

``write-*`` count only writes whose destination file name matches ``GLOB`` (default ``*``). With
``KILLPOINT`` unset or ``none`` nothing is killed. ``KILLPOINT_COUNTS=FILE`` writes how often each
point was reached (for the ``write-*`` kinds: per destination name) to FILE as json when the
command ends normally, so a test can draw kill points from an uninterrupted run.

Everything is patched from outside (module attributes), so stnet itself carries no test hook.
"""
from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

WRITE_KINDS = ("write-start", "write-half", "write-full", "write-done")
KINDS = WRITE_KINDS + ("step", "val", "log", "logged")

counts: Counter[str] = Counter()


def _plan() -> tuple[str, int, str]:
    spec = os.environ.get("KILLPOINT", "none")
    if spec == "none":
        return "none", 0, "*"
    kind, n, *glob = spec.split(":", 2)
    if kind not in KINDS:
        raise SystemExit(f"KILLPOINT: unknown kind {kind!r} (one of {', '.join(KINDS)})")
    return kind, int(n), glob[0] if glob else "*"


KIND, N, GLOB = _plan()
seen: Counter[str] = Counter()


def reached(kind: str, name: str | None = None) -> None:
    """Count ``kind`` (for writes, also per destination ``name``); die when it is the planned one."""
    counts[kind] += 1
    if name is not None:
        counts[f"{kind}:{name}"] += 1
    if kind != KIND or (name is not None and not fnmatch.fnmatch(name, GLOB)):
        return
    seen[kind] += 1
    if seen[kind] == N:
        sys.stdout.flush()
        os.kill(os.getpid(), signal.SIGKILL)


def install() -> None:
    import stnet.engine.evaluate as engine_evaluate
    import stnet.engine.logger as logger
    import stnet.engine.losses as losses
    import stnet.engine.train  # noqa: F401 - loads every module that may hold atomic_write
    import stnet.io as sio

    real_write = sio.atomic_write

    @contextlib.contextmanager
    def atomic_write(path: str | os.PathLike, **kw: Any) -> Iterator[Path]:
        name = Path(path).name
        with real_write(path, **kw) as tmp:
            reached("write-start", name)
            yield tmp
            if tmp.exists():
                size = tmp.stat().st_size
                if KIND == "write-half" and fnmatch.fnmatch(name, GLOB) and seen["write-half"] + 1 == N:
                    os.truncate(tmp, size // 2)
                reached("write-half", name)
                reached("write-full", name)
        reached("write-done", name)

    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("stnet") and getattr(module, "atomic_write", None) is real_write:
            module.atomic_write = atomic_write  # type: ignore[attr-defined]

    real_forward = losses.HeatmapLoss.forward

    def forward(self: Any, *a: Any, **k: Any) -> Any:
        reached("step")
        return real_forward(self, *a, **k)

    losses.HeatmapLoss.forward = forward  # type: ignore[method-assign]

    real_predict = engine_evaluate.predict_heatmaps

    def predict_heatmaps(*a: Any, **k: Any) -> Any:
        reached("val")
        return real_predict(*a, **k)

    engine_evaluate.predict_heatmaps = predict_heatmaps  # type: ignore[assignment]

    real_log = logger.RunLogger.log_epoch

    def log_epoch(self: Any, record: dict[str, Any]) -> None:
        reached("log")
        real_log(self, record)
        reached("logged")

    logger.RunLogger.log_epoch = log_epoch  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    install()
    from stnet.cli import main as stnet_main

    rc = stnet_main(argv)
    out = os.environ.get("KILLPOINT_COUNTS")
    if out:
        Path(out).write_text(json.dumps(dict(counts)), encoding="utf-8")
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
