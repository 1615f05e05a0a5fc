"""Balanced softmax (Ren et al. 2020, "Balanced Meta-Softmax for Long-Tailed Visual Recognition", arXiv 2007.10740)."""
import numpy as np
import torch
import torch.nn.functional as F

from benchmark import Method, register_method
from benchmark.method import TrainInfo
from methods.logit_adjust import MIN_COUNT, log_prior


def log_odds_prior(train: TrainInfo) -> np.ndarray:
    """(C,) log(n_j / (N − n_j)), both counts floored at half an example (absent or ubiquitous classes)."""
    n = train.class_counts.astype(np.float64)
    return np.log(np.maximum(n, MIN_COUNT)) - np.log(np.maximum(train.n_examples - n, MIN_COUNT))


@register_method
class BalancedSoftmax(Method):
    """Train on logits shifted by the log prior, evaluate the raw logits (the shift models the training prior).

    Single-label: cross-entropy of z_j + log π_j. Multi-label: the sigmoid analog, BCE of z_j + log(n_j / (N − n_j)),
    the log prior odds of each class. Equals the loss form of logit adjustment at τ = 1 for single-label tasks.
    """

    name = "balanced_softmax"
    paper = "Ren et al. 2020, arXiv 2007.10740"
    params = {}

    def setup(self, train: TrainInfo) -> None:
        super().setup(train)
        self.shift = log_odds_prior(train) if train.multi_label else log_prior(train)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        z = logits + self.on(logits, self.shift)
        if targets.dtype.is_floating_point:
            return F.binary_cross_entropy_with_logits(z, targets)
        return F.cross_entropy(z, targets)
