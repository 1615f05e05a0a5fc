"""Registries of methods and tasks (timm-style): a decorated class per file, looked up by name.

Every module in the `methods/` and `tasks/` packages is imported on first use, so adding a method or a task is
adding one file. Installed packages can add more through the `balancebench.methods` / `balancebench.tasks`
entry-point groups, and `load_plugin(path)` imports a user's own file.
"""
from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path
from typing import Any, Generic, Iterator, TypeVar

from .core.errors import UserError
from .params import parse_spec, resolve_params

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> class. Classes carry `name`, `params` (dict of Param) and a one-line docstring."""

    def __init__(self, kind: str, package: str, entry_point_group: str) -> None:
        self.kind = kind
        self.package = package
        self.group = entry_point_group
        self._classes: dict[str, type] = {}
        self._discovered = False

    def register(self, cls: type) -> type:
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not name:
            raise TypeError(f"{cls.__qualname__} needs a class attribute `name` to be registered as a {self.kind}")
        if name in self._classes and self._classes[name] is not cls:
            prev = self._classes[name]
            # re-importing the same file (e.g. a plugin loaded twice) replaces it; two files with one name is a bug
            if (prev.__module__, prev.__qualname__) != (cls.__module__, cls.__qualname__):
                raise ValueError(f"{self.kind} '{name}' is registered twice: {prev.__module__} and {cls.__module__}")
        self._classes[name] = cls
        return cls

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        pkg = importlib.import_module(self.package)
        for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self.package}.{info.name}")
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.group):
            try:
                obj = ep.load()
                if isinstance(obj, type) and getattr(obj, "name", None):
                    self.register(obj)  # a plugin may also register itself on import; same class is fine
            except Exception as exc:  # an installed package's bug: name it in one line instead of a traceback
                raise UserError(f"{self.kind} plugin '{ep.name}' from entry point group '{self.group}' failed to "
                                f"load: {type(exc).__name__}: {exc}") from None

    def names(self, pattern: str = "*") -> list[str]:
        self._discover()
        return sorted(n for n in self._classes if fnmatch.fnmatchcase(n, pattern))

    def get_class(self, name: str) -> type:
        self._discover()
        if name not in self._classes:
            import difflib

            close = difflib.get_close_matches(name, self._classes, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise UserError(f"unknown {self.kind} '{name}'.{hint} Valid {self.kind}s: {', '.join(self.names())}")
        return self._classes[name]

    def create(self, spec: str | None = None, /, **params: Any) -> T:
        """Instantiate from 'name:key=value,...' and/or keyword parameters (validated, defaults filled)."""
        name, given = parse_spec(spec) if spec is not None else (params.pop("name"), {})
        given.update(params)
        cls = self.get_class(name)
        resolved = resolve_params(f"{self.kind} '{name}'", getattr(cls, "params", {}), given)
        return cls(**resolved)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


METHODS: Registry = Registry("method", "methods", "balancebench.methods")
TASKS: Registry = Registry("task", "tasks", "balancebench.tasks")


def register_method(cls: type) -> type:
    """Class decorator: register a `benchmark.Method` subclass under its `name`."""
    return METHODS.register(cls)


def register_task(cls: type) -> type:
    """Class decorator: register a `benchmark.Task` subclass under its `name`."""
    return TASKS.register(cls)


def list_methods(pattern: str = "*") -> list[str]:
    """Registered method names matching a glob pattern, e.g. list_methods('focal*')."""
    return METHODS.names(pattern)


def list_tasks(pattern: str = "*") -> list[str]:
    """Registered task names matching a glob pattern."""
    return TASKS.names(pattern)


def get_method(spec: str, /, **params: Any):
    """A configured method instance: get_method('oversample:beta=1') or get_method('oversample', beta=1)."""
    return METHODS.create(spec, **params)


def get_task(spec: str, /, **params: Any):
    """A configured task instance: get_task('synth-multilabel') or get_task('cifar10-lt:rho=50')."""
    return TASKS.create(spec, **params)


def load_plugin(path: str | Path) -> None:
    """Import a user's Python file so that its @register_method / @register_task classes join the registries."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--plugin {path}: no such file; give the path of a .py file that registers a method or task")
    METHODS._discover()
    TASKS._discover()
    mod_name = f"balancebench_plugin_{path.stem}"
    spec = importlib.util.spec_from_file_location(mod_name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"--plugin {path}: not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a user's file: report what broke, in one line
        raise UserError(f"--plugin {path}: importing it failed: {type(exc).__name__}: {exc}") from None
