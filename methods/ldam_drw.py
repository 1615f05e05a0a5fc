"""LDAM loss with deferred re-weighting (Cao et al. 2019, NeurIPS, arXiv 1906.07413)."""
import numpy as np
import torch
import torch.nn.functional as F

from benchmark import Method, Param, register_method
from benchmark.method import TrainInfo
from methods.class_balanced import effective_number_weights


def ldam_margins(counts: np.ndarray, max_m: float) -> np.ndarray:
    """Δ_j ∝ n_j^(−1/4), scaled so that the rarest present class gets `max_m`; absent classes get `max_m`."""
    n = np.asarray(counts, dtype=np.float64)
    m = np.full(n.shape, float(max_m))
    present = n > 0
    if present.any():
        raw = n[present] ** -0.25
        m[present] = raw * (max_m / raw.max())
    return m


@register_method
class LDAMDRW(Method):
    """Label-distribution-aware margins Δ_j ∝ n_j^(−1/4), then class-balanced weights late in training.

    Cross-entropy of s·(z − Δ_y·onehot); after `drw_start` of the budget, class-balanced weights (effective number,
    β = `beta_cb`) multiply each example's loss (deferred re-weighting).

    Multi-label analog: BCE of s·(z_j − Δ_j·y_j), positives need a margin, and DRW weights positives by w_j as
    `class_balanced` does. Cao et al. use s = 30 on a cosine-normalized head; with a plain linear head (the
    tasks' models) s = 1 keeps the logit scale.
    """

    name = "ldam_drw"
    paper = "Cao et al. 2019, arXiv 1906.07413"
    params = {
        "max_m": Param(float, 0.5, "largest margin (the rarest class's)", min=0.0, max=10.0),
        "s": Param(float, 1.0, "logit scale (30 in the paper, for a cosine head)", min=0.01, max=100.0),
        "drw_start": Param(float, 0.8, "fraction of the budget after which re-weighting starts (1: never)",
                           min=0.0, max=1.0),
        "beta_cb": Param(float, 0.9999, "β of the class-balanced DRW weights", min=0.0, max=1.0),
    }

    def setup(self, train: TrainInfo) -> None:
        super().setup(train)
        self.margins = ldam_margins(train.class_counts, self.max_m)
        self.weights = effective_number_weights(train.class_counts, self.beta_cb)

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        m = self.on(logits, self.margins)
        drw = progress >= self.drw_start
        if targets.dtype.is_floating_point:
            per = F.binary_cross_entropy_with_logits(self.s * (logits - m * targets), targets, reduction="none")
            if drw:
                per = per * (1.0 + (self.on(logits, self.weights) - 1.0) * targets)
            return per.mean()
        z = logits - F.one_hot(targets, logits.shape[1]).to(logits.dtype) * m
        per = F.cross_entropy(self.s * z, targets, reduction="none")
        if drw:
            per = per * self.on(logits, self.weights)[targets]
        return per.mean()
