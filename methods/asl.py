"""Asymmetric loss (Ridnik et al. 2021, "Asymmetric Loss For Multi-Label Classification", ICCV, arXiv 2009.14119)."""
import torch
import torch.nn.functional as F

from benchmark import Method, Param, register_method


def asymmetric_loss(logits: torch.Tensor, targets: torch.Tensor, gamma_pos: float, gamma_neg: float,
                    clip: float) -> torch.Tensor:
    """Per element: −y (1 − p)^γ+ log p − (1 − y) p_m^γ− log(1 − p_m), p_m = max(p − m, 0)."""
    p = torch.sigmoid(logits)
    log_p = F.logsigmoid(logits)
    if clip > 0:
        p_m = (p - clip).clamp_min(0)
        log_not = torch.log((torch.sigmoid(-logits) + clip).clamp_max(1.0))  # log(1 − p_m) ≥ log(clip): finite
    else:
        p_m, log_not = p, F.logsigmoid(-logits)
    pos = (1 - p) ** gamma_pos * log_p
    neg = p_m ** gamma_neg * log_not
    return -(targets * pos + (1 - targets) * neg)


@register_method
class ASL(Method):
    """Focusing with separate γ for positives and negatives plus a probability margin that discards easy negatives.

    The paper sums over classes; this mean over elements keeps BCE's scale (a constant factor apart).
    """

    name = "asl"
    paper = "Ridnik et al. 2021, arXiv 2009.14119"
    multi_label = True
    single_label = False
    params = {
        "gamma_neg": Param(float, 4.0, "focusing γ− of negatives", min=0.0, max=20.0),
        "gamma_pos": Param(float, 0.0, "focusing γ+ of positives", min=0.0, max=20.0),
        "clip": Param(float, 0.05, "probability margin m: negatives with p ≤ m are discarded", min=0.0, max=0.99),
    }

    def loss(self, logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        return asymmetric_loss(logits, targets, self.gamma_pos, self.gamma_neg, self.clip).mean()
