"""Run directories written without training (result JSON + npz in the engine's layout) for the report's tests.

Scores are a class signal plus noise plus a log-prior bias of strength (1 - β): the baseline (β = 0) leans to
frequent classes like a model trained on the natural prior, `oversample:beta=1` removes the lean. So balancing
hurts on the training prior and helps on the reversed one, the pattern the prior-shift analysis must show.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from benchmark.core import metrics as M
from benchmark.core import results as rm

VIEWS = ("natural", "balanced", "inverse")


def _views(labels: np.ndarray, multi: bool, n_nat: int, rng: np.random.Generator) -> dict:
    """natural: the first n_nat examples; balanced / inverse: the rest, weighted flat / by reversed frequency."""
    n = labels.shape[0]
    rest = np.arange(n_nat, n)
    if multi:
        freq = labels[:n_nat].mean(axis=0) + 1e-3
        inv = (labels[rest].astype(float) @ (1.0 / freq)) + 1.0
        return {"natural": (np.arange(n_nat), None), "balanced": (rest, None), "inverse": (rest, inv / inv.mean())}
    cls = labels[rest]
    counts = np.bincount(labels[:n_nat], minlength=labels.max() + 1).astype(float) + 1.0
    w = (1.0 / counts)[cls]
    return {"natural": (np.arange(n_nat), None), "balanced": (rest, None), "inverse": (rest, w / w.mean())}


def _entry(multi: bool, y: np.ndarray, s: np.ndarray, idx: np.ndarray, w: Optional[np.ndarray],
           per_class: bool) -> dict:
    m = M.metrics_for(multi, y[idx], s[idx], w)
    e = {"description": "fake", "n_examples": int(idx.size), "weighted": w is not None,
         "effective_n": float(idx.size if w is None else w.sum() ** 2 / (w * w).sum()), "class_counts": [],
         "n_classes_scored": m["n_classes_scored"],
         "metrics": {k: v for k, v in m.items() if k not in ("per_class", "n_classes_scored")}}
    if per_class:
        e["per_class"] = m["per_class"]
    return e


def make_run_dir(root: Path, *, multi: bool = False, C: int = 6, seeds=(0, 1, 2), betas=(0.5, 1.0),
                 extra_methods: tuple[str, ...] = (), n_nat: int = 600, n_rest: int = 300, n_val: int = 400,
                 task: Optional[str] = None, signal: float = 1.2, seed_noise: float = 0.15, data_seed: int = 0,
                 val_transform: Optional[Callable[[str, float, np.ndarray], np.ndarray]] = None) -> Path:
    """Write a run dir with the baseline `none`, `oversample:beta=b` for b in betas, and `extra_methods`
    (names of single-value methods, each a fixed β=0.3 lean), for each seed; returns root.

    `val_transform(label, beta, val_scores)` may alter a method's validation scores (to steer the β choice).
    """
    task = task or ("fake-ml" if multi else "fake-sl")
    rng = np.random.default_rng(data_seed)
    counts = np.round(500 * 0.5 ** np.arange(C) + 5).astype(int)  # long tail: 505 ... ~20
    prior = counts / counts.sum()
    n_pool = n_nat + n_rest

    def draw(n_a: int, n_b: int):
        if multi:
            p_a = np.clip(prior * 2.0, 0.01, 0.9)
            p_b = np.full(C, float(p_a.mean()))
            return np.concatenate([rng.random((n_a, C)) < p_a, rng.random((n_b, C)) < p_b])
        return np.concatenate([rng.choice(C, n_a, p=prior), rng.integers(0, C, n_b)]).astype(np.int64)

    pool_y = draw(n_nat, n_rest)
    val_y = draw(n_val * 2 // 3, n_val - n_val * 2 // 3)
    noise_pool = rng.normal(size=(n_pool, C))
    noise_val = rng.normal(size=(val_y.shape[0], C))
    pool_views = _views(pool_y, multi, n_nat, rng)
    val_views = _views(val_y, multi, n_val * 2 // 3, rng)
    log_prior = np.log(prior)
    methods = [("none", {}, 0.0)] + [("oversample", {"beta": float(b), "aggregate": "max"}, float(b)) for b in betas]
    methods += [(name, {"gamma": 2.0}, 0.3) for name in extra_methods]
    out = Path(root)
    for seed in seeds:
        srng = np.random.default_rng([data_seed, seed])
        seed_pool = srng.normal(size=(n_pool, C)) * seed_noise
        seed_val = srng.normal(size=(val_y.shape[0], C)) * seed_noise
        for name, params, beta in methods:
            label = name if not params else f"{name}:" + ",".join(f"{k}={v:g}" for k, v in params.items()
                                                                 if k != "aggregate")

            def scores(y, noise, seed_part):
                if multi:  # a per-class shift cannot change AP: balancing trades signal from head to tail
                    gain = signal * (1.0 + 0.6 * beta * (np.arange(C) / (C - 1) - 0.5))
                    return (gain * y + noise + seed_part).astype(np.float32)
                return (signal * np.eye(C)[y] + noise + seed_part + (1.0 - beta) * log_prior).astype(np.float32)

            pool_s = scores(pool_y, noise_pool, seed_pool)
            val_s = scores(val_y, noise_val, seed_val)
            if val_transform is not None:
                val_s = val_transform(label, beta, val_s).astype(np.float32)
            config = {"task": {"name": task, "params": {}, "spec": task},
                      "method": {"name": name, "params": params, "spec": label},
                      "seed": seed, "train": {"budget_samples": 1000}, "views": list(VIEWS)}
            rid = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
            evs = (lambda s: s) if multi else (lambda s: _softmax(s))
            result = {
                "schema_version": rm.SCHEMA_VERSION, "run_id": rid, "status": "ok", "error": None, "config": config,
                "task_info": {"name": task, "num_classes": C, "multi_label": multi,
                              "main_metric": "mAP" if multi else "top1",
                              "secondary_metric": "dprime" if multi else "balanced_acc",
                              "metrics": ["mAP", "mAUC", "dprime"] if multi else ["top1", "balanced_acc", "mAP"],
                              "class_names": [f"class_{j}" for j in range(C)], "source": "fake", "description": ""},
                "train_stats": {"n_examples": int(counts.sum()), "n_classes": C, "class_counts": counts.tolist(),
                                "imbalance_ratio": float(counts.max() / counts.min()), "labels_per_example": 1.0,
                                "absent_classes": []},
                "effective_prior": None,
                "eval": {v: _entry(multi, pool_y, evs(pool_s), *pool_views[v], True) for v in VIEWS},
                "val": {v: _entry(multi, val_y, evs(val_s), *val_views[v], False) for v in VIEWS},
                "scores_file": f"{rid}.npz", "env": {}, "created": "2026-01-01T00:00:00Z",
            }
            arrays = {"pool_logits": pool_s, "pool_labels": pool_y, "val_logits": val_s, "val_labels": val_y}
            for prefix, views in (("view", pool_views), ("valview", val_views)):
                for v, (idx, w) in views.items():
                    arrays[f"{prefix}_{v}_idx"] = idx
                    if w is not None:
                        arrays[f"{prefix}_{v}_w"] = w
            path = rm.result_path(out, task, rid)
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path.with_suffix(".npz"), **arrays)
            rm.write_result(path, result)
    return out


def _softmax(s: np.ndarray) -> np.ndarray:
    z = np.asarray(s, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
