"""Sweep specification: numeric ranges inside specs, TOML sweep files, and `--shard i/n` splits of a grid.

A range `start:stop:step` (stop inclusive) in a spec expands to one spec per value, crossed over parameters:
`oversample:beta=0:1:0.25` -> beta 0, 0.25, 0.5, 0.75, 1. A sweep file (`--sweep FILE.toml`)::

    description = "what this sweep is for"
    seeds = [0, 1, 2]                   # or a count (3) or a range ("0:9:1")
    out = "runs/paper"                  # default --out (the command line wins)

    [overrides]                         # parameters set on every task that has them (like --data / --init)
    model_size = "base"

    [[tasks]]
    name = "synth-multilabel"
    params = { classes = 60 }           # fixed parameters
    grid = { exponent = [1.0, 1.3] }    # crossed: a list, or a range string "start:stop:step"

    [[methods]]
    name = "oversample"
    grid = { beta = "0:1:0.25" }

`tasks` and `methods` may also be plain spec strings, ranges included: `methods = ["oversample:beta=0:1:0.5", "focal"]`.
Unknown keys are errors that name the valid ones. Nothing here imports torch.
"""
from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from .core.errors import UserError
from .params import parse_spec

MAX_RANGE_VALUES = 1000
MAX_SEEDS = 10000  # a grid of more seeds is a typo (and `range(n)` of a huge count exhausts memory)
SEED_LIMIT = 2**32  # numpy's global seed (accelerate's set_seed) takes 0 .. 2^32 - 1
_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_RANGE = re.compile(rf"^\s*({_NUM})\s*:\s*({_NUM})\s*:\s*({_NUM})\s*$")

TOP_KEYS = {"description": "a one-line note", "seeds": "a count, a list or a range", "out": "the default --out",
            "tasks": "[[tasks]] tables or spec strings", "methods": "[[methods]] tables or spec strings",
            "overrides": "task parameters for every task that has them"}
ENTRY_KEYS = {"name": "registered name", "params": "fixed parameters", "grid": "parameters to cross (lists/ranges)"}


# ---- ranges ----------------------------------------------------------------------------------------------------

def is_range(value: Any) -> bool:
    return isinstance(value, str) and _RANGE.match(value) is not None


def expand_range(text: str, where: str = "range") -> list[str]:
    """'0:1:0.25' -> ['0', '0.25', '0.5', '0.75', '1']: start to stop inclusive, as short decimal strings.

    Values are start + k·step rounded to 12 significant digits, so 0.1 steps give 0.3, not 0.30000000000000004.
    All-integer ranges give integers.
    """
    m = _RANGE.match(text)
    if m is None:
        raise UserError(f"{where}: '{text}' is not a range; write start:stop:step, e.g. 0:1:0.25")
    a, b, s = (float(g) for g in m.groups())
    if s == 0 or not all(math.isfinite(v) for v in (a, b, s)):
        raise UserError(f"{where}: range '{text}' needs a finite non-zero step; write e.g. 0:1:0.25")
    if (b - a) / s < -1e-9:
        raise UserError(f"{where}: range '{text}' is empty (the step goes away from stop); "
                        f"write start:stop:step with start <= stop for a positive step")
    n = int(math.floor((b - a) / s + 1e-9)) + 1
    if n > MAX_RANGE_VALUES:
        raise UserError(f"{where}: range '{text}' has {n} values (at most {MAX_RANGE_VALUES}); use a larger step")
    ints = all(re.fullmatch(r"[-+]?\d+", g) for g in m.groups())
    if ints:
        return [str(int(a) + k * int(s)) for k in range(n)]
    return [_short(a + k * s) for k in range(n)]


def _short(v: float) -> str:
    v = float(f"{v:.12g}")
    return "0" if v == 0 else f"{v:.12g}"


def expand_spec(spec: str) -> list[str]:
    """One spec per combination of its range values: 'm:a=0:1:0.5,b=2' -> ['m:a=0,b=2', 'm:a=0.5,b=2', 'm:a=1,b=2']."""
    name, params = parse_spec(spec)
    if not any(is_range(v) for v in params.values()):
        return [spec.strip()]
    choices = [expand_range(v, f"'{spec}': parameter '{k}'") if is_range(v) else [v] for k, v in params.items()]
    keys = list(params)
    return [f"{name}:" + ",".join(f"{k}={v}" for k, v in zip(keys, combo)) for combo in itertools.product(*choices)]


