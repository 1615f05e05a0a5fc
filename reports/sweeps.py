"""β as a hyperparameter: for methods run over one numeric parameter (oversample's beta, ...), the value chosen
on the validation split per distribution and that choice's test Δ. The choice reads validation numbers only
(`select_best`)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Sequence

from benchmark.core.stats import Interval

from .analysis import MethodGroup, Section, _canon, _get, _num

if TYPE_CHECKING:
    from .options import Options
    from .priorshift import SectionShift

@dataclass
class Sweep:
    """One method swept over one numeric parameter (e.g. oversample's beta), the baseline as value 0."""

    method: str
    param: str
    fixed: dict
    values: list[float]
    labels: list[str]  # method label per value
    choice: dict[str, dict]  # distribution -> {"value", "label", "val_metric", "test": Interval|None, "best_test"...}
    test: dict[str, list[Optional[Interval]]]  # distribution -> Δ per value (test)
    val: dict[str, list[Optional[float]]]  # distribution -> mean validation metric per value (baseline first)


def select_best(val_by_candidate: Sequence[Optional[float]]) -> Optional[int]:
    """Index of the candidate with the highest mean validation metric (ties: the first, i.e. less balancing).

    Takes validation numbers only: the test split cannot influence the choice.

    >>> select_best([0.70, None, 0.72, 0.72]), select_best([None, float("nan")])
    (2, None)
    """
    best, arg = -math.inf, None
    for i, v in enumerate(val_by_candidate):
        if v is not None and math.isfinite(v) and v > best + 1e-12:
            best, arg = v, i
    return arg


def sweep_families(sec: Section) -> list[tuple[str, str, dict, list[tuple[float, MethodGroup]]]]:
    """(method name, swept parameter, the fixed parameters, [(value, group)]) for every method run with at least
    two values of one numeric parameter, the others equal."""
    fams: dict[tuple[str, str, str], list[tuple[float, MethodGroup]]] = {}
    for g in sec.methods:
        for p, v in g.params.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            rest = {k: x for k, x in g.params.items() if k != p}
            fams.setdefault((g.name, p, _canon(rest)), []).append((float(v), g))
    out = []
    for (name, p, rest), members in sorted(fams.items()):
        if len({v for v, _ in members}) >= 2:
            out.append((name, p, json.loads(rest), sorted(members, key=lambda m: m[0])))
    return out


def sweep_analysis(sec: Section, shift: SectionShift, valpt: dict, options: Options,
                   extra: Sequence[str] = ()) -> list[Sweep]:
    """For each sweep family and distribution: the value picked on validation, and its test Δ."""
    base = sec.baseline
    main = shift.main_metric
    dists = [d.name for d in shift.dists]
    sweeps = []
    for name, param, fixed, members in sweep_families(sec):
        groups = [base] + [g for _, g in members]  # the baseline is value 0: no balancing
        values = [0.0] + [v for v, _ in members]
        sw = Sweep(name, param, fixed, values, [g.label for g in groups], {}, {}, {})  # type: ignore[union-attr]
        for d in dists:
            val = [_val_mean(g, d, main, valpt) for g in groups]  # type: ignore[arg-type]
            test = [Interval(0.0, 0.0, len(base.runs))] + [  # type: ignore[union-attr]
                shift.cells.get((g.label, d, main)) or sec.delta(g, d, main) for _, g in members]
            sw.val[d], sw.test[d] = val, test
            i = select_best(val)
            if i is None:
                continue
            j = select_best([None if t is None else t.mean for t in test])
            sw.choice[d] = {"value": values[i], "label": groups[i].label, "val_metric": val[i],  # type: ignore
                            "test": test[i], "best_value": None if j is None else values[j],
                            "best_test": None if j is None else test[j]}
        sweeps.append(sw)
    return sweeps


def _val_mean(g: MethodGroup, view: str, metric: str, valpt: dict) -> Optional[float]:
    """Mean over seeds of the validation metric on `view`: from the stored scores where computed, else the JSON."""
    vals = []
    for s, res in g.runs.items():
        v = valpt.get((g.label, s), {}).get(view, {}).get(metric)
        if v is None:
            v = _num(_get(res, "val", view, "metrics", metric))
        if v is not None and math.isfinite(v):
            vals.append(v)
    return math.fsum(vals) / len(vals) if vals else None

