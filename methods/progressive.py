"""Progressively-balanced sampling (Kang et al. 2020, "Decoupling Representation...", arXiv 1910.09217)."""
import numpy as np

from benchmark import Method, Param, register_method
from benchmark.method import TrainInfo
from methods.class_uniform import class_members
from methods.sqrt_sampling import class_sampling_probs, draw_class_aware


@register_method
class Progressive(Method):
    """Sampling moves from instance-balanced to class-balanced over training, epoch by epoch (t = budget fraction).

    `mix` (the paper's definition): p(t) = (1 − t)·p^IB + t·p^CB, drawn as a mixture: each slot of a shuffled
    epoch keeps its example with probability 1 − t (natural sampling, also for multi-label tasks), else takes a
    uniformly drawn class and one of its examples. `exponent`: class probabilities ∝ n_j^q with q = 1 − t.
    """

    name = "progressive"
    paper = "Kang et al. 2020, arXiv 1910.09217"
    params = {"schedule": Param(str, "mix", "mix: (1−t)·instance + t·class-balanced; exponent: q = 1 − t",
                                choices=("mix", "exponent"))}

    def setup(self, train: TrainInfo) -> None:
        super().setup(train)
        self.csr = class_members(train)

    def epoch_indices(self, train: TrainInfo, epoch: int, progress: float, rng: np.random.Generator) -> np.ndarray:
        n, counts = train.n_examples, self.csr[2]
        if counts.sum() == 0:
            return rng.permutation(n)
        t = float(np.clip(progress, 0.0, 1.0))
        if self.schedule == "exponent":
            return draw_class_aware(class_sampling_probs(counts, 1.0 - t), *self.csr, n, rng)
        balanced = rng.random(n) < t
        idx = rng.permutation(n)  # the instance-balanced part is an ordinary shuffled epoch
        nb = int(balanced.sum())
        if nb:
            idx[balanced] = draw_class_aware(class_sampling_probs(counts, 0.0), *self.csr, nb, rng)
        return idx
