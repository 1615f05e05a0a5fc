"""The Method interface: a balancing method acts at up to three points, each optional.

1. **sampling**: `repeat_factors()` gives each training example a real factor; the engine turns it into each
   epoch's index stream with stochastic rounding. A method that draws differently (class-uniform, progressive)
   overrides `epoch_indices()` instead.
2. **loss**: `loss(logits, targets, progress)`; the default is BCE-with-logits (multi-label) or cross-entropy.
3. **logit adjustment** at evaluation: `adjust_logits(logits)` on the stored evaluation logits (numpy).

Methods never write training loops. A method whose training is exactly the baseline's (`posthoc = True`) is not
trained at all: the engine applies `adjust_logits` to the baseline's stored scores of the same seed
(`posthoc_scores` may recompute them from the baseline's stored penultimate features and linear head instead).

Less common seams, each a no-op by default:

- `resample(train, rng)`: replace the training set by a resampled one before training (imbalanced-learn
  adapters); only for tasks whose model inputs are the `features` vectors of the training split.
- `init_from_baseline = True`: training starts from the trained baseline `none` model of the same seed, which
  the engine keeps as `<run_id>.pt` beside the baseline's result (decoupled training, e.g. cRT); with
  `prepare_model(model)` (freeze / re-initialize parts before the optimizer is built) and `train_samples(budget)`
  (how many samples this extra stage draws).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .errors import UserError
from .params import Param


@dataclass
class TrainInfo:
    """What a method may know about the training set (labels only, never the evaluation data)."""

    labels: np.ndarray  # (N, C) bool for multi-label; (N,) int64 for single-label
    multi_label: bool
    num_classes: int
    budget_samples: int  # samples the run will draw in total (the fair budget)
    features: Optional[np.ndarray] = None  # (N, D) for feature-vector tasks (imbalanced-learn adapters)
    _matrix: Optional[np.ndarray] = field(default=None, repr=False)

    @property
    def n_examples(self) -> int:
        return int(self.labels.shape[0])

    @property
    def label_matrix(self) -> np.ndarray:
        """(N, C) bool, one-hot for single-label tasks."""
        if self._matrix is None:
            if self.multi_label:
                self._matrix = self.labels.astype(bool, copy=False)
            else:
                m = np.zeros((self.n_examples, self.num_classes), dtype=bool)
                m[np.arange(self.n_examples), self.labels] = True
                self._matrix = m
        return self._matrix

    @property
    def class_counts(self) -> np.ndarray:
        """(C,) examples carrying each class."""
        if self.multi_label:
            return self.label_matrix.sum(axis=0, dtype=np.int64)
        return np.bincount(self.labels, minlength=self.num_classes).astype(np.int64)

    @property
    def present(self) -> np.ndarray:
        """(C,) bool: classes with at least one training example (absent ones are ignored by balancing)."""
        return self.class_counts > 0

    @property
    def prior(self) -> np.ndarray:
        """(C,) training prevalence n_j / N (multi-label) or class frequency (single-label)."""
        return self.class_counts / max(self.n_examples, 1)


class Method:
    """Base class. Subclasses set `name`, a one-line docstring citing the paper, and `params`."""

    name: ClassVar[str] = ""
    paper: ClassVar[str] = ""  # short citation, shown by --list --verbose
    params: ClassVar[dict[str, Param]] = {}
    multi_label: ClassVar[bool] = True  # supports multi-label tasks
    single_label: ClassVar[bool] = True  # supports single-label tasks
    posthoc: ClassVar[bool] = False  # trains exactly like `none`: only adjust_logits differs
    init_from_baseline: ClassVar[bool] = False  # start from the trained baseline model of the same seed

    def __init__(self, **params: Any) -> None:
        self.hparams = dict(params)
        for k, v in params.items():
            setattr(self, k, v)
        self.train: Optional[TrainInfo] = None
        self._device_cache: dict[tuple[int, str], torch.Tensor] = {}

    # ---- lifecycle -------------------------------------------------------------------------------------------
    def check_task(self, multi_label: bool, task_name: str = "") -> None:
        """Raise a UserError when this method cannot run on the task's label type."""
        if multi_label and not self.multi_label:
            raise UserError(f"method '{self.name}' supports single-label tasks only; '{task_name}' is multi-label")
        if not multi_label and not self.single_label:
            raise UserError(f"method '{self.name}' supports multi-label tasks only; '{task_name}' is single-label")

    def setup(self, train: TrainInfo) -> None:
        """Called once per run before training; precompute weights here."""
        self.train = train
        # one instance serves every run of a grid: tensors cached for the previous task must not be reused
        self._device_cache.clear()

    # ---- 1. sampling -----------------------------------------------------------------------------------------
    def repeat_factors(self, train: TrainInfo) -> Optional[np.ndarray]:
        """(N,) non-negative real repeat factor per example, or None for 1 everywhere."""
        return None

    def epoch_indices(self, train: TrainInfo, epoch: int, progress: float, rng: np.random.Generator) -> np.ndarray:
        """Indices of one epoch, in order. Default: stochastic rounding of the repeat factors, then a shuffle.

        `progress` is the fraction of the budget already drawn when the epoch starts. Every method goes through
        the same random draws, so that a method whose factors are all 1 reproduces `none` exactly.
        """
        factors = self.repeat_factors(train)
        if factors is None:
            factors = np.ones(train.n_examples)
        return stochastic_repeat(factors, rng)

    def resample(self, train: TrainInfo, rng: np.random.Generator) -> Optional[tuple[np.ndarray, np.ndarray]]:
        """(features, labels) of a resampled training set that replaces the task's, or None (the default).

        Called once per run before training. The engine trains on `ArrayDataset(features, labels)`, so only tasks
        whose model inputs are their `features` vectors can be resampled; the fair budget (samples drawn) is kept.
        """
        return None

    # ---- 2. loss ---------------------------------------------------------------------------------------------
    def loss(self, logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        """Training loss of a batch: targets are (B, C) float for multi-label, (B,) long for single-label."""
        if targets.dtype.is_floating_point:
            return F.binary_cross_entropy_with_logits(logits, targets)
        return F.cross_entropy(logits, targets)

    # ---- 3. evaluation-time logit adjustment -----------------------------------------------------------------
    def adjust_logits(self, logits: np.ndarray) -> np.ndarray:
        """Map raw evaluation logits (n, C) to the scores that are evaluated. Default: unchanged."""
        return logits

    def posthoc_scores(self, stored: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Post-hoc methods: (pool, val) raw logits from the baseline's stored arrays. Default: its logits.

        `stored` holds the baseline npz: `pool_logits`, `val_logits`, and, when the task's model has a linear
        `.head` and they are small enough, `pool_features`, `val_features` (the head's inputs), `head_weight`,
        `head_bias`. `adjust_logits` is applied to the returned logits afterwards.
        """
        return stored["pool_logits"], stored["val_logits"]

    # ---- decoupled training (init_from_baseline) -------------------------------------------------------------
    def prepare_model(self, model: torch.nn.Module) -> None:
        """Adjust the model before its optimizer is built (e.g. freeze the backbone). Default: nothing.

        Top-level submodules whose parameters are all frozen are kept in eval mode during training.
        """

    def train_samples(self, budget: int) -> int:
        """Samples this run draws, given the task's fair budget. Default: the budget itself."""
        return int(budget)

    # ---- helpers ---------------------------------------------------------------------------------------------
    def on(self, ref: torch.Tensor, value: np.ndarray | torch.Tensor) -> torch.Tensor:
        """`value` as a tensor on `ref`'s device and dtype, cached (weights are built once on CPU)."""
        key = (id(value), f"{ref.device}/{ref.dtype}")
        t = self._device_cache.get(key)
        if t is None:
            t = torch.as_tensor(value).to(device=ref.device, dtype=ref.dtype)
            self._device_cache[key] = t
        return t

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hparams.items())
        return f"{type(self).__name__}({args})"


def stochastic_repeat(factors: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shuffled indices where example i appears floor(r_i) + Bernoulli(r_i - floor(r_i)) times.

    As detectron2's RepeatFactorTrainingSampler: the expected count is exactly r_i, redrawn each epoch.
    Vectorized: one uniform draw per example, one np.repeat, one permutation.
    """
    factors = np.asarray(factors, dtype=np.float64)
    whole = np.floor(factors)
    counts = whole.astype(np.int64) + (rng.random(factors.shape[0]) < (factors - whole))
    idx = np.repeat(np.arange(factors.shape[0], dtype=np.int64), counts)
    return rng.permutation(idx)


def class_factors_to_examples(
    label_matrix: np.ndarray, class_factor: np.ndarray, aggregate: str = "max", default: float = 1.0
) -> np.ndarray:
    """Per-example factor from per-class factors: max / sum / mean over the example's labels.

    Examples with no label get `default`. Vectorized over the sparse label structure (no Python loop).
    """
    rows, cols = np.nonzero(label_matrix)
    n = label_matrix.shape[0]
    out = np.full(n, default, dtype=np.float64)
    if rows.size == 0:
        return out
    vals = class_factor[cols].astype(np.float64)
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    who = rows[starts]
    if aggregate == "max":
        out[who] = np.maximum.reduceat(vals, starts)
    elif aggregate == "sum":
        out[who] = np.add.reduceat(vals, starts)
    elif aggregate == "mean":
        out[who] = np.add.reduceat(vals, starts) / np.diff(np.r_[starts, rows.size])
    else:
        raise ValueError(f"aggregate must be max, sum or mean, got {aggregate!r}")
    return out
