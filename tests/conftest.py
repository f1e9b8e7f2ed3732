"""Shared test fixtures. The real-data folder is ``../shared/data`` next to the repository
(override with ``STNET_DATA_ROOT``); tests that need it are marked ``@pytest.mark.data`` and
skip cleanly when it is absent.

Test-only code that tests and benchmarks share (synthetic data, reference implementations) is in
``tests/helpers/``; pytest puts ``tests/`` on ``sys.path``, so tests import it as ``helpers.*``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

#: Crop size (H, W) of the small networks the inference / export tests run.
SMALL_INPUT = (128, 96)


def shared_data_root() -> Path:
    env = os.environ.get("STNET_DATA_ROOT")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The real-data folder; skips the test when it is not there."""
    root = shared_data_root()
    if not root.is_dir():
        pytest.skip(f"real data folder {root} not found (set STNET_DATA_ROOT)")
    return root


@pytest.fixture(scope="session")
def real_photos() -> list[Path]:
    """The coco_mini training photos when the real-data folder is there (else an empty list)."""
    return sorted((shared_data_root() / "coco_mini" / "train2017").glob("*.jpg"))


@pytest.fixture(scope="session")
def random_stnet() -> torch.nn.Module:
    """``stnet_1s`` at 128x96 in eval mode with randomised weights and BatchNorm statistics
    (outputs of realistic magnitude; see :func:`stnet.apps.bench.randomize`). Shared: do not modify."""
    from stnet.apps.bench import randomize
    from stnet.models import create_model

    torch.manual_seed(0)
    model = create_model("stnet_1s", input_size=SMALL_INPUT).eval()
    randomize(model)
    return model


@pytest.fixture(scope="session")
def test_image() -> np.ndarray:
    """A 180x240 RGB uint8 image with smooth structure and some noise."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:180, 0:240]
    img = np.stack([(xx * 1.1) % 255, (yy * 1.7) % 255, (xx * yy / 50) % 255], -1)
    return (img + rng.integers(0, 30, img.shape)).clip(0, 255).astype(np.uint8)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # OpenVINO's tests run last: once it has compiled many models in a process, a later test
    # that forks DataLoader workers segfaulted (seen with test_persistent_workers_see_the_epoch
    # after all of test_openvino.py; each alone passes).
    items.sort(key=lambda item: item.path.name == "test_openvino.py")
    # `data`-marked tests skip as a group when the folder is absent, even if they do not use
    # the fixture.
    if shared_data_root().is_dir():
        return
    skip = pytest.mark.skip(reason=f"real data folder {shared_data_root()} not found")
    for item in items:
        if "data" in item.keywords:
            item.add_marker(skip)
