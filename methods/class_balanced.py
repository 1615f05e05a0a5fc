"""Class-balanced loss by effective number of samples (Cui et al. 2019, CVPR, arXiv 1901.05555)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from benchmark import Method, Param, register_method
from benchmark.method import TrainInfo

if TYPE_CHECKING:  # torch loads with a run's first loss, so that listing methods stays torch-free
    import torch


@register_method
class ClassBalanced(Method):
    """Per-class loss weights from the effective number of samples E_n = (1 − β^n) / (1 − β), on BCE/CE or focal.

    Weights w_j = 1 / E_n_j are normalized to Σ_j w_j = C as in Cui et al. (over the classes present in training);
    single-label: each example's loss × w_y, multi-label: positives' terms × w_j, negatives × 1; mean over the
    batch (elements). The loss is `benchmark.losses.ClassBalancedLoss`.
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
        from benchmark.losses import ClassBalancedLoss

        self.criterion = ClassBalancedLoss.from_counts(train.class_counts, self.beta_cb,
                                                       self.gamma if self.base == "focal" else None)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        return self.criterion.to(logits.device)(logits, targets)
