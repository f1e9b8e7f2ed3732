"""End-to-end training on a tiny synthetic COCO-format set: files, eval CLI, bf16 autocast,
checkpoints (atomic, corrupted, SIGKILL + resume), and DDP with 2 gloo processes under torchrun."""
from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from stnet.cli import main as stnet_main
from stnet.engine.checkpoint import save_checkpoint
from stnet.model_files import CheckpointError, load_state
from helpers.synthetic import make_synthetic_coco

RECIPE = """\
model: {{name: stnet_1s, overrides: {{width: 8}}}}
input_size: [64, 64]
data_root: {root}
train: {{kind: coco, ann_file: annotations.json, image_dir: images, augment: {{rotation_factor: 10.0}}}}
val: {{kind: coco, ann_file: annotations.json, image_dir: images, split: val}}
schedule: {{epochs: {epochs}, milestones: [2]}}
runtime: {{batch_size: 2, workers: 0, deterministic: true, log_interval: 1, tensorboard: false,
          output_dir: {out}}}
"""


@pytest.fixture(scope="module")
def syn(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("syn")
    make_synthetic_coco(root, num_images=6, image_size=(80, 64))
    return root


def recipe(tmp: Path, syn: Path, out: Path, epochs: int = 2) -> Path:
    p = tmp / "tiny.yaml"
    p.write_text(RECIPE.format(root=syn, out=out, epochs=epochs))
    return p


def run_cli(args, **kw) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "stnet.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kw)


def test_tiny_run_writes_everything_and_eval_cli(tmp_path, syn, capsys):
    out = tmp_path / "run"
    assert stnet_main(["train", str(recipe(tmp_path, syn, out))]) == 0
    for name in ("last.pt", "best.pt", "metrics.jsonl", "metrics.csv", "config.yaml", "curves.png"):
        assert (out / name).is_file(), name
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in recs] == [1, 2] and all(r["metric_name"] == "AP" for r in recs)
    ck = load_state(out / "last.pt")
    assert ck["epoch"] == 2 and ck["iteration"] == 6 and ck["config"]["input_size"] == [64, 64]
    assert set(ck["rng"]) == {"python", "numpy", "torch", "cuda"}
    # the lr dropped x0.1 at epoch 2 (milestone), per iteration
    assert recs[1]["lr"] == pytest.approx(1e-4)
    capsys.readouterr()
    ev = tmp_path / "ev"
    assert stnet_main(["eval", str(out / "config.yaml"), "--checkpoint", str(out / "best.pt"),
                       "--output-dir", str(ev), "--json"]) == 0
    printed = capsys.readouterr().out
    assert "| Method |  AP |" in printed and "ground-truth boxes" in printed
    assert (ev / "metrics.json").is_file() and (ev / "keypoints_results.json").is_file()
    assert (ev / "predictions_raw.npz").is_file()
    # multi-scale testing goes through the same evaluator
    capsys.readouterr()
    assert stnet_main(["eval", str(out / "config.yaml"), "--checkpoint", str(out / "best.pt"),
                       "--output-dir", str(tmp_path / "ev_ms"), "--json",
                       "--set", "eval.test_scales=[0.9,1.0,1.1]"]) == 0
    assert (tmp_path / "ev_ms" / "metrics.json").is_file()
    # stnet plot
    (out / "curves.png").unlink()
    assert stnet_main(["plot", str(out)]) == 0 and (out / "curves.png").is_file()


