"""Reading result JSON files from a run directory (no torch, no numpy needed)."""
from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

FINAL_STATUSES = ("ok", "failed")


def results_module() -> ModuleType:
    """`benchmark/results.py`, loaded from its file when possible.

    Loading by path skips `benchmark/__init__.py`, so the report stays torch-free even if that package
    ever grows heavy imports; the normal import is the fallback for an installed layout.
    """
    if "benchmark.results" in sys.modules:
        return sys.modules["benchmark.results"]
    name = "_balancebench_results"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parent.parent / "benchmark" / "results.py"
    if path.is_file():
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is not None and spec.loader is not None:
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            try:
                spec.loader.exec_module(mod)
            except BaseException:
                del sys.modules[name]
                raise
            return mod
    return importlib.import_module("benchmark.results")


class RunList(list):
    """The loaded results (a plain list of dicts) plus what was skipped while loading."""

    def __init__(self, results: list[dict], unreadable: list[str], unfinished: list[str]) -> None:
        super().__init__(results)
        self.unreadable = unreadable  # paths (relative to the run dir) that are not valid schema-1 results
        self.unfinished = unfinished  # valid results whose status is neither ok nor failed

    @property
    def n_unreadable(self) -> int:
        return len(self.unreadable) + len(self.unfinished)


def load_runs(run_dir: str | Path) -> RunList:
    """All results under `<run_dir>/results/*/*.json` with status ok or failed, sorted by path.

    Unreadable files and other statuses are skipped, and counted on the returned list (`n_unreadable`).
    """
    run_dir = Path(run_dir)
    results: list[dict] = []
    unreadable: list[str] = []
    unfinished: list[str] = []
    for path, res in results_module().iter_results(run_dir):
        rel = path.relative_to(run_dir).as_posix()
        if res is None:
            unreadable.append(rel)
        elif res.get("status") not in FINAL_STATUSES:
            unfinished.append(rel)
        else:
            results.append(res)
    return RunList(results, unreadable, unfinished)


def atomic_write_text(path: Path, text: str) -> None:
    results_module().atomic_write_bytes(path, text.encode("utf-8"))
