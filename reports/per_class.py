"""Per-class mechanism: per-class Δ AP against the training count of the class, Spearman ρ with the log count,
and the many / medium / few bins."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

from benchmark.core.stats import Interval, spearman, summarize

from .analysis import Section, _get, _num
from .options import Options

@dataclass
class PerClass:
    view: str
    metric: str
    counts: list[float]  # training count per class
    delta: dict[str, list[Optional[float]]]  # method label -> mean over seeds of per-class Δ
    spearman: dict[str, tuple[Optional[float], Optional[float], int]]  # label -> (ρ, p, classes used)
    bins: list[tuple[str, str]]  # (bin name, description)
    bin_means: dict[str, dict[str, Optional[Interval]]]  # label -> bin -> mean Δ over the bin's classes
    bin_sizes: dict[str, int]


def shot_bins(counts: Sequence[float], many: float, few: float, given: bool = False) -> tuple[float, float, bool]:
    """(many threshold, few threshold, relative?): the fixed bins (> many, < few training examples) unless they
    leave a bin empty among the classes seen in training (digits-lt has no class > 100, synth-multilabel none
    < 20); then the terciles of the seen classes' counts, so each bin holds about a third of the classes.
    Thresholds the user `given` (--shot-bins) are kept as they are, an empty bin included.

    >>> shot_bins([1000, 300, 50, 30, 10, 5], 100, 20)
    (100, 20, False)
    >>> shot_bins([100, 77, 60, 46, 35, 27, 21, 16, 12, 10], 100, 20)
    (46.0, 21.0, True)
    >>> shot_bins([100, 77, 60, 46, 35, 27, 21, 16, 12, 10], 100, 20, given=True)
    (100, 20, False)
    """
    seen = sorted(float(c) for c in counts if c > 0)
    fixed = [sum(c > many for c in seen), sum(few <= c <= many for c in seen), sum(c < few for c in seen)]
    if given or len(seen) < 3 or all(fixed):
        return many, few, False
    import numpy as np

    lo, hi = (float(round(float(q))) for q in np.quantile(np.asarray(seen), [1 / 3, 2 / 3]))
    return hi, lo, True


def per_class_analysis(sec: Section, options: Options) -> Optional[PerClass]:
    """Per-class Δ vs training count (paper mechanism 3): Spearman ρ and many / medium / few bins. The metric is
    AP for multi-label tasks and recall for single-label ones, where balancing trades head-class recall for
    tail-class recall (per-class AP, a ranking metric, hides that trade)."""
    base = sec.baseline
    if base is None or not sec.methods:
        return None
    view = options.per_class_view or ("balanced" if "balanced" in sec.views else sec.views[0] if sec.views else None)
    if view is None or view not in sec.views:
        return None
    counts = [_num(c) or 0.0 for c in (_get(sec.reference, "train_stats", "class_counts", default=[]) or [])]
    if not counts:
        return None
    C = len(counts)
    many, few, relative = shot_bins(counts, *options.shot_bins, given=options.shot_bins_given)
    third = (" (top third)", " (bottom third)") if relative else ("", "")
    bins = [("many", f"> {many:g} training examples{third[0]}"), ("medium", f"{few:g}–{many:g}"),
            ("few", f"< {few:g}{third[1]}")]
    metric = "AP" if sec.info.get("multi_label") else "recall"

    def bin_of(c: float) -> Optional[str]:
        if c <= 0:
            return None
        return "many" if c > many else "few" if c < few else "medium"

    sizes = {b: sum(bin_of(c) == b for c in counts) for b, _ in bins}
    pc = PerClass(view, metric, counts, {}, {}, bins, {}, sizes)
    for g in sec.methods:
        per_seed = []
        for s in sec.paired_seeds(g):
            a = _get(g.runs[s], "eval", view, "per_class", metric)
            b = _get(base.runs[s], "eval", view, "per_class", metric)
            if isinstance(a, list) and isinstance(b, list) and len(a) == len(b) == C:
                per_seed.append([(_num(x) - _num(y)) if _num(x) is not None and _num(y) is not None else None
                                 for x, y in zip(a, b)])
        if not per_seed:
            continue
        mean = []
        for j in range(C):
            vals = [r[j] for r in per_seed if r[j] is not None]
            mean.append(math.fsum(vals) / len(vals) if vals else None)
        pc.delta[g.label] = mean
        pc.spearman[g.label] = spearman_log_prior(counts, mean)
        pc.bin_means[g.label] = {b: summarize([d for c, d in zip(counts, mean) if d is not None and bin_of(c) == b])
                                 for b, _ in bins}
    return pc if pc.delta else None


def spearman_log_prior(counts: Sequence[float], delta: Sequence[Optional[float]]) -> tuple[Optional[float],
                                                                                           Optional[float], int]:
    """Spearman ρ (and two-sided p) between per-class Δ and log training count, over classes seen in training
    with a Δ; (None, None, k) when fewer than 3 such classes or either side is constant."""
    pairs = [(math.log(c), d) for c, d in zip(counts, delta) if c > 0 and d is not None and math.isfinite(d)]
    if len(pairs) < 3:
        return None, None, len(pairs)
    x, y = zip(*pairs)
    if len(set(x)) < 2 or len(set(y)) < 2:
        return None, None, len(pairs)
    rho, p = spearman(x, y)
    return (rho if math.isfinite(rho) else None), (p if math.isfinite(p) else None), len(pairs)

