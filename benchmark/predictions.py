"""Prediction files written by any training code, for `run_benchmark.py evaluate`: read, check, and turn into
the result records (`<out>/results/<task>/<run_id>.json` + `.npz`) that `report` reads.

One `.npz` per trained model (see README, "Evaluate predictions from your own training code"):

- `pool_scores` (n, C) float: scores on the evaluation pool, logits unless `score_type` says `"probs"`;
- `pool_labels`: (n,) int class ids (single-label) or (n, C) 0/1 (multi-label);
- optional `val_scores` / `val_labels` (a validation split: β chosen on validation), `deploy_scores` (m, C)
  (unlabeled deployment inputs), `train_counts` (C,) int (training examples per class; else `--train-counts`),
  `n_train` (multi-label: training examples, for the prevalences of the training prior), `class_names` (C,);
- metadata `task`, `method` (a spec such as `oversample:beta=0.5`), `seed` (default 0), `score_type` as 0-d
  arrays in the npz or as keys of a JSON file with the same stem.

A balancebench run's own `<run_id>.npz` + `<run_id>.json` are such files too (`pool_logits`, metadata in the
result JSON): `evaluate` on them keeps their records and recomputes every metric from the stored scores, so the
report is the same as `report`'s.

Everything is checked before anything is written (`load_predictions`); the metrics of each file are then
computed one file at a time (`write_results`), so memory stays at a few score matrices. numpy only: no torch.
"""
from __future__ import annotations

import datetime as _dt
import filecmp
import hashlib
import io
import json
import math
import os
import platform
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import numpy as np

from .core.errors import UserError
from .core.priors import read_prior_rows, resolve_prior
from .core.results import SCHEMA_VERSION, atomic_write_bytes, run_id, write_result
from .core.scoring import score_views
from .core.stats import imbalance_ratio
from .core.views import View, ViewContext, build_views
from .params import parse_spec

BASELINE = "none"  # the report's baseline method name (reports.analysis.BASELINE)
DEFAULT_VIEWS = ("natural", "balanced", "inverse")  # the engine's views of every task (benchmark.task.Task.views)
MIN_VIEW_EXAMPLES = 2  # fewer examples, or fewer than 2 classes with positives, and a view's metrics mean nothing
SCORE_TYPES = ("logits", "probs")
MANIFEST = "evaluate_manifest.json"  # in --out: what the last `evaluate` wrote there (replaced by the next)
# roles -> array names, first found wins: the documented name, then the engine's own (`Engine._write_scores`);
# an engine run that adjusted its logits (post-hoc logit adjustment) was evaluated on the adjusted ones
SCORE_KEYS = {"pool": ("pool_scores", "pool_adjusted_logits", "pool_logits"),
              "val": ("val_scores", "val_adjusted_logits", "val_logits"),
              "deploy": ("deploy_scores", "deploy_adjusted_logits", "deploy_logits")}
META_KEYS = ("task", "method", "seed", "score_type", "n_train")
_TINY = np.finfo(np.float64).tiny  # log(probability) floor: a probability of 0 becomes a very negative logit


@dataclass
class PredictionFile:
    """One model's prediction file, checked: metadata, shapes and label digests (its scores stay on disk)."""

    path: Path
    task: str
    method: str  # the spec as given (the report's row label)
    method_name: str
    method_params: dict[str, Any]
    seed: int
    score_type: str
    multi_label: bool
    n_pool: int
    num_classes: int
    keys: dict[str, str]  # role (pool, val, deploy) -> array name in the npz
    pool_digest: str
    val_digest: Optional[str]
    n_val: int
    train_counts: Optional[np.ndarray]
    n_train: Optional[int]
    class_names: Optional[list[str]]
    record: Optional[dict]  # the balancebench result JSON beside it, when the file came from a balancebench run
    is_baseline: bool = False


@dataclass
class TaskPredictions:
    """All prediction files of one task, with what they share: the pool, training counts and the views."""

    name: str
    files: list[PredictionFile]
    multi_label: bool
    num_classes: int
    class_names: list[str]
    train_counts: np.ndarray
    n_train: int
    views: dict[str, View] = field(default_factory=dict)
    val_views: dict[str, View] = field(default_factory=dict)


