"""Balanced softmax (Ren et al. 2020, "Balanced Meta-Softmax for Long-Tailed Visual Recognition", arXiv 2007.10740)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from benchmark import Method, register_method
from benchmark.method import TrainInfo

if TYPE_CHECKING:  # torch loads with a run's first loss, so that listing methods stays torch-free
    import torch


@register_method
class BalancedSoftmax(Method):
    """Train on logits shifted by the log prior, evaluate the raw logits (the shift models the training prior).

    Single-label: cross-entropy of z_j + log π_j. Multi-label: the sigmoid analog, BCE of z_j + log(n_j / (N − n_j)),
    the log prior odds of each class. Equals the loss form of logit adjustment at τ = 1 (both label types). The
    loss is `benchmark.losses.BalancedSoftmaxLoss`.
    """

    name = "balanced_softmax"
    paper = "Ren et al. 2020, arXiv 2007.10740"
    params = {}

    def setup(self, train: TrainInfo) -> None:
        super().setup(train)
        from benchmark.losses import BalancedSoftmaxLoss

        self.criterion = BalancedSoftmaxLoss.from_counts(train.class_counts, train.n_examples)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        return self.criterion.to(logits.device)(logits, targets)
