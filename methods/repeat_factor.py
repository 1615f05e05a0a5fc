"""Repeat-factor sampling (Gupta et al. 2019, LVIS, arXiv 1908.03195; detectron2's RepeatFactorTrainingSampler)."""
import numpy as np

from benchmark import Method, Param, register_method
from benchmark.method import TrainInfo, class_factors_to_examples
from benchmark.sampling import lvis_class_factors, parse_threshold, repeat_threshold


def _check_t(value: str):
    try:
        parse_threshold(value)
    except ValueError:
        return "must be auto or a number in [0, 1]"
    return None


@register_method
class RepeatFactor(Method):
    """Each example repeated r_i = max over its labels of r_c = max(1, sqrt(t / f_c)) times per epoch.

    Fractional factors are rounded stochastically each epoch (integer part + Bernoulli of the rest), as in
    detectron2's RepeatFactorTrainingSampler. Only classes rarer than the threshold t are repeated. LVIS' t = 0.001
    repeats no class of the offline tasks (their rarest class is in 0.2-2.5 % of the examples), so the default
    `t=auto` puts t where LVIS v1's 0.001 sits among its classes: about two thirds of the classes lie below it
    (798 of 1,203). `t=0.001` is the paper's value; a run whose t repeats nothing logs a warning. `power`
    generalizes the square root (detectron2 PR #5245). Outside the engine: `benchmark.samplers.RepeatFactorSampler`.
    """

    name = "repeat_factor"
    paper = "Gupta et al. 2019 (LVIS), arXiv 1908.03195"
    params = {
        "t": Param(str, "auto", "frequency threshold: classes in fewer than this fraction of examples repeat; auto: "
                   "two thirds of the classes below it (LVIS: 0.001)", check=_check_t),
        "power": Param(float, 0.5, "exponent of t / f_c (0.5: LVIS' square root)", min=0.0, max=4.0),
    }

    def setup(self, train: TrainInfo) -> None:
        super().setup(train)
        self.threshold, warning = repeat_threshold(train.class_counts, train.n_examples, self.t)
        if warning:
            self.warn(warning)

    def repeat_factors(self, train: TrainInfo) -> np.ndarray:
        r = lvis_class_factors(train.class_counts, train.n_examples, self.threshold, self.power)
        # absent classes carry no examples, so the sparse label index needs no masking
        return class_factors_to_examples(train.label_csr, r, "max", default=1.0)
