"""Deployment prior estimation (benchmark.core.labelshift) at the offline default's shape.

Not part of the default run: ``python -m pytest tests/perf -m perf``. synth-singlelabel's shape: 4,000 validation
examples, 5,000 deployment examples, 20 classes. A bootstrap resample refits BCTS from the full-data fit with
`BOOT_NEWTON_STEPS` Newton steps instead of a full fit: the benchmark times both.
"""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.core.labelshift import estimate_prior, fit_bcts

pytestmark = pytest.mark.perf

C = 20


@pytest.fixture(scope="module")
def scores():
    rng = np.random.default_rng(0)
    prior = np.exp(-np.arange(C) / 4.0)
    prior /= prior.sum()

    def z(y):
        return 2.5 * np.eye(C)[y] + rng.normal(size=(y.size, C))

    yv = rng.choice(C, 4000, p=prior)
    yd = rng.choice(C, 5000, p=prior[::-1])
    return z(yv), yv, z(yd), prior


def test_full_bcts_fit(bench, scores):
    zv, yv, _, _ = scores
    cal = bench(fit_bcts, zv, yv)
    assert 0.1 < cal.temperature < 10


def test_bootstrap_bcts_refit(bench, scores):
    zv, yv, _, _ = scores
    cal = fit_bcts(zv, yv)
    w = np.bincount(np.random.default_rng(1).integers(0, yv.size, yv.size), minlength=yv.size).astype(np.float64)
    refit = bench(fit_bcts, zv, yv, w, cal, 2)
    assert abs(refit.temperature - fit_bcts(zv, yv, w).temperature) < 0.01 * refit.temperature


def test_estimate_with_100_resamples(bench, scores):
    zv, yv, zd, prior = scores
    est = bench.pedantic(estimate_prior, args=(zv, yv, zd, prior, False), kwargs={"n_boot": 100}, rounds=1,
                         iterations=1)
    assert est.converged and est.boot.shape == (100, C)
