"""Evaluation under prior shift: raking, reweighting, the multi-weight metrics kernel, combined intervals (with a
coverage simulation), β chosen on validation only, per-class Spearman, and the report sections."""
from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import spearmanr

from benchmark import UserError
from benchmark.core import metrics as M
from benchmark.core.metrics import RunMetrics, weighted_ap_auc
from benchmark.core.priors import lt_prior, read_prior_rows, resolve_prior
from benchmark.core.stats import bootstrap_counts, combined_interval
from benchmark.core.views import (ViewContext, build_views, expand_view_names, prior_target, rake, reweight_to_prior,
                                  shifted_prior, subsample_to_prior)
from reports.analysis import build_model
from reports.load import load_runs
from reports.options import Options
from reports.per_class import spearman_log_prior
from reports.priorshift import analyze
from reports.sweeps import select_best

sys.path.insert(0, str(Path(__file__).parent))
from fake_runs import make_run_dir  # noqa: E402

# ---------------------------------------------------------------------------------------------------- raking


def _independent_labels(n: int, prev: np.ndarray, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, prev.size)) < prev


def test_raking_hits_known_target_marginals():
    y = _independent_labels(8000, np.array([0.5, 0.3, 0.15, 0.08, 0.04, 0.02]))
    target = np.array([0.04, 0.06, 0.1, 0.15, 0.2, 0.25])  # the long tail reversed
    w, info = rake(y, target)  # auto: tightest cap that still converges
    prev = (w @ y) / w.sum()
    np.testing.assert_allclose(prev, target, atol=1e-4)
    assert info["converged"] and info["max_marginal_error"] < 1e-4
    assert np.isclose(info["max_marginal_error"], np.abs(prev - target).max())
    assert info["weight_cap"] is not None  # the uncapped solution was trimmed ...
    assert info["effective_n"] > info["effective_n_uncapped"]  # ... which bought effective sample size
    assert info["max_weight_ratio"] <= info["weight_cap"] * 1.05
    assert np.isclose(w.mean(), 1.0) and np.all(w >= 0)


def test_raking_cap_guarantees_effective_n_and_reports_the_miss():
    y = _independent_labels(4000, np.array([0.6, 0.05, 0.02]), seed=1)
    target = np.array([0.05, 0.4, 0.4])  # far from the pool: a tight cap cannot reach it
    w, info = rake(y, target, max_weight_ratio=3.0)
    assert info["effective_n"] >= 4000 / 3.0 * 0.95  # ESS >= n / cap (up to the final renormalization)
    prev = (w @ y) / w.sum()
    assert not info["converged"]
    assert np.isclose(info["max_marginal_error"], np.abs(prev - target).max())


def test_raking_zero_target_and_unmatched_classes():
    y = _independent_labels(3000, np.array([0.3, 0.2, 0.1, 0.0]), seed=2)
    w, info = rake(y, np.array([0.0, 0.3, 0.2, 0.1]))
    assert np.all(w[y[:, 0]] == 0)  # a target of 0 removes the class's positives
    prev = (w @ y) / w.sum()
    np.testing.assert_allclose(prev[1:3], [0.3, 0.2], atol=1e-4)
    assert info["zeroed_classes"] == 1 and info["unmatched_classes"] == 1  # class 3 has no positives


# ---------------------------------------------------------------------------------------------------- single-label


