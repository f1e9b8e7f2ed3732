"""The `stnet` command line's error handling (issue 12): the prefix names the command, one line
for user errors, a full disk and Ctrl-C."""
from __future__ import annotations

import argparse
import errno
from pathlib import Path

import pytest
import torch

import stnet.engine.pack as pack
from stnet.cli import build_parser
from stnet.cli import main as stnet_main
from stnet.engine.checkpoint import save_checkpoint
from stnet.engine.config import config_to_dict, load_config
from stnet.engine.distributed import check_device


def test_no_subcommand_option_overwrites_the_command_name():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    clashes = [(name, a.option_strings) for name, p in sub.choices.items() for a in p._actions
               if a.dest == "command"]
    assert clashes == []  # `stnet pack --command` once made every pack error start "stnet :"


@pytest.fixture()
def small_checkpoint(tmp_path: Path) -> Path:
    cfg = config_to_dict(load_config(None, {"data_root": str(tmp_path)}))
    return save_checkpoint({"model": {"head.weight": torch.ones(17, 4, 1, 1)}, "config": cfg, "epoch": 1},
                           tmp_path / "best.pt")


def test_pack_errors_name_the_command(tmp_path: Path, capsys):
    rc = stnet_main(["pack", str(tmp_path / "missing.pt"), "--name", "x", "--command", "stnet train y"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("stnet pack: error: checkpoint ") and "missing.pt not found" in err


@pytest.mark.parametrize("name", ["../../x", "a/b", "..", ".hidden", ""])
def test_pack_refuses_a_name_outside_out_dir(small_checkpoint: Path, tmp_path: Path, capsys, name: str):
    out = tmp_path / "a" / "b" / "weights"
    rc = stnet_main(["pack", str(small_checkpoint), "--name", name, "--out-dir", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(f"stnet pack: error: --name {name!r}: a weights name is a plain file name")
    assert not out.exists() and not (tmp_path / "x.pt").exists()


def test_disk_full_is_one_line(small_checkpoint: Path, tmp_path: Path, monkeypatch, capsys):
    def full(tensors, filename, *a, **k):
        Path(filename).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pack, "save_file", full)
    out = tmp_path / "w"
    rc = stnet_main(["pack", str(small_checkpoint), "--name", "n", "--out-dir", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("stnet pack: error: no space left on /") and err.count("\n") == 1
    assert f"writing {out / 'n.safetensors'}" in err and list(out.iterdir()) == []


def test_ctrl_c_is_one_line(monkeypatch, capsys, small_checkpoint: Path):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pack, "load_state", interrupted)
    rc = stnet_main(["pack", str(small_checkpoint), "--name", "n"])
    err = capsys.readouterr().err
    assert rc == 130 and err == "stnet pack: interrupted (Ctrl-C): files written so far are complete\n"


@pytest.mark.parametrize("device,msg", [("banana", "expected auto, cpu, cuda or cuda:N"),
                                        ("cpu:1", "expected auto, cpu, cuda or cuda:N"),
                                        ("cuda:x", "expected auto, cpu, cuda or cuda:N"),
                                        ("cuda:7", "CUDA is not available|this machine has")])
def test_bad_device_is_a_one_line_error(device: str, msg: str, tmp_path: Path, capsys):
    with pytest.raises(ValueError, match=msg):
        check_device(device)
    rc = stnet_main(["eval", "--checkpoint", str(tmp_path / "x.pt"), "--set", f"runtime.device={device}",
                     "--set", f"data_root={tmp_path}", str(Path(__file__).parents[1] / "configs" /
                                                            "stnet_1s_lspet_128x96_b32x1_e60.yaml")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith(f"stnet eval: error: runtime.device={device!r}") and err.count("\n") == 1
