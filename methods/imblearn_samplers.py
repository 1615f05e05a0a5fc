"""imbalanced-learn resamplers (Lemaître et al. 2017, arXiv 1609.06570; SMOTE: Chawla et al. 2002, arXiv 1106.1813)."""
from typing import Any, Optional

import numpy as np

from benchmark import Method, Param, UserError, register_method
from benchmark.method import TrainInfo

OVER = ("not_majority", "minority", "not_minority", "all")
UNDER = ("not_minority", "majority", "not_majority", "all")


class _ImblearnAdapter(Method):
    """Resample the training set's feature vectors once per run, then train on it with the same sample budget."""

    multi_label = False
    single_label = True

    def check_task(self, multi_label: bool, task_name: str = "") -> None:
        if multi_label:
            raise UserError(f"method '{self.name}': imbalanced-learn does not support multi-label targets and "
                            f"'{task_name}' is multi-label; use oversample or repeat_factor there")

    def make_sampler(self, seed: int, counts: np.ndarray) -> Any:
        raise NotImplementedError

    def resample(self, train: TrainInfo, rng: np.random.Generator) -> Optional[tuple[np.ndarray, np.ndarray]]:
        if train.multi_label:
            self.check_task(True, "this task")
        if train.features is None:
            raise UserError(f"method '{self.name}' resamples feature vectors, but this task's training split has "
                            f"none (Split.features); use it on tabular / embedding tasks, or use oversample")
        counts = train.class_counts
        if np.count_nonzero(counts) < 2:
            return None  # one class: nothing to balance (imbalanced-learn would refuse)
        sampler = self.make_sampler(int(rng.integers(2**31 - 1)), counts)
        x, y = sampler.fit_resample(np.asarray(train.features), np.asarray(train.labels))
        return np.asarray(x, dtype=train.features.dtype), np.asarray(y, dtype=np.int64)


@register_method
class ImblearnOver(_ImblearnAdapter):
    """imbalanced-learn RandomOverSampler: duplicate random examples of the chosen classes up to the majority count."""

    name = "imblearn_over"
    paper = "Lemaître et al. 2017 (imbalanced-learn), arXiv 1609.06570"
    params = {"strategy": Param(str, "not_majority", "which classes to resample (imbalanced-learn sampling_strategy)",
                                choices=OVER)}

    def make_sampler(self, seed: int, counts: np.ndarray) -> Any:
        from imblearn.over_sampling import RandomOverSampler

        return RandomOverSampler(sampling_strategy=self.strategy.replace("_", " "), random_state=seed)


@register_method
class ImblearnSMOTE(_ImblearnAdapter):
    """imbalanced-learn SMOTE: new examples interpolated between a minority example and one of its k neighbours."""

    name = "imblearn_smote"
    paper = "Chawla et al. 2002 (SMOTE), arXiv 1106.1813"
    params = {
        "k_neighbors": Param(int, 5, "neighbours to interpolate with (capped at the rarest class's size − 1)",
                             min=1, max=100),
        "strategy": Param(str, "not_majority", "which classes to resample (imbalanced-learn sampling_strategy)",
                          choices=OVER),
    }

    def make_sampler(self, seed: int, counts: np.ndarray) -> Any:
        from imblearn.over_sampling import SMOTE

        smallest = int(counts[counts > 0].min())
        if smallest < 2:
            raise UserError(f"method '{self.name}': SMOTE needs at least 2 training examples per class, and class "
                            f"{int(np.flatnonzero(counts == smallest)[0])} has 1; use imblearn_over instead")
        return SMOTE(sampling_strategy=self.strategy.replace("_", " "), k_neighbors=min(self.k_neighbors,
                     smallest - 1), random_state=seed)


@register_method
class ImblearnUnder(_ImblearnAdapter):
    """imbalanced-learn RandomUnderSampler: drop random examples of the chosen classes down to the minority count."""

    name = "imblearn_under"
    paper = "Lemaître et al. 2017 (imbalanced-learn), arXiv 1609.06570"
    params = {"strategy": Param(str, "not_minority", "which classes to resample (imbalanced-learn sampling_strategy)",
                                choices=UNDER)}

    def make_sampler(self, seed: int, counts: np.ndarray) -> Any:
        from imblearn.under_sampling import RandomUnderSampler

        return RandomUnderSampler(sampling_strategy=self.strategy.replace("_", " "), random_state=seed)
