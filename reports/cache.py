"""Caches of the prior-shift analysis under <run_dir>/cache/priorshift/: each run's numbers (points, curve,
bootstrap vectors) and the distributions built on the stored pool, each keyed by a digest of all its inputs, so a
re-render (or a grid that grows) recomputes only what changed. A read-only run dir just goes uncached."""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any, Optional

import numpy as np

from benchmark.core.results import atomic_write_bytes

from .summary import json_safe

CACHE_VERSION = 1  # bump when the numbers a run contributes are computed differently


def digest(*parts: Any) -> str:
    """A hex digest of arrays (dtype, shape and bytes), None and anything with a stable repr: a cache key.

    >>> digest(np.arange(3), "x") == digest(np.arange(3), "x") != digest(np.arange(3.0), "x")
    True
    """
    h = hashlib.sha1()
    for p in parts:
        if isinstance(p, np.ndarray):
            h.update(str((p.dtype, p.shape)).encode())
            h.update(np.ascontiguousarray(p).tobytes())
        elif p is None:
            h.update(b"\0none")
        else:
            h.update(repr(p).encode())
        h.update(b"\0")
    return h.hexdigest()


class RunCache:
    """Each run's numbers from its scores, under <run_dir>/cache/priorshift/<run_id>.npz with the digest of every
    input: re-rendering a report (or adding runs to a grid) recomputes only what changed."""

    def __init__(self, run_dir: Path) -> None:
        self.dir = Path(run_dir) / "cache" / "priorshift"

    def get(self, run_id: str, digest: str) -> Optional[dict[str, np.ndarray]]:
        try:
            with np.load(self.dir / f"{run_id}.npz") as z:
                if str(z["__digest__"]) != digest:
                    return None
                return {k: z[k] for k in z.files if k != "__digest__"}
        except (OSError, KeyError, ValueError):
            return None

    def put(self, run_id: str, digest: str, numbers: dict[str, np.ndarray]) -> None:
        write_npz(self.dir / f"{run_id}.npz", {"__digest__": np.asarray(digest), **numbers})


def built_views(run_dir: Path, views: Any, pool_ctx: Any, val_ctx: Any, extra: list[str], gammas: list[float],
                 priors: dict[str, np.ndarray]) -> dict[str, dict]:
    """The distributions built on the stored pool (and validation split) from their labels: the extra ones and
    the γ path; cached like the runs' numbers (raking the 17 points of the path is most of a re-render)."""
    key = digest(CACHE_VERSION, pool_ctx.labels, val_ctx.labels, pool_ctx.train_counts, pool_ctx.n_train,
                  pool_ctx.multi_label, extra, gammas, *[a for n in sorted(priors) for a in (n, priors[n])])
    path = Path(run_dir) / "cache" / "priorshift" / f"views-{key[:20]}.npz"
    try:
        with np.load(path) as z:
            meta = json.loads(str(z["__meta__"]))
            return {name: {"idx": z[f"{name}|idx"], "w": z[f"{name}|w"] if f"{name}|w" in z.files else None, **m}
                    for name, m in meta.items()}
    except (OSError, KeyError, ValueError):
        pass
    out: dict[str, dict] = {}
    jobs = [(f"pool:{d}", d, pool_ctx) for d in extra] + [(f"val:{d}", d, val_ctx) for d in extra]
    jobs += [(f"pool:gamma{g:g}", f"gamma{g:g}", pool_ctx) for g in gammas]
    for name, d, ctx in jobs:
        v = views.build_views([d], ctx)[d]
        out[name] = {"idx": v.indices, "w": v.weights, "description": v.description,
                     "effective_n": float(v.effective_n), "info": json_safe(dict(v.info))}
    arrays = {"__meta__": np.asarray(json.dumps({n: {k: b[k] for k in ("description", "effective_n", "info")}
                                                 for n, b in out.items()}))}
    for name, b in out.items():
        arrays[f"{name}|idx"] = b["idx"]
        if b["w"] is not None:
            arrays[f"{name}|w"] = b["w"]
    write_npz(path, arrays)
    return out


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError:
        pass  # a read-only run dir: the report is still right, only not cached

