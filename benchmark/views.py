"""Evaluation distributions as views of one scored pool: indices into the pool and/or per-example weights.

The model scores the pool once; every view is then a metric pass over (indices, weights). Views:

- ``natural``: the training prior. The pool's ``natural`` group when the task drew one i.i.d. from the training
  distribution; otherwise a subsample (single-label) or importance weights (multi-label) matching the prior.
- ``balanced``: every class equally represented. Single-label: each class subsampled to the smallest class count.
  Multi-label: AudioSet's construction, greedily adding clips (rarest class first) until every class has at
  least K positives.
- ``inverse``: the backward long tail (the prior with class ranks reversed).

Multi-label prior shift cannot subsample one label without shifting the others, so it uses raking (iterative
proportional fitting of per-example weights to the target per-class prevalences); its convergence and effective
sample size are recorded with the view.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from .errors import UserError


@dataclass
class View:
    name: str
    indices: np.ndarray  # into the pool, int64
    weights: Optional[np.ndarray]  # per selected example, or None for unweighted
    description: str
    info: dict = field(default_factory=dict)

    @property
    def effective_n(self) -> float:
        if self.weights is None:
            return float(self.indices.size)
        w = self.weights
        return float(w.sum() ** 2 / max((w * w).sum(), 1e-300))


@dataclass
class ViewContext:
    """Everything a view builder may use: pool labels, the training counts and the task's pool groups."""

    labels: np.ndarray  # (n,) int or (n, C) bool
    multi_label: bool
    num_classes: int
    train_counts: np.ndarray  # (C,)
    n_train: int
    groups: dict[str, np.ndarray]
    seed: int
    min_positives: int = 60

    @property
    def label_matrix(self) -> np.ndarray:
        if self.multi_label:
            return self.labels.astype(bool, copy=False)
        m = np.zeros((self.labels.shape[0], self.num_classes), dtype=bool)
        m[np.arange(self.labels.shape[0]), self.labels] = True
        return m

    def train_prior(self) -> np.ndarray:
        """Training prevalence per class (multi-label) or class frequency (single-label)."""
        c = self.train_counts.astype(np.float64)
        if self.multi_label:
            return c / max(self.n_train, 1)
        return c / max(c.sum(), 1.0)

    def rng(self, salt: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, salt])


def reversed_prior(prior: np.ndarray) -> np.ndarray:
    """The prior with class ranks mirrored: the most frequent class gets the rarest class's prior, and so on."""
    order = np.argsort(-prior, kind="stable")
    out = np.empty_like(prior)
    out[order] = prior[order[::-1]]
    return out


def subsample_to_prior(labels: np.ndarray, num_classes: int, target: np.ndarray, rng: np.random.Generator,
                       candidates: Optional[np.ndarray] = None) -> np.ndarray:
    """Single-label: the largest subsample whose class counts are ∝ `target` (floor), drawn at random."""
    cand = np.arange(labels.shape[0]) if candidates is None else np.asarray(candidates)
    y = labels[cand]
    avail = np.bincount(y, minlength=num_classes).astype(np.float64)
    want = np.asarray(target, dtype=np.float64)
    ok = want > 0
    if not ok.any():
        return np.zeros(0, dtype=np.int64)
    # the scale at which the scarcest class (relative to its target) uses all its examples
    usable = ok & (avail > 0)
    scale = np.min(avail[usable] / want[usable]) if usable.any() else 0.0
    counts = np.floor(scale * want + 1e-9).astype(np.int64)
    counts = np.minimum(counts, avail.astype(np.int64))
    picked = []
    for j in np.flatnonzero(counts):
        members = cand[y == j]
        picked.append(rng.choice(members, size=counts[j], replace=False))
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def greedy_min_positives(label_matrix: np.ndarray, k: int, rng: np.random.Generator,
                         candidates: Optional[np.ndarray] = None) -> np.ndarray:
    """AudioSet-style balanced set: rarest class first, add random clips of it until it has >= k positives.

    Clips added for one class also count for their other labels, so common classes usually need few extra clips.
    A class with fewer than k candidates contributes all it has.
    """
    cand = np.arange(label_matrix.shape[0]) if candidates is None else np.asarray(candidates)
    y = label_matrix[cand]
    have = np.zeros(y.shape[1], dtype=np.int64)
    chosen = np.zeros(cand.size, dtype=bool)
    for j in np.argsort(y.sum(axis=0), kind="stable"):
        need = k - have[j]
        if need <= 0:
            continue
        pool = np.flatnonzero(y[:, j] & ~chosen)
        if pool.size == 0:
            continue
        take = rng.permutation(pool)[:need]
        chosen[take] = True
        have += y[take].sum(axis=0)
    return np.sort(cand[chosen])


