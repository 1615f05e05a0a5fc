"""Class-weighted loss, w_j = (n_max / n_j)^β, normalized to mean 1 over training examples (cost-sensitive learning)."""
import numpy as np
import torch
import torch.nn.functional as F

from benchmark import Method, Param, register_method
from benchmark.method import TrainInfo


def class_loss_weights(train: TrainInfo, beta: float) -> np.ndarray:
    """(n_max / n_j)^β, scaled so that the mean weight over training examples (or labels) is 1.

    Normalizing over examples keeps the loss scale, and so the effective learning rate, comparable to `none`.
    Absent classes get weight 0 in the normalization and 1 in the loss (they never appear as positives).
    """
    counts = train.class_counts.astype(np.float64)
    w = np.ones_like(counts)
    present = counts > 0
    if present.any():
        w[present] = (counts.max() / counts[present]) ** beta
        mean = (w[present] * counts[present]).sum() / counts[present].sum()
        w[present] /= mean
    return w


@register_method
class ClassWeighted(Method):
    """Per-class loss weights (n_max/n_j)^β, mean 1: CE weighted by the example's class, BCE on positives.

    Single-label: each example's cross-entropy is weighted by its class's w_j. Multi-label: each class's positive
    BCE terms are weighted by w_j (torch's `pos_weight` form) and negatives keep weight 1, so that, as with
    oversampling, rare classes' positives count more; the weights are normalized so that the mean weight over
    positive labels is 1.
    """

    name = "class_weighted"
    paper = "cost-sensitive re-weighting, e.g. King & Zeng 2001; Cui et al. 2019 (β=1 is inverse frequency)"
    params = {"beta": Param(float, 1.0, "weighting strength: 0 none, 1 inverse frequency", min=0.0, max=4.0)}

    def setup(self, train: TrainInfo) -> None:
        super().setup(train)
        self.weights = class_loss_weights(train, self.beta)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        w = self.on(logits, self.weights)
        if targets.dtype.is_floating_point:
            per = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
            return (per * (1.0 + (w - 1.0) * targets)).mean()  # soft targets (MixUp) interpolate the weight
        # mean of w_y * CE, not torch's weighted mean (which divides by the sum of weights and undoes the scale)
        return (F.cross_entropy(logits, targets, reduction="none") * w[targets]).mean()