def find_files(paths: Sequence[str | Path]) -> list[Path]:
    """Every `.npz` named or under a named directory (recursively), sorted; UserError for a missing path or none.

    >>> find_files([]) # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    UserError: evaluate: no prediction files given
    """
    if not paths:
        raise UserError("evaluate: no prediction files given; pass .npz files or directories holding them")
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(q for q in p.rglob("*.npz") if "cache" not in q.relative_to(p).parts[:-1])
            if not found:
                raise UserError(f"{p}: no .npz files under this directory; pass prediction files (see README, "
                                f"'Evaluate predictions')")
            out += found
        elif p.is_file():
            if p.suffix != ".npz":
                raise UserError(f"{p}: not an .npz file; save predictions with numpy.savez (see README)")
            out.append(p)
        else:
            raise UserError(f"{p}: no such file or directory")
    return sorted(dict.fromkeys(q.resolve() for q in out))


def load_predictions(paths: Sequence[str | Path], baseline: str = BASELINE,
                     train_counts: Sequence[str] = ()) -> dict[str, TaskPredictions]:
    """Read and check every prediction file (shapes, labels, metadata, one pool per task, a baseline per seed,
    no duplicate (task, method, seed)) and build each task's views; nothing is written. UserError on bad input.

    `baseline` is the spec of the baseline method; `train_counts` holds `[TASK=]FILE.csv` entries
    (`class,count` rows) for files that carry no `train_counts` array.

    >>> import numpy as np, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> rng = np.random.default_rng(0)
    >>> y = np.repeat(np.arange(3), 20)
    >>> for m in ("none", "oversample:beta=1"):
    ...     np.savez(d / f"{m[:4]}.npz", pool_scores=rng.normal(size=(60, 3)), pool_labels=y, task="toy",
    ...              method=m, seed=0, train_counts=np.array([50, 10, 2]))
    >>> tasks = load_predictions([d])
    >>> sorted(tasks["toy"].views), [f.method for f in tasks["toy"].files]
    (['balanced', 'inverse', 'natural'], ['none', 'oversample:beta=1'])
    """
    base_name, base_params = _parse_method(baseline, "--baseline")
    counts_files = _train_count_entries(train_counts)
    files = [read_file(p) for p in find_files(paths)]
    for f in files:
        f.is_baseline = (f.method_name, f.method_params) == (base_name, base_params)
        if f.method_name == BASELINE and not f.is_baseline:
            raise UserError(f"{f.path}: method '{f.method}' is named like the default baseline but --baseline is "
                            f"{baseline!r}; rename that method, or drop --baseline")
    by_task: dict[str, list[PredictionFile]] = {}
    for f in files:
        by_task.setdefault(f.task, []).append(f)
    unknown = sorted(t for t in counts_files if t is not None and t not in by_task)
    if unknown:
        raise UserError(f"--train-counts {unknown[0]}=...: no prediction file has task '{unknown[0]}' "
                        f"(tasks: {', '.join(sorted(by_task))})")
    return {name: _check_task(name, fs, baseline, counts_files) for name, fs in sorted(by_task.items())}


def read_file(path: Path) -> PredictionFile:
    """One prediction file's metadata and labels, checked (its score matrices are only looked at, not loaded).

    >>> import numpy as np, tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "m.npz"
    >>> np.savez(p, pool_scores=np.zeros((4, 3)), pool_labels=np.array([0, 1, 2, 2]), task="t", method="focal:gamma=2",
    ...          seed=1)
    >>> f = read_file(p)
    >>> f.task, f.method_name, f.method_params, f.seed, f.n_pool, f.num_classes, f.multi_label
    ('t', 'focal', {'gamma': 2}, 1, 4, 3, False)
    """
    try:
        return _read_file(Path(path))
    except (ValueError, KeyError, zipfile.BadZipFile, EOFError) as exc:  # object arrays, truncated members
        raise UserError(f"{path}: unreadable array ({exc}); save plain numeric and string arrays with "
                        f"numpy.savez") from None


