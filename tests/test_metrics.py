"""benchmark.core.metrics against scikit-learn: ties, weights (with zeros), float32/float64, undefined classes, errors."""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    recall_score,
    roc_auc_score,
)

import benchmark.core.metrics as M
from benchmark.core.metrics import (
    average_precision,
    dprime_from_auc,
    metrics_for,
    multilabel_metrics,
    roc_auc,
    singlelabel_metrics,
)

TOL = 1e-9


def sk_ap_auc(y, s, w=None):
    """Per-class sklearn AP and AUC; NaN where sklearn has no defined value (no positives / no negatives)."""
    y = np.asarray(y).astype(bool)
    n, C = y.shape
    live = np.ones(n, bool) if w is None else np.asarray(w) > 0
    ap, auc = np.full(C, np.nan), np.full(C, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for j in range(C):
            n_pos = np.count_nonzero(y[:, j] & live)
            if n_pos:
                ap[j] = average_precision_score(y[:, j], s[:, j], sample_weight=w)
            if 0 < n_pos < np.count_nonzero(live):
                auc[j] = roc_auc_score(y[:, j], s[:, j], sample_weight=w)
    return ap, auc


def assert_close_nan(a, b, tol=TOL):
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert a.shape == b.shape
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    ok = ~np.isnan(a)
    assert np.max(np.abs(a[ok] - b[ok]), initial=0.0) <= tol


def tied_problem(rng, n, C, decimals, dtype, prevalence=None):
    prevalence = rng.uniform(0.02, 0.6, C) if prevalence is None else prevalence
    y = rng.random((n, C)) < prevalence
    s = np.round(y * 0.8 + rng.normal(0, 0.6, (n, C)), decimals).astype(dtype)
    return y, s


def some_weights(rng, n, zero_frac=0.2):
    w = rng.exponential(size=n)
    w[rng.random(n) < zero_frac] = 0.0
    return w


# ------------------------------------------------------------------------------------------------------------------
# multi-label AP / AUC against sklearn


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("decimals", [1, 2, None])
def test_ap_auc_match_sklearn_with_ties(dtype, weighted, decimals):
    rng = np.random.default_rng([np.dtype(dtype).itemsize, int(weighted), 9 if decimals is None else decimals])
    n, C = 250, 45  # C > block size: two blocks, the last one partial
    if decimals is None:
        y = rng.random((n, C)) < rng.uniform(0.02, 0.6, C)
        s = (y + rng.normal(size=(n, C))).astype(dtype)
    else:
        y, s = tied_problem(rng, n, C, decimals, dtype)
    w = some_weights(rng, n) if weighted else None
    ap_ref, auc_ref = sk_ap_auc(y, s, w)
    assert_close_nan(average_precision(y, s, w), ap_ref)
    assert_close_nan(roc_auc(y, s, w), auc_ref)


@pytest.mark.parametrize("weighted", [False, True])
def test_layouts_label_dtypes_and_tiny_blocks(monkeypatch, weighted):
    """Fortran / non-contiguous scores, int and float 0/1 labels, and block / tile sizes that do not divide n, C."""
    monkeypatch.setattr(M, "_BLOCK", 5)
    monkeypatch.setattr(M, "_TILE", 7)
    rng = np.random.default_rng(1)
    y, s = tied_problem(rng, 123, 23, 1, np.float64)
    w = some_weights(rng, 123) if weighted else None
    ap_ref, auc_ref = sk_ap_auc(y, s, w)
    for yy, ss in [
        (y, np.asfortranarray(s)),
        (y.astype(np.int8), s),
        (y.astype(np.float32), s[:, ::-1].copy()[:, ::-1]),  # negative strides
    ]:
        assert_close_nan(average_precision(yy, ss, w), ap_ref)
        assert_close_nan(roc_auc(yy, ss, w), auc_ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True])
def test_negative_zero_ties_with_zero(dtype, weighted):
    rng = np.random.default_rng(2)
    y = rng.random((200, 6)) < 0.3
    s = np.round(rng.normal(0, 0.01, (200, 6)), 2).astype(dtype)  # many -0.0 and +0.0
    assert np.any((s == 0) & np.signbit(s)) and np.any((s == 0) & ~np.signbit(s))
    w = some_weights(rng, 200) if weighted else None
    ap_ref, auc_ref = sk_ap_auc(y, s, w)
    assert_close_nan(average_precision(y, s, w), ap_ref)
    assert_close_nan(roc_auc(y, s, w), auc_ref)


