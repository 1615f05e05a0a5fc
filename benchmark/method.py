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
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, NamedTuple, Optional

import numpy as np

from .core.errors import UserError
from .params import Param

if TYPE_CHECKING:  # torch loads when a loss or a tensor is first needed: listing methods stays torch-free
    import torch


class LabelCSR(NamedTuple):
    """Labels as compressed sparse rows: example i carries classes `indices[indptr[i]:indptr[i + 1]]`, ascending.

    AudioSet's training labels are ~0.5 % ones: per-example work over the CSR touches 5.5 M entries, not 1 G.
    """

    indptr: np.ndarray  # (N + 1,) int64
    indices: np.ndarray  # (nnz,) int64 class ids

    @classmethod
    def from_dense(cls, matrix: np.ndarray) -> "LabelCSR":
        n, c = matrix.shape
        flat = np.flatnonzero(matrix)  # row-major, so rows come out sorted (and 5x faster than 2-D np.nonzero)
        rows, cols = np.divmod(flat, max(c, 1))
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
        return cls(indptr, cols.astype(np.int64, copy=False))

    @property
    def rows(self) -> np.ndarray:
        """(nnz,) the example of each entry."""
        return np.repeat(np.arange(self.indptr.size - 1, dtype=np.int64), np.diff(self.indptr))


@dataclass
class TrainInfo:
    """What a method may know about the training set (labels only, never the evaluation data).

    `labels` must not be modified after construction: the derived views below are computed once and cached.
    """

    labels: np.ndarray  # (N, C) bool for multi-label; (N,) int64 for single-label
    multi_label: bool
    num_classes: int
    budget_samples: int  # samples the run will draw in total (the fair budget)
    features: Optional[np.ndarray] = None  # (N, D) for feature-vector tasks (imbalanced-learn adapters)
    _matrix: Optional[np.ndarray] = field(default=None, repr=False)
    _csr: Optional[LabelCSR] = field(default=None, repr=False)
    _counts: Optional[np.ndarray] = field(default=None, repr=False)

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
    def label_csr(self) -> LabelCSR:
        """The labels as sparse rows (single-label: one entry per example), built once."""
        if self._csr is None:
            if self.multi_label:
                self._csr = LabelCSR.from_dense(self.label_matrix)
            else:
                self._csr = LabelCSR(np.arange(self.n_examples + 1, dtype=np.int64),
                                     np.asarray(self.labels, dtype=np.int64))
        return self._csr

    @property
    def class_counts(self) -> np.ndarray:
        """(C,) examples carrying each class (computed once: samplers ask every epoch)."""
        if self._counts is None:
            if self.multi_label:
                self._counts = np.bincount(self.label_csr.indices, minlength=self.num_classes).astype(np.int64)
            else:
                self._counts = np.bincount(self.labels, minlength=self.num_classes).astype(np.int64)
        return self._counts.copy()  # callers may modify their copy

    @property
    def present(self) -> np.ndarray:
        """(C,) bool: classes with at least one training example (absent ones are ignored by balancing)."""
        return self.class_counts > 0

    @property
    def prior(self) -> np.ndarray:
        """(C,) training prevalence n_j / N (multi-label) or class frequency (single-label)."""
        return self.class_counts / max(self.n_examples, 1)


