"""Evaluation under prior shift, recomputed from the stored scores (no GPU, no retraining).

For every task section of a report:

- **Distributions**: the engine's views (from the result JSON) plus any asked for (`--views`: SADE's
  forward-ρ / uniform / backward-ρ family, `train_prior`, `gamma<γ>`, user priors `user:<name>`), built on the
  stored pool with `benchmark.core.views` (single-label: exact class reweighting; multi-label: bounded raking).
- **Uncertainty**: every Δ cell combines a t-interval over seeds with a paired bootstrap over evaluation examples
  (the same resample for method and baseline, and for every seed; `stats.combined_interval`).
- **Prior-shift curve**: Δ of the main metric along γ from the training prior (0) through uniform (1) to the
  reversed prior (2), one weighting of the pool per γ.
- **β as a hyperparameter** (reports/sweeps.py) and the **per-class mechanism** (reports/per_class.py) read the
  cells and points computed here; options live in reports/options.py, caches in reports/cache.py, the
  summary.json part in reports/summary.py.
"""
from __future__ import annotations

import math
import os
import zlib
from concurrent.futures import Executor, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Hashable, Optional, Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from benchmark.core import views as core_views
from benchmark.core.metrics import RunMetrics
from benchmark.core.priors import priors_for
from benchmark.core.stats import (Interval, bootstrap_counts, bootstrap_variance, combined_interval,
                                  interval_with_bootstrap_variance, summarize)

from .analysis import MethodGroup, ReportModel, Section, _canon, _get, _num
from .cache import CACHE_VERSION, RunCache, built_views, digest
from .options import Options
from .per_class import PerClass, per_class_analysis
from .scores import Scores, scores_path
from .summary import summary_json
from .sweeps import Sweep, sweep_analysis

__all__ = ["Curve", "Dist", "Options", "SectionShift", "analyze", "analyze_section", "csv_rows", "summary_json"]


@dataclass
class Dist:
    name: str
    description: str
    source: str  # "run": the engine's view stored with the runs; "report": built here on the stored pool
    n_examples: int
    effective_n: float
    weighted: bool
    info: dict


@dataclass
class Curve:
    gammas: list[float]
    metric: str
    delta: dict[str, list[Optional[Interval]]]  # method label -> per γ (seeds + bootstrap, as the leaderboards)
    baseline: list[Optional[float]]  # baseline's mean metric per γ
    effective_n: list[float]
    n_examples: int = 0  # the pool's size (every γ weights the whole pool)
    n_bootstrap: int = 0  # resamples behind each γ point's interval (0: seeds only)
    # the γ points bootstrapped themselves (all when empty); between them the bootstrap variance is interpolated
    boot_gammas: list[float] = field(default_factory=list)
    # the deployment's point per method label: (γ nearest to its estimated prior, Δ mean, half-width) on `deploy`
    marks: dict = field(default_factory=dict)


@dataclass
class SectionShift:
    key: str
    main_metric: str
    metrics: list[str]
    dists: list[Dist] = field(default_factory=list)
    cells: dict[tuple[str, str, str], Interval] = field(default_factory=dict)  # (label, dist, metric)
    boot_sd: dict[tuple[str, str, str], float] = field(default_factory=dict)
    baseline: dict[tuple[str, str], Optional[Interval]] = field(default_factory=dict)  # (dist, metric)
    rows: list[dict] = field(default_factory=list)  # results.csv: one per run × distribution × metric
    curve: Optional[Curve] = None
    sweeps: list[Sweep] = field(default_factory=list)
    per_class: Optional[PerClass] = None
    notes: list[str] = field(default_factory=list)
    figures: dict[str, str] = field(default_factory=dict)  # kind -> file name (beside report.md)
    n_bootstrap: int = 0
    scores_available: bool = False
    deployment: Any = None  # reports.deployment.Deployment when the baseline scored a deployment split
    val_points: dict = field(default_factory=dict)  # (label, seed) -> dist -> metric -> validation value


