"""The Task interface (MTEB-style): typed metadata plus loaders, a model factory and training defaults."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Iterable, Iterator, Optional

import numpy as np

from .params import Param

if TYPE_CHECKING:  # torch loads when data or a model is built: listing and validating tasks stay torch-free
    import torch
    from torch import nn
    from torch.utils.data import Dataset


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
    """Train / validation / evaluation pool. Views of the pool are built by the engine (benchmark.core.views).

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
    # Optional unlabeled deployment examples (benchmark.deploy): scored in the same pass as pool and validation.
    # Their Split's labels are placeholders (zeros); a generated set's true labels live apart, read only by the
    # report's "estimate vs truth" check.
    deploy: Optional[Split] = None
    deploy_true_labels: Optional[np.ndarray] = None
    deploy_info: dict[str, Any] = field(default_factory=dict)  # source, prior name, size


class Task:
    """Base class. Subclasses set the class attributes and implement `load` and `build_model`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    source: ClassVar[str] = ""  # where the data comes from (hub id, package, "generated")
    license: ClassVar[str] = ""
    size: ClassVar[str] = ""  # human-readable size of the real data
    gpu_time: ClassVar[str] = ""  # expected run time on a GPU, for --list --verbose
    # tasks of one family (same source, license and parameters; e.g. the 27 `imblearn-<name>` sets) share a group
    # name: --list --verbose shows the shared details once and one line per member
    group: ClassVar[str] = ""
    multi_label: ClassVar[bool] = True
    main_metric: ClassVar[str] = "mAP"
    secondary_metric: ClassVar[str] = "dprime"
    params: ClassVar[dict[str, Param]] = {}
    # Evaluation views built from the pool (see benchmark.core.views.VIEW_BUILDERS).
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
        import torch

        # foreach: the same arithmetic as the per-tensor loop (bitwise, tests/test_engine_speed.py) in fewer
        # dispatches; a small model's CPU step is ~13 % shorter. (fused=True is faster still, but rounds differently.)
        opt = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay, foreach=True)
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


class ArrayDataset:
    """In-memory (x, y) tensors with a batched fetch: the DataLoader gets a whole batch in one indexing op, and
    the engine's training loop gathers batches itself (`take_batches`). A map-style dataset for DataLoader."""

    def __init__(self, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> None:
        import torch

        self.x = torch.as_tensor(x)
        self.y = torch.as_tensor(y)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def __getitem__(self, i: int):
        return self.x[i], self.y[i]

    def __getitems__(self, idx: list[int]):
        import torch

        t = torch.as_tensor(idx, dtype=torch.long)
        return PreBatched((self.x[t], self.y[t]))

    def take_batches(self, index_batches: Iterable[np.ndarray]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(x, y) of each batch of indices, one gather per tensor and batch: the DataLoader-free path.

        >>> ds = ArrayDataset(np.arange(6.0).reshape(3, 2), np.array([0, 1, 0]))
        >>> [y.tolist() for _, y in ds.take_batches([np.array([2, 0]), np.array([1])])]
        [[0, 0], [1]]
        """
        import torch

        for idx in index_batches:
            t = torch.from_numpy(np.asarray(idx, dtype=np.int64))
            yield self.x.index_select(0, t), self.y.index_select(0, t)


class PreBatched(tuple):
    """A batch that is already collated (see `collate`)."""


def collate(items):
    """DataLoader collate_fn that passes pre-batched tuples through and default-collates everything else."""
    if isinstance(items, PreBatched):
        return tuple(items)
    from torch.utils.data import default_collate

    return default_collate(items)


def __getattr__(name: str):
    if name == "MLP":  # `benchmark.task.MLP` as before; the model lives in benchmark.models, which imports torch
        from .models import MLP

        return MLP
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
