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


def combined_interval(deltas: Sequence[float], boot_means: Optional[Sequence[float]]) -> Optional[Interval]:
    """Mean of seed-paired deltas with a 95% interval for both sources of noise: training seeds and the finite
    evaluation set.

    `boot_means[b]` is the seed-averaged delta on bootstrap resample b of the evaluation examples (the same
    resample for method and baseline). The variance is s²/n (seeds) + the bootstrap variance, with
    Welch-Satterthwaite degrees of freedom (the bootstrap part counted as known); without a bootstrap it is the
    plain t-interval. One seed gives no interval: training noise cannot be estimated from it.
    """
    x = [float(v) for v in deltas]
    if not x:
        return None
    n = len(x)
    mean = math.fsum(x) / n
    if n < 2:
        return Interval(mean, None, n)
    v_seed = math.fsum((v - mean) ** 2 for v in x) / (n - 1) / n
    b = [float(v) for v in (boot_means or []) if math.isfinite(float(v))]
    v_boot = 0.0
    if len(b) >= 2:
        mb = math.fsum(b) / len(b)
        v_boot = math.fsum((v - mb) ** 2 for v in b) / (len(b) - 1)
    var = v_seed + v_boot
    if var <= 0:
        return Interval(mean, 0.0, n)
    df = var**2 / (v_seed**2 / (n - 1)) if v_seed > 0 else math.inf
    from scipy.stats import t

    q = float(t.ppf(0.5 + CONFIDENCE / 2, df)) if math.isfinite(df) else 1.959963984540054
    return Interval(mean, q * math.sqrt(var), n)


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
