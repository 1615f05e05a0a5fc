"""Class priors: the named families (reversed, SADE's long tails, the γ path) and prior files (`--eval-prior`: CSV
parsing, matching to a task's classes, the options entries).

A prior file lists one class per line, `class,probability` or `class,count` (see `read_prior_rows`); classes are
named or indexed. numpy only.
"""
from __future__ import annotations

import csv
import difflib
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .errors import UserError

def reversed_prior(prior: np.ndarray) -> np.ndarray:
    """The prior with class ranks mirrored: the most frequent class gets the rarest class's prior, and so on.

    Classes with prior 0 (absent from training) keep 0: mirroring them would give an unlearnable class the top rank.

    >>> reversed_prior(np.array([0.1, 0.6, 0.3])).tolist()
    [0.6, 0.1, 0.3]
    """
    order = np.argsort(-prior, kind="stable")[: int(np.count_nonzero(prior > 0))]
    out = np.zeros_like(prior)
    out[order] = prior[order[::-1]]
    return out


def shifted_prior(train_prior: np.ndarray, gamma: float) -> np.ndarray:
    """The prior-shift path as class proportions: γ=0 the training prior, γ=1 uniform, γ=2 the reversed prior
    (class ranks mirrored); geometric in between (p^(1-γ) up to 1, reversed^(γ-1) beyond). Classes absent from
    training keep 0. For a CIFAR-LT profile of ratio ρ_train, SADE's forward-ρ is γ = 1 - log ρ / log ρ_train.

    >>> shifted_prior(np.array([0.75, 0.25]), 1.0).tolist(), shifted_prior(np.array([0.75, 0.25]), 2.0).tolist()
    ([0.5, 0.5], [0.25, 0.75])
    """
    p = np.asarray(train_prior, dtype=np.float64)
    present = p > 0
    base, e = (p, 1.0 - gamma) if gamma <= 1 else (reversed_prior(p), gamma - 1.0)
    out = np.zeros_like(p)
    out[present] = np.exp(e * np.log(base[present] / base[present].max()))  # scaled first: no under/overflow
    return out / max(out.sum(), 1e-300)


def lt_prior(train_counts: Sequence[float], rho: float, forward: bool) -> np.ndarray:
    """SADE's long-tailed test prior as class proportions: ∝ ρ^(-r/(k-1)) over the k classes present in training,
    r = 0 for the most frequent class (forward) or the rarest (backward); absent classes get 0.

    >>> lt_prior([100, 10, 1], 4, forward=True).round(4).tolist()
    [0.5714, 0.2857, 0.1429]
    """
    counts = np.asarray(train_counts, dtype=np.float64)
    if counts.ndim != 1 or (counts < 0).any():
        raise ValueError(f"train_counts must be 1-D non-negative counts, got shape {counts.shape}")
    if not (np.isfinite(rho) and rho >= 1):
        raise ValueError(f"rho must be a finite imbalance ratio >= 1, got {rho!r}")
    order = np.argsort(-counts, kind="stable")[: int((counts > 0).sum())]
    k = order.size
    ranks = np.arange(k) if forward else np.arange(k)[::-1]
    shape = np.zeros(counts.size)
    shape[order] = float(rho) ** (-ranks / max(k - 1, 1))
    return shape / max(shape.sum(), 1e-300)


PROB_HEADERS = ("probability", "prob", "p", "proportion", "frequency")
COUNT_HEADERS = ("count", "counts", "n", "number")


def read_prior_rows(path: str, flag: str = "--eval-prior") -> tuple[list[tuple[str, float, int]], str]:
    """Rows (class token, value, line number) of a prior CSV and its kind ("probability" or "count").

    Format: `class,probability` or `class,count`, one class per line; a header line naming the second column is
    optional ('#' comments and blank lines are skipped). Without a header, values summing to 1 are probabilities.
    `flag` is the option that named the file, for the error messages (`--train-counts` reads the same format).
    """
    try:
        with open(path, newline="", encoding="utf-8") as f:
            lines = [(i, row) for i, row in enumerate(csv.reader(f), start=1)
                     if row and any(c.strip() for c in row) and not row[0].lstrip().startswith("#")]
    except OSError as exc:
        raise UserError(f"{flag} {path}: cannot read it ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{flag} {path}: not a UTF-8 CSV file ({exc})") from None
    kind = None
    if lines and not _is_number(lines[0][1][-1] if lines[0][1] else ""):
        head = [c.strip().lower() for c in lines[0][1]]
        if len(head) != 2 or head[1] not in PROB_HEADERS + COUNT_HEADERS:
            raise UserError(f"{flag} {path}:{lines[0][0]}: header must be 'class,probability' or "
                            f"'class,count', got {','.join(lines[0][1])!r}")
        kind = "probability" if head[1] in PROB_HEADERS else "count"
        lines = lines[1:]
    if not lines:
        raise UserError(f"{flag} {path}: no rows; write one 'class,probability' line per class")
    rows = []
    for i, row in lines:
        if len(row) != 2:
            raise UserError(f"{flag} {path}:{i}: expected 2 columns 'class,value', got {len(row)}: "
                            f"{','.join(row)!r}")
        token, text = row[0].strip(), row[1].strip()
        if not _is_number(text):
            raise UserError(f"{flag} {path}:{i}: value {text!r} of class {token!r} is not a number")
        value = float(text)
        if not np.isfinite(value) or value < 0:
            raise UserError(f"{flag} {path}:{i}: value of class {token!r} must be a finite number >= 0, "
                            f"got {text}")
        rows.append((token, value, i))
    total = sum(v for _, v, _ in rows)
    if kind is None:
        kind = "probability" if abs(total - 1.0) <= 1e-3 else "count"
    if total <= 0:
        raise UserError(f"{flag} {path}: all values are 0; at least one class needs a positive value")
    # the sum of probabilities is checked by `resolve_prior`, after the classes: a missing, duplicated or
    # unknown class is named there rather than reported as a wrong sum
    return rows, kind