def _read_file(path: Path) -> PredictionFile:
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise UserError(f"{path}: not a readable .npz file ({exc}); write it with numpy.savez") from None
    with z:
        names = set(z.files)
        sidecar = path.with_suffix(".json")
        side = _read_json(sidecar) if sidecar.is_file() else {}
        record = side if isinstance(side.get("config"), dict) and "schema_version" in side else None
        meta = _metadata(path, z, names, side, record)
        keys = {}
        for role, candidates in SCORE_KEYS.items():
            hit = next((k for k in candidates if k in names), None)
            if hit is not None:
                keys[role] = hit
        if "pool" not in keys or "pool_labels" not in names:
            missing = "pool_scores" if "pool" not in keys else "pool_labels"
            raise UserError(f"{path}: no '{missing}' array; save pool_scores=(n, C) scores and pool_labels=(n,) "
                            f"class ids or (n, C) 0/1 (see README, 'Evaluate predictions')")
        n, c = _score_shape(path, keys["pool"])
        labels = _labels(path, z["pool_labels"], "pool_labels", n, c)
        multi = labels.ndim == 2
        n_val, val_digest = 0, None
        if ("val" in keys) != ("val_labels" in names):
            have, lack = ("val_scores", "val_labels") if "val" in keys else ("val_labels", "val_scores")
            raise UserError(f"{path}: has '{have}' but no '{lack}'; save both (validation scores and labels) "
                            f"or neither")
        if "val" in keys:
            n_val, cv = _score_shape(path, keys["val"])
            if cv != c:
                raise UserError(f"{path}: {keys['val']} has {cv} classes but {keys['pool']} has {c}; score the "
                                f"same classes on every split")
            vl = _labels(path, z["val_labels"], "val_labels", n_val, c)
            if (vl.ndim == 2) != multi:
                raise UserError(f"{path}: val_labels and pool_labels must both be class ids or both (n, C) 0/1")
            val_digest = _digest(vl)
        if "deploy" in keys:
            _, cd = _score_shape(path, keys["deploy"])
            if cd != c:
                raise UserError(f"{path}: {keys['deploy']} has {cd} classes but {keys['pool']} has {c}")
        counts = None
        if "train_counts" in names:
            counts = _counts(path, z["train_counts"], c)
        elif record is not None:
            counts = _counts(sidecar, np.asarray((record.get("train_stats") or {}).get("class_counts") or []), c)
        class_names = None
        if "class_names" in names:
            cn = z["class_names"]
            if cn.shape != (c,):
                raise UserError(f"{path}: class_names must list {c} names (one per score column), got shape "
                                f"{cn.shape}")
            class_names = [str(x) for x in cn.tolist()]
        elif record is not None and isinstance((record.get("task_info") or {}).get("class_names"), list):
            class_names = [str(x) for x in record["task_info"]["class_names"]]
        n_train = meta.get("n_train")
        if n_train is None and record is not None:
            n_train = (record.get("train_stats") or {}).get("n_examples")
        name, params = _parse_method(meta["method"], f"{path}: method")
        return PredictionFile(path=path, task=meta["task"], method=meta["method"], method_name=name,
                              method_params=params, seed=meta["seed"], score_type=meta["score_type"],
                              multi_label=multi, n_pool=n, num_classes=c, keys=keys, pool_digest=_digest(labels),
                              val_digest=val_digest, n_val=n_val, train_counts=counts,
                              n_train=None if n_train is None else int(n_train), class_names=class_names,
                              record=record)