def analyze(run_dir: Path, model: ReportModel, options: Optional[Options] = None,
            on_section: Optional[Callable[[str, SectionShift], None]] = None,
            processes: Optional[Executor] = None,
            on_start: Optional[Callable[[Section], None]] = None) -> dict[str, SectionShift]:
    """The prior-shift analysis of every section; also replaces the sections' leaderboard intervals with the
    combined (seeds + bootstrap) ones where scores are stored. `on_section(key, shift)` is called as each section
    is done (render_report starts drawing its figures in other processes while the next one is analyzed).
    `processes`: a pool of worker processes to analyze the sections in (render_report passes its figure workers);
    without one, they run in threads of this process. `on_start(section)` is called for each section once it is
    being analyzed in a worker (render_report starts its per-class figure then)."""
    options = options or Options()
    todo = [sec for sec in model.sections if sec.main_metric and sec.baseline is not None]
    done: dict[str, SectionShift] = {}

    def collect(futures: dict) -> None:  # as each section finishes: its shift and its updated intervals
        for fut in as_completed(futures):
            sec = futures[fut]
            done[sec.key], sec.intervals = fut.result()
            if on_section is not None:
                on_section(sec.key, done[sec.key])

    if processes is not None:
        # a section's serial Python (raking the curve's priors, the deployment estimate) holds the GIL: in
        # threads, two sections' serial phases ran at one core between them while their per-run work waited
        # (default grid: the multi-label runs started at 4.5 s); in processes they run side by side
        futures = {processes.submit(_section_in_process, Path(run_dir), sec, options): sec for sec in todo}
        for sec in todo if on_start is not None else []:
            on_start(sec)
        collect(futures)
        return {sec.key: done[sec.key] for sec in todo}
    # sections run side by side: one's serial Python (deployment estimate, raking) fills the core that another's
    # numpy work leaves idle; `on_section` is called from this thread, as each finishes
    # ... and BLAS runs single-threaded inside them: OpenBLAS's own threads on top of these (2 cores, loaded) made
    # each small matrix product 10-50x slower (the deployment bootstrap: 2.3 s -> 0.6-0.9 s CPU)
    # ... and every section's per-run jobs share one pool of a thread per core: each section with its own pool
    # oversubscribed the cores (2 sections x 2 threads on 2 cores: 0.7 s slower, more system time)
    cores = os.cpu_count() or 1
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(max(min(len(todo), cores), 1)) as pool, \
            ThreadPoolExecutor(cores) as runs_pool:
        collect({pool.submit(lambda sec: (analyze_section(Path(run_dir), sec, options, runs_pool), sec.intervals),
                             sec): sec for sec in todo})
    return {sec.key: done[sec.key] for sec in todo}


def _section_in_process(run_dir: Path, sec: Section, options: Options) -> tuple[SectionShift, dict]:
    """analyze_section in a worker process: the shift, and the section's intervals it updated (the caller's copy
    of `sec` does not see the worker's changes)."""
    with threadpool_limits(1, user_api="blas"):  # see analyze: the section's own run threads use the cores
        shift = analyze_section(run_dir, sec, options)
    return shift, sec.intervals


def _groups(sec: Section) -> list[MethodGroup]:
    return ([sec.baseline] if sec.baseline else []) + list(sec.methods)


