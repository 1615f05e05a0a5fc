"""On your deployment data: the class prior of a task's unlabeled deployment split, estimated from stored scores,
and the `deploy` distribution (the pool reweighted to that estimate) that the prior-shift analysis scores.

Estimation (benchmark.core.labelshift) uses the baseline's validation logits + labels and its deployment logits,
never deployment labels. The `deploy` distribution's bootstrap resamples each re-weight the pool to the prior
re-estimated on a bootstrap resample of validation and deployment examples, so its Δ intervals carry the
estimate's uncertainty. For generated deployment sets (`deploy_prior=`), `deploy_true` is the same construction on
the deployment set's true class frequencies (read from `deploy_true_labels`, the only reader of that array), and
the section compares estimate and truth.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Hashable, Optional

import numpy as np

from benchmark.core import labelshift as _labelshift
from benchmark.core import views as core_views
from benchmark.core.errors import UserError
from benchmark.core.labelshift import MULTI_LABEL_METHODS, SINGLE_LABEL_METHODS, PriorEstimate, estimate_prior

from .analysis import BASELINE, MethodGroup, Section, _get
from .cache import digest
from .fmt import NA
from .scores import Scores

DEPLOY = "deploy"
DEPLOY_TRUE = "deploy_true"
ESTIMATOR_NAMES = {"mlls": "MLLS + BCTS", "bbse": "BBSE", "rlls": "RLLS"}
ML_ESTIMATOR_NAMES = {"mlls": "per-class EM (Platt)", "acc": "ACC"}


@dataclass
class Deployment:
    """A section's deployment analysis (see the module docstring)."""

    estimate: PriorEstimate  # the default estimator on the baseline's first seed, bootstrapped
    estimators: dict[str, PriorEstimate]  # every estimator (cross-checks), same model
    spread: dict[str, np.ndarray]  # method label -> its model's estimate (trained methods, same seed)
    true_prior: Optional[np.ndarray]  # generated sets: the deployment set's class frequencies
    info: dict  # task_info.deploy: source, prior name, size
    seed: Hashable
    gamma: Optional[float]  # the point of the prior-shift path closest to the estimate
    views: dict[str, dict] = field(default_factory=dict)  # "pool:deploy", "val:deploy", ... as priorshift builds
    boot_weights: Optional[np.ndarray] = None  # (rows of pool:deploy, B): one re-estimated prior per resample
    warnings: list[str] = field(default_factory=list)

    @property
    def dists(self) -> list[str]:
        return [DEPLOY] + ([DEPLOY_TRUE] if self.true_prior is not None else [])


