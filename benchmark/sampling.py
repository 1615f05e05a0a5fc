"""Index streams in numpy: the sampling formulas of the methods, and the engine's budgeted stream over them.

The formulas at the end (oversampling and LVIS repeat factors, PANNs round-robin, class-aware and progressive draws)
are the one implementation of each: the methods of `methods/` sample through them in the engine, and the torch
samplers of `benchmark.samplers` wrap them for any training loop. `index_stream` concatenates epochs up to a budget
for both.
"""
from __future__ import annotations

import functools
from typing import Callable, Iterator

import numpy as np

from .method import LabelCSR, Method, MethodError, TrainInfo

EpochHead = Callable[[int, float, np.random.Generator, int], np.ndarray]  # (epoch, progress, rng, limit) -> indices


def index_stream(epoch_head: EpochHead, n_examples: int, budget: int, rng: np.random.Generator,
                 who: str = "epoch_head") -> Iterator[np.ndarray]:
    """Epoch after epoch of `epoch_head(epoch, progress, rng, limit)`, cut so that exactly `budget` indices come out.

    `progress` is the fraction of the budget drawn before the epoch, `limit` what the budget still takes (an epoch
    longer than that is cut). Every array is checked (1-D integers in [0, n_examples), not empty); `who` names the
    producer in the error.

    >>> head = lambda epoch, progress, rng, limit: np.arange(3)
    >>> [a.tolist() for a in index_stream(head, 3, 7, np.random.default_rng(0))]
    [[0, 1, 2], [0, 1, 2], [0]]
    """
    drawn, epoch, n = 0, 0, int(n_examples)
    while drawn < budget:
        idx = np.asarray(epoch_head(epoch, drawn / budget, rng, budget - drawn))
        if idx.ndim != 1 or not (idx.size == 0 or np.issubdtype(idx.dtype, np.integer)):
            raise MethodError(f"{who} returned {idx.dtype} of shape {idx.shape}, expected 1-D integer indices")
        idx = idx.astype(np.int64, copy=False)[: budget - drawn]
        if idx.size == 0:
            raise MethodError(f"{who} returned an empty epoch")
        if idx.min() < 0 or idx.max() >= n:
            bad = int(idx.min()) if idx.min() < 0 else int(idx.max())
            raise MethodError(f"{who} returned index {bad}, outside the training set [0, {n})")
        drawn += idx.size
        epoch += 1
        yield idx


