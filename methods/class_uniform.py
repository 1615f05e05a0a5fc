"""Class-uniform round-robin sampling (Kong et al. 2020, "PANNs", arXiv 1912.10211: BalancedTrainSampler)."""
import numpy as np

from benchmark import Method, Param, register_method
from benchmark.method import TrainInfo
from benchmark.sampling import RoundRobin, class_members


@register_method
class ClassUniform(Method):
    """Draw a class uniformly (round-robin over a shuffled queue), then the next example of that class.

    Epochs have the natural training set's length, so the fair budget is unchanged; rare classes' examples repeat
    many times, frequent classes' examples are seen less often. Multi-label: an example is listed under each of
    its classes. Classes without training examples are skipped. Outside the engine:
    `benchmark.samplers.ClassUniformSampler`.
    """

    name = "class_uniform"
    paper = "Kong et al. 2020 (PANNs), arXiv 1912.10211"
    params = {
        "per_class": Param(int, 1, "consecutive samples per class visit (PANNs 1, Kang et al. 4)", min=1, max=1024),
    }

    def setup(self, train: TrainInfo) -> None:
        super().setup(train)
        self.sampler = RoundRobin(*class_members(train.label_csr, train.num_classes), self.per_class)

    def epoch_indices(self, train: TrainInfo, epoch: int, progress: float, rng: np.random.Generator) -> np.ndarray:
        if epoch == 0:
            self.sampler.reset()  # a re-iterated stream must repeat itself exactly
        return self.sampler.epoch(train.n_examples, rng)
