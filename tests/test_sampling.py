"""Repeat factors and the budgeted index stream: β=0 is the identity, β=1 flattens, max vs sum, fair budget."""
import numpy as np
import pytest

from benchmark import get_method
from benchmark.method import TrainInfo, class_factors_to_examples, stochastic_repeat
from benchmark.sampling import BudgetBatchSampler
from benchmark.sampling import oversampling_class_factors


def single_label_info(counts, budget=None):
    y = np.repeat(np.arange(len(counts)), counts)
    return TrainInfo(labels=y, multi_label=False, num_classes=len(counts), budget_samples=budget or y.size)


def multi_label_info():
    # 4 examples, 3 classes: counts n = [3, 2, 1]
    y = np.array([[1, 1, 0], [1, 0, 0], [1, 1, 1], [0, 0, 0]], dtype=bool)
    return TrainInfo(labels=y, multi_label=True, num_classes=3, budget_samples=40)


def test_class_factors_formula():
    f = oversampling_class_factors(np.array([100, 25, 4, 0]), beta=0.5)
    np.testing.assert_allclose(f, [1.0, 2.0, 5.0, 0.0])
    np.testing.assert_allclose(oversampling_class_factors(np.array([100, 25, 4]), beta=0.0), [1, 1, 1])


def test_max_sum_mean_aggregation_by_hand():
    info = multi_label_info()
    cf = oversampling_class_factors(info.class_counts, 1.0)  # [1, 1.5, 3]
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


# ---- the library samplers (benchmark.samplers): the same formulas, as torch Samplers for any training loop ----

import warnings  # noqa: E402

import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

from benchmark.samplers import (ClassUniformSampler, OversamplingSampler, ProgressiveSampler,  # noqa: E402
                                RepeatFactorSampler, RepeatSampler, SquareRootSampler, class_counts, label_csr)


def long_tailed_multilabel(n=600, seed=0):
    return np.random.default_rng(seed).random((n, 6)) < [0.5, 0.3, 0.1, 0.05, 0.02, 0.0]


def test_library_factors_are_the_methods_factors():
    y = long_tailed_multilabel()
    info = TrainInfo(labels=y, multi_label=True, num_classes=6, budget_samples=0)
    for agg in ("max", "sum", "mean"):
        s = OversamplingSampler(y, beta=0.7, aggregate=agg)
        np.testing.assert_array_equal(s.factors, get_method("oversample", beta=0.7, aggregate=agg).repeat_factors(info))
    rf = get_method("repeat_factor")
    rf.setup(info)
    np.testing.assert_array_equal(RepeatFactorSampler(y).factors, rf.repeat_factors(info))
    sq = get_method("sqrt_sampling:q=0.3")
    sq.setup(info)
    np.testing.assert_array_equal(SquareRootSampler(y, q=0.3).class_p, sq.class_p)