def test_reweighting_is_subsampling_in_expectation():
    rng = np.random.default_rng(0)
    y = rng.permutation(np.repeat(np.arange(4), [300, 150, 90, 60]))  # subsample counts 15/30/45/60: no rounding
    target = np.array([0.1, 0.2, 0.3, 0.4])
    idx, w = reweight_to_prior(y, 4, target)
    freq = np.bincount(y[idx], weights=w, minlength=4) / w.sum()
    np.testing.assert_allclose(freq, target, atol=1e-12)
    # inclusion frequency of each example over many subsamples ∝ its weight
    draws = 3000
    hits = np.zeros(y.size)
    for k in range(draws):
        sub = subsample_to_prior(y, 4, target, np.random.default_rng(k))
        hits[sub] += 1
    expected = np.zeros(y.size)
    expected[idx] = w
    expected *= hits.sum() / expected.sum()
    per_class = [np.abs(hits[y == c].mean() - expected[y == c].mean()) / expected[y == c].mean() for c in range(4)]
    assert max(per_class) < 0.01
    # within a class every example is equally likely: the spread of the hit counts is binomial noise
    for c in range(4):
        pc = expected[y == c].mean() / draws
        assert np.std(hits[y == c]) <= 1.3 * math.sqrt(draws * pc * (1 - pc)) + 1e-9
    # and a metric under the weights is the mean of the metric over subsamples
    correct = rng.random(y.size) < np.array([0.9, 0.7, 0.5, 0.3])[y]
    weighted = float(np.sum(w * correct[idx]) / w.sum())
    subs = [correct[subsample_to_prior(y, 4, target, np.random.default_rng(10_000 + k))].mean() for k in range(400)]
    assert abs(np.mean(subs) - weighted) < 3 * np.std(subs) / math.sqrt(len(subs)) + 1e-3


def test_shifted_prior_path_and_sade_family():
    p = np.array([0.6, 0.25, 0.1, 0.05])
    np.testing.assert_allclose(shifted_prior(p, 0.0), p)
    np.testing.assert_allclose(shifted_prior(p, 1.0), np.full(4, 0.25))
    np.testing.assert_allclose(shifted_prior(p, 2.0), p[::-1])
    half = shifted_prior(p, 0.5)
    np.testing.assert_allclose(half, np.sqrt(p) / np.sqrt(p).sum())
    assert expand_view_names(["sade", "natural"])[:3] == ["forward50", "forward25", "forward10"]
    assert expand_view_names(["sade"])[5] == "uniform" and len(expand_view_names(["sade", "uniform"])) == 11
    with pytest.raises(UserError, match="unknown evaluation view 'forwrd10'"):
        expand_view_names(["forwrd10"])


def test_multilabel_targets_keep_the_label_mass_and_views_realize_them():
    y = _independent_labels(6000, np.array([0.5, 0.3, 0.15, 0.08, 0.04]), seed=3)
    counts = np.array([5000, 3000, 1500, 800, 400])
    ctx = ViewContext(labels=y, multi_label=True, num_classes=5, train_counts=counts, n_train=10_000, groups={},
                      seed=0, priors={"mine": np.array([1, 1, 1, 2, 5.0])})
    for name in ("uniform", "backward10", "user:mine", "gamma1.5"):
        v = build_views([name], ctx)[name]
        prev = (v.weights @ y[v.indices]) / v.weights.sum()
        assert np.isclose(prev.sum(), counts.sum() / 10_000, atol=1e-3), name  # same labels per example
        assert v.info["converged"], name
    v = build_views(["user:mine"], ctx)["user:mine"]
    prev = (v.weights @ y[v.indices]) / v.weights.sum()
    np.testing.assert_allclose(prev / prev.sum(), np.array([1, 1, 1, 2, 5.0]) / 10, atol=2e-3)
    np.testing.assert_allclose(prior_target(ctx, np.ones(5)), np.full(5, 0.2 * counts.sum() / 10_000))


def test_prior_file_parsing(tmp_path):
    names = ["cat", "dog", "bird"]
    f = tmp_path / "p.csv"
    f.write_text("class,probability\ncat,0.5\n# comment\ndog,0.3\nBIRD,0.2\n")
    rows, kind = read_prior_rows(str(f))
    assert kind == "probability"
    np.testing.assert_allclose(resolve_prior(rows, names), [0.5, 0.3, 0.2])
    f.write_text("0,10\n2,30\n1,60\n")  # no header, indices, counts
    rows, kind = read_prior_rows(str(f))
    assert kind == "count"
    np.testing.assert_allclose(resolve_prior(rows, names), [0.1, 0.6, 0.3])
    bad = {
        "class,weight\ncat,1\n": "header must be",
        "cat,1,2\n": "expected 2 columns",
        "cat,-1\ndog,2\n": "must be a finite number >= 0",
        "cat,1\ndog,x\n": "is not a number",
        "cat,0\ndog,0\nbird,0\n": "all values are 0",
    }
    for text, msg in bad.items():
        f.write_text(text)
        with pytest.raises(UserError, match=msg):
            read_prior_rows(str(f))
    for text, msg in {"cat,1\ndgo,1\nbird,1\n": "did you mean 'dog'", "cat,1\ncat,2\n": "listed twice",
                      "cat,1\ndog,1\n": "1 of 3 classes are missing", "7,1\n": "out of range",
                      # the sum is checked after the classes, so that a missing class is named, not summed
                      "class,probability\ncat,0.5\ndog,0.3\nbird,0\n": "probabilities sum to 0.8",
                      "class,probability\ncat,0.5\ndog,0.3\n": "1 of 3 classes are missing"}.items():
        f.write_text(text)
        rows, kind = read_prior_rows(str(f))
        with pytest.raises(UserError, match=msg):
            resolve_prior(rows, names, kind=kind)