class BudgetBatchSampler:  # a batch sampler as DataLoader takes it; no torch base class, so this module is torch-free
    """Yields batches holding exactly `budget` indices in all: epoch after epoch of `method.epoch_indices`.

    Every method on a task draws the same number of samples; oversampling changes which samples are drawn, not
    how many. At most one epoch is materialized at a time, and never more of it than the budget still takes
    (`Method.epoch_head`); batches run across epoch boundaries so that all but the last are full. The stream
    depends only on (seed, method, labels), so every process of a distributed run builds the same stream and
    accelerate hands each process its own batches. `draw_counts` records how often each example was drawn (the
    effective training prior).
    """

    def __init__(self, method: Method, train: TrainInfo, budget: int, batch_size: int, seed: int) -> None:
        self.method = method
        self.train = train
        self.budget = int(budget)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.draw_counts = np.zeros(train.n_examples, dtype=np.int64)

    def __len__(self) -> int:
        return -(-self.budget // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        return (batch.tolist() for batch in self.index_batches())

    def index_batches(self) -> Iterator[np.ndarray]:
        """The stream as int64 arrays (the lists of `__iter__`, without building Python ints): the engine indexes
        in-memory tensors with them directly. They may be views into one epoch's array: do not modify them."""
        # same seed for every method: a method with all factors 1 reproduces the baseline exactly
        rng = np.random.default_rng([self.seed, 0x5A3B])
        self.draw_counts[:] = 0
        b = self.batch_size
        carry = np.empty(0, dtype=np.int64)  # the start of a batch that runs into the next epoch
        head = functools.partial(self.method.epoch_head, self.train)
        for idx in index_stream(head, self.train.n_examples, self.budget, rng,
                                f"method '{self.method.name}': epoch_indices"):
            self.draw_counts += np.bincount(idx, minlength=self.train.n_examples)
            start = 0
            if carry.size:
                start = min(b - carry.size, idx.size)
                carry = np.concatenate([carry, idx[:start]])
                if carry.size < b:
                    continue
                yield carry
            full = start + (idx.size - start) // b * b
            for s in range(start, full, b):
                yield idx[s:s + b]
            carry = idx[full:]
        if carry.size:
            yield carry

    @property
    def epochs(self) -> float:
        """Samples drawn in units of the training set size."""
        return float(self.draw_counts.sum()) / max(self.train.n_examples, 1)

    def class_counts_seen(self) -> np.ndarray:
        """(C,) number of drawn samples carrying each class."""
        if self.train.multi_label:
            csr = self.train.label_csr  # sparse: AudioSet's label matrix is ~0.5 % ones
            return np.bincount(csr.indices, weights=self.draw_counts[csr.rows],
                               minlength=self.train.num_classes).astype(np.int64)
        return np.bincount(self.train.labels, weights=self.draw_counts,
                           minlength=self.train.num_classes).astype(np.int64)


class ShardedBatchSampler:
    """One process's part of a `BudgetBatchSampler` stream: disjoint across processes, equal step counts.

    Step s of the stream is its next `batch_size * num_shards` indices and process r takes the r-th batch of
    them, as accelerate would. The last, short step is split into near-equal parts (sizes differ by at most one),
    so every process takes the same number of steps (DDP needs it) and no sample is trained twice; accelerate's
    `even_batches` padding would instead repeat samples from the start of the stream. A last step too short to
    give every process a sample (fewer than `num_shards` indices) is dropped and left out of `draw_counts`.
    With one shard this is the inner stream unchanged.
    """

    def __init__(self, inner: BudgetBatchSampler, num_shards: int = 1, shard: int = 0) -> None:
        if not 0 <= shard < num_shards:
            raise ValueError(f"shard {shard} out of range for {num_shards} shards")
        self.inner = inner
        self.num_shards = int(num_shards)
        self.shard = int(shard)

    def __len__(self) -> int:
        full, rem = divmod(self.inner.budget, self.inner.batch_size * self.num_shards)
        return full + (rem >= self.num_shards)

    def __iter__(self) -> Iterator[list[int]]:
        return (batch.tolist() for batch in self.index_batches())

    def index_batches(self) -> Iterator[np.ndarray]:
        """This shard's batches as int64 arrays (see `BudgetBatchSampler.index_batches`)."""
        n, b = self.num_shards, self.inner.batch_size
        group: list[np.ndarray] = []
        for batch in self.inner.index_batches():
            group.append(batch)
            if len(group) == n and batch.size == b:
                yield group[self.shard]
                group = []
        if group:  # the end of the stream: fewer than n batches, or a short last batch
            rest = np.concatenate(group)
            if rest.size >= n:
                yield np.array_split(rest, n)[self.shard]
            else:
                self.inner.draw_counts -= np.bincount(rest, minlength=self.inner.draw_counts.size)

    # the inner sampler's record of what the whole stream drew
    @property
    def draw_counts(self) -> np.ndarray:
        return self.inner.draw_counts

    @property
    def epochs(self) -> float:
        return self.inner.epochs

    def class_counts_seen(self) -> np.ndarray:
        return self.inner.class_counts_seen()


# ---- the per-method sampling formulas (numpy): the methods of methods/ and the samplers of benchmark.samplers ----

def oversampling_class_factors(counts: np.ndarray, beta: float) -> np.ndarray:
    """M_j = (n_max / n_j)^β for classes present in training; 0 for absent classes (they carry no example).

    >>> oversampling_class_factors(np.array([100, 25, 4, 0]), beta=0.5).tolist()
    [1.0, 2.0, 5.0, 0.0]
    """
    counts = np.asarray(counts, dtype=np.float64)
    out = np.zeros_like(counts)
    present = counts > 0
    if present.any():
        out[present] = (counts.max() / counts[present]) ** beta
    return out


# LVIS v1 (Gupta et al. 2019): t = 0.001 is 100 of its 100,170 training images, the frequent / common boundary; 798
# of its 1,203 classes (rare 337 + common 461) lie below it. `auto` puts t at the same place among a task's classes.
AUTO_T_QUANTILE = 798 / 1203


def lvis_threshold(counts: np.ndarray, n_examples: int) -> float:
    """`t=auto`: the frequency of the class above the rarest two thirds of the present classes (LVIS v1's share
    below t = 0.001), so those round(2/3 · C) classes are repeated.

    >>> lvis_threshold(np.array([60, 30, 10, 5, 0]), 100)  # 3 of the 4 present classes lie below it
    0.6
    """
    f = np.sort(np.asarray(counts, dtype=np.float64)[np.asarray(counts) > 0]) / max(int(n_examples), 1)
    if f.size == 0:
        return 0.0
    return float(f[min(int(round(AUTO_T_QUANTILE * f.size)), f.size - 1)])


def lvis_class_factors(counts: np.ndarray, n_examples: int, t: float, power: float = 0.5) -> np.ndarray:
    """r_c = max(1, (t / f_c)^power), f_c = n_c / N the fraction of examples carrying c; 1 for absent classes.

    >>> lvis_class_factors(np.array([8, 2, 1, 0]), 8, t=0.5).round(4).tolist()
    [1.0, 1.4142, 2.0, 1.0]
    """
    f = np.asarray(counts, dtype=np.float64) / max(int(n_examples), 1)
    r = np.ones(f.shape)
    present = f > 0
    r[present] = np.maximum(1.0, (t / f[present]) ** power)
    return r


def parse_threshold(t: str | float) -> str | float:
    """`auto` or a frequency threshold in [0, 1] (LVIS: 0.001); the error names the argument.

    >>> parse_threshold("0.001"), parse_threshold("auto")
    (0.001, 'auto')
    """
    if isinstance(t, str) and t.strip().lower() == "auto":
        return "auto"
    try:
        value = float(t)
    except (TypeError, ValueError):
        raise ValueError(f"t must be 'auto' or a frequency in [0, 1], got {t!r}") from None
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"t must be 'auto' or a frequency in [0, 1], got {t!r}")
    return value


