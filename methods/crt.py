"""Classifier re-training, cRT (Kang et al. 2020, "Decoupling Representation and Classifier...", arXiv 1910.09217)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from benchmark import Method, Param, UserError, register_method
from benchmark.method import TrainInfo
from benchmark.sampling import RoundRobin, class_members

if TYPE_CHECKING:  # torch loads on first use, so that listing and validating stay torch-free
    import torch


@register_method
class CRT(Method):
    """Re-train only the classifier `.head` of the trained baseline, with class-balanced sampling.

    Starts from the baseline `none` model of the same seed, freezes everything but `.head`, re-initializes the
    head and trains it with class-balanced round-robin sampling (as `class_uniform`).

    This second stage draws `budget` × the task's budget on top of the baseline's (Kang et al.: 10 epochs after
    90); `effective_prior` and `train_time_s` describe this stage only. Needs a model with a `.head` module
    (benchmark.task.MLP has one).
    """

    name = "crt"
    paper = "Kang et al. 2020, arXiv 1910.09217"
    init_from_baseline = True
    params = {
        "budget": Param(float, 0.2, "samples of the classifier stage, as a fraction of the task's budget",
                        min=0.001, max=10.0),
        "reinit": Param(bool, True, "re-initialize the head before re-training it (as in the paper)"),
        "per_class": Param(int, 1, "consecutive samples per class visit of the balanced sampler", min=1, max=1024),
    }

    def prepare_model(self, model: torch.nn.Module) -> None:
        import torch

        head = getattr(model, "head", None)
        if not isinstance(head, torch.nn.Module) or not any(True for _ in head.parameters()):
            raise UserError(f"method '{self.name}' re-trains the classifier `.head` of the task's model, and "
                            f"{type(model).__name__} has none; give the model a `.head` (see benchmark.task.MLP)")
        for p in model.parameters():
            p.requires_grad_(False)
        for p in head.parameters():
            p.requires_grad_(True)
        if self.reinit:
            for m in head.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()

    def setup(self, train: TrainInfo) -> None:
        super().setup(train)
        self.sampler = RoundRobin(*class_members(train.label_csr, train.num_classes), self.per_class)

    def train_samples(self, budget: int) -> int:
        return max(1, int(round(self.budget * budget)))

    def epoch_indices(self, train: TrainInfo, epoch: int, progress: float, rng: np.random.Generator) -> np.ndarray:
        if epoch == 0:
            self.sampler.reset()  # a re-iterated stream must repeat itself exactly
        return self.sampler.epoch(train.n_examples, rng)