def analyze_deployment(sec: Section, scores: dict[tuple[str, Hashable], Scores], counts: np.ndarray,
                       n_train: int, B: int, seed: int, run_dir: Optional[Path] = None) -> Optional[Deployment]:
    """The deployment analysis of a section whose baseline stored deployment logits, else None. With `run_dir`,
    the estimates (the bootstrap is most of the cost) are cached under <run_dir>/cache/deployment/."""
    multi = bool(sec.info.get("multi_label"))
    base = sec.baseline
    if base is None:
        return None
    have = [s for s in base.seeds() if (base.label, s) in scores and scores[(base.label, s)].has("deploy_logits")]
    if not have:
        return None
    s0 = have[0]
    sc = scores[(base.label, s0)]
    tp = core_views.train_prior(counts, n_train, multi)
    info = dict(_get(base.runs[s0], "task_info", "deploy", default={}) or {})
    # trained methods only: post-hoc methods re-score the baseline's model, they have no model of their own
    others = {g.label: scores[(g.label, s0)] for g in sec.methods
              if (g.label, s0) in scores and not _is_posthoc(g) and scores[(g.label, s0)].has("deploy_logits")}
    key = digest(DEPLOY_CACHE_VERSION, _ESTIMATOR_CODE, B, seed, multi, tp, sc.identity(),
                 *[(k, o.identity()) for k, o in others.items()])
    path = None if run_dir is None else Path(run_dir) / "cache" / "deployment" / f"{key[:24]}.npz"
    got = _load(path) if path is not None else None
    if got is None:
        try:
            got = _estimate_all(sc, others, tp, multi, counts.size, B, seed)
        except UserError as exc:  # e.g. too little validation data: said in the report, not a crash after training
            return _failed(f"The deployment prior could not be estimated: {exc}", info, s0)
        if path is not None:
            _save(path, got)
    est, estimators, spread, boot_weights = got
    truth = None
    if sc.has("deploy_true_labels"):  # the only reader of the true labels: the estimate-vs-truth check
        yt = sc.array("deploy_true_labels")
        truth = (yt.astype(np.float64).mean(axis=0) if multi
                 else np.bincount(yt.astype(np.int64), minlength=counts.size) / max(yt.shape[0], 1))
    dep = Deployment(est, estimators, spread, truth, info, s0, closest_gamma(counts, est.prior),
                     warnings=list(est.warnings))
    pool_y, val_y = sc.labels("pool"), sc.labels("val")
    dep.views[f"pool:{DEPLOY}"] = _view(pool_y, est.prior, multi, counts.size, "estimated deployment prior")
    dep.views[f"val:{DEPLOY}"] = _view(val_y, est.prior, multi, counts.size, "estimated deployment prior")
    if truth is not None:
        dep.views[f"pool:{DEPLOY_TRUE}"] = _view(pool_y, truth, multi, counts.size, "true deployment prior")
        dep.views[f"val:{DEPLOY_TRUE}"] = _view(val_y, truth, multi, counts.size, "true deployment prior")
    dep.boot_weights = boot_weights
    return dep


DEPLOY_CACHE_VERSION = 1  # bump when the estimates are computed differently
# the estimators' source is part of the key too: a changed estimator never reuses stale estimates
_ESTIMATOR_CODE = digest(Path(_labelshift.__file__).read_bytes())


def _estimate_all(sc: Scores, others: dict[str, Scores], tp: np.ndarray, multi: bool, c: int, B: int, seed: int):
    """(default estimate with bootstrap, {estimator: estimate}, {label: prior of that method's model}, the
    bootstrap weights of the `deploy` distribution (pool rows, B) or None)."""
    zv, yv, zd = sc.array("val_logits"), sc.array("val_labels"), sc.array("deploy_logits")
    est = estimate_prior(zv, yv, zd, tp, multi, "mlls", n_boot=max(B, 0), seed=seed)
    methods = MULTI_LABEL_METHODS if multi else SINGLE_LABEL_METHODS
    estimators = {"mlls": est, **{m: estimate_prior(zv, yv, zd, tp, multi, m, n_boot=0, seed=seed)
                                  for m in methods if m != "mlls"}}
    spread = {}
    for label, o in others.items():
        try:
            spread[label] = estimate_prior(o.array("val_logits"), o.array("val_labels"), o.array("deploy_logits"),
                                           tp, multi, "mlls", n_boot=0).prior
        except UserError:
            continue
    boot_weights = None
    if B >= 2 and est.boot.shape[0] >= B:
        pool_y = sc.labels("pool")
        idx = _view(pool_y, est.prior, multi, c, "")["idx"]
        boot_weights = np.stack([_weights_on(pool_y, idx, est.boot[b], multi, c) for b in range(B)],
                                axis=1).astype(np.float32)
    return est, estimators, spread, boot_weights


_EST_ARRAYS = ("prior", "ci_low", "ci_high", "boot")


