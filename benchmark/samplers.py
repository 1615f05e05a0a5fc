"""Class-balancing samplers for any PyTorch training loop: `torch.utils.data.Sampler`s, correct under DDP.

Each sampler is a thin wrapper over the numpy index-stream functions of `benchmark.sampling`, the ones the
benchmark's methods train with, so a sampler here draws by the same formula as the method of the same name:

| sampler | method | draws |
|---|---|---|
| `OversamplingSampler` | `oversample` | example i repeated max (or sum / mean) over its labels of (n_max / n_j)^β |
| `RepeatFactorSampler` | `repeat_factor` | LVIS r_i = max over its labels of max(1, (t / f_c)^power) |
| `RepeatSampler` | — | your own per-example repeat factors |
| `ClassUniformSampler` | `class_uniform` | PANNs round-robin: a uniform class, then that class's next example |
| `SquareRootSampler` | `sqrt_sampling` | a class with probability ∝ n_j^q, then a uniform example of it |
| `ProgressiveSampler` | `progressive` | (1 − t)·instance-balanced + t·class-balanced, t = epoch / num_epochs |

Targets are (N,) integer class ids (single-label) or an (N, C) 0/1 multi-label matrix: numpy, torch (dense or
sparse), a scipy.sparse matrix or a nested list. An epoch is exactly `num_samples` indices in all.

**Distributed.** Every rank builds the same global stream of the epoch, seeded by (`seed`, epoch) only — pass the
same `seed` on every rank — and rank r takes positions r, r + W, r + 2W, ... of it (W = `world_size`), so the ranks'
parts are disjoint and of equal length `len(sampler)`. `rank` / `world_size` default to `torch.distributed`'s when it
is initialized (else 0 / 1). When W does not divide `num_samples`, `drop_last=False` (the default) draws the few extra
indices (at most W − 1) from the same stream, so no rank repeats an index just to pad and the drawn distribution is
unchanged; `drop_last=True` draws fewer instead (W · floor(num_samples / W)).

**Epochs.** Each pass over the sampler is the next epoch, so a plain loop reshuffles without further calls;
`set_epoch(e)` makes the next pass epoch e (DistributedSampler's convention, which Lightning and accelerate follow).
Stochastic rounding and shuffling are redrawn every epoch.
"""
from __future__ import annotations

import warnings
from typing import Any, Iterator, Optional

import numpy as np
import torch
from torch.utils.data import Sampler

from .method import MAX_EPOCH_DRAWS, LabelCSR, class_factors_to_examples, stochastic_repeat
from .sampling import (EpochHead, RoundRobin, class_members, class_sampling_probs, draw_class_aware, index_stream,
                       lvis_class_factors, oversampling_class_factors, progressive_epoch, repeat_threshold)

__all__ = ["ClassUniformSampler", "OversamplingSampler", "ProgressiveSampler", "RepeatFactorSampler",
           "RepeatSampler", "SquareRootSampler", "class_counts", "label_csr"]

_CHUNK = 1 << 16  # indices turned into Python ints at a time


def label_csr(targets: Any, num_classes: Optional[int] = None) -> tuple[LabelCSR, int, bool]:
    """(labels as sparse rows, number of classes, multi-label?) from (N,) class ids or an (N, C) 0/1 matrix.

    Accepts numpy arrays, torch tensors (dense, sparse COO or CSR), scipy.sparse matrices and nested lists. Errors
    name the argument and what is wrong.

    >>> csr, c, multi = label_csr([[1, 0, 1], [0, 0, 0], [0, 1, 0]])
    >>> csr.indptr.tolist(), csr.indices.tolist(), c, multi
    ([0, 2, 2, 3], [0, 2, 1], 3, True)
    >>> label_csr(np.array([2, 0, 2]))[1:]
    (3, False)
    """
    if isinstance(targets, torch.Tensor) and targets.layout != torch.strided:
        return _check_classes(_torch_sparse_csr(targets), num_classes)
    try:
        import scipy.sparse as sp
    except ImportError:  # scipy is a dependency; a user without it has no scipy matrices either
        sp = None
    if sp is not None and sp.issparse(targets):
        return _check_classes(_scipy_csr(sp.csr_matrix(targets)), num_classes)
    if isinstance(targets, torch.Tensor):
        targets = targets.detach().cpu().numpy()
    y = np.asarray(targets)
    if y.size == 0 or y.shape[0] == 0:
        raise ValueError(f"targets is empty (shape {y.shape}); give one class id or label row per example")
    if y.ndim == 1:
        if not (np.issubdtype(y.dtype, np.integer)):
            raise ValueError(f"targets of shape (N,) must be integer class ids, got dtype {y.dtype}; for multi-label "
                             f"targets give an (N, C) 0/1 matrix")
        if y.min() < 0:
            raise ValueError(f"targets must be class ids >= 0, found {int(y.min())}")
        c = int(y.max()) + 1
        if num_classes is not None:
            if int(num_classes) < c:
                raise ValueError(f"num_classes={num_classes} but targets hold class id {c - 1}")
            c = int(num_classes)
        return LabelCSR(np.arange(y.size + 1, dtype=np.int64), y.astype(np.int64)), c, False
    if y.ndim == 2:
        if y.dtype != bool:
            if not (np.issubdtype(y.dtype, np.number)):
                raise ValueError(f"targets of shape (N, C) must be a 0/1 matrix, got dtype {y.dtype}")
            bad = (y != 0) & (y != 1)
            if bad.any():
                i, j = np.argwhere(bad)[0]
                raise ValueError(f"targets of shape (N, C) must be a 0/1 matrix, found {y[i, j].item()!r} at "
                                 f"[{i}, {j}] (soft or smoothed labels: give the hard labels to the sampler)")
        return _check_classes((LabelCSR.from_dense(y != 0), y.shape[1]), num_classes)
    raise ValueError(f"targets must be (N,) class ids or an (N, C) 0/1 matrix, got shape {y.shape}")