def write_results(tasks: dict[str, TaskPredictions], out: Path) -> list[Path]:
    """Score every file on its task's views and write its result JSON + npz under `<out>/results/<task>/`.

    Files are staged in a hidden folder of `out` and moved in place only when every file scored (a NaN score
    found here is a UserError and leaves nothing behind); what a previous `evaluate` wrote to `out` and this one
    does not is removed (listed in `<out>/evaluate_manifest.json`). Returns the result JSON paths.

    >>> import numpy as np, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> y = np.arange(40) % 2
    >>> for m in ("none", "focal"):
    ...     np.savez(d / f"{m}.npz", pool_scores=np.eye(2)[y] + np.linspace(0, 1, 40)[:, None], pool_labels=y,
    ...              train_counts=np.array([30, 10]), task="t", method=m)
    >>> [p.parent.name for p in write_results(load_predictions([d]), d / "out")]
    ['t', 't']
    """
    out = Path(out)
    staging = out / f".evaluate-{os.getpid()}"
    written: list[tuple[str, str]] = []
    try:
        for t in tasks.values():
            for f in t.files:
                record, arrays = _score_file(t, f)
                rid = record["run_id"]
                buf = io.BytesIO()
                np.savez(buf, **arrays)
                atomic_write_bytes(staging / t.name / f"{rid}.npz", buf.getvalue())
                write_result(staging / t.name / f"{rid}.json", record)
                written.append((t.name, rid))
        previous = _read_json(out / MANIFEST).get("results", []) if (out / MANIFEST).is_file() else []
        keep = {f"{t}/{rid}" for t, rid in written}
        for rel in previous:
            if rel not in keep:
                for suffix in (".json", ".npz"):
                    (out / "results" / f"{rel}{suffix}").unlink(missing_ok=True)
        paths = []
        for task, rid in written:
            dest = out / "results" / task
            dest.mkdir(parents=True, exist_ok=True)
            for suffix in (".npz", ".json"):  # the JSON last: a result is complete once its JSON is there
                src, dst = staging / task / f"{rid}{suffix}", dest / f"{rid}{suffix}"
                # an unchanged file keeps its modification time: the report's cache of its numbers stays valid
                if not (dst.is_file() and filecmp.cmp(src, dst, shallow=False)):
                    os.replace(src, dst)
            paths.append(dest / f"{rid}.json")
        manifest = {"inputs": sorted(str(f.path) for t in tasks.values() for f in t.files),
                    "results": sorted(keep)}
        atomic_write_bytes(out / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
        return paths
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _score_file(task: TaskPredictions, f: PredictionFile) -> tuple[dict, dict[str, np.ndarray]]:
    """The result record of one prediction file (metrics of every view from its scores) and the arrays of its
    `<run_id>.npz` in the engine's layout (`Engine._write_scores`), which the report reads."""
    with np.load(f.path, allow_pickle=False) as z:
        pool = _scores(f, z, "pool")
        pool_labels = _labels(f.path, z["pool_labels"], "pool_labels", f.n_pool, f.num_classes)
        val = _scores(f, z, "val") if "val" in f.keys else None
        val_labels = _labels(f.path, z["val_labels"], "val_labels", f.n_val, f.num_classes) if val is not None \
            else None
        deploy = _scores(f, z, "deploy") if "deploy" in f.keys else None
        raw = {k: z[k] for k in ("pool_logits", "val_logits", "deploy_logits")
               if f.record is not None and k in z.files and k not in f.keys.values()}
        # a generated deployment set's true labels (balancebench runs): only the report's estimate-vs-truth reads them
        truth = z["deploy_true_labels"] if deploy is not None and "deploy_true_labels" in z.files else None
    exclude = task.train_counts == 0  # a class never seen in training cannot be learned: reported, not scored
    record = _record(task, f)
    record["eval"] = score_views(task.multi_label, pool, pool_labels, task.views, exclude=exclude)
    record["val"] = (score_views(task.multi_label, val, val_labels, task.val_views, per_class=False,
                                 exclude=exclude) if val is not None else {})
    record["scores_file"] = f"{record['run_id']}.npz"
    arrays: dict[str, np.ndarray] = {"pool_labels": pool_labels}
    for split, s in (("pool", pool), ("val", val), ("deploy", deploy)):
        if s is None:
            continue
        if f"{split}_logits" in raw:  # a balancebench run's raw logits beside the adjusted ones it evaluated
            arrays[f"{split}_logits"] = raw[f"{split}_logits"]
            arrays[f"{split}_adjusted_logits"] = s
        else:
            arrays[f"{split}_logits"] = s
    if val is None:  # no validation split: empty, as the report reads one for every run (β on validation: n/a)
        arrays["val_logits"] = np.zeros((0, f.num_classes), dtype=pool.dtype)
        val_labels = np.zeros((0, f.num_classes) if task.multi_label else 0, dtype=bool if task.multi_label
                              else np.int64)
    arrays["val_labels"] = val_labels
    if truth is not None:
        arrays["deploy_true_labels"] = truth
    for prefix, views in (("view", task.views), ("valview", task.val_views if val is not None else {})):
        for name, v in views.items():
            arrays[f"{prefix}_{name}_idx"] = v.indices
            if v.weights is not None:
                arrays[f"{prefix}_{name}_w"] = v.weights
    return record, arrays


# ---------------------------------------------------------------------------------------------------- checks


def _check_task(name: str, files: list[PredictionFile], baseline: str,
                counts_files: dict[Optional[str], str]) -> TaskPredictions:
    bases = [f for f in files if f.is_baseline]
    if not bases:
        raise UserError(f"task '{name}': no baseline among its {len(files)} prediction files (none has method "
                        f"'{baseline}'); add the baseline model's predictions, or name it with --baseline SPEC "
                        f"(methods here: {', '.join(sorted({f.method for f in files}))})")
    ref = min(bases, key=lambda f: (f.seed, str(f.path)))
    val_ref = ref if ref.val_digest is not None else next((f for f in sorted(files, key=lambda f: str(f.path))
                                                           if f.val_digest is not None), None)
    seen: dict[tuple, PredictionFile] = {}
    for f in sorted(files, key=lambda f: str(f.path)):
        key = (f.method_name, json.dumps(f.method_params, sort_keys=True), f.seed)
        if key in seen:
            raise UserError(f"{f.path}: task '{name}', method '{f.method}', seed {f.seed} again (also in "
                            f"{seen[key].path}); give each model its own seed, or drop one file")
        seen[key] = f
        if f.multi_label != ref.multi_label or f.num_classes != ref.num_classes or f.n_pool != ref.n_pool \
                or f.pool_digest != ref.pool_digest:
            what = (f"{f.n_pool} x {f.num_classes} {'multi' if f.multi_label else 'single'}-label" if
                    (f.n_pool, f.num_classes, f.multi_label) != (ref.n_pool, ref.num_classes, ref.multi_label)
                    else "the same size but different labels")
            raise UserError(f"{f.path}: its evaluation pool ({what}) differs from the baseline's in {ref.path} "
                            f"({ref.n_pool} x {ref.num_classes}); score every model of task '{name}' on the same "
                            f"pool, in the same order")
        if f.val_digest is not None and val_ref is not None and f.val_digest != val_ref.val_digest:
            raise UserError(f"{f.path}: its validation labels differ from those in {val_ref.path}; score "
                            f"every model of task '{name}' on the same validation split, in the same order")
    base_seeds = {f.seed for f in bases}
    for f in files:
        if f.seed not in base_seeds:
            raise UserError(f"{f.path}: method '{f.method}' seed {f.seed} has no baseline of the same seed (baseline "
                            f"seeds: {', '.join(map(str, sorted(base_seeds)))}); add the baseline trained with seed "
                            f"{f.seed}, or drop this file")
    names = ref.class_names or next((f.class_names for f in files if f.class_names), None) \
        or [str(j) for j in range(ref.num_classes)]
    counts = _task_counts(name, files, ref, names, counts_files)
    n_train = _n_train(name, files, ref, counts)
    t = TaskPredictions(name, sorted(files, key=lambda f: (not f.is_baseline, f.method, f.seed, str(f.path))),
                        ref.multi_label, ref.num_classes, names, counts, n_train)
    with np.load(ref.path, allow_pickle=False) as z:
        t.views = _task_views(t, ref, z, "pool")
    if val_ref is not None:
        with np.load(val_ref.path, allow_pickle=False) as z:
            t.val_views = _task_views(t, val_ref, z, "val")
    return t


def _task_counts(name: str, files: list[PredictionFile], ref: PredictionFile, names: list[str],
                 counts_files: dict[Optional[str], str]) -> np.ndarray:
    given = counts_files.get(name, counts_files.get(None))
    if given is not None:
        rows, kind = read_prior_rows(given, flag="--train-counts")
        if kind != "count" or any(v != int(v) for _, v, _ in rows):
            raise UserError(f"--train-counts {given}: give whole training counts per class ('class,count' rows), "
                            f"not probabilities")
        total = sum(v for _, v, _ in rows)
        return np.rint(resolve_prior(rows, names, given, name, flag="--train-counts") * total).astype(np.int64)
    carried = [f for f in files if f.train_counts is not None]
    if not carried:
        raise UserError(f"{ref.path}: no train_counts (training examples per class); save train_counts=(C,) int in "
                        f"the npz, or pass --train-counts {name}=FILE.csv with 'class,count' rows")
    first = carried[0]
    for f in carried[1:]:
        if not np.array_equal(f.train_counts, first.train_counts):
            raise UserError(f"{f.path}: train_counts differ from those in {first.path}; every model of task "
                            f"'{name}' must report the counts of the same training set")
    return first.train_counts


def _n_train(name: str, files: list[PredictionFile], ref: PredictionFile, counts: np.ndarray) -> int:
    """Training examples: the files' `n_train`; single-label, the counts' sum; multi-label without it, the count
    whose labels per example equal the pool's (documented: the training prior's prevalences depend on it)."""
    given = {f.n_train for f in files if f.n_train is not None}
    if len(given) > 1:
        raise UserError(f"task '{name}': prediction files disagree on n_train ({sorted(given)}); save the size of "
                        f"the one training set")
    if given:
        n = given.pop()
        if n < 1 or (ref.multi_label and n < counts.max()) or (not ref.multi_label and n != counts.sum()):
            raise UserError(f"task '{name}': n_train {n} does not fit train_counts (sum {int(counts.sum())}); "
                            f"n_train is the number of training examples")
        return int(n)
    if not ref.multi_label:
        return int(counts.sum())
    with np.load(ref.path, allow_pickle=False) as z:
        lpe = float(np.asarray(z["pool_labels"]).sum()) / max(ref.n_pool, 1)
    return max(int(round(counts.sum() / max(lpe, 1e-12))), int(counts.max()), 1)


def _task_views(t: TaskPredictions, ref: PredictionFile, z: Any, split: str) -> dict[str, View]:
    """The views a balancebench run stored with its scores (so `evaluate` scores exactly what the run did), else
    the engine's default views built on the pool's labels; each checked to be large enough to mean something."""
    prefix = "view" if split == "pool" else "valview"
    stored = sorted(k[len(prefix) + 1:-4] for k in z.files if k.startswith(f"{prefix}_") and k.endswith("_idx"))
    labels = _labels(ref.path, z[f"{split}_labels"], f"{split}_labels", ref.n_pool if split == "pool" else ref.n_val,
                     t.num_classes)
    views: dict[str, View] = {}
    if stored and ref.record is not None:
        descr = {v: (b or {}).get("description", v) for v, b in (ref.record.get("eval" if split == "pool" else "val")
                                                                  or {}).items()}
        info = {v: (b or {}).get("info") or {} for v, b in (ref.record.get("eval" if split == "pool" else "val")
                                                           or {}).items()}
        for v in stored:
            idx = np.asarray(z[f"{prefix}_{v}_idx"], dtype=np.int64)
            w = z[f"{prefix}_{v}_w"] if f"{prefix}_{v}_w" in z.files else None
            views[v] = View(v, idx, w, descr.get(v, v), info.get(v, {}))
        order = list((ref.record.get("config") or {}).get("views") or [])
        views = {v: views[v] for v in sorted(views, key=lambda v: (order.index(v) if v in order else len(order), v))}
    else:
        ctx = ViewContext(labels=labels, multi_label=t.multi_label, num_classes=t.num_classes,
                          train_counts=t.train_counts, n_train=t.n_train, groups={}, seed=0)
        views = build_views(list(DEFAULT_VIEWS), ctx)
    y = labels if t.multi_label else np.eye(t.num_classes, dtype=bool)[labels]
    for v in views.values():
        classes = int((y[v.indices].any(axis=0) & (t.train_counts > 0)).sum()) if v.indices.size else 0
        if v.indices.size < MIN_VIEW_EXAMPLES or classes < 2:
            raise UserError(f"{ref.path}: the {split} split is too small for view '{v.name}' ({v.indices.size} "
                            f"examples, {classes} classes with examples); score a larger {split} split with "
                            f"examples of most classes")
    return views


# ---------------------------------------------------------------------------------------------------- reading


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable JSON file ({exc}); write the metadata as a JSON object") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object with task, method, seed; got {type(data).__name__}")
    return data


