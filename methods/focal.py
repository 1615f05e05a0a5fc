"""Focal loss (Lin et al. 2017, "Focal Loss for Dense Object Detection", arXiv 1708.02002)."""
from typing import Optional

import torch
import torch.nn.functional as F

from benchmark import Method, Param, register_method


def sigmoid_focal(logits: torch.Tensor, targets: torch.Tensor, gamma: float, alpha: Optional[float]) -> torch.Tensor:
    """Per-element FL = -α_t (1 - p_t)^γ log p_t on sigmoid probabilities (multi-label)."""
    ce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    p = torch.sigmoid(logits)
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * (1 - p_t).clamp_min(0) ** gamma
    if alpha is not None:
        loss = loss * (alpha * targets + (1 - alpha) * (1 - targets))
    return loss


def softmax_focal(logits: torch.Tensor, targets: torch.Tensor, gamma: float, alpha: Optional[float]) -> torch.Tensor:
    """Per-example FL on the softmax probability of the true class (single-label); α scales every term."""
    logp_t = F.log_softmax(logits, dim=1).gather(1, targets[:, None]).squeeze(1)
    loss = -((1 - logp_t.exp()).clamp_min(0) ** gamma) * logp_t
    return loss * alpha if alpha is not None else loss


@register_method
class Focal(Method):
    """Down-weights easy examples by (1 - p_t)^γ; γ=0 (and no α) is plain BCE / cross-entropy."""

    name = "focal"
    paper = "Lin et al. 2017, arXiv 1708.02002"
    params = {
        "gamma": Param(float, 2.0, "focusing parameter γ", min=0.0, max=10.0),
        "alpha": Param(float, None, "optional positive-class weight α in [0, 1] (sigmoid form); none by default",
                       min=0.0, max=1.0),
    }

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        if targets.dtype.is_floating_point:
            return sigmoid_focal(logits, targets, self.gamma, self.alpha).mean()
        return softmax_focal(logits, targets, self.gamma, self.alpha).mean()
