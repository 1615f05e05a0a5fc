"""`evaluate`'s import of prediction files at AudioSet's eval shape (20,000 × 527 multi-label scores per model).

Not part of the default run: ``python -m pytest tests/perf -m perf -k evaluate``. pytest-benchmark times reading,
checking, scoring every view and writing the result records of 10 models; `extra_info` holds the peak traced
memory (numpy allocations), which stays at a few score matrices however many files there are, because files are
scored one at a time. The README's number for 100 models was measured with `run_benchmark.py evaluate --no-report`
under /usr/bin/time (see "Evaluate predictions from your own training code").
"""
from __future__ import annotations

import shutil
import tracemalloc

import numpy as np
import pytest

from benchmark.predictions import load_predictions, write_results

pytestmark = pytest.mark.perf

N, C, MODELS = 20_000, 527, 10


@pytest.fixture(scope="module")
def preds(tmp_path_factory):
    d = tmp_path_factory.mktemp("preds")
    rng = np.random.default_rng(0)
    prev = np.maximum(0.3 / np.arange(1, C + 1), 4e-4)
    y = rng.random((N, C)) < prev
    counts = np.maximum((2_000_000 * prev).astype(np.int64), 1)
    for i in range(MODELS):
        scores = rng.standard_normal((N, C), dtype=np.float32) + 1.5 * y
        np.savez(d / f"m{i}.npz", pool_scores=scores, pool_labels=y, train_counts=counts, n_train=np.array(2_000_000),
                 task="big", method="none" if i % 2 == 0 else "oversample:beta=1", seed=i // 2)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.mark.slow(reason="10 models of 20,000 x 527 scores, twice: ~30 s per round on 2 cores")
def test_import_of_audioset_shaped_predictions(bench, preds, tmp_path):
    out = tmp_path / "out"

    def run():
        shutil.rmtree(out, ignore_errors=True)
        return write_results(load_predictions([preds]), out)

    tracemalloc.start()
    paths = bench.pedantic(run, rounds=2, iterations=1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    bench.extra_info["models"] = MODELS
    bench.extra_info["peak_traced_MB"] = round(peak / 2**20, 1)
    assert len(paths) == MODELS
    # memory is bounded by a few score matrices (42 MB each), not by the number of files
    assert peak < 12 * N * C * 4