class MethodError(RuntimeError):
    """A method's hook returned something unusable (the message names the method and the hook): that run is
    recorded as failed and the sweep goes on."""


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
        self.setup_warnings: list[str] = []
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
        self.setup_warnings: list[str] = []

    # ---- 1. sampling -----------------------------------------------------------------------------------------
    def repeat_factors(self, train: TrainInfo) -> Optional[np.ndarray]:
        """(N,) non-negative real repeat factor per example, or None for 1 everywhere."""
        return None

    def epoch_indices(self, train: TrainInfo, epoch: int, progress: float, rng: np.random.Generator) -> np.ndarray:
        """Indices of one epoch, in order. Default: stochastic rounding of the repeat factors, then a shuffle.

        `progress` is the fraction of the budget already drawn when the epoch starts. Every method goes through
        the same random draws, so that a method whose factors are all 1 reproduces `none` exactly.
        """
        return stochastic_repeat(self._factors(train), rng)

    def epoch_head(self, train: TrainInfo, epoch: int, progress: float, rng: np.random.Generator,
                   limit: int) -> np.ndarray:
        """The first `limit` indices of the epoch (all of it when shorter): what a budgeted stream takes.

        Distributed exactly as `epoch_indices(...)[:limit]`. Methods that sample through `repeat_factors` never
        build an epoch longer than `limit` (β = 1 on AudioSet's prior: ~200 x N draws per epoch, for a budget of
        a few N): the examples of the head are drawn directly, then shuffled. Others are cut to `limit`.
        """
        if type(self).epoch_indices is Method.epoch_indices:
            return stochastic_repeat(self._factors(train), rng, limit=limit)
        return np.asarray(self.epoch_indices(train, epoch, progress, rng))[:limit]

    def _factors(self, train: TrainInfo) -> np.ndarray:
        factors = self.repeat_factors(train)
        if factors is None:
            return np.ones(train.n_examples)
        factors = np.asarray(factors, dtype=np.float64)
        if factors.shape != (train.n_examples,):
            raise MethodError(f"method '{self.name}': repeat_factors returned shape {factors.shape}, expected "
                              f"({train.n_examples},): one factor per training example")
        bad = np.flatnonzero(~np.isfinite(factors) | (factors < 0))
        if bad.size:
            i = int(bad[0])
            kind = "non-finite" if not np.isfinite(factors[i]) else "negative"
            raise MethodError(f"method '{self.name}': repeat_factors returned a {kind} factor ({factors[i]:g} at "
                              f"example {i}); factors must be finite and >= 0")
        return factors

    def resample(self, train: TrainInfo, rng: np.random.Generator) -> Optional[tuple[np.ndarray, np.ndarray]]:
        """(features, labels) of a resampled training set that replaces the task's, or None (the default).

        Called once per run before training. The engine trains on `ArrayDataset(features, labels)`, so only tasks
        whose model inputs are their `features` vectors can be resampled; the fair budget (samples drawn) is kept.
        """
        return None

    # ---- 2. loss ---------------------------------------------------------------------------------------------
    def loss(self, logits: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        """Training loss of a batch: targets are (B, C) float for multi-label, (B,) long for single-label."""
        import torch.nn.functional as F

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
    def warn(self, message: str) -> None:
        """Record a warning about this run's setup (e.g. a parameter that makes the method a no-op on the task):
        the engine writes it to the run's log and to the result's `warnings`. Call it from `setup`."""
        self.setup_warnings.append(f"method '{self.name}': {message}")

    def on(self, ref: torch.Tensor, value: np.ndarray | torch.Tensor) -> torch.Tensor:
        """`value` as a tensor on `ref`'s device and dtype, cached (weights are built once on CPU)."""
        key = (id(value), f"{ref.device}/{ref.dtype}")
        t = self._device_cache.get(key)
        if t is None:
            import torch

            t = torch.as_tensor(value).to(device=ref.device, dtype=ref.dtype)
            self._device_cache[key] = t
        return t

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hparams.items())
        return f"{type(self).__name__}({args})"


MAX_EPOCH_DRAWS = 2**62  # the repeat counts of one epoch must fit int64
_CHUNK = 1 << 16  # entries per pass over an epoch's keys: temporaries stay in cache however long the epoch


def stochastic_repeat(factors: np.ndarray, rng: np.random.Generator, limit: Optional[int] = None) -> np.ndarray:
    """Shuffled indices where example i appears floor(r_i) + Bernoulli(r_i - floor(r_i)) times.

    As detectron2's RepeatFactorTrainingSampler: the expected count is exactly r_i, redrawn each epoch.
    Vectorized: one uniform draw per example, one np.repeat, one sort (`shuffled_repeat`). With `limit` below
    the epoch's length, only the first `limit` indices are built: which examples fill them is a multivariate
    hypergeometric draw from the epoch's counts, exactly as if the whole shuffled epoch had been cut.
    """
    factors = np.asarray(factors, dtype=np.float64)
    total = float(factors.sum())
    if not total < MAX_EPOCH_DRAWS:  # also NaN
        raise UserError(f"repeat factors sum to {total:.3g} draws per epoch (at most 2^62); lower the balancing "
                        f"strength (e.g. beta)")
    whole = np.floor(factors)
    counts = whole.astype(np.int64) + (rng.random(factors.shape[0]) < (factors - whole))
    if limit is not None and int(limit) < counts.sum():
        counts = head_counts(counts, int(limit), rng)
    return shuffled_repeat(counts, rng)


