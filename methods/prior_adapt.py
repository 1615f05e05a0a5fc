"""Prior adaptation to the deployment data (Saerens, Latinne & Decaestecker 2002; Alexandari et al. 2020)."""
from typing import Mapping

import numpy as np

from benchmark import Method, Param, register_method
from benchmark.core.labelshift import (MULTI_LABEL_METHODS, SINGLE_LABEL_METHODS, adapt_logits, estimate_prior,
                                       fit_bcts, fit_platt)


@register_method
class PriorAdapt(Method):
    """Post-hoc: re-score the baseline for the class prior estimated on the task's unlabeled deployment split.

    Trains nothing. The prior q̂ is estimated from the baseline's validation logits + labels and deployment logits
    (`benchmark.core.labelshift.estimate_prior`, never deployment labels). With `calibrate` (default) the scores
    are the EM-corrected posteriors: BCTS-calibrated log-posteriors + log q̂ − log p_val (multi-label: Platt per
    class, + logit q̂ − logit π_val); without, the raw logits + log q̂ − log p_train. Answers "does a free
    correction to my deployment prior beat retraining with balancing?". On a task without a deployment split the
    scores are the baseline's (a warning says so). A per-class shift cannot change a class's ranking, so on
    multi-label ranking metrics it equals the baseline.
    """

    name = "prior_adapt"
    paper = "Saerens et al. 2002, Neural Computation 14(1); Alexandari et al. 2020, arXiv 1901.06852"
    posthoc = True
    params = {
        "estimator": Param(str, "mlls", "prior estimator: mlls (default), bbse, rlls (single-label) / acc "
                           "(multi-label)", choices=("mlls", "bbse", "rlls", "acc")),
        "calibrate": Param(bool, True, "adapt the calibrated posteriors (EM's own correction) instead of the raw "
                           "logits"),
    }

    def check_task(self, multi_label: bool, task_name: str) -> None:
        from benchmark import UserError

        allowed = MULTI_LABEL_METHODS if multi_label else SINGLE_LABEL_METHODS
        if self.estimator not in allowed:
            kind = "multi" if multi_label else "single"
            raise UserError(f"method 'prior_adapt': estimator '{self.estimator}' is not a {kind}-label estimator "
                            f"(task '{task_name}'); choose one of {', '.join(allowed)}")
        super().check_task(multi_label, task_name)

    def posthoc_scores(self, stored: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        pool, val = np.asarray(stored["pool_logits"], np.float64), np.asarray(stored["val_logits"], np.float64)
        if "deploy_logits" not in stored:
            self.setup_warnings.append("method 'prior_adapt': the task has no deployment split (deploy_prior=... "
                                       "or --deploy): scores left as the baseline's")
            return pool, val
        train = self.train
        assert train is not None
        multi = train.multi_label
        counts = train.class_counts.astype(np.float64)
        p_train = counts / max(train.n_examples, 1) if multi else counts / max(counts.sum(), 1.0)
        yv = stored["val_labels"]
        q = estimate_prior(val, yv, stored["deploy_logits"], p_train, multi, self.estimator, n_boot=0).prior
        if not self.calibrate:
            return adapt_logits(pool, q, p_train, multi), adapt_logits(val, q, p_train, multi)
        live = p_train > 0
        if multi:
            cal = fit_platt(val, yv)
            p_src = np.asarray(yv, dtype=np.float64).mean(axis=0)
        else:
            cal = fit_bcts(val, yv)
            p_src = np.bincount(np.asarray(yv, np.int64), minlength=counts.size) / max(len(yv), 1)

        def adapt(z: np.ndarray) -> np.ndarray:
            s = z * cal.scale + cal.bias  # calibrated logits (log-posteriors up to a constant per row)
            return adapt_logits(s, np.where(live, q, 0.0), np.where(live, p_src, 0.0), multi)

        return adapt(pool), adapt(val)
