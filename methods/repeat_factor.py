"""Repeat-factor sampling (Gupta et al. 2019, LVIS, arXiv 1908.03195; detectron2's RepeatFactorTrainingSampler)."""
import numpy as np

from benchmark import Method, Param, register_method
from benchmark.method import TrainInfo, class_factors_to_examples


def class_repeat_factors(train: TrainInfo, t: float, power: float) -> np.ndarray:
    """r_c = max(1, (t / f_c)^power), f_c the fraction of training examples carrying c; 1 for absent classes."""
    f = train.class_counts / max(train.n_examples, 1)
    r = np.ones(train.num_classes)
    present = f > 0
    r[present] = np.maximum(1.0, (t / f[present]) ** power)
    return r


@register_method
class RepeatFactor(Method):
    """Each example repeated r_i = max over its labels of r_c = max(1, sqrt(t / f_c)) times per epoch.

    Fractional factors are rounded stochastically each epoch (integer part + Bernoulli of the rest), as in
    detectron2's RepeatFactorTrainingSampler. Only classes rarer than the threshold t are repeated; t = 0.001 is
    LVIS' value. `power` generalizes the square root (detectron2 PR #5245).
    """

    name = "repeat_factor"
    paper = "Gupta et al. 2019 (LVIS), arXiv 1908.03195"
    params = {
        "t": Param(float, 0.001, "frequency threshold: classes in fewer than this fraction of examples repeat",
                   min=0.0, max=1.0),
        "power": Param(float, 0.5, "exponent of t / f_c (0.5: LVIS' square root)", min=0.0, max=4.0),
    }

    def repeat_factors(self, train: TrainInfo) -> np.ndarray:
        r = class_repeat_factors(train, self.t, self.power)
        # absent classes carry no examples, so the sparse label index needs no masking
        return class_factors_to_examples(train.label_csr, r, "max", default=1.0)