def _metadata(path: Path, z: Any, names: set[str], side: dict, record: Optional[dict]) -> dict[str, Any]:
    """task / method / seed / score_type / n_train from the npz's 0-d arrays, the JSON beside it, or (for a
    balancebench run) its result JSON; the npz and the JSON must agree where both say something."""
    meta: dict[str, Any] = {}
    if record is not None:
        if record.get("status") != "ok":
            raise UserError(f"{path.with_suffix('.json')}: a {record.get('status')} run ({record.get('error')}); "
                            f"leave it out of the prediction files")
        cfg = record["config"]
        meta = {"task": (cfg.get("task") or {}).get("name"), "method": (cfg.get("method") or {}).get("spec"),
                "seed": cfg.get("seed")}
    else:
        meta = {k: side[k] for k in META_KEYS if k in side}
    for k in META_KEYS:
        if k in names:
            arr = z[k]
            if arr.ndim != 0:
                raise UserError(f"{path}: metadata '{k}' must be a 0-d array (np.savez(..., {k}=value)), got shape "
                                f"{arr.shape}")
            v = arr.item()
            v = v.decode() if isinstance(v, bytes) else v
            if k in meta and meta[k] is not None and str(meta[k]) != str(v):
                raise UserError(f"{path}: '{k}' is {v!r} in the npz but {meta[k]!r} in {path.with_suffix('.json')}; "
                                f"make them agree")
            meta[k] = v
    for k in ("task", "method"):
        if not isinstance(meta.get(k), str) or not meta[k].strip():
            raise UserError(f"{path}: no '{k}' metadata; save {k}='...' in the npz (np.savez(..., {k}='name')) or "
                            f"in {path.with_suffix('.json').name}")
        meta[k] = meta[k].strip()
    seed = meta.get("seed", 0)
    if isinstance(seed, str) and seed.strip().lstrip("-").isdigit():
        seed = int(seed)
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise UserError(f"{path}: seed must be a non-negative integer, got {seed!r}")
    meta["seed"] = int(seed)
    st = str(meta.get("score_type", "logits")).strip().lower()
    if st not in SCORE_TYPES:
        raise UserError(f"{path}: score_type must be 'logits' or 'probs', got {meta.get('score_type')!r}")
    meta["score_type"] = st
    nt = meta.get("n_train")
    if nt is not None and (isinstance(nt, bool) or not isinstance(nt, (int, np.integer)) or nt < 1):
        raise UserError(f"{path}: n_train must be a positive integer (training examples), got {nt!r}")
    return meta