def expand_specs(specs: Sequence[str]) -> list[str]:
    return [s for spec in specs for s in expand_spec(spec)]


def parse_seeds_value(value: Any, where: str) -> list[int]:
    """A seed count (3 -> 0,1,2), a list of seeds, or a range string; sorted, unique, non-negative."""
    if isinstance(value, bool):
        raise UserError(f"{where}: seeds must be a count, a list of integers or a range like \"0:4:1\"")
    if isinstance(value, int):
        if value < 1:
            raise UserError(f"{where}: seeds = {value}: need at least 1 seed; write seeds = 1 or a list like [0, 1, 2]")
        check_seed_count(value, f"{where}: seeds = {value}")
        return list(range(value))
    if isinstance(value, str) and is_range(value):
        seeds = [int(float(v)) for v in expand_range(value, where)]
    elif isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        seeds = list(value)
    else:
        raise UserError(f"{where}: seeds must be a count, a list of integers or a range like \"0:4:1\", got {value!r}")
    if not seeds:
        raise UserError(f"{where}: seeds = {value!r} makes a grid with zero runs; list at least one, e.g. seeds = [0]")
    if any(s < 0 for s in seeds):
        raise UserError(f"{where}: seeds must be non-negative integers, got {value!r}")
    return check_seeds(seeds, f"{where}: seeds = {value!r}")


def check_seed_count(n: int, where: str) -> None:
    """A seed count above `MAX_SEEDS` is an error (before `range(n)` is built).

    >>> check_seed_count(3, "--seeds 3")
    """
    if n > MAX_SEEDS:
        raise UserError(f"{where}: at most {MAX_SEEDS} seeds (this asks for {n:,}); give a smaller count or a "
                        f"list like 0,1,2")


def check_seeds(seeds: Sequence[int], where: str) -> list[int]:
    """`seeds` sorted and unique, each in numpy's seed range [0, 2^32) and at most `MAX_SEEDS` of them.

    >>> check_seeds([2, 0, 2], "--seeds 2,0,2")
    [0, 2]
    """
    unique = sorted(set(seeds))
    check_seed_count(len(unique), where)
    if unique and (unique[0] < 0 or unique[-1] >= SEED_LIMIT):
        bad = unique[0] if unique[0] < 0 else unique[-1]
        raise UserError(f"{where}: seeds must be below 2^32 and non-negative (numpy's seed range), got {bad}")
    return unique


# ---- sweep files -----------------------------------------------------------------------------------------------

