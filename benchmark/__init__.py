"""balancebench engine: registries, the training loop, evaluation views, metrics and result files.

Importing `benchmark` is cheap and torch-free; `Method`, `Task` and the engine load on first use.
"""
from .errors import UserError
from .params import Param
from .registry import (
    get_method,
    get_task,
    list_methods,
    list_tasks,
    load_plugin,
    register_method,
    register_task,
)

__version__ = "0.1.0"

_LAZY = {
    "Method": ".method",
    "TrainInfo": ".method",
    "Task": ".task",
    "TaskData": ".task",
    "Split": ".task",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module 'benchmark' has no attribute {name!r}")


__all__ = [
    "Method", "Param", "Split", "Task", "TaskData", "TrainInfo", "UserError", "get_method", "get_task",
    "list_methods", "list_tasks", "load_plugin", "register_method", "register_task",
]
