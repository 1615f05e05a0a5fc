"""Formatting shared by every part of the report: numbers, intervals and markdown tables (tabulate, github)."""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

from tabulate import tabulate

NA = "n/a"


def cell(s: Any) -> str:
    """One table cell: pipes escaped and newlines flattened so user text cannot break the table.

    >>> cell("a|b\\nc")
    'a\\\\|b c'
    """
    return " ".join(str(s).split()).replace("|", "\\|")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A github-style markdown table of already formatted cells.

    >>> print(table(["a", "b"], [["+0.0120", "x"]]))
    | a       | b   |
    |---------|-----|
    | +0.0120 | x   |
    """
    # disable_numparse: tabulate would otherwise re-format "+0.0120" strings as numbers
    return tabulate([[cell(c) for c in r] for r in rows], headers=[cell(h) for h in headers], tablefmt="github",
                    disable_numparse=True)


def r4(x: float) -> float:
    """`x` rounded to 4 decimals, with -0.0 turned into 0.0 so "-0.0000" never shows."""
    return round(x, 4) + 0.0


def fmt_num(x: Optional[float], digits: int = 4) -> str:
    """'0.1235' (`digits` decimals), '∞', or 'n/a' for None.

    >>> fmt_num(0.123456), fmt_num(None), fmt_num(float("inf"))
    ('0.1235', 'n/a', '∞')
    """
    if x is None:
        return NA
    if math.isinf(x):
        return "∞"
    return f"{round(x, digits) + 0.0:.{digits}f}"


def fmt_interval(iv: Any, signed: bool) -> str:
    """'+0.0123 ± 0.0045' (or without '±' with a single seed); 'n/a' for None.

    >>> from benchmark.core.stats import Interval
    >>> fmt_interval(Interval(0.01234, 0.0045, 3), signed=True)
    '+0.0123 ± 0.0045'
    """
    if iv is None:
        return NA
    m = f"{r4(iv.mean):+.4f}" if signed else f"{r4(iv.mean):.4f}"
    return m if iv.half_width is None else f"{m} ± {r4(iv.half_width):.4f}"
