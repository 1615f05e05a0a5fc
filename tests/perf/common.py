"""Shared pieces of the perf harness: test problems, timers, memory peaks and tables (tabulate)."""
from __future__ import annotations

import gc
import math
import os
import platform
import time
import tracemalloc
from typing import Any, Callable, Optional, Sequence

import numpy as np
from tabulate import tabulate


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


def best_time(fn: Callable[[], Any], repeat: int = 3) -> float:
    """Best wall time of `repeat` calls, in seconds (the minimum is the least noisy estimate of the cost)."""
    best = math.inf
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def best_times(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, float]:
    """(best wall, best CPU) seconds of `repeat` calls. CPU time (this process, all threads) is the steadier
    figure on a shared machine; for single-threaded code it is what the wall time would be on an idle one."""
    wall = cpu = math.inf
    for _ in range(repeat):
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu


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
    """Print `title`, then `columns` of `rows` as a GitHub-markdown table (tabulate); None prints as '-'.

    >>> print_table("t", [{"a": 1, "b": None}], ["a", "b"])
    <BLANKLINE>
    t
    | a   | b   |
    |-----|-----|
    | 1   | -   |
    """
    cells = [[r.get(c) for c in columns] for r in rows]
    print(f"\n{title}")
    print(tabulate(cells, headers=list(columns), tablefmt="github", missingval="-", disable_numparse=True))


def fmt_s(x: Optional[float]) -> Optional[str]:
    return None if x is None else f"{x:.3f}"


def fmt_x(x: Optional[float]) -> Optional[str]:
    return None if x is None else f"{x:.1f}x"


def load_avg() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "-"


def environment() -> str:
    from importlib.metadata import PackageNotFoundError, version  # reads metadata; imports nothing heavy

    parts = [f"python {platform.python_version()}", f"numpy {np.__version__}", f"cpus {os.cpu_count()}"]
    for dist in ("scikit-learn", "torch", "torchmetrics"):
        try:
            parts.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist} missing")
    return ", ".join(parts)