def test_float64_paths_weighted():
    """Weighted float64: float32-exact values, values 1 ulp apart (packed keys collide), and mixed blocks."""
    rng = np.random.default_rng(3)
    n, C = 250, 12
    y = rng.random((n, C)) < 0.3
    w = some_weights(rng, n)
    ulp = 0.5 + rng.integers(0, 30, (n, C)) * 2.0**-53  # distinct only in the last bits
    ulp[:, ::2] *= -1
    exact = np.round(rng.random((n, C)), 2).astype(np.float32).astype(np.float64)
    mixed = exact.copy()
    mixed[100:, 3] += 1e-12  # the cheap float32 probe passes (first 64 values) but the block is not float32-exact
    huge = rng.normal(size=(n, C)) * 1e300
    clustered = np.round(rng.random((n, C)), 1) + rng.random((n, C)) * 1e-13  # many runs need repair
    for s in (ulp, exact, mixed, huge, clustered):
        ap_ref, auc_ref = sk_ap_auc(y, s, w)
        assert_close_nan(average_precision(y, s, w), ap_ref)
        assert_close_nan(roc_auc(y, s, w), auc_ref)


def test_float64_sort_repairs_truncated_key_collisions():
    rng = np.random.default_rng(10)
    n = 300
    S = np.ascontiguousarray(0.5 + rng.integers(0, 40, (3, n)) * 2.0**-53)  # 40 values within 2^9 ulps: collide
    S[1] = -S[1]
    w = rng.random(n)
    v, ws = M._sort_f64_with_weights(S, w, M._Work(3, 3, n, np.float64, True))
    np.testing.assert_array_equal(v, np.sort(S, axis=1))
    for r in range(3):
        _, inv = np.unique(S[r], return_inverse=True)
        _, inv_sorted = np.unique(v[r], return_inverse=True)
        np.testing.assert_allclose(np.bincount(inv_sorted, ws[r]), np.bincount(inv, w), rtol=1e-14)


def test_long_tailed_problem_matches_sklearn():
    from tests.perf.common import make_multilabel_problem, make_weights

    y, s = make_multilabel_problem(1000, 40, seed=0)
    for w in (None, make_weights(1000, seed=1)):
        ap_ref, auc_ref = sk_ap_auc(y, s, w)
        m = multilabel_metrics(y, s, w)
        assert_close_nan([np.nan if v is None else v for v in m["per_class"]["AP"]], ap_ref)
        assert_close_nan([np.nan if v is None else v for v in m["per_class"]["AUC"]], auc_ref)
        assert m["mAP"] == pytest.approx(np.nanmean(ap_ref), abs=TOL)
        assert m["mAUC"] == pytest.approx(np.nanmean(auc_ref), abs=TOL)


def test_constant_and_scaled_weights():
    rng = np.random.default_rng(4)
    y, s = tied_problem(rng, 200, 8, 1, np.float32)
    base_ap, base_auc = average_precision(y, s), roc_auc(y, s)
    assert_close_nan(average_precision(y, s, np.full(200, 3.0)), base_ap)
    assert_close_nan(roc_auc(y, s, np.full(200, 3.0)), base_auc)
    w = some_weights(rng, 200)
    assert_close_nan(average_precision(y, s, 1e6 * w), average_precision(y, s, w))
    assert_close_nan(roc_auc(y, s, 1e-6 * w), roc_auc(y, s, w))


def test_zero_weight_examples_are_absent():
    rng = np.random.default_rng(5)
    y, s = tied_problem(rng, 200, 8, 1, np.float64)
    w = some_weights(rng, 200, zero_frac=0.3)
    keep = w > 0
    assert_close_nan(average_precision(y, s, w), average_precision(y[keep], s[keep], w[keep]))
    assert_close_nan(roc_auc(y, s, w), roc_auc(y[keep], s[keep], w[keep]))


# ------------------------------------------------------------------------------------------------------------------
# undefined classes, macro means, d'


