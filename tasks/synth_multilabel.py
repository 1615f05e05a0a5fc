"""Offline long-tailed multi-label task: Gaussian mixtures of confusable classes with a power-law prior (AudioSet's shape)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from benchmark import Param, Split, Task, TaskData, register_task
from benchmark.deploy import attach_deploy, deploy_params
from benchmark.synthetic import confusable_means, draw_label_sets, power_law_prior
from benchmark.task import ArrayDataset

if TYPE_CHECKING:  # torch loads on first use, so that listing and validating stay torch-free
    import torch


@register_task
class SynthMultiLabel(Task):
    """x = sum of the means of an example's classes + unit noise; classes in a group look alike.

    The training set and a `natural` evaluation group are drawn with the long-tailed prior; a second evaluation
    group is drawn with a uniform class prior so that the balanced and inverse views have enough rare positives.
    """

    name = "synth-multilabel"
    description = "seeded Gaussian-mixture multi-label task, power-law prior, confusable common/rare classes"
    source = "generated (offline)"
    license = "n/a (synthetic)"
    size = "20k train / 6k val / 26k eval pool, generated in < 1 s"
    gpu_time = "seconds (CPU: ~3 s per run)"
    multi_label = True
    main_metric = "mAP"
    secondary_metric = "dprime"
    params = {
        "classes": Param(int, 60, "number of classes", min=2, max=2000),
        "exponent": Param(float, 1.3, "power-law prior exponent (ρ ≈ 150 at 60 classes)", min=0.0, max=5.0),
        "labels_per_example": Param(float, 2.5, "mean labels per example", min=1.0, max=20.0),
        "dim": Param(int, 24, "feature dimension", min=1, max=4096),
        "groups": Param(int, 12, "confusable groups of classes", min=1, max=2000),
        "spread": Param(float, 0.6, "distance of class means from their group centre", min=0.0, max=100.0),
        "n_train": Param(int, 20_000, "training examples", min=10, max=10_000_000),
        "n_eval": Param(int, 20_000, "natural evaluation examples (i.i.d., training prior)", min=10, max=10_000_000),
        "n_uniform": Param(int, 6_000, "uniform-prior evaluation examples", min=0, max=10_000_000),
        "hidden": Param(int, 64, "MLP hidden units", min=1, max=65_536),
        "epochs": Param(float, 25.0, "training budget in epochs of the natural training set", min=0.01, max=1e4),
        "data_seed": Param(int, 0, "seed of the generated data (model seeds vary per run)", min=0),
        **deploy_params(5000),
    }
    batch_size = 256
    lr = 3e-3

    @property
    def num_classes(self) -> int:
        return self.classes

    @property
    def budget_samples(self) -> int:  # type: ignore[override]
        return int(round(self.epochs * self.n_train))

    def load(self) -> TaskData:
        rng = np.random.default_rng(self.data_seed)
        prior = power_law_prior(self.classes, self.exponent)
        means = confusable_means(self.classes, self.dim, self.groups, self.spread, rng)
        uniform = np.full(self.classes, 1.0 / self.classes)

        def draw(n: int, p: np.ndarray):
            y = draw_label_sets(n, p, self.labels_per_example, rng)
            x = y.astype(np.float32) @ means.astype(np.float32) + rng.normal(size=(n, self.dim)).astype(np.float32)
            return x, y

        def split(parts):
            x = np.concatenate([p[0] for p in parts])
            y = np.concatenate([p[1] for p in parts])
            return Split(ArrayDataset(x, y.astype(np.float32)), y, features=x)

        train = split([draw(self.n_train, prior)])
        n_val, n_val_u = max(self.n_eval // 4, 10), max(self.n_uniform // 4, 0)
        val = split([draw(n_val, prior), draw(n_val_u, uniform)])
        pool = split([draw(self.n_eval, prior), draw(self.n_uniform, uniform)])

        def groups(n_nat: int, n_uni: int):
            g = {"natural": np.arange(n_nat)}
            if n_uni:
                g["balanced_candidates"] = np.arange(n_nat, n_nat + n_uni)
            return g

        def draw_deploy(p: np.ndarray, n: int, drng: np.random.Generator):
            # label sets drawn ∝ the deployment class proportions, as the training sets are drawn ∝ the prior
            y = draw_label_sets(n, p, self.labels_per_example, drng)
            x = y.astype(np.float32) @ means.astype(np.float32) + drng.normal(size=(n, self.dim)).astype(np.float32)
            return x, y

        data = TaskData(train, val, pool, groups(self.n_eval, self.n_uniform), groups(n_val, n_val_u))
        return attach_deploy(self, data, train.labels.sum(axis=0), draw_deploy, label_shape=(self.classes,))

    def build_model(self) -> torch.nn.Module:
        from benchmark.models import MLP

        return MLP(self.dim, self.hidden, self.classes)