def _scipy_csr(m: Any) -> tuple[LabelCSR, int]:
    m = m.copy()
    m.sum_duplicates()
    m.eliminate_zeros()
    m.sort_indices()
    if m.shape[0] == 0:
        raise ValueError(f"targets is empty (shape {m.shape}); give one label row per example")
    if m.data.size and not np.all(m.data == 1):
        bad = m.data[m.data != 1][0].item()
        raise ValueError(f"targets: a sparse multi-label matrix must hold 0/1 values, found {bad!r}")
    return LabelCSR(m.indptr.astype(np.int64), m.indices.astype(np.int64)), int(m.shape[1])


def _torch_sparse_csr(t: torch.Tensor) -> tuple[LabelCSR, int]:
    if t.ndim != 2:
        raise ValueError(f"targets: a sparse tensor must be an (N, C) 0/1 matrix, got shape {tuple(t.shape)}")
    if t.layout == torch.sparse_coo:
        t = t.coalesce()
        rows, cols = t.indices().cpu().numpy()
        values = t.values().cpu().numpy()
    elif t.layout == torch.sparse_csr:
        crow, cols = t.crow_indices().cpu().numpy(), t.col_indices().cpu().numpy()
        rows = np.repeat(np.arange(crow.size - 1), np.diff(crow))
        values = t.values().cpu().numpy()
    else:
        raise ValueError(f"targets: sparse layout {t.layout} is not supported; use COO or CSR, or a dense tensor")
    import scipy.sparse as sp

    return _scipy_csr(sp.csr_matrix((values, (rows, cols)), shape=tuple(t.shape)))


def _check_classes(parsed: tuple[LabelCSR, int], num_classes: Optional[int]) -> tuple[LabelCSR, int, bool]:
    csr, c = parsed
    if num_classes is not None and int(num_classes) != c:
        raise ValueError(f"num_classes={num_classes} but multi-label targets have {c} columns")
    return csr, c, True


def class_counts(targets: Any, num_classes: Optional[int] = None) -> np.ndarray:
    """(C,) number of examples carrying each class: what the losses' `from_counts` take.

    >>> class_counts([0, 2, 2, 2], num_classes=4).tolist()
    [1, 0, 3, 0]
    """
    csr, c, _ = label_csr(targets, num_classes)
    return _csr_counts(csr, c)


def _csr_counts(csr: LabelCSR, num_classes: int) -> np.ndarray:
    return np.bincount(csr.indices, minlength=num_classes).astype(np.int64)


def _rank_and_world(rank: Optional[int], world_size: Optional[int]) -> tuple[int, int]:
    if rank is None or world_size is None:
        import torch.distributed as dist

        live = dist.is_available() and dist.is_initialized()
        if rank is None:
            rank = dist.get_rank() if live else 0
        if world_size is None:
            world_size = dist.get_world_size() if live else 1
    if int(world_size) < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if not 0 <= int(rank) < int(world_size):
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
    return int(rank), int(world_size)


