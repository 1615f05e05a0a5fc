"""Typed, validated parameters for methods and tasks, and the `name:key=value,...` spec syntax."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from .core.errors import UserError


@dataclass(frozen=True)
class Param:
    """One parameter: its type, default, an optional range or choice set, and a help line."""

    type: type
    default: Any
    help: str = ""
    min: Optional[float] = None  # inclusive lower bound
    max: Optional[float] = None  # inclusive upper bound
    choices: Optional[Sequence[Any]] = None
    check: Optional[Callable[[Any], Optional[str]]] = field(default=None, compare=False)  # returns an error or None
    optional: bool = False  # `none` switches it off even when the default is a value (focal's alpha)

    def parse(self, owner: str, key: str, raw: Any) -> Any:
        """Convert `raw` (a string from the command line, or a typed value) and validate it."""
        if (self.default is None or self.optional) and (raw is None or (isinstance(raw, str) and raw.strip().lower() in ("none", "null"))):
            return None  # optional parameters can be switched off explicitly
        value = _convert(owner, key, raw, self.type)
        where = f"{owner}: parameter '{key}'"
        if self.choices is not None and value not in self.choices:
            raise UserError(f"{where} must be one of {', '.join(map(str, self.choices))}, got {raw!r}")
        if self.type in (int, float):
            if not math.isfinite(value):
                raise UserError(f"{where} must be a finite number, got {raw!r}")
            if self.min is not None and value < self.min:
                raise UserError(f"{where} must be >= {self.min}, got {raw!r}")
            if self.max is not None and value > self.max:
                raise UserError(f"{where} must be <= {self.max}, got {raw!r}")
        if self.check is not None:
            msg = self.check(value)
            if msg:
                raise UserError(f"{where}: {msg}, got {raw!r}")
        return value

    def describe(self) -> str:
        rng = ""
        if self.choices is not None:
            rng = " {" + "|".join(map(str, self.choices)) + "}"
        elif self.min is not None or self.max is not None:
            lo = "-inf" if self.min is None else f"{self.min:g}"
            hi = "inf" if self.max is None else f"{self.max:g}"
            rng = f" [{lo}, {hi}]"
        return f"{self.type.__name__}={self.default!r}{rng}"


_INT = re.compile(r"[-+]?\d+")


def _convert(owner: str, key: str, raw: Any, typ: type) -> Any:
    if raw is None:
        return None
    if not isinstance(raw, str):
        if typ is float and isinstance(raw, (int, float)) and not isinstance(raw, bool):
            return float(raw)
        if typ is int and isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, typ):
            return raw
        raise UserError(f"{owner}: parameter '{key}' must be {typ.__name__}, got {raw!r}")
    s = raw.strip()
    try:
        if typ is bool:
            low = s.lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ is int:  # decimal digits only: through float, 2^53 + 1 would become 2^53 and 1e1 would pass
            if not _INT.fullmatch(s):
                raise UserError(f"{owner}: parameter '{key}' must be an integer such as 10, got {raw!r}")
            return int(s)
        if typ is float:
            return float(s)
        return typ(s)
    except ValueError:
        raise UserError(f"{owner}: parameter '{key}' must be {typ.__name__}, got {raw!r}") from None


def resolve_params(owner: str, specs: dict[str, Param], given: dict[str, Any]) -> dict[str, Any]:
    """Defaults overlaid with `given`; unknown keys are errors that list the valid ones."""
    unknown = sorted(set(given) - set(specs))
    if unknown:
        valid = ", ".join(f"{k} ({p.describe()})" for k, p in specs.items()) or "none"
        raise UserError(f"{owner}: unknown parameter '{unknown[0]}'; valid parameters: {valid}")
    out = {}
    for key, spec in specs.items():
        out[key] = spec.parse(owner, key, given[key]) if key in given else spec.default
    return out


def parse_spec(text: str) -> tuple[str, dict[str, str]]:
    """'oversample:beta=0.5,aggregate=sum' -> ('oversample', {'beta': '0.5', 'aggregate': 'sum'})."""
    text = text.strip()
    if not text:
        raise UserError("empty method/task name; write e.g. --method oversample:beta=0.5")
    name, _, rest = text.partition(":")
    params: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise UserError(f"bad parameter '{item}' in '{text}'; write key=value, e.g. {name}:beta=0.5")
        params[key.strip()] = value.strip()
    return name.strip(), params


def split_specs(values: Sequence[str]) -> list[str]:
    """Split repeated/comma-separated specs: 'a:x=1,y=2,b' -> ['a:x=1,y=2', 'b'].

    A comma-separated piece containing '=' but no ':' continues the previous spec's parameters,
    so that parameters and lists of names can share the comma.
    """
    out: list[str] = []
    for value in values:
        for piece in value.split(","):
            piece = piece.strip()
            if not piece:
                continue
            if "=" in piece and ":" not in piece.split("=", 1)[0] and out and ":" in out[-1]:
                out[-1] += "," + piece
            else:
                out.append(piece)
    return out


def format_spec(name: str, params: dict[str, Any], defaults: Optional[dict[str, Any]] = None) -> str:
    """Label for tables: the first (main) parameter always, others where they differ from their defaults.

    E.g. 'oversample:beta=0.5', 'oversample:beta=1,aggregate=sum', 'focal:gamma=2'. Parameters keep their
    declaration order, so the label reads the way the method declares its knobs.
    """
    keys = list(params)
    shown = [k for i, k in enumerate(keys) if i == 0 or defaults is None or defaults.get(k) != params[k]]
    if not shown:
        return name
    return name + ":" + ",".join(f"{k}={_fmt(params[k])}" for k in shown)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)