# ---------------------------------------------------------------------------------------------------- kernel


@pytest.mark.parametrize("seed", [0, 1])
def test_multiweight_kernel_equals_exact_metrics(seed):
    rng = np.random.default_rng(seed)
    n, C, K = 400, 6, 5
    y = rng.random((n, C)) < np.linspace(0.4, 0.02, C)
    y[:, 5] = False  # a class without positives: n/a
    s = np.round(rng.normal(size=(n, C)) + y, 1)  # heavy ties
    X = rng.random((n, K)) * (rng.random((n, K)) < 0.8)  # zero weights = absent examples
    ap, auc = weighted_ap_auc(y, s, X)
    for k in range(K):
        np.testing.assert_allclose(ap[k], M.average_precision(y, s, X[:, k]), atol=1e-12, equal_nan=True)
        np.testing.assert_allclose(auc[k], M.roc_auc(y, s, X[:, k]), atol=1e-12, equal_nan=True)
    # row subsets reuse the full sort
    rows = np.sort(rng.choice(n, 150, replace=False))
    rm = RunMetrics(True, y, s, exclude=np.array([False, False, True, False, False, False]))
    got = rm(X[rows], rows=rows)
    for k in range(K):
        ref = M.multilabel_metrics(y[rows][:, [0, 1, 3, 4, 5]], s[rows][:, [0, 1, 3, 4, 5]], X[rows, k])
        assert math.isclose(got["mAP"][k], ref["mAP"], abs_tol=1e-12)
        assert math.isclose(got["dprime"][k], ref["dprime"], abs_tol=1e-9)
    # mAP alone skips the AUC half: the same mAP, no mAUC / dprime in the result
    ap_only = rm(X[rows], rows=rows, metrics=["mAP"])
    assert set(ap_only) == {"mAP"} and np.array_equal(ap_only["mAP"], got["mAP"])
    # single-label: top1, balanced accuracy, one-vs-rest mAP; an excluded class drops its examples
    ys = rng.integers(0, C, n)
    p = np.round(rng.random((n, C)), 1)
    got = RunMetrics(False, ys, p, exclude=np.eye(C, dtype=bool)[2])(X)
    keep = ys != 2
    for k in range(K):
        ref = M.singlelabel_metrics(ys[keep], p[keep], X[keep, k])
        for m in ("top1", "balanced_acc", "mAP"):
            assert math.isclose(got[m][k], ref[m], abs_tol=1e-12), m


# ---------------------------------------------------------------------------------------------------- intervals


