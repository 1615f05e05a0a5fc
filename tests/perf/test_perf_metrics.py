"""Speed and memory of benchmark.core.metrics at 20,000 x 527 (long-tailed multi-label, tied scores).

Not part of the default run: ``python -m pytest tests/perf -m perf``. The speed-up test measures sklearn in the
same run, so it holds on slow or busy machines; absolute times are reported by pytest-benchmark only.
"""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.core.metrics import multilabel_metrics, singlelabel_metrics

from .bench_metrics import float64_logits, sklearn_ap_auc
from .common import best_time, make_multilabel_problem, make_weights, peak_memory

pytestmark = pytest.mark.perf

N, C = 20_000, 527
MIN_SPEEDUP = 20.0  # ours (AP + AUC + d', all classes) vs sklearn (AP + AUC per class)
MAX_MEMORY = 3.0  # peak extra memory / score matrix bytes


@pytest.fixture(scope="module")
def problem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y, s = make_multilabel_problem(N, C, seed=0)
    return y, s, make_weights(N, seed=1)


@pytest.fixture(scope="module")
def logits64() -> np.ndarray:
    """float64 adjusted logits, as the engine evaluates them: not float32-exact, so the float64 sort path runs."""
    return float64_logits(make_multilabel_problem(N, C, seed=0, ties=False)[1])


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_multilabel_float32(bench, problem, weighted):
    y, s, w = problem
    m = bench(multilabel_metrics, y, s, w if weighted else None)
    assert m["n_classes_scored"] == C


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_multilabel_float64_logits(bench, problem, logits64, weighted):
    y, _, w = problem
    m = bench(multilabel_metrics, y, logits64, w if weighted else None)
    assert m["n_classes_scored"] == C


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_singlelabel(bench, weighted):
    rng = np.random.default_rng(3)
    n, k = 50_000, 100
    y = np.minimum(rng.zipf(1.3, n) - 1, k - 1)
    z = rng.normal(size=(n, k)) + 2.0 * np.eye(k)[y]
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    w = make_weights(n, seed=4) if weighted else None
    m = bench(singlelabel_metrics, y, p, w)
    assert 0.0 < m["top1"] <= 1.0


@pytest.mark.parametrize("scores", ["float32", "float64"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_speedup_vs_sklearn(problem, logits64, scores, weighted):
    y, s, w = problem
    s = s if scores == "float32" else logits64
    w = w if weighted else None
    ours = best_time(lambda: multilabel_metrics(y, s, w), repeat=5)
    t_sklearn = best_time(lambda: sklearn_ap_auc(y, s, w), repeat=1)
    print(f"\nours {ours:.3f} s, sklearn {t_sklearn:.3f} s, speed-up {t_sklearn / ours:.1f}x")
    assert t_sklearn / ours >= MIN_SPEEDUP


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_peak_memory(problem, dtype, weighted):
    y, s, w = problem
    s = s.astype(dtype)
    w = w if weighted else None
    ratio = peak_memory(lambda: multilabel_metrics(y, s, w)) / s.nbytes
    print(f"\npeak extra memory {ratio:.2f} x the score matrix")
    assert ratio <= MAX_MEMORY