def head_counts(counts: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """How often each example appears among the first k entries of a uniform shuffle of the multiset `counts`."""
    total = int(counts.sum())
    if total < 10**9:  # numpy's exact sequential sampler takes populations below 1e9
        return rng.multivariate_hypergeometric(counts, k, method="marginals")
    # k distinct positions of the epoch, uniformly (redraw duplicates: a uniform k-subset by symmetry)
    pos = np.unique(rng.integers(total, size=k))
    while pos.size < k:
        pos = np.unique(np.concatenate([pos, rng.integers(total, size=k - pos.size)]))
    return np.bincount(np.searchsorted(np.cumsum(counts), pos, side="right"), minlength=counts.size)


def shuffled_repeat(counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`np.repeat(arange(N), counts)` in a uniformly random order (int64).

    The shuffle is a sort: every entry gets random high bits above its example id, one in-place sort (numpy's
    SIMD sort; at 25 M entries ~2x cheaper than `rng.permutation`, whose random swaps miss the cache), then the
    ids are masked out. Entries whose random bits tie (~M^2 / 2^(65 - b) pairs for M entries and b id bits:
    ~40 at M = 25 M, N = 2 M) are shuffled among themselves with `rng.shuffle`, so the order is exactly uniform.
    """
    n = int(np.asarray(counts).shape[0])
    bits = max(int(n - 1).bit_length(), 1)
    ids = np.uint64((1 << bits) - 1)
    keys = np.repeat(np.arange(n, dtype=np.uint64), counts)
    m = keys.size
    # passes in cache-sized chunks (a loop over chunks, not examples): no large temporaries
    for s in range(0, m, _CHUNK):
        r = rng.integers(0, 2**64, size=min(_CHUNK, m - s), dtype=np.uint64)
        r &= ~ids
        keys[s:s + _CHUNK] |= r
    keys.sort()
    # one pass: note where neighbours' random bits tie, then keep only the ids (a run's shared random bits do
    # not matter for shuffling it, so runs are shuffled after masking)
    hi = np.empty(_CHUNK + 1, dtype=np.uint64)
    tied = np.empty(_CHUNK, dtype=bool)
    found = []
    for s in range(0, m, _CHUNK):
        k = min(_CHUNK + 1, m - s)  # the chunk and the next chunk's first key
        np.right_shift(keys[s:s + k], np.uint64(bits), out=hi[:k])
        np.equal(hi[1:k], hi[:k - 1], out=tied[:k - 1])
        if tied[:k - 1].any():
            found.append(np.flatnonzero(tied[:k - 1]) + s)  # keys[p] ties keys[p + 1]
        keys[s:s + _CHUNK] &= ids
    if found:
        tie = np.concatenate(found)
        for run in np.split(tie, np.flatnonzero(np.diff(tie) != 1) + 1):  # a few dozen runs at AudioSet scale
            rng.shuffle(keys[run[0]:run[-1] + 2])
    return keys.view(np.int64)


def class_factors_to_examples(
    labels: LabelCSR | np.ndarray, class_factor: np.ndarray, aggregate: str = "max", default: float = 1.0
) -> np.ndarray:
    """Per-example factor from per-class factors: max / sum / mean over the example's labels.

    `labels` is a `LabelCSR` (`TrainInfo.label_csr`) or a dense (N, C) bool matrix. Examples with no label get
    `default`. Vectorized over the sparse label structure (no Python loop).
    """
    if aggregate not in ("max", "sum", "mean"):
        raise ValueError(f"aggregate must be max, sum or mean, got {aggregate!r}")
    csr = labels if isinstance(labels, LabelCSR) else LabelCSR.from_dense(np.asarray(labels, dtype=bool))
    k = np.diff(csr.indptr)
    out = np.full(k.size, default, dtype=np.float64)
    has = k > 0
    if not has.any():
        return out
    vals = np.asarray(class_factor, dtype=np.float64)[csr.indices]
    starts = csr.indptr[:-1][has]  # empty rows are skipped, so each segment ends where the next row starts
    if aggregate == "max":
        out[has] = np.maximum.reduceat(vals, starts)
    elif aggregate == "sum":
        out[has] = np.add.reduceat(vals, starts)
    else:
        out[has] = np.add.reduceat(vals, starts) / k[has]
    return out