def _simulate(rng: np.random.Generator, n: int, seeds: int, B: int, a_base: float, a_meth: float,
              train_sd: float) -> tuple[float, float, float]:
    """One simulated benchmark: a fresh evaluation set, `seeds` trainings of baseline and method; returns the
    mean Δ top1 and the half-widths with and without the paired bootstrap."""
    C = 4
    y = rng.integers(0, C, n)
    u = rng.random(n)  # difficulty shared by both models: the pairing the bootstrap must respect
    boot = bootstrap_counts(n, B, int(rng.integers(1 << 30)))
    deltas, bdiff = [], []
    for _ in range(seeds):
        vals = []
        for a in (a_meth, a_base):
            correct = u < a + rng.normal(0, train_sd)
            p = np.full((n, C), 0.1)
            p[np.arange(n), np.where(correct, y, (y + 1) % C)] = 0.7
            rm = RunMetrics(False, y, p)
            vals.append((rm(np.ones(n))["top1"][0], rm(boot, metrics=["top1"])["top1"]))
        deltas.append(vals[0][0] - vals[1][0])
        bdiff.append(vals[0][1] - vals[1][1])
    with_boot = combined_interval(deltas, np.mean(bdiff, axis=0).tolist())
    seeds_only = combined_interval(deltas, None)
    return with_boot.mean, with_boot.half_width, seeds_only.half_width


def test_combined_intervals_cover_the_truth():
    rng = np.random.default_rng(0)
    truth = 0.05  # E[Δ top1] = a_meth - a_base: training noise has mean 0
    cover = cover_seeds = 0
    sims = 200
    for _ in range(sims):
        mean, hw, hw_seeds = _simulate(rng, n=300, seeds=3, B=100, a_base=0.6, a_meth=0.65, train_sd=0.004)
        cover += abs(mean - truth) <= hw
        cover_seeds += abs(mean - truth) <= hw_seeds
    assert cover / sims >= 0.90
    # the evaluation set is a shared source of noise that seeds alone cannot see
    assert cover_seeds / sims < 0.80


def test_combined_interval_formula():
    iv = combined_interval([0.01, 0.03, 0.02], None)
    assert math.isclose(iv.half_width, 4.302652729911275 * 0.01 / math.sqrt(3), rel_tol=1e-9)
    b = np.random.default_rng(0).normal(0.02, 0.01, 5000)
    iv2 = combined_interval([0.01, 0.03, 0.02], b.tolist())
    v_seed, v_boot = 0.01**2 / 3, np.var(b, ddof=1)
    from scipy.stats import t

    # each variance part with the t quantile of its own degrees of freedom (tests/test_stats.py: why)
    expected = math.sqrt(t.ppf(0.975, 2) ** 2 * v_seed + t.ppf(0.975, b.size - 1) ** 2 * v_boot)
    assert math.isclose(iv2.half_width, expected, rel_tol=1e-9)
    assert combined_interval([0.02], b.tolist()).half_width is None  # one seed: no interval
    assert combined_interval([], None) is None


# ---------------------------------------------------------------------------------------------------- β choice


def test_select_best_reads_only_its_input():
    assert select_best([0.5, 0.7, 0.7, None]) == 1  # ties: the first (less balancing)
    assert select_best([None, float("nan")]) is None


def _choices(run_dir: Path, **kw) -> dict:
    model = build_model(list(load_runs(run_dir)))
    sh = analyze(run_dir, model, Options(bootstrap=0, **kw))
    return {d: c["value"] for sw in sh["fake-sl"].sweeps for d, c in sw.choice.items()}


def _corrupt(run_dir: Path, split: str) -> None:
    """Overwrite a split's labels in every npz and its metrics in every JSON with garbage."""
    rng = np.random.default_rng(7)
    for js in sorted((run_dir / "results").glob("*/*.json")):
        res = json.loads(js.read_text())
        key = "eval" if split == "pool" else "val"
        for v in res[key].values():
            v["metrics"] = {k: float(rng.random()) for k in v["metrics"]}
        js.write_text(json.dumps(res))
        z = dict(np.load(js.with_suffix(".npz")))
        z[f"{split}_labels"] = rng.permutation(z[f"{split}_labels"])
        np.savez(js.with_suffix(".npz"), **z)


def test_beta_is_chosen_on_validation_only(tmp_path):
    run = make_run_dir(tmp_path / "a", betas=(0.5, 1.0), extra_methods=())
    views = ["uniform", "backward10", "forward10"]
    before = _choices(run, views=views)
    assert set(before) == {"natural", "balanced", "inverse", "uniform", "backward10", "forward10"}
    test_copy = tmp_path / "b"
    shutil.copytree(run, test_copy)
    _corrupt(test_copy, "pool")  # the test split: labels and stored test metrics
    assert _choices(test_copy, views=views) == before
    val_copy = tmp_path / "c"
    shutil.copytree(run, val_copy)
    _corrupt(val_copy, "val")
    assert _choices(val_copy, views=views) != before  # the choice does read validation


