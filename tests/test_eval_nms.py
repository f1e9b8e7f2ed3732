"""OKS-NMS: the vectorised implementation equals the straightforward reference on random inputs."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.nms_reference import oks_nms_reference
from stnet.evaluation import oks_nms, pairwise_oks

SIGMAS = np.array([.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89]) / 10


def _clustered(rng: np.random.Generator, n: int, n_img: int, k: int = 17):
    """Instances around a few 'persons' per image, so that suppression really happens."""
    img = rng.integers(0, n_img, n)
    person = rng.integers(0, 3, n)
    centre = (img * 7 + person)[:, None, None] * 13.0 + rng.uniform(0, 5, (1, k, 2))
    spread = rng.choice([0.5, 2.0, 8.0, 30.0], size=n)[:, None, None]
    kp = centre + rng.normal(0, 1, (n, k, 2)) * spread
    scores = rng.uniform(0, 1, n)
    areas = rng.uniform(500, 5000, n)
    ks = rng.uniform(0, 1, (n, k))
    return kp, scores, areas, img, ks


@pytest.mark.parametrize("seed", range(40))
def test_vectorised_equals_reference_random(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 120))
    kp, scores, areas, img, ks = _clustered(rng, n, int(rng.integers(1, 6)))
    thr = float(rng.choice([0.9, 0.5, 0.3]))
    a = oks_nms(kp, scores, areas, SIGMAS, img, thr)
    b = oks_nms_reference(kp, scores, areas, SIGMAS, img, thr)
    np.testing.assert_array_equal(a, b)
    vis_thr = 0.2
    a = oks_nms(kp, scores, areas, SIGMAS, img, thr, keypoint_scores=ks, vis_thr=vis_thr)
    b = oks_nms_reference(kp, scores, areas, SIGMAS, img, thr, keypoint_scores=ks, vis_thr=vis_thr)
    np.testing.assert_array_equal(a, b)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2 ** 32 - 1), n=st.integers(0, 40), k=st.integers(1, 6),
       thr=st.floats(0.05, 0.99), ties=st.booleans())
def test_vectorised_equals_reference_hypothesis(seed, n, k, thr, ties):
    rng = np.random.default_rng(seed)
    kp = rng.normal(0, 1, (n, k, 2)) * rng.choice([0.3, 3.0, 30.0])
    # Ties in score exercise the tie-break (input order) in both implementations.
    scores = rng.integers(0, 3, n).astype(float) if ties else rng.uniform(0, 1, n)
    areas = rng.uniform(10, 1000, n)
    img = rng.integers(0, 3, n)
    sig = rng.uniform(0.02, 0.1, k)
    np.testing.assert_array_equal(oks_nms(kp, scores, areas, sig, img, thr),
                                  oks_nms_reference(kp, scores, areas, sig, img, thr))


def test_suppression_semantics():
    base = np.array([[10.0, 10.0], [20.0, 40.0]])
    kp = np.stack([base, base + 0.1, base + 50.0])  # 0 and 1 near-identical, 2 far away
    scores = np.array([0.5, 0.9, 0.7])
    keep = oks_nms(kp, scores, np.full(3, 1000.0), np.array([0.05, 0.05]), thr=0.9)
    assert keep.tolist() == [1, 2]  # the higher-scoring duplicate survives
    # Other image: not suppressed.
    keep = oks_nms(kp, scores, np.full(3, 1000.0), np.array([0.05, 0.05]), np.array([1, 2, 1]), 0.9)
    assert keep.tolist() == [0, 1, 2]
    # OKS equal to the threshold is kept (suppress only when > thr).
    o = pairwise_oks(kp[:2], np.full(2, 1000.0), np.array([0.05, 0.05]))[0, 1]
    assert oks_nms(kp[:2], scores[:2], np.full(2, 1000.0), np.array([0.05, 0.05]), thr=o).tolist() == [0, 1]
    assert oks_nms(np.zeros((0, 2, 2)), np.zeros(0), np.zeros(0), np.array([0.05, 0.05])).size == 0


def test_pairwise_oks_symmetric_with_unit_diagonal():
    rng = np.random.default_rng(0)
    kp = rng.normal(0, 10, (6, 17, 2))
    m = pairwise_oks(kp, rng.uniform(100, 900, 6), SIGMAS)
    np.testing.assert_allclose(m, m.T)
    np.testing.assert_allclose(np.diag(m), 1.0)


def test_bad_shapes():
    with pytest.raises(ValueError, match="sigmas"):
        oks_nms(np.zeros((2, 3, 2)), np.zeros(2), np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match="scores"):
        oks_nms(np.zeros((2, 3, 2)), np.zeros(3), np.ones(2), np.ones(3))