class _StreamSampler(Sampler[int]):
    """The epoch, DDP and budget logic shared by the samplers: subclasses give `_epoch_head(epoch)`."""

    def __init__(self, n_examples: int, num_samples: Optional[int], seed: int, rank: Optional[int],
                 world_size: Optional[int], drop_last: bool) -> None:
        self.n_examples = int(n_examples)
        if num_samples is None:
            num_samples = self._default_num_samples()
        if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
            raise ValueError(f"num_samples must be a positive integer (indices per epoch over all ranks), "
                             f"got {num_samples!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an integer >= 0 (the same on every rank), got {seed!r}")
        self.rank, self.world_size = _rank_and_world(rank, world_size)
        self.num_samples = int(num_samples)
        self.drop_last = bool(drop_last)
        self.seed = int(seed)
        per_rank = self.num_samples // self.world_size if drop_last else -(-self.num_samples // self.world_size)
        if per_rank == 0:
            raise ValueError(f"num_samples={self.num_samples} with drop_last=True gives each of the "
                             f"{self.world_size} ranks nothing; draw at least world_size samples")
        self.total_size = per_rank * self.world_size  # the global stream's length (>= or <= num_samples)
        self.epoch = 0

    def _default_num_samples(self) -> int:
        return self.n_examples

    def _epoch_head(self, epoch: int) -> EpochHead:
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass epoch `epoch` (call it with the same value on every rank)."""
        if isinstance(epoch, bool) or not isinstance(epoch, (int, np.integer)) or epoch < 0:
            raise ValueError(f"epoch must be an integer >= 0, got {epoch!r}")
        self.epoch = int(epoch)

    def global_indices(self, epoch: Optional[int] = None) -> np.ndarray:
        """The whole stream of an epoch (default: the next pass's) over all ranks; rank r yields `[r::world_size]`."""
        e = self.epoch if epoch is None else int(epoch)
        rng = np.random.default_rng([self.seed, e])
        parts = list(index_stream(self._epoch_head(e), self.n_examples, self.total_size, rng, type(self).__name__))
        return np.concatenate(parts)

    def __iter__(self) -> Iterator[int]:
        mine = self.global_indices()[self.rank::self.world_size]
        self.epoch += 1
        return (i for s in range(0, mine.size, _CHUNK) for i in mine[s:s + _CHUNK].tolist())

    def __len__(self) -> int:
        return self.total_size // self.world_size

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(n_examples={self.n_examples}, num_samples={self.num_samples}, "
                f"rank={self.rank}, world_size={self.world_size}, epoch={self.epoch})")


class RepeatSampler(_StreamSampler):
    """Example i drawn `factors[i]` times per epoch in expectation: floor(r_i) + Bernoulli(frac(r_i)), shuffled.

    As detectron2's RepeatFactorTrainingSampler, redrawn every epoch; the epoch is cut to (or continued up to)
    `num_samples` indices, by default round(Σ r_i), the expected length. See the module docstring for DDP.

    >>> s = RepeatSampler([1.0, 2.0, 0.0], seed=0)
    >>> len(s), sorted(s)  # example 1 twice, example 2 never
    (3, [0, 1, 1])
    """

    def __init__(self, factors: Any, num_samples: Optional[int] = None, *, seed: int = 0,
                 rank: Optional[int] = None, world_size: Optional[int] = None, drop_last: bool = False) -> None:
        f = np.asarray(factors.detach().cpu().numpy() if isinstance(factors, torch.Tensor) else factors,
                       dtype=np.float64)
        if f.ndim != 1 or f.size == 0:
            raise ValueError(f"factors must be a non-empty (N,) array of per-example repeat factors, got shape "
                             f"{f.shape}")
        if not np.all(np.isfinite(f)) or (f < 0).any():
            i = int(np.flatnonzero(~np.isfinite(f) | (f < 0))[0])
            raise ValueError(f"factors must be finite and >= 0, got {f[i].item()!r} at example {i}")
        if not 0 < f.sum() < MAX_EPOCH_DRAWS:
            raise ValueError(f"factors must sum to a positive number of draws below 2^62, got {f.sum():.3g}")
        self.factors = f
        super().__init__(f.size, num_samples, seed, rank, world_size, drop_last)

    def _default_num_samples(self) -> int:
        return max(1, int(round(float(self.factors.sum()))))

    def _epoch_head(self, epoch: int) -> EpochHead:
        return lambda _, __, rng, limit: stochastic_repeat(self.factors, rng, limit=limit)


class OversamplingSampler(RepeatSampler):
    """β-oversampling (Moore et al. 2023): class factors M_j = (n_max / n_j)^β; an example takes the max (or sum /
    mean) over its labels (an example without labels keeps 1); β = 0 is plain shuffling, β = 1 full balancing of
    single-label classes.

    The `oversample` method of the benchmark draws by the same functions. An epoch holds `num_samples` indices,
    by default round(Σ_i M_i), the expected length of one oversampled epoch: pass a budget (e.g. len(targets)) to
    keep the number of steps per epoch fixed instead. See the module docstring for DDP and epochs.

    >>> targets = [0] * 90 + [1] * 10
    >>> s = OversamplingSampler(targets, beta=1.0, num_samples=2000, seed=0)
    >>> s.class_factors.tolist(), len(s)
    ([1.0, 9.0], 2000)
    >>> counts = np.bincount(np.asarray(targets)[list(s)])  # about 1000 each: balanced
    >>> bool(abs(counts[0] - 1000) < 100)
    True
    """

    def __init__(self, targets: Any, beta: float = 0.5, aggregate: str = "max", num_samples: Optional[int] = None,
                 *, seed: int = 0, rank: Optional[int] = None, world_size: Optional[int] = None,
                 drop_last: bool = False, num_classes: Optional[int] = None) -> None:
        if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 <= beta <= 4:
            raise ValueError(f"beta must be a number in [0, 4] (0 none, 1 full balancing), got {beta!r}")
        if aggregate not in ("max", "sum", "mean"):
            raise ValueError(f"aggregate must be max, sum or mean, got {aggregate!r}")
        csr, c, self.multi_label = label_csr(targets, num_classes)
        self.counts = _csr_counts(csr, c)
        self.class_factors = oversampling_class_factors(self.counts, float(beta))
        self.beta, self.aggregate = float(beta), aggregate
        factors = class_factors_to_examples(csr, self.class_factors, aggregate, default=1.0)
        super().__init__(factors, num_samples, seed=seed, rank=rank, world_size=world_size, drop_last=drop_last)


class RepeatFactorSampler(RepeatSampler):
    """LVIS repeat-factor sampling (Gupta et al. 2019): r_c = max(1, (t / f_c)^power), f_c the fraction of
    examples carrying c; an example takes the max over its labels.

    `t="auto"` (the default, as the benchmark's `repeat_factor`) puts t so that two thirds of the classes lie below
    it, where LVIS v1's t = 0.001 sits; a t that no class is below makes every factor 1, and a `UserWarning` says
    so. `num_samples` defaults to round(Σ r_i).

    >>> s = RepeatFactorSampler([0] * 8 + [1] * 2, t=0.8, seed=0)  # f = (0.8, 0.2): class 1 repeated √4 = 2×
    >>> s.class_factors.tolist(), len(s)
    ([1.0, 2.0], 12)
    """

    def __init__(self, targets: Any, t: str | float = "auto", power: float = 0.5,
                 num_samples: Optional[int] = None, *, seed: int = 0, rank: Optional[int] = None,
                 world_size: Optional[int] = None, drop_last: bool = False,
                 num_classes: Optional[int] = None) -> None:
        if isinstance(power, bool) or not isinstance(power, (int, float)) or not 0 <= power <= 4:
            raise ValueError(f"power must be a number in [0, 4] (0.5: LVIS' square root), got {power!r}")
        csr, c, self.multi_label = label_csr(targets, num_classes)
        self.counts = _csr_counts(csr, c)
        n = csr.indptr.size - 1
        self.t, warning = repeat_threshold(self.counts, n, t)
        if warning:
            warnings.warn(f"RepeatFactorSampler: {warning}", UserWarning, stacklevel=2)
        self.class_factors = lvis_class_factors(self.counts, n, self.t, float(power))
        factors = class_factors_to_examples(csr, self.class_factors, "max", default=1.0)
        super().__init__(factors, num_samples, seed=seed, rank=rank, world_size=world_size, drop_last=drop_last)


class _ClassSampler(_StreamSampler):
    def __init__(self, targets: Any, num_samples: Optional[int], seed: int, rank: Optional[int],
                 world_size: Optional[int], drop_last: bool, num_classes: Optional[int]) -> None:
        csr, c, self.multi_label = label_csr(targets, num_classes)
        self.members = class_members(csr, c)
        self.counts = self.members[2]
        super().__init__(csr.indptr.size - 1, num_samples, seed, rank, world_size, drop_last)


class ClassUniformSampler(_ClassSampler):
    """PANNs' balanced sampler (Kong et al. 2020): a shuffled queue of the classes gives each slot's class, the slot
    takes that class's next example (each class's list reshuffled when exhausted). Every class is drawn equally
    often; a multi-label example is listed under each of its classes. `per_class` consecutive slots share a class
    (Kang et al.'s ClassAwareSampler: 4). `num_samples` defaults to N; the round robin restarts each epoch.

    >>> s = ClassUniformSampler([0] * 9 + [1], num_samples=10, seed=0)
    >>> sum(i == 9 for i in s)  # the single example of class 1 fills half the slots
    5
    """

    def __init__(self, targets: Any, per_class: int = 1, num_samples: Optional[int] = None, *, seed: int = 0,
                 rank: Optional[int] = None, world_size: Optional[int] = None, drop_last: bool = False,
                 num_classes: Optional[int] = None) -> None:
        if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
            raise ValueError(f"per_class must be an integer >= 1, got {per_class!r}")
        self.per_class = int(per_class)
        super().__init__(targets, num_samples, seed, rank, world_size, drop_last, num_classes)

    def _epoch_head(self, epoch: int) -> EpochHead:
        rr = RoundRobin(*self.members, self.per_class)  # continues across the epoch's passes over N slots
        return lambda _, __, rng, limit: rr.epoch(self.n_examples, rng)[:limit]


class SquareRootSampler(_ClassSampler):
    """Class-aware sampling p_j ∝ n_j^q (Kang et al. 2020): a class i.i.d. with that probability, then a uniform
    example of it; q = 1/2 square-root sampling, 0 class-balanced, 1 instance-balanced (single-label).
    `num_samples` defaults to N.

    >>> s = SquareRootSampler([0] * 100 + [1] * 25, q=0.5, seed=0)  # p = (10, 5) / 15
    >>> s.class_p.round(4).tolist()
    [0.6667, 0.3333]
    """

    def __init__(self, targets: Any, q: float = 0.5, num_samples: Optional[int] = None, *, seed: int = 0,
                 rank: Optional[int] = None, world_size: Optional[int] = None, drop_last: bool = False,
                 num_classes: Optional[int] = None) -> None:
        if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 <= q <= 1:
            raise ValueError(f"q must be a number in [0, 1] (1 instance, 0.5 square root, 0 class-balanced), "
                             f"got {q!r}")
        super().__init__(targets, num_samples, seed, rank, world_size, drop_last, num_classes)
        self.q = float(q)
        self.class_p = class_sampling_probs(self.counts, self.q)

    def _epoch_head(self, epoch: int) -> EpochHead:
        if self.class_p.sum() == 0:  # no labels at all: nothing to balance
            return lambda _, __, rng, limit: rng.permutation(self.n_examples)[:limit]
        return lambda _, __, rng, limit: draw_class_aware(self.class_p, *self.members, self.n_examples, rng)[:limit]


class ProgressiveSampler(_ClassSampler):
    """Progressively-balanced sampling (Kang et al. 2020): epoch e draws at t = min(e / num_epochs, 1), from
    instance-balanced (t = 0) to class-balanced (t = 1). `schedule="mix"` (the paper's): p = (1 − t)·p^IB + t·p^CB;
    `"exponent"`: p_j ∝ n_j^(1 − t). `num_samples` defaults to N. Call `set_epoch`, or iterate once per epoch.

    >>> s = ProgressiveSampler([0] * 9 + [1], num_epochs=10, seed=0)
    >>> sorted(s) == list(range(10))  # epoch 0: an ordinary shuffled epoch
    True
    """

    def __init__(self, targets: Any, num_epochs: int, schedule: str = "mix", num_samples: Optional[int] = None, *,
                 seed: int = 0, rank: Optional[int] = None, world_size: Optional[int] = None,
                 drop_last: bool = False, num_classes: Optional[int] = None) -> None:
        if isinstance(num_epochs, bool) or not isinstance(num_epochs, (int, np.integer)) or num_epochs < 1:
            raise ValueError(f"num_epochs must be an integer >= 1 (the epochs over which t goes 0 -> 1), "
                             f"got {num_epochs!r}")
        if schedule not in ("mix", "exponent"):
            raise ValueError(f"schedule must be mix or exponent, got {schedule!r}")
        self.num_epochs, self.schedule = int(num_epochs), schedule
        super().__init__(targets, num_samples, seed, rank, world_size, drop_last, num_classes)

    def _epoch_head(self, epoch: int) -> EpochHead:
        t = min(epoch / self.num_epochs, 1.0)
        return lambda _, __, rng, limit: progressive_epoch(*self.members, self.n_examples, t, self.schedule,
                                                           rng)[:limit]
