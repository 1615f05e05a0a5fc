"""Exact, vectorized classification metrics: per-class AP and ROC AUC, d', and the multi-/single-label summaries.

Every number equals scikit-learn's (``average_precision_score``, ``roc_auc_score``, ``accuracy_score``,
``balanced_accuracy_score``) to ~1e-14, ties and ``sample_weight`` included, while all classes are scored at once:
at 20,000 x 527 about 0.06 s unweighted and 0.12-0.16 s weighted, 30-80x faster than sklearn's per-class calls
(``python -m benchmark.perf --section metrics``). Examples with weight 0 are treated as absent.

How it works. Positives are grouped into ties: one group per (class, distinct positive score s). Per group we
need the mass of positives (T) and of all examples (W) at scores >= s and > s; then, with P and N the class's
positive and negative mass and m the group's positive mass,

* AP  = sum_groups m * T(>=s) / W(>=s) / P                           (sklearn's step integral over thresholds)
* AUC = sum_groups m * (N - ((W-T)(>=s) + (W-T)(>s)) / 2) / (P * N)   (Mann-Whitney; ties count 1/2 = trapezoid)

T comes from the (few) positives alone. W needs each class's scores sorted: unweighted, a SIMD ``np.sort`` and a
``searchsorted`` of the group scores give counts; weighted, the sort must carry the example index, so we sort int64
keys that hold an order-preserving image of the score above the index (one ``np.sort``, 1.3-2x faster than
``argsort``), gather the weights in that order and sum only the segments between the groups' boundaries.

Classes are processed in blocks of columns, transposed tile by tile into reused buffers, so extra memory stays
well under the size of the score matrix (0.1x unweighted, ~0.5x weighted). This module imports only numpy/scipy.
"""
from __future__ import annotations

import math
import sys
from typing import Any, Optional

import numpy as np
from scipy.special import ndtri

__all__ = [
    "average_precision",
    "roc_auc",
    "dprime_from_auc",
    "multilabel_metrics",
    "singlelabel_metrics",
    "metrics_for",
]

_BLOCK = 32  # classes transposed together (a 32-float row slice is 2 cache lines: a full transfer)
_SUB_ELEMS = 1 << 18  # weighted: scores sorted together; their int64 keys and weights then stay in cache
_TILE = 1024  # rows per transpose tile: a strided (n, block) -> (block, n) copy is 3-4x slower than tiled
_AUC_CLIP = 1e-12
_LO, _HI = (0, 1) if sys.byteorder == "little" else (1, 0)  # int32 halves of an int64


# ----------------------------------------------------------------------------------------------------------------
# input validation


def _as_weights(sample_weight: Any, n: int) -> Optional[np.ndarray]:
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight)
    if w.dtype == bool or not (np.issubdtype(w.dtype, np.number)) or np.iscomplexobj(w):
        raise ValueError(f"sample_weight must be a real numeric array, got dtype {w.dtype}")
    w = w.astype(np.float64, copy=False)
    if w.ndim != 1:
        raise ValueError(f"sample_weight must be 1-D of shape (n,), got shape {w.shape}")
    if w.shape[0] != n:
        raise ValueError(f"sample_weight has {w.shape[0]} entries but there are {n} examples")
    if not np.all(np.isfinite(w)):
        raise ValueError("sample_weight must be finite (found NaN or inf)")
    if np.any(w < 0):
        raise ValueError("sample_weight must be non-negative")
    if not w.sum() > 0:
        raise ValueError("sample_weight sums to 0: there is nothing to evaluate")
    return w


def _as_scores(scores: Any, name: str) -> np.ndarray:
    s = np.asarray(scores)
    if s.ndim != 2:
        raise ValueError(f"{name} must be 2-D of shape (n, C), got shape {s.shape}")
    if s.dtype == bool or np.issubdtype(s.dtype, np.integer):
        s = s.astype(np.float64)
    elif s.dtype == np.float16:
        s = s.astype(np.float32)  # exact: ties and order are unchanged
    elif s.dtype not in (np.float32, np.float64):
        raise ValueError(f"{name} must be a real float array, got dtype {s.dtype}")
    if s.shape[0] == 0:
        raise ValueError(f"{name} has no examples (n = 0)")
    if s.shape[1] == 0:
        raise ValueError(f"{name} has no classes (C = 0)")
    # a finite sum proves all entries finite; only when it is not (overflow or a real NaN/inf) pay the full check
    if not np.isfinite(s.sum(dtype=np.float64)) and not np.all(np.isfinite(s)):
        raise ValueError(f"{name} must be finite (found NaN or inf)")
    return s


