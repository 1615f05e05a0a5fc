"""Result files: one JSON per (task, method with parameters, seed), named by a hash of its resolved config.

Layout of a run directory (``--out``)::

    <out>/results/<task-name>/<run_id>.json   # the result (schema below), written atomically
    <out>/results/<task-name>/<run_id>.npz    # evaluation pool: logits, labels, view indices/weights; val too
                                              # (baseline: also the linear head and its inputs, when small)
    <out>/results/<task-name>/<run_id>.pt     # baseline `none` only: its model weights (small models, or on demand)
    <out>/results/<task-name>/<run_id>.claim  # while a process runs it: owner pid/host (benchmark/claims.py)
    <out>/checkpoints/<run_id>/               # accelerator.save_state of a long run in progress (resume point)
    <out>/logs/<run_id>.log                   # per-run log
    <out>/report.md                           # rendered by `reports/` from the JSON files only

Result JSON (``schema_version`` 1)::

    {
      "schema_version": 1,
      "run_id": "3f2a...",                       # sha256 of the canonical `config`, first 16 hex digits
      "status": "ok" | "failed",
      "error": null | "one-line reason",
      "config": {                                 # everything that determines the run
        "task":   {"name": "synth-multilabel", "params": {...}, "spec": "synth-multilabel"},
        "method": {"name": "oversample", "params": {"beta": 0.5, "aggregate": "max"}, "spec": "oversample:beta=0.5"},
        "seed": 0,
        "train": {"budget_samples": ..., "batch_size": ..., "lr": ..., "weight_decay": ..., "optimizer": ...}
      },
      "task_info": {"name", "num_classes", "multi_label", "main_metric", "metrics": [...], "class_names", "source",
                    "description"},
      "train_stats": {"n_examples", "n_classes", "class_counts": [...], "imbalance_ratio", "labels_per_example",
                      "absent_classes": [...]},
      "effective_prior": {"samples_seen", "class_counts_seen": [...], "imbalance_ratio_seen", "epochs"},
      "eval": {
        "<view name>": {
          "description": "...", "n_examples": int, "weighted": bool, "effective_n": float,
          "class_counts": [...],                  # (weighted) positives per class in the view
          "metrics": {"mAP": float|null, "mAUC": ..., "dprime": ...}      # or top1 / balanced_acc / mAP
          "per_class": {"AP": [float|null, ...], "AUC": [...]}            # or recall / AP; null = n/a (no positives)
          "excluded_classes": [int, ...],        # only when some class has no training example: not scored (null)
          "excluded_examples": int               # single-label only: examples of those classes left out
        }, ...
      },
      "scores_file": "<run_id>.npz",             # relative to the JSON
      "baseline_run_id": "...",                  # only post-hoc / decoupled methods: the `none` run they build on
      "env": {"git_commit", "git_dirty", "python", "platform", "versions": {...}, "num_processes", "device",
              "mixed_precision"},
      "wall_time_s": float, "train_time_s": float, "eval_time_s": float,
      "created": "2026-11-27T01:02:03Z"
    }

Metric values never hold NaN or inf: a class with no positives in a view is null (n/a) and left out of the macro
mean. This module imports no torch, so `reports/` can use it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterator

SCHEMA_VERSION = 1


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def run_id(config: dict) -> str:
    """Stable id of a resolved config: the same config always maps to the same file."""
    return hashlib.sha256(canonical_json(config).encode()).hexdigest()[:16]


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def result_path(out_dir: str | Path, task_name: str, rid: str) -> Path:
    return Path(out_dir) / "results" / task_name / f"{rid}.json"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temp file in the same directory, fsync, then rename: readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.filename is None:
            exc.filename = str(path)  # "disk full writing <path>", not a bare errno
        raise


def write_result(path: Path, result: dict) -> None:
    text = json.dumps(result, indent=1, sort_keys=False, default=_json_default, allow_nan=False)
    atomic_write_bytes(path, text.encode())


def read_result(path: Path) -> dict | None:
    """The result at `path`, or None when it is missing, unreadable, or not a finished result of this schema."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION or "run_id" not in data:
        return None
    return data


def iter_results(out_dir: str | Path) -> Iterator[tuple[Path, dict | None]]:
    """(path, result-or-None) for every result JSON under `out_dir/results`, sorted by path."""
    for path in sorted((Path(out_dir) / "results").glob("*/*.json")):
        yield path, read_result(path)


def result_state(path: Path) -> str:
    """'missing', 'ok' (a finished result of this schema), 'corrupt' (unreadable or truncated JSON, or not a
    result), or 'foreign' (a valid result of another schema version)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return "missing"
    except (OSError, UnicodeDecodeError):
        return "corrupt"
    try:
        data = json.loads(text)
    except ValueError:
        return "corrupt"
    if not isinstance(data, dict) or "run_id" not in data or "schema_version" not in data:
        return "corrupt"
    return "ok" if data["schema_version"] == SCHEMA_VERSION else "foreign"


def find_foreign_schema(out_dir: str | Path) -> tuple[Path, Any] | None:
    """The first result file under `out_dir/results` written with another schema version, with that version.

    Results start with their schema_version, so only the head of each file is read.
    """
    for path in sorted((Path(out_dir) / "results").glob("*/*.json")):
        try:
            with open(path, "rb") as f:
                head = f.read(256).decode("utf-8", "replace")
        except OSError:
            continue
        m = _SCHEMA_RE.search(head)
        if m is None:
            continue  # truncated or not ours: redone or ignored, not a schema conflict
        version = json.loads(m.group(1))
        if version != SCHEMA_VERSION:
            return path, version
    return None


_SCHEMA_RE = re.compile(r'"schema_version"\s*:\s*("[^"]*"|-?\d+(?:\.\d+)?)')
