"""Class-balanced loss by effective number of samples (Cui et al. 2019, CVPR, arXiv 1901.05555)."""
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F

from benchmark import Method, Param, register_method
from benchmark.method import TrainInfo
from methods.focal import sigmoid_focal, softmax_focal


def effective_number_weights(counts: np.ndarray, beta: float) -> np.ndarray:
    """(1 − β) / (1 − β^n_j), normalized so that the mean weight over training positives is 1.

    β = 1 is the exact limit 1 / n_j (inverse frequency); β = 0 gives equal weights. 1 − β^n is computed as
    −expm1(n·log1p(β − 1)), accurate for β close to 1. Absent classes get weight 1 (they are never positives).
    """
    n = np.asarray(counts, dtype=np.float64)
    w = np.ones_like(n)
    present = n > 0
    if not present.any():
        return w
    np_ = n[present]
    if beta >= 1.0:
        raw = 1.0 / np_
    elif beta <= 0.0:
        raw = np.ones_like(np_)
    else:
        raw = (1.0 - beta) / -np.expm1(np_ * np.log1p(beta - 1.0))
    w[present] = raw / ((raw * np_).sum() / np_.sum())
    return w


def weighted_loss(logits: torch.Tensor, targets: torch.Tensor, w: torch.Tensor,
                  focal_gamma: Optional[float] = None) -> torch.Tensor:
    """Mean of per-class-weighted BCE / CE (or focal): multi-label positives carry w_j, negatives 1."""
    if targets.dtype.is_floating_point:
        per = (F.binary_cross_entropy_with_logits(logits, targets, reduction="none") if focal_gamma is None
               else sigmoid_focal(logits, targets, focal_gamma, None))
        return (per * (1.0 + (w - 1.0) * targets)).mean()  # soft targets (MixUp) interpolate the weight
    per = (F.cross_entropy(logits, targets, reduction="none") if focal_gamma is None
           else softmax_focal(logits, targets, focal_gamma, None))
    return (per * w[targets]).mean()


@register_method
class ClassBalanced(Method):
    """Per-class loss weights from the effective number of samples E_n = (1 − β^n) / (1 − β), on BCE/CE or focal.

    Weights are normalized like `class_weighted` (mean 1 over training positives, so the loss scale matches the
    baseline) rather than Cui et al.'s Σ_j w_j = C; the two differ by one constant factor.
    """

    name = "class_balanced"
    paper = "Cui et al. 2019, arXiv 1901.05555"
    params = {
        "beta_cb": Param(float, 0.9999, "β of the effective number: 0 no weighting, 1 inverse frequency",
                         min=0.0, max=1.0),
        "base": Param(str, "ce", "base loss: ce (BCE / cross-entropy) or focal", choices=("ce", "focal")),
        "gamma": Param(float, 2.0, "focal γ (with base=focal)", min=0.0, max=10.0),
    }

    def setup(self, train: TrainInfo) -> None:
        super().setup(train)
        self.weights = effective_number_weights(train.class_counts, self.beta_cb)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        return weighted_loss(logits, targets, self.on(logits, self.weights),
                             self.gamma if self.base == "focal" else None)
