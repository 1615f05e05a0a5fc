"""Asymmetric loss (Ridnik et al. 2021, "Asymmetric Loss For Multi-Label Classification", ICCV, arXiv 2009.14119)."""
from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from benchmark import Method, Param, register_method

if TYPE_CHECKING:  # torch loads with a run's first loss, so that listing methods stays torch-free
    import torch

    from benchmark.losses import AsymmetricLoss


@register_method
class ASL(Method):
    """Focusing with separate γ for positives and negatives plus a probability margin that discards easy negatives.

    The paper sums over classes; this mean over elements keeps BCE's scale (a constant factor apart). The loss is
    `benchmark.losses.AsymmetricLoss`.
    """

    name = "asl"
    paper = "Ridnik et al. 2021, arXiv 2009.14119"
    multi_label = True
    single_label = False
    params = {
        "gamma_neg": Param(float, 4.0, "focusing γ− of negatives", min=0.0, max=20.0),
        "gamma_pos": Param(float, 0.0, "focusing γ+ of positives", min=0.0, max=20.0),
        "clip": Param(float, 0.05, "probability margin m: negatives with p ≤ m are discarded", min=0.0, max=0.99),
    }

    @functools.cached_property
    def criterion(self) -> AsymmetricLoss:
        from benchmark.losses import AsymmetricLoss

        return AsymmetricLoss(self.gamma_neg, self.gamma_pos, self.clip)  # needs no class counts

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        return self.criterion(logits, targets)
