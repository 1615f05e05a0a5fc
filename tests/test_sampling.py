"""Repeat factors and the budgeted index stream: β=0 is the identity, β=1 flattens, max vs sum, fair budget."""
import numpy as np
import pytest

from benchmark import get_method
from benchmark.method import TrainInfo, class_factors_to_examples, stochastic_repeat
from benchmark.sampling import BudgetBatchSampler
from methods.oversample import class_repeat_factors


def single_label_info(counts, budget=None):
    y = np.repeat(np.arange(len(counts)), counts)
    return TrainInfo(labels=y, multi_label=False, num_classes=len(counts), budget_samples=budget or y.size)


def multi_label_info():
    # 4 examples, 3 classes: counts n = [3, 2, 1]
    y = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0]], dtype=bool)
    return TrainInfo(labels=y, multi_label=True, num_classes=3, budget_samples=40)


def test_class_factors_formula():
    f = class_repeat_factors(np.array([100, 25, 4, 0]), beta=0.5)
    np.testing.assert_allclose(f, [1.0, 2.0, 5.0, 0.0])
    np.testing.assert_allclose(class_repeat_factors(np.array([100, 25, 4]), beta=0.0), [1, 1, 1])


def test_max_sum_mean_aggregation_by_hand():
    info = multi_label_info()
    cf = class_repeat_factors(info.class_counts, 1.0)  # [1, 1.5, 3]
    np.testing.assert_allclose(class_factors_to_examples(info.label_matrix, cf, "max"), [1.5, 1, 3, 1])
    np.testing.assert_allclose(class_factors_to_examples(info.label_matrix, cf, "sum"), [2.5, 1, 5.5, 1])
    np.testing.assert_allclose(class_factors_to_examples(info.label_matrix, cf, "mean"), [1.25, 1, 5.5 / 3, 1])
    for agg, want in (("max", [1.5, 1, 3, 1]), ("sum", [2.5, 1, 5.5, 1])):
        np.testing.assert_allclose(get_method("oversample", beta=1.0, aggregate=agg).repeat_factors(info), want)


def test_absent_class_is_ignored():
    y = np.array([[1, 0, 0], [1, 1, 0]], dtype=bool)  # class 2 absent from training
    info = TrainInfo(labels=y, multi_label=True, num_classes=3, budget_samples=10)
    f = get_method("oversample", beta=1.0).repeat_factors(info)
    np.testing.assert_allclose(f, [1.0, 2.0])
    assert np.all(np.isfinite(f))


def test_stochastic_rounding_is_unbiased():
    rng = np.random.default_rng(0)
    factors = np.array([0.25, 1.0, 2.5, 3.0])
    counts = np.zeros(4)
    for _ in range(4000):
        counts += np.bincount(stochastic_repeat(factors, rng), minlength=4)
    np.testing.assert_allclose(counts / 4000, factors, atol=0.05)
    once = np.bincount(stochastic_repeat(factors, rng), minlength=4)
    assert once[1] == 1 and once[3] == 3 and once[2] in (2, 3) and once[0] in (0, 1)


def stream(method, info, budget, batch=7, seed=0):
    method.setup(info)
    s = BudgetBatchSampler(method, info, budget, batch, seed)
    batches = list(s)
    return s, np.concatenate([np.asarray(b) for b in batches]), batches


def test_beta_zero_reproduces_none_exactly():
    info = single_label_info([50, 20, 5, 1])
    _, none_idx, _ = stream(get_method("none"), info, 300)
    _, zero_idx, _ = stream(get_method("oversample", beta=0.0), info, 300)
    np.testing.assert_array_equal(none_idx, zero_idx)
    _, other_seed, _ = stream(get_method("none"), info, 300, seed=1)
    assert not np.array_equal(none_idx, other_seed)


def test_beta_one_flattens_single_label_counts():
    counts = [400, 100, 40, 10]
    info = single_label_info(counts)
    s, _, _ = stream(get_method("oversample", beta=1.0), info, 40_000)
    seen = s.class_counts_seen()
    assert seen.max() / seen.min() < 1.1  # flat up to stochastic rounding
    s0, _, _ = stream(get_method("none"), info, 40_000)
    seen0 = s0.class_counts_seen()
    assert 38 < seen0.max() / seen0.min() < 42  # natural prior: 40x


def test_fair_budget_every_method_draws_the_same_number_of_samples():
    info = single_label_info([60, 30, 10])
    for spec in ("none", "oversample:beta=1", "oversample:beta=0.5,aggregate=sum", "class_weighted", "focal"):
        s, idx, batches = stream(get_method(spec), info, 257, batch=16)
        assert idx.size == 257 and s.draw_counts.sum() == 257
        assert all(len(b) == 16 for b in batches[:-1]) and len(batches) == len(s) == 17


def test_effective_prior_multilabel_counts_labels_of_drawn_samples():
    info = multi_label_info()
    s, idx, _ = stream(get_method("none"), info, 40, batch=5)
    expected = info.label_matrix[idx].sum(axis=0)
    np.testing.assert_array_equal(s.class_counts_seen(), expected)


@pytest.mark.parametrize("beta", [0.0, 0.5, 1.0])
def test_expected_draws_follow_the_formula(beta):
    counts = np.array([300, 60, 12])
    info = single_label_info(counts)
    m = get_method("oversample", beta=beta)
    s, idx, _ = stream(m, info, 100 * info.n_examples, batch=64)
    factors = (counts.max() / counts) ** beta
    want = counts * factors / (counts * factors).sum()
    np.testing.assert_allclose(s.class_counts_seen() / idx.size, want, atol=0.01)
