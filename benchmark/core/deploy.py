"""Deployment priors by name, and drawing a deployment set from one (numpy only).

A generated task's `deploy_prior=<name>` names the class prior of its hidden deployment set: a prior-shift view
name (`uniform`, `train_prior`, `inverse`, `forward<ρ>`, `backward<ρ>`, `gamma<γ>`) or a prior CSV
(`class,probability` / `class,count`, see `benchmark.core.priors`). The deployment set's labels are kept apart from
its scores (`deploy_true_labels` in a run's .npz); estimators never take them.
"""
from __future__ import annotations

import re
from typing import Optional, Sequence

import numpy as np

from .errors import UserError
from .priors import lt_prior, read_prior_rows, resolve_prior, reversed_prior, shifted_prior

DEPLOY_PRIOR_HELP = ("class prior of a generated, unlabeled deployment set: uniform, train_prior, inverse, "
                     "forward<ρ>, backward<ρ>, gamma<γ> or a prior CSV; none = no deployment set")


def named_prior(name: str, train_counts: Sequence[float], class_names: Optional[Sequence[str]] = None) -> np.ndarray:
    """Class proportions (sum 1) that a prior name or CSV path stands for, given the training class counts.

    >>> named_prior("backward10", [100, 10]).round(3).tolist(), named_prior("gamma1", [30, 10]).tolist()
    ([0.091, 0.909], [0.5, 0.5])
    """
    counts = np.asarray(train_counts, dtype=np.float64)
    if counts.ndim != 1 or counts.size == 0 or (counts < 0).any() or counts.sum() <= 0:
        raise UserError("train_counts must be non-negative per-class training counts, not all 0")
    c = counts.size
    p = counts / counts.sum()
    key = str(name).strip()
    if key.lower().endswith(".csv"):
        rows, kind = read_prior_rows(key)
        names = list(class_names) if class_names is not None else [str(j) for j in range(c)]
        return resolve_prior(rows, names, key, kind=kind)
    if key in ("uniform", "balanced"):
        out = (counts > 0).astype(np.float64)
    elif key in ("train_prior", "natural"):
        out = p
    elif key == "inverse":
        out = reversed_prior(p)
    elif m := re.fullmatch(r"(forward|backward)(\d+(?:\.\d+)?)", key):
        rho = float(m.group(2))
        if rho < 1:
            raise UserError(f"deploy_prior '{key}': the imbalance ratio must be >= 1 (e.g. backward10)")
        out = lt_prior(counts, rho, m.group(1) == "forward")
    elif m := re.fullmatch(r"gamma(-?\d+(?:\.\d+)?)", key):
        out = shifted_prior(p, float(m.group(1)))
    else:
        raise UserError(f"deploy_prior '{key}' is not a prior: use uniform, train_prior, inverse, forward<ρ>, "
                        f"backward<ρ>, gamma<γ> (e.g. backward10, gamma1.5) or a .csv prior file")
    return out / out.sum()


def draw_deploy_labels(prior: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n,) class ids drawn i.i.d. from `prior` (single-label deployment sets).

    >>> np.bincount(draw_deploy_labels(np.array([0.75, 0.25]), 4000, np.random.default_rng(0))).tolist()
    [3000, 1000]
    """
    if n < 1:
        raise UserError(f"deploy_size must be >= 1, got {n}")
    return rng.choice(prior.size, size=int(n), p=prior).astype(np.int64)


def pick_per_class(labels: np.ndarray, available: np.ndarray, prior: np.ndarray, n: Optional[int],
                   rng: np.random.Generator, what: str = "deployment") -> np.ndarray:
    """Indices of a subset of the `available` examples whose class counts follow `prior` (multinomial draw of `n`
    labels, then that many distinct examples per class); `n` None or 0 = the largest size the available examples
    allow for this prior. For finite datasets (digits) whose held-out examples are few.

    >>> y = np.repeat([0, 1], [10, 40]); idx = pick_per_class(y, np.ones(50, bool), np.array([0.5, 0.5]), 0,
    ...                                                      np.random.default_rng(0))
    >>> np.bincount(y[idx]).tolist()
    [10, 10]
    """
    c = prior.size
    have = np.bincount(labels[available], minlength=c)
    with np.errstate(divide="ignore"):
        cap = np.where(prior > 0, have / np.where(prior > 0, prior, 1.0), np.inf)
    n_max = int(np.floor(cap.min()))
    if not n:
        counts = np.floor(prior * n_max + 1e-9).astype(np.int64)
    else:
        if n > 0.9 * n_max:  # a multinomial draw near the cap would run out of some class's examples
            raise UserError(f"deploy_size={n}: only {have.sum()} held-out examples are left and this prior allows "
                            f"at most ~{int(0.9 * n_max)} {what} examples; lower deploy_size or pick another prior")
        counts = rng.multinomial(n, prior)
        counts = np.minimum(counts, have)
    out = []
    for j in range(c):
        idx = np.flatnonzero(available & (labels == j))
        out.append(rng.choice(idx, size=int(counts[j]), replace=False))
    return rng.permutation(np.concatenate(out)).astype(np.int64)
