"""CIFAR-10-LT / CIFAR-100-LT as in LDAM-DRW (Cao et al., NeurIPS 2019) and BagofTricks-LT (Zhang et al., AAAI 2021), with SADE's (Zhang et al., NeurIPS 2022) test-set views."""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import numpy as np

from benchmark import Param, Split, Task, TaskData, UserError, register_task
from benchmark.deploy import attach_deploy, deploy_params, load_deploy_array
from benchmark.task import ArrayDataset

if TYPE_CHECKING:  # torch loads on first use, so that listing and validating stay torch-free
    import torch
    from torch import nn

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
# Per-channel statistics of the CIFAR training images, as in the LDAM-DRW and BagofTricks-LT code.
MEAN = {10: (0.4914, 0.4822, 0.4465), 100: (0.5071, 0.4865, 0.4409)}
STD = {10: (0.2023, 0.1994, 0.2010), 100: (0.2673, 0.2564, 0.2762)}
# model_size=tiny: a 4-stage ResNet with one block per stage and 8..64 channels, for CPU runs and tests
TINY_RESNET = {"layers": (1, 1, 1, 1), "channels": (8, 16, 32, 64), "stem_width": 8}


def cifar_lt_counts(num_classes: int, n_max: int, rho: float) -> np.ndarray:
    """n_j = int(n_max · (1/ρ)^(j/(C-1))), written as LDAM-DRW's `get_img_num_per_cls` computes it (the same
    float expression, so the truncation to int gives their counts exactly): 12,406 images for CIFAR-10 at ρ=100."""
    imb_factor = 1.0 / rho
    return np.array([int(n_max * imb_factor ** (j / (num_classes - 1.0))) for j in range(num_classes)],
                    dtype=np.int64)


