"""The Task interface (MTEB-style): typed metadata plus loaders, a model factory and training defaults."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Optional

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from .params import Param


@dataclass
class Split:
    """A dataset and its labels as an array (the engine reads labels without touching the data)."""

    dataset: Dataset
    labels: np.ndarray  # (N, C) bool multi-label, (N,) int64 single-label
    features: Optional[np.ndarray] = None  # (N, D) when the inputs are plain feature vectors

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class TaskData:
    """Train / validation / evaluation pool. Views of the pool are built by the engine (benchmark.views).

    `pool_groups` optionally names subsets of the pool by how they were drawn (e.g. {"natural": idx} for clips
    drawn i.i.d. with the training prior, {"public": idx} for AudioSet's official eval set); view builders use
    them. `val_groups` does the same for the validation split.
    """

    train: Split
    val: Split
    pool: Split
    pool_groups: dict[str, np.ndarray] = field(default_factory=dict)
    val_groups: dict[str, np.ndarray] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # e.g. {"undecodable audio": 1}, reported in results
    notes: list[str] = field(default_factory=list)


class Task:
    """Base class. Subclasses set the class attributes and implement `load` and `build_model`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    source: ClassVar[str] = ""  # where the data comes from (hub id, package, "generated")
    license: ClassVar[str] = ""
    size: ClassVar[str] = ""  # human-readable size of the real data
    gpu_time: ClassVar[str] = ""  # expected run time on a GPU, for --list --verbose
    multi_label: ClassVar[bool] = True
    main_metric: ClassVar[str] = "mAP"
    secondary_metric: ClassVar[str] = "dprime"
    params: ClassVar[dict[str, Param]] = {}
    # Evaluation views built from the pool (see benchmark.views.VIEW_BUILDERS).
    views: ClassVar[tuple[str, ...]] = ("natural", "balanced", "inverse")
    balanced_min_positives: ClassVar[int] = 60  # AudioSet's eval set has >= ~59 clips per class

    # Training defaults: the fair budget is in samples seen, equal for every method on the task.
    budget_samples: int = 100_000
    batch_size: int = 128
    eval_batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 0.0
    num_workers: int = 0  # in-memory tasks need none; audio tasks use workers for decoding/features
    # CPU threads per process while training: small in-memory models run faster on one thread than on two that
    # fight over a 2-core machine (measured: digits-lt 1.4 s vs 23.6 s per run under load); None = torch's default
    cpu_threads: Optional[int] = 1
    checkpoint_every: int = 0  # steps between accelerator.save_state (0: off; seconds-long runs just restart)

    def __init__(self, **params: Any) -> None:
        self.hparams = dict(params)
        for k, v in params.items():
            setattr(self, k, v)

    @property
    def num_classes(self) -> int:
        raise NotImplementedError

    @property
    def class_names(self) -> list[str]:
        return [f"class_{j}" for j in range(self.num_classes)]

    def load(self) -> TaskData:
        """Build or read the data. Called once per process per task configuration; cached by the runner."""
        raise NotImplementedError

    def build_model(self) -> nn.Module:
        """A fresh model mapping a batch of inputs to (B, C) logits (seeded by the engine before the call)."""
        raise NotImplementedError

    def build_optimizer(self, model: nn.Module, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
        """Optimizer and per-step LR scheduler (None for constant). Default: Adam, constant LR."""
        opt = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        return opt, None

    def augment_batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch-level training augmentation on the device (e.g. MixUp, SpecAugment). Default: none."""
        return x, y

    def train_config(self) -> dict[str, Any]:
        """The resolved training settings, stored in every result's config."""
        return {
            "budget_samples": int(self.budget_samples),
            "batch_size": int(self.batch_size),
            "lr": float(self.lr),
            "weight_decay": float(self.weight_decay),
            "optimizer": "adam",
        }

    def info(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "license": self.license,
            "num_classes": self.num_classes,
            "multi_label": self.multi_label,
            "main_metric": self.main_metric,
            "secondary_metric": self.secondary_metric,
            "class_names": self.class_names,
        }


class ArrayDataset(Dataset):
    """In-memory (x, y) tensors with a batched fetch: the DataLoader gets a whole batch in one indexing op."""

    def __init__(self, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> None:
        self.x = torch.as_tensor(x)
        self.y = torch.as_tensor(y)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]

    def __getitems__(self, idx: list[int]):
        t = torch.as_tensor(idx, dtype=torch.long)
        return PreBatched((self.x[t], self.y[t]))


class PreBatched(tuple):
    """A batch that is already collated (see `collate`)."""


def collate(items):
    """DataLoader collate_fn that passes pre-batched tuples through and default-collates everything else."""
    if isinstance(items, PreBatched):
        return tuple(items)
    return torch.utils.data.default_collate(items)


class MLP(nn.Module):
    """Backbone (Linear-ReLU stack) + linear head; `forward_features` gives the penultimate embedding."""

    def __init__(self, in_dim: int, hidden: int, num_classes: int, depth: int = 1) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        d = in_dim
        for _ in range(depth):
            layers += [nn.Linear(d, hidden), nn.ReLU()]
            d = hidden
        self.backbone = nn.Sequential(*layers)
        self.head = nn.Linear(d, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))
