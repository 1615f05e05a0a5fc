"""Label shift: estimate the class prior of an unlabeled deployment set from a model's scores (numpy / scipy only).

Inputs are always the same four things: logits and labels of a labeled validation split (the *source*), logits of
unlabeled deployment examples (the *target*; no labels are ever taken), and the training prior. Estimators:

- **MLLS / EM** (Saerens, Latinne & Decaestecker 2002) after **bias-corrected temperature scaling** (BCTS,
  softmax(z/T + b) fitted by NLL on validation; Alexandari, Kundaje & Shrikumar, ICML 2020): the default.
- **BBSE** (Lipton, Wang & Smola, ICML 2018): hard confusion matrix on validation, least squares, clip, renormalize.
- **RLLS** (Azizzadenesheli et al., ICLR 2019): BBSE's system with a norm penalty, w = 1 + θ, θ >= -1.
- Multi-label: one binary problem per class: per-class EM on sigmoids calibrated per class (Platt: σ(a z + b)), and
  **ACC** (adjusted classify-and-count, q = (mean pred − fpr)/(tpr − fpr)) as a cross-check. Per-class estimates
  assume each class's score distribution given its label is the same in validation and deployment; when label
  *co-occurrence* shifts (true label shift is over label sets) that fails and the estimates are biased — e.g. a
  class that now always appears with a confusable one is over-estimated (tests/test_labelshift.py measures it).

The calibrated posteriors describe the *validation* prior (BCTS's bias absorbs it), so EM, BBSE and RLLS all use the
validation label frequencies as the source prior; the training prior only marks classes absent from training (they
are not estimated: prior 0) and is what `adapt_logits` corrects from. `estimate_prior` is the one entry point; it adds
a percentile bootstrap interval over deployment *and* validation examples (each resample refits the calibration).

Example (3 classes, validation balanced, deployment skewed to class 0):

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> def scores(y): return 3.0 * np.eye(3)[y] + rng.normal(size=(y.size, 3))
>>> yv = rng.integers(0, 3, 3000); yd = rng.choice(3, 4000, p=[0.7, 0.2, 0.1])
>>> est = estimate_prior(scores(yv), yv, scores(yd), np.full(3, 1 / 3), multi_label=False, n_boot=50, seed=0)
>>> np.round(est.prior, 2).tolist(), est.converged
([0.7, 0.2, 0.1], True)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .errors import UserError
from .metrics import softmax

MIN_VAL_PER_CLASS = 5  # validation examples (multi-label: positives and negatives) per class needed to calibrate
EM_TOL = 1e-7  # max |Δq| between EM iterations at convergence
EM_MAX_ITER = 5000
BOOT_NEWTON_STEPS = 2  # calibration refit per bootstrap resample, from the full-data fit (error ≪ its noise)
SINGLE_LABEL_METHODS = ("mlls", "bbse", "rlls")
MULTI_LABEL_METHODS = ("mlls", "acc")


# ---------------------------------------------------------------------------------------------------- validation

def _finite_matrix(x: Any, name: str, ncols: Optional[int] = None) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2:
        raise UserError(f"{name} must be a 2-D (examples, classes) array of logits, got shape {a.shape}")
    if ncols is not None and a.shape[1] != ncols:
        raise UserError(f"{name} has {a.shape[1]} classes but the validation scores have {ncols}; score the "
                        f"deployment set with the same model and class list")
    if a.shape[0] == 0:
        raise UserError(f"{name} is empty: give at least one example")
    bad = ~np.isfinite(a)
    if bad.any():
        raise UserError(f"{name} contains {int(bad.sum())} NaN or inf values (first in row "
                        f"{int(np.argwhere(bad)[0, 0])}); fix the model or drop those examples")
    return a


def _labels(y: Any, n: int, c: int, multi_label: bool, name: str = "val_labels") -> np.ndarray:
    y = np.asarray(y)
    if multi_label:
        if y.shape != (n, c):
            raise UserError(f"{name} must be ({n}, {c}) 0/1 for multi-label scores of that shape, got {y.shape}")
        return y.astype(bool)
    if y.shape != (n,):
        raise UserError(f"{name} must be ({n},) class ids for single-label scores, got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or (y.size and (y.min() < 0 or y.max() >= c)):
        raise UserError(f"{name} must be integer class ids in [0, {c}), got {y.dtype} "
                        f"{y.min() if y.size else ''}..{y.max() if y.size else ''}")
    return y.astype(np.int64)


def check_calibration_data(val_labels: Any, multi_label: bool, num_classes: int,
                           estimable: Optional[np.ndarray] = None) -> None:
    """Raise UserError unless the validation split has enough data to calibrate every estimable class.

    Needed: `MIN_VAL_PER_CLASS` examples of each class (multi-label: that many positives *and* negatives).

    >>> check_calibration_data(np.repeat(np.arange(3), 5), False, 3)
    >>> check_calibration_data(np.array([0, 1, 2]), False, 3)
    Traceback (most recent call last):
    ...
    benchmark.core.errors.UserError: val_labels: too little validation data to calibrate: class 0 has 1 examples, \
