"""Section `metrics`: exact AP / AUC / d' (benchmark.core.metrics) vs scikit-learn and torchmetrics."""
from __future__ import annotations

import math
import time
import warnings
from typing import Any, Optional

import numpy as np

from benchmark.core.metrics import multilabel_metrics

from .common import best_time, fmt_s, fmt_x, make_multilabel_problem, make_weights, peak_memory, print_table


def sklearn_ap_auc(y: np.ndarray, scores: np.ndarray, w: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-class AP and ROC AUC with scikit-learn, one column at a time; NaN where a class cannot be scored."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    n, C = y.shape
    live = np.ones(n, dtype=bool) if w is None else w > 0
    ap = np.full(C, np.nan)
    auc = np.full(C, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for j in range(C):
            yj = y[:, j]
            n_pos = np.count_nonzero(yj & live)
            if n_pos == 0:
                continue
            ap[j] = average_precision_score(yj, scores[:, j], sample_weight=w)
            if n_pos < np.count_nonzero(live):
                auc[j] = roc_auc_score(yj, scores[:, j], sample_weight=w)
    return ap, auc


def torchmetrics_ap(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-class exact AP with torchmetrics' MultilabelAveragePrecision (thresholds=None); no sample weights."""
    import torch
    from torchmetrics.classification import MultilabelAveragePrecision

    metric = MultilabelAveragePrecision(num_labels=y.shape[1], average="none", thresholds=None)
    metric.update(torch.from_numpy(scores), torch.from_numpy(y).long())
    return metric.compute().numpy().astype(np.float64)


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if not np.array_equal(np.isfinite(a), np.isfinite(b)):
        return math.inf  # they disagree on which classes can be scored
    return float(np.max(np.abs(a[ok] - b[ok]))) if ok.any() else 0.0


def float64_logits(scores: np.ndarray) -> np.ndarray:
    """Prior-adjusted float64 logits of float32 probabilities: like the engine's scores, not float32-exact."""
    p = np.clip(scores.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p) - np.log(np.linspace(0.001, 0.4, scores.shape[1]))


def bench_metrics(large: bool = False) -> list[dict[str, Any]]:
    """Ours (AP + AUC + d' for all classes) vs sklearn (AP + AUC) vs torchmetrics (AP only), long-tailed data."""
    sizes = [(20_000, 527)] + ([(200_000, 527)] if large else [])
    rows: list[dict[str, Any]] = []
    for n, C in sizes:
        y, s32 = make_multilabel_problem(n, C, seed=0)
        w_all = make_weights(n, seed=1)
        kinds = [("float32 tied", s32)]
        if n <= 50_000:  # the engine's own path; sklearn alone would add 2 minutes at the large size
            kinds.append(("float64 logits", float64_logits(make_multilabel_problem(n, C, seed=0, ties=False)[1])))
        for kind, s in kinds:
            for weighted in (False, True):
                rows.append(_bench_metrics_case(y, s, w_all if weighted else None, kind,
                                                torch=not weighted and kind.startswith("float32")))
    cols = [
        "n x C",
        "scores",
        "weights",
        "ours s",
        "sklearn s",
        "sklearn/ours",
        "torchmetrics AP s",
        "tm/ours",
        "max|ours-sk|",
        "max|ours-tm| AP",
        "peak mem / scores",
    ]
    print_table(
        "metrics: ours = multilabel_metrics (AP+AUC+d', all classes, exact; best of 5, 2 at the large size); "
        "sklearn = average_precision_score + roc_auc_score per class (1 run); torchmetrics = "
        "MultilabelAveragePrecision(thresholds=None), AP only, no weights (1 run); float32 tied = probabilities "
        "rounded to 2 decimals; peak mem = tracemalloc peak of ours / score matrix bytes",
        rows,
        cols,
    )
    return rows


def _bench_metrics_case(y: np.ndarray, s: np.ndarray, w: Optional[np.ndarray], kind: str,
                        torch: bool) -> dict[str, Any]:
    n, C = y.shape
    ours_res = multilabel_metrics(y, s, w)
    t_ours = best_time(lambda: multilabel_metrics(y, s, w), repeat=5 if n <= 50_000 else 2)
    mem = peak_memory(lambda: multilabel_metrics(y, s, w))
    t0 = time.perf_counter()
    sk_ap, sk_auc = sklearn_ap_auc(y, s, w)
    t_sk = time.perf_counter() - t0
    ap = np.array([np.nan if v is None else v for v in ours_res["per_class"]["AP"]])
    auc = np.array([np.nan if v is None else v for v in ours_res["per_class"]["AUC"]])
    diff = max(_max_diff(ap, sk_ap), _max_diff(auc, sk_auc))
    t_tm: Optional[float] = None
    tm_diff: Optional[float] = None
    if torch:
        try:
            t0 = time.perf_counter()
            tm_ap = torchmetrics_ap(y, s)  # one run: it takes seconds to minutes
            t_tm = time.perf_counter() - t0
            tm_diff = _max_diff(ap, tm_ap)
        except ImportError:
            pass
    return {
        "n x C": f"{n} x {C}",
        "scores": kind,
        "weights": "no" if w is None else "yes",
        "ours s": fmt_s(t_ours),
        "sklearn s": fmt_s(t_sk),
        "sklearn/ours": fmt_x(t_sk / t_ours),
        "torchmetrics AP s": fmt_s(t_tm),
        "tm/ours": fmt_x(None if t_tm is None else t_tm / t_ours),
        "max|ours-sk|": f"{diff:.1e}",
        "max|ours-tm| AP": None if tm_diff is None else f"{tm_diff:.1e}",
        "peak mem / scores": f"{mem / s.nbytes:.2f}",
        "_ours_s": t_ours,
        "_sklearn_s": t_sk,
        "_torchmetrics_s": t_tm,
        "_max_abs_diff": diff,
        "_peak_mem_ratio": mem / s.nbytes,
    }
