"""Stored scores of a run (`<run_id>.npz`): the evaluated pool / validation scores, labels and stored views."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np

from benchmark.core.metrics import softmax

# ---------------------------------------------------------------------------------------------------- npz access


def scores_path(run_dir: Path, result: dict) -> Optional[Path]:
    """The npz beside a result JSON (`results/<task>/<scores_file>`), or None when the run has none on disk."""
    name = result.get("scores_file")
    task = (result.get("config") or {}).get("task", {}).get("name")
    if not name or not task:
        return None
    path = Path(run_dir) / "results" / str(task) / str(name)
    return path if path.is_file() else None


class Scores:
    """Evaluated scores and labels of one run, for the pool (`split="pool"`) or the validation split (`"val"`).

    Scores are what the engine evaluated: the method's adjusted logits when it stored them, softmax
    probabilities for single-label tasks.
    """

    def __init__(self, path: Path, multi_label: bool) -> None:
        self.path = path
        self.multi_label = multi_label
        self._z: Optional[Any] = None
        self._cache: dict[str, np.ndarray] = {}

    def _npz(self):
        if self._z is None:
            self._z = np.load(self.path)
        return self._z

    def identity(self) -> tuple:
        """What identifies the stored scores (path, size, modification time) for caches."""
        st = self.path.stat()
        return (str(self.path.name), st.st_size, st.st_mtime_ns)

    def has(self, key: str) -> bool:
        return key in self._npz().files

    def array(self, key: str) -> np.ndarray:
        if key not in self._cache:
            self._cache[key] = self._npz()[key]
        return self._cache[key]

    def labels(self, split: str) -> np.ndarray:
        return self.array(f"{split}_labels")

    def scores(self, split: str) -> np.ndarray:
        key = f"{split}_adjusted_logits" if self.has(f"{split}_adjusted_logits") else f"{split}_logits"
        cache = f"scores:{split}"
        if cache not in self._cache:
            s = self.array(key)  # multi-label: the stored float32 logits order exactly as evaluated
            self._cache[cache] = s if self.multi_label else softmax(np.asarray(s, dtype=np.float64))
        return self._cache[cache]

    def view(self, split: str, name: str) -> Optional[tuple[np.ndarray, Optional[np.ndarray]]]:
        """(indices, weights or None) of an engine view stored with the run, or None when it was not stored."""
        prefix = "view" if split == "pool" else "valview"
        key = f"{prefix}_{name}_idx"
        if not self.has(key):
            return None
        wkey = f"{prefix}_{name}_w"
        return self.array(key).astype(np.int64), (self.array(wkey) if self.has(wkey) else None)

    def close(self) -> None:
        if self._z is not None:
            self._z.close()
        self._z = None
        self._cache.clear()
