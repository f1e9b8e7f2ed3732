"""The small-batch GPU fast path: mode selection (testable anywhere) and, on a CUDA machine, graph
replay against eager."""
import pytest
import torch

from stnet.backends.fast_cuda import FastRunner, _first, resolve_mode
from stnet.backends.torch import TorchBackend
from stnet.models import create_model


def test_resolve_mode_falls_back_to_eager_off_cuda():
    assert resolve_mode("auto", "cpu") == "eager"
    assert resolve_mode("graph", "cpu") == "eager"
    assert resolve_mode("compile", torch.device("cpu")) == "eager"
    assert resolve_mode("auto", "cuda") == "graph"
    assert resolve_mode("compile", "cuda:0") == "compile"
    assert resolve_mode("eager", "cuda") == "eager"
    with pytest.raises(ValueError, match="auto, eager, graph or compile"):
        resolve_mode("graphs", "cpu")


def test_runner_is_a_plain_call_on_cpu():
    model = torch.nn.Conv2d(3, 4, 3).eval()
    runner = FastRunner(model, "cpu", "graph", channels_last=True)
    x = torch.randn(3, 3, 16, 12)
    assert runner.mode == "eager"
    torch.testing.assert_close(runner(x), model(x))
    assert runner.captured_shapes == []


def test_first_rows_of_nested_outputs():
    out = [torch.zeros(4, 2), (torch.ones(4, 1), "meta"), {"heatmaps": torch.ones(4, 5)}]
    cut = _first(out, 3)
    assert cut[0].shape == (3, 2) and cut[1][0].shape == (3, 1) and cut[1][1] == "meta"
    assert cut[2]["heatmaps"].shape == (3, 5)


def test_torch_backend_uses_the_runner():
    net = create_model("stnet_1s", num_joints=14, input_size=(64, 64), width=8)
    backend = TorchBackend(net, (64, 64), "cpu")
    assert backend.runner.mode == "eager"
    assert backend(torch.randn(2, 3, 64, 64).numpy()).shape == (2, 14, 16, 16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_graph_replay_matches_eager_on_cuda():
    net = create_model("stnet_1s", num_joints=14, input_size=(64, 64), width=8).eval().cuda()
    runner = FastRunner(net, "cuda", "graph")
    for n in (1, 3, 3, 4):  # 3 pads to the graph of 4
        x = torch.randn(n, 3, 64, 64, device="cuda")
        with torch.inference_mode():
            ref = net(x)
        out = runner(x)
        ref_last = ref[-1] if isinstance(ref, (list, tuple)) else ref
        out_last = out[-1] if isinstance(out, (list, tuple)) else out
        torch.testing.assert_close(out_last, ref_last, atol=1e-4, rtol=1e-4)
    assert sorted(runner.captured_shapes) == [(1, 3, 64, 64), (4, 3, 64, 64)]