def rake(label_matrix: np.ndarray, target: np.ndarray, max_iter: int = 200, tol: float = 1e-4,
         max_weight_ratio: float = 1e3) -> tuple[np.ndarray, dict]:
    """Raking (IPF) of per-example weights so that the weighted prevalence of each class hits `target`.

    Each sweep rescales, class by class, the positives by t/π and the negatives by (1-t)/(1-π), keeping the
    total weight fixed. Classes with no positives (or no negatives) in the pool cannot be matched and are left
    out. After convergence, weights are clipped to `max_weight_ratio` × their median to keep the effective
    sample size sane; the info reports the max marginal error before and after clipping and the ESS.
    """
    y = label_matrix.astype(bool, copy=False)
    n, c = y.shape
    pos = y.sum(axis=0)
    t = np.asarray(target, dtype=np.float64)
    feasible = (pos > 0) & (pos < n) & (t > 0) & (t < 1)
    w = np.ones(n)
    cols = [np.flatnonzero(y[:, j]) for j in range(c)]
    err = np.inf
    it = 0
    for it in range(1, max_iter + 1):
        for j in np.flatnonzero(feasible):
            total = w.sum()
            p = w[cols[j]].sum() / total
            w *= (1 - t[j]) / (1 - p)  # negatives (and positives, corrected next line)
            w[cols[j]] *= (t[j] / p) / ((1 - t[j]) / (1 - p))
        prev = (y[:, feasible].T.astype(np.float64) @ w) / w.sum()
        err = float(np.max(np.abs(prev - t[feasible]))) if feasible.any() else 0.0
        if err < tol:
            break
    w /= w.mean()
    med = np.median(w)
    clipped = np.minimum(w, med * max_weight_ratio)
    prev_c = (y[:, feasible].T.astype(np.float64) @ clipped) / clipped.sum()
    err_c = float(np.max(np.abs(prev_c - t[feasible]))) if feasible.any() else 0.0
    info = {
        "method": "raking",
        "iterations": it,
        "max_marginal_error": err,
        "max_marginal_error_after_clipping": err_c,
        "clipped_fraction": float(np.mean(clipped < w)),
        "unmatched_classes": int((~feasible & (t > 0)).sum()),
        "effective_n": float(clipped.sum() ** 2 / (clipped ** 2).sum()),
    }
    return clipped / clipped.mean(), info


def _to_prior_view(ctx: ViewContext, name: str, target: np.ndarray, description: str, salt: int,
                   candidates: Optional[np.ndarray] = None) -> View:
    """Single-label: exact subsample; multi-label: raking weights over the candidates."""
    cand = np.arange(ctx.labels.shape[0]) if candidates is None else np.asarray(candidates)
    if ctx.multi_label:
        w, info = rake(ctx.label_matrix[cand], target)
        return View(name, cand.astype(np.int64), w, description + " (importance weights by raking)", info)
    idx = subsample_to_prior(ctx.labels, ctx.num_classes, target, ctx.rng(salt), cand)
    return View(name, idx.astype(np.int64), None, description + " (class-stratified subsample)")


def view_natural(ctx: ViewContext) -> View:
    if "natural" in ctx.groups:
        idx = np.asarray(ctx.groups["natural"], dtype=np.int64)
        return View("natural", idx, None, "drawn i.i.d. with the training prior")
    return _to_prior_view(ctx, "natural", ctx.train_prior(), "training prior", salt=1)


def view_balanced(ctx: ViewContext) -> View:
    cand = ctx.groups.get("balanced_candidates")
    if ctx.multi_label:
        k = ctx.min_positives
        idx = greedy_min_positives(ctx.label_matrix, k, ctx.rng(2), cand)
        return View("balanced", idx.astype(np.int64), None,
                    f"AudioSet-style: greedy pick until every class has >= {k} positives")
    uniform = (ctx.train_counts > 0).astype(np.float64)
    return _to_prior_view(ctx, "balanced", uniform, "uniform over classes", salt=2, candidates=cand)


def view_inverse(ctx: ViewContext) -> View:
    target = reversed_prior(ctx.train_prior())
    return _to_prior_view(ctx, "inverse", target, "backward long tail (training prior with class ranks reversed)",
                          salt=3, candidates=ctx.groups.get("balanced_candidates"))


VIEW_BUILDERS: dict[str, Callable[[ViewContext], View]] = {
    "natural": view_natural,
    "balanced": view_balanced,
    "inverse": view_inverse,
}


def build_views(names: tuple[str, ...] | list[str], ctx: ViewContext) -> dict[str, View]:
    """Build the named views; an unknown name is an error listing the valid ones."""
    out = {}
    for name in names:
        if name not in VIEW_BUILDERS:
            raise UserError(f"unknown evaluation view '{name}'; valid views: {', '.join(sorted(VIEW_BUILDERS))}")
        out[name] = VIEW_BUILDERS[name](ctx)
    return out