# ---------------------------------------------------------------------------------------------------- per class


def test_spearman_matches_scipy():
    rng = np.random.default_rng(3)
    counts = [float(c) for c in rng.integers(0, 500, 40)]
    delta = [None if k % 7 == 0 else float(np.round(rng.normal(), 1)) for k in range(40)]  # ties and n/a
    rho, p, k = spearman_log_prior(counts, delta)
    keep = [i for i in range(40) if counts[i] > 0 and delta[i] is not None]
    ref = spearmanr([math.log(counts[i]) for i in keep], [delta[i] for i in keep])
    assert k == len(keep)
    assert rho == pytest.approx(ref.statistic, abs=1e-12) and p == pytest.approx(ref.pvalue, abs=1e-12)
    assert spearman_log_prior([1.0, 2.0], [0.1, 0.2]) == (None, None, 2)
    assert spearman_log_prior([1.0, 2.0, 3.0], [0.1, 0.1, 0.1])[0] is None


# ---------------------------------------------------------------------------------------------------- end to end


def test_analysis_of_a_run_dir(tmp_path):
    run = make_run_dir(tmp_path, betas=(0.5, 1.0), extra_methods=("focal",))
    make_run_dir(tmp_path, multi=True, C=8, betas=(0.5, 1.0))
    model = build_model(list(load_runs(run)))
    shifts = analyze(run, model, Options(bootstrap=50, views=["sade", "train_prior"], shot_bins=(100, 20)))
    sl, ml = shifts["fake-sl"], shifts["fake-ml"]
    assert [d.name for d in sl.dists][:4] == ["natural", "balanced", "inverse", "forward50"]
    assert len(sl.dists) == 3 + 11 + 1
    # balancing hurts at the training prior and helps at the reversed prior (the fake's design)
    c = sl.curve.delta["oversample:beta=1"]
    assert c[0].mean < 0 < c[-1].mean and c[-1].significant
    assert sl.cells[("oversample:beta=1", "backward50", "top1")].mean > 0
    # leaderboard cells now carry the bootstrap, and are wider than seeds alone
    sec = next(s for s in model.sections if s.key == "fake-sl")
    g = next(g for g in sec.methods if g.label == "oversample:beta=1")
    from benchmark.core.stats import paired_deltas, summarize

    seeds_only = summarize(paired_deltas(g.values("natural", "top1"), sec.baseline.values("natural", "top1")))
    assert sec.delta(g, "natural", "top1").half_width > seeds_only.half_width
    # per-class bins of the training counts 505, 255, 130, 68, 36, 21: the fixed > 100 / < 20 bins would leave
    # "few" empty, so the bins are the terciles of the counts (thresholds 57 and 172: two classes each)
    assert sl.per_class.bin_sizes == {"many": 2, "medium": 2, "few": 2}
    assert dict(sl.per_class.bins)["many"] == "> 172 training examples (top third)"
    assert dict(sl.per_class.bins)["few"] == "< 57 (bottom third)"
    assert sl.per_class.metric == "recall" and ml.per_class.metric == "AP"  # single-label: per-class recall
    assert all(sl.per_class.bin_means[lab]["few"] is not None for lab in sl.per_class.delta)
    # the curve carries the leaderboards' kind of interval (seeds + bootstrap), so γ=0 and natural agree in kind
    assert {iv.kind for ivs in sl.curve.delta.values() for iv in ivs} == {"seeds+bootstrap"}
    assert sl.curve.n_bootstrap == 25 and sl.curve.n_examples > 0
    assert ml.per_class.bin_sizes == {"many": 3, "medium": 3, "few": 2}
    assert ml.curve is not None and len(ml.sweeps) == 1
    rows = sl.rows
    n_runs = 3 * 4
    assert len(rows) == n_runs * (15 * 3 + 17)


