"""Speed and memory of the oversampling index stream at AudioSet train scale (2 M clips x 527 classes).

Not part of the default run: ``python -m pytest tests/perf -m perf``. Every comparison measures both sides in the
same run, in CPU time (steadier than wall time on a shared machine); absolute times are reported by
pytest-benchmark only. The fixture holds a dense 2 M x 527 bool matrix (1 GB), as the engine's TrainInfo does.
"""
from __future__ import annotations

import numpy as np
import pytest

from benchmark.method import TrainInfo, shuffled_repeat
from benchmark.registry import get_method

from .bench_sampler import (bench_batch_overhead, make_audioset_labels, naive_epoch, previous_epoch,
                            torch_weighted_draws)
from .common import best_times, peak_memory

pytestmark = pytest.mark.perf

N, C = 2_000_000, 527
BETA_25M = 0.56  # β whose epoch holds ~25 M draws on this label set (the figure); β = 1 gives ~470 M


@pytest.fixture(scope="module")
def audioset():
    csr, counts = make_audioset_labels(N, C, seed=0)
    dense = np.zeros((N, C), dtype=bool)
    dense[csr.rows, csr.indices] = True
    info = TrainInfo(labels=dense, multi_label=True, num_classes=C, budget_samples=10 * N)
    info.label_csr  # once per run in the engine
    return info, csr, counts


def oversample(info, beta):
    m = get_method("oversample", beta=beta, aggregate="max")
    m.setup(info)
    return m


def test_epoch_of_25M_draws(bench, audioset):
    info, _, _ = audioset
    m = oversample(info, BETA_25M)
    rng = np.random.default_rng(0)
    idx = bench.pedantic(m.epoch_indices, args=(info, 0, 0.0, rng), rounds=3)
    assert 20e6 < idx.size < 30e6
    bench.extra_info["draws"] = int(idx.size)


@pytest.mark.parametrize("limit", [10_000_000, 25_000_000])
def test_head_of_a_470M_epoch(bench, audioset, limit):
    info, _, _ = audioset
    m = oversample(info, 1.0)
    assert m.repeat_factors(info).sum() > 300e6  # each class's clips together draw >= n_max = 1 M times
    rng = np.random.default_rng(0)
    idx = bench.pedantic(m.epoch_head, args=(info, 0, 0.0, rng, limit), rounds=3)
    assert idx.size == limit


def test_memory_is_one_epoch_or_the_budget_never_more(audioset):
    info, _, _ = audioset
    m = oversample(info, BETA_25M)
    draws = m.repeat_factors(info).sum()
    full = peak_memory(lambda: m.epoch_indices(info, 0, 0.0, np.random.default_rng(0))) / (8 * draws)
    m1 = oversample(info, 1.0)
    head = peak_memory(lambda: m1.epoch_head(info, 0, 0.0, np.random.default_rng(0), 10_000_000))
    print(f"\npeak: {full:.2f} x a 25 M epoch's indices; head of 10 M: {head / 2**20:.0f} MB")
    assert full < 2.0
    assert head < 2.5 * 8 * 10_000_000  # the 470 M epoch (3.8 GB as int64) is never built


def test_sort_shuffle_beats_fisher_yates(audioset):
    counts = np.random.default_rng(1).poisson(12.5, N)  # 25 M entries
    rng = np.random.default_rng(2)
    ours = best_times(lambda: shuffled_repeat(counts, rng))[1]
    theirs = best_times(lambda: rng.permutation(np.repeat(np.arange(N), counts)))[1]
    print(f"\nsort-shuffle {ours:.3f} s, np.repeat + rng.permutation {theirs:.3f} s CPU: {theirs / ours:.1f}x")
    assert theirs / ours > 1.3


def test_speedup_vs_previous_and_naive_loop(audioset):
    info, csr, counts = audioset
    m = oversample(info, BETA_25M)
    cf = (counts.max() / counts) ** BETA_25M
    rng = np.random.default_rng(3)
    draws = m.repeat_factors(info).sum()
    ours = best_times(lambda: m.epoch_indices(info, 0, 0.0, rng))[1]
    before = best_times(lambda: previous_epoch(info.labels, cf, rng), repeat=1)[1]
    sub = N // 100
    py = best_times(lambda: naive_epoch(csr.indptr[: sub + 1].tolist(), csr.indices[: csr.indptr[sub]].tolist(),
                                        cf.tolist(), seed=0), repeat=1)[1] * 100
    print(f"\nours {ours:.3f} s, before {before:.3f} s ({before / ours:.1f}x), "
          f"Python loop ~{py:.1f} s ({py / ours:.1f}x) CPU for {draws / 1e6:.1f} M draws")
    assert before / ours > 4.0
    assert py / ours > 8.0


def test_faster_per_draw_than_weighted_random_sampler(audioset):
    info, _, _ = audioset
    m = oversample(info, 1.0)
    factors = m.repeat_factors(info)
    rng = np.random.default_rng(4)
    # a budget of 25 M draws (~12 epochs of N): the per-run cost of factors and rounding is spread as in training
    ours = best_times(lambda: m.epoch_head(info, 0, 0.0, rng, 25_000_000), repeat=2)[1] / 25_000_000
    wrs = best_times(lambda: torch_weighted_draws(factors, N, seed=0), repeat=2)[1] / N
    print(f"\nours {1e9 * ours:.0f} ns/draw, WeightedRandomSampler {1e9 * wrs:.0f} ns/draw (CPU)")
    assert wrs / ours >= 10.0


def test_per_batch_overhead_is_negligible_beside_a_gpu_step():
    rows = bench_batch_overhead(batch=12, n_batches=50_000)
    for r in rows:
        assert float(r["share of an AST-base step"]) < 1e-3, r
