"""balancebench: registries, the training engine, and (in `benchmark.core`) the torch-free result schema, metric
kernel, views, priors and statistics.

Importing `benchmark` imports nothing else: every public name loads its module on first use, so
`import benchmark.core` (and the reports built on it) never pays for torch or the engine.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "UserError": ".core.errors",
    "Param": ".params",
    "get_method": ".registry",
    "get_task": ".registry",
    "list_methods": ".registry",
    "list_tasks": ".registry",
    "load_plugin": ".registry",
    "register_method": ".registry",
    "register_task": ".registry",
    "Method": ".method",
    "TrainInfo": ".method",
    "Task": ".task",
    "TaskData": ".task",
    "Split": ".task",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value  # later lookups skip __getattr__
        return value
    raise AttributeError(f"module 'benchmark' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = sorted(_LAZY)
