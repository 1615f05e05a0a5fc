"""τ-normalized classifier (Kang et al. 2020, "Decoupling Representation and Classifier...", arXiv 1910.09217)."""
from typing import Mapping

import numpy as np

from benchmark import Method, Param, UserError, register_method

NEEDED = ("pool_features", "val_features", "head_weight", "head_bias")


def tau_normalize(weight: np.ndarray, tau: float) -> np.ndarray:
    """W_j / ||W_j||^τ row by row; a zero row stays zero (its norm is floored at 1e-12)."""
    w = np.asarray(weight, dtype=np.float64)
    norms = np.maximum(np.linalg.norm(w, axis=1), 1e-12)
    return w / norms[:, None] ** tau


@register_method
class TauNorm(Method):
    """Post-hoc: rescale each class's head weights by 1 / ||W_j||^τ and re-score the baseline's stored features.

    Trains nothing: the baseline `none` run of the same seed stores its linear head and the head's inputs on the
    evaluation pool and validation split, so a τ sweep costs a matrix product. As in the authors' code the bias is
    dropped (keep_bias=true keeps it; then τ = 0 reproduces the baseline). For multi-label ranking metrics a
    per-class rescaling changes nothing; they equal the baseline's when the bias is kept.
    """

    name = "tau_norm"
    paper = "Kang et al. 2020, arXiv 1910.09217"
    posthoc = True
    params = {
        "tau": Param(float, 1.0, "norm exponent τ (0: raw weights, 1: unit-norm class weights)", min=0.0, max=4.0),
        "keep_bias": Param(bool, False, "add the head's bias back (the paper drops it)"),
    }

    def posthoc_scores(self, stored: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        missing = [k for k in NEEDED if k not in stored]
        if missing:
            raise UserError(f"method '{self.name}' needs the baseline's linear `.head` and its input features, "
                            f"which the baseline run did not store (no nn.Linear `.head`, too large, or an older "
                            f"run); rerun the baseline with --overwrite, or use a model with a linear `.head`")
        w = tau_normalize(stored["head_weight"], self.tau)
        b = np.asarray(stored["head_bias"], dtype=np.float64) if self.keep_bias else 0.0
        return (np.asarray(stored["pool_features"], dtype=np.float64) @ w.T + b,
                np.asarray(stored["val_features"], dtype=np.float64) @ w.T + b)
