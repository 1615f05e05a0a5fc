"""The index stream's building blocks: sort-based shuffle (exactly uniform, ties included), the budget's head of
an epoch (hypergeometric), sparse labels, and batches that run across epochs."""
from collections import Counter

import numpy as np
import pytest

from benchmark import UserError, get_method
from benchmark.method import (LabelCSR, Method, TrainInfo, class_factors_to_examples, head_counts,
                              shuffled_repeat, stochastic_repeat)
from benchmark.sampling import BudgetBatchSampler


class TiedRng:
    """A generator whose random key bits are drawn from `values` only (forcing ties); shuffles are real."""

    def __init__(self, values, seed=0):
        self.values = np.asarray(values, dtype=np.uint64)
        self.real = np.random.default_rng(seed)

    def integers(self, low, high, size, dtype):
        return self.real.choice(self.values, size=size)

    def shuffle(self, x):
        self.real.shuffle(x)


def order_frequencies(draw, trials):
    return Counter(tuple(draw().tolist()) for _ in range(trials))


def assert_uniform(freq, n_outcomes, trials):
    assert len(freq) == n_outcomes
    expected = trials / n_outcomes
    chi2 = sum((f - expected) ** 2 / expected for f in freq.values())
    assert chi2 < 30.0, freq  # df = n_outcomes - 1 <= 5: p < 1e-5 for a correct sampler


def test_shuffled_repeat_is_the_multiset_in_some_order():
    rng = np.random.default_rng(0)
    counts = rng.integers(0, 5, size=1000)
    out = shuffled_repeat(counts, rng)
    assert out.dtype == np.int64
    np.testing.assert_array_equal(np.sort(out), np.repeat(np.arange(1000), counts))
    assert not np.array_equal(out, np.sort(out))
    assert shuffled_repeat(np.zeros(3, dtype=np.int64), rng).size == 0


@pytest.mark.parametrize("counts, outcomes", [([1, 1, 1], 6), ([2, 1], 3), ([1, 2, 1], 12)])
def test_shuffled_repeat_is_uniform(counts, outcomes):
    rng = np.random.default_rng(1)
    trials = 300 * outcomes
    assert_uniform(order_frequencies(lambda: shuffled_repeat(np.array(counts), rng), trials), outcomes, trials)


@pytest.mark.parametrize("values", [[0], [0, 1 << 63]], ids=["all tied", "two runs"])
def test_ties_in_the_random_bits_are_shuffled(values):
    rng = TiedRng(values, seed=2)
    trials = 1800
    freq = order_frequencies(lambda: shuffled_repeat(np.array([1, 1, 1]), rng), trials)
    assert_uniform(freq, 6, trials)


def test_epoch_head_of_a_short_epoch_is_the_epoch():
    counts = np.array([30, 10, 3, 1])
    info = TrainInfo(labels=np.repeat(np.arange(4), counts), multi_label=False, num_classes=4, budget_samples=100)
    m = get_method("oversample", beta=0.7)
    m.setup(info)
    full = m.epoch_indices(info, 0, 0.0, np.random.default_rng(5))
    np.testing.assert_array_equal(m.epoch_head(info, 0, 0.0, np.random.default_rng(5), full.size + 10), full)


def test_epoch_head_follows_the_cut_epoch():
    # integer factors: every epoch holds example i exactly f_i times (10 draws), and the budget takes 4
    factors = np.array([1.0, 3.0, 6.0])
    rng = np.random.default_rng(3)
    heads = np.array([stochastic_repeat(factors, rng, limit=4) for _ in range(4000)])
    assert heads.shape == (4000, 4)
    per_example = np.stack([(heads == i).sum(axis=1) for i in range(3)], axis=1)
    assert per_example.max(axis=0).tolist() == [1, 3, 4]  # never more than the epoch holds (or the head fits)
    np.testing.assert_allclose(per_example.mean(axis=0), [0.4, 1.2, 2.4], atol=0.05)
    for pos in range(4):  # every position of the head is a uniform draw from the epoch
        np.testing.assert_allclose(np.bincount(heads[:, pos], minlength=3) / 4000, [0.1, 0.3, 0.6], atol=0.025)