def read_cifar(folder: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """The python-pickle batches (the format torchvision reads): (x_train, y_train, x_test, y_test, class names),
    images as (N, 3, 32, 32) uint8."""
    if num_classes == 10:
        train_files, test_files, meta_file, label_key, names_key = (
            [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "batches.meta", "labels", "label_names")
    else:
        train_files, test_files, meta_file, label_key, names_key = (
            ["train"], ["test"], "meta", "fine_labels", "fine_label_names")

    def load(files: list[str]) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for name in files:
            try:
                entry = _unpickle_batch(folder / name)
                xs.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
                ys.append(np.asarray(entry[label_key], dtype=np.int64))
            except BATCH_ERRORS as exc:
                raise UserError(f"{folder / name}: not a readable CIFAR-{num_classes} python batch "
                                f"({type(exc).__name__}: {exc}); re-extract the archive from {CIFAR_URL}") from None
        return np.concatenate(xs), np.concatenate(ys)

    x_tr, y_tr = load(train_files)
    x_te, y_te = load(test_files)
    names = [f"class_{j}" for j in range(num_classes)]
    if (folder / meta_file).is_file():
        with open(folder / meta_file, "rb") as f:
            names = list(pickle.load(f, encoding="latin1")[names_key])
    for split, y in (("training", y_tr), ("test", y_te)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise UserError(f"{folder}: {split} labels outside 0..{num_classes - 1}; is this CIFAR-{num_classes}?")
    return x_tr, y_tr, x_te, y_te, names


BATCH_ERRORS = (OSError, pickle.UnpicklingError, KeyError, ValueError, EOFError, TypeError)
DEPLOY_IMAGES_HELP = ("unlabeled deployment images (--deploy): a .npy / .npz of (N, 32, 32, 3) uint8 images (npz "
                      "array 'x' or the only one), or a CIFAR python batch file or a directory of them (labels "
                      "ignored)")
# files of an extracted CIFAR folder that are not image batches
_NOT_BATCHES = {"batches.meta", "meta", "readme.html"}


def _unpickle_batch(path: Path) -> dict:
    with open(path, "rb") as f:
        return pickle.load(f, encoding="latin1")


def read_deploy_images(path: str) -> tuple[np.ndarray, dict]:
    """(N, 3, 32, 32) uint8 images of a --deploy source (the layout of the task's own splits) and info for the run's
    `task_info.deploy`; any labels in it are ignored. A source that does not fit is a one-line UserError.

    >>> import tempfile; f = Path(tempfile.mkdtemp()) / "d.npy"; np.save(f, np.zeros((2, 32, 32, 3), np.uint8))
    >>> read_deploy_images(f)[0].shape
    (2, 3, 32, 32)
    """
    want = "give a .npy / .npz of (N, 32, 32, 3) uint8 images or CIFAR python batch files"
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"--deploy {path}: no such file or directory; {want}")
    if p.suffix in (".npy", ".npz"):
        try:
            x = load_deploy_array(str(path), ("x",), "image", f"; {want}")
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # a broken .npz too
            raise UserError(f"--deploy {path}: unreadable ({type(exc).__name__}: {exc}); {want}") from None
        if x.ndim != 4 or x.shape[1:] != (32, 32, 3) or x.dtype != np.uint8:
            raise UserError(f"--deploy {path}: expected (N, 32, 32, 3) uint8 images, got {x.dtype} of shape "
                            f"{x.shape}")
        images, info = np.ascontiguousarray(x.transpose(0, 3, 1, 2)), {"format": p.suffix[1:]}
    else:
        files = sorted(f for f in p.iterdir() if f.is_file() and f.name not in _NOT_BATCHES
                       and not f.name.startswith(".")) if p.is_dir() else [p]
        parts = []
        for f in files:
            try:
                parts.append(np.asarray(_unpickle_batch(f)["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
            except BATCH_ERRORS as exc:
                raise UserError(f"--deploy {f}: not a CIFAR python batch ({type(exc).__name__}: {exc}); "
                                f"{want}") from None
        images = np.concatenate(parts) if parts else np.zeros((0, 3, 32, 32), np.uint8)
        info = {"format": "cifar python batches", "files": len(files)}
    if images.shape[0] == 0:
        raise UserError(f"--deploy {path}: no images; {want}")
    return images, info


def _image_split(x: np.ndarray, y: np.ndarray) -> Split:
    import torch

    return Split(ArrayDataset(torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)), y)


def random_crop_flip(x: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """torchvision's RandomCrop(32, padding=4) + RandomHorizontalFlip() for a whole batch in one gather."""
    import torch
    import torch.nn.functional as F

    b, c, h, w = x.shape
    dev = x.device
    xp = F.pad(x, (pad, pad, pad, pad))  # zero fill, as RandomCrop's default
    oy = torch.randint(0, 2 * pad + 1, (b, 1), device=dev)
    ox = torch.randint(0, 2 * pad + 1, (b, 1), device=dev)
    rows = (oy + torch.arange(h, device=dev)).view(b, 1, h, 1)
    cols = (ox + torch.arange(w, device=dev)).view(b, 1, 1, w)
    flip = (torch.rand(b, device=dev) < 0.5).view(b, 1, 1, 1)
    cols = torch.where(flip, cols.flip(-1), cols)  # a mirrored window is the flip of the crop
    return xp[torch.arange(b, device=dev).view(b, 1, 1, 1), torch.arange(c, device=dev).view(1, c, 1, 1), rows, cols]


def _check_backbone(name: str) -> Optional[str]:
    import timm

    return None if timm.is_model(name) else "not a timm model name (see timm.list_models('resnet*'))"


class CifarLT(Task):
    """Training: each class subsampled to LDAM-DRW's exponential counts, with the same random images (their
    `np.random.seed(0)` shuffle per class); validation: `val_per_class` of the training images left over; pool: the
    balanced CIFAR test set, viewed as SADE's forward / backward long-tailed test sets.
    """

    multi_label = False
    main_metric = "top1"
    secondary_metric = "balanced_acc"
    license = "no explicit license; free for research use, cite Krizhevsky 2009 (torchvision downloads it)"
    views = ("natural", "forward50", "forward10", "forward2", "balanced", "backward2", "backward10", "backward50",
             "inverse")
    classes: int = 10
    folder: str = ""
    tv_class: str = ""
    batch_size = 128
    eval_batch_size = 1000

    @staticmethod
    def _params(folder: str, n_max: int, val_per_class: int) -> dict[str, Param]:
        return {
            "rho": Param(float, 100.0, "imbalance ratio n_max / n_min of the training set", min=1.0, max=1e4),
            "n_max": Param(int, n_max, "training images of the most frequent class", min=1, max=n_max),
            "val_per_class": Param(int, val_per_class, "validation images per class, from the training images "
                                   "left out of the long-tailed set", min=1, max=n_max),
            "backbone": Param(str, "resnet18", "timm model name, trained from scratch", check=_check_backbone),
            "cifar_stem": Param(bool, True, "3x3 stride-1 first conv and no max-pool (timm ResNets)"),
            "model_size": Param(str, "full", "full: the timm model as named; tiny: 1 block per stage, 8-64 "
                                "channels (timm ResNets; for CPU runs and tests)", choices=("full", "tiny")),
            "epochs": Param(float, 200.0, "training budget in epochs of the long-tailed set", min=0.01, max=1e4),
            "lr": Param(float, 0.1, "peak SGD learning rate (batch 128)", min=0.0, max=10.0),
            "weight_decay": Param(float, 2e-4, "SGD weight decay", min=0.0, max=1.0),
            "data": Param(str, None, f"folder with the extracted python batches ({folder}) or its parent; "
                          "default: download with torchvision into ~/.cache/balancebench/cifar"),
            "data_seed": Param(int, 0, "seed of the long-tailed subsample (0 = LDAM-DRW's images)", min=0),
            **deploy_params(None, generated=False, file_help=DEPLOY_IMAGES_HELP),
        }

    @property
    def num_classes(self) -> int:
        return self.classes

    @property
    def class_names(self) -> list[str]:
        return getattr(self, "_names", None) or super().class_names

    def counts(self) -> np.ndarray:
        return cifar_lt_counts(self.classes, self.n_max, self.rho)

    @property
    def budget_samples(self) -> int:  # type: ignore[override]
        return int(round(self.epochs * self.counts().sum()))

    # ---- data ------------------------------------------------------------------------------------------------
    def _folder(self) -> Path:
        if self.data is not None:
            root = Path(self.data).expanduser()
            for cand in (root, root / self.folder):
                if self._has_batches(cand):
                    return cand
            raise UserError(f"{self.name}: no CIFAR python batches in {root} (expected {self.folder}/ or its files); "
                            f"download the python version from {CIFAR_URL} and extract it")
        cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "balancebench" / "cifar"
        if not self._has_batches(cache / self.folder):
            import torchvision

            try:
                getattr(torchvision.datasets, self.tv_class)(str(cache), train=True, download=True)
            except (OSError, RuntimeError) as exc:  # URLError is an OSError
                raise UserError(f"{self.name}: could not download CIFAR ({type(exc).__name__}: {exc}); offline, "
                                f"download the python version from {CIFAR_URL}, extract it and pass "
                                f"--data /path/to/{self.folder}") from None
        return cache / self.folder

    def _has_batches(self, folder: Path) -> bool:
        first = "data_batch_1" if self.classes == 10 else "train"
        return (folder / first).is_file()

    def load(self) -> TaskData:
        x_tr, y_tr, x_te, y_te, self._names = read_cifar(self._folder(), self.classes)
        counts = self.counts()
        have = np.bincount(y_tr, minlength=self.classes)
        if np.any(counts > have):
            j = int(np.argmax(counts - have))
            raise UserError(f"{self.name}: class {j} has {have[j]} training images but n_max={self.n_max}, "
                            f"rho={self.rho:g} needs {counts[j]}; lower n_max")
        if counts.min() < 1:
            raise UserError(f"{self.name}: n_max={self.n_max} with rho={self.rho:g} leaves class "
                            f"{int(np.argmin(counts))} with no training image; raise n_max or lower rho")
        # LDAM-DRW: np.random.seed(rand_number), then per class shuffle its indices and keep the first n_j
        rs = np.random.RandomState(self.data_seed)
        train_idx, val_idx = [], []
        for j in range(self.classes):
            idx = np.flatnonzero(y_tr == j)
            rs.shuffle(idx)
            train_idx.append(idx[: counts[j]])
            val_idx.append(idx[counts[j]: counts[j] + self.val_per_class])
        notes = []
        short = [j for j in range(self.classes) if val_idx[j].size < self.val_per_class]
        if short:
            notes.append(f"validation: {len(short)} head class(es) have fewer than {self.val_per_class} training "
                         f"images outside the long-tailed set (class {short[0]} has {val_idx[short[0]].size}), "
                         f"so the validation split under-represents them")

        def read(path: str) -> tuple[Split, dict]:
            # the model normalizes uint8 images itself and augmentation is training-only: the CHW layout is the
            # whole test-time transform
            x, info = read_deploy_images(path)
            return _image_split(x, np.zeros(len(x), dtype=np.int64)), info

        # class-ordered, as LDAM-DRW's list; the sampler shuffles
        train, val = np.concatenate(train_idx), np.concatenate(val_idx)
        data = TaskData(_image_split(x_tr[train], y_tr[train]), _image_split(x_tr[val], y_tr[val]),
                        _image_split(x_te, y_te), notes=notes)
        return attach_deploy(self, data, counts, None, read=read)

    # ---- model and training ----------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        import timm
        from torch import nn

        from benchmark.models import NormalizedNet

        kwargs: dict[str, Any] = dict(TINY_RESNET) if self.model_size == "tiny" else {}
        try:
            net = timm.create_model(self.backbone, pretrained=False, num_classes=0, **kwargs)  # pooled features
        except TypeError as exc:
            raise UserError(f"{self.name}: model_size=tiny needs a timm ResNet backbone, not '{self.backbone}' "
                            f"({exc})") from None
        if self.cifar_stem:
            conv = getattr(net, "conv1", None)
            if not isinstance(conv, nn.Conv2d) or not hasattr(net, "maxpool"):
                raise UserError(f"{self.name}: cifar_stem=true needs a timm ResNet-style backbone (conv1 + "
                                f"maxpool); use e.g. backbone=resnet18 or set cifar_stem=false")
            net.conv1 = nn.Conv2d(conv.in_channels, conv.out_channels, 3, stride=1, padding=1, bias=False)
            net.maxpool = nn.Identity()
        return NormalizedNet(net, self.classes, MEAN[self.classes], STD[self.classes])

    def augment_batch(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return random_crop_flip(x), y

    def build_optimizer(self, model: nn.Module, total_steps: int):
        """LDAM-DRW's schedule on the step count: SGD (momentum 0.9), linear warm-up over the first 5 of 200
        epochs, then the LR × 0.01 after 80 % and × 0.0001 after 90 % of the budget."""
        import torch

        opt = torch.optim.SGD(model.parameters(), lr=self.lr, momentum=0.9, weight_decay=self.weight_decay)
        warm = max(1, round(0.025 * total_steps))

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            p = step / max(total_steps, 1)
            return 1e-4 if p >= 0.9 else 1e-2 if p >= 0.8 else 1.0

        return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)

    def train_config(self) -> dict[str, Any]:
        return {**super().train_config(), "optimizer": "sgd(momentum=0.9)",
                "schedule": "warm-up 2.5% of steps, x0.01 at 80%, x0.0001 at 90%",
                "augmentation": "random crop (4 padding) + horizontal flip", "backbone": self.backbone,
                "model_size": self.model_size, "cifar_stem": self.cifar_stem}


@register_task
class Cifar10LT(CifarLT):
    """CIFAR-10-LT: 10 classes, n_max 5000, ρ=100 (12,406 training images)."""

    name = "cifar10-lt"
    description = "CIFAR-10-LT (ρ=100, LDAM-DRW counts), timm ResNet-18 with a CIFAR stem, SADE test views"
    source = f"torchvision CIFAR10 download, or --data with the extracted cifar-10-batches-py ({CIFAR_URL})"
    size = "163 MB download; 50k train / 10k test 32x32 images, 12,406 long-tailed training images at ρ=100"
    gpu_time = "~10 min per run on one H100 (ResNet-18, 200 epochs = 2.5 M samples; estimated, not measured)"
    classes = 10
    folder = "cifar-10-batches-py"
    tv_class = "CIFAR10"
    params = CifarLT._params("cifar-10-batches-py", n_max=5000, val_per_class=100)


@register_task
class Cifar100LT(CifarLT):
    """CIFAR-100-LT: 100 classes, n_max 500, ρ=100 (10,847 training images)."""

    name = "cifar100-lt"
    description = "CIFAR-100-LT (ρ=100, LDAM-DRW counts), timm ResNet-18 with a CIFAR stem, SADE test views"
    source = f"torchvision CIFAR100 download, or --data with the extracted cifar-100-python ({CIFAR_URL})"
    size = "161 MB download; 50k train / 10k test 32x32 images, 10,847 long-tailed training images at ρ=100"
    gpu_time = "~9 min per run on one H100 (ResNet-18, 200 epochs = 2.2 M samples; estimated, not measured)"
    classes = 100
    folder = "cifar-100-python"
    tv_class = "CIFAR100"
    params = CifarLT._params("cifar-100-python", n_max=500, val_per_class=20)
