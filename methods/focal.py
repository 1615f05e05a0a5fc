"""Focal loss (Lin et al. 2017, "Focal Loss for Dense Object Detection", arXiv 1708.02002)."""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from benchmark import Method, Param, register_method

if TYPE_CHECKING:  # torch loads with a run's first loss, so that listing methods stays torch-free
    import torch

    from benchmark.losses import FocalLoss


@register_method
class Focal(Method):
    """Down-weights easy examples by (1 − p_t)^γ; multi-label as the paper: α = 0.25, summed over elements and
    divided by the batch's positive labels. Single-label: softmax form, mean over examples, no α.

    γ = 0 with alpha=none is plain BCE (up to the normalization) / cross-entropy. The loss is
    `benchmark.losses.FocalLoss`.
    """

    name = "focal"
    paper = "Lin et al. 2017, arXiv 1708.02002"
    params = {
        "gamma": Param(float, 2.0, "focusing parameter γ", min=0.0, max=10.0),
        "alpha": Param(float, 0.25, "multi-label: weight α of positives, 1 − α of negatives (the paper's 0.25); "
                       "none: unweighted; not used by the single-label (softmax) form", min=0.0, max=1.0,
                       optional=True),
    }

    @functools.cached_property
    def criterion(self) -> FocalLoss:
        from benchmark.losses import FocalLoss

        return FocalLoss(self.gamma, self.alpha)  # needs no class counts

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        return self.criterion(logits, targets)