def _parse_method(spec: str, where: str) -> tuple[str, dict[str, Any]]:
    """('oversample', {'beta': 0.5}) from 'oversample:beta=0.5': values typed as numbers / booleans where they
    read as one (a sweep over a numeric parameter is then recognized), strings otherwise."""
    try:
        name, raw = parse_spec(spec)
    except UserError as exc:
        raise UserError(f"{where} {spec!r}: {exc}") from None
    return name, {k: _typed(v) for k, v in raw.items()}


def _typed(text: str) -> Any:
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for conv in (int, float):
        try:
            v = conv(text)
        except ValueError:
            continue
        return v if not isinstance(v, float) or math.isfinite(v) else text
    return text


def _train_count_entries(entries: Iterable[str]) -> dict[Optional[str], str]:
    out: dict[Optional[str], str] = {}
    for e in entries:
        task, path = (e.split("=", 1) if "=" in e and not Path(e).exists() else (None, e))
        if task in out:
            raise UserError(f"--train-counts: two files for {'task ' + task if task else 'every task'}; give one")
        out[task] = path
    return out


def _npy_header(path: Path, key: str) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of one array of an npz from its header, without reading the data."""
    with zipfile.ZipFile(path) as zf, zf.open(f"{key}.npy") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read(f)
    return shape, dtype


def _score_shape(path: Path, key: str) -> tuple[int, int]:
    shape, dtype = _npy_header(path, key)
    if len(shape) != 2 or shape[1] < 2:
        raise UserError(f"{path}: {key} must be (n, C) with C >= 2 classes, got shape {shape}")
    if dtype.kind != "f":
        raise UserError(f"{path}: {key} must hold floats (logits or probabilities), got dtype {dtype}")
    return int(shape[0]), int(shape[1])


def _labels(path: Path, y: np.ndarray, key: str, n: int, c: int) -> np.ndarray:
    """Class ids (n,) int64 or a (n, C) bool matrix, checked against the scores' shape."""
    y = np.asarray(y)
    if y.ndim == 1:
        if y.shape[0] != n:
            raise UserError(f"{path}: {key} has {y.shape[0]} labels but the scores have {n} rows; save one label "
                            f"per scored example")
        if y.dtype.kind not in "iu" and not (y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.rint(y))):
            raise UserError(f"{path}: {key} must be integer class ids (or (n, C) 0/1 for multi-label), got dtype "
                            f"{y.dtype}")
        y = y.astype(np.int64)
        if y.size and (y.min() < 0 or y.max() >= c):
            raise UserError(f"{path}: {key} out of range [0, {c}): found {y.min()}..{y.max()}; labels are class "
                            f"indices of the {c} score columns")
        return y
    if y.ndim == 2:
        if y.shape != (n, c):
            raise UserError(f"{path}: {key} is {y.shape} but the scores are ({n}, {c}); multi-label labels are one "
                            f"0/1 row per scored example")
        if y.dtype != bool and not np.all((y == 0) | (y == 1)):
            raise UserError(f"{path}: {key} must be 0/1 (multi-label) or (n,) class ids; found values other than "
                            f"0 and 1")
        return y.astype(bool)
    raise UserError(f"{path}: {key} must be (n,) class ids or (n, C) 0/1, got shape {y.shape}")


