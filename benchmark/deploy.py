"""Deployment splits of tasks: unlabeled examples whose class prior the report estimates (benchmark.core.labelshift).

Two sources, both task parameters:

- `deploy_prior=<name>` (generated tasks and digits-lt): draw `deploy_size` examples from that prior
  (`benchmark.core.deploy.named_prior`: uniform, train_prior, inverse, forward<ρ>, backward<ρ>, gamma<γ>, a CSV),
  disjoint from train / val / pool and with an rng of its own, so the other splits are exactly those of the task
  without it. The true labels are kept apart (`TaskData.deploy_true_labels`).
- `deploy=PATH` (`--deploy PATH`; tasks whose inputs are feature vectors): an (N, D) array in a `.npy`, `.npz`
  (array `x`, `features` or the only array) or `.csv` file (numbers only, one example per row; a `label`/`y`
  column, if any, is dropped: labels in a deployment file are ignored).
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .core.deploy import DEPLOY_PRIOR_HELP, named_prior
from .core.errors import UserError
from .params import Param
from .task import ArrayDataset, Split, TaskData

DEPLOY_FILE_HELP = ("unlabeled deployment examples (--deploy): .npy / .npz / .csv of feature vectors, one row per "
                    "example; labels in it are ignored")


def deploy_params(default_size: Optional[int], generated: bool = True,
                  file_help: str = DEPLOY_FILE_HELP) -> dict[str, Param]:
    """The task parameters of a deployment split (merged into a task's `params`); `default_size` None: as many as
    the task's held-out data allow for the prior; `file_help` says what `deploy=PATH` reads for this task.

    >>> sorted(deploy_params(1000))
    ['deploy', 'deploy_prior', 'deploy_size']
    """
    out = {"deploy": Param(str, None, file_help)}
    if generated:
        out["deploy_prior"] = Param(str, None, DEPLOY_PRIOR_HELP, check=_check_prior_name)
        what = "examples in the generated deployment set (deploy_prior)"
        out["deploy_size"] = Param(int, default_size, what + ("" if default_size else "; default: as many as the "
                                   "held-out data allow"), min=1, max=10_000_000)
    return out


def _check_prior_name(name: str) -> Optional[str]:
    try:
        if not name.lower().endswith(".csv"):
            named_prior(name, [2.0, 1.0])
    except UserError as exc:
        return str(exc).split(": ", 1)[-1] if name else "give a prior name"
    return None


def load_deploy_array(path: str, keys: tuple[str, ...], what: str, hint: str = "") -> np.ndarray:
    """The array of a --deploy `.npy`, or of a `.npz` the first of `keys` in it, else its only array; a UserError
    saying to name the `what` array 'x' (plus `hint`) when neither is there. Reading errors are the caller's.

    >>> import tempfile; f = Path(tempfile.mkdtemp()) / "d.npz"; np.savez(f, x=np.ones((2, 3)))
    >>> load_deploy_array(str(f), ("x",), "feature").shape
    (2, 3)
    """
    p = Path(path).expanduser()
    if p.suffix == ".npy":
        return np.load(p, allow_pickle=False)
    with np.load(p, allow_pickle=False) as z:
        key = next((k for k in keys if k in z.files), z.files[0] if len(z.files) == 1 else None)
        if key is None:
            raise UserError(f"--deploy {path}: name the {what} array 'x' (found "
                            f"{', '.join(z.files) or 'no array'}){hint}")
        return z[key]


def read_deploy_features(path: str, dim: int) -> np.ndarray:
    """(N, dim) float32 features of a deployment file; UserError naming the fix when it does not fit the task."""
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"--deploy {path}: no such file; give a .npy, .npz or .csv of (N, {dim}) feature vectors")
    try:
        if p.suffix in (".npy", ".npz"):
            x = load_deploy_array(path, ("x", "features"), "feature")
        elif p.suffix == ".csv":
            import csv

            with open(p, newline="", encoding="utf-8") as f:
                rows = [r for r in csv.reader(f) if r]
            head = [c.strip().lower() for c in rows[0]] if rows else []
            # a header of column numbers (pandas' `to_csv(index=False)` of an array writes 0,1,...,D-1) is a header
            if rows and (not _numeric(rows[0]) or [c.strip() for c in rows[0]] == [str(i) for i in range(len(rows[0]))]):
                drop = [i for i, c in enumerate(head) if c in ("label", "labels", "y", "target", "class")]
                rows = [[v for i, v in enumerate(r) if i not in drop] for r in rows[1:]]
            x = np.array(rows, dtype=np.float64) if rows else np.zeros((0, dim))
        else:
            raise UserError(f"--deploy {path}: unknown format '{p.suffix}'; use .npy, .npz or .csv")
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:  # a truncated .npy, a broken .npz
        raise UserError(f"--deploy {path}: cannot read it as numbers ({exc})") from None
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != dim:
        raise UserError(f"--deploy {path}: expected (N, {dim}) feature vectors for this task, got shape {x.shape}")
    if x.shape[0] == 0:
        raise UserError(f"--deploy {path}: the deployment set is empty; give at least one example")
    if not np.all(np.isfinite(x)):
        raise UserError(f"--deploy {path}: {int((~np.isfinite(x)).sum())} values are NaN or inf; drop those rows")
    return x.astype(np.float32)


def _numeric(row: list[str]) -> bool:
    try:
        [float(v) for v in row]
    except ValueError:
        return False
    return True


def attach_deploy(task, data: TaskData, train_counts: np.ndarray,
                  draw: Optional[Callable[[np.ndarray, int, np.random.Generator], tuple[np.ndarray, np.ndarray]]],
                  label_shape: tuple[int, ...] = (),
                  transform: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                  read: Optional[Callable[[str], tuple[Split, dict]]] = None,
                  unlabeled: Optional[Callable[[np.ndarray], Split]] = None) -> TaskData:
    """Add the deployment split the task's parameters ask for to `data` (in place; returned for chaining).

    `draw(prior, n, rng)` -> (features, true labels) draws a generated set from class proportions `prior` (`n` may
    be None: the task's own default size); `None`
    for tasks that cannot generate one. `label_shape` is the shape of one label (() single-label, (C,) multi-label)
    for the placeholder labels the model pass sees. `transform` maps a file's raw features the way the task maps
    its own (e.g. standardization with the training statistics). Tasks whose inputs are not feature vectors (audio)
    give `read(path)` -> (unlabeled Split, info for `deploy_info`) for `deploy=PATH`, and `unlabeled(x)` -> the
    Split of a generated set's inputs `x`.
    """
    path, prior_name = getattr(task, "deploy", None), getattr(task, "deploy_prior", None)
    if path and prior_name:
        raise UserError(f"task '{task.name}': give either deploy=PATH (--deploy) or deploy_prior=NAME, not both")
    if path and read is not None:
        data.deploy, info = read(str(path))
        data.deploy_info = {"source": "file", "path": str(path), **info, "n": len(data.deploy)}
    elif path:
        dim = data.train.features.shape[1] if data.train.features is not None else None
        if dim is None:
            raise UserError(f"task '{task.name}' does not take --deploy feature files (its inputs are not feature "
                            f"vectors)")
        x = read_deploy_features(path, dim)
        if transform is not None:
            x = np.asarray(transform(x), dtype=np.float32)
        data.deploy = _unlabeled(x, label_shape)
        data.deploy_info = {"source": "file", "path": str(path), "n": int(x.shape[0])}
    elif prior_name:
        if draw is None:
            raise UserError(f"task '{task.name}' cannot generate a deployment set (deploy_prior)")
        prior = named_prior(prior_name, train_counts, task.class_names)
        rng = np.random.default_rng([int(getattr(task, "data_seed", 0)), 0xDE9])  # its own: other splits unchanged
        x, y = draw(prior, task.deploy_size, rng)
        data.deploy = unlabeled(x) if unlabeled is not None else _unlabeled(x, label_shape)
        data.deploy_true_labels = y
        data.deploy_info = {"source": "generated", "prior_name": str(prior_name), "n": int(x.shape[0])}
    return data


def _unlabeled(x: np.ndarray, label_shape: tuple[int, ...]) -> Split:
    zeros = np.zeros((x.shape[0], *label_shape), dtype=np.float32 if label_shape else np.int64)
    return Split(ArrayDataset(x, zeros), zeros, features=x)
