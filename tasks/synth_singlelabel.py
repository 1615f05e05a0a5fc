"""Offline long-tailed single-label task: confusable Gaussian classes with the CIFAR-LT exponential profile (ρ = 100)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from benchmark import Param, Split, Task, TaskData, register_task
from benchmark.core.deploy import draw_deploy_labels
from benchmark.deploy import attach_deploy, deploy_params
from benchmark.synthetic import confusable_means, exponential_counts
from benchmark.task import ArrayDataset

if TYPE_CHECKING:  # torch loads on first use, so that listing and validating stay torch-free
    import torch


@register_task
class SynthSingleLabel(Task):
    """Training counts n_j = n_max · ρ^(-j/(C-1)); the evaluation pool has a natural group and a uniform group."""

    name = "synth-singlelabel"
    description = "seeded Gaussian single-label task, CIFAR-LT exponential profile, confusable classes"
    source = "generated (offline)"
    license = "n/a (synthetic)"
    size = "~5k train / 20k eval pool, generated in < 1 s"
    gpu_time = "seconds (CPU: ~2 s per run)"
    multi_label = False
    main_metric = "top1"
    secondary_metric = "balanced_acc"
    params = {
        "classes": Param(int, 20, "number of classes", min=2, max=2000),
        "rho": Param(float, 100.0, "imbalance ratio n_max / n_min", min=1.0, max=1e6),
        "n_max": Param(int, 1000, "training examples of the most frequent class", min=1, max=10_000_000),
        "dim": Param(int, 16, "feature dimension", min=1, max=4096),
        "groups": Param(int, 5, "confusable groups of classes", min=1, max=2000),
        "spread": Param(float, 1.0, "distance of class means from their group centre", min=0.0, max=100.0),
        "noise": Param(float, 1.0, "feature noise standard deviation", min=0.0, max=100.0),
        "n_eval": Param(int, 10_000, "natural evaluation examples (i.i.d., training prior)", min=10),
        "per_class_uniform": Param(int, 300, "uniform evaluation examples per class", min=0),
        "hidden": Param(int, 64, "MLP hidden units", min=1, max=65_536),
        "epochs": Param(float, 40.0, "training budget in epochs of the training set", min=0.01, max=1e4),
        "data_seed": Param(int, 0, "seed of the generated data (model seeds vary per run)", min=0),
        **deploy_params(5000),
    }
    batch_size = 128
    lr = 3e-3

    @property
    def num_classes(self) -> int:
        return self.classes

    def counts(self) -> np.ndarray:
        return exponential_counts(self.classes, self.n_max, self.rho)

    @property
    def budget_samples(self) -> int:  # type: ignore[override]
        return int(round(self.epochs * self.counts().sum()))

    def load(self) -> TaskData:
        rng = np.random.default_rng(self.data_seed)
        means = confusable_means(self.classes, self.dim, self.groups, self.spread, rng)
        counts = self.counts()
        prior = counts / counts.sum()

        def draw(y: np.ndarray) -> Split:
            y = rng.permutation(y).astype(np.int64)
            x = (means[y] + self.noise * rng.normal(size=(y.size, self.dim))).astype(np.float32)
            return Split(ArrayDataset(x, y), y, features=x)

        def eval_split(n_nat: int, per_class: int):
            y_nat = rng.choice(self.classes, size=n_nat, p=prior)
            y_uni = np.repeat(np.arange(self.classes), per_class)
            nat, uni = draw(y_nat), draw(y_uni)
            x = np.concatenate([nat.features, uni.features])
            y = np.concatenate([nat.labels, uni.labels])
            groups = {"natural": np.arange(n_nat), "balanced_candidates": np.arange(n_nat, n_nat + y_uni.size)}
            return Split(ArrayDataset(x, y), y, features=x), groups

        train = draw(np.repeat(np.arange(self.classes), counts))
        val, val_groups = eval_split(max(self.n_eval // 4, 10), max(self.per_class_uniform // 4, 1))
        pool, pool_groups = eval_split(self.n_eval, self.per_class_uniform)

        def draw_deploy(p: np.ndarray, n: int, drng: np.random.Generator):
            y = draw_deploy_labels(p, n, drng)
            return (means[y] + self.noise * drng.normal(size=(n, self.dim))).astype(np.float32), y

        return attach_deploy(self, TaskData(train, val, pool, pool_groups, val_groups), counts, draw_deploy)

    def build_model(self) -> torch.nn.Module:
        from benchmark.models import MLP

        return MLP(self.dim, self.hidden, self.classes)
