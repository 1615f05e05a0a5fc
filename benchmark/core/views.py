"""Evaluation distributions as views of one scored pool: indices into the pool and/or per-example weights.

The model scores the pool once; every view is then a metric pass over (indices, weights). Views:

- ``natural``: the training prior. The pool's ``natural`` group when the task drew one i.i.d. from the training
  distribution; otherwise a subsample (single-label) or importance weights (multi-label) matching the prior.
- ``balanced``: every class equally represented. Single-label: each class subsampled to the smallest class count.
  Multi-label: AudioSet's construction, greedily adding clips (rarest class first) until every class has at
  least K positives.
- ``inverse``: the backward long tail (the prior with class ranks reversed).
- ``public``: the pool's ``public`` group, a dataset's official evaluation split as released (AudioSet eval).
- ``forward<ρ>`` / ``backward<ρ>`` (ρ ∈ 50, 25, 10, 5, 2): SADE's long-tailed test sets, an exponential prior of
  ratio ρ over the training class ranks, head first (forward) or tail first (backward); any ρ >= 1 is accepted
  (``forward3``), and ``sade`` names the whole family: forward50 … forward2, uniform, backward2 … backward50.
- ``uniform``: every class equally likely; ``train_prior``: exactly the training prior, on the whole pool.
- ``gamma<γ>``: the prior-shift path, γ=0 training prior → 1 uniform → 2 reversed prior (`shifted_prior`).
- ``user:<name>``: a user prior (``--eval-prior name.csv``, class proportions), see `read_prior_file`.

Multi-label targets are per-class prevalences with the training label mass (`prior_target`). Multi-label prior
shift cannot subsample one label without shifting the others, so it uses raking (iterative proportional fitting of
per-example weights to the target per-class prevalences, bounded so the effective sample size stays sane); its
convergence, weight cap and effective sample size are recorded with the view. Single-label views subsample, or,
with ``ViewContext.exact_weights`` (the report's views), reweight every example exactly.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

import numpy as np

from .errors import UserError
from .priors import lt_prior, reversed_prior, shifted_prior


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
    exact_weights: bool = False  # single-label prior views: reweight every candidate instead of subsampling
    priors: dict[str, np.ndarray] = field(default_factory=dict)  # user priors (class proportions) by name

    @property
    def label_matrix(self) -> np.ndarray:
        if self.multi_label:
            return self.labels.astype(bool, copy=False)
        m = np.zeros((self.labels.shape[0], self.num_classes), dtype=bool)
        m[np.arange(self.labels.shape[0]), self.labels] = True
        return m

    def train_prior(self) -> np.ndarray:
        """Training prevalence per class (multi-label) or class frequency (single-label)."""
        return train_prior(self.train_counts, self.n_train, self.multi_label)

    def rng(self, salt: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, salt])


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


WEIGHT_CAPS = (1000.0, 500.0, 200.0, 100.0, 50.0, 20.0, 10.0, 5.0)  # max weight / mean weight, tried loose to tight
_STALL_SWEEPS = 25  # sweeps without a 1% gain in the marginal error: the capped target is out of reach


def rake(label_matrix: np.ndarray, target: np.ndarray, max_iter: int = 500, tol: float = 1e-4,
         max_weight_ratio: float | str = "auto") -> tuple[np.ndarray, dict]:
    """Raking (IPF) of per-example weights so that the weighted prevalence of each class hits `target`.

    Each sweep rescales, class by class, the positives by t/π and the negatives by (1-t)/(1-π); done as one
    odds-ratio factor on the positives with the total kept as a running sum, a sweep costs O(positives).
    Weights are bounded by trimming after every sweep (rake-trim-rake): at most `max_weight_ratio` × the mean,
    which guarantees an effective sample size (ESS) of at least n / ratio. Clipping once after convergence would
    break the marginals (it left errors of 0.18 on the synthetic inverse view); re-raking under the cap keeps
    them. "auto" tries the caps of WEIGHT_CAPS from loose to tight and keeps the tightest at which raking still
    converges (max marginal error < tol): the largest ESS that still realizes the target. np.inf: no cap.

    A target of 0 gives the class's positives weight 0. Classes with no positives or no negatives left, or a
    target of 1, cannot be matched and are left out (`unmatched_classes`). Weights are returned with mean 1.
    """
    y = np.asarray(label_matrix).astype(bool, copy=False)
    n, c = y.shape
    t = np.asarray(target, dtype=np.float64)
    zeroed = (t <= 0) & y.any(axis=0)
    rows = ~y[:, zeroed].any(axis=1) if zeroed.any() else np.ones(n, dtype=bool)
    if not rows.any():
        # every candidate carries a class whose target is 0 (e.g. a class absent from training, in a tiny split):
        # those zero targets cannot be met, so keep every row and leave them unmatched instead of an empty view
        rows = np.ones(n, dtype=bool)
    yr = y[rows]
    m = int(yr.shape[0])
    pos = yr.sum(axis=0)
    feasible = (pos > 0) & (pos < m) & (t > 0) & (t < 1)
    J = np.flatnonzero(feasible)
    tj = t[J]
    odds = tj / (1.0 - tj)
    cls, rr = np.nonzero(yr[:, J].T)  # positives grouped by class: one gather/scatter per class and sweep
    starts = np.searchsorted(cls, np.arange(J.size))
    cols = np.split(rr, starts[1:]) if J.size else []

    def error(v: np.ndarray) -> float:
        if not J.size:
            return 0.0
        return float(np.max(np.abs(np.add.reduceat(v[rr], starts) / v.sum() - tj)))

    def solve(v: np.ndarray, cap: float) -> tuple[np.ndarray, int, float, bool]:
        total = v.sum()
        best, stall, err = np.inf, 0, error(v)
        for it in range(1, max_iter + 1):
            for k, cj in enumerate(cols):
                vc = v[cj]
                s = vc.sum()
                p = min(max(s / total, 1e-300), 1.0 - 1e-16)
                r = odds[k] * (1.0 - p) / p  # (t/π) / ((1-t)/(1-π)): negatives' factor folded into the scale
                v[cj] = vc * r
                total += (r - 1.0) * s
            v *= m / total
            if cap < np.inf:
                np.minimum(v, cap, out=v)
            total = v.sum()
            err = error(v)
            if err < tol:
                return v, it, err, True
            if err < best * 0.99:
                best, stall = err, 0
            else:
                stall += 1
                if stall >= _STALL_SWEEPS:
                    break
        return v, it, err, False

    v, iters, err, ok = solve(np.ones(m), np.inf)
    uncapped_ess = effective_sample_size(v)
    cap_used = None
    if max_weight_ratio == "auto":
        if ok:
            for cap in WEIGHT_CAPS:
                if cap >= v.max() / v.mean():
                    continue  # not binding
                v1, it1, err1, ok1 = solve(v.copy(), cap)
                iters += it1
                if not ok1:
                    break
                v, err, cap_used = v1, err1, cap
    elif float(max_weight_ratio) < np.inf:
        cap_used = float(max_weight_ratio)
        v, it1, err, ok = solve(v, cap_used)
        iters += it1
    w = np.zeros(n)
    w[rows] = v
    w *= n / max(w.sum(), 1e-300)
    w[w < 1e-12] = 0.0  # IPF drives some weights toward denormals (1e-45 seen): they are absent, say so exactly
    prev = (np.add.reduceat(w[rows][rr], starts) / w.sum()) if J.size else np.zeros(0)
    info = {
        "method": "raking",
        "iterations": int(iters),
        "converged": bool(err < tol),
        "max_marginal_error": float(err),
        "max_relative_error": float(np.max(np.abs(prev - tj) / tj)) if J.size else 0.0,
        "max_marginal_error_after_clipping": float(err),  # same number: trimming happens inside the raking
        "weight_cap": cap_used,
        "max_weight_ratio": float(w.max() / w.mean()),
        "clipped_fraction": float(np.mean(v >= cap_used * (1 - 1e-9))) if cap_used else 0.0,
        "unmatched_classes": int((~feasible & (t > 0)).sum()),
        "zeroed_classes": int(zeroed.sum()),
        "effective_n": effective_sample_size(w),
        "effective_n_uncapped": uncapped_ess,
    }
    return w, info


def effective_sample_size(w: np.ndarray) -> float:
    """Kish's effective sample size (Σw)² / Σw².

    >>> effective_sample_size(np.array([1.0, 1.0, 2.0]))
    2.6666666666666665
    """
    return float(w.sum() ** 2 / max(float((w * w).sum()), 1e-300))


def train_prior(train_counts: np.ndarray, n_train: int, multi_label: bool) -> np.ndarray:
    """Training prevalence per class n_j / N (multi-label) or class frequency n_j / Σn (single-label).

    >>> train_prior(np.array([30, 10]), 40, multi_label=True).tolist(), train_prior(np.array([3, 1]), 4, False).tolist()
    ([0.75, 0.25], [0.75, 0.25])
    """
    c = np.asarray(train_counts).astype(np.float64)
    return c / max(n_train, 1) if multi_label else c / max(c.sum(), 1.0)


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


SADE_RHOS = (50, 25, 10, 5, 2)  # SADE's (Zhang et al. 2022) forward / backward long-tailed test sets
SADE_VIEWS = tuple(f"forward{r}" for r in SADE_RHOS) + ("uniform",) + tuple(f"backward{r}" for r in SADE_RHOS[::-1])


VIEW_GROUPS = {"sade": SADE_VIEWS}  # names that stand for several views (--views sade)


def prior_target(ctx: ViewContext, shape: np.ndarray) -> np.ndarray:
    """Class proportions `shape` as a view target: single-label, the proportions (sum 1); multi-label, per-class
    prevalences carrying the training set's label mass (mean labels per example, so a shifted prior asks for as
    many labels per example as the pool has), each at most 0.95."""
    s = np.clip(np.asarray(shape, dtype=np.float64), 0.0, None)
    s = s / max(s.sum(), 1e-300)
    if not ctx.multi_label:
        return s
    return np.minimum(s * ctx.train_prior().sum(), 0.95)


def exponential_lt_prior(ctx: ViewContext, rho: float, forward: bool) -> np.ndarray:
    """SADE's test prior: ∝ ρ^(-r/(k-1)) over the k classes present in training, r = 0 for the most frequent
    class (forward) or the rarest (backward); as a `prior_target` (proportions, or prevalences for multi-label).
    """
    return prior_target(ctx, lt_prior(ctx.train_counts, rho, forward))


def reweight_to_prior(labels: np.ndarray, num_classes: int, target: np.ndarray,
                      candidates: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
    """Single-label exact reweighting: every candidate of class j weighs target_j / n_j (mean 1), so the weighted
    class frequencies equal `target` exactly; the expectation of uniform subsampling to the same prior."""
    cand = np.arange(labels.shape[0]) if candidates is None else np.asarray(candidates)
    y = labels[cand]
    counts = np.bincount(y, minlength=num_classes).astype(np.float64)
    t = np.asarray(target, dtype=np.float64)
    t = np.where(counts > 0, t, 0.0)
    per_class = np.divide(t, counts, out=np.zeros_like(t), where=counts > 0)
    w = per_class[y]
    keep = w > 0
    w = w[keep]
    return cand[keep].astype(np.int64), w * (w.size / max(w.sum(), 1e-300))


def prior_view(ctx: ViewContext, name: str, target: np.ndarray, description: str, salt: int,
               candidates: Optional[np.ndarray] = None) -> View:
    """A view realizing `target` (from `prior_target`): multi-label raking; single-label exact reweighting when
    the context asks for it (`exact_weights`, used by the report), else a class-stratified subsample."""
    if ctx.multi_label or not ctx.exact_weights:
        return _to_prior_view(ctx, name, target, description, salt, candidates)
    idx, w = reweight_to_prior(ctx.labels, ctx.num_classes, target, candidates)
    missing = int(((target > 0) & (np.bincount(ctx.labels[idx], minlength=ctx.num_classes) == 0)).sum())
    info = {"method": "reweighting", "unmatched_classes": missing, "effective_n": effective_sample_size(w)}
    return View(name, idx, w, description + " (exact class reweighting)", info)


def lt_view_builder(rho: float, forward: bool) -> Callable[[ViewContext], View]:
    """The `forward<ρ>` / `backward<ρ>` view: the pool (its balanced candidates when it has them) subsampled
    (single-label) or raked (multi-label) to SADE's long-tailed prior."""
    name = f"{'forward' if forward else 'backward'}{rho:g}"
    how = "forward long tail (training class order)" if forward else "backward long tail (class order reversed)"

    def build(ctx: ViewContext) -> View:
        return prior_view(ctx, name, exponential_lt_prior(ctx, rho, forward), f"SADE {how}, ρ={rho:g}",
                          salt=(100 if forward else 200) + int(rho), candidates=ctx.groups.get("balanced_candidates"))

    return build


