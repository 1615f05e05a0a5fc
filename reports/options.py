"""The report's options (extra views, user priors, bootstrap size, per-class bins), saved beside report.md in
`report_options.json` so that `report` re-renders with what the run asked for."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from .load import atomic_write_text

OPTIONS_FILE = "report_options.json"  # beside report.md: what `report` re-renders with
DEFAULT_BOOTSTRAP = 100
DEFAULT_GAMMAS = tuple(round(g, 4) for g in np.linspace(0.0, 2.0, 17))
DEFAULT_SHOT_BINS = (100, 20)  # many: > 100 training examples, few: < 20 (Kang et al. 2020)


@dataclass
class Options:
    """What the prior-shift analysis computes; saved to `report_options.json` so `report` reproduces it."""

    views: list[str] = field(default_factory=list)  # extra distributions (names or groups such as `sade`)
    priors: list[dict] = field(default_factory=list)  # {"name", "task" (None: every task), "rows", "kind", "path"}
    bootstrap: int = DEFAULT_BOOTSTRAP  # resamples per distribution; 0: seeds-only intervals
    seed: int = 0
    gammas: tuple[float, ...] = DEFAULT_GAMMAS
    shot_bins: tuple[int, int] = DEFAULT_SHOT_BINS
    shot_bins_given: bool = False  # --shot-bins given: kept as is, never replaced by terciles
    per_class_view: Optional[str] = None  # default: balanced, else the first view

    def to_json(self) -> dict:
        return {"views": self.views, "eval_priors": self.priors, "bootstrap": self.bootstrap,
                "shot_bins": list(self.shot_bins), "shot_bins_given": self.shot_bins_given,
                "per_class_view": self.per_class_view}

    @classmethod
    def from_json(cls, d: dict) -> "Options":
        bins = d.get("shot_bins") or DEFAULT_SHOT_BINS
        return cls(views=list(d.get("views") or []), priors=list(d.get("eval_priors") or []),
                   bootstrap=int(d.get("bootstrap", DEFAULT_BOOTSTRAP)), shot_bins=(int(bins[0]), int(bins[1])),
                   shot_bins_given=bool(d.get("shot_bins_given", False)), per_class_view=d.get("per_class_view"))


def load_options(run_dir: Path) -> Options:
    """The options saved in `run_dir`, or the defaults when there are none (or they are unreadable)."""
    try:
        return Options.from_json(json.loads((Path(run_dir) / OPTIONS_FILE).read_text()))
    except (OSError, ValueError, TypeError, KeyError, IndexError):
        return Options()


def save_options(run_dir: Path, options: Options) -> None:
    """Write `options` to `run_dir/report_options.json` (atomically)."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(run_dir) / OPTIONS_FILE, json.dumps(options.to_json(), indent=1) + "\n")