def analyze_section(run_dir: Path, sec: Section, options: Options,
                    runs_pool: Optional[Executor] = None) -> SectionShift:
    """One section's prior-shift analysis; its runs' numbers are computed on `runs_pool` (default: one of its own
    with a thread per core)."""
    info = sec.info
    multi = bool(info.get("multi_label"))
    main = str(sec.main_metric)
    metrics = [m for m in (["mAP", "mAUC", "dprime"] if multi else ["top1", "balanced_acc", "mAP"])]
    out = SectionShift(sec.key, main, [m for m in metrics if m in sec.metrics] or [main])
    counts = np.asarray(_get(sec.reference, "train_stats", "class_counts", default=[]) or [], dtype=np.float64)
    n_train = int(_get(sec.reference, "train_stats", "n_examples", default=0) or 0)
    names = info.get("class_names") or [f"class_{j}" for j in range(counts.size)]

    out.per_class = per_class_analysis(sec, options)
    scores: dict[tuple[str, Hashable], Scores] = {}
    for g in _groups(sec):
        for s in g.seeds():
            p = scores_path(run_dir, g.runs[s])
            if p is not None:
                scores[(g.label, s)] = Scores(p, multi)
    base_seeds = [s for s in sec.baseline.seeds() if (sec.baseline.label, s) in scores]  # type: ignore[union-attr]
    if not base_seeds or counts.size == 0:
        out.notes.append("No stored scores (.npz) for the baseline: the prior-shift curve, the extra distributions "
                         "and the bootstrap need them; intervals are over seeds only.")
        out.dists = [_json_dist(sec, v) for v in sec.views]
        out.sweeps = sweep_analysis(sec, out, {}, options)
        out.rows = csv_rows(sec, out.metrics)
        return out
    out.scores_available = True
    views = core_views
    ref = scores[(sec.baseline.label, base_seeds[0])]  # type: ignore[union-attr]
    exclude = counts == 0
    priors = priors_for(options.priors, sec.task_name, names)
    extra = [d for d in views.expand_view_names(options.views) if d not in sec.views]
    extra += [f"user:{n}" for n in priors if f"user:{n}" not in extra]
    from .deployment import analyze_deployment

    dep = analyze_deployment(sec, scores, counts, n_train, max(int(options.bootstrap), 0), options.seed, run_dir)
    out.deployment = dep
    dep_dists = dep.dists if dep is not None and dep.views else []
    extra += [d for d in dep_dists if d not in extra]

    def ctx(split: str):
        return views.ViewContext(labels=ref.labels(split), multi_label=multi, num_classes=counts.size,
                                 train_counts=counts, n_train=n_train, groups={}, seed=0, exact_weights=True,
                                 priors=priors)

    pool_ctx, val_ctx = ctx("pool"), ctx("val")
    n_pool, n_val = ref.labels("pool").shape[0], ref.labels("val").shape[0]
    dist_names = list(sec.views) + extra
    gammas = [float(g) for g in options.gammas]
    built = built_views(run_dir, views, pool_ctx, val_ctx,
                        [d for d in extra if ref.view("pool", d) is None and d not in dep_dists], gammas, priors)
    if dep_dists:
        built = {**built, **dep.views}
    pool_views: dict[str, tuple[np.ndarray, Optional[np.ndarray]]] = {}
    val_views: dict[str, tuple[np.ndarray, Optional[np.ndarray]]] = {}
    for d in list(dist_names):
        stored = ref.view("pool", d)
        if stored is not None:
            pool_views[d] = stored
            out.dists.append(_json_dist(sec, d))
        elif d in sec.views:  # results from an engine that did not store this view: seeds-only intervals
            out.dists.append(_json_dist(sec, d))
            out.notes.append(f"View '{d}' is not stored with the scores: its intervals are over seeds only.")
            dist_names.remove(d)
            continue
        else:
            b = built[f"pool:{d}"]
            pool_views[d] = (b["idx"], b["w"])
            out.dists.append(Dist(d, b["description"], "report", int(b["idx"].size), b["effective_n"],
                                  b["w"] is not None, b["info"]))
        sv = ref.view("val", d)
        if sv is None and d in extra:
            sv = (built[f"val:{d}"]["idx"], built[f"val:{d}"]["w"])
        if sv is not None:
            val_views[d] = sv

    # the prior-shift path: one weighting of the whole pool per γ
    G = np.zeros((n_pool, len(gammas)))
    g_eff = []
    for k, gmm in enumerate(gammas):
        b = built[f"pool:gamma{gmm:g}"]
        G[b["idx"], k] = np.ones(b["idx"].size) if b["w"] is None else b["w"]
        g_eff.append(b["effective_n"])

    def dense(view: tuple[np.ndarray, Optional[np.ndarray]], n: int) -> np.ndarray:
        col = np.zeros(n)
        idx, w = view
        np.add.at(col, idx, 1.0 if w is None else w)
        return col

    X_extra = np.stack([dense(pool_views[d], n_pool) for d in extra], axis=1) if extra else np.zeros((n_pool, 0))
    val_extra = [d for d in extra if d in val_views]
    V_extra = (np.stack([dense(val_views[d], n_val) for d in val_extra], axis=1) if val_extra
               else np.zeros((n_val, 0)))

    # the leaderboards' metrics get the bootstrap (single-label mAP would need the costly AP pass)
    boot_metrics = [m for m in (sec.main_metric, sec.secondary_metric) if m]
    B = max(int(options.bootstrap), 0)
    out.n_bootstrap = B
    resamples = {d: bootstrap_counts(pool_views[d][0].size, B, _seed(options.seed, sec.key, d)) for d in dist_names} \
        if B >= 2 else {}
    # the curve's points get the same kind of interval from fewer resamples (γ points × B weight columns: 17 × 100
    # cost 19 s per synth-multilabel run, 25 about 6 s); the t(B−1) quantile in combined_interval pays for it
    B_curve = min(B, CURVE_BOOTSTRAP) if B >= 2 else 0
    if B_curve:
        resamples["curve||"] = bootstrap_counts(n_pool, B_curve, _seed(options.seed, sec.key, "curve"))
    boot_k = curve_boot_points(gammas, multi)
    if dep_dists and dep.boot_weights is not None and "deploy" in resamples:
        # each resample weighs the pool by the prior re-estimated on that resample (the estimate's uncertainty);
        # the weights below multiply by the point weights, so those are divided out here
        w0 = pool_views["deploy"][1]
        ratio = np.divide(dep.boot_weights, w0[:, None], out=np.zeros_like(dep.boot_weights), where=w0[:, None] > 0)
        resamples["deploy"] = resamples["deploy"] * ratio
    # the weight columns each run is scored under: the same for every run of the section, so built once here
    weights = {d: R if pool_views[d][1] is None else R * pool_views[d][1].astype(np.float32)[:, None]
               for d, R in resamples.items() if d != "curve||"}
    if "curve||" in resamples:  # every bootstrapped γ weighting times the same resamples of the whole pool
        R = resamples["curve||"]
        weights["curve||"] = (R[:, None, :] * G[:, boot_k].astype(np.float32)[:, :, None]).reshape(R.shape[0], -1)

    # per run: points on the extra distributions and the curve, validation points, bootstrap vectors
    point: dict[tuple[str, Hashable], dict[str, dict[str, float]]] = {}  # (label, seed) -> dist -> metric -> v
    curve: dict[tuple[str, Hashable], np.ndarray] = {}
    cboot: dict[tuple[str, Hashable], np.ndarray] = {}  # (label, seed) -> (γ, B_curve) bootstrap of the curve
    valpt: dict[tuple[str, Hashable], dict[str, dict[str, float]]] = {}
    boot: dict[tuple[str, Hashable], dict[str, dict[str, np.ndarray]]] = {}
    # everything below depends only on these inputs and the run's scores: the cache key
    key_all = digest(CACHE_VERSION, B, B_curve, boot_k, options.seed, sec.key, boot_metrics, out.metrics, exclude, X_extra, G,
                     V_extra, *[a for d in dist_names for a in (d, *pool_views[d])],
                     None if not dep_dists else dep.boot_weights)
    cache = RunCache(run_dir)
    numbers: dict[tuple[str, Hashable], dict[str, np.ndarray]] = {}
    todo = []
    for key, sc in scores.items():
        rid = str(_group(sec, key[0]).runs[key[1]].get("run_id"))
        if sc.labels("pool").shape != ref.labels("pool").shape:
            out.notes.append(f"run {rid} has a different evaluation pool; left out")
            continue
        got = cache.get(rid, digest(key_all, sc.identity()))
        if got is None:
            todo.append((key, rid))
        else:
            numbers[key] = got

    def compute(job: tuple[tuple[str, Hashable], str]) -> dict[str, np.ndarray]:
        key, rid = job
        sc = scores[key]
        got = _run_numbers(multi, sc, exclude, X_extra, G, V_extra, extra, val_extra, dist_names, pool_views,
                           weights, out.metrics, boot_metrics, main, len(boot_k))
        cache.put(rid, digest(key_all, sc.identity()), got)
        sc.close()
        return got

    # the kernel's numpy / scipy work releases the GIL: runs are computed on all cores at once
    workers = min(len(todo), os.cpu_count() or 1)
    if runs_pool is not None and todo:
        numbers.update(zip((k for k, _ in todo), [f.result() for f in [runs_pool.submit(compute, j) for j in todo]]))
    elif workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            numbers.update(zip((k for k, _ in todo), pool.map(compute, todo)))
    else:
        numbers.update((job[0], compute(job)) for job in todo)
    for key in [k for k in scores if k in numbers]:
        sc, got = scores[key], numbers[key]
        res = _group(sec, key[0]).runs[key[1]]
        pts = {d: {k: v for k, v in _metrics_of(res, "eval", d).items()} for d in sec.views}
        vp = {d: _metrics_of(res, "val", d) for d in sec.views}
        bk: dict[str, dict[str, np.ndarray]] = {}
        for name, arr in got.items():
            kind, d, metric = name.split("|")
            if kind == "point":
                pts.setdefault(d, {})[metric] = float(arr)
            elif kind == "val":
                vp.setdefault(d, {})[metric] = float(arr)
            elif kind == "boot":
                bk.setdefault(d, {})[metric] = arr
        point[key], valpt[key] = pts, vp
        curve[key] = got["curve||"]
        if "cboot||" in got:
            cboot[key] = got["cboot||"]
        if resamples:
            boot[key] = bk
        sc.close()

    # cells: seed-paired Δ with the combined interval
    base = sec.baseline
    for g in sec.methods:
        for d in dist_names:
            for metric in out.metrics:
                deltas, bdiff = [], []
                for s in g.seeds():
                    kb, kg = (base.label, s), (g.label, s)  # type: ignore[union-attr]
                    if kb not in point or kg not in point:
                        continue
                    a, b = point[kg].get(d, {}).get(metric), point[kb].get(d, {}).get(metric)
                    if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)):
                        continue
                    deltas.append(a - b)
                    if boot and metric in boot[kg][d]:
                        bdiff.append(boot[kg][d][metric] - boot[kb][d][metric])
                bmeans = np.nanmean(np.stack(bdiff), axis=0) if bdiff else None
                iv = combined_interval(deltas, None if bmeans is None else bmeans.tolist())
                if iv is None:
                    continue
                out.cells[(g.label, d, metric)] = iv
                if bmeans is not None and np.isfinite(bmeans).sum() >= 2:
                    out.boot_sd[(g.label, d, metric)] = float(np.nanstd(bmeans, ddof=1))
                if d in sec.views:
                    sec.intervals[(g.label, d, metric)] = iv
    for d in dist_names:
        for metric in out.metrics:
            vals = [point[k][d].get(metric) for k in point if k[0] == base.label]  # type: ignore[union-attr]
            vals = [v for v in vals if v is not None and math.isfinite(v)]
            out.baseline[(d, metric)] = summarize(vals)

    out.rows = csv_rows(sec, out.metrics, point, list(sec.views) + extra, gammas, curve, main)
    out.curve = _curve(sec, curve, gammas, main, g_eff, cboot, n_pool, boot_k)
    out.sweeps = sweep_analysis(sec, out, valpt, options, extra)
    out.val_points = valpt
    if out.curve is not None and dep_dists and dep.gamma is not None:
        out.curve.marks = {g.label: (dep.gamma, iv.mean, iv.half_width) for g in sec.methods
                           if (iv := out.cells.get((g.label, "deploy", main))) is not None}
    return out


