"""Square-root class-aware sampling, p_j ∝ n_j^q (Kang et al. 2020, "Decoupling...", arXiv 1910.09217)."""
import numpy as np

from benchmark import Method, Param, register_method
from benchmark.method import TrainInfo
from methods.class_uniform import class_members


def class_sampling_probs(counts: np.ndarray, q: float) -> np.ndarray:
    """p_j = n_j^q / Σ_k n_k^q over present classes (q = 1 instance-, 1/2 square-root, 0 class-balanced)."""
    n = np.asarray(counts, dtype=np.float64)
    p = np.zeros_like(n)
    present = n > 0
    p[present] = n[present] ** q
    return p / p.sum() if p.sum() > 0 else p


def draw_class_aware(class_p: np.ndarray, members: np.ndarray, starts: np.ndarray, counts: np.ndarray, n: int,
                     rng: np.random.Generator) -> np.ndarray:
    """n i.i.d. draws: a class from `class_p`, then one of its examples uniformly (vectorized)."""
    c = rng.choice(class_p.size, size=n, p=class_p)
    k = np.minimum((rng.random(n) * counts[c]).astype(np.int64), counts[c] - 1)
    return members[starts[c] + k]


@register_method
class SqrtSampling(Method):
    """Each epoch draws N samples i.i.d.: a class with probability ∝ n_j^q, then one of its examples uniformly.

    q = 1/2 is square-root sampling; q = 0 class-balanced, q = 1 instance-balanced for single-label tasks (for
    multi-label tasks q = 1 weights each example by its number of labels, since an example is listed under each).
    """

    name = "sqrt_sampling"
    paper = "Kang et al. 2020, arXiv 1910.09217"
    params = {"q": Param(float, 0.5, "exponent q of p_j ∝ n_j^q (1 instance, 0.5 square root, 0 class-balanced)",
                         min=0.0, max=1.0)}

    def setup(self, train: TrainInfo) -> None:
        super().setup(train)
        self.csr = class_members(train)
        self.class_p = class_sampling_probs(self.csr[2], self.q)

    def epoch_indices(self, train: TrainInfo, epoch: int, progress: float, rng: np.random.Generator) -> np.ndarray:
        if self.class_p.sum() == 0:
            return rng.permutation(train.n_examples)  # no labels at all: nothing to balance
        return draw_class_aware(self.class_p, *self.csr, train.n_examples, rng)
