"""Logit adjustment (Menon et al. 2021, "Long-tail learning via logit adjustment", ICLR, arXiv 2007.07314)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from benchmark import Method, Param, register_method
from benchmark.method import TrainInfo

if TYPE_CHECKING:  # torch loads with a run's first loss, so that listing methods stays torch-free
    import torch


@register_method
class LogitAdjust(Method):
    """Subtract τ·log π_j from the logits at evaluation (post-hoc), or add it inside the loss during training.

    Post-hoc (the default) trains nothing: it re-scores the baseline's stored logits of the same seed, so a τ sweep
    costs no retraining. Single-label: the softmax logits and log π_j. Multi-label: each class's sigmoid logit is a
    binary problem with priors π_j and 1 − π_j, so the shift is τ·log(π_j / (1 − π_j)), the log prior odds (the same
    shift as `balanced_softmax`, which this loss form equals at τ = 1). A per-class shift cannot change a class's
    ranking, so on multi-label ranking metrics (mAP, AUC, d′) the post-hoc form equals the baseline exactly; the
    loss form changes training and so the model. The loss is `benchmark.losses.LogitAdjustedLoss`.
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
        from benchmark.losses import LogitAdjustedLoss, prior_shift

        self.criterion = LogitAdjustedLoss.from_counts(train.class_counts, train.n_examples, self.tau)
        self.shift = self.tau * prior_shift(train.class_counts, train.n_examples, train.multi_label)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        if self.posthoc:
            return super().loss(logits, targets, progress)
        return self.criterion.to(logits.device)(logits, targets)

    def adjust_logits(self, logits: np.ndarray) -> np.ndarray:
        return logits - self.shift if self.posthoc else logits