at least 5 per class are needed (add validation examples of classes 0, 1, 2)
    """
    y = np.asarray(val_labels)
    est = np.ones(num_classes, bool) if estimable is None else np.asarray(estimable, bool)
    if multi_label:
        y = y.astype(bool)
        pos, neg = y.sum(0), (~y).sum(0)
        short = est & ((pos < MIN_VAL_PER_CLASS) | (neg < MIN_VAL_PER_CLASS))
        have = np.minimum(pos, neg)
        what = "positives (and negatives)"
    else:
        have = np.bincount(y.astype(np.int64), minlength=num_classes)
        short = est & (have < MIN_VAL_PER_CLASS)
        what = "examples"
    if short.any():
        idx = np.flatnonzero(short)
        shown = ", ".join(str(j) for j in idx[:5]) + (", ..." if idx.size > 5 else "")
        raise UserError(f"val_labels: too little validation data to calibrate: class {idx[0]} has {have[idx[0]]} "
                        f"{what}, at least {MIN_VAL_PER_CLASS} per class are needed (add validation examples of "
                        f"classes {shown})")


# ---------------------------------------------------------------------------------------------------- calibration

@dataclass
class Calibration:
    """Fitted calibration: single-label softmax(z / T + b) (BCTS); multi-label per class σ(a_j z_j + b_j) (Platt)."""

    multi_label: bool
    scale: np.ndarray  # single-label: (1,) = 1 / T; multi-label: (C,) a_j
    bias: np.ndarray  # (C,)

    @property
    def temperature(self) -> float:
        """Single-label T (1 / scale); multi-label: the mean of 1 / a_j."""
        return float(np.mean(1.0 / self.scale))

    def posteriors(self, logits: Any) -> np.ndarray:
        """Calibrated probabilities of `logits` (n, C): rows sum to 1 (single-label) or per-class sigmoids.

        >>> Calibration(False, np.array([1.0]), np.zeros(2)).posteriors(np.array([[0.0, np.log(3)]])).round(2)
        array([[0.25, 0.75]])
        """
        z = np.asarray(logits, dtype=np.float64)
        s = z * self.scale + self.bias
        if self.multi_label:
            return _sigmoid(s)
        return softmax(s)


def _sigmoid(s: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * s))  # overflow-free


def _weights(w: Optional[np.ndarray], n: int) -> np.ndarray:
    return np.ones(n) if w is None else np.asarray(w, dtype=np.float64)


def fit_bcts(val_logits: Any, val_labels: Any, sample_weight: Optional[np.ndarray] = None,
             init: Optional[Calibration] = None, max_iter: int = 100) -> Calibration:
    """Bias-corrected temperature scaling: T and b minimizing the validation NLL of softmax(z / T + b).

    Damped Newton on (1/T, b) (C + 1 parameters; the NLL is convex in them), so a bootstrap refit from `init`
    takes a few steps. `sample_weight` (n,) weights examples (the bootstrap passes resample counts).

    >>> rng = np.random.default_rng(0); y = rng.integers(0, 2, 2000)
    >>> z = 10.0 * (np.eye(2)[y] + rng.normal(size=(2000, 2)))   # log-odds are z_1 - z_0 over 10: T = 10
    >>> cal = fit_bcts(z, y); 9 < cal.temperature < 11
    True
    """
    z = _finite_matrix(val_logits, "val_logits")
    n, c = z.shape
    y = _labels(val_labels, n, c, False)
    w = _weights(sample_weight, n)
    w = w / max(w.sum(), 1e-300)
    rows = np.arange(n)
    zy = z[rows, y]
    onehot = np.zeros((n, c))
    onehot[rows, y] = 1.0

    def nll(a: float, b: np.ndarray) -> float:
        s = a * z + b
        m = s.max(axis=1)
        return float(w @ (np.log(np.exp(s - m[:, None]).sum(axis=1)) + m - (a * zy + b[y])))

    a, b = (float(init.scale[0]), init.bias - init.bias.mean()) if init is not None else (1.0, np.zeros(c))
    f = nll(a, b)
    for _ in range(max_iter):
        p = softmax(a * z + b)
        r = (p - onehot) * w[:, None]
        g = np.concatenate([[float((r * z).sum())], r.sum(axis=0)])
        pw = p * w[:, None]
        pz = (p * z).sum(axis=1)
        h = np.empty((c + 1, c + 1))
        h[1:, 1:] = np.diag(pw.sum(axis=0)) - pw.T @ p
        h[0, 1:] = h[1:, 0] = (pw * z).sum(axis=0) - pw.T @ pz
        h[0, 0] = float(w @ ((p * z * z).sum(axis=1) - pz * pz))
        # softmax ignores a common shift of b: the Hessian of (Σb)²/2 makes h invertible; b stays centred
        h[1:, 1:] += 1.0
        step = np.linalg.solve(h, g)
        t = 1.0
        while True:
            a_new, b_new = a - t * step[0], b - t * step[1:]
            if a_new > 0:
                f_new = nll(a_new, b_new)
                if f_new <= f + 1e-4 * t * float(g @ -step) or t < 1e-6:
                    break
            t *= 0.5
        done = abs(f - f_new) < 1e-10 or float(np.abs(t * step).max()) < 1e-7
        a, b, f = a_new, b_new, f_new
        if done:
            break
    return Calibration(False, np.array([a]), b - b.mean())


def fit_platt(val_logits: Any, val_labels: Any, sample_weight: Optional[np.ndarray] = None,
              init: Optional[Calibration] = None, max_iter: int = 100) -> Calibration:
    """Per-class Platt scaling σ(a_j z_j + b_j) by per-class NLL on validation (multi-label).

    Vectorized damped Newton over classes (a 2 x 2 system each); a tiny ridge on (a_j - 1, b_j) keeps classes that
    validation separates perfectly finite.

    >>> rng = np.random.default_rng(0); y = rng.random((3000, 2)) < [0.3, 0.1]
    >>> cal = fit_platt(4.0 * y - 2 + rng.normal(size=y.shape), y)   # N(±2, 1): true log-odds 4 z + const
    >>> cal.scale.round().tolist()
    [4.0, 4.0]
    """
    z = _finite_matrix(val_logits, "val_logits")
    n, c = z.shape
    y = _labels(val_labels, n, c, True).astype(np.float64)
    w = _weights(sample_weight, n)
    w = w / max(w.sum(), 1e-300)
    ridge = 1e-4

    def nll(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        s = z * a + b
        return w @ (np.logaddexp(0.0, s) - y * s) + ridge * ((a - 1) ** 2 + b ** 2)

    a, b = (init.scale.copy(), init.bias.copy()) if init is not None else (np.ones(c), np.zeros(c))
    f = nll(a, b)
    for _ in range(max_iter):
        p = _sigmoid(z * a + b)
        r = (p - y) * w[:, None]
        ga, gb = (r * z).sum(axis=0) + 2 * ridge * (a - 1), r.sum(axis=0) + 2 * ridge * b
        v = p * (1 - p) * w[:, None]
        haa, hab, hbb = (v * z * z).sum(axis=0) + 2 * ridge, (v * z).sum(axis=0), v.sum(axis=0) + 2 * ridge
        det = np.maximum(haa * hbb - hab * hab, 1e-300)
        da, db = (hbb * ga - hab * gb) / det, (haa * gb - hab * ga) / det
        t = np.ones(c)
        for _ in range(30):  # per-class backtracking
            f_new = nll(a - t * da, b - t * db)
            bad = f_new > f - 1e-4 * t * (ga * da + gb * db)
            if not bad.any():
                break
            t = np.where(bad, t * 0.5, t)
        a, b = a - t * da, b - t * db
        moved = np.maximum(np.abs(t * da), np.abs(t * db)).max()
        f = f_new
        if moved < 1e-7:
            break
    return Calibration(True, a, b)


# ---------------------------------------------------------------------------------------------------- estimators

@dataclass
class EMResult:
    prior: np.ndarray
    converged: Any  # bool (single-label) or (C,) bool (multi-label, per class)
    n_iter: int


def _as_prior(p: Any, c: int, name: str) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.shape != (c,) or not np.all(np.isfinite(p)) or (p < 0).any():
        raise UserError(f"{name} must be ({c},) finite non-negative class proportions, got shape {p.shape}")
    return p


def mlls(posteriors: Any, source_prior: Any, sample_weight: Optional[np.ndarray] = None,
         init: Optional[np.ndarray] = None, tol: float = EM_TOL, max_iter: int = EM_MAX_ITER) -> EMResult:
    """MLLS / EM (Saerens et al. 2002), single-label: p_t(y|x) ∝ (q_y / p_s,y) p_s(y|x); q ← mean_x p_t(·|x).

    `posteriors` (n, C) are calibrated source posteriors of the *deployment* examples, `source_prior` the prior they
    describe. Stops when max |Δq| < `tol`; `converged` False after `max_iter` iterations (never silent).

    Closed form: uniform source, half the examples at posterior (0.9, 0.1), half at (0.2, 0.8); the interior fixed
    point of q = mean_i r_i solves 0.96 q² − 1.54 q + 0.58 = 0, q = 29/48 = 0.604.

    >>> r = mlls(np.array([[0.9, 0.1], [0.2, 0.8]]), [0.5, 0.5]); r.prior.round(3).tolist(), bool(r.converged)
    ([0.604, 0.396], True)
    """
    p = np.asarray(posteriors, dtype=np.float64)
    n, c = p.shape
    ps = _as_prior(source_prior, c, "source_prior")
    w = _weights(sample_weight, n)
    w = w / max(w.sum(), 1e-300)
    live = ps > 0
    ratio_base = np.where(live, p / np.where(live, ps, 1.0), 0.0)  # p_s(y|x) / p_s(y)
    q = (ps.copy() if init is None else np.asarray(init, dtype=np.float64).copy())
    q = np.where(live, q, 0.0)
    q /= q.sum()
    for it in range(1, max_iter + 1):
        r = ratio_base * q
        r /= np.maximum(r.sum(axis=1, keepdims=True), 1e-300)
        q_new = w @ r
        if np.max(np.abs(q_new - q)) < tol:
            return EMResult(q_new, True, it)
        q = q_new
    return EMResult(q, False, max_iter)


def mlls_binary(posteriors: Any, source_prevalence: Any, sample_weight: Optional[np.ndarray] = None,
                init: Optional[np.ndarray] = None, tol: float = EM_TOL, max_iter: int = EM_MAX_ITER) -> EMResult:
    """Per-class EM for multi-label scores: each class is a binary problem with source prevalence π_j.

    r_ij = (q_j/π_j) p_ij / ((q_j/π_j) p_ij + ((1-q_j)/(1-π_j)) (1-p_ij)); q_j ← mean_i r_ij. Vectorized over
    classes; `converged` is per class.

    >>> r = mlls_binary(np.array([[0.9], [0.2]]), [0.5]); round(float(r.prior[0]), 3)   # as in `mlls`: 29/48
    0.604
    """
    p = np.clip(np.asarray(posteriors, dtype=np.float64), 1e-12, 1 - 1e-12)
    n, c = p.shape
    pi = np.clip(_as_prior(source_prevalence, c, "source_prevalence"), 1e-12, 1 - 1e-12)
    w = _weights(sample_weight, n)
    w = w / max(w.sum(), 1e-300)
    a, b = p / pi, (1 - p) / (1 - pi)
    q = pi.copy() if init is None else np.clip(np.asarray(init, dtype=np.float64), 1e-12, 1 - 1e-12).copy()
    done = np.zeros(c, bool)
    for it in range(1, max_iter + 1):
        r = a * q / (a * q + b * (1 - q))
        q_new = w @ r
        done = np.abs(q_new - q) < tol
        q = q_new
        if done.all():
            return EMResult(q, done, it)
    return EMResult(q, done, max_iter)


def confusion_matrix(val_pred: Any, val_labels: Any, num_classes: int,
                     sample_weight: Optional[np.ndarray] = None) -> np.ndarray:
    """Joint C[i, j] = P_val(prediction i, true class j) from hard predictions (sums to 1).

    >>> confusion_matrix([0, 0, 1, 2], [0, 1, 1, 2], 3).tolist()
    [[0.25, 0.25, 0.0], [0.0, 0.25, 0.0], [0.0, 0.0, 0.25]]
    """
    pred, y = np.asarray(val_pred, dtype=np.int64), np.asarray(val_labels, dtype=np.int64)
    w = _weights(sample_weight, y.size)
    cm = np.bincount(pred * num_classes + y, weights=w, minlength=num_classes * num_classes)
    return (cm / max(w.sum(), 1e-300)).reshape(num_classes, num_classes)


def _hard(pred: Any, c: int, w: Optional[np.ndarray]) -> np.ndarray:
    pred = np.asarray(pred, dtype=np.int64)
    ww = _weights(w, pred.size)
    return np.bincount(pred, weights=ww, minlength=c) / max(ww.sum(), 1e-300)


def bbse(val_pred: Any, val_labels: Any, deploy_pred: Any, num_classes: int,
         val_weight: Optional[np.ndarray] = None, deploy_weight: Optional[np.ndarray] = None) -> np.ndarray:
    """BBSE (Lipton et al. 2018): w = argmin ‖C w − μ_t‖ (least squares), q = w ⊙ p_val, clipped, renormalized.

    `val_pred` / `deploy_pred` are hard predicted classes; `val_labels` the validation classes.

    >>> bbse([0, 0, 1, 1], [0, 1, 1, 1], [0, 0, 0, 1], 2).round(3).tolist()   # w = (2.5, 0.5), p_val = (1/4, 3/4)
    [0.625, 0.375]
    """
    cm = confusion_matrix(val_pred, val_labels, num_classes, val_weight)
    mu = _hard(deploy_pred, num_classes, deploy_weight)
    ps = cm.sum(axis=0)
    wts = np.linalg.lstsq(cm, mu, rcond=None)[0]
    return _clip_renorm(wts * ps)


def _clip_renorm(q: np.ndarray) -> np.ndarray:
    q = np.clip(q, 0.0, None)
    s = q.sum()
    return q / s if s > 0 else np.full(q.size, 1.0 / q.size)


def rlls(val_pred: Any, val_labels: Any, deploy_pred: Any, num_classes: int, reg: Optional[float] = None,
         val_weight: Optional[np.ndarray] = None, deploy_weight: Optional[np.ndarray] = None) -> np.ndarray:
    """RLLS (Azizzadenesheli et al. 2019): θ = argmin_{θ ≥ −1} ‖C θ − (μ_t − μ_s)‖₂ + Δ_C ‖θ‖₂, q = (1 + θ) ⊙ p_val.

    Δ_C defaults to 1/√n_val, the order of the confusion matrix's estimation error that the paper's bound uses.

    >>> rlls([0, 1, 1, 1], [0, 1, 1, 1], [0, 1, 1, 1], 2).round(3).tolist()
    [0.25, 0.75]
    """
    from scipy.optimize import lsq_linear

    cm = confusion_matrix(val_pred, val_labels, num_classes, val_weight)
    n_val = np.asarray(val_labels).size
    delta = 1.0 / np.sqrt(max(n_val, 1)) if reg is None else float(reg)
    b = _hard(deploy_pred, num_classes, deploy_weight) - cm.sum(axis=1)
    # ‖Cθ − b‖ + Δ‖θ‖ and ‖Cθ − b‖² + λ‖θ‖² have the same minimizer when λ = Δ‖r‖/‖θ‖ (their KKT conditions
    # match): solve the bounded ridge problem exactly (lsq_linear) and iterate λ to that fixed point
    eye = np.eye(num_classes)
    lam, theta = delta, np.zeros(num_classes)
    for _ in range(100):
        sol = lsq_linear(np.vstack([cm, np.sqrt(lam) * eye]), np.concatenate([b, np.zeros(num_classes)]),
                         bounds=(-1.0, np.inf), method="bvls")
        theta = sol.x
        nt = float(np.linalg.norm(theta))
        if nt < 1e-12:  # the penalty wins: no shift
            break
        lam_new = delta * float(np.linalg.norm(cm @ theta - b)) / nt
        if abs(lam_new - lam) <= 1e-6 * max(lam, 1e-12):
            break
        lam = max(lam_new, 1e-12)
    return _clip_renorm((1.0 + theta) * cm.sum(axis=0))


def acc(val_posteriors: Any, val_labels: Any, deploy_posteriors: Any, threshold: float = 0.5,
        val_weight: Optional[np.ndarray] = None, deploy_weight: Optional[np.ndarray] = None) -> np.ndarray:
    """Adjusted classify-and-count per class (multi-label): q_j = (mean_t[p_j > t] − fpr_j) / (tpr_j − fpr_j) in [0, 1].

    Unstable where tpr_j ≈ fpr_j (a rare class the classifier rarely fires on); a cross-check of per-class EM.

    >>> y = np.array([[1], [1], [0], [0]]); pv = np.array([[0.9], [0.2], [0.1], [0.1]])
    >>> acc(pv, y, np.array([[0.9], [0.9], [0.1], [0.1]])).tolist()   # tpr 0.5, fpr 0: q = 0.5 / 0.5
    [1.0]
    """
    y = np.asarray(val_labels).astype(bool)
    hv = np.asarray(val_posteriors) > threshold
    ht = np.asarray(deploy_posteriors) > threshold
    wv, wt = _weights(val_weight, y.shape[0]), _weights(deploy_weight, ht.shape[0])
    pos = wv @ y
    neg = wv @ ~y
    tpr = (wv @ (hv & y)) / np.maximum(pos, 1e-300)
    fpr = (wv @ (hv & ~y)) / np.maximum(neg, 1e-300)
    rate = (wt @ ht) / max(wt.sum(), 1e-300)
    den = tpr - fpr
    q = np.where(np.abs(den) > 1e-9, (rate - fpr) / np.where(np.abs(den) > 1e-9, den, 1.0), rate)
    return np.clip(q, 0.0, 1.0)


# ---------------------------------------------------------------------------------------------------- entry point

@dataclass
class PriorEstimate:
    """A deployment prior estimate: single-label class proportions (sum 1) or multi-label per-class prevalences."""

    estimator: str  # "mlls+bcts", "bbse", "rlls", "mlls+platt" or "acc"
    prior: np.ndarray  # (C,)
    ci_low: np.ndarray  # (C,) 2.5 % bootstrap percentile
    ci_high: np.ndarray  # (C,) 97.5 %
    converged: bool  # EM reached its tolerance (always True for the closed-form estimators)
    n_iter: int
    multi_label: bool
    n_val: int
    n_deploy: int
    boot: np.ndarray  # (n_boot, C) the estimate on each bootstrap resample (validation and deployment resampled)
    boot_converged: float = 1.0  # fraction of resamples whose EM converged
    calibration: Optional[Calibration] = None
    estimable: Optional[np.ndarray] = None  # (C,) bool: classes estimated (others present in no training data)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no bootstrap matrix)."""
        r = lambda a: [round(float(v), 6) for v in a]  # noqa: E731
        return {"estimator": self.estimator, "estimated_prior": r(self.prior), "ci_low": r(self.ci_low),
                "ci_high": r(self.ci_high), "converged": bool(self.converged), "n_iter": int(self.n_iter),
                "n_val": self.n_val, "n_deploy": self.n_deploy, "n_boot": int(self.boot.shape[0]),
                "boot_converged": round(float(self.boot_converged), 4), "warnings": list(self.warnings)}