def test_absent_and_all_positive_classes():
    rng = np.random.default_rng(6)
    y, s = tied_problem(rng, 100, 4, 1, np.float32, prevalence=np.array([0.3, 0.5, 0.0, 1.0]))
    assert not y[:, 2].any() and y[:, 3].all()
    ap, auc = average_precision(y, s), roc_auc(y, s)
    assert np.isnan(ap[2]) and np.isnan(auc[2])  # no positives
    assert ap[3] == 1.0 and np.isnan(auc[3])  # no negatives: AP defined (== sklearn), AUC not
    m = multilabel_metrics(y, s)
    assert m["per_class"]["AP"][2] is None and m["per_class"]["AUC"][2] is None
    assert m["per_class"]["AUC"][3] is None and m["per_class"]["AP"][3] == 1.0
    assert m["n_classes_scored"] == 3
    assert m["mAP"] == pytest.approx(np.mean(ap[[0, 1, 3]]), abs=1e-15)
    assert m["mAUC"] == pytest.approx(np.mean(auc[[0, 1]]), abs=1e-15)
    json.dumps(m, allow_nan=False)  # JSON-safe: no NaN / inf anywhere


def test_class_with_only_zero_weight_positives_is_absent():
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=bool)
    s = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.6], [0.1, 0.3]])
    w = np.array([1.0, 0.0, 1.0, 1.0])  # class 1's only live positive is example 2
    m = multilabel_metrics(y, s, w)
    assert m["per_class"]["AP"][1] is not None
    w2 = np.array([1.0, 0.0, 0.0, 1.0])  # now class 1 has no live positive
    m2 = multilabel_metrics(y, s, w2)
    assert m2["per_class"]["AP"][1] is None and m2["per_class"]["AUC"][1] is None
    assert m2["n_classes_scored"] == 1


def test_nothing_scorable_gives_none():
    y = np.zeros((5, 3), dtype=bool)
    m = multilabel_metrics(y, np.random.default_rng(0).random((5, 3)))
    assert m["mAP"] is None and m["mAUC"] is None and m["dprime"] is None and m["n_classes_scored"] == 0
    assert m["per_class"] == {"AP": [None] * 3, "AUC": [None] * 3}


def test_dprime():
    y = np.array([[1, 1], [1, 0], [0, 1], [0, 0]], dtype=bool)
    s = np.array([[0.9, 0.8], [0.8, 0.1], [0.1, 0.15], [0.2, 0.2]])
    m = multilabel_metrics(y, s)  # class 0 perfectly separated, class 1 AUC 0.75
    assert m["per_class"]["AUC"] == [1.0, 0.75]
    assert m["dprime"] == pytest.approx(math.sqrt(2) * norm.ppf(0.875), rel=1e-12)  # from the macro AUC
    perfect = multilabel_metrics(y[:, :1], s[:, :1])
    assert perfect["mAUC"] == 1.0 and math.isfinite(perfect["dprime"]) and perfect["dprime"] > 9
    assert math.isfinite(dprime_from_auc(0.0)) and dprime_from_auc(0.0) == pytest.approx(-dprime_from_auc(1.0))
    assert dprime_from_auc(0.5) == 0.0
    for auc in (0.6, 0.93, 0.999):
        assert dprime_from_auc(auc) == pytest.approx(math.sqrt(2) * norm.ppf(auc), rel=1e-12)
    for bad in (float("nan"), -0.1, 1.5):
        with pytest.raises(ValueError):
            dprime_from_auc(bad)


# ------------------------------------------------------------------------------------------------------------------
# single-label