def test_head_counts_beyond_numpys_hypergeometric_limit():
    rng = np.random.default_rng(4)
    counts = np.array([6 * 10**8, 3 * 10**8, 3 * 10**8, 2])  # 1.2e9 draws: the distinct-positions path
    draws = np.array([head_counts(counts, 1000, rng) for _ in range(200)])
    assert (draws.sum(axis=1) == 1000).all() and (draws <= counts).all()
    np.testing.assert_allclose(draws.mean(axis=0)[:3] / 1000, [0.5, 0.25, 0.25], atol=0.01)


def test_an_epoch_too_large_to_count_is_a_user_error():
    with pytest.raises(UserError, match="lower the balancing strength"):
        stochastic_repeat(np.array([1.0, 1e19]), np.random.default_rng(0))


def test_label_csr_and_class_factors_match_the_dense_matrix():
    rng = np.random.default_rng(6)
    y = rng.random((500, 9)) < 0.2
    y[:7] = False  # examples without labels
    csr = LabelCSR.from_dense(y)
    rows, cols = np.nonzero(y)
    np.testing.assert_array_equal(csr.rows, rows)
    np.testing.assert_array_equal(csr.indices, cols)
    info = TrainInfo(labels=y, multi_label=True, num_classes=9, budget_samples=10)
    np.testing.assert_array_equal(info.class_counts, y.sum(axis=0))
    cf = rng.uniform(0.5, 5.0, size=9)
    for agg in ("max", "sum", "mean"):
        dense = class_factors_to_examples(y, cf, agg, default=1.0)
        np.testing.assert_array_equal(class_factors_to_examples(info.label_csr, cf, agg, default=1.0), dense)
        assert (dense[:7] == 1.0).all()
    single = TrainInfo(labels=np.array([2, 0, 2]), multi_label=False, num_classes=3, budget_samples=3)
    np.testing.assert_array_equal(single.label_csr.indices, [2, 0, 2])
    np.testing.assert_array_equal(single.label_csr.rows, [0, 1, 2])


class Sequential(Method):
    """Test method: every epoch is 0..n-1 in order."""

    name = "sequential"

    def epoch_indices(self, train, epoch, progress, rng):
        return np.arange(train.n_examples)


def test_batches_run_across_epochs_shorter_than_a_batch():
    info = TrainInfo(labels=np.zeros(5, dtype=np.int64), multi_label=False, num_classes=1, budget_samples=23)
    s = BudgetBatchSampler(Sequential(), info, 23, 7, seed=0)
    batches = list(s)
    assert batches == [[0, 1, 2, 3, 4, 0, 1], [2, 3, 4, 0, 1, 2, 3], [4, 0, 1, 2, 3, 4, 0], [1, 2]]
    assert len(batches) == len(s)
    np.testing.assert_array_equal(s.draw_counts, [5, 5, 5, 4, 4])


def test_a_long_epoch_is_cut_to_the_budget_without_building_it():
    counts = np.array([5000, 20, 2])
    info = TrainInfo(labels=np.repeat(np.arange(3), counts), multi_label=False, num_classes=3, budget_samples=300)
    m = get_method("oversample", beta=1.0)  # epoch: 3 x 5000 draws
    m.setup(info)
    assert m.epoch_head(info, 0, 0.0, np.random.default_rng(0), 300).size == 300
    s = BudgetBatchSampler(m, info, 300, 64, seed=1)
    idx = np.concatenate([np.asarray(b) for b in s])
    assert idx.size == 300 and s.draw_counts.sum() == 300
    seen = s.class_counts_seen()
    assert seen.min() > 60  # flattened: each class near 100