def _point(method: str, multi_label: bool, zv: np.ndarray, yv: np.ndarray, zd: np.ndarray, live: np.ndarray,
           wv: Optional[np.ndarray], wd: Optional[np.ndarray], cal_init: Optional[Calibration],
           q_init: Optional[np.ndarray]) -> tuple[np.ndarray, bool, int, Optional[Calibration]]:
    """One estimate on (optionally weighted) data, restricted to the `live` classes.

    A bootstrap refit starts from the full-data calibration (`cal_init`): Newton is quadratic there, so
    `BOOT_NEWTON_STEPS` steps reach the resample's optimum to well below its sampling noise.
    """
    steps = BOOT_NEWTON_STEPS if cal_init is not None else 100
    c = live.size
    cols = np.flatnonzero(live)
    out = np.zeros(c)
    if multi_label:
        cal = fit_platt(zv[:, cols], yv[:, cols], wv, cal_init, max_iter=steps)
        pv, pd = cal.posteriors(zv[:, cols]), cal.posteriors(zd[:, cols])
        if method == "acc":
            out[cols] = acc(pv, yv[:, cols], pd, val_weight=wv, deploy_weight=wd)
            return out, True, 0, cal
        ww = _weights(wv, yv.shape[0])
        pi = (ww @ yv[:, cols]) / max(ww.sum(), 1e-300)
        em = mlls_binary(pd, pi, wd, None if q_init is None else q_init[cols], max_iter=EM_MAX_ITER)
        out[cols] = em.prior
        return out, bool(np.all(em.converged)), em.n_iter, cal
    keep = live[yv]  # validation examples of estimable classes only
    zv_, yv_ = zv[keep][:, cols], np.searchsorted(cols, yv[keep])
    wv_ = None if wv is None else wv[keep]
    if method == "mlls":
        cal = fit_bcts(zv_, yv_, wv_, cal_init, max_iter=steps)
        ww = _weights(wv_, yv_.size)
        ps = np.bincount(yv_, weights=ww, minlength=cols.size) / max(ww.sum(), 1e-300)
        em = mlls(cal.posteriors(zd[:, cols]), ps, wd, None if q_init is None else q_init[cols], max_iter=EM_MAX_ITER)
        out[cols] = em.prior
        return out, bool(em.converged), em.n_iter, cal
    # the black box's own hard predictions: BBSE / RLLS need no calibration
    pred_v, pred_d = zv_.argmax(axis=1), zd[:, cols].argmax(axis=1)
    f = bbse if method == "bbse" else rlls
    out[cols] = f(pred_v, yv_, pred_d, cols.size, val_weight=wv_, deploy_weight=wd)
    return out, True, 0, None