def _run_numbers(multi: bool, sc: Scores, exclude: np.ndarray, X_extra: np.ndarray, G: np.ndarray,
                 V_extra: np.ndarray, extra: list[str], val_extra: list[str], dist_names: list[str],
                 pool_views: dict, weights: dict, metrics: list[str], boot_metrics: list[str],
                 main: str, n_boot_points: int = 0) -> dict[str, np.ndarray]:
    """One run's numbers from its scores: {"point|dist|metric", "val|dist|metric", "boot|dist|metric": (B,),
    "curve||": (γ,), "cboot||": (n_boot_points, B_curve)}. `weights[d]`: the bootstrap weight columns of
    distribution d on its rows `pool_views[d][0]`; `weights["curve||"]`: the curve's, whole pool, γ-major."""
    out: dict[str, np.ndarray] = {}
    rm = RunMetrics(multi, sc.labels("pool"), sc.scores("pool"), exclude)
    if extra:
        m = rm(X_extra)
        for i, d in enumerate(extra):
            for k in metrics:
                if k in m:
                    out[f"point|{d}|{k}"] = np.asarray(m[k][i])
    out["curve||"] = np.asarray(rm(G, metrics=[main])[main], dtype=np.float64)
    if "curve||" in weights:
        got = rm(weights["curve||"], metrics=[main])[main]
        out["cboot||"] = np.asarray(got, dtype=np.float64).reshape(n_boot_points, -1)
    if val_extra:
        mv = RunMetrics(multi, sc.labels("val"), sc.scores("val"), exclude)(V_extra)
        for i, d in enumerate(val_extra):
            for k in metrics:
                if k in mv:
                    out[f"val|{d}|{k}"] = np.asarray(mv[k][i])
    for d in dist_names:
        if d not in weights:
            continue
        mb = rm(weights[d], rows=pool_views[d][0], metrics=boot_metrics)
        for k in boot_metrics:
            if k in mb:
                out[f"boot|{d}|{k}"] = np.asarray(mb[k], dtype=np.float64)
    return out