def resolve_prior(rows: Sequence[tuple[str, float, int]], class_names: Sequence[str], path: str = "prior",
                  task: str = "", flag: str = "--eval-prior", kind: str = "count") -> np.ndarray:
    """Class proportions (sum 1, indexed by class) from prior rows; classes by index or by name, all listed once.

    With `kind` "probability" (as `read_prior_rows` says), the values must also sum to 1 (within 0.01).

    >>> resolve_prior([("b", 0.75, 2), ("a", 0.25, 3)], ["a", "b"], kind="probability")
    array([0.25, 0.75])
    """
    names = [str(c) for c in class_names]
    by_name = {c: j for j, c in enumerate(names)}
    by_lower: dict[str, list[int]] = {}
    for j, c in enumerate(names):
        by_lower.setdefault(c.lower(), []).append(j)
    out = np.full(len(names), np.nan)
    first_line = {}
    where = f" for task '{task}'" if task else ""
    for token, value, line in rows:
        if token in by_name:
            j = by_name[token]
        elif token.lstrip("-").isdigit():
            j = int(token)
            if not 0 <= j < len(names):
                raise UserError(f"{flag} {path}:{line}: class index {j} out of range [0, {len(names)}){where}")
        elif len(by_lower.get(token.lower(), [])) == 1:
            j = by_lower[token.lower()][0]
        else:
            close = difflib.get_close_matches(token, names, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else f"; classes are {', '.join(names[:5])}, ..."
            raise UserError(f"{flag} {path}:{line}: unknown class {token!r}{where}{hint}")
        if not np.isnan(out[j]):
            raise UserError(f"{flag} {path}:{line}: class {names[j]!r} is listed twice (lines {first_line[j]} and "
                            f"{line}); keep one line per class")
        out[j] = value
        first_line[j] = line
    missing = np.flatnonzero(np.isnan(out))
    if missing.size:
        shown = ", ".join(repr(names[j]) for j in missing[:3])
        raise UserError(f"{flag} {path}: {missing.size} of {len(names)} classes{where} are missing "
                        f"({shown}{', ...' if missing.size > 3 else ''}); list every class, 0 is allowed")
    total = float(out.sum())
    if kind == "probability" and abs(total - 1.0) > 0.01:
        raise UserError(f"{flag} {path}: probabilities sum to {total:.4g}, not 1; fix them, or use the "
                        f"header 'class,count' for unnormalized counts")
    return out / total


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def prior_entry(spec: str) -> dict:
    """`[TASK=]FILE` of --eval-prior as an options entry; the rows are read and checked now (UserError if bad).

    >>> import tempfile, os
    >>> f = os.path.join(tempfile.mkdtemp(), "deploy.csv"); _ = open(f, "w").write("class,probability\\na,0.25\\nb,0.75\\n")
    >>> e = prior_entry(f); e["name"], e["kind"], e["rows"]
    ('deploy', 'probability', [['a', 0.25, 2], ['b', 0.75, 3]])
    """
    if not isinstance(spec, str) or not spec:
        raise UserError(f"--eval-prior {spec!r}: give a CSV file, optionally as TASK=FILE")
    task, path = (spec.split("=", 1) if "=" in spec and not Path(spec).exists() else (None, spec))
    rows, kind = read_prior_rows(path)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).stem) or "prior"
    return {"name": name, "task": task, "path": str(path), "kind": kind, "rows": [[t, v, i] for t, v, i in rows]}


def priors_for(entries: Iterable[dict], task: str, class_names: Sequence[str]) -> dict[str, np.ndarray]:
    """The prior entries (`prior_entry`) that apply to `task`, as class proportions by name (UserError when one
    does not fit the task's classes).

    >>> priors_for([{"name": "p", "task": None, "rows": [["b", 3, 1], ["a", 1, 2]]}], "t", ["a", "b"])
    {'p': array([0.25, 0.75])}
    """
    out = {}
    for p in entries:
        if p.get("task") not in (None, task):
            continue
        out[p["name"]] = resolve_prior([tuple(r) for r in p["rows"]], class_names, p.get("path", p["name"]), task,
                                       kind=p.get("kind", "count"))
    return out
