"""Distribution-balanced loss for long-tailed multi-label classification (Wu et al. 2020, ECCV, arXiv 2007.09654)."""
import numpy as np
import torch
import torch.nn.functional as F

from benchmark import Method, Param, register_method
from benchmark.method import TrainInfo
from methods.balanced_softmax import log_odds_prior


def rebalance_weights(targets: torch.Tensor, inv_counts: torch.Tensor, alpha: float, beta: float,
                      mu: float) -> torch.Tensor:
    """r̂_ki = α + σ(β (r_ki − μ)), r_ki = (1/n_i) / Σ_{j ∈ labels of k} 1/n_j.

    r is the class-level over the instance-level sampling probability. `inv_counts` holds 1/n_i (+inf for absent
    classes); an example without labels has r = +inf, so its weight is α + 1.
    """
    rate = targets @ torch.where(torch.isfinite(inv_counts), inv_counts, torch.zeros_like(inv_counts))
    r = inv_counts[None, :] / rate[:, None]  # x / 0 = +inf: σ(+inf) = 1, no NaN
    return alpha + torch.sigmoid(beta * (r - mu))


@register_method
class DistBalanced(Method):
    """Re-balanced weights times a focal BCE with negative-tolerant regularization.

    The weight r̂ maps the ratio of class-level to instance-level sampling probability; logits are shifted by
    ν_j = κ·log(n_j / (N − n_j)) / λ and negatives' loss is (1/λ)·log(1 + exp(λ z)).

    Signs and defaults follow the authors' code (mllt ResampleLoss, COCO-LT config: α 0.1, β 10, μ 0.2, κ 0.05,
    λ 2, focal γ 2 scaled by 2).
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
        n = train.class_counts.astype(np.float64)
        self.inv_counts = np.where(n > 0, 1.0 / np.maximum(n, 1.0), np.inf)
        self.nu = self.kappa * log_odds_prior(train) / self.lam

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        w = rebalance_weights(targets, self.on(logits, self.inv_counts), self.alpha, self.beta, self.mu)
        z = logits + self.on(logits, self.nu)
        lam, g = self.lam, self.gamma
        pos = F.softplus(-z) * torch.sigmoid(-z) ** g  # −log σ(z) · (1 − σ(z))^γ
        neg = F.softplus(lam * z) / lam * torch.sigmoid(lam * z) ** g  # (1/λ) softplus(λz) · (1 − σ(−λz))^γ
        return (self.scale * w * (targets * pos + (1 - targets) * neg)).mean()
