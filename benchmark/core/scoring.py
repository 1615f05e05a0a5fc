"""Metrics of every evaluation view from one array of scores: the result JSON's `eval` / `val` entries.

One implementation for the engine (`benchmark.engine`, scores of a model it trained) and for `evaluate`
(`benchmark.predictions`, scores written by any training code). numpy only.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .metrics import metrics_for, softmax
from .views import View


def score_views(multi_label: bool, scores: np.ndarray, labels: np.ndarray, views: dict[str, View],
                per_class: bool = True, exclude: Optional[np.ndarray] = None) -> dict[str, Any]:
    """The result entry of every view: size, weighting, class counts, metrics and (optionally) per-class metrics.

    `scores` (n, C) are the evaluated logits (finite; a single-label task's go through a softmax here), `labels`
    (n,) class ids or (n, C) 0/1. `exclude` (C,) bool marks classes that are not scored (those absent from
    training): they are left out of the macro means and their per-class values are None; single-label examples
    of such classes are left out too.

    >>> import numpy as np
    >>> from benchmark.core.views import View
    >>> v = {"all": View("all", np.arange(4), None, "every example")}
    >>> out = score_views(False, np.array([[2., 0], [0, 1], [3, 0], [0, 2]]), np.array([0, 1, 0, 0]), v)
    >>> out["all"]["metrics"]["top1"], out["all"]["class_counts"]
    (0.75, [3.0, 1.0])
    """
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels)
    if scores.ndim != 2 or scores.shape[0] != labels.shape[0]:
        raise ValueError(f"scores must be (n, C) with n = len(labels) = {labels.shape[0]}, got {scores.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores contain NaN or inf")
    if exclude is not None and np.asarray(exclude).shape != (scores.shape[1],):
        raise ValueError(f"exclude must be ({scores.shape[1]},) bool, got shape {np.asarray(exclude).shape}")
    if not multi_label:
        scores = softmax(scores)
    out = {}
    for name, v in views.items():
        y, s = labels[v.indices], scores[v.indices]
        m = _scored_metrics(multi_label, y, s, v.weights, exclude)
        w = np.ones(v.indices.size) if v.weights is None else v.weights
        if multi_label:
            cc = (w @ y.astype(np.float64))
        else:
            cc = np.bincount(y, weights=w, minlength=scores.shape[1])
        entry = {"description": v.description, "n_examples": int(v.indices.size), "weighted": v.weights is not None,
                 "effective_n": round(v.effective_n, 2), "class_counts": [round(float(c), 3) for c in cc],
                 "n_classes_scored": m["n_classes_scored"],
                 "metrics": {k: val for k, val in m.items() if k not in ("per_class", "n_classes_scored")},
                 **({"info": v.info} if v.info else {})}
        if exclude is not None and exclude.any():
            entry["excluded_classes"] = np.flatnonzero(exclude).tolist()
            if not multi_label:
                entry["excluded_examples"] = int(exclude[y].sum())
        if per_class:
            entry["per_class"] = m["per_class"]
        out[name] = entry
    return out


def _scored_metrics(multi_label: bool, y: np.ndarray, s: np.ndarray, w: Optional[np.ndarray],
                    exclude: Optional[np.ndarray]) -> dict[str, Any]:
    """`metrics.metrics_for` over the classes not in `exclude`, per-class lists still indexed by class."""
    if exclude is None or not exclude.any():
        return metrics_for(multi_label, y, s, w)
    if multi_label:
        keep = ~exclude
        m = metrics_for(True, y[:, keep], s[:, keep], w)
        for key, vals in m["per_class"].items():
            full: list = [None] * exclude.size
            for j, val in zip(np.flatnonzero(keep).tolist(), vals):
                full[j] = val
            m["per_class"][key] = full
        return m
    rows = ~exclude[y]
    if not rows.any():  # nothing left to score: n/a everywhere
        return {"top1": None, "balanced_acc": None, "mAP": None, "n_classes_scored": 0,
                "per_class": {"recall": [None] * exclude.size, "AP": [None] * exclude.size}}
    return metrics_for(False, y[rows], s[rows], None if w is None else w[rows])
