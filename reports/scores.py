"""Stored scores (`<run_id>.npz`) and metrics under many weightings at once: views, prior-shift curves, bootstrap.

Every new evaluation prior, every point of the prior-shift curve and every bootstrap resample is a *weighting* of
the same scored examples, so the order of each class's scores is computed once and reused by all of them.
`weighted_ap_auc` evaluates K weight vectors together: per class, the examples are cut into segments at the
positives' tie groups, one sparse product sums every weight vector per segment, and AP / AUC follow from the
cumulative segment sums. The work is O(n·C·K) adds with no per-weighting sort; AP and AUC equal
`benchmark.metrics` (so scikit-learn's, ties and weights included) for each weight vector.

numpy / scipy only: `benchmark.metrics` and `benchmark.views` are loaded without `benchmark/__init__.py` when the
package is not already imported (see `bench`), so rendering a report never imports torch.
"""
from __future__ import annotations

import importlib
import math
import sys
import types
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import scipy.sparse as sp

_ROOT = Path(__file__).resolve().parent.parent
_STANDIN = "_balancebench_engine"
_BLOCK_NNZ = 4_000_000  # examples × classes per sparse block: bounds the index arrays to ~50 MB
_K_CHUNK = 32  # weightings per sparse product


def bench(name: str) -> types.ModuleType:
    """`benchmark.<name>` (numpy-only modules: views, metrics, errors).

    Imported normally when `benchmark` is already loaded (the CLI); otherwise from its file under a stand-in
    package, which skips `benchmark/__init__.py` the way `reports.load.results_module` does.
    """
    if "benchmark" in sys.modules or not (_ROOT / "benchmark" / f"{name}.py").is_file():
        return importlib.import_module(f"benchmark.{name}")
    if _STANDIN not in sys.modules:
        pkg = types.ModuleType(_STANDIN)
        pkg.__path__ = [str(_ROOT / "benchmark")]  # type: ignore[attr-defined]
        sys.modules[_STANDIN] = pkg
    return importlib.import_module(f"{_STANDIN}.{name}")


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
            self._cache[cache] = s if self.multi_label else bench("metrics").softmax(np.asarray(s, dtype=np.float64))
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


# ---------------------------------------------------------------------------------------------------- kernel