def repeat_threshold(counts: np.ndarray, n_examples: int, t: str | float) -> tuple[float, str | None]:
    """(t, warning): `auto` resolved by `lvis_threshold`; a warning when no present class is rarer than t.

    With no class below t every repeat factor is 1 and the sampler is plain shuffling (mmpretrain #747: LVIS'
    t = 0.001 silently did nothing on a smaller dataset).

    >>> t, warning = repeat_threshold(np.array([60, 40]), 100, 0.001)
    >>> t, warning.split(":")[0]
    (0.001, 'no class is rarer than t = 0.001 (the rarest has frequency 0.4)')
    """
    t = parse_threshold(t)
    value = lvis_threshold(counts, n_examples) if t == "auto" else float(t)
    f = np.asarray(counts, dtype=np.float64) / max(int(n_examples), 1)
    f = f[f > 0]
    if f.size and not (f < value).any():
        return value, (f"no class is rarer than t = {value:g} (the rarest has frequency {f.min():.3g}): every "
                       f"repeat factor is 1, sampling is plain shuffling; use t=auto or a t above {f.min():.3g}")
    return value, None


def class_members(csr: LabelCSR, num_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(members, starts, counts): the examples carrying class c are members[starts[c]:starts[c] + counts[c]].

    >>> m, s, c = class_members(LabelCSR(np.array([0, 1, 3, 4]), np.array([1, 0, 1, 1])), 2)
    >>> m.tolist(), s.tolist(), c.tolist()
    ([1, 0, 1, 2], [0, 1], [1, 3])
    """
    cols = np.asarray(csr.indices, dtype=np.int64)
    order = np.argsort(cols, kind="stable")  # rows stay ascending within a class
    counts = np.bincount(cols, minlength=num_classes).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return csr.rows[order], starts, counts


class RoundRobin:
    """PANNs' sampler, vectorized: a shuffled queue of the present classes, refilled when empty, gives each slot's
    class; the slot takes that class's next example from its own shuffled list, reshuffled when exhausted.

    Every present class is drawn equally often. `per_class` consecutive slots share one class (Kang et al.'s
    ClassAwareSampler uses 4). Queue and per-class positions carry over between calls of `epoch` until `reset`.

    >>> rr = RoundRobin(*class_members(LabelCSR(np.arange(5), np.array([0, 0, 0, 1])), 2))
    >>> np.bincount(rr.epoch(8, np.random.default_rng(0)) >= 3).tolist()  # class 1 (example 3) half of the slots
    [4, 4]
    """

    def __init__(self, members: np.ndarray, starts: np.ndarray, counts: np.ndarray, per_class: int = 1) -> None:
        self.members, self.starts, self.counts = members, starts, counts
        self.classes = np.flatnonzero(self.counts > 0)  # classes without examples are skipped
        self.per_class = int(per_class)
        self.reset()

    def reset(self) -> None:
        self.queue = np.zeros(0, dtype=np.int64)
        self.lists: dict[int, np.ndarray] = {}  # class -> its current shuffled list
        self.pos = np.zeros(self.counts.size, dtype=np.int64)

    def _take_classes(self, n_visits: int, rng: np.random.Generator) -> np.ndarray:
        short = n_visits - self.queue.size
        if short > 0:
            reps = -(-short // self.classes.size)
            fresh = rng.permuted(np.tile(self.classes, (reps, 1)), axis=1).ravel()
            self.queue = np.concatenate([self.queue, fresh])
        seq, self.queue = self.queue[:n_visits], self.queue[n_visits:]
        return seq

    def _take_examples(self, c: int, k: int, rng: np.random.Generator) -> np.ndarray:
        own = self.members[self.starts[c]:self.starts[c] + self.counts[c]]
        cur = self.lists.get(c)
        if cur is None:
            cur = rng.permutation(own)
            self.pos[c] = 0
        p = int(self.pos[c])
        left = cur[p:]
        if k <= left.size:
            self.lists[c], self.pos[c] = cur, p + k
            return left[:k]
        need = k - left.size
        reps = -(-need // own.size)
        fresh = rng.permuted(np.tile(own, (reps, 1)), axis=1)  # one reshuffle per pass over the class
        self.lists[c], self.pos[c] = fresh[-1], need - (reps - 1) * own.size
        return np.concatenate([left, fresh.ravel()[:need]])

    def epoch(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """The next `n` slots' examples."""
        if self.classes.size == 0:
            return rng.permutation(n)  # no labels at all: nothing to balance
        visits = self._take_classes(-(-n // self.per_class), rng)
        slot_class = np.repeat(visits, self.per_class)[:n]
        order = np.argsort(slot_class, kind="stable")
        cls, first, k = np.unique(slot_class[order], return_index=True, return_counts=True)
        out = np.empty(n, dtype=np.int64)
        for c, f, kk in zip(cls.tolist(), first.tolist(), k.tolist()):  # a loop over classes, not examples
            out[order[f:f + kk]] = self._take_examples(c, kk, rng)
        return out


def class_sampling_probs(counts: np.ndarray, q: float) -> np.ndarray:
    """p_j = n_j^q / Σ_k n_k^q over present classes (q = 1 instance-, 1/2 square-root, 0 class-balanced).

    >>> class_sampling_probs(np.array([100, 25, 4, 0]), 0.5).round(4).tolist()
    [0.5882, 0.2941, 0.1176, 0.0]
    """
    n = np.asarray(counts, dtype=np.float64)
    p = np.zeros_like(n)
    present = n > 0
    p[present] = n[present] ** q
    return p / p.sum() if p.sum() > 0 else p


def draw_class_aware(class_p: np.ndarray, members: np.ndarray, starts: np.ndarray, counts: np.ndarray, n: int,
                     rng: np.random.Generator) -> np.ndarray:
    """n i.i.d. draws: a class from `class_p`, then one of its examples uniformly (vectorized).

    >>> draw_class_aware(np.array([0.0, 1.0]), np.array([0, 1, 2]), np.array([0, 2]), np.array([2, 1]), 3,
    ...                  np.random.default_rng(0)).tolist()
    [2, 2, 2]
    """
    c = rng.choice(class_p.size, size=n, p=class_p)
    k = np.minimum((rng.random(n) * counts[c]).astype(np.int64), counts[c] - 1)
    return members[starts[c] + k]


def progressive_epoch(members: np.ndarray, starts: np.ndarray, counts: np.ndarray, n: int, t: float,
                      schedule: str, rng: np.random.Generator) -> np.ndarray:
    """One epoch of n draws of progressively-balanced sampling at t ∈ [0, 1] (Kang et al. 2020).

    `mix`: p(t) = (1 − t)·p^IB + t·p^CB as a mixture: each slot of a shuffled epoch keeps its example with
    probability 1 − t, else takes a uniform class and a uniform example of it. `exponent`: p_j ∝ n_j^(1 − t).

    >>> idx = progressive_epoch(np.array([0, 1, 2]), np.array([0, 2]), np.array([2, 1]), 3, 0.0, "mix",
    ...                         np.random.default_rng(0))
    >>> sorted(idx.tolist())  # t = 0: an ordinary shuffled epoch
    [0, 1, 2]
    """
    if schedule not in ("mix", "exponent"):
        raise ValueError(f"schedule must be mix or exponent, got {schedule!r}")
    if counts.sum() == 0:
        return rng.permutation(n)
    t = float(np.clip(t, 0.0, 1.0))
    if schedule == "exponent":
        return draw_class_aware(class_sampling_probs(counts, 1.0 - t), members, starts, counts, n, rng)
    balanced = rng.random(n) < t
    idx = rng.permutation(n)  # the instance-balanced part is an ordinary shuffled epoch
    nb = int(balanced.sum())
    if nb:
        idx[balanced] = draw_class_aware(class_sampling_probs(counts, 0.0), members, starts, counts, nb, rng)
    return idx