def test_every_target_format_gives_the_same_stream():
    y = long_tailed_multilabel()
    want = OversamplingSampler(y, beta=1.0, seed=4).global_indices()
    dense = torch.as_tensor(y, dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch: "sparse CSR support is in beta"
        sparse_csr = dense.to_sparse_csr()
    for t in (y.astype(np.float32), torch.as_tensor(y), sp.csr_matrix(y), sp.coo_matrix(y.astype(np.int8)),
              dense.to_sparse(), sparse_csr, y.astype(int).tolist()):
        np.testing.assert_array_equal(OversamplingSampler(t, beta=1.0, seed=4).global_indices(), want)
    labels = np.array([0, 2, 2, 1, 2])
    np.testing.assert_array_equal(class_counts(torch.as_tensor(labels)), [1, 1, 3])
    assert label_csr(labels, num_classes=5)[1:] == (5, False)


@pytest.mark.parametrize("beta, agg", [(0.5, "max"), (1.0, "max"), (1.0, "sum")])
def test_realized_prior_follows_the_formula(beta, agg):
    y = long_tailed_multilabel(seed=1)
    n = y.sum(axis=0)
    m = np.where(n > 0, (n.max() / np.maximum(n, 1)) ** beta, 0)
    per_example = (y * m).max(axis=1) if agg == "max" else (y * m).sum(axis=1)
    per_example[~y.any(axis=1)] = 1.0
    want = (y * per_example[:, None]).sum(axis=0) / per_example.sum()  # labels per draw, by class
    s = OversamplingSampler(y, beta=beta, aggregate=agg, num_samples=30_000, seed=0)
    idx = np.concatenate([np.fromiter(s, dtype=np.int64) for _ in range(3)])  # three epochs
    np.testing.assert_allclose(y[idx].sum(axis=0) / idx.size, want, atol=0.006)


def test_single_label_beta_one_is_balanced_and_the_default_length_is_one_oversampled_epoch():
    y = np.repeat([0, 1, 2], [400, 40, 10])
    s = OversamplingSampler(y, beta=1.0, seed=0)
    assert len(s) == 1200 and s.class_factors.tolist() == [1.0, 10.0, 40.0]
    counts = np.bincount(y[list(s)], minlength=3)
    assert counts.sum() == 1200 and np.abs(counts - 400).max() < 40
    assert len(OversamplingSampler(y, beta=1.0, num_samples=450)) == 450  # a budget: fixed steps per epoch


def test_shards_are_disjoint_equal_parts_of_one_global_stream():
    y = np.repeat([0, 1, 2], [300, 30, 5])
    for world, num, drop in ((2, 1001, False), (3, 1000, False), (3, 1000, True), (4, 7, True), (1, 333, False)):
        ranks = [OversamplingSampler(y, beta=0.5, num_samples=num, seed=9, rank=r, world_size=world, drop_last=drop)
                 for r in range(world)]
        for epoch in (0, 3):
            for s in ranks:
                s.set_epoch(epoch)
            glob = ranks[0].global_indices()
            parts = [list(s) for s in ranks]
            per = num // world if drop else -(-num // world)
            assert {len(p) for p in parts} == {per} and all(len(s) == per for s in ranks)
            assert glob.size == per * world  # drop_last: fewer; otherwise the stream continues, no padding repeats
            for r, p in enumerate(parts):
                assert p == glob[r::world].tolist()  # rank r: positions r, r + W, ...: disjoint, together all
    a = OversamplingSampler(y, beta=0.5, num_samples=100, seed=1, rank=0, world_size=2)
    b = OversamplingSampler(y, beta=0.5, num_samples=100, seed=2, rank=1, world_size=2)
    assert not np.array_equal(a.global_indices(), b.global_indices())  # the seed must be the same on all ranks


def test_epochs_advance_by_themselves_and_set_epoch_replays_one():
    y = np.repeat([0, 1], [50, 5])
    s = OversamplingSampler(y, beta=1.0, seed=0)
    first, second = list(s), list(s)
    assert first != second and s.epoch == 2
    s.set_epoch(0)
    assert list(s) == first
    s.set_epoch(1)
    assert list(s) == second
    assert OversamplingSampler(y, beta=1.0, seed=0).global_indices(epoch=1).tolist() == second


def test_a_dataloader_takes_the_sampler():
    y = np.repeat([0, 1, 2], [90, 9, 1])
    ds = TensorDataset(torch.arange(100), torch.as_tensor(y))
    s = OversamplingSampler(y, beta=1.0, num_samples=300, seed=0, rank=1, world_size=2)
    dl = DataLoader(ds, batch_size=32, sampler=s)
    seen = torch.cat([x for x, _ in dl])
    assert len(dl) == 5 and seen.numel() == 150
    assert seen.tolist() == s.global_indices(epoch=0)[1::2].tolist()


def test_class_samplers_draw_by_their_formulas():
    y = np.repeat([0, 1, 2], [100, 25, 4])
    cu = ClassUniformSampler(y, num_samples=3000, seed=0)
    np.testing.assert_array_equal(np.bincount(y[list(cu)]), [1000, 1000, 1000])  # round robin: exactly equal
    four = np.fromiter(ClassUniformSampler(y, per_class=4, num_samples=128, seed=0), dtype=np.int64)
    runs = y[four].reshape(32, 4)
    assert (runs == runs[:, :1]).all()
    sq = SquareRootSampler(y, q=0.5, num_samples=40_000, seed=0)
    np.testing.assert_allclose(np.bincount(y[list(sq)]) / 40_000, [10 / 17, 5 / 17, 2 / 17], atol=0.01)
    pr = ProgressiveSampler(y, num_epochs=2, num_samples=30_000, seed=0)
    assert sorted(ProgressiveSampler(y, num_epochs=2, seed=0)) == list(range(129))  # epoch 0: instance-balanced
    pr.set_epoch(1)  # t = 1/2: half instance-, half class-balanced
    want = 0.5 * np.array([100, 25, 4]) / 129 + 0.5 / 3
    np.testing.assert_allclose(np.bincount(y[list(pr)]) / 30_000, want, atol=0.01)
    pr.set_epoch(5)  # past num_epochs: class-balanced
    np.testing.assert_allclose(np.bincount(y[list(pr)]) / 30_000, [1 / 3] * 3, atol=0.01)


def test_repeat_factor_sampler_auto_threshold_and_no_op_warning():
    y = np.repeat(np.arange(4), [70, 20, 8, 2])  # f = 0.7, 0.2, 0.08, 0.02
    s = RepeatFactorSampler(y)  # auto: 3 of 4 classes below t = 0.7
    assert s.t == 0.7
    np.testing.assert_allclose(s.class_factors, [1, np.sqrt(3.5), np.sqrt(8.75), np.sqrt(35)])
    with pytest.warns(UserWarning, match="no class is rarer than t = 0.001"):
        lvis = RepeatFactorSampler(y, t=0.001)
    assert (lvis.factors == 1).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RepeatFactorSampler(y, t=0.5)


def test_repeat_sampler_counts_are_stochastic_rounding():
    s = RepeatSampler([0.25, 1.0, 2.5, 3.0], num_samples=6750, seed=0)  # 1000 epochs of 6.75 draws
    np.testing.assert_allclose(np.bincount(list(s)) / 1000, [0.25, 1.0, 2.5, 3.0], atol=0.05)


@pytest.mark.parametrize("make, match", [
    (lambda: OversamplingSampler(np.zeros((3, 2, 2))), "targets must be .N,. class ids or an .N, C. 0/1 matrix"),
    (lambda: OversamplingSampler(np.array([0.0, 1.0])), r"targets of shape \(N,\) must be integer class ids"),
    (lambda: OversamplingSampler(np.array([0, -1])), "class ids >= 0"),
    (lambda: OversamplingSampler(np.array([[0.0, 0.7]])), r"0/1 matrix, found 0.7 at \[0, 1\]"),
    (lambda: OversamplingSampler(sp.csr_matrix(np.array([[0, 2]]))), "sparse multi-label matrix must hold 0/1"),
    (lambda: OversamplingSampler(np.array([], dtype=int)), "targets is empty"),
    (lambda: OversamplingSampler([0, 1], beta=5), r"beta must be a number in \[0, 4\]"),
    (lambda: OversamplingSampler([0, 1], aggregate="min"), "aggregate must be max, sum or mean"),
    (lambda: OversamplingSampler([0, 1], num_samples=0), "num_samples must be a positive integer"),
    (lambda: OversamplingSampler([0, 1], seed=-1), "seed must be an integer >= 0"),
    (lambda: OversamplingSampler([0, 1], rank=2, world_size=2), r"rank must be in \[0, world_size=2\)"),
    (lambda: OversamplingSampler([0, 1], world_size=0, rank=0), "world_size must be >= 1"),
    (lambda: OversamplingSampler([0, 1], num_samples=3, world_size=4, rank=0, drop_last=True), "gives each of"),
    (lambda: OversamplingSampler([0, 3], num_classes=2), "num_classes=2 but targets hold class id 3"),
    (lambda: RepeatFactorSampler([0, 1], t="often"), "t must be 'auto' or a frequency"),
    (lambda: RepeatSampler([1.0, -1.0]), "factors must be finite and >= 0, got -1.0 at example 1"),
    (lambda: ProgressiveSampler([0, 1], num_epochs=0), "num_epochs must be an integer >= 1"),
    (lambda: SquareRootSampler([0, 1], q=2), r"q must be a number in \[0, 1\]"),
    (lambda: ClassUniformSampler([0, 1], per_class=0), "per_class must be an integer >= 1"),
    (lambda: OversamplingSampler([0, 1]).set_epoch(-1), "epoch must be an integer >= 0"),
])
def test_bad_arguments_name_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_readme_training_example_runs(tmp_path):
    """The README's "Use it in your own training" example, extracted and run as a script."""
    import re
    import subprocess
    import sys

    from conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Use it in your own training", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    script = tmp_path / "train.py"
    script.write_text(code)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                       env={**__import__("os").environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 3 and lines[-1].startswith("epoch 2: loss ")
    drawn, natural = map(int, re.search(r"rarest class: (\d+) positives drawn, (\d+) in the data", lines[-1]).groups())
    assert natural == 18 and drawn > 4 * natural  # oversampled: (n_max / n_j)^0.5 ≈ 10, cut to 4,000 draws
    quoted = re.search(r"It prints `(epoch 2: loss ([0-9.]+);[^`]*)`", section)
    assert quoted and lines[-1].split(";")[1] == quoted.group(1).split(";")[1]  # the output the README quotes
    assert abs(float(lines[-1].split("loss ")[1].split(";")[0]) - float(quoted.group(2))) < 0.01  # BLAS rounding


@pytest.mark.parametrize("module", ["benchmark.sampling", "benchmark.samplers", "benchmark.losses"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted >= 10 and result.failed == 0
