"""Shared generators for the offline synthetic tasks: confusable Gaussian class means and long-tailed priors."""
from __future__ import annotations

import numpy as np


def power_law_prior(num_classes: int, exponent: float) -> np.ndarray:
    """p_j ∝ (j + 1)^(-exponent), normalized: class 0 is the most frequent."""
    p = (np.arange(num_classes) + 1.0) ** -exponent
    return p / p.sum()


def exponential_counts(num_classes: int, n_max: int, rho: float) -> np.ndarray:
    """CIFAR-LT profile (Cao et al. 2019): n_j = int(n_max · ρ^(-j / (C - 1))), so n_0 / n_{C-1} = ρ."""
    if num_classes == 1:
        return np.array([n_max], dtype=np.int64)
    j = np.arange(num_classes)
    return (n_max * rho ** (-j / (num_classes - 1.0))).astype(np.int64)


def confusable_means(num_classes: int, dim: int, groups: int, spread: float, rng: np.random.Generator) -> np.ndarray:
    """(C, dim) class means: group centre + spread · noise, groups assigned round-robin (j mod G).

    Round-robin puts frequent and rare classes in the same group, so a model must separate rare classes from
    frequent look-alikes: that confusion is what makes the evaluation prior matter.
    """
    centres = rng.normal(size=(groups, dim))
    return centres[np.arange(num_classes) % groups] + spread * rng.normal(size=(num_classes, dim))


def draw_label_sets(n: int, prior: np.ndarray, mean_labels: float, rng: np.random.Generator) -> np.ndarray:
    """(n, C) bool: each example gets k = 1 + Poisson(mean_labels - 1) distinct labels, drawn ∝ prior.

    Sampling without replacement via Gumbel top-k, vectorized over examples.
    """
    c = prior.shape[0]
    k = np.minimum(1 + rng.poisson(max(mean_labels - 1.0, 0.0), size=n), c)
    keys = np.log(prior)[None, :] + rng.gumbel(size=(n, c))
    order = np.argsort(-keys, axis=1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(c)[None, :].repeat(n, axis=0), axis=1)
    return rank < k[:, None]
