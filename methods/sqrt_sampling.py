"""Square-root class-aware sampling, p_j ∝ n_j^q (Kang et al. 2020, "Decoupling...", arXiv 1910.09217)."""
import numpy as np

from benchmark import Method, Param, register_method
from benchmark.method import TrainInfo
from benchmark.sampling import class_members, class_sampling_probs, draw_class_aware


@register_method
class SqrtSampling(Method):
    """Each epoch draws N samples i.i.d.: a class with probability ∝ n_j^q, then one of its examples uniformly.

    q = 1/2 is square-root sampling; q = 0 class-balanced, q = 1 instance-balanced for single-label tasks (for
    multi-label tasks q = 1 weights each example by its number of labels, since an example is listed under each).
    Outside the engine: `benchmark.samplers.SquareRootSampler`.
    """

    name = "sqrt_sampling"
    paper = "Kang et al. 2020, arXiv 1910.09217"
    params = {"q": Param(float, 0.5, "exponent q of p_j ∝ n_j^q (1 instance, 0.5 square root, 0 class-balanced)",
                         min=0.0, max=1.0)}

    def setup(self, train: TrainInfo) -> None:
        super().setup(train)
        self.csr = class_members(train.label_csr, train.num_classes)
        self.class_p = class_sampling_probs(self.csr[2], self.q)

    def epoch_indices(self, train: TrainInfo, epoch: int, progress: float, rng: np.random.Generator) -> np.ndarray:
        if self.class_p.sum() == 0:
            return rng.permutation(train.n_examples)  # no labels at all: nothing to balance
        return draw_class_aware(self.class_p, *self.csr, train.n_examples, rng)
