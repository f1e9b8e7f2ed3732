"""HRNet baseline: published parameter/GFLOPs counts, output shapes, config validation, registry."""
from __future__ import annotations

import pytest
import torch

from stnet.models import create_model, list_models
from stnet.models.complexity import count_complexity
from stnet.models.hrnet import HRNet, HRNetConfig, hrnet_w32

# (model, num_joints, (H, W)) -> (params in millions, GFLOPs) as reported by Sun et al. 2019 in
# their COCO and MPII tables (GFLOPs in HRNet's convention, see stnet.models.complexity).
PUBLISHED = [
    ("hrnet_w32", 17, (256, 192), 28.54, 7.12),
    ("hrnet_w32", 17, (384, 288), 28.54, 16.0),
    ("hrnet_w48", 17, (256, 192), 63.6, 14.6),
    ("hrnet_w48", 17, (384, 288), 63.6, 32.9),
    ("hrnet_w32", 16, (256, 256), 28.54, 9.5),
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # The forwards here are small; one intra-op thread keeps the file fast when the machine is
    # shared (two OpenMP threads competing with other processes ran it ~6x slower).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


_CACHE: dict[tuple[str, int, str], HRNet] = {}


def _model(name: str, num_joints: int, device: str = "cpu") -> HRNet:
    """Models are cached per module; "meta" ones hold no data and run shape-only forwards, which
    is all the complexity counter needs (it hooks output shapes), so counting costs no compute."""
    key = (name, num_joints, device)
    if key not in _CACHE:
        with torch.device(device):
            _CACHE[key] = create_model(name, num_joints=num_joints).eval()
    return _CACHE[key]


@pytest.mark.parametrize("name,joints,size,params_m,gflops", PUBLISHED)
def test_published_complexity(name, joints, size, params_m, gflops):
    c = count_complexity(_model(name, joints, "meta"), size)
    assert c.params / 1e6 == pytest.approx(params_m, rel=0.005)
    assert c.gflops == pytest.approx(gflops, rel=0.01)


def test_meta_count_matches_a_real_forward():
    real = count_complexity(_model("hrnet_w32", 17), (256, 192))
    assert real == count_complexity(_model("hrnet_w32", 17, "meta"), (256, 192))


def test_w32_exact_parameter_count():
    # The total HRNet's own model summary prints for pose_hrnet_w32 with 17 joints.
    assert sum(p.numel() for p in _model("hrnet_w32", 17, "meta").parameters()) == 28_536_113


@pytest.mark.parametrize("joints", [17, 16, 14])
@pytest.mark.parametrize("size", [(256, 192), (256, 256)])
def test_output_shape(joints, size):
    h, w = size
    with torch.no_grad():
        out = _model("hrnet_w32", joints)(torch.zeros(1, 3, h, w))
    assert out.shape == (1, joints, h // 4, w // 4)


def test_gradients_reach_the_stem():
    model = HRNet(HRNetConfig(num_joints=3)).train()
    model(torch.randn(2, 3, 64, 64)).square().mean().backward()
    assert model.stem[0][0].weight.grad is not None
    assert model.stem[0][0].weight.grad.abs().sum() > 0


def test_init():
    torch.manual_seed(0)
    model = _model("hrnet_w32", 17)
    # 544 head weights: the sample std of N(0, 0.001) is within ~10% of 0.001 for any seed
    assert float(model.head.weight.detach().std()) == pytest.approx(0.001, rel=0.1)
    assert torch.all(model.head.bias == 0)
    bn = model.stem[0][1]
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)


def test_last_module_outputs_highest_resolution_only():
    last = _model("hrnet_w32", 17).stages[-1][-1]
    assert len(last.branches) == 4 and len(last.fuse) == 1


@pytest.mark.parametrize("shape,match", [
    ((1, 1, 256, 192), r"\(B, 3, H, W\)"),
    ((3, 256, 192), r"\(B, 3, H, W\)"),
    ((1, 3, 250, 192), "multiples of 32"),
    ((1, 3, 256, 200), "multiples of 32"),
])
def test_bad_input_shape(shape, match):
    with pytest.raises(ValueError, match=match):
        _model("hrnet_w32", 17)(torch.zeros(shape))


@pytest.mark.parametrize("field,value,match", [
    ("width", 40, r"HRNetConfig\.width=40 .*32 or 48"),
    ("width", True, r"HRNetConfig\.width"),
    ("num_joints", 0, r"HRNetConfig\.num_joints=0 .*positive integer"),
    ("num_joints", 1.5, r"HRNetConfig\.num_joints"),
    ("input_size", (250, 192), r"HRNetConfig\.input_size=\(250, 192\) .*multiples of 32"),
    ("input_size", (256,), r"HRNetConfig\.input_size"),
    ("input_size", 256, r"HRNetConfig\.input_size"),
])
def test_invalid_config(field, value, match):
    with pytest.raises(ValueError, match=match):
        HRNetConfig(**{field: value})


def test_config_normalises_sequences():
    cfg = HRNetConfig(input_size=[384, 288])
    assert cfg.input_size == (384, 288)
    assert cfg == HRNetConfig(input_size=(384, 288))
    assert cfg.to_dict() == {"width": 32, "num_joints": 17, "input_size": [384, 288]}
    assert cfg.widths == (32, 64, 128, 256)


def test_unknown_override_suggests_field():
    with pytest.raises(ValueError, match=r"'num_joint' \(did you mean 'num_joints'\?\)"):
        hrnet_w32(num_joint=16)


def test_registry():
    names = list_models()
    assert "hrnet_w32" in names and "hrnet_w48" in names
    m = create_model("hrnet_w48", num_joints=16, input_size=(256, 256))
    assert isinstance(m, HRNet)
    assert m.cfg == HRNetConfig(width=48, num_joints=16, input_size=(256, 256))
    assert m.num_joints == 16
