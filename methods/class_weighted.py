"""Class-weighted loss, w_j = (n_max / n_j)^β, normalized to mean 1 over training examples (cost-sensitive learning)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from benchmark import Method, Param, register_method
from benchmark.method import TrainInfo

if TYPE_CHECKING:  # torch loads with a run's first loss, so that listing methods stays torch-free
    import torch


@register_method
class ClassWeighted(Method):
    """Per-class loss weights (n_max/n_j)^β, mean 1: CE weighted by the example's class, BCE on positives.

    Single-label: each example's cross-entropy is weighted by its class's w_j. Multi-label: each class's positive
    BCE terms are weighted by w_j (torch's `pos_weight` form) and negatives keep weight 1, so that, as with
    oversampling, rare classes' positives count more; the weights are normalized so that the mean weight over
    positive labels is 1. The loss is `benchmark.losses.ClassWeightedLoss`.
    """

    name = "class_weighted"
    paper = "cost-sensitive re-weighting, e.g. King & Zeng 2001; Cui et al. 2019 (β=1 is inverse frequency)"
    params = {"beta": Param(float, 1.0, "weighting strength: 0 none, 1 inverse frequency", min=0.0, max=4.0)}

    def setup(self, train: TrainInfo) -> None:
        super().setup(train)
        from benchmark.losses import ClassWeightedLoss

        self.criterion = ClassWeightedLoss.from_counts(train.class_counts, self.beta)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        return self.criterion.to(logits.device)(logits, targets)