def _counts(path: Path, a: np.ndarray, c: int) -> np.ndarray:
    a = np.asarray(a)
    if a.shape != (c,) or a.dtype.kind not in "iuf" or not np.all(np.isfinite(a)) or np.any(a < 0) \
            or np.any(a != np.rint(a)) or a.sum() <= 0:
        raise UserError(f"{path}: train_counts must be ({c},) non-negative whole numbers (training examples per "
                        f"class, not all 0), got shape {a.shape} dtype {a.dtype}")
    return a.astype(np.int64)


def _scores(f: PredictionFile, z: Any, split: str) -> np.ndarray:
    """The split's scores as evaluated: finite, logits (a single-label task's probabilities become log p, which
    the softmax maps back to p); float32 stays float32, so the report ranks exactly what was scored."""
    key = f.keys[split]
    s = np.asarray(z[key])
    if s.dtype not in (np.float32, np.float64):
        s = s.astype(np.float32)
    bad = ~np.isfinite(s)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise UserError(f"{f.path}: {key} has {int(bad.sum())} NaN/inf values (first at row {r}, class {c}); "
                        f"fix the model's outputs before saving them")
    if f.score_type == "probs":
        if s.min() < 0 or s.max() > 1:
            raise UserError(f"{f.path}: {key} is declared probs but has values outside [0, 1]; save "
                            f"score_type='logits' for raw model outputs")
        if not f.multi_label:
            s = np.log(np.maximum(s.astype(np.float64), _TINY)).astype(s.dtype)
    return s


