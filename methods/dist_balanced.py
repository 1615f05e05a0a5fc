"""Distribution-balanced loss for long-tailed multi-label classification (Wu et al. 2020, ECCV, arXiv 2007.09654)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from benchmark import Method, Param, register_method
from benchmark.method import TrainInfo

if TYPE_CHECKING:  # torch loads with a run's first loss, so that listing methods stays torch-free
    import torch


@register_method
class DistBalanced(Method):
    """Re-balanced weights times a focal BCE with negative-tolerant regularization.

    The weight r̂ maps the ratio of class-level to instance-level sampling probability; logits are shifted by
    ν_j = κ·log(n_j / (N − n_j)) / λ and negatives' loss is (1/λ)·log(1 + exp(λ z)).

    Signs and defaults follow the authors' code (mllt ResampleLoss, COCO-LT config: α 0.1, β 10, μ 0.2, κ 0.05,
    λ 2, focal γ 2 scaled by 2). The loss is `benchmark.losses.DistributionBalancedLoss`.
    """

    name = "dist_balanced"
    paper = "Wu et al. 2020, arXiv 2007.09654"
    multi_label = True
    single_label = False
    params = {
        "alpha": Param(float, 0.1, "smoothing α: the smallest weight", min=0.0, max=10.0),
        "beta": Param(float, 10.0, "slope β of the weight mapping", min=0.0, max=100.0),
        "mu": Param(float, 0.2, "centre μ of the weight mapping", min=0.0, max=10.0),
        "kappa": Param(float, 0.05, "κ: scale of the prior-based logit shift", min=0.0, max=10.0),
        "lam": Param(float, 2.0, "λ: negative-tolerant scale of negatives' logits", min=0.01, max=100.0),
        "gamma": Param(float, 2.0, "focal γ (0: plain BCE)", min=0.0, max=10.0),
        "scale": Param(float, 2.0, "constant factor of the focal term (the code's balance_param)", min=0.0,
                       max=100.0),
    }

    def setup(self, train: TrainInfo) -> None:
        super().setup(train)
        from benchmark.losses import DistributionBalancedLoss

        self.criterion = DistributionBalancedLoss.from_counts(
            train.class_counts, train.n_examples, kappa=self.kappa, alpha=self.alpha, beta=self.beta, mu=self.mu,
            lam=self.lam, gamma=self.gamma, scale=self.scale)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        return self.criterion.to(logits.device)(logits, targets)
