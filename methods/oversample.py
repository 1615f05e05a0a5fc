"""β-oversampling of rare classes (Moore et al. 2023, "Dataset balancing can hurt model performance", arXiv 2307.00079)."""
import numpy as np

from benchmark import Method, Param, register_method
from benchmark.method import TrainInfo, class_factors_to_examples
from benchmark.sampling import oversampling_class_factors


@register_method
class Oversample(Method):
    """Repeat each example by the max (or sum / mean) of its classes' factors (n_max/n_j)^β; β=0 is no balancing.

    How a multi-label clip combines its labels' factors is not stated in the paper: `max` is the default (as in
    repeat-factor sampling), `sum` is the AST repository's rule. Fractional factors are rounded stochastically
    each epoch, so the expected number of repeats is exact. Outside the engine:
    `benchmark.samplers.OversamplingSampler`.
    """

    name = "oversample"
    paper = "Moore et al. 2023, arXiv 2307.00079"
    params = {
        "beta": Param(float, 0.5, "balancing strength: 0 none, 1 full", min=0.0, max=4.0),
        "aggregate": Param(str, "max", "how a multi-label example combines its labels' factors",
                           choices=("max", "sum", "mean")),
    }

    def repeat_factors(self, train: TrainInfo) -> np.ndarray:
        factors = oversampling_class_factors(train.class_counts, self.beta)
        # absent classes carry factor 0, but no training example carries them, so they never enter a max/mean
        return class_factors_to_examples(train.label_csr, factors, self.aggregate, default=1.0)
