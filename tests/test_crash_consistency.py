"""Crash consistency (issue 28 item 2): a tiny training killed with SIGKILL at planned points
(inside a checkpoint write, between epochs, during validation, mid-epoch) and resumed with
``--resume auto`` after each kill ends with exactly the weights, optimiser state, best checkpoint
and metrics rows of an uninterrupted run, and no kill leaves a half-written file behind.

The kills come from ``tests/helpers/killpoint.py`` (the process SIGKILLs itself the N-th time it
reaches a named point), so they land at the same place on every machine; the slow test draws its
points from a seeded RNG over the points an uninterrupted run passes."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from stnet.model_files import load_state as load_checkpoint
from helpers.synthetic import make_synthetic_coco
from test_engine_train import recipe

KILLPOINT = Path(__file__).parent / "helpers" / "killpoint.py"
# EMA on (its state must survive too); 2 steps per epoch keep each process short.
SETTINGS = ["--set", "runtime.ema_decay=0.9", "--set", "runtime.max_iters_per_epoch=2",
            "--set", "eval.flip_test=false"]
EPOCHS = 2


@pytest.fixture(scope="module")
def crash_setup(tmp_path_factory) -> dict[str, Any]:
    """The data, and an uninterrupted reference run with the count of every kill point it passes."""
    root = tmp_path_factory.mktemp("crash")
    make_synthetic_coco(root / "syn", num_images=6, image_size=(80, 64))
    ref = root / "ref"
    cfg = recipe(root, root / "syn", ref, epochs=EPOCHS)
    r = _run(cfg, None, counts=root / "counts.json", resume=False)
    assert r.returncode == 0, r.stdout
    return {"root": root, "syn": root / "syn", "ref": ref, "counts": json.loads((root / "counts.json").read_text())}


def _run(cfg: Path, killpoint: str | None, *, counts: Path | None = None, resume: bool = True
         ) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "KILLPOINT": killpoint or "none"}
    if counts is not None:
        env["KILLPOINT_COUNTS"] = str(counts)
    args = [sys.executable, str(KILLPOINT), "train", str(cfg), *SETTINGS] + (["--resume", "auto"] if resume else [])
    return subprocess.run(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)


def _temp_files(run_dir: Path) -> list[Path]:
    return sorted(p for p in run_dir.rglob(".*") if p.name != ".lock")


def assert_nothing_half_written(run_dir: Path) -> None:
    """Every file a reader may open is whole: each checkpoint loads, each metrics row parses, the
    yaml/json outputs parse (temporary files of the interrupted write may remain until a resume)."""
    for pt in run_dir.rglob("*.pt"):
        if not pt.name.startswith("."):
            load_checkpoint(pt)
    for name in ("metrics.jsonl",):
        p = run_dir / name
        if p.is_file():
            for line in p.read_text().splitlines():
                json.loads(line)
    if (run_dir / "metrics.csv").is_file():
        rows = (run_dir / "metrics.csv").read_text().splitlines()
        assert all(row.count(",") == rows[0].count(",") for row in rows), rows
    for p in run_dir.rglob("*.yaml"):
        yaml.safe_load(p.read_text())
    for p in run_dir.rglob("*.json"):
        if not p.name.startswith("."):
            json.loads(p.read_text())


def _rows(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_same_as_reference(ref: Path, run_dir: Path) -> None:
    """Bit-exact weights, EMA, optimiser and schedule state; the same best.pt; the same metrics rows
    (one per epoch, no duplicate or missing row); no temporary file or lock left."""
    for name in ("last.pt", "best.pt"):
        a, b = load_checkpoint(ref / name), load_checkpoint(run_dir / name)
        assert (a["epoch"], a["iteration"], a["best_metric"]) == (b["epoch"], b["iteration"], b["best_metric"]), name
        for part in ("model", "ema"):
            assert a[part].keys() == b[part].keys()
            for k in a[part]:
                assert torch.equal(a[part][k], b[part][k]), (name, part, k)
        sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
        assert sa.keys() == sb.keys()
        for i in sa:
            for k in sa[i]:
                assert torch.equal(torch.as_tensor(sa[i][k]), torch.as_tensor(sb[i][k])), (name, i, k)
        assert a["scheduler"] == b["scheduler"] and a["pending_validation"] == b["pending_validation"] is None
    keys = ("epoch", "iteration", "train_loss", "lr", "metric")
    assert [[r.get(k) for k in keys] for r in _rows(ref)] == [[r.get(k) for k in keys] for r in _rows(run_dir)]
    csv_rows = [(d / "metrics.csv").read_text().splitlines() for d in (ref, run_dir)]
    assert [row.split(",")[:4] for row in csv_rows[0]] == [row.split(",")[:4] for row in csv_rows[1]]
    assert _temp_files(run_dir) == [] and not (run_dir / ".lock").exists()


def kill_chain(setup: dict[str, Any], name: str, points: list[str]) -> int:
    """A run killed at each of ``points`` in turn (each process resumes the previous one), then
    resumed to the end and compared with the reference; returns how many kills happened."""
    run_dir = setup["root"] / name
    (setup["root"] / f"{name}_cfg").mkdir()
    cfg = recipe(setup["root"] / f"{name}_cfg", setup["syn"], run_dir, epochs=EPOCHS)
    kills = 0
    for point in points:
        r = _run(cfg, point)
        if r.returncode == 0:  # the point lies beyond what was left of the run: it finished
            break
        assert r.returncode == -signal.SIGKILL, f"{point}: rc {r.returncode}\n{r.stdout}"
        kills += 1
        assert_nothing_half_written(run_dir)
    r = _run(cfg, None)
    assert r.returncode == 0 and "Traceback" not in r.stdout, r.stdout
    assert_same_as_reference(setup["ref"], run_dir)
    return kills


def test_killed_inside_a_checkpoint_write_and_before_logging_resumes_bit_exact(crash_setup):
    """Default-suite pair: killed half-way through writing the second last.pt (epoch 1 saved before
    its validation), then -- in the resumed process -- after a checkpoint was saved but before its
    epoch's metrics row was written."""
    assert kill_chain(crash_setup, "pair", ["write-half:2:last.pt", "log:1"]) == 2


def draw_points(counts: dict[str, int], rng: random.Random, n: int) -> list[str]:
    """``n`` kill points: a kind (each write phase per file name, or a loop point) and how many
    times it is passed before the kill, drawn within the first half of what an uninterrupted run
    passes, so a resumed process usually still reaches it."""
    kinds = sorted(k for k in counts if ":" in k or not k.startswith("write-"))
    points = []
    for _ in range(n):
        kind = rng.choice(kinds)
        nth = rng.randint(1, max(1, counts[kind] // 2))
        kind, _, glob = kind.partition(":")
        points.append(f"{kind}:{nth}" + (f":{glob}" if glob else ""))
    return points


@pytest.mark.slow
def test_killed_at_random_points_resumes_bit_exact(crash_setup):
    """At least 10 seeded random kill points over every kind (checkpoint/config writes in each
    phase, steps, validation batches, around logging), 3 per run, each run resumed to the end."""
    rng = random.Random(28)
    kills, chain = 0, 0
    while kills < 12:
        chain += 1
        assert chain <= 10, f"only {kills} kill points reached in {chain - 1} runs"
        kills += kill_chain(crash_setup, f"chain{chain}", draw_points(crash_setup["counts"], rng, 3))