def _save(path: Path, got: tuple) -> None:
    import json

    from .cache import write_npz

    est, estimators, spread, boot_weights = got
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {"estimators": {}, "spread": list(spread)}
    for m, e in estimators.items():
        for a in _EST_ARRAYS:
            arrays[f"{m}.{a}"] = getattr(e, a)
        meta["estimators"][m] = {"estimator": e.estimator, "converged": bool(e.converged), "n_iter": int(e.n_iter),
                                 "multi_label": e.multi_label, "n_val": e.n_val, "n_deploy": e.n_deploy,
                                 "boot_converged": float(e.boot_converged), "warnings": list(e.warnings)}
        if e.calibration is not None:
            arrays[f"{m}.cal_scale"], arrays[f"{m}.cal_bias"] = e.calibration.scale, e.calibration.bias
            meta["estimators"][m]["cal_multi"] = e.calibration.multi_label
    for i, q in enumerate(spread.values()):
        arrays[f"spread.{i}"] = q
    if boot_weights is not None:
        arrays["boot_weights"] = boot_weights
    arrays["__meta__"] = np.asarray(json.dumps(meta))
    write_npz(path, arrays)


def _load(path: Path):
    import json

    from benchmark.core.labelshift import Calibration

    try:
        with np.load(path) as z:
            meta = json.loads(str(z["__meta__"]))
            estimators = {}
            for m, info in meta["estimators"].items():
                cal = (Calibration(info["cal_multi"], z[f"{m}.cal_scale"], z[f"{m}.cal_bias"])
                       if f"{m}.cal_scale" in z.files else None)
                estimators[m] = PriorEstimate(
                    info["estimator"], *(z[f"{m}.{a}"] for a in _EST_ARRAYS[:3]), info["converged"], info["n_iter"],
                    info["multi_label"], info["n_val"], info["n_deploy"], z[f"{m}.boot"], info["boot_converged"],
                    cal, None, list(info["warnings"]))
            spread = {label: z[f"spread.{i}"] for i, label in enumerate(meta["spread"])}
            boot_weights = z["boot_weights"] if "boot_weights" in z.files else None
    except (OSError, KeyError, ValueError):
        return None
    return estimators["mlls"], estimators, spread, boot_weights


def _is_posthoc(g: MethodGroup) -> bool:
    res = next(iter(g.runs.values()))
    return bool(res.get("baseline_run_id")) and not res.get("train_time_s")


def _failed(message: str, info: dict, seed: Hashable) -> Deployment:
    empty = PriorEstimate("mlls", np.zeros(0), np.zeros(0), np.zeros(0), False, 0, False, 0, 0, np.zeros((0, 0)),
                          warnings=[message])
    return Deployment(empty, {}, {}, None, info, seed, None, warnings=[message])


def _view(labels: np.ndarray, prior: np.ndarray, multi: bool, c: int, what: str) -> dict:
    """A distribution dict as reports.priorshift._built_views makes them: the split reweighted to `prior`."""
    if multi:
        w, info = core_views.rake(np.asarray(labels).astype(bool), np.minimum(prior, 0.95))
        idx = np.arange(labels.shape[0], dtype=np.int64)
        desc = f"{what} (per-class prevalences; importance weights by raking)"
    else:
        idx, w = core_views.reweight_to_prior(np.asarray(labels, dtype=np.int64), c, prior)
        present = np.bincount(np.asarray(labels, dtype=np.int64)[idx], minlength=c) > 0
        info = {"method": "reweighting", "unmatched_classes": int(((prior > 0) & ~present).sum())}
        desc = f"{what} (exact class reweighting)"
    eff = core_views.effective_sample_size(w)
    info = {**info, "effective_n": eff}
    return {"idx": idx, "w": w, "description": desc, "effective_n": eff,
            "info": {k: v for k, v in info.items() if isinstance(v, (int, float, str, bool))}}


def _weights_on(labels: np.ndarray, idx: np.ndarray, prior: np.ndarray, multi: bool, c: int) -> np.ndarray:
    """Weights over the rows `idx` realizing `prior` (rows whose class has prior 0 get 0): one bootstrap column."""
    if multi:
        w, _ = core_views.rake(np.asarray(labels).astype(bool)[idx], np.minimum(prior, 0.95))
        return w
    y = np.asarray(labels, dtype=np.int64)[idx]
    n = np.bincount(y, minlength=c).astype(np.float64)
    per = np.divide(prior, n, out=np.zeros(c), where=n > 0)
    w = per[y]
    return w * (w.size / max(w.sum(), 1e-300))


