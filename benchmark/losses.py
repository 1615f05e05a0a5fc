"""Class-balancing losses as `torch.nn.Module`s, built from class counts: use them in any training loop.

Every loss takes `(logits, targets)`: logits (B, C); targets (B,) integer class ids for single-label
classification (softmax / cross-entropy), or (B, C) float 0/1 (or soft) targets for multi-label (sigmoid / BCE).
`from_counts(counts, ...)` builds a loss from the training set's class counts (see
`benchmark.samplers.class_counts`). The benchmark's methods of the same name train with these modules.

| loss | method | single / multi |
|---|---|---|
| `ClassWeightedLoss` | `class_weighted` | both |
| `ClassBalancedLoss` | `class_balanced` | both |
| `FocalLoss` | `focal` | both |
| `LogitAdjustedLoss` / `BalancedSoftmaxLoss` | `logit_adjust:form=loss` / `balanced_softmax` | both |
| `LDAMLoss` | `ldam_drw` | both |
| `AsymmetricLoss` | `asl` | multi |
| `DistributionBalancedLoss` | `dist_balanced` | multi |

>>> import torch
>>> loss = FocalLoss(gamma=2.0)
>>> round(loss(torch.zeros(1, 3), torch.tensor([2])).item(), 4)  # (1 − 1/3)^2 · log 3
0.4883
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .sampling import oversampling_class_factors

__all__ = ["AsymmetricLoss", "BalancedSoftmaxLoss", "ClassBalancedLoss", "ClassWeightedLoss",
           "DistributionBalancedLoss", "FocalLoss", "LDAMLoss", "LogitAdjustedLoss", "class_weights",
           "effective_number_weights", "ldam_margins", "log_odds", "log_prior", "prior_shift"]

MIN_COUNT = 0.5  # a class absent from training counts as half an example: its log prior stays finite


# ---- per-class quantities from counts (numpy) ------------------------------------------------------------------

def _counts(counts: Any) -> np.ndarray:
    n = np.asarray(counts.detach().cpu().numpy() if isinstance(counts, torch.Tensor) else counts, dtype=np.float64)
    if n.ndim != 1 or n.size == 0:
        raise ValueError(f"counts must be a non-empty (C,) array of examples per class, got shape {n.shape}")
    if not np.all(np.isfinite(n)) or (n < 0).any():
        raise ValueError(f"counts must be finite and >= 0, got {n[~np.isfinite(n) | (n < 0)][0].item()!r}")
    return n


def _n_examples(counts: np.ndarray, n_examples: Optional[int]) -> float:
    if n_examples is None:
        return float(counts.sum())  # single-label: every example carries one class
    if n_examples < counts.max():
        raise ValueError(f"n_examples={n_examples} is below the largest class count {counts.max():g}")
    return float(n_examples)


def log_prior(counts: Any, n_examples: Optional[int] = None) -> np.ndarray:
    """(C,) log π_j = log(n_j / N), counts floored at half an example; N defaults to Σ n_j (single-label).

    >>> log_prior([6, 3, 1]).round(4).tolist()
    [-0.5108, -1.204, -2.3026]
    """
    n = _counts(counts)
    return np.log(np.maximum(n, MIN_COUNT)) - np.log(max(_n_examples(n, n_examples), 1.0))


def log_odds(counts: Any, n_examples: int) -> np.ndarray:
    """(C,) log(n_j / (N − n_j)), both floored at half an example: the sigmoid analog of the log prior.

    A multi-label class is a binary problem with priors π_j and 1 − π_j; the two-logit softmax of logit
    adjustment / balanced softmax over them is a sigmoid of z_j + log(π_j / (1 − π_j)).

    >>> log_odds([2, 1], 4).round(4).tolist()
    [0.0, -1.0986]
    """
    n = _counts(counts)
    total = _n_examples(n, n_examples)
    return np.log(np.maximum(n, MIN_COUNT)) - np.log(np.maximum(total - n, MIN_COUNT))


def prior_shift(counts: Any, n_examples: int, multi_label: bool) -> np.ndarray:
    """The log prior (single-label) or log prior odds (multi-label) that logit adjustment adds or subtracts.

    >>> prior_shift([2, 1], 4, multi_label=True).round(4).tolist(), prior_shift([3, 1], 4, False).round(4).tolist()
    ([0.0, -1.0986], [-0.2877, -1.3863])
    """
    return log_odds(counts, n_examples) if multi_label else log_prior(counts, n_examples)


def class_weights(counts: Any, beta: float = 1.0) -> np.ndarray:
    """(n_max / n_j)^β, scaled so that the mean weight over training examples (multi-label: positive labels) is 1.

    Normalizing over examples keeps the loss scale, and so the effective learning rate, comparable to the
    unweighted loss. Absent classes get weight 1 (they never appear as positives) and are left out of the mean.

    >>> class_weights([90, 9, 1]).round(4).tolist()
    [0.3704, 3.7037, 33.3333]
    """
    n = _counts(counts)
    w = oversampling_class_factors(n, beta)  # the sampler's M_j: weighting and oversampling share one formula
    present = n > 0
    w[~present] = 1.0
    if present.any():
        w[present] /= (w[present] * n[present]).sum() / n[present].sum()
    return w


def effective_number_weights(counts: Any, beta: float = 0.9999) -> np.ndarray:
    """Cui et al. 2019: w_j ∝ (1 − β) / (1 − β^n_j), normalized so that Σ_j w_j = C (as the paper).

    β = 1 is the exact limit 1 / n_j (inverse frequency); β = 0 gives equal weights. 1 − β^n is computed as
    −expm1(n·log1p(β − 1)), accurate for β close to 1. Classes absent from training never carry a positive: they
    keep weight 1 and the sum runs over the present classes (Σ = their number).

    >>> effective_number_weights([3, 1], beta=0.5).round(4).tolist()  # raw (0.5/0.875, 1) -> sum 2
    [0.7273, 1.2727]
    """
    n = _counts(counts)
    w = np.ones_like(n)
    present = n > 0
    if not present.any():
        return w
    k = n[present]
    if beta >= 1.0:
        raw = 1.0 / k
    elif beta <= 0.0:
        raw = np.ones_like(k)
    else:
        raw = (1.0 - beta) / -np.expm1(k * np.log1p(beta - 1.0))
    w[present] = raw * (k.size / raw.sum())
    return w


def ldam_margins(counts: Any, max_m: float = 0.5) -> np.ndarray:
    """Δ_j ∝ n_j^(−1/4), scaled so that the rarest present class gets `max_m`; absent classes get `max_m`.

    >>> ldam_margins([16, 1], 0.5).tolist()
    [0.25, 0.5]
    """
    n = _counts(counts)
    m = np.full(n.shape, float(max_m))
    present = n > 0
    if present.any():
        raw = n[present] ** -0.25
        m[present] = raw * (max_m / raw.max())
    return m


# ---- shared pieces -----------------------------------------------------------------------------------------------

def _is_multi_label(logits: torch.Tensor, targets: torch.Tensor) -> bool:
    """Float (B, C) targets: multi-label; integer (B,) targets: single-label. Errors name the argument."""
    if logits.ndim != 2:
        raise ValueError(f"logits must be (B, C), got shape {tuple(logits.shape)}")
    if targets.dtype.is_floating_point:
        if targets.shape != logits.shape:
            raise ValueError(f"multi-label targets must have the logits' shape {tuple(logits.shape)}, got "
                             f"{tuple(targets.shape)}")
        return True
    if targets.dtype == torch.bool:
        raise ValueError("targets: give multi-label targets as float (targets.float()), class ids as integers")
    if targets.shape != logits.shape[:1]:
        raise ValueError(f"single-label targets must be (B,) = ({logits.shape[0]},) class ids, got shape "
                         f"{tuple(targets.shape)}; multi-label targets must be float (B, C)")
    return False


def _only_multi_label(name: str, logits: torch.Tensor, targets: torch.Tensor) -> None:
    if not _is_multi_label(logits, targets):
        raise ValueError(f"{name} is a multi-label loss: targets must be float (B, C) 0/1, got {targets.dtype} "
                         f"of shape {tuple(targets.shape)}")


def _vector(name: str, value: Any) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value,
                                   dtype=np.float64), dtype=torch.float32)
    if t.ndim != 1 or not torch.isfinite(t).all():
        raise ValueError(f"{name} must be a finite (C,) vector, got shape {tuple(t.shape)}")
    return t


def _check_classes(name: str, vec: torch.Tensor, logits: torch.Tensor) -> None:
    if vec.shape[0] != logits.shape[1]:
        raise ValueError(f"{name} has {vec.shape[0]} classes but logits have {logits.shape[1]}")


def sigmoid_focal_terms(logits: torch.Tensor, targets: torch.Tensor, gamma: float,
                        alpha: Optional[float] = None) -> torch.Tensor:
    """Per element −α_t (1 − p_t)^γ log p_t on sigmoid probabilities (α_t = α for positives, 1 − α negatives)."""
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t).clamp_min(0) ** gamma
    if alpha is not None:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss


def softmax_focal_terms(logits: torch.Tensor, targets: torch.Tensor, gamma: float) -> torch.Tensor:
    """Per example −(1 − p_y)^γ log p_y on the softmax probability of the true class."""
    logp_t = F.log_softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
    return -((1 - logp_t.exp()).clamp_min(0) ** gamma) * logp_t


# ---- the losses --------------------------------------------------------------------------------------------------

class ClassWeightedLoss(nn.Module):
    """Per-class weights on cross-entropy (single-label: w_y · CE, mean over the batch) or BCE (multi-label:
    positives' terms × w_j, negatives × 1, mean over elements), optionally on the focal loss (`focal_gamma`).

    The mean of w_y · CE, not torch's `weight=` mean (which divides by Σ w_y and so undoes the weights' scale).

    >>> loss = ClassWeightedLoss.from_counts([3, 1], beta=1.0)  # weights (2/3, 2): mean 1 over the examples
    >>> round(loss(torch.zeros(2, 2), torch.tensor([0, 1])).item(), 4)  # (2/3 + 2)/2 · log 2
    0.9242
    """

    def __init__(self, weight: Any, focal_gamma: Optional[float] = None) -> None:
        super().__init__()
        if focal_gamma is not None and not focal_gamma >= 0:
            raise ValueError(f"focal_gamma must be >= 0 or None, got {focal_gamma!r}")
        self.register_buffer("weight", _vector("weight", weight))
        self.focal_gamma = focal_gamma

    @classmethod
    def from_counts(cls, counts: Any, beta: float = 1.0, focal_gamma: Optional[float] = None) -> "ClassWeightedLoss":
        """Weights (n_max / n_j)^β with mean 1 over training examples (`class_weights`)."""
        if not 0 <= beta <= 4:
            raise ValueError(f"beta must be in [0, 4] (0 no weighting, 1 inverse frequency), got {beta!r}")
        return cls(class_weights(counts, beta), focal_gamma)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        multi = _is_multi_label(logits, targets)
        _check_classes("weight", self.weight, logits)
        w = self.weight.to(logits)
        g = self.focal_gamma
        if multi:
            per = (F.binary_cross_entropy_with_logits(logits, targets, reduction="none") if g is None
                   else sigmoid_focal_terms(logits, targets, g))
            return (per * (1.0 + (w - 1.0) * targets)).mean()  # soft targets (MixUp) interpolate the weight
        per = F.cross_entropy(logits, targets, reduction="none") if g is None else softmax_focal_terms(logits,
                                                                                                       targets, g)
        return (per * w[targets]).mean()


class ClassBalancedLoss(ClassWeightedLoss):
    """Cui et al. 2019: class weights (1 − β) / (1 − β^n_j) from the effective number of samples, Σ_j w_j = C,
    on cross-entropy / BCE or, with `focal_gamma`, the focal loss; applied as `ClassWeightedLoss` applies weights.

    >>> loss = ClassBalancedLoss.from_counts([3, 1], beta=0.5)
    >>> [round(w, 4) for w in loss.weight.tolist()]
    [0.7273, 1.2727]
    """

    @classmethod
    def from_counts(cls, counts: Any, beta: float = 0.9999,
                    focal_gamma: Optional[float] = None) -> "ClassBalancedLoss":
        """Weights `effective_number_weights(counts, beta)`."""
        if not 0 <= beta <= 1:
            raise ValueError(f"beta must be in [0, 1] (0 no weighting, 1 inverse frequency), got {beta!r}")
        return cls(effective_number_weights(counts, beta), focal_gamma)


class FocalLoss(nn.Module):
    """Lin et al. 2017: FL = −α_t (1 − p_t)^γ log p_t.

    Multi-label (sigmoid, the paper's form): α_t = α for positives and 1 − α for negatives (paper: α = 0.25 with
    γ = 2), summed and divided by the number of positive labels in the batch (the paper normalizes by the anchors
    assigned to an object). Single-label (softmax): the true class's term, mean over the batch (one positive per
    example); α is not applied there, since with one term per example it would only scale the loss.

    >>> loss = FocalLoss(gamma=0.0, alpha=None)  # plain BCE, summed over 2 elements, 1 positive
    >>> round(loss(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])).item(), 4)  # 2 log 2
    1.3863
    """

    def __init__(self, gamma: float = 2.0, alpha: Optional[float] = 0.25) -> None:
        super().__init__()
        if not gamma >= 0:
            raise ValueError(f"gamma must be >= 0, got {gamma!r}")
        if alpha is not None and not 0 <= alpha <= 1:
            raise ValueError(f"alpha must be in [0, 1] or None, got {alpha!r}")
        self.gamma, self.alpha = float(gamma), alpha

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if _is_multi_label(logits, targets):
            per = sigmoid_focal_terms(logits, targets, self.gamma, self.alpha)
            return per.sum() / targets.sum().clamp_min(1.0)
        return softmax_focal_terms(logits, targets, self.gamma).mean()


class LogitAdjustedLoss(nn.Module):
    """Menon et al. 2021, the logit-adjusted loss: cross-entropy of z_j + τ log π_j (single-label); multi-label:
    BCE of z_j + τ log(π_j / (1 − π_j)), each class a binary problem (see `log_odds`). Evaluate the raw logits.

    `from_counts(counts)` for single-label; pass `n_examples` (N) for multi-label targets, whose counts do not sum
    to N.

    >>> loss = LogitAdjustedLoss.from_counts([6, 3, 1], tau=1.0)
    >>> round(loss(torch.zeros(1, 3), torch.tensor([2])).item(), 4)  # softmax(log π) = π: −log 0.1
    2.3026
    """

    def __init__(self, log_prior: Any, log_odds: Optional[Any] = None, tau: float = 1.0) -> None:
        super().__init__()
        if not tau >= 0:
            raise ValueError(f"tau must be >= 0, got {tau!r}")
        self.tau = float(tau)
        self.register_buffer("log_prior", _vector("log_prior", log_prior))
        self.register_buffer("log_odds", None if log_odds is None else _vector("log_odds", log_odds))

    @classmethod
    def from_counts(cls, counts: Any, n_examples: Optional[int] = None, tau: float = 1.0) -> "LogitAdjustedLoss":
        """Log prior from `counts` (N = Σ counts unless `n_examples` is given); log odds when `n_examples` is."""
        odds = None if n_examples is None else log_odds(counts, n_examples)
        return cls(log_prior(counts, n_examples), odds, tau)

    def shift(self, multi_label: bool) -> torch.Tensor:
        """The (C,) shift added to the logits in the loss (τ times the log prior or log odds)."""
        if not multi_label:
            return self.tau * self.log_prior
        if self.log_odds is None:
            raise ValueError(f"{type(self).__name__}: multi-label targets need the prior odds; build it with "
                             f"from_counts(counts, n_examples=N)")
        return self.tau * self.log_odds

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        multi = _is_multi_label(logits, targets)
        shift = self.shift(multi)
        _check_classes("the prior", shift, logits)
        z = logits + shift.to(logits)
        return F.binary_cross_entropy_with_logits(z, targets) if multi else F.cross_entropy(z, targets)


class BalancedSoftmaxLoss(LogitAdjustedLoss):
    """Ren et al. 2020: cross-entropy of z + log π (multi-label: BCE of z + log(π / (1 − π))); evaluate the raw
    logits. The logit-adjusted loss at τ = 1.

    >>> loss = BalancedSoftmaxLoss.from_counts([2, 1], n_examples=4)
    >>> round(loss(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])).item(), 4)  # (log 2 − log 0.75) / 2
    0.4904
    """

    @classmethod
    def from_counts(cls, counts: Any, n_examples: Optional[int] = None) -> "BalancedSoftmaxLoss":
        """Log prior (and, with `n_examples`, log odds) from `counts`."""
        return super().from_counts(counts, n_examples, tau=1.0)


class LDAMLoss(nn.Module):
    """Cao et al. 2019: cross-entropy of s·(z − Δ_y·onehot(y)), margins Δ_j ∝ n_j^(−1/4) (multi-label analog: BCE
    of s·(z_j − Δ_j·y_j)). Deferred re-weighting (DRW): set `reweight = True` late in training (the paper: after
    160 of 200 epochs) to weight each term by the class-balanced weights (`ClassBalancedLoss`'s, β = `drw_beta`),
    as the authors' code does, a weighted mean (Σ w_y ℓ / Σ w_y).

    s = 30 is the paper's scale for a cosine classifier (normalized features and weights, |z| ≤ 1); on the logits
    of a plain linear layer it multiplies them by s.

    >>> loss = LDAMLoss.from_counts([16, 1], max_m=0.5, s=1.0)
    >>> loss.margins.tolist()
    [0.25, 0.5]
    >>> round(loss(torch.zeros(1, 2), torch.tensor([1])).item(), 4)  # CE([0, −0.5], class 1) = log(1 + e^0.5)
    0.9741
    """

    def __init__(self, margins: Any, s: float = 30.0, drw_weight: Optional[Any] = None) -> None:
        super().__init__()
        if not s > 0:
            raise ValueError(f"s must be > 0, got {s!r}")
        self.s = float(s)
        self.register_buffer("margins", _vector("margins", margins))
        self.register_buffer("drw_weight", None if drw_weight is None else _vector("drw_weight", drw_weight))
        self.reweight = False

    @classmethod
    def from_counts(cls, counts: Any, max_m: float = 0.5, s: float = 30.0,
                    drw_beta: Optional[float] = 0.9999) -> "LDAMLoss":
        """Margins `ldam_margins(counts, max_m)`; DRW weights `effective_number_weights(counts, drw_beta)`."""
        if not max_m >= 0:
            raise ValueError(f"max_m must be >= 0, got {max_m!r}")
        if drw_beta is not None and not 0 <= drw_beta <= 1:
            raise ValueError(f"drw_beta must be in [0, 1] or None, got {drw_beta!r}")
        w = None if drw_beta is None else effective_number_weights(counts, drw_beta)
        return cls(ldam_margins(counts, max_m), s, w)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        multi = _is_multi_label(logits, targets)
        _check_classes("margins", self.margins, logits)
        m = self.margins.to(logits)
        w = None
        if self.reweight:
            if self.drw_weight is None:
                raise ValueError("LDAMLoss: reweight=True needs DRW weights; build it with from_counts(drw_beta=...)")
            w = self.drw_weight.to(logits)
        if multi:
            per = F.binary_cross_entropy_with_logits(self.s * (logits - m * targets), targets, reduction="none")
            if w is None:
                return per.mean()
            ew = 1.0 + (w - 1.0) * targets
            return (per * ew).sum() / ew.sum()
        z = logits - F.one_hot(targets, logits.shape[1]).to(logits.dtype) * m
        per = F.cross_entropy(self.s * z, targets, reduction="none")
        if w is None:
            return per.mean()
        return (per * w[targets]).sum() / w[targets].sum()


class AsymmetricLoss(nn.Module):
    """Ridnik et al. 2021 (multi-label): −y (1 − p)^γ+ log p − (1 − y) p_m^γ− log(1 − p_m), p_m = max(p − m, 0):
    separate focusing of positives and negatives, and a probability margin m (`clip`) that discards easy negatives.

    The paper sums over elements; this is the mean (BCE's scale, a constant factor B·C apart).

    >>> loss = AsymmetricLoss()
    >>> round(loss(torch.zeros(1, 1), torch.ones(1, 1)).item(), 4)  # a positive at p = 0.5: log 2
    0.6931
    """

    def __init__(self, gamma_neg: float = 4.0, gamma_pos: float = 0.0, clip: float = 0.05) -> None:
        super().__init__()
        for name, v, hi in (("gamma_neg", gamma_neg, None), ("gamma_pos", gamma_pos, None), ("clip", clip, 1.0)):
            if not v >= 0 or (hi is not None and not v < hi):
                raise ValueError(f"{name} must be >= 0{' and < 1' if hi else ''}, got {v!r}")
        self.gamma_neg, self.gamma_pos, self.clip = float(gamma_neg), float(gamma_pos), float(clip)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _only_multi_label("AsymmetricLoss", logits, targets)
        p = torch.sigmoid(logits)
        log_p = F.logsigmoid(logits)
        if self.clip > 0:
            p_m = (p - self.clip).clamp_min(0)
            log_not = torch.log((torch.sigmoid(-logits) + self.clip).clamp_max(1.0))  # ≥ log(clip): finite
        else:
            p_m, log_not = p, F.logsigmoid(-logits)
        pos = (1 - p) ** self.gamma_pos * log_p
        neg = p_m ** self.gamma_neg * log_not
        return -(targets * pos + (1 - targets) * neg).mean()


class DistributionBalancedLoss(nn.Module):
    """Wu et al. 2020 (multi-label): re-balanced weights r̂ = α + σ(β (r − μ)), r the ratio of class-level to
    instance-level sampling probability, times a focal BCE with negative-tolerant regularization: logits shifted by
    ν_j = κ log(n_j / (N − n_j)) / λ, negatives' loss (1/λ) log(1 + exp(λ z)). Defaults are the authors' code's
    (mllt ResampleLoss, COCO-LT: α 0.1, β 10, μ 0.2, κ 0.05, λ 2, focal γ 2 scaled by 2).

    >>> loss = DistributionBalancedLoss.from_counts([10, 2, 1], n_examples=20)
    >>> bool(loss(torch.zeros(2, 3), torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])) > 0)
    True
    """

    def __init__(self, inv_counts: Any, nu: Any, alpha: float = 0.1, beta: float = 10.0, mu: float = 0.2,
                 lam: float = 2.0, gamma: float = 2.0, scale: float = 2.0) -> None:
        super().__init__()
        inv = torch.as_tensor(np.asarray(inv_counts, dtype=np.float64), dtype=torch.float32)
        self.register_buffer("inv_counts", inv)  # 1/n_j, +inf for absent classes
        self.register_buffer("nu", _vector("nu", nu))
        if not lam > 0:
            raise ValueError(f"lam must be > 0, got {lam!r}")
        self.alpha, self.beta, self.mu, self.lam, self.gamma, self.scale = alpha, beta, mu, lam, gamma, scale

    @classmethod
    def from_counts(cls, counts: Any, n_examples: int, kappa: float = 0.05, **kw: float) -> "DistributionBalancedLoss":
        """1/n_j and the shift ν_j = κ log(n_j / (N − n_j)) / λ from counts and N (`n_examples`)."""
        n = _counts(counts)
        lam = kw.get("lam", 2.0)
        return cls(np.where(n > 0, 1.0 / np.maximum(n, 1.0), np.inf), kappa * log_odds(n, n_examples) / lam, **kw)

    def weights(self, targets: torch.Tensor) -> torch.Tensor:
        """r̂_ki = α + σ(β (r_ki − μ)), r_ki = (1/n_i) / Σ_{j ∈ labels of k} 1/n_j (an example without labels:
        r = +inf, weight α + 1)."""
        inv = self.inv_counts.to(targets)
        rate = targets @ torch.where(torch.isfinite(inv), inv, torch.zeros_like(inv))
        r = inv[None, :] / rate[:, None]  # x / 0 = +inf: σ(+inf) = 1, no NaN
        return self.alpha + torch.sigmoid(self.beta * (r - self.mu))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _only_multi_label("DistributionBalancedLoss", logits, targets)
        _check_classes("nu", self.nu, logits)
        w = self.weights(targets)
        z = logits + self.nu.to(logits)
        lam, g = self.lam, self.gamma
        pos = F.softplus(-z) * torch.sigmoid(-z) ** g  # −log σ(z) · (1 − σ(z))^γ
        neg = F.softplus(lam * z) / lam * torch.sigmoid(lam * z) ** g  # (1/λ) softplus(λz) · (1 − σ(−λz))^γ
        return (self.scale * w * (targets * pos + (1 - targets) * neg)).mean()
