"""Class-uniform round-robin sampling (Kong et al. 2020, "PANNs", arXiv 1912.10211: BalancedTrainSampler)."""
import numpy as np

from benchmark import Method, Param, register_method
from benchmark.method import TrainInfo


def class_members(train: TrainInfo) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(members, starts, counts): examples carrying class c are members[starts[c]:starts[c] + counts[c]]."""
    rows, cols = np.nonzero(train.label_matrix)
    order = np.argsort(cols, kind="stable")
    counts = np.bincount(cols, minlength=train.num_classes).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    return rows[order].astype(np.int64), starts, counts


class RoundRobin:
    """PANNs' sampler, vectorized: a shuffled queue of the present classes, refilled when empty, gives each slot's
    class; the slot takes that class's next example from its own shuffled list, reshuffled when exhausted.

    Every present class is drawn equally often. `per_class` consecutive slots share one class (Kang et al.'s
    ClassAwareSampler uses 4). Queue and per-class positions carry over between epochs.
    """

    def __init__(self, train: TrainInfo, per_class: int = 1) -> None:
        self.members, self.starts, self.counts = class_members(train)
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


@register_method
class ClassUniform(Method):
    """Draw a class uniformly (round-robin over a shuffled queue), then the next example of that class.

    Epochs have the natural training set's length, so the fair budget is unchanged; rare classes' examples repeat
    many times, frequent classes' examples are seen less often. Multi-label: an example is listed under each of
    its classes. Classes without training examples are skipped.
    """

    name = "class_uniform"
    paper = "Kong et al. 2020 (PANNs), arXiv 1912.10211"
    params = {
        "per_class": Param(int, 1, "consecutive samples per class visit (PANNs 1, Kang et al. 4)", min=1, max=1024),
    }

    def setup(self, train: TrainInfo) -> None:
        super().setup(train)
        self.sampler = RoundRobin(train, self.per_class)

    def epoch_indices(self, train: TrainInfo, epoch: int, progress: float, rng: np.random.Generator) -> np.ndarray:
        if epoch == 0:
            self.sampler.reset()  # a re-iterated stream must repeat itself exactly
        return self.sampler.epoch(train.n_examples, rng)
