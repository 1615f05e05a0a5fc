"""Offline real-data long-tailed task: scikit-learn's bundled handwritten digits (UCI optdigits test set) with the CIFAR-LT exponential profile."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from benchmark import Param, Split, Task, TaskData, UserError, register_task
from benchmark.core.deploy import pick_per_class
from benchmark.deploy import attach_deploy, deploy_params
from benchmark.synthetic import exponential_counts
from benchmark.task import ArrayDataset

if TYPE_CHECKING:  # torch loads on first use, so that listing and validating stay torch-free
    from torch import nn


@register_task
class DigitsLT(Task):
    """Per class, `test_per_class` and `val_per_class` images are held out (balanced); training keeps
    n_j = int(n_max · ρ^(-j/9)) of the rest, digit 0 the most frequent. The views subsample the balanced held-out set.
    """

    name = "digits-lt"
    description = "sklearn's bundled 8x8 handwritten digits, long-tailed training (ρ=10), balanced held-out pool"
    source = "sklearn.datasets.load_digits (UCI optdigits, bundled with scikit-learn: works offline)"
    license = "CC BY 4.0 (UCI Machine Learning Repository)"
    size = "1,797 images of 8x8 pixels, 10 classes (~180 each); 403 long-tailed training images at the defaults"
    gpu_time = "seconds (CPU: ~1 s per run at the defaults)"
    multi_label = False
    main_metric = "top1"
    secondary_metric = "balanced_acc"
    params = {
        "rho": Param(float, 10.0, "imbalance ratio n_max / n_min of the training set", min=1.0, max=100.0),
        "n_max": Param(int, 100, "training images of the most frequent digit", min=1, max=180),
        "test_per_class": Param(int, 50, "held-out evaluation images per digit (the pool)", min=1, max=170),
        "val_per_class": Param(int, 20, "held-out validation images per digit", min=1, max=170),
        "model": Param(str, "mlp", "classifier on the 64 pixels", choices=("mlp", "cnn")),
        "hidden": Param(int, 64, "MLP hidden units / CNN base width", min=1, max=4096),
        "epochs": Param(float, 60.0, "training budget in epochs of the long-tailed training set", min=0.01,
                        max=1e4),
        "data_seed": Param(int, 0, "seed of the held-out / training split (model seeds vary per run)", min=0),
        **deploy_params(None),
    }
    batch_size = 64
    lr = 3e-3

    @property
    def num_classes(self) -> int:
        return 10

    @property
    def class_names(self) -> list[str]:
        return [str(d) for d in range(10)]

    def counts(self) -> np.ndarray:
        return exponential_counts(10, self.n_max, self.rho)

    @property
    def budget_samples(self) -> int:  # type: ignore[override]
        return int(round(self.epochs * self.counts().sum()))

    def load(self) -> TaskData:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = (digits.data / 16.0).astype(np.float32)  # pixel values are 0..16
        y = digits.target.astype(np.int64)
        have = np.bincount(y, minlength=10)
        need = self.test_per_class + self.val_per_class + self.counts()
        if np.any(need > have):
            j = int(np.argmax(need - have))
            raise UserError(f"digits-lt: digit {j} has {have[j]} images but test_per_class + val_per_class + its "
                            f"training count need {need[j]}; lower n_max, test_per_class or val_per_class")
        rng = np.random.default_rng(self.data_seed)
        # one random ranking of each digit's images: test first, then validation, then training
        order = np.lexsort((rng.random(y.size), y))  # by class, random within class
        rank = np.empty(y.size, dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(have)[:-1]])
        rank[order] = np.arange(y.size) - np.repeat(starts, have)
        t, v = self.test_per_class, self.val_per_class
        test = rank < t
        val = (rank >= t) & (rank < t + v)
        train = (rank >= t + v) & (rank < t + v + self.counts()[y])

        def split(mask: np.ndarray) -> Split:
            idx = rng.permutation(np.flatnonzero(mask))
            return Split(ArrayDataset(x[idx], y[idx]), y[idx], features=x[idx])

        def draw_deploy(p: np.ndarray, n, drng: np.random.Generator):
            # the images no split uses (few of the head digit: the prior decides how many fit)
            idx = pick_per_class(y, ~(test | val | train), p, n, drng)
            return x[idx], y[idx]

        # a --deploy file holds raw 8x8 pixels (0..16), as sklearn's digits.data: scaled like the splits
        return attach_deploy(self, TaskData(split(train), split(val), split(test)), self.counts(), draw_deploy,
                             transform=lambda raw: raw / 16.0)

    def build_model(self) -> nn.Module:
        from benchmark.models import MLP, SmallCNN

        if self.model == "cnn":
            return SmallCNN(max(self.hidden // 4, 1), 10)
        return MLP(64, self.hidden, 10)