class Ranking:
    """Each class's descending score order for one (y, s) pair, sorted once and reused by every weighting and
    every row subset (a subset keeps the full order's relative order: no new sort)."""

    def __init__(self, y: np.ndarray, s: np.ndarray) -> None:
        self.y = np.asarray(y, dtype=bool)
        s = np.asarray(s)
        self.n, self.C = self.y.shape
        neg = -(s.T + 0.0)  # descending; + 0.0: -0.0 ties with 0.0
        # the order inside a tie group does not matter (ties are grouped below): the fast unstable sort will do,
        # and the sorted values need no gather
        self.order = np.argsort(neg, axis=1)  # (C, n)
        self.ss = np.sort(neg, axis=1)
        self.ys = np.take_along_axis(np.ascontiguousarray(self.y.T), self.order, axis=1)

    def ap_auc(self, X: np.ndarray, rows: Optional[np.ndarray] = None,
               classes: Optional[np.ndarray] = None) -> tuple[np.ndarray, np.ndarray]:
        """Per-class AP and ROC AUC under each column of X: (K, C) each, NaN where undefined (no positive weight;
        AUC also no negative weight). X has one row per example of `rows` (default: all), in that order."""
        X = np.asarray(X)
        if X.ndim == 1:
            X = X[:, None]
        cls = np.arange(self.C) if classes is None else np.flatnonzero(classes) if np.asarray(classes).dtype == bool \
            else np.asarray(classes)
        K = X.shape[1]
        ap = np.full((K, self.C), np.nan)
        auc = np.full((K, self.C), np.nan)
        total = X.sum(axis=0, dtype=np.float64)
        Xc = np.ascontiguousarray(X, dtype=np.float32 if X.dtype == np.float32 else np.float64)
        if rows is None:
            m = self.n
            sub = None
        else:
            rows = np.asarray(rows, dtype=np.int64)
            m = rows.size
            member = np.zeros(self.n, dtype=bool)
            member[rows] = True
            local = np.full(self.n, -1, dtype=np.int64)
            local[rows] = np.arange(m)
            if int(member.sum()) != m:
                raise ValueError("rows must not repeat an example (give it a larger weight instead)")
            sub = (member, local)
        step = max(1, _BLOCK_NNZ // max(m, 1))
        for c0 in range(0, cls.size, step):
            cb = cls[c0:c0 + step]
            order, ss, ys = self.order[cb], self.ss[cb], self.ys[cb]
            if sub is not None:
                keep = sub[0][order]
                order = sub[1][order[keep].reshape(cb.size, m)]
                ss, ys = ss[keep].reshape(cb.size, m), ys[keep].reshape(cb.size, m)
            ap_b = np.full((K, cb.size), np.nan)
            auc_b = np.full((K, cb.size), np.nan)
            _block(order, ss, ys, Xc, total, ap_b, auc_b)
            ap[:, cb], auc[:, cb] = ap_b, auc_b
        return ap, auc


def weighted_ap_auc(y: np.ndarray, s: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-class AP and ROC AUC under each of K weightings: y (n, C) bool, s (n, C) scores, X (n, K) weights >= 0.

    Returns two (K, C) float64 arrays, NaN where a class has no positive weight (AP, AUC) or no negative weight
    (AUC). Column k equals `benchmark.metrics.average_precision(y, s, X[:, k])` / `roc_auc(...)`.
    """
    return Ranking(y, s).ap_auc(X)


def _block(order: np.ndarray, ss: np.ndarray, ys: np.ndarray, X: np.ndarray, total: np.ndarray,
           ap_out: np.ndarray, auc_out: np.ndarray) -> None:
    """AP / AUC of a block of classes from their sorted scores `ss`, labels `ys` and example ids `order` (c, n);
    all index work vectorized over (class, sorted position)."""
    c, n = order.shape
    start = np.ones((c, n), dtype=bool)  # first position of a tie group
    np.not_equal(ss[:, 1:], ss[:, :-1], out=start[:, 1:])
    no_ties = bool(start.all())
    cut = ys  # usually every positive is its own segment's end
    if not no_ties:  # ties are rare with float scores: fix up only the tie groups
        cut = ys.copy()
        flat_cut, flat_ys = cut.ravel(), ys.ravel()
        cont = np.flatnonzero(~start.ravel())  # positions tied with the one before (never a row's first)
        new_run = np.r_[True, np.diff(cont) > 1]
        g_lo = cont[new_run] - 1  # first and last position of each tie group
        g_hi = cont[np.r_[new_run[1:], True]]
        cys = np.cumsum(flat_ys, dtype=np.int64)
        pos_in = cys[g_hi] - np.where(g_lo > 0, cys[np.maximum(g_lo - 1, 0)], 0)
        g_lo, g_hi = g_lo[pos_in > 0], g_hi[pos_in > 0]  # tie groups holding a positive become one segment:
        size = g_hi - g_lo + 1
        idx = np.repeat(g_lo - np.cumsum(size) + size, size) + np.arange(size.sum())  # every position of them
        flat_cut[idx] = False
        flat_cut[g_hi] = True  # cut at its last position
        first_in_row = g_lo % n == 0
        flat_cut[(g_lo - 1)[~first_in_row]] = True  # and just before its first
        multi_lo = g_lo
    n_cuts = cut.sum(axis=1)
    seg = np.cumsum(cut, axis=1, dtype=np.int32)
    seg -= cut  # cuts strictly before each position = its segment
    offsets = np.concatenate([[0], np.cumsum(n_cuts)])
    n_seg = int(offsets[-1])
    if n_seg == 0:
        return
    keep = seg < n_cuts[:, None]  # examples below a class's lowest positive matter only through the totals
    seg += offsets[:-1, None].astype(np.int32)  # global segment ids, class-major
    rows = seg[keep]  # non-decreasing: CSR without a sort
    indptr = np.zeros(n_seg + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_seg), out=indptr[1:])
    S = sp.csr_matrix((np.ones(rows.size, dtype=X.dtype), order[keep], indptr), shape=(n_seg, n))
    tie = np.zeros(n_seg, dtype=bool)
    if no_ties:  # one positive per segment, in segment order: its weight is a plain gather
        pos_ex = order[ys]
    else:
        # the segments that are exactly a positive tie group of several examples (cut just before and at its end)
        tie[seg.ravel()[multi_lo]] = True
        prow = seg[ys]
        pptr = np.zeros(n_seg + 1, dtype=np.int64)
        np.cumsum(np.bincount(prow, minlength=n_seg), out=pptr[1:])
        Sp = sp.csr_matrix((np.ones(prow.size, dtype=X.dtype), order[ys], pptr), shape=(n_seg, n))
    has = n_cuts > 0
    cols = np.flatnonzero(has)
    first = offsets[:-1][has]
    seg_class = np.repeat(np.arange(cols.size), n_cuts[has])  # index into `first` of each segment
    tie_idx = np.flatnonzero(tie)
    tie_class = seg_class[tie_idx]
    tie_first = np.flatnonzero(np.r_[True, tie_class[1:] != tie_class[:-1]]) if tie_idx.size else tie_idx
    for k0 in range(0, X.shape[1], _K_CHUNK):  # column chunks: X's rows stay in cache during the sparse product
        Xk = X[:, k0:k0 + _K_CHUNK]
        # (k, segments), contiguous along segments so the scans below run on contiguous rows
        za = np.array((S @ Xk).T, dtype=np.float64, order="C")  # weight of every example per segment
        if no_ties:
            zp = np.array(Xk.T, dtype=np.float64, order="C")[:, pos_ex]  # positives' weight per segment
        else:
            zp = np.array((Sp @ Xk).T, dtype=np.float64, order="C")
        t_sum = None
        if tie_idx.size:  # ½ Σ_ties zp · NEG(= s): the tied negatives of each positive tie group
            t_sum = np.add.reduceat(zp[:, tie_idx] * (za[:, tie_idx] - zp[:, tie_idx]), tie_first, axis=1)
        P = np.add.reduceat(zp, first, axis=1)  # positive weight of each class
        N = total[k0:k0 + _K_CHUNK, None] - P
        # cumulative sums restarting at each class: subtract the previous class's total at its first segment
        # (float64: the running sum then returns to ~0 with a rounding residual of ~1e-16 of a class's total)
        ca, cp = za, zp.copy()  # become ALL(>= s) and TP(>= s) at each segment's end
        for z, tot in ((ca, np.add.reduceat(za, first, axis=1)), (cp, P)):
            z[:, first[1:]] -= tot[:, :-1]
            np.cumsum(z, axis=1, out=z)
        with np.errstate(invalid="ignore", divide="ignore"):
            # AP = Σ_pos w · TP(>= s) / ALL(>= s) / P (cp <= ca, so ca = 0 means 0 / tiny = 0)
            prec = np.maximum(ca, 1e-300)
            np.divide(cp, prec, out=prec)
            np.clip(prec, 0.0, 1.0, out=prec)  # rounding residuals of the restarts, where ca is ~0
            prec *= zp
            ap_num = np.add.reduceat(prec, first, axis=1)
            # AUC·P·N = Σ_pos w · (NEG(< s) + NEG(= s) / 2) = N·P - Σ zp · NEG(>= s) + ½ Σ_ties zp · NEG(= s)
            ca -= cp  # now NEG(>= s)
            ca *= zp
            auc_num = N * P - np.add.reduceat(ca, first, axis=1)
            if t_sum is not None:
                auc_num[:, tie_class[tie_first]] += 0.5 * t_sum
            ap_out[k0:k0 + _K_CHUNK, cols] = np.where(P > 0, ap_num / np.where(P > 0, P, 1.0), np.nan)
            ok = (P > 0) & (N > 0)
            auc_out[k0:k0 + _K_CHUNK, cols] = np.where(ok, auc_num / np.where(ok, P * N, 1.0), np.nan)


# ---------------------------------------------------------------------------------------------------- metrics


def _macro(x: np.ndarray) -> np.ndarray:
    """Row-wise mean over finite entries; NaN for a row with none."""
    ok = np.isfinite(x)
    cnt = ok.sum(axis=1)
    tot = np.where(ok, x, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)


def dprime(auc: np.ndarray) -> np.ndarray:
    from scipy.special import ndtri

    a = np.clip(auc, 1e-12, 1 - 1e-12)
    return np.where(np.isfinite(auc), math.sqrt(2.0) * ndtri(a), np.nan)


class RunMetrics:
    """The task's metrics for one run's scores under many weightings and row subsets (one sort per class).

    Multi-label: mAP, mAUC, dprime (from mAUC); single-label: top1, balanced_acc, mAP (one-vs-rest). Classes in
    `exclude` (absent from training) are left out as the engine does: multi-label drops their columns,
    single-label drops their examples.
    """

    def __init__(self, multi_label: bool, labels: np.ndarray, scores: np.ndarray,
                 exclude: Optional[np.ndarray] = None) -> None:
        self.multi = multi_label
        C = scores.shape[1]
        self.exclude = np.zeros(C, dtype=bool) if exclude is None else np.asarray(exclude, dtype=bool)
        if multi_label:
            self.rank = Ranking(labels, scores)
        else:
            y = np.asarray(labels, dtype=np.int64)
            self.y = y
            onehot = np.zeros((y.size, C), dtype=bool)
            onehot[np.arange(y.size), y] = True
            self.rank = Ranking(onehot, scores)
            self.hit = np.argmax(scores, axis=1) == y
            self.scored = ~self.exclude[y]

    def __call__(self, X: np.ndarray, rows: Optional[np.ndarray] = None, per_class: bool = False,
                 metrics: Optional[Sequence[str]] = None) -> dict[str, np.ndarray]:
        """{metric: (K,) array} (NaN = n/a) under the columns of X, whose rows are the examples `rows`
        (default: all). With `per_class`, also "AP" (K, C), NaN for excluded classes. `metrics` limits the
        work where it can (single-label: top1 and balanced_acc without the AP pass)."""
        X = np.asarray(X)
        if X.ndim == 1:
            X = X[:, None]
        if self.multi:
            ap, auc = self.rank.ap_auc(X, rows, classes=~self.exclude)
            mauc = _macro(auc)
            out = {"mAP": _macro(ap), "mAUC": mauc, "dprime": dprime(mauc)}
        else:
            rows = np.arange(self.y.size) if rows is None else np.asarray(rows, dtype=np.int64)
            ok = self.scored[rows]
            rows, X = rows[ok], X[ok]
            y, hit = self.y[rows], self.hit[rows]
            C = self.exclude.size
            # per-class sums as sparse products: no BLAS call (tiny BLAS calls crawl on a busy machine)
            onehot = sp.csr_matrix((np.ones(y.size, dtype=X.dtype), (y, np.arange(y.size))), shape=(C, y.size))
            mass = np.asarray(onehot @ X, dtype=np.float64)  # (C, K)
            tp = np.asarray(onehot @ (X * hit[:, None].astype(X.dtype)), dtype=np.float64)
            tot = X.sum(axis=0, dtype=np.float64)
            with np.errstate(invalid="ignore", divide="ignore"):
                recall = np.where(mass > 0, tp / np.where(mass > 0, mass, 1.0), np.nan).T
                top1 = np.where(tot > 0, tp.sum(axis=0) / np.where(tot > 0, tot, 1.0), np.nan)
            out = {"top1": top1, "balanced_acc": _macro(recall)}
            if per_class or metrics is None or "mAP" in metrics:
                ap, _ = self.rank.ap_auc(X, rows)
                out["mAP"] = _macro(ap)
        if per_class:
            out["AP"] = ap
        return out


def weighted_metrics(multi_label: bool, labels: np.ndarray, scores: np.ndarray, X: np.ndarray,
                     exclude: Optional[np.ndarray] = None, per_class: bool = False) -> dict[str, np.ndarray]:
    """`RunMetrics(...)(X)`: the task's metrics under each column of the weight matrix X (n, K)."""
    return RunMetrics(multi_label, labels, scores, exclude)(X, per_class=per_class)


def bootstrap_counts(n: int, B: int, seed: int) -> np.ndarray:
    """(n, B) float32 resample counts: column b counts how often each of the n examples is drawn in resample b
    (n draws with replacement, the classical bootstrap)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(B, n)) + (np.arange(B) * n)[:, None]
    counts = np.bincount(draws.ravel(), minlength=B * n).reshape(B, n)
    return np.ascontiguousarray(counts.T, dtype=np.float32)
