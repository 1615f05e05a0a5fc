"""Evaluation under prior shift, recomputed from the stored scores (no GPU, no retraining).

For every task section of a report:

- **Distributions**: the engine's views (from the result JSON) plus any asked for (`--views`: SADE's
  forward-ρ / uniform / backward-ρ family, `train_prior`, `gamma<γ>`, user priors `user:<name>`), built on the
  stored pool with `benchmark.views` (single-label: exact class reweighting; multi-label: bounded raking).
- **Uncertainty**: every Δ cell combines a t-interval over seeds with a paired bootstrap over evaluation examples
  (the same resample for method and baseline, and for every seed; `stats.combined_interval`).
- **Prior-shift curve**: Δ of the main metric along γ from the training prior (0) through uniform (1) to the
  reversed prior (2), one weighting of the pool per γ.
- **β as a hyperparameter**: for methods swept over one numeric parameter, the value chosen on the validation
  split per distribution, and that choice's test Δ. The choice reads validation numbers only (`select_best`).
- **Per-class mechanism**: per-class Δ AP vs training count, Spearman ρ, many / medium / few bins.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Hashable, Optional, Sequence

import numpy as np

from .analysis import MethodGroup, ReportModel, Section, _canon, _get, _num
from .scores import RunMetrics, Scores, bench, bootstrap_counts, scores_path
from .stats import Interval, combined_interval, summarize

OPTIONS_FILE = "report_options.json"  # beside report.md: what `report` re-renders with
DEFAULT_BOOTSTRAP = 100
DEFAULT_GAMMAS = tuple(round(g, 4) for g in np.linspace(0.0, 2.0, 17))
DEFAULT_SHOT_BINS = (100, 20)  # many: > 100 training examples, few: < 20 (Kang et al. 2020)


@dataclass
class Options:
    """What the prior-shift analysis computes; saved to `report_options.json` so `report` reproduces it."""

    views: list[str] = field(default_factory=list)  # extra distributions (names or groups such as `sade`)
    priors: list[dict] = field(default_factory=list)  # {"name", "task" (None: every task), "rows", "kind", "path"}
    bootstrap: int = DEFAULT_BOOTSTRAP  # resamples per distribution; 0: seeds-only intervals
    seed: int = 0
    gammas: tuple[float, ...] = DEFAULT_GAMMAS
    shot_bins: tuple[int, int] = DEFAULT_SHOT_BINS
    per_class_view: Optional[str] = None  # default: balanced, else the first view

    def to_json(self) -> dict:
        return {"views": self.views, "eval_priors": self.priors, "bootstrap": self.bootstrap,
                "shot_bins": list(self.shot_bins), "per_class_view": self.per_class_view}

    @classmethod
    def from_json(cls, d: dict) -> "Options":
        bins = d.get("shot_bins") or DEFAULT_SHOT_BINS
        return cls(views=list(d.get("views") or []), priors=list(d.get("eval_priors") or []),
                   bootstrap=int(d.get("bootstrap", DEFAULT_BOOTSTRAP)), shot_bins=(int(bins[0]), int(bins[1])),
                   per_class_view=d.get("per_class_view"))


def load_options(run_dir: Path) -> Options:
    try:
        return Options.from_json(json.loads((Path(run_dir) / OPTIONS_FILE).read_text()))
    except (OSError, ValueError, TypeError, KeyError, IndexError):
        return Options()


def save_options(run_dir: Path, options: Options) -> None:
    from .load import atomic_write_text

    Path(run_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(run_dir) / OPTIONS_FILE, json.dumps(options.to_json(), indent=1) + "\n")


def prior_entry(spec: str) -> dict:
    """`[TASK=]FILE` of --eval-prior as an options entry (the rows are read and checked now)."""
    views = bench("views")
    task, path = (spec.split("=", 1) if "=" in spec and not Path(spec).exists() else (None, spec))
    rows, kind = views.read_prior_rows(path)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(path).stem) or "prior"
    return {"name": name, "task": task, "path": str(path), "kind": kind, "rows": [[t, v, i] for t, v, i in rows]}


def priors_for(options: Options, task: str, class_names: Sequence[str]) -> dict[str, np.ndarray]:
    """The user priors that apply to `task`, as class proportions (UserError when a prior does not fit)."""
    views = bench("views")
    out = {}
    for p in options.priors:
        if p.get("task") not in (None, task):
            continue
        out[p["name"]] = views.resolve_prior([tuple(r) for r in p["rows"]], class_names, p.get("path", p["name"]),
                                             task)
    return out


# ---------------------------------------------------------------------------------------------------- model


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
    delta: dict[str, list[Optional[Interval]]]  # method label -> per γ (seeds t-interval)
    baseline: list[Optional[float]]  # baseline's mean metric per γ
    effective_n: list[float]


@dataclass
class Sweep:
    """One method swept over one numeric parameter (e.g. oversample's beta), the baseline as value 0."""

    method: str
    param: str
    fixed: dict
    values: list[float]
    labels: list[str]  # method label per value
    choice: dict[str, dict]  # distribution -> {"value", "label", "val_metric", "test": Interval|None, "best_test"...}
    test: dict[str, list[Optional[Interval]]]  # distribution -> Δ per value (test)
    val: dict[str, list[Optional[float]]]  # distribution -> mean validation metric per value (baseline first)


@dataclass
class PerClass:
    view: str
    metric: str
    counts: list[float]  # training count per class
    delta: dict[str, list[Optional[float]]]  # method label -> mean over seeds of per-class Δ
    spearman: dict[str, tuple[Optional[float], Optional[float], int]]  # label -> (ρ, p, classes used)
    bins: list[tuple[str, str]]  # (bin name, description)
    bin_means: dict[str, dict[str, Optional[Interval]]]  # label -> bin -> mean Δ over the bin's classes
    bin_sizes: dict[str, int]


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


# ---------------------------------------------------------------------------------------------------- analysis


def analyze(run_dir: Path, model: ReportModel, options: Optional[Options] = None) -> dict[str, SectionShift]:
    """The prior-shift analysis of every section; also replaces the sections' leaderboard intervals with the
    combined (seeds + bootstrap) ones where scores are stored."""
    options = options or Options()
    return {sec.key: analyze_section(Path(run_dir), sec, options) for sec in model.sections
            if sec.main_metric and sec.baseline is not None}


def _groups(sec: Section) -> list[MethodGroup]:
    return ([sec.baseline] if sec.baseline else []) + list(sec.methods)


def analyze_section(run_dir: Path, sec: Section, options: Options) -> SectionShift:
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
    views = bench("views")
    ref = scores[(sec.baseline.label, base_seeds[0])]  # type: ignore[union-attr]
    exclude = counts == 0
    priors = priors_for(options, sec.task_name, names)
    extra = [d for d in views.expand_view_names(options.views) if d not in sec.views]
    extra += [f"user:{n}" for n in priors if f"user:{n}" not in extra]

    def ctx(split: str):
        return views.ViewContext(labels=ref.labels(split), multi_label=multi, num_classes=counts.size,
                                 train_counts=counts, n_train=n_train, groups={}, seed=0, exact_weights=True,
                                 priors=priors)

    pool_ctx, val_ctx = ctx("pool"), ctx("val")
    n_pool, n_val = ref.labels("pool").shape[0], ref.labels("val").shape[0]
    dist_names = list(sec.views) + extra
    gammas = [float(g) for g in options.gammas]
    built = _built_views(run_dir, views, pool_ctx, val_ctx, [d for d in extra if ref.view("pool", d) is None],
                         gammas, priors)
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

    # per run: points on the extra distributions and the curve, validation points, bootstrap vectors
    point: dict[tuple[str, Hashable], dict[str, dict[str, float]]] = {}  # (label, seed) -> dist -> metric -> v
    curve: dict[tuple[str, Hashable], np.ndarray] = {}
    valpt: dict[tuple[str, Hashable], dict[str, dict[str, float]]] = {}
    boot: dict[tuple[str, Hashable], dict[str, dict[str, np.ndarray]]] = {}
    # everything below depends only on these inputs and the run's scores: the cache key
    digest = _digest(CACHE_VERSION, B, options.seed, sec.key, boot_metrics, out.metrics, exclude, X_extra, G,
                     V_extra, *[a for d in dist_names for a in (d, *pool_views[d])])
    cache = RunCache(run_dir)
    for key, sc in scores.items():
        res = _group(sec, key[0]).runs[key[1]]
        rid = str(res.get("run_id"))
        if sc.labels("pool").shape != ref.labels("pool").shape:
            out.notes.append(f"run {rid} has a different evaluation pool; left out")
            continue
        got = cache.get(rid, _digest(digest, sc.identity()))
        if got is None:
            got = _run_numbers(multi, sc, exclude, X_extra, G, V_extra, extra, val_extra, dist_names, pool_views,
                               resamples, out.metrics, boot_metrics, main)
            cache.put(rid, _digest(digest, sc.identity()), got)
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
    out.curve = _curve(sec, curve, gammas, main, g_eff)
    out.sweeps = sweep_analysis(sec, out, valpt, options, extra)
    return out


def _built_views(run_dir: Path, views: Any, pool_ctx: Any, val_ctx: Any, extra: list[str], gammas: list[float],
                 priors: dict[str, np.ndarray]) -> dict[str, dict]:
    """The distributions built on the stored pool (and validation split) from their labels: the extra ones and
    the γ path; cached like the runs' numbers (raking the 17 points of the path is most of a re-render)."""
    key = _digest(CACHE_VERSION, pool_ctx.labels, val_ctx.labels, pool_ctx.train_counts, pool_ctx.n_train,
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
                     "effective_n": float(v.effective_n), "info": _finite(dict(v.info))}
    arrays = {"__meta__": np.asarray(json.dumps({n: {k: b[k] for k in ("description", "effective_n", "info")}
                                                 for n, b in out.items()}))}
    for name, b in out.items():
        arrays[f"{name}|idx"] = b["idx"]
        if b["w"] is not None:
            arrays[f"{name}|w"] = b["w"]
    _write_npz(path, arrays)
    return out


def _write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    import io

    from .load import results_module

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    try:
        results_module().atomic_write_bytes(path, buf.getvalue())
    except OSError:
        pass  # a read-only run dir: the report is still right, only not cached


def _run_numbers(multi: bool, sc: Scores, exclude: np.ndarray, X_extra: np.ndarray, G: np.ndarray,
                 V_extra: np.ndarray, extra: list[str], val_extra: list[str], dist_names: list[str],
                 pool_views: dict, resamples: dict, metrics: list[str], boot_metrics: list[str],
                 main: str) -> dict[str, np.ndarray]:
    """One run's numbers from its scores: {"point|dist|metric", "val|dist|metric", "boot|dist|metric": (B,),
    "curve||": (γ,)}."""
    out: dict[str, np.ndarray] = {}
    rm = RunMetrics(multi, sc.labels("pool"), sc.scores("pool"), exclude)
    m = rm(np.concatenate([X_extra, G], axis=1))
    for i, d in enumerate(extra):
        for k in metrics:
            if k in m:
                out[f"point|{d}|{k}"] = np.asarray(m[k][i])
    out["curve||"] = np.asarray(m[main][len(extra):], dtype=np.float64)
    if val_extra:
        mv = RunMetrics(multi, sc.labels("val"), sc.scores("val"), exclude)(V_extra)
        for i, d in enumerate(val_extra):
            for k in metrics:
                if k in mv:
                    out[f"val|{d}|{k}"] = np.asarray(mv[k][i])
    for d in dist_names if resamples else []:
        idx, w = pool_views[d]
        R = resamples[d] if w is None else resamples[d] * w.astype(np.float32)[:, None]
        mb = rm(R, rows=idx, metrics=boot_metrics)
        for k in boot_metrics:
            if k in mb:
                out[f"boot|{d}|{k}"] = np.asarray(mb[k], dtype=np.float64)
    return out


CACHE_VERSION = 1  # bump when the numbers a run contributes are computed differently


def _digest(*parts: Any) -> str:
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
        _write_npz(self.dir / f"{run_id}.npz", {"__digest__": np.asarray(digest), **numbers})


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


def _curve(sec: Section, curve: dict, gammas: list[float], metric: str, eff: list[float]) -> Optional[Curve]:
    base = sec.baseline
    if base is None or not curve:
        return None
    out: dict[str, list[Optional[Interval]]] = {}
    for g in sec.methods:
        per_gamma: list[Optional[Interval]] = []
        for k in range(len(gammas)):
            d = [curve[(g.label, s)][k] - curve[(base.label, s)][k] for s in g.seeds()
                 if (g.label, s) in curve and (base.label, s) in curve
                 and np.isfinite(curve[(g.label, s)][k]) and np.isfinite(curve[(base.label, s)][k])]
            per_gamma.append(summarize([float(x) for x in d]))
        out[g.label] = per_gamma
    bvals = [curve[(base.label, s)] for s in base.seeds() if (base.label, s) in curve]
    bmean = [float(np.nanmean([v[k] for v in bvals])) if bvals else None for k in range(len(gammas))]
    return Curve(gammas, metric, out, bmean, eff)


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


# ---------------------------------------------------------------------------------------------------- β choice


def select_best(val_by_candidate: Sequence[Optional[float]]) -> Optional[int]:
    """Index of the candidate with the highest mean validation metric (ties: the first, i.e. less balancing).

    Takes validation numbers only: the test split cannot influence the choice.
    """
    best, arg = -math.inf, None
    for i, v in enumerate(val_by_candidate):
        if v is not None and math.isfinite(v) and v > best + 1e-12:
            best, arg = v, i
    return arg


def sweep_families(sec: Section) -> list[tuple[str, str, dict, list[tuple[float, MethodGroup]]]]:
    """(method name, swept parameter, the fixed parameters, [(value, group)]) for every method run with at least
    two values of one numeric parameter, the others equal."""
    fams: dict[tuple[str, str, str], list[tuple[float, MethodGroup]]] = {}
    for g in sec.methods:
        for p, v in g.params.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            rest = {k: x for k, x in g.params.items() if k != p}
            fams.setdefault((g.name, p, _canon(rest)), []).append((float(v), g))
    out = []
    for (name, p, rest), members in sorted(fams.items()):
        if len({v for v, _ in members}) >= 2:
            out.append((name, p, json.loads(rest), sorted(members, key=lambda m: m[0])))
    return out


def sweep_analysis(sec: Section, shift: SectionShift, valpt: dict, options: Options,
                   extra: Sequence[str] = ()) -> list[Sweep]:
    """For each sweep family and distribution: the value picked on validation, and its test Δ."""
    base = sec.baseline
    main = shift.main_metric
    dists = [d.name for d in shift.dists]
    sweeps = []
    for name, param, fixed, members in sweep_families(sec):
        groups = [base] + [g for _, g in members]  # the baseline is value 0: no balancing
        values = [0.0] + [v for v, _ in members]
        sw = Sweep(name, param, fixed, values, [g.label for g in groups], {}, {}, {})  # type: ignore[union-attr]
        for d in dists:
            val = [_val_mean(g, d, main, valpt) for g in groups]  # type: ignore[arg-type]
            test = [Interval(0.0, 0.0, len(base.runs))] + [  # type: ignore[union-attr]
                shift.cells.get((g.label, d, main)) or sec.delta(g, d, main) for _, g in members]
            sw.val[d], sw.test[d] = val, test
            i = select_best(val)
            if i is None:
                continue
            j = select_best([None if t is None else t.mean for t in test])
            sw.choice[d] = {"value": values[i], "label": groups[i].label, "val_metric": val[i],  # type: ignore
                            "test": test[i], "best_value": None if j is None else values[j],
                            "best_test": None if j is None else test[j]}
        sweeps.append(sw)
    return sweeps


def _val_mean(g: MethodGroup, view: str, metric: str, valpt: dict) -> Optional[float]:
    """Mean over seeds of the validation metric on `view`: from the stored scores where computed, else the JSON."""
    vals = []
    for s, res in g.runs.items():
        v = valpt.get((g.label, s), {}).get(view, {}).get(metric)
        if v is None:
            v = _num(_get(res, "val", view, "metrics", metric))
        if v is not None and math.isfinite(v):
            vals.append(v)
    return math.fsum(vals) / len(vals) if vals else None


# ---------------------------------------------------------------------------------------------------- per class


def per_class_analysis(sec: Section, options: Options) -> Optional[PerClass]:
    """Per-class Δ AP vs training count (paper mechanism 3): Spearman ρ and many / medium / few bins."""
    base = sec.baseline
    if base is None or not sec.methods:
        return None
    view = options.per_class_view or ("balanced" if "balanced" in sec.views else sec.views[0] if sec.views else None)
    if view is None or view not in sec.views:
        return None
    counts = [_num(c) or 0.0 for c in (_get(sec.reference, "train_stats", "class_counts", default=[]) or [])]
    if not counts:
        return None
    C = len(counts)
    many, few = options.shot_bins
    bins = [("many", f"> {many} training examples"), ("medium", f"{few}–{many}"), ("few", f"< {few}")]

    def bin_of(c: float) -> Optional[str]:
        if c <= 0:
            return None
        return "many" if c > many else "few" if c < few else "medium"

    sizes = {b: sum(bin_of(c) == b for c in counts) for b, _ in bins}
    pc = PerClass(view, "AP", counts, {}, {}, bins, {}, sizes)
    for g in sec.methods:
        per_seed = []
        for s in sec.paired_seeds(g):
            a = _get(g.runs[s], "eval", view, "per_class", "AP")
            b = _get(base.runs[s], "eval", view, "per_class", "AP")
            if isinstance(a, list) and isinstance(b, list) and len(a) == len(b) == C:
                per_seed.append([(_num(x) - _num(y)) if _num(x) is not None and _num(y) is not None else None
                                 for x, y in zip(a, b)])
        if not per_seed:
            continue
        mean = []
        for j in range(C):
            vals = [r[j] for r in per_seed if r[j] is not None]
            mean.append(math.fsum(vals) / len(vals) if vals else None)
        pc.delta[g.label] = mean
        pc.spearman[g.label] = spearman_log_prior(counts, mean)
        pc.bin_means[g.label] = {b: summarize([d for c, d in zip(counts, mean) if d is not None and bin_of(c) == b])
                                 for b, _ in bins}
    return pc if pc.delta else None


def spearman_log_prior(counts: Sequence[float], delta: Sequence[Optional[float]]) -> tuple[Optional[float],
                                                                                           Optional[float], int]:
    """Spearman ρ (and two-sided p) between per-class Δ and log training count, over classes seen in training
    with a Δ; (None, None, k) when fewer than 3 such classes or either side is constant."""
    pairs = [(math.log(c), d) for c, d in zip(counts, delta) if c > 0 and d is not None and math.isfinite(d)]
    if len(pairs) < 3:
        return None, None, len(pairs)
    x, y = zip(*pairs)
    if len(set(x)) < 2 or len(set(y)) < 2:
        return None, None, len(pairs)
    from scipy.stats import spearmanr

    r = spearmanr(x, y)
    rho, p = float(r.statistic), float(r.pvalue)
    return (rho if math.isfinite(rho) else None), (p if math.isfinite(p) else None), len(pairs)


# ---------------------------------------------------------------------------------------------------- summary


def _iv(iv: Optional[Interval]) -> dict:
    if iv is None:
        return {"mean": None, "ci_low": None, "ci_high": None, "n_seeds": 0, "significant": None}
    return {"mean": iv.mean, "ci_low": iv.ci_low, "ci_high": iv.ci_high, "n_seeds": iv.n,
            "significant": iv.significant}


def _finite(obj: Any) -> Any:
    """JSON-safe copy: non-finite floats become None (summary.json is written with allow_nan=False)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (np.floating, np.integer)):
        return _finite(obj.item())
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def summary_json(shift: SectionShift) -> dict:
    """The machine-readable part for summary.json."""
    return _finite(_summary(shift))


def _summary(shift: SectionShift) -> dict:
    d: dict[str, Any] = {
        "main_metric": shift.main_metric,
        "bootstrap_resamples": shift.n_bootstrap if shift.scores_available else 0,
        "distributions": {x.name: {"source": x.source, "description": x.description, "n_examples": x.n_examples,
                                   "effective_n": x.effective_n, "weighted": x.weighted, "info": x.info}
                          for x in shift.dists},
        "delta": {},
        "notes": shift.notes,
    }
    for (label, dist, metric), iv in sorted(shift.cells.items()):
        e = _iv(iv)
        e["bootstrap_sd"] = shift.boot_sd.get((label, dist, metric))
        d["delta"].setdefault(label, {}).setdefault(metric, {})[dist] = e
    if shift.curve is not None:
        d["curve"] = {"gamma": shift.curve.gammas, "metric": shift.curve.metric,
                      "baseline": shift.curve.baseline, "effective_n": shift.curve.effective_n,
                      "delta": {k: [_iv(x) for x in v] for k, v in shift.curve.delta.items()}}
    d["sweeps"] = [{"method": s.method, "param": s.param, "fixed": s.fixed, "values": s.values,
                    "choice": {dist: {"value": c["value"], "label": c["label"], "val_metric": c["val_metric"],
                                      "test_delta": _iv(c["test"]), "test_best_value": c["best_value"]}
                               for dist, c in s.choice.items()}} for s in shift.sweeps]
    if shift.per_class is not None:
        pc = shift.per_class
        d["per_class"] = {"view": pc.view, "metric": pc.metric, "bins": dict(pc.bins), "bin_sizes": pc.bin_sizes,
                          "methods": {lab: {"spearman_rho": pc.spearman[lab][0], "p_value": pc.spearman[lab][1],
                                            "n_classes": pc.spearman[lab][2],
                                            "bins": {b: _iv(iv) for b, iv in pc.bin_means[lab].items()}}
                                      for lab in pc.delta}}
    return d
