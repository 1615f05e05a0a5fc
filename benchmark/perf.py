"""Performance benchmarks, one section per component: ``python -m benchmark.perf [--section NAME] [--large]``.

Every section measures its competitors in the same process, one after the other, and prints a table, so ratios
are comparable even on a noisy machine; absolute seconds are not (rerun the baseline whenever you compare).
Sections are functions ``bench_<name>(large: bool) -> list[dict]`` registered in ``SECTIONS``; add one there:
metrics (exact AP/AUC/d' vs scikit-learn and torchmetrics), sampler (the oversampling index stream at AudioSet
train scale vs numpy's shuffle, a Python loop and torch's WeightedRandomSampler), views (one forward pass + K
metric passes), train (examples/s through the engine, 1 vs 2 threads), audio (decode -> resample -> fbank per
clip, ours vs transformers' ASTFeatureExtractor, and clips/s through a DataLoader with 0-2 workers).

torch / torchmetrics are imported only inside the section that needs them.
"""
from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import random
import time
import tracemalloc
import warnings
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .metrics import multilabel_metrics

# ----------------------------------------------------------------------------------------------------------------
# test problems


def make_multilabel_problem(n: int, C: int, seed: int, ties: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """A long-tailed multi-label problem: (y_true (n, C) bool, scores (n, C) float32).

    Class prevalence follows a power law (rank^-1, AudioSet-like: the head class in ~40% of examples, the tail in
    under 0.1%) scaled to ~2.7 labels per example. Scores are sigmoid(noisy labels); with ``ties`` they are rounded
    to 2 decimals, so every class has many tied scores (the hard case for exact AP/AUC).
    """
    rng = np.random.default_rng(seed)
    prevalence = 1.0 / np.arange(1, C + 1)
    prevalence *= 2.7 / prevalence.sum()
    np.minimum(prevalence, 0.95, out=prevalence)
    y = rng.random((n, C), dtype=np.float32) < prevalence.astype(np.float32)
    logit = rng.standard_normal((n, C), dtype=np.float32)
    logit *= 1.5
    logit += np.where(y, np.float32(1.5), np.float32(-1.5))
    scores = 1.0 / (1.0 + np.exp(-logit))
    if ties:
        np.round(scores, 2, out=scores)
    return y, scores


def make_weights(n: int, seed: int, zero_frac: float = 0.1) -> np.ndarray:
    """Importance-style example weights: exponential, with a fraction of exact zeros (examples left out)."""
    rng = np.random.default_rng(seed)
    w = rng.exponential(size=n)
    w[rng.random(n) < zero_frac] = 0.0
    return w


# ----------------------------------------------------------------------------------------------------------------
# measurement helpers


def best_time(fn: Callable[[], Any], repeat: int = 3) -> float:
    """Best wall time of `repeat` calls, in seconds (the minimum is the least noisy estimate of the cost)."""
    best = math.inf
    for _ in range(repeat):
        gc.collect()
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def peak_memory(fn: Callable[[], Any]) -> int:
    """Peak bytes allocated (numpy buffers included, via tracemalloc) while `fn` runs, beyond what existed before."""
    gc.collect()
    was_tracing = tracemalloc.is_tracing()
    if not was_tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    if not was_tracing:
        tracemalloc.stop()
    return peak


def print_table(title: str, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """A plain fixed-width table; None prints as '-'."""
    cells = [[("-" if r.get(c) is None else str(r[c])) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print(f"\n{title}")
    print("  ".join(c.rjust(wd) for c, wd in zip(columns, widths)))
    print("  ".join("-" * wd for wd in widths))
    for row in cells:
        print("  ".join(v.rjust(wd) for v, wd in zip(row, widths)))


def _fmt_s(x: Optional[float]) -> Optional[str]:
    return None if x is None else f"{x:.3f}"


def _fmt_x(x: Optional[float]) -> Optional[str]:
    return None if x is None else f"{x:.1f}x"


# ----------------------------------------------------------------------------------------------------------------
# section: metrics


def sklearn_ap_auc(y: np.ndarray, scores: np.ndarray, w: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-class AP and ROC AUC with scikit-learn, one column at a time; NaN where a class cannot be scored."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    n, C = y.shape
    live = np.ones(n, dtype=bool) if w is None else w > 0
    ap = np.full(C, np.nan)
    auc = np.full(C, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for j in range(C):
            yj = y[:, j]
            n_pos = np.count_nonzero(yj & live)
            if n_pos == 0:
                continue
            ap[j] = average_precision_score(yj, scores[:, j], sample_weight=w)
            if n_pos < np.count_nonzero(live):
                auc[j] = roc_auc_score(yj, scores[:, j], sample_weight=w)
    return ap, auc


def torchmetrics_ap(y: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Per-class exact AP with torchmetrics' MultilabelAveragePrecision (thresholds=None); no sample weights."""
    import torch
    from torchmetrics.classification import MultilabelAveragePrecision

    metric = MultilabelAveragePrecision(num_labels=y.shape[1], average="none", thresholds=None)
    metric.update(torch.from_numpy(scores), torch.from_numpy(y).long())
    return metric.compute().numpy().astype(np.float64)


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    if not np.array_equal(np.isfinite(a), np.isfinite(b)):
        return math.inf  # they disagree on which classes can be scored
    return float(np.max(np.abs(a[ok] - b[ok]))) if ok.any() else 0.0


def float64_logits(scores: np.ndarray) -> np.ndarray:
    """Prior-adjusted float64 logits of float32 probabilities: like the engine's scores, not float32-exact."""
    p = np.clip(scores.astype(np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p) - np.log(np.linspace(0.001, 0.4, scores.shape[1]))


def bench_metrics(large: bool = False) -> list[dict[str, Any]]:
    """Ours (AP + AUC + d' for all classes) vs sklearn (AP + AUC) vs torchmetrics (AP only), long-tailed data."""
    sizes = [(20_000, 527)] + ([(200_000, 527)] if large else [])
    rows: list[dict[str, Any]] = []
    for n, C in sizes:
        y, s32 = make_multilabel_problem(n, C, seed=0)
        w_all = make_weights(n, seed=1)
        kinds = [("float32 tied", s32)]
        if n <= 50_000:  # the engine's own path; sklearn alone would add 2 minutes at the large size
            kinds.append(("float64 logits", float64_logits(make_multilabel_problem(n, C, seed=0, ties=False)[1])))
        for kind, s in kinds:
            for weighted in (False, True):
                rows.append(_bench_metrics_case(y, s, w_all if weighted else None, kind,
                                                torch=not weighted and kind.startswith("float32")))
    cols = [
        "n x C",
        "scores",
        "weights",
        "ours s",
        "sklearn s",
        "sklearn/ours",
        "torchmetrics AP s",
        "tm/ours",
        "max|ours-sk|",
        "max|ours-tm| AP",
        "peak mem / scores",
    ]
    print_table(
        "metrics: ours = multilabel_metrics (AP+AUC+d', all classes, exact; best of 5, 2 at the large size); "
        "sklearn = average_precision_score + roc_auc_score per class (1 run); torchmetrics = "
        "MultilabelAveragePrecision(thresholds=None), AP only, no weights (1 run); float32 tied = probabilities "
        "rounded to 2 decimals; peak mem = tracemalloc peak of ours / score matrix bytes",
        rows,
        cols,
    )
    return rows


def _bench_metrics_case(y: np.ndarray, s: np.ndarray, w: Optional[np.ndarray], kind: str,
                        torch: bool) -> dict[str, Any]:
    n, C = y.shape
    ours_res = multilabel_metrics(y, s, w)
    t_ours = best_time(lambda: multilabel_metrics(y, s, w), repeat=5 if n <= 50_000 else 2)
    mem = peak_memory(lambda: multilabel_metrics(y, s, w))
    t0 = time.perf_counter()
    sk_ap, sk_auc = sklearn_ap_auc(y, s, w)
    t_sk = time.perf_counter() - t0
    ap = np.array([np.nan if v is None else v for v in ours_res["per_class"]["AP"]])
    auc = np.array([np.nan if v is None else v for v in ours_res["per_class"]["AUC"]])
    diff = max(_max_diff(ap, sk_ap), _max_diff(auc, sk_auc))
    t_tm: Optional[float] = None
    tm_diff: Optional[float] = None
    if torch:
        try:
            t0 = time.perf_counter()
            tm_ap = torchmetrics_ap(y, s)  # one run: it takes seconds to minutes
            t_tm = time.perf_counter() - t0
            tm_diff = _max_diff(ap, tm_ap)
        except ImportError:
            pass
    return {
        "n x C": f"{n} x {C}",
        "scores": kind,
        "weights": "no" if w is None else "yes",
        "ours s": _fmt_s(t_ours),
        "sklearn s": _fmt_s(t_sk),
        "sklearn/ours": _fmt_x(t_sk / t_ours),
        "torchmetrics AP s": _fmt_s(t_tm),
        "tm/ours": _fmt_x(None if t_tm is None else t_tm / t_ours),
        "max|ours-sk|": f"{diff:.1e}",
        "max|ours-tm| AP": None if tm_diff is None else f"{tm_diff:.1e}",
        "peak mem / scores": f"{mem / s.nbytes:.2f}",
        "_ours_s": t_ours,
        "_sklearn_s": t_sk,
        "_torchmetrics_s": t_tm,
        "_max_abs_diff": diff,
        "_peak_mem_ratio": mem / s.nbytes,
    }


# ----------------------------------------------------------------------------------------------------------------
# section: sampler


def audioset_class_counts(n: int, C: int = 527, head_fraction: float = 0.5, ratio: float = 15_000.0,
                          labels_per_example: float = 2.7) -> np.ndarray:
    """AudioSet-train-shaped class counts: the head class in `head_fraction` of the clips (music: ~1 M of 2 M),
    the rarest `ratio` times rarer (the seed paper: ~15,000x), `labels_per_example` labels per clip on average.

    log n_r falls with the class rank r as (r / C)^γ; γ is solved so that the counts sum to labels_per_example * n.
    """
    from scipy.optimize import brentq

    u = np.arange(C) / max(C - 1, 1)

    def counts(g: float) -> np.ndarray:
        return head_fraction * n * np.exp(-math.log(ratio) * u ** g)

    g = brentq(lambda g: counts(g).sum() - labels_per_example * n, 1e-3, 50.0)
    return np.clip(np.round(counts(g)), 1, n).astype(np.int64)


def make_audioset_labels(n: int, C: int, seed: int):
    """(LabelCSR, class counts) of n clips with `audioset_class_counts`: each class on distinct random clips."""
    from .method import LabelCSR

    rng = np.random.default_rng(seed)
    counts = audioset_class_counts(n, C)
    rows = np.concatenate([rng.choice(n, size=int(k), replace=False) for k in counts])  # a loop over classes
    key = rows * C + np.repeat(np.arange(C, dtype=np.int64), counts)
    key.sort()
    rows, cols = np.divmod(key, C)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
    return LabelCSR(indptr, cols), counts


def naive_epoch(indptr: list, indices: list, class_factor: list, seed: int) -> list:
    """The per-example Python loop people write first: max over labels, stochastic rounding, random.shuffle."""
    rnd = random.Random(seed)
    out: list[int] = []
    for i in range(len(indptr) - 1):
        f = max((class_factor[j] for j in indices[indptr[i]:indptr[i + 1]]), default=1.0)
        k = int(f)
        k += rnd.random() < f - k
        out.extend([i] * k)
    rnd.shuffle(out)
    return out


def previous_epoch(dense: np.ndarray, class_factor: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """This project's sampler before the sort-based shuffle: dense label mask and np.nonzero every epoch, then
    np.repeat and rng.permutation (Fisher-Yates) of the whole epoch."""
    counts = dense.sum(axis=0)
    rows, cols = np.nonzero(dense & (counts > 0))
    f = np.ones(dense.shape[0])
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    f[rows[starts]] = np.maximum.reduceat(class_factor[cols], starts)
    whole = np.floor(f)
    k = whole.astype(np.int64) + (rng.random(f.size) < (f - whole))
    return rng.permutation(np.repeat(np.arange(f.size, dtype=np.int64), k))


def torch_weighted_draws(weights: np.ndarray, n_draws: int, seed: int) -> list:
    """`torch.utils.data.WeightedRandomSampler` (with replacement: i.i.d. draws), iterated as a DataLoader does."""
    import torch
    from torch.utils.data import WeightedRandomSampler

    g = torch.Generator().manual_seed(seed)
    return list(WeightedRandomSampler(torch.from_numpy(weights), n_draws, replacement=True, generator=g))


def best_times(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, float]:
    """(best wall, best CPU) seconds of `repeat` calls. CPU time (this process, all threads) is the steadier
    figure on a shared machine; for single-threaded code it is what the wall time would be on an idle one."""
    wall = cpu = math.inf
    for _ in range(repeat):
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall, cpu = min(wall, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
    return wall, cpu


def bench_sampler(large: bool = False) -> list[dict[str, Any]]:
    """Oversampling index stream at AudioSet train scale (2 M clips x 527 classes): ours vs numpy's shuffle, a
    per-example Python loop and torch's WeightedRandomSampler."""
    from .method import LabelCSR, TrainInfo
    from .registry import get_method
    from .sampling import BudgetBatchSampler

    n, C, batch = 2_000_000, 527, 12
    csr, counts = make_audioset_labels(n, C, seed=0)
    dense = np.zeros((n, C), dtype=bool)
    dense[csr.rows, csr.indices] = True
    info = TrainInfo(labels=dense, multi_label=True, num_classes=C, budget_samples=10 * n)
    t_csr = best_times(lambda: LabelCSR.from_dense(dense), repeat=1)
    info.label_csr  # built once per run, as the engine's first epoch does
    sub = n // 100  # the Python loop runs on the first 1 % of the clips; its time is scaled by 100
    py_indptr, py_indices = csr.indptr[: sub + 1].tolist(), csr.indices[: csr.indptr[sub]].tolist()
    rows: list[dict[str, Any]] = []

    def row(beta, epoch, impl, draws, t, ours=None, mem=None, note="", scale=1.0):
        wall, cpu = t[0] * scale, t[1] * scale
        rows.append({"beta": beta, "epoch draws": f"{epoch / 1e6:.1f} M", "implementation": impl,
                     "draws": f"{draws / 1e6:.1f} M", "s wall": _fmt_s(wall), "s CPU": _fmt_s(cpu),
                     "ns/draw CPU": f"{1e9 * cpu / draws:.1f}",
                     "CPU vs ours": _fmt_x(None if ours is None else cpu / ours),
                     "peak mem / draws": None if mem is None else f"{mem / (8 * draws):.2f}", "note": note,
                     "_wall_s": wall, "_cpu_s": cpu, "_draws": draws})

    def beta_for(draws: float) -> float:
        """The β (2 decimals) whose epoch holds about `draws` draws: the issue's ~25 M."""
        lo, hi = 0.0, 1.0
        for _ in range(12):
            mid = (lo + hi) / 2
            f = get_method("oversample", beta=mid).repeat_factors(info)
            lo, hi = (mid, hi) if f.sum() < draws else (lo, mid)
        return round((lo + hi) / 2, 2)

    rows.append({"beta": "-", "epoch draws": "-", "implementation": "label index (CSR) from the dense matrix",
                 "draws": "-", "s wall": _fmt_s(t_csr[0]), "s CPU": _fmt_s(t_csr[1]),
                 "note": "once per run (was: every epoch)", "_wall_s": t_csr[0], "_cpu_s": t_csr[1]})
    for beta in (0.5, beta_for(25e6), 1.0):
        m = get_method("oversample", beta=beta, aggregate="max")
        m.setup(info)
        factors = m.repeat_factors(info)
        epoch = float(factors.sum())
        cf = (counts.max() / counts) ** beta
        rng = np.random.default_rng(0)
        if epoch < 50e6:  # built whole
            t = best_times(lambda: m.epoch_indices(info, 0, 0.0, rng))
            mem = peak_memory(lambda: m.epoch_indices(info, 0, 0.0, rng))
            row(beta, epoch, "ours: Oversample.epoch_indices (factors, rounding, sort-shuffle)", epoch, t, t[1], mem)
            # a budget of exactly the stream's first epoch (the sampler's own seed): one whole epoch, in lists
            first = m.epoch_indices(info, 0, 0.0, np.random.default_rng([0, 0x5A3B])).size
            sampler = BudgetBatchSampler(m, info, first, batch, 0)
            t_stream = best_times(lambda: sum(1 for _ in sampler), repeat=2)
            row(beta, epoch, f"ours: BudgetBatchSampler, 1 epoch as lists of {batch}", epoch, t_stream, t[1],
                note="+ draw counts, checks, lists")
            t_prev = best_times(lambda: previous_epoch(dense, cf, rng), repeat=2)
            row(beta, epoch, "before: dense mask + np.nonzero + rng.permutation", epoch, t_prev, t[1])
            ours = t[1]
        else:  # ~200 x N draws per epoch: only the budget's head is built
            ours = None
            for limit in (25_000_000, 10_000_000):
                t = best_times(lambda: m.epoch_head(info, 0, 0.0, rng, limit))
                mem = peak_memory(lambda: m.epoch_head(info, 0, 0.0, rng, limit))
                row(beta, epoch, f"ours: Oversample.epoch_head (first {limit / 1e6:.0f} M of the epoch)", limit,
                    t, t[1], mem, note="the rest of the epoch is never built")
                ours = ours or t[1]
            if large:
                t_prev = best_times(lambda: previous_epoch(dense, cf, rng), repeat=1)
                row(beta, epoch, "before: whole epoch (dense mask + np.nonzero + rng.permutation)", epoch, t_prev,
                    note="materialized the whole epoch")
        t_py = best_times(lambda: naive_epoch(py_indptr, py_indices, cf.tolist(), seed=0), repeat=1)
        row(beta, epoch, "naive per-example Python loop + random.shuffle", epoch, t_py,
            None if epoch >= 50e6 else ours, note="1 % of the clips timed, x 100", scale=100.0)
        if beta == 1.0:
            t_wrs = best_times(lambda: torch_weighted_draws(factors, n, seed=0), repeat=2)
            row(beta, epoch, "torch WeightedRandomSampler (i.i.d., with replacement)", n, t_wrs,
                note="2 M draws; multinomial noise in counts")
    cols = ["beta", "epoch draws", "implementation", "draws", "s wall", "s CPU", "ns/draw CPU", "CPU vs ours",
            "peak mem / draws", "note"]
    print_table(f"sampler: oversampling index stream, {n:,} clips x {C} classes, "
                f"{csr.indices.size / n:.2f} labels per clip, head/rarest class {counts.max() / counts.min():,.0f}x, "
                f"max aggregation; best of 3 (2 for the slower rows); CPU = process time; peak mem = tracemalloc "
                f"peak / (8 bytes x draws)", rows, cols)
    rows += bench_batch_overhead(batch)
    return rows


class _NullDataset:
    """A map-style dataset with a batched fetch that costs nothing: isolates the loader's own per-batch cost."""

    def __init__(self, n: int) -> None:
        import torch

        self.n, self.x = n, torch.zeros(1)

    def __len__(self) -> int:
        return self.n

    def __getitems__(self, idx: list) -> Any:
        from .task import PreBatched

        return PreBatched((self.x, self.x))


def bench_batch_overhead(batch: int = 12, n_batches: int = 200_000) -> list[dict[str, Any]]:
    """Per-batch cost of the stream's lists and of the DataLoader around them (num_workers=0)."""
    from torch.utils.data import DataLoader

    from .task import collate

    idx = np.random.default_rng(0).integers(0, 2_000_000, size=batch * n_batches)
    def lists() -> None:  # as the stream yields them: each list handed on, then dropped
        for s in range(0, idx.size, batch):
            idx[s:s + batch].tolist()

    t_lists = best_times(lists)[1]
    batches = [idx[s:s + batch].tolist() for s in range(0, idx.size, batch)]
    k = 20_000
    loader_few = DataLoader(_NullDataset(2_000_000), batch_sampler=batches[:k], collate_fn=collate, num_workers=0)
    t_loader = best_times(lambda: sum(1 for _ in loader_few))[1] * n_batches / k
    step = batch / 350.0  # AST-base on an H100 at the issue's ~350 clips/s
    rows = [
        {"what": f"slice + tolist() of a {batch}-index batch", "us/batch": f"{1e6 * t_lists / n_batches:.2f}",
         "share of an AST-base step": f"{t_lists / n_batches / step:.1e}"},
        {"what": "DataLoader(batch_sampler=lists, num_workers=0) around a no-op batched dataset",
         "us/batch": f"{1e6 * t_loader / n_batches:.2f}",
         "share of an AST-base step": f"{t_loader / n_batches / step:.1e}"},
    ]
    print_table(f"sampler: per-batch overhead, CPU time ({n_batches:,} batches of {batch}; an AST-base step at "
                f"~350 clips/s is {1e3 * step:.0f} ms)", rows, ["what", "us/batch", "share of an AST-base step"])
    return rows


# ----------------------------------------------------------------------------------------------------------------
# section: views


def _forward_pass(task: Any, model: Any, dataset: Any) -> np.ndarray:
    """Logits of the whole dataset, as the engine scores the pool once (eval mode, no grad, eval batch size)."""
    import torch
    from torch.utils.data import DataLoader

    from .task import collate

    out = []
    with torch.no_grad():
        for x, _ in DataLoader(dataset, batch_size=task.eval_batch_size, shuffle=False, collate_fn=collate):
            out.append(model(x).float())
    return torch.cat(out).numpy()


def _view_metric_times(multi_label: bool, logits: np.ndarray, labels: np.ndarray, views: dict) -> list[float]:
    """CPU seconds of the metric pass of each view (best of 3): the engine's `evaluate_views`, one view at a time."""
    from .engine import evaluate_views
    from .registry import get_method

    none = get_method("none")
    return [best_times(lambda v=v: evaluate_views(none, multi_label, logits, labels, {k: v}))[1]
            for k, v in views.items()]


def bench_views(large: bool = False) -> list[dict[str, Any]]:
    """K evaluation distributions = one forward pass + K metric passes: measured on the synthetic tasks, and the
    metric passes at AudioSet eval scale (20,000 x 527)."""
    import torch

    from .engine import prepare_task
    from .registry import get_task
    from .views import SADE_VIEWS, ViewContext, build_views

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the engine runs small models on CPU (Task.cpu_threads)
    rows: list[dict[str, Any]] = []
    try:
        for spec in ("synth-multilabel", "synth-singlelabel", "synth-audioset"):  # the last: fbank + tiny AST
            task = get_task(spec)
            prepared = prepare_task(task)
            pool = prepared.data.pool
            torch.manual_seed(0)
            model = task.build_model().eval()
            out: list[np.ndarray] = []
            t_fwd = best_times(lambda: out.append(_forward_pass(task, model, pool.dataset)),
                               repeat=1 if spec == "synth-audioset" else 3)[1]  # its fbanks: ~30 s a pass
            logits = out[-1]
            ctx = ViewContext(labels=pool.labels, multi_label=task.multi_label, num_classes=task.num_classes,
                              train_counts=prepared.train.class_counts, n_train=prepared.train.n_examples,
                              groups=prepared.data.pool_groups, seed=0, min_positives=task.balanced_min_positives)
            for names in (tuple(task.views), SADE_VIEWS):
                t_build = best_times(lambda: build_views(names, ctx), repeat=1)[1]
                views = build_views(names, ctx)
                rows.append(_views_row(f"{spec} ({len(pool)} x {task.num_classes})", names, t_fwd, t_build,
                                       _view_metric_times(task.multi_label, logits, pool.labels, views)))
        # AudioSet eval scale: no model forward here (AST needs a GPU), only the views and their metric passes
        n, C = 20_000, 527
        y, s = make_multilabel_problem(n, C, seed=0)
        logits = float64_logits(s)
        prior = 1.0 / np.arange(1, C + 1)
        prior *= 2.7 / prior.sum()
        ctx = ViewContext(labels=y, multi_label=True, num_classes=C, train_counts=np.round(prior * 2e6),
                          n_train=2_000_000, groups={}, seed=0, min_positives=59)
        for names in (("natural", "balanced", "inverse"),) + ((SADE_VIEWS,) if large else ()):
            t_build = best_times(lambda: build_views(names, ctx), repeat=1)[1]
            views = build_views(names, ctx)
            rows.append(_views_row(f"AudioSet-eval-shaped ({n} x {C})", names, None, t_build,
                                   _view_metric_times(True, logits, y, views)))
    finally:
        torch.set_num_threads(threads)
    cols = ["task (pool)", "K", "views", "forward s", "metrics s / view", "one forward + K metrics s",
            "K x (forward + metrics) s", "saving", "build views s (once per task)"]
    print_table("views: K evaluation distributions from one scored pool (CPU seconds, best of 3, 1 torch thread); "
                "'K x (forward + metrics)' = scoring a separate test set per distribution; the AudioSet-shaped "
                "rows have no forward pass here (AST needs a GPU), natural/inverse/SADE views are raking weights"
                + ("" if large else "; --large adds its SADE grid"), rows, cols)
    return rows


def _views_row(task: str, names: Sequence[str], t_fwd: Optional[float], t_build: float,
               t_metrics: list[float]) -> dict[str, Any]:
    k = len(t_metrics)
    total = sum(t_metrics)
    label = "sade (11)" if k == 11 else ", ".join(names)
    one = None if t_fwd is None else t_fwd + total
    sep = None if t_fwd is None else k * t_fwd + total
    return {"task (pool)": task, "K": k, "views": label, "forward s": _fmt_s(t_fwd),
            "metrics s / view": f"{total / k:.4f}", "one forward + K metrics s": _fmt_s(one),
            "K x (forward + metrics) s": _fmt_s(sep), "saving": _fmt_x(None if one is None else sep / one),
            "build views s (once per task)": _fmt_s(t_build),
            "_forward_s": t_fwd, "_metrics_s": t_metrics, "_build_s": t_build}


# ----------------------------------------------------------------------------------------------------------------
# section: train


def _train_once(spec: str, threads: Optional[int], epochs: float, out_dir: str) -> dict[str, Any]:
    """One baseline run through the engine (accelerate, CPU, one process); the task's `cpu_threads` overridden."""
    from accelerate import Accelerator

    from .engine import Engine, RunSpec, prepare_task
    from .registry import get_method, get_task

    task = get_task(spec, epochs=epochs)
    task.cpu_threads = threads
    prepared = prepare_task(task)
    engine = Engine(Accelerator(cpu=True), out_dir, quiet=True)
    t0 = time.perf_counter()
    result = engine.run(RunSpec(task, get_method("none"), seed=0), prepared)
    wall = time.perf_counter() - t0
    seen = result["effective_prior"]["samples_seen"]
    return {"train_s": result["train_time_s"], "samples": seen, "wall_s": wall, "eval_s": result["eval_time_s"]}


def bench_train(large: bool = False) -> list[dict[str, Any]]:
    """Training throughput (examples/s) of the synthetic tasks through the engine on CPU, 1 vs 2 torch threads,
    measured alternately in one run (the machine's load changes slowly; alternating shares it fairly)."""
    import tempfile

    import torch

    specs = [("synth-multilabel", 4.0), ("synth-singlelabel", 10.0), ("digits-lt", 40.0)]
    if large:
        specs.append(("synth-audioset", 2.0))
    threads_before = torch.get_num_threads()
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for spec, epochs in specs:
                best: dict[Optional[int], dict[str, Any]] = {}
                for rep in range(2):
                    for threads in (1, 2):  # alternate 1, 2, 1, 2
                        r = _train_once(spec, threads, epochs, os.path.join(tmp, f"{spec}-{threads}-{rep}"))
                        if threads not in best or r["train_s"] < best[threads]["train_s"]:
                            best[threads] = r
                for threads, r in best.items():
                    rows.append({"task": spec, "epochs": epochs, "torch threads": threads,
                                 "samples": r["samples"], "train s": f"{r['train_s']:.2f}",
                                 "examples/s": f"{r['samples'] / r['train_s']:,.0f}",
                                 "vs 1 thread": f"{best[1]['train_s'] / r['train_s']:.2f}x",
                                 "eval s": f"{r['eval_s']:.2f}", "load avg": _load(),
                                 "_train_s": r["train_s"], "_samples": r["samples"]})
    finally:
        torch.set_num_threads(threads_before)
    print_table("train: baseline `none` through the engine (accelerate, CPU, 1 process), best of 2 per setting, "
                "1 and 2 torch threads alternated; train s = the engine's train_time_s (model build to last "
                "step); 'vs 1 thread' > 1 means 2 threads were faster" + ("" if large else
                                                                         "; --large adds synth-audioset"),
                rows, ["task", "epochs", "torch threads", "samples", "train s", "examples/s", "vs 1 thread",
                       "eval s", "load avg"])
    return rows


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "-"


# ----------------------------------------------------------------------------------------------------------------
# section: audio


def make_flac_clips(directory: str, n: int, seconds: float = 10.0, sr: int = 48_000, seed: int = 0) -> list[str]:
    """n FLAC files (24-bit, mono, AudioSet's usual format) of 1/f noise under a few harmonic tones: compresses
    like real recordings (~60 % of the PCM size), unlike white noise."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    s = int(sr * seconds)
    t = np.arange(s) / sr
    hz = np.fft.rfftfreq(s, 1.0 / sr)
    paths = []
    for i in range(n):
        spec = (rng.standard_normal(hz.size) + 1j * rng.standard_normal(hz.size)) / np.sqrt(np.maximum(hz, 20.0))
        w = np.fft.irfft(spec, n=s)
        w *= 0.05 / w.std()
        for f0 in rng.uniform(100, 2000, size=3):
            w += 0.1 * np.sin(2 * np.pi * f0 * t + rng.uniform(0, 6.3)) * (0.5 + 0.5 * np.sin(2 * np.pi * t / 3))
        path = os.path.join(directory, f"clip{i:03d}.flac")
        sf.write(path, np.clip(w, -1, 1).astype(np.float32), sr, subtype="PCM_24")
        paths.append(path)
    return paths


def _children_cpu(pids: Sequence[int]) -> Optional[float]:
    """CPU seconds (user + system) used so far by these processes, from /proc (Linux); None elsewhere."""
    total = 0.0
    try:
        for pid in pids:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return total


def bench_audio(large: bool = False) -> list[dict[str, Any]]:
    """AST's CPU data pipeline per clip (FLAC decode -> soxr to 16 kHz -> fbank), ours vs transformers'
    ASTFeatureExtractor, and clips/s through a DataLoader with 0, 1, 2 workers."""
    import tempfile

    import pyarrow as pa
    import torch
    from torch.utils.data import DataLoader

    from .audio import AudioClipDataset, EncodedClips, Fbank, read_audio, to_16k

    n_clips = 96 if large else 48
    fb = Fbank(frames=1024)
    rows: list[dict[str, Any]] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            paths = make_flac_clips(tmp, n_clips)
            blobs = [open(p, "rb").read() for p in paths]
            mb = np.mean([len(b) for b in blobs]) / 2**20
            waves48 = [read_audio(b, max_seconds=fb.max_samples / 16_000)[0] for b in blobs]
            waves16 = [to_16k(w, 48_000, fb.max_samples) for w in waves48]
            try:
                from transformers import ASTFeatureExtractor

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # its Kaldi mel filters warn about an empty lowest filter
                    fe = ASTFeatureExtractor()

                def ast_fe() -> list:
                    return [fe(w, sampling_rate=16_000, return_tensors="np") for w in waves16]
            except ImportError:
                ast_fe = None
            per = {
                "decode (soundfile, FLAC 48 kHz 24-bit)":
                    lambda: [read_audio(b, max_seconds=fb.max_samples / 16_000) for b in blobs],
                "resample 48 -> 16 kHz (soxr)": lambda: [to_16k(w, 48_000, fb.max_samples) for w in waves48],
                "fbank, ours (benchmark.audio.Fbank)": lambda: [fb(w) for w in waves16],
            }
            if ast_fe is not None:
                per["fbank, transformers ASTFeatureExtractor (numpy)"] = ast_fe
            ms = {k: 1e3 * best_times(f)[1] / n_clips for k, f in per.items()}
            ours = sum(v for k, v in ms.items() if "transformers" not in k)
            for k, v in ms.items():
                rows.append({"stage": k, "ms/clip CPU": f"{v:.1f}",
                             "vs ours": _fmt_x(v / ms["fbank, ours (benchmark.audio.Fbank)"])
                             if "fbank" in k else None, "_ms": v})
            mix = ms["decode (soundfile, FLAC 48 kHz 24-bit)"] + ms["resample 48 -> 16 kHz (soxr)"]
            train = ours + 0.5 * mix  # MixUp with p = 0.5 decodes a partner clip for half the clips (AST)
            rows.append({"stage": "total per clip, evaluation (no MixUp)", "ms/clip CPU": f"{ours:.1f}",
                         "cores for 350 clips/s": f"{350 * ours / 1e3:.1f}", "_ms": ours})
            rows.append({"stage": "total per clip, training (MixUp p = 0.5: a partner decoded for half)",
                         "ms/clip CPU": f"{train:.1f}", "cores for 350 clips/s": f"{350 * train / 1e3:.1f}",
                         "_ms": train})
            print_table(f"audio: per-clip CPU cost of AST's input pipeline ({n_clips} generated 10 s FLAC clips, "
                        f"{mb:.2f} MB each; best of 3; 1 thread); cores = 350 clips/s (AST-base on an H100, the "
                        f"issue's figure) x ms/clip, assuming perfect scaling over workers", rows,
                        ["stage", "ms/clip CPU", "vs ours", "cores for 350 clips/s"])
            table = pa.table({"audio": pa.array([{"bytes": b, "path": None} for b in blobs],
                                                type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))})
            clips = EncodedClips(table, np.arange(n_clips), fb.max_samples)
            targets = np.zeros((n_clips, 527), dtype=bool)
            loader_rows = []
            for mixup in (0.0, 0.5):
                ds = AudioClipDataset(clips, targets, fb, mixup=mixup)
                for workers in (0, 1, 2):
                    dl = DataLoader(ds, batch_size=12, shuffle=False, num_workers=workers,
                                    persistent_workers=workers > 0)
                    t0 = time.perf_counter()
                    it = iter(dl)
                    sum(1 for _ in it)  # first pass: starts the workers
                    t_first = time.perf_counter() - t0
                    pids = [w.pid for w in getattr(it, "_workers", [])]  # persistent: the same workers next pass
                    wall, cpu = math.inf, math.inf
                    for _ in range(2):
                        c0, w0, t0 = time.process_time(), _children_cpu(pids), time.perf_counter()
                        sum(1 for _ in dl)
                        wall = min(wall, time.perf_counter() - t0)
                        w1 = _children_cpu(pids)
                        if w0 is not None and w1 is not None:
                            cpu = min(cpu, time.process_time() - c0 + w1 - w0)
                    del dl, it
                    loader_rows.append({"MixUp p": mixup, "workers": workers,
                                        "clips/s (wall)": f"{n_clips / wall:.1f}",
                                        "ms/clip CPU (all processes)": None if cpu == math.inf else
                                        f"{1e3 * cpu / n_clips:.1f}",
                                        "cores for 350 clips/s": None if cpu == math.inf else
                                        f"{350 * cpu / n_clips:.1f}",
                                        "first pass s (worker start)": f"{t_first:.2f}",
                                        "load avg": _load(), "_clips_per_s": n_clips / wall,
                                        "_cpu_per_clip_s": None if cpu == math.inf else cpu / n_clips})
            print_table(f"audio: clips/s through DataLoader(AudioClipDataset(EncodedClips)), batch 12, {n_clips} "
                        f"clips, a pass with persistent workers (best of 2); CPU = main process + workers "
                        f"(/proc); this machine has {os.cpu_count()} cores shared with other jobs, so the wall "
                        f"clips/s cannot show scaling: the CPU per clip can", loader_rows,
                        ["MixUp p", "workers", "clips/s (wall)", "ms/clip CPU (all processes)",
                         "cores for 350 clips/s", "first pass s (worker start)", "load avg"])
            rows += loader_rows
    finally:
        torch.set_num_threads(threads)
    return rows


SECTIONS: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "metrics": bench_metrics, "sampler": bench_sampler, "views": bench_views, "train": bench_train,
    "audio": bench_audio,
}


def _environment() -> str:
    from importlib.metadata import PackageNotFoundError, version  # reads metadata; imports nothing heavy

    parts = [f"python {platform.python_version()}", f"numpy {np.__version__}", f"cpus {os.cpu_count()}"]
    for dist in ("scikit-learn", "torch", "torchmetrics"):
        try:
            parts.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist} missing")
    return ", ".join(parts)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the chosen section (default: all) and print one table per section."""
    ap = argparse.ArgumentParser(prog="python -m benchmark.perf", description=__doc__.splitlines()[0])
    ap.add_argument("--section", choices=sorted(SECTIONS), action="append",
                    help="section to run (repeatable); default: all")
    ap.add_argument("--large", action="store_true",
                    help="also run the large sizes (metrics: 200,000 x 527, sklearn alone takes ~1 min there; "
                         "sampler: the previous implementation on a 470 M-draw epoch, ~8 GB; views: SADE raking at "
                         "20,000 x 527; train: synth-audioset; audio: 96 clips)")
    args = ap.parse_args(argv)
    print(_environment())
    for name in args.section or sorted(SECTIONS):
        SECTIONS[name](large=args.large)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