@pytest.mark.parametrize("weighted", [False, True])
def test_singlelabel_matches_sklearn(weighted):
    rng = np.random.default_rng(7)
    n, C = 400, 9
    y = rng.choice(C - 1, size=n, p=np.r_[0.4, np.full(C - 2, 0.6 / (C - 2))])  # class C-1 absent
    logits = np.round(rng.normal(size=(n, C)) + 1.5 * np.eye(C)[y], 1)
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    w = some_weights(rng, n) if weighted else None
    m = singlelabel_metrics(y, p, w)
    pred = p.argmax(1)
    assert m["top1"] == pytest.approx(accuracy_score(y, pred, sample_weight=w), abs=TOL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert m["balanced_acc"] == pytest.approx(balanced_accuracy_score(y, pred, sample_weight=w), abs=TOL)
        rec = recall_score(y, pred, labels=list(range(C)), average=None, sample_weight=w, zero_division=np.nan)
    assert_close_nan([np.nan if v is None else v for v in m["per_class"]["recall"]], rec)
    ap_ref, _ = sk_ap_auc(np.eye(C, dtype=bool)[y], p, w)
    assert_close_nan([np.nan if v is None else v for v in m["per_class"]["AP"]], ap_ref)
    assert m["mAP"] == pytest.approx(np.nanmean(ap_ref), abs=TOL)
    assert m["per_class"]["recall"][C - 1] is None and m["per_class"]["AP"][C - 1] is None
    assert m["n_classes_scored"] == C - 1
    json.dumps(m, allow_nan=False)


def test_singlelabel_argmax_ties_take_first_max_and_zero_weights():
    y = np.array([1, 0, 1, 2])
    p = np.array([[0.5, 0.5, 0.0], [0.4, 0.4, 0.2], [0.2, 0.8, 0.0], [0.1, 0.1, 0.8]])
    m = singlelabel_metrics(y, p)
    assert m["top1"] == 0.75  # row 0 predicts class 0 (first max): a miss
    assert m["per_class"]["recall"] == [1.0, 0.5, 1.0]
    m = singlelabel_metrics(y, p, np.array([0.0, 1.0, 1.0, 1.0]))  # the miss now has weight 0
    assert m["top1"] == 1.0 and m["balanced_acc"] == 1.0


def test_metrics_for_dispatches():
    rng = np.random.default_rng(8)
    y, s = tied_problem(rng, 50, 3, 1, np.float32)
    assert metrics_for(True, y, s) == multilabel_metrics(y, s)
    yl = rng.integers(0, 3, 50)
    assert metrics_for(False, yl, s) == singlelabel_metrics(yl, s)
    assert set(metrics_for(False, yl, s)) == {"top1", "balanced_acc", "mAP", "n_classes_scored", "per_class"}


# ------------------------------------------------------------------------------------------------------------------
# validation


Y = np.array([[1, 0], [0, 1], [1, 1]], dtype=bool)
S = np.array([[0.9, 0.2], [0.1, 0.7], [0.6, 0.5]])


@pytest.mark.parametrize(
    "y, s, w, match",
    [
        (Y[:2], S, None, "shape"),
        (Y[:, 0], S, None, "2-D"),
        (Y, S[:, 0], None, "2-D"),
        (Y * 2, S, None, "0 and 1"),
        (Y, np.where(Y, np.nan, S), None, "finite"),
        (Y, np.where(Y, np.inf, S), None, "finite"),
        (Y, S, np.ones(2), "3 examples"),
        (Y, S, np.ones((3, 1)), "1-D"),
        (Y, S, np.array([1.0, -1.0, 1.0]), "non-negative"),
        (Y, S, np.array([1.0, np.nan, 1.0]), "finite"),
        (Y, S, np.array([1.0, np.inf, 1.0]), "finite"),
        (Y, S, np.zeros(3), "sums to 0"),
        (Y[:0], S[:0], None, "no examples"),
        (Y[:, :0], S[:, :0], None, "no classes"),
        (Y, S.astype(complex), None, "float"),
    ],
)
def test_multilabel_validation(y, s, w, match):
    for fn in (average_precision, roc_auc, multilabel_metrics):
        with pytest.raises(ValueError, match=match):
            fn(y, s, w)


@pytest.mark.parametrize(
    "y, w, match",
    [
        (np.array([0, 1]), None, "2 entries"),
        (np.array([[0], [1], [1]]), None, "1-D"),
        (np.array([0, 2, 1]), None, r"\[0, 2\)"),
        (np.array([0, -1, 1]), None, r"\[0, 2\)"),
        (np.array([0.0, 1.5, 1.0]), None, "integer"),
        (np.array([True, False, True]), None, "integer"),
        (np.array([0, 1, 1]), np.array([1.0, -2.0, 1.0]), "non-negative"),
    ],
)
def test_singlelabel_validation(y, w, match):
    with pytest.raises(ValueError, match=match):
        singlelabel_metrics(y, S, w)
    with pytest.raises(ValueError, match="finite"):
        singlelabel_metrics(np.array([0, 1, 1]), np.where(Y, np.nan, S))
    assert singlelabel_metrics(np.array([0.0, 1.0, 1.0]), S)["top1"] == pytest.approx(2 / 3)  # integral floats ok


@pytest.mark.parametrize("module", ["benchmark.core.metrics", "benchmark.core.priors", "benchmark.core.results",
                                    "reports.fmt", "reports.cache", "reports.summary", "reports.sweeps"])
def test_docstring_examples_run(module):
    """The examples in the public docstrings of the core and the report helpers are real, and right."""
    import doctest
    import importlib

    res = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert res.attempted > 0 and res.failed == 0, res
