"""Label-shift estimators (benchmark.core.labelshift): hand-computed cases, accuracy on known shifts, bad input.

The synthetic world is synth-singlelabel's generator (confusable Gaussian classes, CIFAR-LT training profile ρ=100,
validation = a natural part plus a uniform part) with a multinomial logistic regression as the model: its scores are
calibrated for the *training* prior only, so BCTS has real work to do on the differently-distributed validation split.
"""
import inspect

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from benchmark.core.deploy import draw_deploy_labels, named_prior
from benchmark.core.errors import UserError
from benchmark.core.labelshift import (MIN_VAL_PER_CLASS, Calibration, adapt_logits, bbse, confusion_matrix,
                                       estimate_prior, fit_bcts, mlls, mlls_binary, rlls)
from benchmark.synthetic import confusable_means, exponential_counts

C, D = 20, 16


class World:
    """A trained model and a generator of labeled examples: deployment labels exist here, estimators never see them."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.means = confusable_means(C, D, 5, 1.0, self.rng)
        self.counts = exponential_counts(C, 1000, 100.0)
        self.train_prior = self.counts / self.counts.sum()
        ytr = np.repeat(np.arange(C), self.counts)
        self.clf = LogisticRegression(max_iter=2000).fit(self.features(ytr), ytr)
        self.yv = np.concatenate([self.rng.choice(C, 2500, p=self.train_prior), np.repeat(np.arange(C), 75)])
        self.zv = self.scores(self.yv)

    def features(self, y: np.ndarray) -> np.ndarray:
        return self.means[y] + self.rng.normal(size=(y.size, D))

    def scores(self, y: np.ndarray) -> np.ndarray:
        return self.clf.decision_function(self.features(y))

    def deploy(self, prior_name: str, n: int) -> tuple[np.ndarray, np.ndarray]:
        y = draw_deploy_labels(named_prior(prior_name, self.counts), n, self.rng)
        return self.scores(y), y


@pytest.fixture(scope="module")
def worlds() -> list[World]:
    return [World(s) for s in range(3)]  # 3 data seeds: the accuracy bounds hold on each


# ------------------------------------------------------------------------------------------- hand-computed cases

def test_bbse_hand_computed_3_class():
    # validation: 10 examples, joint confusion C[pred, true] by hand
    y = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    pred = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 0])
    cm = confusion_matrix(pred, y, 3)
    np.testing.assert_allclose(cm, [[0.3, 0.0, 0.1], [0.1, 0.2, 0.0], [0.0, 0.1, 0.2]])
    # deployment predicted-class frequencies μ = (0.3, 0.3, 0.4): solve C w = μ by hand (Cramer's rule)
    # 0.3 w0 + 0.1 w2 = 0.3; 0.1 w0 + 0.2 w1 = 0.3; 0.1 w1 + 0.2 w2 = 0.4  ->  w = (7, 16, 18) / 13
    deploy_pred = np.repeat([0, 1, 2], [3, 3, 4])
    q = bbse(pred, y, deploy_pred, 3)
    p_val = np.array([0.4, 0.3, 0.3])
    # q = w ⊙ p_val = (2.8, 4.8, 5.4) / 13, which already sums to 1 (Σ_i (C w)_i = Σ_j p_j w_j = Σ μ = 1)
    np.testing.assert_allclose(q, np.array([7, 16, 18]) / 13 * p_val, atol=1e-12)
    np.testing.assert_allclose(q, np.array([2.8, 4.8, 5.4]) / 13, atol=1e-12)


def test_bbse_clips_negative_weights_and_renormalizes():
    y = np.array([0, 0, 1, 1])
    pred = np.array([0, 1, 1, 1])  # C = [[.25, 0], [.25, .5]]
    q = bbse(pred, y, np.array([1, 1, 1, 1]), 2)  # μ = (0, 1): w0 = 0, w1 = 2 -> q = (0, 1)
    np.testing.assert_allclose(q, [0.0, 1.0], atol=1e-12)
    q = bbse(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), np.array([1, 1, 1, 1]), 2)  # w0 = -2 -> clipped
    np.testing.assert_allclose(q, [0.0, 1.0], atol=1e-12)


def test_em_closed_form_fixed_point():
    # uniform source; half the examples at (0.9, 0.1), half at (0.2, 0.8): the MLE solves
    # 0.96 q^2 - 1.54 q + 0.58 = 0 (derivation in mlls' docstring), interior root 29/48
    r = mlls(np.array([[0.9, 0.1], [0.2, 0.8]]), [0.5, 0.5], tol=1e-12)
    assert r.converged
    np.testing.assert_allclose(r.prior, [29 / 48, 19 / 48], atol=1e-9)
    # the binary (multi-label) EM is the same fixed point per class, and classes are independent
    rb = mlls_binary(np.array([[0.9, 0.5], [0.2, 0.5]]), [0.5, 0.5], tol=1e-12)
    np.testing.assert_allclose(rb.prior, [29 / 48, 0.5], atol=1e-9)
    # posteriors equal to the source prior carry no information: EM stays at the source prior
    np.testing.assert_allclose(mlls(np.tile([0.2, 0.8], (5, 1)), [0.2, 0.8]).prior, [0.2, 0.8])


def test_em_non_convergence_is_flagged():
    r = mlls(np.array([[0.9, 0.1], [0.2, 0.8]]), [0.5, 0.5], max_iter=2)
    assert r.converged is False and r.n_iter == 2


def test_bcts_recovers_temperature_and_prior_bias():
    rng = np.random.default_rng(3)
    y = rng.choice(3, 6000, p=[0.6, 0.3, 0.1])
    # x ~ N(2 e_y, I): the true log-posterior is 2 x + log prior + const; the model reports 6 x (T = 3, no prior)
    x = 2.0 * np.eye(3)[y] + rng.normal(size=(y.size, 3))
    z = 3.0 * 2.0 * x
    cal = fit_bcts(z, y)
    assert cal.temperature == pytest.approx(3.0, rel=0.08)
    np.testing.assert_allclose(cal.bias - cal.bias[0], np.log([0.6, 0.3, 0.1]) - np.log(0.6), atol=0.1)


def test_rlls_without_penalty_equals_bbse_and_penalty_shrinks_to_source():
    y = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    pred = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 0])
    deploy = np.repeat([0, 1, 2], [3, 3, 4])
    np.testing.assert_allclose(rlls(pred, y, deploy, 3, reg=0.0), bbse(pred, y, deploy, 3), atol=1e-6)
    # a large penalty keeps θ = 0: the validation prior
    np.testing.assert_allclose(rlls(pred, y, deploy, 3, reg=10.0), [0.4, 0.3, 0.3], atol=1e-6)


def test_adapt_logits_is_the_prior_correction():
    z = np.log(np.array([[0.5, 0.3, 0.2]]))
    out = adapt_logits(z, [0.2, 0.3, 0.5], [0.5, 0.3, 0.2], multi_label=False)
    p = np.exp(out) / np.exp(out).sum()
    # p(y|x) equal to the training prior means a flat likelihood: the adapted posterior is the target prior
    np.testing.assert_allclose(p, [[0.2, 0.3, 0.5]])


# ------------------------------------------------------------------------------------------- no deployment labels

def test_estimators_take_no_deployment_labels(worlds):
    params = inspect.signature(estimate_prior).parameters
    assert list(params) == ["val_scores", "val_labels", "deploy_scores", "train_prior", "multi_label", "method",
                            "n_boot", "seed"]  # no way to pass deployment labels
    w = worlds[0]
    zd, yd = w.deploy("backward10", 2000)
    e1 = estimate_prior(w.zv, w.yv, zd, w.train_prior, False, n_boot=5, seed=1)
    scrambled = w.rng.permutation(yd)  # the generator's labels, scrambled: nothing downstream may change
    assert not np.array_equal(scrambled, yd)
    e2 = estimate_prior(w.zv, w.yv, zd, w.train_prior, False, n_boot=5, seed=1)
    np.testing.assert_array_equal(e1.prior, e2.prior)
    np.testing.assert_array_equal(e1.boot, e2.boot)


# ------------------------------------------------------------------------------------------- accuracy on known shifts

def test_single_label_accuracy_on_known_shifts(worlds, capsys):
    """MLLS+BCTS L1 < 0.05 at 5,000 deployment examples on every prior and data seed (measured max ≈ 0.03:
    BCTS-calibrated EM is efficient; with 20 classes, sampling noise alone costs ≈ Σ_j sqrt(2 q_j / (π n)) ≈ 0.04
    in L1 against the *population* prior, and we compare with the deployment set's own frequencies). BBSE's hard
    confusion matrix is ill-conditioned for confusable rare classes: bound 0.2. RLLS shrinks toward the validation
    prior (Δ_C = 1/√n_val): under these strong shifts it is the worst of the three; bound 0.5."""
    rows = []
    for w in worlds:
        for name in ("forward50", "backward10", "gamma1.5"):
            zd, yd = w.deploy(name, 5000)
            truth = np.bincount(yd, minlength=C) / yd.size
            l1 = {m: float(np.abs(estimate_prior(w.zv, w.yv, zd, w.train_prior, False, m, n_boot=0).prior - truth)
                           .sum()) for m in ("mlls", "bbse", "rlls")}
            rows.append((name, l1))
    with capsys.disabled():
        for name, l1 in rows:
            print(f"\n  L1 {name:10s} " + "  ".join(f"{m} {v:.4f}" for m, v in l1.items()), end="")
        print()
    assert max(r["mlls"] for _, r in rows) < 0.05
    assert max(r["bbse"] for _, r in rows) < 0.2
    assert max(r["rlls"] for _, r in rows) < 0.5
    # MLLS beats BBSE on average (Alexandari et al. 2020's finding, reproduced here)
    assert np.mean([r["mlls"] for _, r in rows]) < np.mean([r["bbse"] for _, r in rows])


def test_bootstrap_interval_covers_truth_and_shrinks_with_deploy_size(worlds, capsys):
    w = worlds[1]
    width, err, cover = {}, {}, {}
    for n in (500, 2000, 10000):
        zd, yd = w.deploy("backward10", n)
        truth = np.bincount(yd, minlength=C) / n
        e = estimate_prior(w.zv, w.yv, zd, w.train_prior, False, n_boot=40, seed=0)
        assert e.converged and e.boot.shape == (40, C) and e.boot_converged == 1.0
        width[n] = float(np.mean(e.ci_high - e.ci_low))
        err[n] = float(np.abs(e.prior - truth).sum())
        cover[n] = float(np.mean((truth >= e.ci_low) & (truth <= e.ci_high)))
    with capsys.disabled():
        print("\n  n_deploy: L1 error / mean 95% CI width / per-class coverage: "
              + "; ".join(f"{n}: {err[n]:.4f} / {width[n]:.4f} / {cover[n]:.2f}" for n in err))
    assert width[500] > width[2000] > width[10000]
    assert err[500] > err[10000]
    assert min(cover.values()) >= 0.8  # nominal 0.95 per class; 20 classes, small-n percentile intervals


# ------------------------------------------------------------------------------------------- multi-label

def _two_class_world(mu_b: np.ndarray, rng: np.random.Generator):
    """Two classes with features x = μ_A y_A + μ_B y_B + noise; a per-class logistic model trained on independent
    labels at prevalence 0.3 each (the source)."""
    mu_a = np.array([2.0, 0.0])

    def draw(ya, yb):
        y = np.stack([ya, yb], axis=1)
        return y @ np.stack([mu_a, mu_b]) + rng.normal(size=(ya.size, 2)), y

    def indep(n, pa, pb):
        return draw(rng.random(n) < pa, rng.random(n) < pb)

    x, y = indep(20000, 0.3, 0.3)
    models = [LogisticRegression().fit(x, y[:, j]) for j in range(2)]
    score = lambda x: np.stack([m.decision_function(x) for m in models], axis=1)  # noqa: E731
    xv, yv = indep(6000, 0.3, 0.3)
    return score, score(xv), yv, indep, draw


def test_multilabel_per_class_em_accurate_without_cooccurrence_shift():
    rng = np.random.default_rng(0)
    score, zv, yv, indep, _ = _two_class_world(np.array([0.0, 2.0]), rng)  # orthogonal class directions
    xd, yd = indep(8000, 0.6, 0.05)
    e = estimate_prior(zv, yv, score(xd), yv.mean(0), multi_label=True, n_boot=20)
    assert e.estimator == "mlls+platt" and e.converged
    np.testing.assert_allclose(e.prior, yd.mean(0), atol=0.02)
    assert np.all(e.ci_low <= yd.mean(0) + 0.01) and np.all(e.ci_high >= yd.mean(0) - 0.01)
    np.testing.assert_allclose(estimate_prior(zv, yv, score(xd), yv.mean(0), True, "acc", n_boot=0).prior,
                               yd.mean(0), atol=0.04)


def test_multilabel_cooccurrence_shift_biases_per_class_estimates(capsys):
    """The documented bias: same marginals (0.3, 0.3) as the source, but B now always comes with A. The class
    directions overlap, so each class's score distribution given its own label changes (positives look more
    positive, negatives more negative) and both classes are over-estimated: measured +0.035 / +0.032 (EM), +0.12 /
    +0.08 (ACC), against ≈ 0.001 with independent labels."""
    rng = np.random.default_rng(0)
    score, zv, yv, indep, draw = _two_class_world(np.array([2.0, 1.0]), rng)
    xi, yi = indep(8000, 0.3, 0.3)
    ya = rng.random(8000) < 0.3
    xc, yc = draw(ya, ya.copy())  # perfect co-occurrence, same marginals
    ei = estimate_prior(zv, yv, score(xi), yv.mean(0), True, n_boot=0)
    ec = estimate_prior(zv, yv, score(xc), yv.mean(0), True, n_boot=0)
    ac = estimate_prior(zv, yv, score(xc), yv.mean(0), True, "acc", n_boot=0)
    with capsys.disabled():
        print(f"\n  multi-label per-class EM: independent labels error {np.round(ei.prior - yi.mean(0), 3)}, "
              f"co-occurring labels error {np.round(ec.prior - yc.mean(0), 3)} "
              f"(ACC {np.round(ac.prior - yc.mean(0), 3)})")
    np.testing.assert_allclose(ei.prior, yi.mean(0), atol=0.01)
    assert np.all(ec.prior - yc.mean(0) > 0.02)
    assert np.all(ac.prior - yc.mean(0) > ec.prior - yc.mean(0))


def test_multilabel_accuracy_on_power_law_task(capsys):
    """synth-multilabel's generator (12 classes in 4 confusable groups, ~2.5 labels per example, x = sum of the
    labels' means): a deployment set drawn with the backward10 prior also changes which labels co-occur, so the
    per-class estimates carry the documented bias (measured per-class errors -0.14 … +0.07, mean |error| ≈ 0.05)
    — still far closer than assuming no shift (the training prevalences)."""
    from benchmark.synthetic import draw_label_sets, power_law_prior

    rng = np.random.default_rng(0)
    c, dim = 12, 24
    prior = power_law_prior(c, 1.3)
    means = confusable_means(c, dim, 4, 0.6, rng)

    def draw(n, p):
        y = draw_label_sets(n, p, 2.5, rng)
        return y @ means + rng.normal(size=(n, dim)), y

    x, y = draw(8000, prior)
    models = [LogisticRegression(max_iter=500).fit(x, y[:, j]) for j in range(c)]
    score = lambda x: np.stack([m.decision_function(x) for m in models], axis=1)  # noqa: E731
    xv, yv = draw(4000, prior)
    xd, yd = draw(6000, named_prior("backward10", prior))
    e = estimate_prior(score(xv), yv, score(xd), y.mean(0), True, n_boot=0)
    a = estimate_prior(score(xv), yv, score(xd), y.mean(0), True, "acc", n_boot=0)
    err, err_acc, err_none = e.prior - yd.mean(0), a.prior - yd.mean(0), y.mean(0) - yd.mean(0)
    with capsys.disabled():
        print(f"\n  multi-label backward10 per-class error: EM {np.round(err, 3).tolist()}\n"
              f"                                         ACC {np.round(err_acc, 3).tolist()}\n"
              f"                       no shift assumed (training) {np.round(err_none, 3).tolist()}")
    assert np.abs(err).mean() < 0.4 * np.abs(err_none).mean()
    assert np.abs(err).max() > 0.05  # the co-occurrence bias is real here, which is why the report states it


# ------------------------------------------------------------------------------------------- bad input

def test_bad_input_is_a_one_line_user_error(worlds):
    w = worlds[0]
    zd, _ = w.deploy("uniform", 200)
    cases = [
        (lambda: estimate_prior(w.zv, w.yv, zd[:, :5], w.train_prior, False), "deploy_scores has 5 classes"),
        (lambda: estimate_prior(w.zv, w.yv, zd[:0], w.train_prior, False), "deploy_scores is empty"),
        (lambda: estimate_prior(w.zv, w.yv, np.where(np.eye(200, C, dtype=bool), np.nan, zd), w.train_prior, False),
         "NaN or inf"),
        (lambda: estimate_prior(w.zv[:30], w.yv[:30], zd, w.train_prior, False), "too little validation data"),
        (lambda: estimate_prior(w.zv, w.yv, zd, w.train_prior, False, method="em"), "choose one of mlls, bbse"),
        (lambda: estimate_prior(w.zv, w.yv[:-1], zd, w.train_prior, False), "val_labels must be"),
        (lambda: estimate_prior(w.zv, w.yv, zd, w.train_prior[:3], False), "train_prior must be"),
    ]
    for call, text in cases:
        with pytest.raises(UserError, match=text) as exc:
            call()
        assert "\n" not in str(exc.value)
    with pytest.raises(UserError, match=f"at least {MIN_VAL_PER_CLASS} per class"):
        estimate_prior(w.zv[:30], w.yv[:30], zd, w.train_prior, False)


def test_classes_absent_from_training_are_not_estimated(worlds):
    w = worlds[0]
    zd, _ = w.deploy("uniform", 1000)
    tp = w.train_prior.copy()
    tp[3] = 0.0
    e = estimate_prior(w.zv, w.yv, zd, tp, False, n_boot=3)
    assert e.prior[3] == 0.0 and e.prior.sum() == pytest.approx(1.0) and not e.estimable[3]


def test_calibration_posteriors_shape():
    cal = Calibration(True, np.array([2.0, 1.0]), np.array([0.0, -1.0]))
    np.testing.assert_allclose(cal.posteriors(np.array([[0.0, 1.0]])), [[0.5, 0.5]])