def view_uniform(ctx: ViewContext) -> View:
    """Every class present in training equally likely (single-label: the `balanced` subsample; multi-label:
    equal prevalence by raking, unlike `balanced`'s AudioSet-style construction)."""
    shape = (ctx.train_counts > 0).astype(np.float64)
    return prior_view(ctx, "uniform", prior_target(ctx, shape), "uniform over classes", salt=2,
                      candidates=ctx.groups.get("balanced_candidates"))


def view_train_prior(ctx: ViewContext) -> View:
    """Exactly the training prior, realized on the whole pool (unlike `natural`, which is the pool's own
    i.i.d. group when it has one)."""
    return prior_view(ctx, "train_prior", prior_target(ctx, ctx.train_prior()), "training prior", salt=4)


def gamma_view_builder(gamma: float) -> Callable[[ViewContext], View]:
    """`gamma<γ>`: the point γ of the prior-shift path (`shifted_prior`), on the whole pool."""
    name = f"gamma{gamma:g}"

    def build(ctx: ViewContext) -> View:
        target = prior_target(ctx, shifted_prior(ctx.train_prior(), gamma))
        return prior_view(ctx, name, target, f"prior-shift path γ={gamma:g} (0 training, 1 uniform, 2 reversed)",
                          salt=5)

    return build


