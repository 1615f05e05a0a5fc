"""The 27 binary benchmark datasets of imbalanced-learn (Ding 2011; `imblearn.datasets.fetch_datasets`), one task `imblearn-<name>` each."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from benchmark import Param, Split, Task, TaskData, UserError, register_task
from benchmark.deploy import attach_deploy, deploy_params
from benchmark.task import ArrayDataset

if TYPE_CHECKING:  # torch loads on first use, so that listing and validating stay torch-free
    import torch

# name: (samples, features, imbalance ratio, source and minority target), as in imblearn.datasets._zenodo
DATASETS: dict[str, tuple[int, int, float, str]] = {
    "ecoli": (336, 7, 8.6, "UCI, target: imU"),
    "optical_digits": (5620, 64, 9.1, "UCI, target: 8"),
    "satimage": (6435, 36, 9.3, "UCI, target: 4"),
    "pen_digits": (10992, 16, 9.4, "UCI, target: 5"),
    "abalone": (4177, 10, 9.7, "UCI, target: 7"),
    "sick_euthyroid": (3163, 42, 9.8, "UCI, target: sick euthyroid"),
    "spectrometer": (531, 93, 11, "UCI, target: >=44"),
    "car_eval_34": (1728, 21, 12, "UCI, target: good, v good"),
    "isolet": (7797, 617, 12, "UCI, target: A, B"),
    "us_crime": (1994, 100, 12, "UCI, target: >0.65"),
    "yeast_ml8": (2417, 103, 13, "LIBSVM, target: 8"),
    "scene": (2407, 294, 13, "LIBSVM, target: >one label"),
    "libras_move": (360, 90, 14, "UCI, target: 1"),
    "thyroid_sick": (3772, 52, 15, "UCI, target: sick"),
    "coil_2000": (9822, 85, 16, "KDD, CoIL, target: minority"),
    "arrhythmia": (452, 278, 17, "UCI, target: 06"),
    "solar_flare_m0": (1389, 32, 19, "UCI, target: M->0"),
    "oil": (937, 49, 22, "UCI, target: minority"),
    "car_eval_4": (1728, 21, 26, "UCI, target: vgood"),
    "wine_quality": (4898, 11, 26, "UCI, wine, target: <=4"),
    "letter_img": (20000, 16, 26, "UCI, target: Z"),
    "yeast_me2": (1484, 8, 28, "UCI, target: ME2"),
    "webpage": (34780, 300, 33, "LIBSVM, w7a, target: minority"),
    "ozone_level": (2536, 72, 34, "UCI, ozone, data"),
    "mammography": (11183, 6, 42, "UCI, target: minority"),
    "protein_homo": (145751, 74, 111, "KDD CUP 2004, minority"),
    "abalone_19": (4177, 10, 130, "UCI, target: 19"),
}
FETCH_HINT = 'python -c "from imblearn.datasets import fetch_datasets; fetch_datasets()"'


def _data_home(data: str | None) -> Path:
    from sklearn.datasets import get_data_home

    return Path(get_data_home(data_home=data))


class ImblearnTask(Task):
    """Stratified train / validation / test split of one dataset, features standardized with training statistics;
    label 1 (the minority) is class 1. The test split is drawn i.i.d., so it is the natural view as a whole."""

    dataset: str = ""
    group = "imblearn-<name>"
    multi_label = False
    main_metric = "top1"
    secondary_metric = "balanced_acc"
    source = "imblearn.datasets.fetch_datasets (Zenodo record 61452, cached as <data_home>/zenodo/x<ID>data.npz)"
    license = "per source dataset: UCI sets CC BY 4.0; LIBSVM / KDD sets under their sites' terms"
    gpu_time = "seconds to ~1 min (CPU too); a GPU brings nothing for these sizes"
    params = {
        "model": Param(str, "mlp", "mlp (one hidden layer) or logistic (linear)", choices=("mlp", "logistic")),
        "hidden": Param(int, 64, "MLP hidden units", min=1, max=65_536),
        "epochs": Param(float, 200.0, "training budget in epochs of the training split (capped by max_samples)",
                        min=0.01, max=1e5),
        "max_samples": Param(int, 1_000_000, "cap on the samples seen (large sets train for fewer epochs)",
                             min=1, max=10**10),
        "test_fraction": Param(float, 0.3, "stratified share of the data in the evaluation pool", min=0.05,
                               max=0.8),
        "val_fraction": Param(float, 0.2, "stratified share of the data in the validation split", min=0.05,
                              max=0.5),
        "data": Param(str, None, "scikit-learn data_home holding zenodo/ (default ~/scikit_learn_data or "
                      "$SCIKIT_LEARN_DATA)"),
        "data_seed": Param(int, 0, "seed of the stratified split (model seeds vary per run)", min=0),
        **deploy_params(None, generated=False),
    }
    batch_size = 128
    lr = 3e-3
    weight_decay = 1e-4

    @property
    def num_classes(self) -> int:
        return 2

    @property
    def class_names(self) -> list[str]:
        return ["majority (-1)", f"minority (1: {DATASETS[self.dataset][3].split('target: ')[-1]})"]

    def n_train_expected(self) -> int:
        n = DATASETS[self.dataset][0]
        return n - round(n * self.test_fraction) - round(n * self.val_fraction)

    @property
    def budget_samples(self) -> int:  # type: ignore[override]
        # from the published size, so that the run's id is known before the data is read
        return int(min(round(self.epochs * self.n_train_expected()), self.max_samples))

    def _read(self) -> tuple[np.ndarray, np.ndarray]:
        from imblearn.datasets import fetch_datasets

        if self.test_fraction + self.val_fraction >= 0.9:
            raise UserError(f"{self.name}: test_fraction + val_fraction must leave at least 10% for training")
        home = _data_home(self.data)
        cached = home / "zenodo" / f"x{list(DATASETS).index(self.dataset) + 1}data.npz"  # imblearn's file name
        try:
            d = fetch_datasets(data_home=str(home), filter_data=(self.dataset,))[self.dataset]
        except OSError as exc:  # offline (URLError), or an unreadable cache
            if cached.is_file():
                raise UserError(f"{self.name}: cannot read {cached} ({exc}); delete it and fetch again with "
                                f"{FETCH_HINT}") from None
            raise UserError(f"{self.name}: {cached} is missing and downloading failed ({type(exc).__name__}); on a "
                            f"machine with internet run {FETCH_HINT} once (it caches the 27 sets in "
                            f"~/scikit_learn_data/zenodo), then copy that folder to {home / 'zenodo'} or pass "
                            f"--data <the folder holding zenodo/>") from None
        except (ValueError, KeyError) as exc:
            raise UserError(f"{self.name}: {cached} is not an imbalanced-learn cache file ({exc}); delete it and "
                            f"fetch again with {FETCH_HINT}") from None
        x = np.asarray(d.data, dtype=np.float64)
        labels = np.asarray(d.target)
        values = np.unique(labels)
        if values.size != 2 or x.ndim != 2 or x.shape[0] != labels.shape[0]:
            raise UserError(f"{self.name}: {cached} should hold a binary (-1/1) target and an (N, D) data matrix, "
                            f"got targets {values[:5].tolist()} and data {x.shape}")
        return x, (labels == values.max()).astype(np.int64)

    def load(self) -> TaskData:
        x, y = self._read()
        self._dim = x.shape[1]
        rng = np.random.default_rng(self.data_seed)
        # stratified split: rank each class's examples at random, test first, then validation, then training
        have = np.bincount(y, minlength=2)
        order = np.lexsort((rng.random(y.size), y))
        rank = np.empty(y.size, dtype=np.int64)
        rank[order] = np.arange(y.size) - np.repeat(np.concatenate([[0], np.cumsum(have)[:-1]]), have)
        n_test = np.round(have * self.test_fraction).astype(np.int64)[y]
        n_val = np.round(have * self.val_fraction).astype(np.int64)[y]
        masks = {"test": rank < n_test, "val": (rank >= n_test) & (rank < n_test + n_val),
                 "train": rank >= n_test + n_val}
        if np.bincount(y[masks["train"]], minlength=2).min() == 0:
            raise UserError(f"{self.name}: the training split has no minority example; lower test_fraction / "
                            f"val_fraction")
        mean = x[masks["train"]].mean(axis=0)
        std = x[masks["train"]].std(axis=0)
        z = ((x - mean) / np.where(std > 0, std, 1.0)).astype(np.float32)

        def split(mask: np.ndarray) -> Split:
            idx = rng.permutation(np.flatnonzero(mask))
            return Split(ArrayDataset(z[idx], y[idx]), y[idx], features=z[idx])

        train, val, test = split(masks["train"]), split(masks["val"]), split(masks["test"])
        # held-out splits are i.i.d. draws of the training distribution: the natural view is all of each
        data = TaskData(train, val, test, pool_groups={"natural": np.arange(len(test))},
                        val_groups={"natural": np.arange(len(val))})
        # a --deploy file holds raw features: standardized with the training statistics, as the splits are
        return attach_deploy(self, data, np.bincount(train.labels, minlength=2), None,
                             transform=lambda raw: (raw - mean) / np.where(std > 0, std, 1.0))

    def build_model(self) -> torch.nn.Module:
        from benchmark.models import MLP

        d = getattr(self, "_dim", DATASETS[self.dataset][1])
        return MLP(d, self.hidden, 2, depth=0 if self.model == "logistic" else 1)  # depth 0: a linear `.head`


def _register(dataset: str) -> type:
    n, d, ratio, target = DATASETS[dataset]
    cls = type(f"Imblearn_{dataset}", (ImblearnTask,), {
        "__doc__": f"imbalanced-learn benchmark set '{dataset}' ({target}).",
        "__module__": __name__,
        "name": f"imblearn-{dataset}",
        "dataset": dataset,
        "description": f"imbalanced-learn '{dataset}' ({target}): {n:,} x {d} features, binary, ρ={ratio:g}",
        "size": f"{n:,} examples x {d} features (the 27 sets come in one download from Zenodo)",
    })
    return register_task(cls)


for _name in DATASETS:
    _register(_name)
