"""Speed of the report: the many-weightings metric kernel (bootstrap and prior-shift columns) and a report render,
first (nothing cached) and again (numbers and figures cached).

Not part of the default run: ``python -m pytest tests/perf -m perf -k report``. The kernel's shape is one
default-grid synth-multilabel run (26,000 x 60, ~2.5 labels per example); ratios are measured in the same run.
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmark.core.metrics import RunMetrics, average_precision
from benchmark.core.stats import bootstrap_counts

from .common import best_time, best_times

pytestmark = pytest.mark.perf

N, C, B = 26_000, 60, 100


@pytest.fixture(scope="module")
def problem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    prior = 0.3 * 0.93 ** np.arange(C) + 0.002
    y = rng.random((N, C)) < prior
    s = (rng.normal(size=(N, C)) + 1.5 * y).astype(np.float32)
    return y, s, bootstrap_counts(N, B, 1)


def test_bootstrap_columns(bench, problem):
    """B resamples of the pool, mAP only (the curve's and the views' bootstrap), one sort for all of them."""
    y, s, R = problem
    rm = RunMetrics(True, y, s)
    out = bench(rm, R, metrics=["mAP"])
    assert out["mAP"].shape == (B,) and np.isfinite(out["mAP"]).all()


def test_many_weightings_beat_one_call_per_weighting(problem):
    """The shared sort and the sparse segment sums against one exact call per resample (same numbers)."""
    y, s, R = problem
    k = 8
    X = R[:, :k].astype(np.float64)
    rm = RunMetrics(True, y, s)
    many = best_time(lambda: rm(X, metrics=["mAP"]), repeat=3)
    one = best_time(lambda: [average_precision(y, s, X[:, j]) for j in range(k)], repeat=1)
    got = rm(X, metrics=["mAP"])["mAP"]
    ref = np.array([np.nanmean(average_precision(y, s, X[:, j])) for j in range(k)])
    np.testing.assert_allclose(got, ref, atol=1e-12)
    assert one / many > 2.0, f"{k} weightings together {many:.3f} s vs one call each {one:.3f} s"


def test_curve_bootstrap_at_five_gammas(bench, problem):
    """The multi-label curve bootstrap at the 5 γ points `curve_boot_points` keeps (25 resamples each) against all
    17: the same numbers at those points (the same resamples times the same weights), in a fraction of the time."""
    from reports.priorshift import curve_boot_points

    y, s, R = problem
    rng = np.random.default_rng(2)
    G = rng.gamma(2.0, 0.5, size=(N, 17))  # positive weights standing in for the 17 raked γ weightings
    Rc = R[:, :25]
    rm = RunMetrics(True, y, s)
    rm(G, metrics=["mAP"])  # the sort and the pool's segments, shared by both below (as in a render)
    keep = curve_boot_points([k / 8 for k in range(17)], True)

    def boot(cols: list[int]) -> np.ndarray:
        X = (Rc[:, None, :] * G[:, cols].astype(np.float32)[:, :, None]).reshape(N, -1)
        return rm(X, metrics=["mAP"])["mAP"].reshape(len(cols), -1)

    five = bench(boot, keep)
    t_five, t_all = best_time(lambda: boot(keep), repeat=2), best_time(lambda: boot(list(range(17))), repeat=1)
    np.testing.assert_array_equal(five, boot(list(range(17)))[keep])
    bench.extra_info.update(five_s=t_five, all_s=t_all)
    assert t_all / t_five > 2.0, f"5 of 17 γ points: {t_five:.3f} s vs all 17: {t_all:.3f} s"


def test_render_first_and_cached(bench, tmp_path):
    """A report of a fake run dir (a single-label and a multi-label task, 3 seeds, 2 betas, SADE views): first
    render (numbers, views and figures computed; sections analyzed side by side, figures drawn in worker
    processes) against the cached re-render, which skips numbers and figures."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from fake_runs import make_run_dir
    from reports import render_report
    from reports.options import Options

    run = make_run_dir(tmp_path / "run", betas=(0.5, 1.0), n_nat=3000, n_rest=1500, n_val=1500)
    make_run_dir(tmp_path / "run", multi=True, C=12, betas=(0.5, 1.0), n_nat=3000, n_rest=1500, n_val=1500)
    options = Options(views=["sade"])

    def first() -> None:
        shutil.rmtree(run / "cache", ignore_errors=True)
        render_report(run, options=options)

    t_first, cpu_first = best_times(first, repeat=1)
    assert len(list(run.glob("*.png"))) == 6  # per task: the curve, the β sweep, the per-class panel
    bench(render_report, run, options=options)
    t_cached = best_time(lambda: render_report(run, options=options), repeat=2)
    bench.extra_info.update(first_s=t_first, first_cpu_s=cpu_first, cached_s=t_cached)
    assert t_cached < t_first / 2, f"cached {t_cached:.2f} s vs first {t_first:.2f} s"