def user_view_builder(key: str) -> Callable[[ViewContext], View]:
    """`user:<name>`: a user-supplied prior (`--eval-prior`), class proportions in `ctx.priors[name]`."""

    def build(ctx: ViewContext) -> View:
        name = key.split(":", 1)[1]
        if name not in ctx.priors:
            raise UserError(f"view '{key}' needs an evaluation prior named '{name}' (--eval-prior {name}.csv)")
        return prior_view(ctx, key, prior_target(ctx, ctx.priors[name]), f"user prior '{name}'", salt=6)

    return build


_PATTERNS = (
    (re.compile(r"(forward|backward)(\d+(?:\.\d+)?)$"),
     lambda m: lt_view_builder(_num(m.group(2)), m.group(1) == "forward")),
    (re.compile(r"gamma(-?\d+(?:\.\d+)?)$"), lambda m: gamma_view_builder(float(m.group(1)))),
    (re.compile(r"user:(.+)$"), lambda m: user_view_builder(m.group(0))),
)


def _num(text: str) -> float:
    x = float(text)
    if x < 1:
        raise UserError(f"imbalance ratio {text} of a forward/backward view must be >= 1 (e.g. forward10)")
    return x


def view_builder(name: str) -> Callable[[ViewContext], View]:
    """The builder of a view name: a registered one, forward<ρ> / backward<ρ> for any ρ >= 1, gamma<γ>, or
    user:<prior name>; an unknown name is an error listing the valid ones."""
    if name in VIEW_BUILDERS:
        return VIEW_BUILDERS[name]
    for pattern, make in _PATTERNS:
        m = pattern.match(name)
        if m:
            return make(m)
    raise UserError(f"unknown evaluation view '{name}'; valid views: {', '.join(sorted(VIEW_BUILDERS))}, "
                    f"forward<ρ>, backward<ρ>, gamma<γ>, user:<prior>, or the group {', '.join(VIEW_GROUPS)}")