def test_bf16_autocast_smoke_on_cpu(tmp_path, syn):
    from stnet.engine.config import load_config
    from stnet.engine.train import (HeatmapLoss, amp_settings, build_datasets, build_model, build_optimizer,
                                    build_scheduler, train_one_epoch)
    from stnet.data.build import build_dataloader

    cfg = load_config(recipe(tmp_path, syn, tmp_path / "r"), {"runtime.amp": "bf16"})
    ds, _ = build_datasets(cfg, val=False)
    loader = build_dataloader(ds, batch_size=2, num_workers=0)
    model = build_model(cfg, ds.skeleton.num_keypoints)
    opt = build_optimizer(cfg, model)
    amp = amp_settings("bf16", torch.device("cpu"))
    assert amp == (True, torch.bfloat16, False)
    before = [p.detach().clone() for p in model.parameters()]
    stats = train_one_epoch(model, loader, HeatmapLoss(), opt, build_scheduler(cfg, opt, len(loader)),
                            torch.amp.GradScaler("cpu", enabled=False), device=torch.device("cpu"), epoch=0,
                            amp=amp, max_iters=1, show=False, grad_clip=1.0)
    assert stats["iters"] == 1 and torch.isfinite(torch.tensor(stats["train_loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    with pytest.raises(ValueError, match="fp16 needs a CUDA"):
        amp_settings("fp16", torch.device("cpu"))


def test_loss_weights_and_ohkm():
    from stnet.engine.train import HeatmapLoss

    pred, tgt = torch.zeros(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)
    pred[:, 0] = 1.0
    w = torch.tensor([[0.0, 1, 1], [1, 1, 1]])
    assert HeatmapLoss()(pred, tgt, w).item() == pytest.approx(0.5 * 1 / 6)
    assert HeatmapLoss(use_target_weight=False)(pred, tgt, w).item() == pytest.approx(0.5 * 2 / 6)
    assert HeatmapLoss(ohkm_topk=1)(pred, tgt, w).item() == pytest.approx(0.5 * (0 + 1) / 2)


def test_checkpoint_atomic_and_corrupted(tmp_path):
    p = tmp_path / "last.pt"
    save_checkpoint({"model": {"w": torch.ones(3)}, "epoch": 1, "iteration": 5}, p)
    assert load_state(p)["epoch"] == 1
    assert [f.name for f in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind
    data = p.read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.pt is truncated or corrupted"):
        load_state(bad)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CheckpointError, match="junk.pt"):
        load_state(junk)
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty.pt is empty"):
        load_state(empty)


def test_cli_resume_from_corrupted_checkpoint_is_one_line_error(tmp_path, syn, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    rc = stnet_main(["train", str(recipe(tmp_path, syn, tmp_path / "r")), "--resume", str(bad)])
    err = capsys.readouterr().err
    assert rc == 2 and "bad.pt is truncated or corrupted" in err and "Traceback" not in err


def _wait_for_epoch(path: Path, epoch: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"run ended before it could be killed:\n{proc.stdout.read()}")
        if path.is_file():
            try:
                if load_state(path)["epoch"] >= epoch:
                    return
            except CheckpointError:
                pass
        time.sleep(0.05)
    raise AssertionError("timed out waiting for a checkpoint")


def test_sigkill_mid_run_then_resume_matches_uninterrupted(tmp_path, syn):
    full, killed = tmp_path / "full", tmp_path / "killed"
    cfg_full = recipe(tmp_path, syn, full, epochs=3)
    p = run_cli(["train", str(cfg_full)])
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out

    (tmp_path / "k").mkdir()
    cfg_killed = recipe(tmp_path / "k", syn, killed, epochs=3)
    p = run_cli(["train", str(cfg_killed)])
    _wait_for_epoch(killed / "last.pt", 1, p)
    p.send_signal(signal.SIGKILL)  # somewhere in epoch 2
    p.wait()
    assert load_state(killed / "last.pt")["epoch"] in (1, 2)  # intact, never half-written
    p = run_cli(["train", str(cfg_killed), "--resume", "auto"])
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0 and "resumed from" in out, out

    a, b = load_state(full / "last.pt"), load_state(killed / "last.pt")
    assert a["epoch"] == b["epoch"] == 3 and a["iteration"] == b["iteration"]
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    for i in sa:
        for k in sa[i]:
            assert torch.equal(torch.as_tensor(sa[i][k]), torch.as_tensor(sb[i][k])), (i, k)
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"]
    assert a["best_metric"] == b["best_metric"]


DDP_SCRIPT = """
import json, os, sys
from stnet.engine.config import load_config
from stnet.engine.train import train
cfg = load_config(sys.argv[1], {"schedule.epochs": 1, "runtime.max_iters_per_epoch": 2, "runtime.batch_size": 1})
s = train(cfg)
print("RESULT", os.environ["RANK"], json.dumps({"digest": s["weights_digest"], "all": s.get("rank_digests")}))
"""


def test_ddp_two_cpu_processes_gloo(tmp_path, syn):
    out_parent = tmp_path / "runs"
    cfg = recipe(tmp_path, syn, out_parent / "ddp")
    script = tmp_path / "ddp_train.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(script), str(cfg)], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    results = {}
    for line in r.stdout.splitlines():
        if line.startswith("RESULT"):
            _, rank, payload = line.split(" ", 2)
            results[int(rank)] = json.loads(payload)
    assert set(results) == {0, 1}
    assert results[0]["digest"] == results[1]["digest"]
    assert results[0]["all"] == [results[0]["digest"]] * 2
    assert [p.name for p in out_parent.iterdir()] == ["ddp"]
    assert load_state(out_parent / "ddp" / "last.pt")["iteration"] == 2
    # one progress/log stream: only rank 0 prints the per-epoch line
    assert r.stdout.count("epoch 1/1 loss") == 1


def test_time_budget_stops_in_time_with_complete_checkpoints(tmp_path, syn):
    """A budgeted run plans its epochs from its own speed, ends within the budget and leaves
    last.pt/best.pt complete (validated final epoch), with the plan recorded."""
    from stnet.engine.config import load_config
    from stnet.engine.train import train

    out = tmp_path / "budget"
    budget_min = 0.3
    cfg = load_config(recipe(tmp_path, syn, out, epochs=10_000),
                      {"schedule.time_budget_min": budget_min, "schedule.decay": "cosine"})
    t0 = time.perf_counter()
    summary = train(cfg)
    wall = time.perf_counter() - t0
    last, best = load_state(out / "last.pt"), load_state(out / "best.pt")
    assert 1 <= last["epoch"] < 10_000 and last["planned_epochs"] == last["epoch"] == summary["epochs"]
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert "metric" in recs[-1] and recs[-1]["epoch"] == last["epoch"]  # the final epoch was validated
    # It stops between two steps and keeps the last validation's time for the final one: on a
    # machine whose load does not change it ends within the budget; the bound allows the final
    # epoch's steps and validation to have run slower than the ones it planned with.
    slack = recs[-1]["epoch_time_s"] + recs[-1]["val_time_s"] + 5
    assert last["elapsed_s"] <= budget_min * 60 + slack, (last["elapsed_s"], slack)
    assert wall < budget_min * 60 + slack + 30  # plus start-up (data, model) and the final plot
    assert best["epoch"] <= last["epoch"] and best["best_metric"] == max(r["metric"] for r in recs if "metric" in r)
    # cosine to zero over the plan: the last epoch's lr is far below the peak
    assert recs[-1]["lr"] < 0.5e-3 and all(r["img_per_s"] > 0 for r in recs)


@pytest.mark.parametrize("val_interval", [pytest.param(1, marks=pytest.mark.slow), 5])
def test_budget_spent_between_epochs_logs_no_empty_epoch(tmp_path, syn, monkeypatch, val_interval):
    """When the budget runs out before an epoch's first step (the re-plan counted on time that the
    last validation took), that epoch leaves no row (an AVX2 EPYC logged `loss 0, 0 img/s` rows):
    the run ends with the previous epoch, validated (now, if its turn had not come), and last.pt
    records the final plan."""
    import stnet.engine.train as engine_train
    from stnet.engine.config import load_config

    steps = {"n": 0}

    def out_of_time_after_two_epochs(deadline, device):  # 3 steps per epoch (6 images, batch 2)
        steps["n"] += 1
        return steps["n"] > 6

    monkeypatch.setattr(engine_train, "deadline_passed", out_of_time_after_two_epochs)
    out = tmp_path / f"between_{val_interval}"
    cfg = load_config(recipe(tmp_path, syn, out, epochs=10),
                      {"schedule.time_budget_min": 60.0, "runtime.val_interval": val_interval})
    summary = engine_train.train(cfg)
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert all(r["epoch"] <= 2 and r["iteration"] > 0 and r["img_per_s"] > 0 for r in recs), recs
    assert recs[-1]["epoch"] == 2 and "metric" in recs[-1]
    csv_rows = (out / "metrics.csv").read_text().splitlines()[1:]
    assert all(row.split(",")[0] in ("1", "2") for row in csv_rows)
    last = load_state(out / "last.pt")
    assert last["epoch"] == last["planned_epochs"] == summary["epochs"] == 2 and last["iteration"] == 6
    assert last["pending_validation"] is None


def test_persistent_workers_see_the_epoch(syn):
    """Seeded augmentation reaches persistent DataLoader workers through the sampler's (epoch,
    index) keys: two worker processes give exactly the batches of the main process, epoch by epoch."""
    from stnet.data.build import build_dataloader, build_dataset
    from stnet.data.config import AugmentConfig, DataConfig

    dc = DataConfig(kind="coco", ann_file=str(syn / "annotations.json"), image_dir=str(syn / "images"),
                    input_size=(64, 64), augment=AugmentConfig(rotation_factor=30.0), seed=3)
    batches = {}
    for workers in (0, 2):
        loader = build_dataloader(build_dataset(dc, train=True), batch_size=2, num_workers=workers, seed=1,
                                  persistent_workers=True)
        got = []
        for epoch in range(2):
            loader.sampler.set_epoch(epoch)
            loader.sampler.generator.manual_seed(epoch)
            got.append(torch.cat([b["image"] for b in loader]))
        batches[workers] = got
    assert not torch.equal(batches[0][0], batches[0][1])  # a new epoch draws new augmentation
    for e in range(2):
        assert torch.equal(batches[0][e], batches[2][e])


FAST = ["--set", "runtime.max_iters_per_epoch=1", "--set", "eval.flip_test=false"]


def test_nan_loss_lock_ctrl_c_and_resume_rules(tmp_path, syn, capsys, monkeypatch):
    # issue 12 items 6, 7, 8, 9: a diverging loss, a locked folder, Ctrl-C, --resume with changed settings
    import yaml

    import stnet.engine.train as train_mod

    out = tmp_path / "run"
    cfg = str(recipe(tmp_path, syn, out))
    real_forward, calls = train_mod.HeatmapLoss.forward, [0]

    def diverging(self, *a, **k):
        calls[0] += 1
        loss = real_forward(self, *a, **k)
        return loss * float("nan") if calls[0] == 2 else loss  # epoch 2, first iteration

    monkeypatch.setattr(train_mod.HeatmapLoss, "forward", diverging)
    assert stnet_main(["train", cfg, *FAST]) == 2
    err = capsys.readouterr().err
    assert err == (f"stnet train: error: loss became NaN at epoch 2 iter 1; lower optim.lr (or set runtime.grad_clip, "
                   f"or check the data); {out / 'last.pt'} holds epoch 1 (continue with --resume auto)\n")
    assert load_state(out / "last.pt")["epoch"] == 1 and not (out / ".lock").exists()
    monkeypatch.undo()
    config_yaml = (out / "config.yaml").read_text()

    assert stnet_main(["train", cfg, *FAST, "--resume", "auto", "--set", "optim.lr=0.5"]) == 2
    err = capsys.readouterr().err
    assert f"--resume {out / 'last.pt'}: cannot resume exactly with changed optim.lr: 0.001 -> 0.5" in err

    (out / ".lock").write_text(json.dumps({"pid": os.getppid(), "host": __import__("socket").gethostname()}))
    assert stnet_main(["train", cfg, *FAST, "--resume", "auto"]) == 2
    assert f"stnet train: error: run folder {out} is in use by another training (pid {os.getppid()}" \
        in capsys.readouterr().err
    (out / ".lock").unlink()

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_mod, "train_one_epoch", ctrl_c)
    assert stnet_main(["train", cfg, *FAST, "--resume", "auto"]) == 130
    assert capsys.readouterr().err == (f"stnet train: interrupted (Ctrl-C): training stopped; {out / 'last.pt'} "
                                       "holds epoch 1 (continue with --resume auto)\n")
    monkeypatch.undo()

    # best.pt lost (e.g. its write failed on a full disk) and a temp file of a killed write left over
    (out / "best.pt").unlink()
    (out / ".last.pt.abcd.tmp").write_bytes(b"\0" * 1000)
    assert stnet_main(["train", cfg, *FAST, "--resume", "auto", "--set", "runtime.log_interval=2"]) == 0
    assert f"note: removed {out / '.last.pt.abcd.tmp'}" in capsys.readouterr().out
    assert (out / "config.yaml").read_text() == config_yaml  # never rewritten to claim the new value
    changes = yaml.safe_load((out / "config_changes.yaml").read_text())
    assert changes[0]["resumed_after_epoch"] == 1
    assert changes[0]["changes"] == {"runtime.log_interval": {"old": 1, "new": 2}}
    assert load_state(out / "best.pt")["epoch"] == 2 and load_state(out / "last.pt")["epoch"] == 2
    assert not list(out.glob(".*.tmp")) and not (out / ".lock").exists()


def test_validation_survives_a_failure_and_unreadable_images(tmp_path, capsys, monkeypatch):
    # issue 12 item 3: last.pt is saved before validating; an unreadable val image is skipped and counted
    import stnet.engine.train as train_mod

    root = tmp_path / "data"
    make_synthetic_coco(root, num_images=6, image_size=(80, 64))
    bad = sorted((root / "images").iterdir())[0]
    bad.write_bytes(b"not an image")
    out = tmp_path / "run"
    cfg = str(recipe(tmp_path, root, out))

    def broken(*a, **k):
        raise RuntimeError("validation crashed")

    monkeypatch.setattr(train_mod, "evaluate", broken)
    with pytest.raises(RuntimeError, match="validation crashed"):
        stnet_main(["train", cfg, *FAST])
    ck = load_state(out / "last.pt")
    assert ck["epoch"] == 1 and ck["pending_validation"]["epoch"] == 1
    monkeypatch.undo()

    with pytest.warns(RuntimeWarning, match=rf"{bad}: unreadable image, its person\(s\) are not scored"):
        assert stnet_main(["train", cfg, *FAST, "--resume", "auto"]) == 0
    printed = capsys.readouterr().out
    assert "epoch 1 was saved before its validation finished; validating it now" in printed
    assert "WARNING: 1 person(s) on 1 unreadable image(s) were not scored" in printed
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in recs] == [1, 2]
    assert all(r["val"]["unreadable_images"] == 1 and r["val"]["unscored_persons"] == 1 for r in recs)
    assert json.loads((out / "eval" / "metrics.json").read_text())["metrics"]["unreadable_images"] == 1

    with pytest.warns(RuntimeWarning, match="unreadable image"):
        assert stnet_main(["eval", cfg, "--checkpoint", str(out / "last.pt"), "--json", *FAST]) == 0
    assert '"unreadable_images": 1' in capsys.readouterr().out
    with pytest.warns(RuntimeWarning, match="unreadable image"):
        assert stnet_main(["eval", cfg, "--checkpoint", str(out / "last.pt"), *FAST,
                           "--set", "val.max_bad_images=0"]) == 2
    assert "1 unreadable validation images (max_bad_images=0)" in capsys.readouterr().err

def test_budget_progress_follows_the_wall_clock():
    """Under a time budget the decay is a function of the time spent, not of iterations: a run
    that has used half its budget is half-way through its schedule whatever its speed."""
    from stnet.engine.config import TrainConfig
    from stnet.engine.schedule import EpochPlan

    cfg = TrainConfig()
    cfg.schedule.time_budget_min = 10.0
    plan = EpochPlan(cfg, elapsed_s=300.0)
    assert 0.5 <= plan.progress(10**6, 100) < 0.51  # iterations do not count, time does
    plan.reserve_s = 60.0  # time kept for the final validation shortens the decay
    assert plan.progress(1, 100) == pytest.approx(300.0 / 540.0, abs=0.01)
    cfg.schedule.time_budget_min = None
    assert EpochPlan(cfg).progress(cfg.schedule.epochs * 50, 100) == pytest.approx(0.5)


def _small_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU(),
                               torch.nn.Conv2d(4, 2, 1))


def test_optimizer_is_fused_on_cpu_and_steps_like_the_loop():
    """The single-kernel Adam takes the same step as torch's per-tensor loop, and an optimiser
    state saved by the loop (checkpoints written before the switch) resumes in it.

    One step from the same weights, gradients and state each time: the two kernels only order their
    fp32 arithmetic differently, so a step agrees to a few ulps of the update (lr 1e-2 -> ~1e-9).
    Several chained steps would not: Adam divides by sqrt(v) + eps, so a gradient near eps turns a
    rounding difference into an lr-sized one (seen as 1.8e-3 after three steps on an AVX2 EPYC)."""
    from stnet.engine.config import TrainConfig
    from stnet.engine.schedule import build_optimizer

    cfg = TrainConfig()
    cfg.optim.lr = 1e-2
    a = _small_model()
    b = copy.deepcopy(a)
    fused = build_optimizer(cfg, a)
    assert fused.defaults["fused"] is True
    loop = torch.optim.Adam(b.parameters(), lr=1e-2)
    x = torch.randn(2, 3, 8, 8)

    def step(opt: torch.optim.Optimizer, m: torch.nn.Module) -> None:
        opt.zero_grad()
        m(x).square().mean().backward()
        opt.step()

    step(fused, a)
    step(loop, b)
    for pa, pb in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-6, atol=1e-7)
    # Resume: the loop's state (non-zero moments) loaded into the fused kernel, one more step each
    # from identical weights.
    c = copy.deepcopy(b)
    resumed, cont = build_optimizer(cfg, b), torch.optim.Adam(c.parameters(), lr=1e-2)
    # deep copies: load_state_dict may share tensors with the dict it is given, as a checkpoint does not
    resumed.load_state_dict(copy.deepcopy(loop.state_dict()))
    cont.load_state_dict(copy.deepcopy(loop.state_dict()))
    assert resumed.defaults["fused"] is True
    step(resumed, b)
    step(cont, c)
    for pb, pc in zip(b.parameters(), c.parameters()):
        torch.testing.assert_close(pb, pc, rtol=1e-6, atol=1e-7)


def test_ema_averages_floats_and_copies_integers():
    from stnet.engine.ema import ModelEMA

    model = _small_model()
    ema = ModelEMA(model, decay=0.9)
    old = {k: v.clone() for k, v in ema.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model.train()(torch.randn(2, 3, 8, 8))  # moves BatchNorm's running stats and its counter
    ema.update(model)
    new = model.state_dict()
    for k, v in ema.state_dict().items():
        if v.dtype.is_floating_point:
            torch.testing.assert_close(v, 0.9 * old[k] + 0.1 * new[k])
        else:
            assert torch.equal(v, new[k]) and not torch.equal(v, old[k])