def _digest(a: np.ndarray) -> str:
    a = np.ascontiguousarray(a)
    return hashlib.sha1(str((a.dtype, a.shape)).encode() + a.tobytes()).hexdigest()


# ---------------------------------------------------------------------------------------------------- records


def _record(t: TaskPredictions, f: PredictionFile) -> dict:
    """A balancebench run's own record (metrics recomputed later), or a new one for a foreign file."""
    if f.record is not None:
        return {k: v for k, v in f.record.items() if k not in ("eval", "val", "scores_file")}
    # the report's baseline is method `none`; a baseline named otherwise (--baseline) keeps its spec as the label
    name = BASELINE if f.is_baseline else f.method_name
    config = {"task": {"name": t.name, "params": {}, "spec": t.name},
              "method": {"name": name, "params": f.method_params, "spec": f.method},
              "seed": f.seed, "train": {}, "views": list(t.views)}
    counts = t.train_counts
    lpe = float(counts.sum() / max(t.n_train, 1)) if t.multi_label else 1.0
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id(config),
        "status": "ok",
        "error": None,
        "config": config,
        "task_info": {"name": t.name, "description": f"predictions of models trained elsewhere ({f.path.parent})",
                      "source": "prediction files (run_benchmark.py evaluate)", "num_classes": t.num_classes,
                      "multi_label": t.multi_label, "main_metric": "mAP" if t.multi_label else "top1",
                      "secondary_metric": "dprime" if t.multi_label else "balanced_acc",
                      "class_names": t.class_names, "skipped": {}, "notes": []},
        "train_stats": {"n_examples": t.n_train, "n_classes": t.num_classes, "class_counts": counts.tolist(),
                        "imbalance_ratio": imbalance_ratio(counts.tolist()),
                        "labels_per_example": round(lpe, 4),
                        "absent_classes": np.flatnonzero(counts == 0).tolist()},
        "effective_prior": None,
        "prediction_file": str(f.path),
        "score_type": f.score_type,
        "env": {"python": platform.python_version(), "platform": platform.platform(),
                "versions": {"numpy": np.__version__}},
        "created": _dt.datetime.fromtimestamp(f.path.stat().st_mtime, _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
