"""Section `views`: K evaluation distributions from one scored pool = one forward pass + K metric passes."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np

from .bench_metrics import float64_logits
from .common import best_times, fmt_s, fmt_x, make_multilabel_problem, print_table


def forward_pass(task: Any, model: Any, dataset: Any) -> np.ndarray:
    """Logits of the whole dataset, as the engine scores the pool once (eval mode, no grad, eval batch size)."""
    import torch
    from torch.utils.data import DataLoader

    from benchmark.task import collate

    out = []
    with torch.no_grad():
        for x, _ in DataLoader(dataset, batch_size=task.eval_batch_size, shuffle=False, collate_fn=collate):
            out.append(model(x).float())
    return torch.cat(out).numpy()


def _view_metric_times(multi_label: bool, logits: np.ndarray, labels: np.ndarray, views: dict) -> list[float]:
    """CPU seconds of the metric pass of each view (best of 3): the engine's `evaluate_views`, one view at a time."""
    from benchmark.engine import evaluate_views
    from benchmark.registry import get_method

    none = get_method("none")
    return [best_times(lambda v=v: evaluate_views(none, multi_label, logits, labels, {k: v}))[1]
            for k, v in views.items()]


def bench_views(large: bool = False) -> list[dict[str, Any]]:
    """K evaluation distributions = one forward pass + K metric passes: measured on the synthetic tasks, and the
    metric passes at AudioSet eval scale (20,000 x 527)."""
    import torch

    from benchmark.engine import prepare_task
    from benchmark.registry import get_task
    from benchmark.core.views import SADE_VIEWS, ViewContext, build_views

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
            t_fwd = best_times(lambda: out.append(forward_pass(task, model, pool.dataset)),
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
    return {"task (pool)": task, "K": k, "views": label, "forward s": fmt_s(t_fwd),
            "metrics s / view": f"{total / k:.4f}", "one forward + K metrics s": fmt_s(one),
            "K x (forward + metrics) s": fmt_s(sep), "saving": fmt_x(None if one is None else sep / one),
            "build views s (once per task)": fmt_s(t_build),
            "_forward_s": t_fwd, "_metrics_s": t_metrics, "_build_s": t_build}