def closest_gamma(train_counts: np.ndarray, prior: np.ndarray) -> Optional[float]:
    """The γ of the prior-shift path (benchmark.core.views.shifted_prior) nearest to `prior` in L1 of class
    proportions (0 training prior, 1 uniform, 2 reversed), on a 0.05 grid.

    >>> closest_gamma(np.array([80, 20]), np.array([0.5, 0.5]))
    1.0
    """
    p = np.asarray(train_counts, dtype=np.float64)
    q = np.asarray(prior, dtype=np.float64)
    if p.sum() <= 0 or q.sum() <= 0 or p.size != q.size:
        return None
    p, q = p / p.sum(), q / q.sum()
    grid = np.round(np.arange(0.0, 2.0001, 0.05), 2)
    d = [float(np.abs(core_views.shifted_prior(p, g) - q).sum()) for g in grid]
    return float(grid[int(np.argmin(d))])


# ---------------------------------------------------------------------------------------------------- choices


def chosen(sec: Section, val_points: dict, dist: str, metric: str) -> Optional[str]:
    """The method configuration (baseline included) with the best mean validation `metric` on `dist`: what a user
    picks for their deployment without test labels."""
    best, arg = -math.inf, None
    groups = ([sec.baseline] if sec.baseline else []) + list(sec.methods)
    for g in groups:
        vals = [val_points.get((g.label, s), {}).get(dist, {}).get(metric) for s in g.runs]
        vals = [v for v in vals if v is not None and math.isfinite(v)]
        if vals and (m := math.fsum(vals) / len(vals)) > best + 1e-12:
            best, arg = m, g.label
    return arg


def summary_entry(dep: Deployment) -> dict[str, Any]:
    """summary.json `deployment` of a task."""
    e = dep.estimate
    out: dict[str, Any] = {"estimator": e.estimator, "estimated_prior": _r(e.prior), "ci_low": _r(e.ci_low),
                           "ci_high": _r(e.ci_high), "converged": bool(e.converged), "n_deploy": e.n_deploy,
                           "n_bootstrap": int(e.boot.shape[0]), "source": dep.info.get("source"),
                           "closest_gamma": dep.gamma, "warnings": list(dep.warnings),
                           "cross_checks": {m: _r(x.prior) for m, x in dep.estimators.items() if m != "mlls"}}
    if dep.true_prior is not None:
        out["true_prior"] = _r(dep.true_prior)
        out["l1_error"] = round(float(np.abs(e.prior - dep.true_prior).sum()), 6)
        out["max_abs_error"] = round(float(np.abs(e.prior - dep.true_prior).max()), 6)
    return out


def _r(a: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in np.asarray(a)]


# ---------------------------------------------------------------------------------------------------- markdown


def _rho(q: np.ndarray, n: int) -> Optional[float]:
    """max / min of an estimated prior, each class floored at 1/n: a class estimated at 0 in n examples is only
    known to be below ~1/n, and an unfloored ratio would be unbounded."""
    q = np.asarray(q, dtype=np.float64)
    if q.size == 0 or q.max() <= 0:
        return None
    q = np.maximum(q, 1.0 / max(n, 1))
    return float(q.max() / q.min())


def _rho_ci(e: PriorEstimate) -> str:
    if e.boot.shape[0] < 2:
        return ""
    rhos = [r for r in (_rho(b, e.n_deploy) for b in e.boot) if r is not None and math.isfinite(r)]
    if len(rhos) < 2:
        return ""
    lo, hi = np.percentile(rhos, [2.5, 97.5])
    return f", 95% CI {lo:.3g}–{hi:.3g}"


def _delta_text(iv: Any) -> str:
    from .fmt import fmt_interval

    return fmt_interval(iv, signed=True) + (" (ns)" if iv is not None and iv.significant is False else "")