def estimate_prior(val_scores: Any, val_labels: Any, deploy_scores: Any, train_prior: Any, multi_label: bool,
                   method: str = "mlls", n_boot: int = 200, seed: int = 0) -> PriorEstimate:
    """Estimate the class prior of unlabeled deployment examples from a model's logits; never takes their labels.

    `val_scores` (n_val, C) logits and `val_labels` of the validation split; `deploy_scores` (n_deploy, C) logits of
    the deployment examples; `train_prior` (C,) (classes with 0 are not estimated: prior 0). `method`: single-label
    "mlls" (BCTS + EM, default), "bbse", "rlls"; multi-label "mlls" (Platt per class + per-class EM, default) or
    "acc". The interval is a percentile bootstrap (`n_boot` resamples of validation *and* deployment examples, the
    calibration refitted on each). EM that does not converge sets `converged=False` and a warning.

    >>> rng = np.random.default_rng(1); yv = rng.random((4000, 3)) < 0.2; yd = rng.random((4000, 3)) < [0.5, 0.2, 0.05]
    >>> z = lambda y: 3.0 * y - 1.5 + rng.normal(size=y.shape)
    >>> est = estimate_prior(z(yv), yv, z(yd), yv.mean(0), multi_label=True, n_boot=30)
    >>> bool(np.abs(est.prior - [0.5, 0.2, 0.05]).max() < 0.03), est.estimator
    (True, 'mlls+platt')
    """
    methods = MULTI_LABEL_METHODS if multi_label else SINGLE_LABEL_METHODS
    if method not in methods:
        raise UserError(f"method '{method}' is not a {'multi' if multi_label else 'single'}-label prior estimator; "
                        f"choose one of {', '.join(methods)}")
    if not isinstance(n_boot, (int, np.integer)) or n_boot < 0:
        raise UserError(f"n_boot must be an integer >= 0, got {n_boot!r}")
    zv = _finite_matrix(val_scores, "val_scores")
    n_val, c = zv.shape
    zd = _finite_matrix(deploy_scores, "deploy_scores", ncols=c)
    yv = _labels(val_labels, n_val, c, multi_label)
    tp = _as_prior(train_prior, c, "train_prior")
    live = tp > 0
    if not live.any():
        raise UserError("train_prior is 0 for every class; pass the training class frequencies")
    check_calibration_data(yv, multi_label, c, live)
    q, conv, n_iter, cal = _point(method, multi_label, zv, yv, zd, live, None, None, None, None)
    rng = np.random.default_rng([seed, 0x1AB5])
    boot = np.empty((n_boot, c))
    boot_conv = 0
    for b in range(n_boot):
        wv = np.bincount(rng.integers(0, n_val, n_val), minlength=n_val).astype(np.float64)
        wd = np.bincount(rng.integers(0, zd.shape[0], zd.shape[0]), minlength=zd.shape[0]).astype(np.float64)
        if multi_label:
            ok = ((wv @ yv) >= 1) & ((wv @ ~yv) >= 1)  # a resample without a class's positives cannot fit it
            live_b = live & ok
        else:
            live_b = live & (np.bincount(yv, weights=wv, minlength=c) > 0)
        qb, cb, _, _ = _point(method, multi_label, zv, yv, zd, live_b, wv, wd,
                              cal if live_b.sum() == live.sum() else None, q)
        boot[b] = qb
        boot_conv += int(cb)
    names = {("mlls", False): "mlls+bcts", ("mlls", True): "mlls+platt"}
    warnings = []
    if not conv:
        warnings.append(f"EM did not converge in {EM_MAX_ITER} iterations (last change >= {EM_TOL:g}): the "
                        f"estimate is unreliable; check the calibration or use bbse/rlls")
    if multi_label:
        edge = np.flatnonzero(live & ((q >= 0.99) | (q <= 1e-4)))
        if edge.size:
            shown = ", ".join(str(j) for j in edge[:5]) + (", ..." if edge.size > 5 else "")
            warnings.append(f"{edge.size} classes estimated at a prevalence of ~0 or ~1 (classes {shown}): the "
                            f"model separates them too poorly for per-class estimation; treat them as unknown")
    if n_boot and boot_conv < n_boot and method == "mlls":
        warnings.append(f"EM did not converge on {n_boot - boot_conv} of {n_boot} bootstrap resamples")
    lo, hi = (np.percentile(boot, [2.5, 97.5], axis=0) if n_boot else (q.copy(), q.copy()))
    return PriorEstimate(estimator=names.get((method, multi_label), method), prior=q, ci_low=lo, ci_high=hi,
                         converged=conv, n_iter=n_iter, multi_label=multi_label, n_val=n_val, n_deploy=zd.shape[0],
                         boot=boot, boot_converged=boot_conv / n_boot if n_boot else 1.0, calibration=cal,
                         estimable=live, warnings=warnings)


def adapt_logits(logits: Any, target_prior: Any, train_prior: Any, multi_label: bool) -> np.ndarray:
    """Re-score logits for a new class prior: + log q − log p (single-label; Saerens et al.'s prior correction in
    logit space), multi-label + logit(q) − logit(p) per class. `train_prior` p is the prior the logits reflect.
    Classes with p = 0 stay unchanged; q is floored at 1e-8 so a class estimated at 0 is pushed far down, not to −inf.

    >>> adapt_logits(np.zeros((1, 2)), [0.75, 0.25], [0.5, 0.5], False).round(3).tolist()
    [[0.405, -0.693]]
    """
    z = np.asarray(logits, dtype=np.float64)
    c = z.shape[1]
    q = _as_prior(target_prior, c, "target_prior")
    p = _as_prior(train_prior, c, "train_prior")
    ok = p > 0
    if multi_label:
        qq, pp = np.clip(q, 1e-8, 1 - 1e-8), np.clip(p, 1e-8, 1 - 1e-8)
        shift = np.log(qq / (1 - qq)) - np.log(pp / (1 - pp))
    else:
        shift = np.log(np.maximum(q, 1e-8)) - np.log(np.where(ok, p, 1.0))
    return z + np.where(ok, shift, 0.0)