def test_sade_prior_is_the_exponential_profile_over_training_ranks():
    counts = np.array([5.0, 0.0, 500.0, 50.0])  # class 1 absent from training: prior 0
    fwd = lt_prior(counts, 100, forward=True)
    # ranks by training count: 500 -> 1, 50 -> 100^(-1/2), 5 -> 100^(-1); normalized by 1.11
    np.testing.assert_allclose(fwd, np.array([0.01, 0.0, 1.0, 0.1]) / 1.11)
    np.testing.assert_allclose(lt_prior(counts, 100, forward=False), np.array([1.0, 0.0, 0.01, 0.1]) / 1.11)
    assert lt_prior(counts, 1, forward=True).tolist() == [1 / 3, 0.0, 1 / 3, 1 / 3]
    with pytest.raises(ValueError, match="rho"):
        lt_prior(counts, 0.5, forward=True)


def test_runs_computed_in_threads_equal_one_at_a_time(tmp_path, monkeypatch):
    """The thread pool over runs changes nothing: every cell, curve point and bootstrap vector is identical."""
    import reports.priorshift as ps

    def run(dirname: str, cores: int) -> dict:
        root = make_run_dir(tmp_path / dirname, seeds=(0, 1), betas=(0.5, 1.0))
        monkeypatch.setattr(ps.os, "cpu_count", lambda: cores)
        return analyze(root, build_model(list(load_runs(root))), Options(bootstrap=20, views=["uniform"]))["fake-sl"]

    one, many = run("serial", 1), run("threads", 4)
    assert one.cells and one.cells == many.cells
    assert one.curve.delta == many.curve.delta and one.rows == many.rows


def test_multilabel_curve_bootstraps_five_gammas_and_interpolates_the_variance_between(tmp_path):
    """Multi-label: only γ = 0, 0.5, 1, 1.5, 2 get their own curve bootstrap (an AP pass per column); between them
    the bootstrap variance is the chord of its two neighbours'. Single-label (linear metrics): every γ. The point
    estimates are exact at every γ either way."""
    from scipy.stats import t

    run = make_run_dir(tmp_path, multi=True, C=8, betas=(0.5, 1.0))
    make_run_dir(tmp_path, betas=(1.0,))
    shifts = analyze(run, build_model(list(load_runs(run))), Options(bootstrap=50))
    ml, sl = shifts["fake-ml"], shifts["fake-sl"]
    assert ml.curve.boot_gammas == [0.0, 0.5, 1.0, 1.5, 2.0] and sl.curve.boot_gammas == ml.curve.gammas
    assert len(ml.curve.gammas) == 17 and ml.curve.n_bootstrap == 25
    ivs = ml.curve.delta["oversample:beta=1"]
    assert {iv.kind for iv in ivs} == {"seeds+bootstrap"}
    # the seed-paired deltas per γ, from results.csv's rows
    d = {}
    for r in ml.rows:
        if r["method"] == "oversample:beta=1" and r["distribution"].startswith("gamma"):
            d.setdefault(float(r["distribution"][5:]), []).append(r["delta"])
    n = len(d[0.0])
    q_s, q_b = t.ppf(0.975, n - 1), t.ppf(0.975, 24)

    def v_seed(g: float) -> float:
        return float(np.var(d[g], ddof=1) / n)

    def v_boot(g: float) -> float:  # backed out of a bootstrapped point's half-width
        return (ivs[ml.curve.gammas.index(g)].half_width ** 2 - q_s**2 * v_seed(g)) / q_b**2

    assert v_boot(0.0) > 0 and v_boot(0.5) > 0
    for k, g in enumerate(ml.curve.gammas):
        assert ivs[k].mean == pytest.approx(np.mean(d[g]), abs=1e-15)
    for g, lo, hi in [(0.125, 0.0, 0.5), (0.25, 0.0, 0.5), (1.75, 1.5, 2.0)]:
        w = (g - lo) / (hi - lo)
        want = np.sqrt(q_s**2 * v_seed(g) + q_b**2 * ((1 - w) * v_boot(lo) + w * v_boot(hi)))
        assert ivs[ml.curve.gammas.index(g)].half_width == pytest.approx(want, rel=1e-9)