def glance_line(sec: Section, shift: Any) -> Optional[str]:
    """The one-line answer for the deployment: best method on the `deploy` distribution and its Δ."""
    dep: Optional[Deployment] = shift.deployment
    if dep is None or not dep.views:
        return None
    m = shift.main_metric
    got = [(g.label, shift.cells.get((g.label, DEPLOY, m))) for g in sec.methods]
    got = [(lab, iv) for lab, iv in got if iv is not None]
    rho = _rho(dep.estimate.prior, dep.estimate.n_deploy)
    rho_txt = NA if rho is None else f"{rho:.3g}"  # None: an all-zero estimate has no ratio
    head = (f"**On your deployment data** ({sec.key}; estimated prior ρ ≈ {rho_txt}{_rho_ci(dep.estimate)}"
            + (", **estimate not converged**" if not dep.estimate.converged else "") + ")")
    if not got:
        return f"- {head}: no method results to compare."
    lab, iv = max(got, key=lambda t: t[1].mean)
    pick = chosen(sec, shift.val_points, DEPLOY, m)
    verdict = (f"the best method is `{lab}`, Δ `{m}` {_delta_text(iv)}" if iv.mean > 0
               else f"no method beats the baseline (least harmful `{lab}`, Δ `{m}` {_delta_text(iv)})")
    return (f"- {head}: {verdict}; the interval includes the estimate's uncertainty. Chosen on validation for "
            f"this prior: `{pick}`.")