def _check_multilabel(y_true: Any, scores: Any) -> tuple[np.ndarray, np.ndarray]:
    s = _as_scores(scores, "scores")
    y = np.asarray(y_true)
    if y.ndim != 2:
        raise ValueError(f"y_true must be 2-D of shape (n, C) for multi-label metrics, got shape {y.shape}")
    if y.shape != s.shape:
        raise ValueError(f"y_true has shape {y.shape} but scores has shape {s.shape}")
    if y.dtype != bool:
        if not (np.issubdtype(y.dtype, np.number)) or np.iscomplexobj(y):
            raise ValueError(f"y_true must hold 0/1 or booleans, got dtype {y.dtype}")
        if np.any((y != 0) & (y != 1)):
            raise ValueError("y_true must hold only 0 and 1 (or booleans)")
    return y, s


# ----------------------------------------------------------------------------------------------------------------
# core: AP and AUC for every class


class _Work:
    """Scratch arrays, allocated once per call and reused: `S` for a block of transposed classes, the rest for the
    sub-block sorted together with its weights (sized to stay in cache)."""

    def __init__(self, rows: int, sub: int, n: int, dtype: np.dtype, weighted: bool) -> None:
        self.S = np.empty((rows, n), dtype=dtype)
        if weighted:
            self.ar32 = np.arange(n, dtype=np.int32)
            self.key32 = np.empty((sub, n), dtype=np.int32)
            self.key = np.empty((sub, n), dtype=np.int64)
            self.ws = np.empty((sub, n))
            if dtype == np.float64:
                self.ar = np.arange(n, dtype=np.int64)
                self.S32 = np.empty((sub, n), dtype=np.float32)
                self.v = np.empty((sub, n))


def _block_T(a: np.ndarray, c0: int, c1: int, out: np.ndarray) -> np.ndarray:
    """Columns c0:c1 of the (n, C) array `a` as a C-contiguous (c1-c0, n) array (a view of `out`).

    Copying tile by tile is 3-4x faster than one strided (n, c) -> (c, n) copy.
    """
    n = a.shape[0]
    out = out[: c1 - c0]
    if a.flags.f_contiguous and not a.flags.c_contiguous:
        out[...] = a[:, c0:c1].T  # rows of a.T are already contiguous
    else:
        for r0 in range(0, n, _TILE):
            out[:, r0 : r0 + _TILE] = a[r0 : r0 + _TILE, c0:c1].T
    return out