CURVE_BOOTSTRAP = 25  # at most this many resamples per γ point of the prior-shift curve
CURVE_BOOT_POINTS = 5  # multi-label: γ points bootstrapped themselves (the Δ table's columns 0, 0.5, 1, 1.5, 2)


def curve_boot_points(gammas: Sequence[float], multi_label: bool) -> list[int]:
    """Indices of the γ points whose curve interval gets its own bootstrap; between two of them `_curve`
    interpolates the bootstrap variance linearly in γ.

    Single-label metrics are linear in the weights (sparse products): every point is bootstrapped. Multi-label
    mAP needs an AP pass per weight column (the curve bootstrap was ~2/3 of a first report render), so
    `CURVE_BOOT_POINTS` evenly spaced points are, the ends included. Measured on the default grid's
    synth-multilabel against bootstrapping all 17 points: the interpolated Δ interval half-widths were 0.965-1.25x
    the fully bootstrapped ones (the variance grows convexly in γ, so a chord mostly overshoots).

    >>> curve_boot_points([k / 8 for k in range(17)], True)
    [0, 4, 8, 12, 16]
    >>> curve_boot_points([0.0, 1.0, 2.0], True), len(curve_boot_points([0.0, 0.5, 1.0], False))
    ([0, 1, 2], 3)
    """
    n = len(gammas)
    if not multi_label or n <= CURVE_BOOT_POINTS:
        return list(range(n))
    return sorted({int(round(x)) for x in np.linspace(0, n - 1, CURVE_BOOT_POINTS)})


