"""The machine-readable part of the prior-shift analysis for summary.json (JSON-safe: no NaN or inf)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from benchmark.core.stats import Interval

if TYPE_CHECKING:
    from .priorshift import SectionShift

def _iv(iv: Optional[Interval]) -> dict:
    if iv is None:
        return {"mean": None, "ci_low": None, "ci_high": None, "n_seeds": 0, "significant": None}
    return {"mean": iv.mean, "ci_low": iv.ci_low, "ci_high": iv.ci_high, "n_seeds": iv.n,
            "significant": iv.significant, "interval": iv.kind if iv.half_width is not None else None}


def json_safe(obj: Any) -> Any:
    """JSON-safe copy: non-finite floats become None (summary.json is written with allow_nan=False).

    >>> json_safe({"a": float("nan"), "b": [1.5, np.float64(np.inf)], 3: np.int64(2)})
    {'a': None, 'b': [1.5, None], '3': 2}
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (np.floating, np.integer)):
        return json_safe(obj.item())
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def summary_json(shift: SectionShift) -> dict:
    """The machine-readable part for summary.json."""
    return json_safe(_summary(shift))


def _summary(shift: SectionShift) -> dict:
    d: dict[str, Any] = {
        "main_metric": shift.main_metric,
        "bootstrap_resamples": shift.n_bootstrap if shift.scores_available else 0,
        "distributions": {x.name: {"source": x.source, "description": x.description, "n_examples": x.n_examples,
                                   "effective_n": x.effective_n, "weighted": x.weighted, "info": x.info}
                          for x in shift.dists},
        "delta": {},
        "notes": shift.notes,
    }
    for (label, dist, metric), iv in sorted(shift.cells.items()):
        e = _iv(iv)
        e["bootstrap_sd"] = shift.boot_sd.get((label, dist, metric))
        d["delta"].setdefault(label, {}).setdefault(metric, {})[dist] = e
    if shift.curve is not None:
        d["curve"] = {"gamma": shift.curve.gammas, "metric": shift.curve.metric,
                      "baseline": shift.curve.baseline, "effective_n": shift.curve.effective_n,
                      "n_examples": shift.curve.n_examples, "bootstrap_resamples": shift.curve.n_bootstrap,
                      "bootstrap_gammas": shift.curve.boot_gammas,
                      "delta": {k: [_iv(x) for x in v] for k, v in shift.curve.delta.items()}}
    d["sweeps"] = [{"method": s.method, "param": s.param, "fixed": s.fixed, "values": s.values,
                    "choice": {dist: {"value": c["value"], "label": c["label"], "val_metric": c["val_metric"],
                                      "test_delta": _iv(c["test"]), "test_best_value": c["best_value"]}
                               for dist, c in s.choice.items()}} for s in shift.sweeps]
    if shift.per_class is not None:
        pc = shift.per_class
        d["per_class"] = {"view": pc.view, "metric": pc.metric, "bins": dict(pc.bins), "bin_sizes": pc.bin_sizes,
                          "methods": {lab: {"spearman_rho": pc.spearman[lab][0], "p_value": pc.spearman[lab][1],
                                            "n_classes": pc.spearman[lab][2],
                                            # t-intervals over the bin's classes, not over seeds
                                            "bins": {b: {**_iv(iv), "interval": None if iv is None or
                                                         iv.half_width is None else "classes"}
                                                     for b, iv in pc.bin_means[lab].items()}}
                                      for lab in pc.delta}}
    return d

