"""engine.evaluate.evaluate: the model comes back in the mode it was handed in."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

import stnet.engine.evaluate as ev


@pytest.mark.parametrize("training", [True, False])
def test_evaluate_restores_the_training_mode(monkeypatch, training):
    net = nn.Conv2d(1, 1, 1).train(training)
    seen: list[bool] = []

    def fake(model, *args, **kwargs):
        seen.append(model.training)
        if training:
            raise RuntimeError("boom")  # restored on errors too
        return {"m": 1.0}

    monkeypatch.setattr(ev, "_evaluate", fake)
    loader = SimpleNamespace(dataset=SimpleNamespace(codec=None, skeleton=SimpleNamespace(flip_index=[0])))
    if training:
        with pytest.raises(RuntimeError, match="boom"):
            ev.evaluate(net, loader, None, device=torch.device("cpu"))  # type: ignore[arg-type]
    else:
        assert ev.evaluate(net, loader, None, device=torch.device("cpu")) == {"m": 1.0}  # type: ignore[arg-type]
    assert seen == [False] and net.training == training