def _seed(seed: int, *parts: str) -> int:
    """A resample seed per (section, distribution): stable across renders and independent of the run order."""
    return zlib.crc32("\0".join([str(seed), *parts]).encode())


def _group(sec: Section, label: str) -> MethodGroup:
    return next(g for g in _groups(sec) if g.label == label)


def _metrics_of(res: dict, split: str, view: str) -> dict[str, float]:
    m = _get(res, split, view, "metrics") or {}
    return {k: float(v) for k, v in m.items() if _num(v) is not None}


def _json_dist(sec: Section, view: str) -> Dist:
    body: dict = {}
    for g in _groups(sec):
        for s in g.seeds():
            b = _get(g.runs[s], "eval", view)
            if isinstance(b, dict):
                body = b
                break
        if body:
            break
    ne = int(_num(body.get("n_examples")) or 0)
    return Dist(view, str(body.get("description") or ""), "run", ne, float(_num(body.get("effective_n")) or ne),
                bool(body.get("weighted")), dict(body.get("info") or {}))


def _curve(sec: Section, curve: dict, gammas: list[float], metric: str, eff: list[float],
           cboot: Optional[dict] = None, n_pool: int = 0, boot_k: Optional[Sequence[int]] = None) -> Optional[Curve]:
    """Δ per γ with the leaderboards' interval: seeds combined with the paired bootstrap of the curve (`cboot`,
    rows = the γ points `boot_k`, default all). Between bootstrapped points the bootstrap variance of the
    seed-averaged Δ is interpolated linearly in γ (the point estimate is always computed at every γ)."""
    base = sec.baseline
    if base is None or not curve:
        return None
    cboot = cboot or {}
    boot_k = list(range(len(gammas))) if boot_k is None else list(boot_k)
    row_of = {k: r for r, k in enumerate(boot_k)}
    out: dict[str, list[Optional[Interval]]] = {}
    for g in sec.methods:
        per_gamma: list[Optional[Interval]] = []
        pairs = [s for s in g.seeds() if (g.label, s) in curve and (base.label, s) in curve]
        seed_d, var_at, n_at = [], {}, {}  # per γ: seed deltas; per bootstrapped γ: variance, resamples
        for k in range(len(gammas)):
            ok = [s for s in pairs if np.isfinite(curve[(g.label, s)][k]) and np.isfinite(curve[(base.label, s)][k])]
            d = [float(curve[(g.label, s)][k] - curve[(base.label, s)][k]) for s in ok]
            seed_d.append(d)
            bmeans = None
            if k in row_of:
                r = row_of[k]
                bd = [cboot[(g.label, s)][r] - cboot[(base.label, s)][r] for s in ok
                      if (g.label, s) in cboot and (base.label, s) in cboot]
                bmeans = np.nanmean(np.stack(bd), axis=0).tolist() if bd and len(bd) == len(ok) else None
            iv = combined_interval(d, bmeans)
            if bmeans is not None and iv is not None and iv.kind != "seeds":
                var_at[k] = bootstrap_variance(bmeans)
                n_at[k] = int(np.isfinite(bmeans).sum())
            per_gamma.append(iv)
        known = sorted(var_at)
        for k in range(len(gammas)):
            if k in row_of or not known or not seed_d[k]:
                continue
            v = float(np.interp(gammas[k], [gammas[j] for j in known], [var_at[j] for j in known]))
            lo = max([j for j in known if j < k], default=known[0])
            hi = min([j for j in known if j > k], default=known[-1])
            per_gamma[k] = interval_with_bootstrap_variance(seed_d[k], v, min(n_at[lo], n_at[hi]))
        out[g.label] = per_gamma
    bvals = [curve[(base.label, s)] for s in base.seeds() if (base.label, s) in curve]
    bmean = [float(np.nanmean([v[k] for v in bvals])) if bvals else None for k in range(len(gammas))]
    nb = next((v.shape[1] for v in cboot.values()), 0)
    return Curve(gammas, metric, out, bmean, eff, n_pool, nb,
                 boot_gammas=[float(gammas[k]) for k in boot_k] if nb else [])

