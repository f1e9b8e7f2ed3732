"""ModelCard: one record of what a model file is, read from every file layout stnet has written."""
from __future__ import annotations

import json
import warnings

import pytest
import torch

from stnet import ModelCard, PoseEstimator
from stnet.card import CARD_VERSION, card_from_checkpoint
from stnet.constants import DEFAULT_MODEL, WEIGHTS_DIR
from stnet.data.skeletons import get_skeleton
from stnet.inference.estimator import UntrainedWeightsWarning
from stnet.model_files import list_pretrained, load_model_ref

LSPET = "stnet_1s.lspet_128x96"  # packed before cards existed: its json is the version-0 layout


def test_round_trip():
    card = ModelCard(model="stnet_1s", overrides={"width": 8}, input_size=(64, 48), num_joints=17,
                     skeleton=get_skeleton("coco17").to_dict(), codec={"kind": "msra", "sigma": 2.0},
                     decode=True, with_affine=True, provenance={"source": "x", "epoch": 3}, metrics={"AP": 0.5})
    d = json.loads(json.dumps(card.to_dict()))
    assert d["card_version"] == CARD_VERSION and d["crop"]["pixel_mapping"] == "msra"
    assert ModelCard.from_dict(d) == card and not card.unbiased


@pytest.mark.skipif(LSPET not in list_pretrained(), reason="shipped weights not in this install")
def test_version_0_pack_json_still_loads():
    raw = json.loads((WEIGHTS_DIR / f"{LSPET}.json").read_text())
    assert "card_version" not in raw  # written by stnet pack before cards
    card = load_model_ref(LSPET).card
    assert card.model == "stnet_1s" and card.input_size == (128, 96) and card.num_joints == 14
    assert card.skeleton is not None and card.skeleton["name"] == "lsp14" and card.codec == raw["codec"]
    assert card.provenance["sha256"] == raw["sha256"] and card.provenance["weights"] == "ema"
    assert card.metrics["PCK@0.2"] == raw["metrics"]["PCK@0.2"] and card.normalization["std"] == [0.229, 0.224, 0.225]


def test_version_0_graph_metadata_still_loads():
    """The json ``stnet export`` wrote before cards: the codec flattened beside its kind."""
    old = {"model": "stnet_1s", "skeleton": "coco17", "keypoint_names": list(get_skeleton("coco17").keypoint_names),
           "skeleton_def": get_skeleton("coco17").to_dict(), "input_size": [256, 192],
           "normalize": "ImageNet mean/std on RGB 0..255",
           "normalization": {"color": "RGB", "scale": "1/255", "mean": [0.485, 0.456, 0.406],
                             "std": [0.229, 0.224, 0.225], "layout": "NCHW float32"},
           "crop": {"bbox_padding": 1.25}, "codec": "udp", "heatmap_stride": 4, "sigma": 2.0, "blur_kernel_size": 11,
           "decode": True, "with_affine": False, "untrained": False, "source": "runs/x/best.pt"}
    card = ModelCard.from_dict(old)
    assert card.codec == {"kind": "udp", "heatmap_stride": 4, "sigma": 2.0, "blur_kernel_size": 11}
    assert card.decode and not card.with_affine and card.input_size == (256, 192)
    assert card.provenance == {"untrained": False, "source": "runs/x/best.pt"}
    assert card.skeleton is not None and card.skeleton["name"] == "coco17"


def test_version_0_checkpoint_config_still_loads():
    cfg = {"model": {"name": "stnet_2s", "overrides": {"width": 16}}, "input_size": [256, 192],
           "codec": {"kind": "udp", "sigma": 2.0}, "train": {"skeleton": "mpii16"}, "val": {"skeleton": "mpii16"}}
    card = card_from_checkpoint({"model": {}, "config": cfg, "epoch": 7, "best_metric": 0.8})
    assert card.model == "stnet_2s" and card.overrides == {"width": 16} and card.skeleton_name == "mpii16"
    assert card.provenance == {"epoch": 7} and card.metrics == {"best_metric": 0.8}
    assert card_from_checkpoint({"model": {"w": torch.zeros(1)}}) == ModelCard()  # a bare state_dict
    # a checkpoint with a card: the card wins
    written = ModelCard(model="hrnet_w32", input_size=(64, 48)).to_dict()
    assert card_from_checkpoint({"model": {}, "config": cfg, "card": written}).model == "hrnet_w32"


def test_bad_cards_name_the_field():
    with pytest.raises(ValueError, match=r"^x.json: input_size must be \[H, W\], got 'big'"):
        ModelCard.from_dict({"input_size": "big"}, where="x.json")
    with pytest.raises(ValueError, match="x.json: overrides must be an object"):
        ModelCard.from_dict({"overrides": [1]}, where="x.json")
    with pytest.raises(ValueError, match="card_version 99 is newer"):
        ModelCard.from_dict({"card_version": 99}, where="x.json")
    with pytest.raises(ValueError, match="expected a json object"):
        ModelCard.from_dict([1], where="x.json")  # type: ignore[arg-type]


@pytest.mark.skipif(DEFAULT_MODEL not in list_pretrained(), reason="shipped weights not in this install")
def test_default_estimator_runs_the_shipped_weights():
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrainedWeightsWarning)
        est = PoseEstimator()
    assert not est.untrained and est.card.provenance["name"] == DEFAULT_MODEL and est.card.provenance["sha256"]
    assert est.skeleton.name == "coco17" and len(est.skeleton.keypoint_names) == 17  # COCO's layout
    with pytest.warns(UntrainedWeightsWarning):  # an architecture name: untrained, because asked for
        assert PoseEstimator("stnet_1s", input_size=(64, 64)).untrained
    with pytest.raises(FileNotFoundError, match="an architecture, not pretrained weights"):
        PoseEstimator.from_pretrained("stnet_1s")
