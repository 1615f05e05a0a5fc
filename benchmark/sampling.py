"""The training index stream: a method's epochs, concatenated until the fair budget of samples is reached."""
from __future__ import annotations

from typing import Iterator

import numpy as np
from torch.utils.data import Sampler

from .method import Method, TrainInfo


class BudgetBatchSampler(Sampler[list[int]]):
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
        # same seed for every method: a method with all factors 1 reproduces the baseline exactly
        rng = np.random.default_rng([self.seed, 0x5A3B])
        self.draw_counts[:] = 0
        drawn, epoch, b = 0, 0, self.batch_size
        carry: list[int] = []  # the start of a batch that runs into the next epoch
        while drawn < self.budget:
            idx = self.method.epoch_head(self.train, epoch, drawn / self.budget, rng, self.budget - drawn)
            idx = np.asarray(idx, dtype=np.int64)[: self.budget - drawn]
            if idx.size == 0:
                raise RuntimeError(f"method '{self.method.name}' produced an empty epoch")
            if idx.min() < 0 or idx.max() >= self.train.n_examples:
                raise RuntimeError(f"method '{self.method.name}' produced indices outside the training set")
            self.draw_counts += np.bincount(idx, minlength=self.train.n_examples)
            drawn += idx.size
            epoch += 1
            start = 0
            if carry:
                start = min(b - len(carry), idx.size)
                carry += idx[:start].tolist()
                if len(carry) < b:
                    continue
                yield carry
            full = start + (idx.size - start) // b * b
            for s in range(start, full, b):
                yield idx[s:s + b].tolist()
            carry = idx[full:].tolist()
        if carry:
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


class ShardedBatchSampler(Sampler[list[int]]):
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
        n, b = self.num_shards, self.inner.batch_size
        group: list[list[int]] = []
        for batch in self.inner:
            group.append(batch)
            if len(group) == n and len(batch) == b:
                yield group[self.shard]
                group = []
        if group:  # the end of the stream: fewer than n batches, or a short last batch
            rest = np.concatenate([np.asarray(g, dtype=np.int64) for g in group])
            if rest.size >= n:
                yield np.array_split(rest, n)[self.shard].tolist()
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