def csv_rows(sec: Section, metrics: Sequence[str], point: Optional[dict] = None, dists: Sequence[str] = (),
             gammas: Sequence[float] = (), curve: Optional[dict] = None, main: str = "") -> list[dict]:
    """results.csv rows, one per run × distribution × metric: the engine's views from the JSON, the distributions
    built here and the curve's γ points (main metric) from the stored scores when there are any."""
    point, curve = point or {}, curve or {}
    rows = []
    base = sec.baseline
    for g in _groups(sec):
        for s in g.seeds():
            key = (g.label, s)
            res = g.runs[s]
            bres = base.runs.get(s) if base is not None else None
            bkey = (base.label, s) if base is not None else None
            entries = []
            for d in dists or sec.views:
                for m in metrics:
                    if d in sec.views:
                        v = _num(_get(res, "eval", d, "metrics", m))
                        b = _num(_get(bres, "eval", d, "metrics", m)) if bres else None
                    elif key in point:
                        v = point[key].get(d, {}).get(m)
                        b = point.get(bkey, {}).get(d, {}).get(m)
                    else:
                        continue
                    entries.append((d, m, v, b))
            if key in curve:
                entries += [(f"gamma{gm:g}", main, float(curve[key][k]),
                             float(curve[bkey][k]) if bkey in curve else None) for k, gm in enumerate(gammas)]
            for d, m, v, b in entries:
                v = v if v is not None and math.isfinite(v) else None
                b = b if b is not None and math.isfinite(b) else None
                rows.append({"task": sec.task_name, "setting": sec.setting, "method": g.label, "method_name": g.name,
                             "method_params": _canon(g.params), "seed": s, "run_id": res.get("run_id"),
                             "distribution": d, "metric": m, "value": v, "baseline_value": b,
                             "delta": None if v is None or b is None else v - b})
    return rows

