"""Section `sampler`: the oversampling index stream at AudioSet train scale vs numpy's shuffle, a Python loop and
torch's WeightedRandomSampler; and the per-batch cost of the stream's lists around a DataLoader."""
from __future__ import annotations

import math
import random
from typing import Any

import numpy as np

from .common import best_times, fmt_s, fmt_x, peak_memory, print_table


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
    from benchmark.method import LabelCSR

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


def bench_sampler(large: bool = False) -> list[dict[str, Any]]:
    """Oversampling index stream at AudioSet train scale (2 M clips x 527 classes): ours vs numpy's shuffle, a
    per-example Python loop and torch's WeightedRandomSampler."""
    from benchmark.method import LabelCSR, TrainInfo
    from benchmark.registry import get_method
    from benchmark.sampling import BudgetBatchSampler

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
                     "draws": f"{draws / 1e6:.1f} M", "s wall": fmt_s(wall), "s CPU": fmt_s(cpu),
                     "ns/draw CPU": f"{1e9 * cpu / draws:.1f}",
                     "CPU vs ours": fmt_x(None if ours is None else cpu / ours),
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
                 "draws": "-", "s wall": fmt_s(t_csr[0]), "s CPU": fmt_s(t_csr[1]),
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
        from benchmark.task import PreBatched

        return PreBatched((self.x, self.x))


def bench_batch_overhead(batch: int = 12, n_batches: int = 200_000) -> list[dict[str, Any]]:
    """Per-batch cost of the stream's lists and of the DataLoader around them (num_workers=0)."""
    from torch.utils.data import DataLoader

    from benchmark.task import collate

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