def deployment_markdown(sec: Section, shift: Any) -> list[str]:
    """The report section "On your deployment data" (empty when the task has no deployment split)."""
    from .fmt import NA, fmt_num, table

    dep: Optional[Deployment] = shift.deployment
    if dep is None:
        return []
    out = ["### On your deployment data", ""]
    src = dep.info
    where = (f"generated from the prior `{src.get('prior_name')}` (hidden from the estimators)"
             if src.get("source") == "generated" else f"`{src.get('path')}`" if src.get("path") else "given")
    for w in dep.warnings:
        out += [f"> **Warning:** {w}", ""]
    if not dep.views:
        return out
    e = dep.estimate
    multi = e.multi_label
    names = ML_ESTIMATOR_NAMES if multi else ESTIMATOR_NAMES
    line = glance_line(sec, shift)
    out += [line[2:] if line else "", ""]
    out += [f"{e.n_deploy} unlabeled deployment examples ({where}), scored in the same pass as the pool. Their "
            f"class {'prevalences are' if multi else 'prior is'} estimated from the baseline `{BASELINE}` (seed "
            f"{dep.seed}) with **{names['mlls']}**"
            + (" — calibration σ(a_j z + b_j) per class, then EM per class" if multi else
               f" — bias-corrected temperature scaling (T = {e.calibration.temperature:.3g}) fitted on the "
               f"validation split, then EM" if e.calibration is not None else "")
            + f" ({'converged' if e.converged else '**not converged**'} in {e.n_iter} iterations); 95% "
            f"intervals by bootstrap over deployment and validation examples ({e.boot.shape[0]} resamples). "
            f"Distribution `{DEPLOY}` is the pool reweighted to the estimate"
            f" ({'raking' if multi else 'class weights'}); each bootstrap resample of its Δ re-estimates the prior."
            + (f" On the prior-shift curve it sits nearest γ ≈ {dep.gamma:g}." if dep.gamma is not None else ""),
            ""]
    if multi:
        out += ["Per-class estimates treat each class as its own binary problem: if the deployment data changes "
                "which labels occur *together* (not only how often each occurs), they are biased (tests measured "
                "errors up to ±0.14 on the synthetic power-law task); read them as approximate.", ""]
    c = e.prior.size
    classes = list(range(c))
    if c > 30:  # the most and least frequent by the estimate
        order = np.argsort(-e.prior, kind="stable")
        classes = sorted(set(order[:10].tolist()) | set(order[-10:].tolist()))
    cols = [m for m in dep.estimators if m != "mlls"]
    rows = []
    for j in classes:
        row = [str(j), f"{e.prior[j]:.4f} [{e.ci_low[j]:.4f}, {e.ci_high[j]:.4f}]"]
        row += [f"{dep.estimators[m].prior[j]:.4f}" for m in cols]
        if dep.true_prior is not None:
            t = dep.true_prior[j]
            inside = e.ci_low[j] <= t <= e.ci_high[j]
            row += [f"{t:.4f}", f"{e.prior[j] - t:+.4f}" + ("" if inside else " (outside CI)")]
        rows.append(row)
    heads = ["class", f"{names['mlls']} [95% CI]"] + [names[m] for m in cols]
    if dep.true_prior is not None:
        heads += ["true", "error"]
    shown = "" if len(classes) == c else f" (the 10 most and 10 least frequent of {c} classes)"
    # folded: one row per class is reference material, not the reading (the report should read in two minutes)
    out += [f"<details><summary>Estimated deployment {'prevalence' if multi else 'prior'} per class{shown}</summary>",
            "", table(heads, rows), "", "</details>", ""]
    if dep.true_prior is not None:
        t = dep.true_prior
        rows = [[names[m], f"{np.abs(x.prior - t).sum():.4f}", f"{np.abs(x.prior - t).max():.4f}",
                 "yes" if x.converged else "**no**"] for m, x in dep.estimators.items()]
        out += ["Estimate vs the true deployment prior (known because the set was generated):", "",
                table(["estimator", "L1 error", "max per-class error", "converged"], rows), ""]
        m = shift.main_metric
        a, b = chosen(sec, shift.val_points, DEPLOY, m), chosen(sec, shift.val_points, DEPLOY_TRUE, m)
        same = "the same" if a == b else "**a different one**"
        out += [f"Chosen on validation for the estimated prior: `{a}`; for the true prior: `{b}` ({same}).", ""]
        for sw in shift.sweeps:
            ca, cb = sw.choice.get(DEPLOY), sw.choice.get(DEPLOY_TRUE)
            if ca and cb:
                out += [f"- `{sw.method}` {sw.param}: chosen {fmt_num(ca['value'], 3)} on the estimated prior, "
                        f"{fmt_num(cb['value'], 3)} on the true prior"
                        f" ({'same' if ca['value'] == cb['value'] else 'different'})."]
        out += [""]
    if dep.spread:
        d = {lab: float(np.abs(q - e.prior).sum()) for lab, q in dep.spread.items()}
        worst = max(d, key=d.get)  # type: ignore[arg-type]
        out += [f"Spread across the methods' models (the same estimator on each trained method's scores, seed "
                f"{dep.seed}): L1 distance to the baseline's estimate median {np.median(list(d.values())):.4f}, "
                f"largest {d[worst]:.4f} (`{worst}`).", ""]
    else:
        out += [f"Spread across methods' models: {NA} (no trained method besides the baseline stored deployment "
                f"scores).", ""]
    return out


def deployment_json(shift: Any) -> Optional[dict]:
    """summary.json `deployment` of a task section, with the answer on the `deploy` distribution."""
    dep: Optional[Deployment] = shift.deployment
    if dep is None:
        return None
    if not dep.views:
        return {"estimator": None, "warnings": list(dep.warnings)}
    out = summary_entry(dep)
    m = shift.main_metric
    best = [(lab, iv) for (lab, d, met), iv in shift.cells.items() if d == DEPLOY and met == m]
    if best:
        lab, iv = max(best, key=lambda t: t[1].mean)
        out["best_method"] = {"label": lab, "metric": m, "mean": iv.mean, "ci_low": iv.ci_low, "ci_high": iv.ci_high}
    out["spread_l1"] = {lab: round(float(np.abs(q - dep.estimate.prior).sum()), 6) for lab, q in dep.spread.items()}
    return out