def _f32_key(x: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """int32 keys that order like the float32 values `x` (no NaN; -0.0 gets key -1, +0.0 key 0)."""
    bits = x.view(np.int32)
    if out is None:
        out = np.empty(x.shape, dtype=np.int32)
    # all ones for negatives: flipping their magnitude bits turns sign-magnitude into two's-complement order
    np.right_shift(bits, 31, out=out)
    np.bitwise_and(out, 0x7FFFFFFF, out=out)
    np.bitwise_xor(out, bits, out=out)
    return out


def _sort_f32_with_weights(S: np.ndarray, w: np.ndarray, work: _Work) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row of the (c, n) float32 block S; return (sorted keys, the example weights in that order).

    The keys are int64 `f32_key(score) << 32 | example index`: carrying the index in the low bits lets one SIMD
    `np.sort` replace `argsort` (1.3-2x slower, and slowest on untied data). The high half identifies the score
    exactly, so thresholds are searched in key space (see `_threshold_keys`).
    """
    c = S.shape[0]
    key = work.key[:c]
    halves = key.view(np.int32)
    halves[:, _HI::2] = _f32_key(S, out=work.key32[:c])
    halves[:, _LO::2] = work.ar32
    key.sort(axis=1)
    ws = np.take(w, halves[:, _LO::2], out=work.ws[:c], mode="clip")  # "clip": unbuffered; indices are valid
    return key, ws


def _threshold_keys(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Search bounds in `_sort_f32_with_weights` key space: the first key with score == v, and the first > v.

    -0.0 and +0.0 are equal scores with adjacent keys (-1, 0), so a zero threshold spans both.
    """
    v = values.astype(np.float32)
    k = _f32_key(v).astype(np.int64)
    zero = v == 0
    k[zero] = 0
    lo = k << 32
    lo[zero] = -1 << 32
    return lo, (k + 1) << 32


def _f64_key(x: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
    """int64 keys that order like the float64 values `x` (no NaN; -0.0 sorts just below +0.0)."""
    bits = x.view(np.int64)
    if out is None:
        out = np.empty(x.shape, dtype=np.int64)
    np.right_shift(bits, 63, out=out)
    np.bitwise_and(out, 0x7FFFFFFFFFFFFFFF, out=out)
    np.bitwise_xor(out, bits, out=out)
    return out


def _sort_f64_with_weights(S: np.ndarray, w: np.ndarray, work: _Work) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row of the (c, n) float64 block S; return (sorted values, the example weights in that order).

    Same packed-key idea as `_sort_f32_with_weights`, but a float64 key has no room for the index, so the index
    replaces the key's lowest `shift` bits: values closer than ~2^(shift-53) relative can come out in index order.
    Such rows (none for float64 values computed from float32 data; some for genuinely float64 scores at large n)
    are detected and repaired by re-sorting only the runs of equal truncated keys that are out of order.
    """
    c, n = S.shape
    shift = max(1, (n - 1).bit_length())
    order = _f64_key(S, out=work.key[:c])
    np.bitwise_and(order, -(1 << shift), out=order)
    np.bitwise_or(order, work.ar, out=order)
    order.sort(axis=1)
    np.bitwise_and(order, (1 << shift) - 1, out=order)
    ws = np.take(w, order, out=work.ws[:c], mode="clip")
    order += (np.arange(c, dtype=np.int64) * n)[:, None]  # flat positions: np.take beats take_along_axis 3x
    v = np.take(S.ravel(), order, out=work.v[:c], mode="clip")
    for r in np.flatnonzero(np.any(v[:, 1:] < v[:, :-1], axis=1)):
        _repair_runs(v[r], ws[r], shift)
    return v, ws


def _repair_runs(v: np.ndarray, ws: np.ndarray, shift: int) -> None:
    """Sort, in place, the runs of `v` (and `ws` alongside) that share a truncated key and are out of order.

    Runs of equal truncated key are already in the right place relative to each other, so sorting within them
    completes the sort; only the runs that contain a descent are touched.
    """
    tk = _f64_key(v)
    tk >>= shift
    run = np.empty(v.shape[0], dtype=np.int64)
    run[0] = 0
    np.cumsum(tk[1:] != tk[:-1], out=run[1:])
    bad = np.zeros(int(run[-1]) + 1, dtype=bool)
    bad[run[1:][v[1:] < v[:-1]]] = True
    pos = np.flatnonzero(bad[run])
    o = pos[np.lexsort((v[pos], run[pos]))]
    v[pos] = v[o]
    ws[pos] = ws[o]


def _rev_cumsum(x: np.ndarray) -> np.ndarray:
    """cs[k] = x[k:].sum(), length len(x) + 1 (cs[-1] = 0), accumulated in long double.

    Segmented suffix sums are taken as cs[k] - cs[segment end]; the extra precision (where the platform has it)
    keeps that difference as exact as a per-segment cumulative sum.
    """
    cs = np.zeros(x.shape[0] + 1, dtype=np.longdouble)
    np.cumsum(x[::-1], dtype=np.longdouble, out=cs[-2::-1])
    return cs


def _block_suffix(ws: np.ndarray, row: np.ndarray, L: np.ndarray, R: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sums ws[row[g], L[g]:] and ws[row[g], R[g]:] for the tie groups g of a block, in (row, score) order.

    Within a row the groups are disjoint and ascending (L[0] < R[0] <= L[1] < ...), so the boundaries, plus an end
    marker per row, form one nondecreasing list over the flattened block: a single `reduceat` sums the segments
    between them (5x cheaper than a cumulative sum of every row), and suffix sums of those segments do the rest.
    """
    c, n = ws.shape
    G = L.shape[0]
    counts = np.bincount(row, minlength=c)
    ends = np.cumsum(counts)  # groups in rows <= r
    slot_l = 2 * np.arange(G) + row  # each row's slots: L0 R0 L1 R1 ... END
    slot_end = 2 * ends + np.arange(c)
    b = np.empty(2 * G + c, dtype=np.int64)
    b[slot_l] = row * n + L
    b[slot_l + 1] = row * n + R
    b[slot_end] = (np.arange(c) + 1) * n
    keep = np.empty(b.shape[0], dtype=bool)
    keep[0] = True
    np.not_equal(b[1:], b[:-1], out=keep[1:])
    where = np.cumsum(keep) - 1  # slot -> index among the distinct boundaries
    seg = np.add.reduceat(ws.ravel(), b[keep][:-1])  # the last boundary is the block's end
    cs = _rev_cumsum(seg)
    stop = cs[where[slot_end]][row]
    W_ge = (cs[where[slot_l]] - stop).astype(np.float64)
    W_gt = (cs[where[slot_l + 1]] - stop).astype(np.float64)
    return W_ge, W_gt


def _locate(A: np.ndarray, c0: int, gptr: np.ndarray, qlo: np.ndarray, qhi: np.ndarray, sides: tuple[str, str],
            L: np.ndarray, R: np.ndarray) -> None:
    """L, R[g] = sorted positions of group g's lower / upper search bound in its class's row of A (rows from c0).

    `qlo` / `qhi` hold the bounds of the groups of A's classes only, starting at group gptr[c0].
    """
    base = gptr[c0]
    for r in range(A.shape[0]):
        g0, g1 = gptr[c0 + r], gptr[c0 + r + 1]
        if g0 < g1:
            L[g0:g1] = np.searchsorted(A[r], qlo[g0 - base : g1 - base], sides[0])
            R[g0:g1] = np.searchsorted(A[r], qhi[g0 - base : g1 - base], sides[1])


def _ap_auc(y: np.ndarray, s: np.ndarray, w: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """AP and ROC AUC of every column of validated (n, C) labels `y` and scores `s`; NaN where undefined."""
    n, C = s.shape
    if w is not None and np.all(w == w[0]):
        w = None  # constant (positive) weights give the unweighted result; take the faster path
    live = None if w is None else w > 0

    # positives, sorted by (class, score) and grouped into ties: one group per (class, threshold)
    yb = y if y.dtype == bool else y.astype(bool)
    flat = np.flatnonzero(yb)  # 10x faster than np.nonzero on a 2-D array
    ex, cls = np.divmod(flat, C)
    del flat
    if live is not None:
        keep = live[ex]  # weight 0 = absent: such a positive can neither count nor create a threshold
        ex, cls = ex[keep], cls[keep]
    val = s[ex, cls]
    o = np.lexsort((val, cls))
    ex, cls, val = ex[o], cls[o], val[o]
    m = val.shape[0]
    first = np.empty(m, dtype=bool)
    first[:1] = True
    first[1:] = (cls[1:] != cls[:-1]) | (val[1:] != val[:-1])  # float compare: -0.0 ties with +0.0
    gstart = np.flatnonzero(first)
    g_cls = cls[gstart]
    g_val = val[gstart]
    gptr = np.zeros(C + 1, dtype=np.int64)  # groups of class j: gptr[j]:gptr[j+1]
    np.cumsum(np.bincount(g_cls, minlength=C), out=gptr[1:])
    pw = np.ones(m) if w is None else w[ex]
    g_mass = np.add.reduceat(pw, gstart) if m else np.zeros(0)  # positive mass per group
    P = np.bincount(g_cls, weights=g_mass, minlength=C)
    n_pos = np.bincount(cls, minlength=C)
    del ex, cls, val, o, first, pw

    # positive mass at scores >= / > each group's: suffix sums within the class
    cs = _rev_cumsum(g_mass)
    stop = cs[gptr[1:]][g_cls]
    T_ge = (cs[:-1] - stop).astype(np.float64)
    T_gt = (cs[1:] - stop).astype(np.float64)
    del cs, stop

    # mass of all examples at scores >= / > each group's: one sort per class, in blocks of classes
    G = g_cls.shape[0]
    W_ge = np.empty(G)
    W_gt = np.empty(G)
    L = np.empty(G, dtype=np.int64)  # sorted position of each group's first / one-past-last element
    R = np.empty(G, dtype=np.int64)
    sub = max(1, min(_BLOCK, _SUB_ELEMS // n))  # classes sorted together with their weights
    work = _Work(min(C, _BLOCK), min(C, sub), n, s.dtype, w is not None)
    for c0 in range(0, C, _BLOCK):
        c1 = min(C, c0 + _BLOCK)
        if gptr[c1] == gptr[c0]:
            continue
        S_block = _block_T(s, c0, c1, work.S)
        if w is None:
            S_block.sort(axis=1)
            q = g_val[gptr[c0] : gptr[c1]]
            _locate(S_block, c0, gptr, q, q, ("left", "right"), L, R)
            b0, b1 = gptr[c0], gptr[c1]
            W_ge[b0:b1] = n - L[b0:b1]
            W_gt[b0:b1] = n - R[b0:b1]
            continue
        for d0 in range(c0, c1, sub):
            d1 = min(c1, d0 + sub)
            b0, b1 = gptr[d0], gptr[d1]
            if b0 == b1:
                continue
            S = S_block[d0 - c0 : d1 - c0]
            if S.dtype == np.float64:
                S32 = work.S32[: d1 - d0]
                with np.errstate(over="ignore"):  # values beyond float32 range just fail the test
                    # cheap probe first: most float64 data is either float32-exact everywhere or nowhere
                    if np.array_equal(S[0, :64].astype(np.float32), S[0, :64]):
                        S32[...] = S
                        if np.array_equal(S32, S):
                            S = S32  # same order and ties, half-width keys
            if S.dtype == np.float32:
                A, ws = _sort_f32_with_weights(S, w, work)
                qlo, qhi = _threshold_keys(g_val[b0:b1])
                _locate(A, d0, gptr, qlo, qhi, ("left", "left"), L, R)
            else:
                A, ws = _sort_f64_with_weights(S, w, work)
                _locate(A, d0, gptr, g_val[b0:b1], g_val[b0:b1], ("left", "right"), L, R)
            W_ge[b0:b1], W_gt[b0:b1] = _block_suffix(ws, g_cls[b0:b1] - d0, L[b0:b1], R[b0:b1])

    # per group: precision at its threshold and its Mann-Whitney term; then sums per class
    if w is None:
        N = n - P
        has_neg = N > 0
    else:
        N = np.maximum(math.fsum(w) - P, 0.0)
        has_neg = (np.count_nonzero(live) - n_pos) > 0  # decided on counts: the mass difference can be residue
    ap_num = np.bincount(g_cls, weights=g_mass * (T_ge / W_ge), minlength=C)
    # NEG(<s) + NEG(=s)/2 = N - (NEG(>=s) + NEG(>s))/2
    u = N[g_cls] - 0.5 * ((W_ge - T_ge) + (W_gt - T_gt))
    auc_num = np.bincount(g_cls, weights=g_mass * u, minlength=C)
    has_pos = n_pos > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = np.where(has_pos, ap_num / P, np.nan)
        auc = np.where(has_pos & has_neg, auc_num / (P * N), np.nan)
    # AP and AUC lie in [0, 1]; clip rounding excursions (sklearn clips AP at 0 too)
    return np.clip(ap, 0.0, 1.0), np.clip(auc, 0.0, 1.0)


# ----------------------------------------------------------------------------------------------------------------
# public API


def average_precision(y_true: Any, scores: Any, sample_weight: Any = None) -> np.ndarray:
    """Per-class average precision, shape (C,), float64; NaN where a class has no positive weight mass.

    Equals ``sklearn.metrics.average_precision_score(y_true[:, j], scores[:, j], sample_weight=w)`` per column.
    """
    y, s = _check_multilabel(y_true, scores)
    return _ap_auc(y, s, _as_weights(sample_weight, s.shape[0]))[0]


def roc_auc(y_true: Any, scores: Any, sample_weight: Any = None) -> np.ndarray:
    """Per-class ROC AUC, shape (C,), float64; NaN where a class has no positives or no negatives (by weight).

    Equals ``sklearn.metrics.roc_auc_score(y_true[:, j], scores[:, j], sample_weight=w)`` per column.
    """
    y, s = _check_multilabel(y_true, scores)
    return _ap_auc(y, s, _as_weights(sample_weight, s.shape[0]))[1]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax (single-label scores for one-vs-rest AP); a new array, stable for large logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def dprime_from_auc(auc: float) -> float:
    """d' = sqrt(2) * Phi^-1(auc), with auc clipped to [1e-12, 1 - 1e-12] so the result is always finite."""
    a = float(auc)
    if not (0.0 <= a <= 1.0):  # also rejects NaN
        raise ValueError(f"auc must be a number in [0, 1], got {auc!r}")
    a = min(max(a, _AUC_CLIP), 1.0 - _AUC_CLIP)
    return float(math.sqrt(2.0) * ndtri(a))


def _to_list(x: np.ndarray) -> list[Optional[float]]:
    return [float(v) if math.isfinite(v) else None for v in x.tolist()]


def _macro(x: np.ndarray) -> Optional[float]:
    ok = np.isfinite(x)
    return float(np.mean(x[ok])) if ok.any() else None


def multilabel_metrics(y_true: Any, scores: Any, sample_weight: Any = None) -> dict[str, Any]:
    """mAP, mAUC and d' (from the macro AUC) over the classes that can be scored, plus per-class AP and AUC.

    Macro means skip classes whose value is undefined (AP: no positives; AUC: no positives or no negatives) and
    are None when no class can be scored. ``n_classes_scored`` counts the classes with positives (those with an AP).
    Per-class lists hold Python floats or None, never NaN or inf.
    """
    y, s = _check_multilabel(y_true, scores)
    ap, auc = _ap_auc(y, s, _as_weights(sample_weight, s.shape[0]))
    mauc = _macro(auc)
    return {
        "mAP": _macro(ap),
        "mAUC": mauc,
        "dprime": None if mauc is None else dprime_from_auc(mauc),
        "n_classes_scored": int(np.count_nonzero(np.isfinite(ap))),
        "per_class": {"AP": _to_list(ap), "AUC": _to_list(auc)},
    }


def singlelabel_metrics(y_true: Any, probs: Any, sample_weight: Any = None) -> dict[str, Any]:
    """Top-1 accuracy, balanced accuracy, one-vs-rest mAP and per-class recall / AP for single-label data.

    ``y_true`` is (n,) int in [0, C); ``probs`` is (n, C) scores whose argmax (first maximum on ties) is the
    prediction. ``top1`` and ``balanced_acc`` equal sklearn's ``accuracy_score`` and ``balanced_accuracy_score``
    with ``sample_weight``; classes absent from ``y_true`` (by weight) have recall and AP None and are left out of
    ``balanced_acc``, ``mAP`` and ``n_classes_scored``.
    """
    p = _as_scores(probs, "probs")
    n, C = p.shape
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D of shape (n,) for single-label metrics, got shape {y.shape}")
    if y.shape[0] != n:
        raise ValueError(f"y_true has {y.shape[0]} entries but probs has {n} rows")
    if y.dtype == bool or not np.issubdtype(y.dtype, np.integer):
        if not np.issubdtype(y.dtype, np.floating) or not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise ValueError(f"y_true must hold integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= C:
        raise ValueError(f"y_true must be in [0, {C}) (probs has {C} columns), got values in [{y.min()}, {y.max()}]")
    w = _as_weights(sample_weight, n)
    ww = np.ones(n) if w is None else w

    pred = np.argmax(p, axis=1)
    hit = pred == y
    mass = np.bincount(y, weights=ww, minlength=C)
    tp = np.bincount(y[hit], weights=ww[hit], minlength=C)
    present = mass > 0
    recall = np.full(C, np.nan)
    recall[present] = tp[present] / mass[present]

    onehot = np.zeros((n, C), dtype=bool)
    onehot[np.arange(n), y] = True
    ap = _ap_auc(onehot, p, w)[0]
    return {
        "top1": float(np.sum(ww[hit]) / np.sum(ww)),
        "balanced_acc": _macro(recall),
        "mAP": _macro(ap),
        "n_classes_scored": int(np.count_nonzero(present)),
        "per_class": {"recall": _to_list(recall), "AP": _to_list(ap)},
    }


def metrics_for(multi_label: bool, y_true: Any, scores: Any, sample_weight: Any = None) -> dict[str, Any]:
    """`multilabel_metrics` or `singlelabel_metrics`, by the task's kind."""
    if multi_label:
        return multilabel_metrics(y_true, scores, sample_weight)
    return singlelabel_metrics(y_true, scores, sample_weight)
