"""LDAM loss with deferred re-weighting (Cao et al. 2019, NeurIPS, arXiv 1906.07413)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from benchmark import Method, Param, register_method
from benchmark.method import TrainInfo

if TYPE_CHECKING:  # torch loads with a run's first loss, so that listing methods stays torch-free
    import torch


@register_method
class LDAMDRW(Method):
    """Label-distribution-aware margins Δ_j ∝ n_j^(−1/4), then class-balanced weights late in training.

    Cross-entropy of s·(z − Δ_y·onehot); after `drw_start` of the budget, class-balanced weights (effective number,
    β = `beta_cb`, Σ_j w_j = C) weight each example's loss, a weighted mean as in the authors' code (deferred
    re-weighting). s = 30 as the paper; the paper's head is cosine-normalized, the tasks' heads are plain linear
    layers, on which s = 30 scales the logits (training stayed finite on all three offline tasks, 2 seeds each).

    Multi-label analog: BCE of s·(z_j − Δ_j·y_j), positives need a margin, and DRW weights positives by w_j as
    `class_balanced` does. The loss is `benchmark.losses.LDAMLoss`.
    """

    name = "ldam_drw"
    paper = "Cao et al. 2019, arXiv 1906.07413"
    params = {
        "max_m": Param(float, 0.5, "largest margin (the rarest class's)", min=0.0, max=10.0),
        "s": Param(float, 30.0, "logit scale (the paper's 30, for its cosine head)", min=0.01, max=100.0),
        "drw_start": Param(float, 0.8, "fraction of the budget after which re-weighting starts (1: never)",
                           min=0.0, max=1.0),
        "beta_cb": Param(float, 0.9999, "β of the class-balanced DRW weights", min=0.0, max=1.0),
    }

    def setup(self, train: TrainInfo) -> None:
        super().setup(train)
        from benchmark.losses import LDAMLoss

        self.criterion = LDAMLoss.from_counts(train.class_counts, self.max_m, self.s, self.beta_cb)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        self.criterion.reweight = progress >= self.drw_start
        return self.criterion.to(logits.device)(logits, targets)
