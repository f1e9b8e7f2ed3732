"""Shared test fixtures. The real-data folder is ``../shared/data`` next to the repository
(override with ``STNET_DATA_ROOT``); tests that need it are marked ``@pytest.mark.data`` and
skip cleanly when it is absent."""
from __future__ import annotations

import os
from pathlib import Path

import pytest


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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # `data`-marked tests skip as a group when the folder is absent, even if they do not use
    # the fixture.
    if shared_data_root().is_dir():
        return
    skip = pytest.mark.skip(reason=f"real data folder {shared_data_root()} not found")
    for item in items:
        if "data" in item.keywords:
            item.add_marker(skip)
