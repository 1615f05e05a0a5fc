"""Evaluation views: natural group, AudioSet-style balanced construction, inverse prior, raking."""
import numpy as np
import pytest

from benchmark import UserError
from benchmark.core.priors import reversed_prior
from benchmark.core.views import ViewContext, build_views, greedy_min_positives, rake, subsample_to_prior


def test_reversed_prior_mirrors_ranks():
    p = np.array([0.1, 0.6, 0.3])
    np.testing.assert_allclose(reversed_prior(p), [0.6, 0.1, 0.3])


def test_subsample_to_prior_exact_counts():
    y = np.repeat(np.arange(3), [100, 100, 100])
    idx = subsample_to_prior(y, 3, np.array([0.5, 0.3, 0.2]), np.random.default_rng(0))
    np.testing.assert_array_equal(np.bincount(y[idx], minlength=3), [100, 60, 40])
    assert len(set(idx.tolist())) == idx.size


def test_greedy_balanced_reaches_k_positives():
    rng = np.random.default_rng(0)
    y = rng.random((3000, 8)) < np.linspace(0.5, 0.03, 8)
    idx = greedy_min_positives(y, 40, np.random.default_rng(1))
    counts = y[idx].sum(axis=0)
    assert counts.min() >= 40
    assert idx.size < 3000 and np.all(np.diff(idx) > 0)
    # a class with too few candidates contributes all it has, never crashes
    y[:, 7] = False
    y[:5, 7] = True
    idx = greedy_min_positives(y, 40, np.random.default_rng(1))
    assert y[idx, 7].sum() == 5


def test_raking_hits_target_marginals():
    rng = np.random.default_rng(0)
    y = rng.random((5000, 6)) < np.array([0.4, 0.3, 0.2, 0.1, 0.05, 0.02])
    target = np.array([0.05, 0.08, 0.1, 0.2, 0.3, 0.35])
    w, info = rake(y, target, max_weight_ratio=np.inf)
    prev = (w @ y) / w.sum()
    np.testing.assert_allclose(prev, target, atol=1e-4)
    assert info["max_marginal_error"] < 1e-4 and 0 < info["effective_n"] <= 5000
    # clipping the largest weights trades a reported marginal error for a larger effective sample size
    wc, info_c = rake(y, target, max_weight_ratio=100)
    prev_c = (wc @ y) / wc.sum()
    assert info_c["clipped_fraction"] > 0 and info_c["effective_n"] > info["effective_n"]
    assert np.isclose(info_c["max_marginal_error_after_clipping"], np.abs(prev_c - target).max())


def ctx(labels, multi, counts, groups=None, n_train=None):
    return ViewContext(labels=labels, multi_label=multi, num_classes=len(counts), train_counts=np.asarray(counts),
                       n_train=n_train or int(np.sum(counts)), groups=groups or {}, seed=0, min_positives=30)


def test_single_label_views():
    y = np.repeat(np.arange(4), 200)
    views = build_views(["natural", "balanced", "inverse"], ctx(y, False, [800, 200, 50, 10]))
    nat = np.bincount(y[views["natural"].indices], minlength=4)
    np.testing.assert_array_equal(nat, [200, 50, 12, 2])
    np.testing.assert_array_equal(np.bincount(y[views["balanced"].indices], minlength=4), [200] * 4)
    inv = np.bincount(y[views["inverse"].indices], minlength=4)
    np.testing.assert_array_equal(inv, [2, 12, 50, 200])
    assert all(v.weights is None for v in views.values())


def test_multilabel_views_use_groups_and_weights():
    rng = np.random.default_rng(0)
    y = rng.random((4000, 5)) < np.array([0.5, 0.2, 0.1, 0.05, 0.02])
    groups = {"natural": np.arange(2000), "balanced_candidates": np.arange(2000, 4000)}
    v = build_views(["natural", "balanced", "inverse"], ctx(y, True, [500, 200, 100, 50, 20], groups, 1000))
    np.testing.assert_array_equal(v["natural"].indices, np.arange(2000))
    assert v["balanced"].indices.min() >= 2000 and y[v["balanced"].indices].sum(axis=0).min() >= 30
    inv = v["inverse"]
    prev = (inv.weights @ y[inv.indices]) / inv.weights.sum()
    np.testing.assert_allclose(prev, [0.02, 0.05, 0.1, 0.2, 0.5], atol=5e-3)


def test_unknown_view_is_an_error():
    with pytest.raises(UserError, match="unknown evaluation view 'sideways'.*balanced"):
        build_views(["sideways"], ctx(np.zeros(3, dtype=int), False, [3]))


def test_raking_when_every_row_carries_a_zero_target_class_keeps_all_rows():
    # a tiny split where every clip has a class absent from training (target 0): no empty view, no crash
    y = np.array([[1, 0, 1], [1, 1, 0], [1, 1, 1]], dtype=bool)
    w, info = rake(y, np.array([0.0, 0.5, 0.5]))
    assert w.shape == (3,) and np.all(np.isfinite(w)) and w.sum() > 0
