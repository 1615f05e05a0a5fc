"""Progressively-balanced sampling (Kang et al. 2020, "Decoupling Representation...", arXiv 1910.09217)."""
import numpy as np

from benchmark import Method, Param, register_method
from benchmark.method import TrainInfo
from benchmark.sampling import class_members, progressive_epoch


@register_method
class Progressive(Method):
    """Sampling moves from instance-balanced to class-balanced over training, epoch by epoch (t = budget fraction).

    `mix` (the paper's definition): p(t) = (1 − t)·p^IB + t·p^CB, drawn as a mixture: each slot of a shuffled
    epoch keeps its example with probability 1 − t (natural sampling, also for multi-label tasks), else takes a
    uniformly drawn class and one of its examples. `exponent`: class probabilities ∝ n_j^q with q = 1 − t.
    Outside the engine: `benchmark.samplers.ProgressiveSampler`.
    """

    name = "progressive"
    paper = "Kang et al. 2020, arXiv 1910.09217"
    params = {"schedule": Param(str, "mix", "mix: (1−t)·instance + t·class-balanced; exponent: q = 1 − t",
                                choices=("mix", "exponent"))}

    def setup(self, train: TrainInfo) -> None:
        super().setup(train)
        self.csr = class_members(train.label_csr, train.num_classes)

    def epoch_indices(self, train: TrainInfo, epoch: int, progress: float, rng: np.random.Generator) -> np.ndarray:
        return progressive_epoch(*self.csr, train.n_examples, progress, self.schedule, rng)