def expand_view_names(names: Sequence[str]) -> list[str]:
    """View names with groups (`sade`) expanded, duplicates dropped, each checked (UserError if unknown)."""
    out: list[str] = []
    for name in names:
        for n in VIEW_GROUPS.get(name.strip(), (name.strip(),)):
            if n and n not in out:
                view_builder(n)
                out.append(n)
    return out


def view_public(ctx: ViewContext) -> View:
    """The task's official evaluation split as released (AudioSet's eval set: near-balanced, >= ~59 clips per
    class). A split without a `public` group (e.g. a validation slice of the training set) uses all its examples."""
    if "public" in ctx.groups:
        idx = np.asarray(ctx.groups["public"], dtype=np.int64)
        return View("public", idx, None, f"official evaluation split as released ({idx.size} examples, its "
                                         f"curators' prior)")
    n = ctx.labels.shape[0]
    return View("public", np.arange(n, dtype=np.int64), None,
                f"no official split here: all {n} examples (same prior as this split)")


VIEW_BUILDERS: dict[str, Callable[[ViewContext], View]] = {
    "natural": view_natural,
    "public": view_public,
    "balanced": view_balanced,
    "inverse": view_inverse,
    "uniform": view_uniform,
    "train_prior": view_train_prior,
}
for _rho in SADE_RHOS:
    VIEW_BUILDERS[f"forward{_rho}"] = lt_view_builder(_rho, forward=True)
    VIEW_BUILDERS[f"backward{_rho}"] = lt_view_builder(_rho, forward=False)


def build_views(names: tuple[str, ...] | list[str], ctx: ViewContext) -> dict[str, View]:
    """Build the named views; an unknown name is an error listing the valid ones."""
    out = {}
    for name in expand_view_names(names):
        out[name] = view_builder(name)(ctx)
    return out
