"""Small statistics for the report: 95% t-intervals over seeds and seed-paired deltas."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Hashable, Iterable, Mapping, Optional, Sequence

CONFIDENCE = 0.95


def t_interval(values: Iterable[float]) -> tuple[float, Optional[float]]:
    """(mean, half-width of the two-sided 95% Student-t interval); half-width is None for fewer than 2 values."""
    x = [float(v) for v in values]
    n = len(x)
    if n == 0:
        raise ValueError("t_interval needs at least one value")
    mean = math.fsum(x) / n
    if n < 2:
        return mean, None
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in x) / (n - 1))
    from scipy.stats import t  # lazy: scipy.stats costs ~0.5 s to import and is only needed here

    return mean, float(t.ppf(0.5 + CONFIDENCE / 2, n - 1)) * sd / math.sqrt(n)


@dataclass(frozen=True)
class Interval:
    """Mean over seeds with its 95% t-interval (half_width None with a single seed)."""

    mean: float
    half_width: Optional[float]
    n: int

    @property
    def ci_low(self) -> Optional[float]:
        return None if self.half_width is None else self.mean - self.half_width

    @property
    def ci_high(self) -> Optional[float]:
        return None if self.half_width is None else self.mean + self.half_width

    @property
    def significant(self) -> Optional[bool]:
        """Whether the interval excludes 0; None when there is no interval (one seed)."""
        if self.half_width is None:
            return None
        return self.ci_low > 0 or self.ci_high < 0  # type: ignore[operator]


def summarize(values: Sequence[float]) -> Optional[Interval]:
    """The Interval of `values`, or None when there are none."""
    if not values:
        return None
    mean, hw = t_interval(values)
    return Interval(mean, hw, len(values))


def paired_deltas(
    treated: Mapping[Hashable, Optional[float]], baseline: Mapping[Hashable, Optional[float]]
) -> list[float]:
    """treated[s] - baseline[s] for every seed s where both values exist (not None), in sorted seed order."""
    seeds = sorted((s for s in treated if s in baseline), key=seed_sort_key)
    return [
        float(treated[s]) - float(baseline[s])  # type: ignore[arg-type]
        for s in seeds
        if treated[s] is not None and baseline[s] is not None
    ]


def imbalance_ratio(counts: Sequence[float], present: Optional[Sequence[bool]] = None) -> Optional[float]:
    """n_max / n_min over the `present` classes (default: classes with a positive count).

    A present class with count 0 gives inf (the stream never showed it); no usable class gives None.
    """
    if present is None or len(present) != len(counts):
        present = [c > 0 for c in counts]
    vals = [float(c) for c, p in zip(counts, present) if p]
    if not vals or max(vals) <= 0:
        return None
    lo = min(vals)
    return math.inf if lo <= 0 else max(vals) / lo


def seed_sort_key(seed: Hashable) -> tuple[int, str]:
    # seeds are ints in practice; sort robustly if a result carries something else
    return (0, f"{seed:020d}") if isinstance(seed, int) and seed >= 0 else (1, repr(seed))
