"""Performance benchmarks, one section per component: ``python -m benchmark.perf [--section NAME] [--large]``.

Every section measures its competitors in the same process, one after the other, and prints a table, so ratios
are comparable even on a noisy machine; absolute seconds are not (rerun the baseline whenever you compare).
Sections are functions ``bench_<name>(large: bool) -> list[dict]`` registered in ``SECTIONS``; add one there.

torch / torchmetrics are imported only inside the section that needs them.
"""
from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import time
import tracemalloc
import warnings
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .metrics import multilabel_metrics

# ----------------------------------------------------------------------------------------------------------------
# test problems


def make_multilabel_problem(n: int, C: int, seed: int, ties: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A long-tailed multi-label problem: (y_true (n, C) bool, scores (n, C) float32).

    Class prevalence follows a power law (rank^-1, AudioSet-like: the head class in ~40% of examples, the tail in
    under 0.1%) scaled to ~2.7 labels per example. Scores are sigmoid(noisy labels); with ``ties`` they are rounded
    to 2 decimals, so every class has many tied scores (the hard case for exact AP/AUC).
    """
    rng = np.random.default_rng(seed)
    prevalence = 1.0 / np.arange(1, C + 1)
    prevalence *= 2.7 / prevalence.sum()
    np.minimum(prevalence, 0.95, out=prevalence)
    y = rng.random((n, C), dtype=np.float32) < prevalence.astype(np.float32)
    logit = rng.standard_normal((n, C), dtype=np.float32)
    logit *= 1.5
    logit += np.where(y, np.float32(1.5), np.float32(-1.5))
    scores = 1.0 / (1.0 + np.exp(-logit))
    if ties:
        np.round(scores, 2, out=scores)
    return y, scores


def make_weights(n: int, seed: int, zero_frac: float = 0.1) -> np.ndarray:
    """Importance-style example weights: exponential, with a fraction of exact zeros (examples left out)."""
    rng = np.random.default_rng(seed)
    w = rng.exponential(size=n)
    w[rng.random(n) < zero_frac] = 0.0
    return w


# ----------------------------------------------------------------------------------------------------------------
# measurement helpers


def best_time(fn: Callable[[], Any], repeat: int = 3) -> float:
    """Best wall time of `repeat` calls, in seconds (the minimum is the least noisy estimate of the cost)."""
    best = math.inf
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def peak_memory(fn: Callable[[], Any]) -> int:
    """Peak bytes allocated (numpy buffers included, via tracemalloc) while `fn` runs, beyond what existed before."""
    gc.collect()
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    if not was_tracing:
        tracemalloc.stop()
    return peak


def print_table(title: str, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """A plain fixed-width table; None prints as '-'."""
    cells = [[("-" if r.get(c) is None else str(r[c])) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(c.rjust(wd) for c, wd in zip(columns, widths)))
    print("  ".join("-" * wd for wd in widths))
    for row in cells:
        print("  ".join(v.rjust(wd) for v, wd in zip(row, widths)))


def _fmt_s(x: Optional[float]) -> Optional[str]:
    return None if x is None else f"{x:.3f}"


def _fmt_x(x: Optional[float]) -> Optional[str]:
    return None if x is None else f"{x:.1f}x"


# ----------------------------------------------------------------------------------------------------------------
# section: metrics


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
        "ours s": _fmt_s(t_ours),
        "sklearn s": _fmt_s(t_sk),
        "sklearn/ours": _fmt_x(t_sk / t_ours),
        "torchmetrics AP s": _fmt_s(t_tm),
        "tm/ours": _fmt_x(None if t_tm is None else t_tm / t_ours),
        "max|ours-sk|": f"{diff:.1e}",
        "max|ours-tm| AP": None if tm_diff is None else f"{tm_diff:.1e}",
        "peak mem / scores": f"{mem / s.nbytes:.2f}",
        "_ours_s": t_ours,
        "_sklearn_s": t_sk,
        "_torchmetrics_s": t_tm,
        "_max_abs_diff": diff,
        "_peak_mem_ratio": mem / s.nbytes,
    }


SECTIONS: dict[str, Callable[..., list[dict[str, Any]]]] = {"metrics": bench_metrics}


def _environment() -> str:
    from importlib.metadata import PackageNotFoundError, version  # reads metadata; imports nothing heavy

    parts = [f"python {platform.python_version()}", f"numpy {np.__version__}", f"cpus {os.cpu_count()}"]
    for dist in ("scikit-learn", "torch", "torchmetrics"):
        try:
            parts.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist} missing")
    return ", ".join(parts)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the chosen section (default: all) and print one table per section."""
    ap = argparse.ArgumentParser(prog="python -m benchmark.perf", description=__doc__.splitlines()[0])
    ap.add_argument("--section", choices=sorted(SECTIONS), action="append",
                    help="section to run (repeatable); default: all")
    ap.add_argument("--large", action="store_true",
                    help="also run the large sizes (metrics: 200,000 x 527; sklearn alone takes ~1 min there)")
    args = ap.parse_args(argv)
    print(_environment())
    for name in args.section or sorted(SECTIONS):
        SECTIONS[name](large=args.large)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
