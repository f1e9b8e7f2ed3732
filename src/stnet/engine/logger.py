"""Run observability: metrics.jsonl / metrics.csv, optional TensorBoard, plain or tqdm progress."""
from __future__ import annotations

import csv
import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from stnet.io import write_text

__all__ = ["RunLogger", "Progress", "read_metrics", "CSV_FIELDS"]

CSV_FIELDS = ("epoch", "iteration", "train_loss", "lr", "img_per_s", "epoch_time_s", "metric_name", "metric")


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """Epoch records of a run, in order (the last record wins for a repeated epoch, as older runs
    logged an epoch again after a resume re-ran it)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (is {run_dir} a run directory?)")
    by_epoch = _records(path)
    return [by_epoch[e] for e in sorted(by_epoch)]


def _records(path: Path) -> dict[int, dict[str, Any]]:
    """``{epoch: record}`` of a metrics.jsonl, in file order; unparsable lines (a line cut by a
    kill in a run of an older version, which appended) are skipped."""
    by_epoch: dict[int, dict[str, Any]] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                rec = json.loads(line)
                by_epoch[int(rec["epoch"])] = rec
            except (ValueError, TypeError, KeyError):
                continue
    return by_epoch


class RunLogger:
    """Keeps one record per epoch in ``metrics.jsonl`` and ``metrics.csv`` and mirrors scalars to
    TensorBoard when it is installed. Inactive (no files) on ranks other than 0.

    Both files are rewritten whole and atomically for every record (they hold one short line per
    epoch), and a record replaces the row of its epoch: a kill never leaves a cut line, and a
    resumed run that logs an epoch again (see ``stnet.engine.train``) leaves one row for it."""

    def __init__(self, run_dir: str | Path | None, *, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.tb = None
        if self.run_dir is not None and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(self.run_dir / "tb"))
            except Exception:  # noqa: BLE001 - tensorboard not installed: files only
                self.tb = None

    def log_epoch(self, record: dict[str, Any]) -> None:
        if self.run_dir is None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        path = self.run_dir / "metrics.jsonl"
        rows = _records(path) if path.is_file() else {}
        rows[int(record["epoch"])] = json.loads(json.dumps(record, default=float))
        write_text(path, "".join(json.dumps(r) + "\n" for r in rows.values()))
        table = io.StringIO()
        w = csv.DictWriter(table, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for r in rows.values():
            w.writerow({k: r.get(k, "") for k in CSV_FIELDS})
        write_text(self.run_dir / "metrics.csv", table.getvalue())
        if self.tb is not None:
            step = int(record["epoch"])
            for k in ("train_loss", "lr", "img_per_s"):
                if isinstance(record.get(k), (int, float)):
                    self.tb.add_scalar(f"train/{k}", record[k], step)
            for k, v in (record.get("val") or {}).items():
                if isinstance(v, (int, float)) and math.isfinite(v) and "/" not in k:
                    self.tb.add_scalar(f"val/{k}", v, step)
            self.tb.flush()

    def forget_after(self, epoch: int) -> None:
        """Drop the rows of epochs after ``epoch`` from metrics.jsonl / metrics.csv (a resume from
        an earlier checkpoint, e.g. best.pt, trains them again; two rows per epoch would mix runs)."""
        if self.run_dir is None:
            return
        for name in ("metrics.jsonl", "metrics.csv"):
            path = self.run_dir / name
            if not path.is_file():
                continue
            lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
            kept = [ln for i, ln in enumerate(lines) if _row_epoch(ln, name, i) <= epoch]
            if len(kept) != len(lines):
                write_text(path, "".join(kept))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _row_epoch(line: str, name: str, index: int) -> float:
    """The epoch of one metrics.jsonl / metrics.csv line (the csv header and unreadable lines: -inf, kept)."""
    try:
        if name.endswith(".jsonl"):
            return float(json.loads(line)["epoch"])
        return -math.inf if index == 0 else float(line.split(",", 1)[0])
    except (ValueError, KeyError, TypeError):
        return -math.inf


def _fmt_time(s: float) -> str:
    s = int(max(s, 0))
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """Iterate a loader with a tqdm bar (loss, lr, img/s, ETA) on an interactive terminal, or plain
    log lines every ``log_interval`` iterations otherwise. Silent when ``enabled`` is False."""

    def __init__(self, iterable: Iterable[Any], total: int, desc: str, *, enabled: bool = True,
                 log_interval: int = 50, tty: bool | None = None) -> None:
        self.iterable, self.total, self.desc = iterable, total, desc
        self.enabled = enabled
        self.log_interval = max(1, int(log_interval))
        self.tty = sys.stdout.isatty() if tty is None else tty
        self.bar = None
        self.start = time.perf_counter()
        self.n = 0
        self.images = 0

    def __iter__(self) -> Iterator[Any]:
        if self.enabled and self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=self.total, desc=self.desc, dynamic_ncols=True, leave=True)
        self.start = time.perf_counter()
        for i, item in enumerate(self.iterable):
            if i >= self.total:
                break
            yield item
        if self.bar is not None:
            self.bar.close()

    def update(self, batch_size: int, loss: float, lr: float) -> None:
        self.n += 1
        self.images += batch_size
        elapsed = time.perf_counter() - self.start
        ips = self.images / max(elapsed, 1e-9)
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.3e}", lr=f"{lr:.2e}", img_s=f"{ips:.1f}", refresh=False)
            self.bar.update(1)
        elif self.n % self.log_interval == 0 or self.n == self.total:
            eta = elapsed / self.n * (self.total - self.n)
            print(f"{self.desc} [{self.n}/{self.total}] loss {loss:.4e} lr {lr:.2e} "
                  f"{ips:.1f} img/s eta {_fmt_time(eta)}", flush=True)

    @property
    def img_per_s(self) -> float:
        return self.images / max(time.perf_counter() - self.start, 1e-9)
