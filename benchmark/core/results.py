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
      "env": {"git_commit", "git_dirty", "python", "platform", "versions": {...}, "num_processes",
              "batch_per_process",                # config.train.batch_size is the global batch, split over processes
              "device", "mixed_precision"},
      "wall_time_s": float, "train_time_s": float, "eval_time_s": float,
      "created": "2026-11-27T01:02:03Z"
    }

A finished result is one that `check_result` accepts: this schema version, `run_id` equal to its file name, the
fields above present, `eval` filled for status ok and `error` set for status failed; anything else is redone by
the runner and skipped (with a warning) by the report.

Metric values never hold NaN or inf: a class with no positives in a view is null (n/a) and left out of the macro
mean. This module imports no torch, so `reports/` can use it.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

SCHEMA_VERSION = 1


def canonical_json(obj: Any) -> str:
    """Sorted keys, no spaces: one text per value (what `run_id` hashes).

    >>> canonical_json({"b": 1, "a": [1.5, None]})
    '{"a":[1.5,null],"b":1}'
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=_json_default)


def run_id(config: dict) -> str:
    """Stable id of a resolved config: the same config always maps to the same file.

    >>> run_id({"seed": 0, "task": "t"}) == run_id({"task": "t", "seed": 0}), len(run_id({}))
    (True, 16)
    """
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
        os.fchmod(fd, 0o666 & ~process_umask())  # mkstemp's 0600 would hide a shared --out from the group
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


def process_umask() -> int:
    """The process's umask, read from /proc where it can be (`os.umask` can only read it by setting it).

    >>> 0 <= process_umask() <= 0o777
    True
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_result(path: Path, result: dict) -> None:
    text = json.dumps(result, indent=1, sort_keys=False, default=_json_default, allow_nan=False)
    atomic_write_bytes(path, text.encode())


@dataclass(frozen=True)
class ResultCheck:
    """What a result file holds: `state` is 'missing', 'ok' (a finished result of this schema, in `data`),
    'corrupt' (unreadable, or not JSON: a truncated write), 'invalid' (JSON of this schema that is not a finished
    result, e.g. `{"schema_version": 1, "run_id": "x"}`) or 'foreign' (another schema version); `reason` says why
    it is not ok."""

    state: str
    reason: str = ""
    data: Optional[dict] = None


# what a finished result must hold, whatever wrote it (the engine, `evaluate`, a test's fake run)
REQUIRED_FIELDS = {"run_id": str, "status": str, "config": dict, "task_info": dict, "eval": dict}


def result_problem(data: Any, path: Optional[str | Path] = None) -> Optional[str]:
    """Why `data` (the parsed JSON of the file at `path`) is not a finished result of this schema, or None.

    >>> result_problem({"schema_version": 1, "run_id": "x"}, "results/t/3f2a.json")
    "run_id 'x' does not match the file name 3f2a.json"
    >>> result_problem({"schema_version": 1, "run_id": "3f2a"}, "results/t/3f2a.json")
    "'status' is missing or not a str"
    """
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object"
    if data.get("schema_version") != SCHEMA_VERSION:
        return f"schema version {data.get('schema_version')!r}, not {SCHEMA_VERSION}"
    if path is not None and data.get("run_id") != Path(path).stem:
        return f"run_id {data.get('run_id')!r} does not match the file name {Path(path).name}"
    for key, typ in REQUIRED_FIELDS.items():
        if not isinstance(data.get(key), typ):
            return f"'{key}' is missing or not a {typ.__name__}"
    env = data.get("env") if isinstance(data.get("env"), dict) else {}
    n = env.get("num_processes") or 1
    if n != 1 and "batch_per_process" not in env:
        return (f"trained by {n} processes that each took a full batch (an older balancebench: {n}x the global "
                f"batch, 1/{n} of the optimizer steps), not comparable with the other runs")
    if data["status"] == "ok":
        if not data["eval"]:
            return "status ok but no evaluation results ('eval' is empty)"
        for view, entry in data["eval"].items():
            if not isinstance(entry, dict) or not isinstance(entry.get("metrics"), dict):
                return f"eval view '{view}' has no metrics"
    elif data["status"] == "failed":
        if not isinstance(data.get("error"), str):
            return "status failed without an error reason"
    else:
        return f"status {data['status']!r} is neither ok nor failed (an unfinished or foreign write)"
    return None


def check_result(path: str | Path) -> ResultCheck:
    """Read and validate the result file at `path` against this schema and its file name."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return ResultCheck("missing", "no such file")
    except (OSError, UnicodeDecodeError) as exc:
        return ResultCheck("corrupt", f"unreadable ({getattr(exc, 'strerror', None) or exc})")
    try:
        data = json.loads(text)
    except ValueError:
        return ResultCheck("corrupt", "not valid JSON (a truncated or killed write?)")
    if isinstance(data, dict) and "schema_version" in data and data["schema_version"] != SCHEMA_VERSION:
        return ResultCheck("foreign", f"result schema version {data['schema_version']!r}; this balancebench "
                                      f"reads {SCHEMA_VERSION} (written by another balancebench version)")
    problem = result_problem(data, path)
    if problem is not None:
        return ResultCheck("invalid", problem)
    return ResultCheck("ok", "", data)


def read_result(path: Path) -> dict | None:
    """The result at `path`, or None when it is missing, unreadable, or not a finished result of this schema."""
    return check_result(path).data


def iter_results(out_dir: str | Path) -> Iterator[tuple[Path, dict | None]]:
    """(path, result-or-None) for every result JSON under `out_dir/results`, sorted by path."""
    for path, check in iter_checked(out_dir):
        yield path, check.data


def iter_checked(out_dir: str | Path) -> Iterator[tuple[Path, ResultCheck]]:
    """(path, `check_result(path)`) for every result JSON under `out_dir/results`, sorted by path."""
    for path in sorted((Path(out_dir) / "results").glob("*/*.json")):
        yield path, check_result(path)


def result_state(path: Path) -> str:
    """`check_result(path).state`: 'missing', 'ok', 'corrupt', 'invalid' or 'foreign'."""
    return check_result(path).state


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