@dataclass
class Entry:
    """One task or method choice: a registered name and its parameters (strings from specs, or typed TOML values)."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class Sweep:
    path: Path
    tasks: list[Entry]
    methods: list[Entry]
    seeds: Optional[list[int]]
    overrides: dict[str, Any]
    out: Optional[str]
    description: str = ""


def entries_from_specs(specs: Sequence[str]) -> list[Entry]:
    """CLI specs (ranges expanded) as entries."""
    return [Entry(*parse_spec(s)) for s in expand_specs(specs)]


def _unknown(where: str, keys: Sequence[str], valid: dict[str, str]) -> None:
    bad = [k for k in keys if k not in valid]
    if bad:
        raise UserError(f"{where}: unknown key '{bad[0]}'; valid keys: {', '.join(valid)}")


def _entries(file: str, kind: str, value: Any) -> list[Entry]:
    if not isinstance(value, list):
        raise UserError(f"{file}: '{kind}' must be a list ([[{kind}]] tables or spec strings), got {type(value).__name__}")
    out: list[Entry] = []
    for i, item in enumerate(value, start=1):
        where = f"{file}: {kind} #{i}"
        if isinstance(item, str):
            out += entries_from_specs([item])
            continue
        if not isinstance(item, dict):
            raise UserError(f"{where}: expected a table with a name or a spec string, got {item!r}")
        _unknown(where, list(item), ENTRY_KEYS)
        name = item.get("name")
        if not isinstance(name, str) or not name.strip():
            raise UserError(f"{where}: needs name = \"...\" (see --list)")
        params, grid = item.get("params", {}), item.get("grid", {})
        for key, tbl in (("params", params), ("grid", grid)):
            if not isinstance(tbl, dict):
                raise UserError(f"{where}: '{key}' must be a table like {{ beta = 0.5 }}, got {tbl!r}")
        both = sorted(set(params) & set(grid))
        if both:
            raise UserError(f"{where}: parameter '{both[0]}' is in both params and grid; keep it in one")
        axes = []
        for k, v in grid.items():
            if is_range(v):
                axes.append(expand_range(v, f"{where}: grid.{k}"))
            elif isinstance(v, list) and v:
                axes.append(v)
            else:
                raise UserError(f"{where}: grid.{k} must be a non-empty list or a range \"start:stop:step\", got {v!r}")
        for combo in itertools.product(*axes):
            out.append(Entry(name.strip(), {**params, **dict(zip(grid, combo))}))
    return out


def load_sweep(path: str | Path) -> Sweep:
    """Parse and check a sweep file (names are checked against the registries later, with the command line)."""
    p = Path(path)
    file = f"sweep file {p}"
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise UserError(f"--sweep {p}: no such file; give the path of a .toml sweep file (e.g. sweeps/synth.toml)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--sweep {p}: cannot read it ({exc}); give a readable UTF-8 .toml file") from None
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{file} is not valid TOML ({exc}); fix the syntax there") from None
    _unknown(file, list(data), TOP_KEYS)
    overrides = data.get("overrides", {})
    if not isinstance(overrides, dict):
        raise UserError(f"{file}: 'overrides' must be a table of task parameters, like [overrides] data = \"...\"")
    out = data.get("out")
    if out is not None and not isinstance(out, str):
        raise UserError(f"{file}: 'out' must be a string path, got {out!r}")
    desc = data.get("description", "")
    return Sweep(
        path=p,
        tasks=_entries(file, "tasks", data.get("tasks", [])),
        methods=_entries(file, "methods", data.get("methods", [])),
        seeds=parse_seeds_value(data["seeds"], file) if "seeds" in data else None,
        overrides=dict(overrides),
        out=out,
        description=str(desc),
    )


# ---- shards ----------------------------------------------------------------------------------------------------

def parse_shard(text: Optional[str]) -> Optional[tuple[int, int]]:
    """'2/8' -> (2, 8): shard index (0-based, as $SLURM_ARRAY_TASK_ID with --array=0-7) out of a count."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*([-+]?\d+)\s*/\s*(\d+)\s*", text)
    if m is None:
        raise UserError(f"--shard {text!r}: write INDEX/COUNT with a 0-based index, e.g. --shard 0/4 ... --shard 3/4")
    i, n = int(m.group(1)), int(m.group(2))
    if n < 1:
        raise UserError(f"--shard {text}: the count must be at least 1, e.g. --shard 0/4")
    if i < 0:
        raise UserError(f"--shard {text}: the index is 0-based, from 0 to {n - 1}; e.g. --shard {n - 1}/{n} for "
                        f"the last part")
    if i >= n:
        raise UserError(f"--shard {text}: the index is 0-based and must be below the count (0..{n - 1}); "
                        f"e.g. --shard {n - 1}/{n}")
    return i, n


def unit_key(spec: Any) -> str:
    """Runs that must stay in one shard share a key: a method that reuses its baseline's scores or model goes
    with that baseline (it must run after it); every other run is its own unit."""
    m = spec.method
    if getattr(m, "posthoc", False) or getattr(m, "init_from_baseline", False):
        return spec.baseline().run_id
    return spec.run_id


def shard_specs(specs: list, index: int, count: int) -> list:
    """This shard's runs: units sorted by run id are dealt round-robin, so every machine computes the same split
    from the same grid; the grid's own order (task by task, baseline first) is kept within the shard."""
    if count == 1:
        return list(specs)
    keys = sorted({unit_key(s) for s in specs})
    mine = set(keys[index::count])
    return [s for s in specs if unit_key(s) in mine]
