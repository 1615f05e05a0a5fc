"""Logit adjustment (Menon et al. 2021, "Long-tail learning via logit adjustment", ICLR, arXiv 2007.07314)."""
import numpy as np
import torch
import torch.nn.functional as F

from benchmark import Method, Param, register_method
from benchmark.method import TrainInfo

MIN_COUNT = 0.5  # a class absent from training counts as half an example: its log prior stays finite


def log_prior(train: TrainInfo) -> np.ndarray:
    """(C,) log π_j = log(n_j / N), counts floored at half an example."""
    counts = np.maximum(train.class_counts.astype(np.float64), MIN_COUNT)
    return np.log(counts) - np.log(max(train.n_examples, 1))


@register_method
class LogitAdjust(Method):
    """Subtract τ·log π_j from the logits at evaluation (post-hoc), or add it inside the loss during training.

    Post-hoc (the default) trains nothing: it re-scores the baseline's stored logits of the same seed, so a τ sweep
    costs no retraining. Single-label: the softmax logits; multi-label: each class's sigmoid logit with π_j its
    training prevalence. A per-class shift cannot change a class's ranking, so on multi-label ranking metrics (mAP,
    AUC, d′) the post-hoc form equals the baseline exactly; the loss form changes training and so the model.
    """

    name = "logit_adjust"
    paper = "Menon et al. 2021, arXiv 2007.07314"
    params = {
        "tau": Param(float, 1.0, "scaling τ of the log prior (0: no adjustment)", min=0.0, max=10.0),
        "form": Param(str, "posthoc", "posthoc: adjust the baseline's stored logits; loss: logit-adjusted loss",
                      choices=("posthoc", "loss")),
    }

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self.posthoc = self.form == "posthoc"  # per instance: the loss form trains its own model

    def setup(self, train: TrainInfo) -> None:
        super().setup(train)
        self.shift = self.tau * log_prior(train)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        if self.posthoc:
            return super().loss(logits, targets, progress)
        z = logits + self.on(logits, self.shift)
        if targets.dtype.is_floating_point:
            return F.binary_cross_entropy_with_logits(z, targets)
        return F.cross_entropy(z, targets)

    def adjust_logits(self, logits: np.ndarray) -> np.ndarray:
        return logits - self.shift if self.posthoc else logits
