"""Turns a list of result dicts into a report model: sections per task, method groups, paired deltas.

Everything here is a pure function of the results list; ordering never depends on the input order.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Hashable, Optional

from benchmark.core.stats import Interval, seed_sort_key, imbalance_ratio, paired_deltas, summarize

BASELINE = "none"
# Views the benchmark defines, in reading order; any other view follows alphabetically.
PREFERRED_VIEWS = ("natural", "balanced", "inverse")
SECONDARY = {True: "dprime", False: "balanced_acc"}  # keyed by task_info.multi_label


def _canon(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _get(d: Any, *keys: str, default: Any = None) -> Any:
    """Nested dict lookup that tolerates missing or mistyped levels (results may be partial)."""
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d


def _num(x: Any) -> Optional[float]:
    """A finite float, or None for null / missing / non-numeric / non-finite."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def method_key(res: dict) -> tuple[str, str]:
    return str(_get(res, "config", "method", "name", default="?")), _canon(_get(res, "config", "method", "params", default={}))


def method_label(res: dict) -> str:
    spec = _get(res, "config", "method", "spec")
    return str(spec) if spec else str(_get(res, "config", "method", "name", default="?"))


def task_name(res: dict) -> str:
    return str(_get(res, "config", "task", "name") or _get(res, "task_info", "name") or "?")


def seed_of(res: dict) -> Hashable:
    s = _get(res, "config", "seed")
    return s if isinstance(s, (int, str)) and not isinstance(s, bool) else repr(s)


def view_order(views: set[str]) -> list[str]:
    return [v for v in PREFERRED_VIEWS if v in views] + sorted(views - set(PREFERRED_VIEWS))


@dataclass
class MethodGroup:
    """All ok runs of one method configuration (name + canonical params) within a section, by seed."""

    label: str
    name: str
    params: dict
    runs: dict[Hashable, dict] = field(default_factory=dict)

    def seeds(self) -> list[Hashable]:
        return sorted(self.runs, key=seed_sort_key)

    def values(self, view: str, metric: str) -> dict[Hashable, Optional[float]]:
        """metric value per seed; None where the view or the value is missing (n/a)."""
        return {s: _num(_get(r, "eval", view, "metrics", metric)) for s, r in self.runs.items()}

    def effective_rho(self) -> Optional[float]:
        """Mean over seeds of the imbalance ratio of the classes actually seen in training."""
        rhos = [r for r in (_run_rho_seen(res) for res in self.runs.values()) if r is not None]
        return math.fsum(rhos) / len(rhos) if rhos else None


def _run_rho_seen(res: dict) -> Optional[float]:
    seen = _get(res, "effective_prior", "class_counts_seen")
    if isinstance(seen, list) and seen and all(_num(c) is not None for c in seen):
        train = _get(res, "train_stats", "class_counts")
        # classes absent from the training set cannot be seen; judge the stream on the classes it could show
        present = [(_num(c) or 0) > 0 for c in train] if isinstance(train, list) else None
        return imbalance_ratio([float(c) for c in seen], present)
    return _num(_get(res, "effective_prior", "imbalance_ratio_seen"))


@dataclass
class Section:
    """One task (and, if a run dir mixes several, one task/training setting)."""

    key: str
    task_name: str
    setting: str  # "" unless the task name has several settings in the run dir
    info: dict
    reference: dict  # the run whose train_stats are shown
    train_stats_vary: bool
    baseline: Optional[MethodGroup]
    methods: list[MethodGroup]  # without the baseline, sorted by label
    views: list[str]
    metrics: list[str]
    main_metric: Optional[str]
    secondary_metric: Optional[str]
    n_ok: int
    # (method label, view, metric) -> interval that replaces the seed-only one: seeds combined with a paired
    # bootstrap over evaluation examples, filled from the stored scores by reports.priorshift
    intervals: dict[tuple[str, str, str], Interval] = field(default_factory=dict)
    # method configurations whose every metric equals the baseline's on every paired seed and view (e.g. a
    # post-hoc per-class shift on multi-label ranking metrics): named once, left out of `methods`
    identical: list[MethodGroup] = field(default_factory=list)

    def paired_seeds(self, group: MethodGroup) -> list[Hashable]:
        if self.baseline is None:
            return []
        return [s for s in group.seeds() if s in self.baseline.runs]

    def delta(self, group: MethodGroup, view: str, metric: str) -> Optional[Interval]:
        """Seed-paired change of `metric` on `view` vs the baseline; None if no seed pairs with a value."""
        if self.baseline is None:
            return None
        if (group.label, view, metric) in self.intervals:
            return self.intervals[(group.label, view, metric)]
        return summarize(paired_deltas(group.values(view, metric), self.baseline.values(view, metric)))

    def baseline_value(self, view: str, metric: str) -> Optional[Interval]:
        if self.baseline is None:
            return None
        vals = self.baseline.values(view, metric)
        return summarize([vals[s] for s in self.baseline.seeds() if vals[s] is not None])  # type: ignore[misc]


@dataclass
class ReportModel:
    sections: list[Section]
    failed: list[dict]  # sorted by task, method label, seed
    n_ok: int
    n_failed: int
    n_unreadable: int
    n_duplicates: int
    commits: list[tuple[str, int]]  # (commit, number of runs), sorted
    versions: dict[str, list[str]]  # library -> distinct versions, sorted
    pythons: list[str]
    devices: list[str]
    n_foreign: int = 0  # of n_unreadable: results of another schema version


def build_model(results: list[dict], n_unreadable: int = 0, n_foreign: int = 0) -> ReportModel:
    ok = [r for r in results if isinstance(r, dict) and r.get("status") == "ok"]
    failed = [r for r in results if isinstance(r, dict) and r.get("status") == "failed"]

    # section = task name + task params + training config: results from different settings must not be paired
    by_setting: dict[tuple[str, str, str], list[dict]] = {}
    for r in ok:
        k = (task_name(r), _canon(_get(r, "config", "task", "params", default={})), _canon(_get(r, "config", "train", default={})))
        by_setting.setdefault(k, []).append(r)

    n_dup = 0
    sections = []
    names = sorted({k[0] for k in by_setting})
    for name in names:
        keys = sorted(k for k in by_setting if k[0] == name)
        settings = _setting_labels(keys)
        for k in keys:
            sec, dups = _build_section(name, settings[k], by_setting[k])
            n_dup += dups
            sections.append(sec)

    failed.sort(key=lambda r: (task_name(r), method_label(r), seed_sort_key(seed_of(r)), str(r.get("run_id"))))

    commits: dict[str, int] = {}
    versions: dict[str, set[str]] = {}
    pythons: set[str] = set()
    devices: set[str] = set()
    for r in ok + failed:
        env = r.get("env") if isinstance(r.get("env"), dict) else {}
        c = env.get("git_commit")
        if c:
            c = str(c)[:12] + (" (dirty)" if env.get("git_dirty") else "")
            commits[c] = commits.get(c, 0) + 1
        for lib, v in sorted((env.get("versions") or {}).items()):
            if v is not None:
                versions.setdefault(str(lib), set()).add(str(v))
        if env.get("python"):
            pythons.add(str(env["python"]).split()[0])
        if env.get("device"):
            devices.add(str(env["device"]))

    return ReportModel(
        sections=sections,
        failed=failed,
        n_ok=len(ok),
        n_failed=len(failed),
        n_unreadable=n_unreadable,
        n_duplicates=n_dup,
        commits=sorted(commits.items()),
        versions={lib: sorted(vs) for lib, vs in sorted(versions.items())},
        pythons=sorted(pythons),
        devices=sorted(devices),
        n_foreign=n_foreign,
    )


def _setting_labels(keys: list[tuple[str, str, str]]) -> dict[tuple[str, str, str], str]:
    """'' for a task with one setting, else the task/train parameters that differ between its settings."""
    if len(keys) == 1:
        return {keys[0]: ""}
    flat = {}
    for k in keys:
        d = {f"task.{p}": v for p, v in json.loads(k[1]).items()} if k[1].startswith("{") else {}
        d.update({f"train.{p}": v for p, v in json.loads(k[2]).items()} if k[2].startswith("{") else {})
        flat[k] = d
    all_keys = sorted({p for d in flat.values() for p in d})
    differ = [p for p in all_keys if len({_canon(d.get(p)) for d in flat.values()}) > 1]
    return {k: ", ".join(f"{p}={_canon(flat[k].get(p))}" for p in differ) for k in keys}


def _build_section(name: str, setting: str, runs: list[dict]) -> tuple[Section, int]:
    groups: dict[tuple[str, str], MethodGroup] = {}
    dups = 0
    # deterministic winner among duplicate (method, seed) runs: the latest created, then the largest run_id
    for r in sorted(runs, key=lambda r: (str(r.get("created") or ""), str(r.get("run_id")))):
        mk = method_key(r)
        g = groups.get(mk)
        if g is None:
            g = groups[mk] = MethodGroup(method_label(r), mk[0], json.loads(mk[1]) if mk[1].startswith("{") else {})
        g.label = min(g.label, method_label(r))
        s = seed_of(r)
        dups += s in g.runs
        g.runs[s] = r

    ordered = sorted(groups.values(), key=lambda g: (g.label, _canon(g.params), g.name))
    labels = [g.label for g in ordered]
    for g in ordered:  # two configurations that print alike (e.g. changed defaults) get their params appended
        if labels.count(g.label) > 1:
            g.label = f"{g.label} {_canon(g.params)}"
    baselines = [g for g in ordered if g.name == BASELINE]
    baseline = baselines[0] if baselines else None
    methods = sorted((g for g in ordered if g is not baseline), key=lambda g: g.label)

    ref_group = baseline or ordered[0]
    reference = ref_group.runs[ref_group.seeds()[0]]
    info = reference.get("task_info") if isinstance(reference.get("task_info"), dict) else {}
    stats_set = {_canon(r.get("train_stats")) for g in ordered for r in g.runs.values()}

    views: set[str] = set()
    metric_names: set[str] = set()
    for g in ordered:
        for r in g.runs.values():
            ev = r.get("eval") if isinstance(r.get("eval"), dict) else {}
            for v, body in ev.items():
                views.add(str(v))
                metric_names.update(str(m) for m in (_get(body, "metrics") or {}))
    declared = [m for m in (info.get("metrics") or []) if m in metric_names]
    metrics = declared + sorted(metric_names - set(declared))
    main = info.get("main_metric") if info.get("main_metric") in metric_names else (metrics[0] if metrics else None)
    secondary = SECONDARY.get(bool(info.get("multi_label")))
    if secondary not in metric_names or secondary == main:
        secondary = None

    identical = [g for g in methods if baseline is not None and equals_baseline(g, baseline, sorted(views), metrics)]
    methods = [g for g in methods if g not in identical]
    key = name if not setting else f"{name} [{setting}]"
    sec = Section(
        key=key,
        task_name=name,
        setting=setting,
        info=info,
        reference=reference,
        train_stats_vary=len(stats_set) > 1,
        baseline=baseline,
        methods=methods,
        views=view_order(views),
        metrics=metrics,
        main_metric=main,
        secondary_metric=secondary,
        n_ok=sum(len(g.runs) for g in ordered),
        identical=identical,
    )
    return sec, dups


IDENTICAL_TOL = 1e-9  # stored metrics of an unchanged ranking differ by float noise (~1e-13), real changes by >1e-6


def equals_baseline(group: MethodGroup, baseline: MethodGroup, views: list[str], metrics: list[str]) -> bool:
    """True when every metric of `group` on every view is within IDENTICAL_TOL of the baseline's on every paired
    seed (at least one value compared; a value missing on one side only counts as a difference).

    >>> g = MethodGroup("m", "m", {}, {0: {"eval": {"natural": {"metrics": {"mAP": 0.5 + 1e-13}}}}})
    >>> b = MethodGroup("none", "none", {}, {0: {"eval": {"natural": {"metrics": {"mAP": 0.5}}}}})
    >>> equals_baseline(g, b, ["natural"], ["mAP"])
    True
    """
    compared = 0
    for s in group.seeds():
        if s not in baseline.runs:
            continue
        for v in views:
            for m in metrics:
                a = _num(_get(group.runs[s], "eval", v, "metrics", m))
                b = _num(_get(baseline.runs[s], "eval", v, "metrics", m))
                if (a is None) != (b is None):
                    return False
                if a is not None and b is not None:
                    if abs(a - b) > IDENTICAL_TOL:
                        return False
                    compared += 1
    return compared > 0


# A view (or γ point) is "low effective n" below either bound, marked in every table and kept out of the summary.
# Below 100 effective examples the 95% half-width of a rate near 0.5 exceeds ±0.098 (1.96·√(0.25/100)), larger
# than every change in the default grid, and the bootstrap's normal approximation rests on a handful of examples;
# below 5% of the view's examples the estimate is carried by few heavily weighted ones (mean weight of the
# effective part ≥ 20× the rest), which is where raked importance weights make the bootstrap unreliable.
LOW_N_MIN = 100.0
LOW_N_FRACTION = 0.05


def is_low_n(effective_n: Optional[float], n_examples: Optional[float]) -> bool:
    """Whether a view's effective sample size (Σw)²/Σw² is too small to summarize (LOW_N_MIN, LOW_N_FRACTION).

    >>> is_low_n(84, 6000), is_low_n(199, 199), is_low_n(1422, 1422)
    (True, False, False)
    """
    if effective_n is None:
        return False
    return effective_n < LOW_N_MIN or (bool(n_examples) and effective_n < LOW_N_FRACTION * float(n_examples))


def view_body(sec: Section, view: str) -> dict:
    """The eval entry of `view` from the first run that has it (baseline first, lowest seed first)."""
    for g in ([sec.baseline] if sec.baseline else []) + sec.methods:
        for s in g.seeds():
            body = _get(g.runs[s], "eval", view)
            if isinstance(body, dict):
                return body
    return {}


def view_effective_n(sec: Section, view: str) -> tuple[Optional[float], Optional[float]]:
    """(effective n, examples) of `view` as the runs stored it; an unweighted view's effective n is its size."""
    body = view_body(sec, view)
    ne = _num(body.get("n_examples"))
    eff = _num(body.get("effective_n"))
    return (eff if eff is not None else ne), ne


def low_n_views(sec: Section) -> list[str]:
    return [v for v in sec.views if is_low_n(*view_effective_n(sec, v))]


def train_cost(sec: Section, group: MethodGroup) -> Optional[float]:
    """Mean training time of `group` over its paired seeds relative to the baseline's on the same seeds (the
    results' `train_time_s`; 0 for a post-hoc method that re-scores the baseline); None without timings."""
    if sec.baseline is None:
        return None
    pairs = [(_num(group.runs[s].get("train_time_s")), _num(sec.baseline.runs[s].get("train_time_s")))
             for s in sec.paired_seeds(group)]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    base = math.fsum(b for _, b in pairs)
    return math.fsum(a for a, _ in pairs) / base if pairs and base > 0 else None


def _interval_json(iv: Optional[Interval], delta: bool) -> dict:
    def fin(x: Optional[float]) -> Optional[float]:
        return x if x is not None and math.isfinite(x) else None

    if iv is None:
        d = {"mean_delta" if delta else "mean": None, "ci_low": None, "ci_high": None, "n_seeds": 0}
        if delta:
            d["significant"] = None
        return d
    d = {"mean_delta" if delta else "mean": fin(iv.mean), "ci_low": fin(iv.ci_low), "ci_high": fin(iv.ci_high), "n_seeds": iv.n}
    if delta:
        d["significant"] = iv.significant
    if iv.half_width is not None:
        d["interval"] = iv.kind  # "seeds" or "seeds+bootstrap" (benchmark.core.stats)
    return d


def _with_n(entry: dict, sec: Section, view: str) -> dict:
    eff, n = view_effective_n(sec, view)
    return {**entry, "effective_n": eff, "low_effective_n": is_low_n(eff, n)}


def summary_dict(model: ReportModel) -> dict:
    """Machine-readable leaderboard: per task, per method label, per view, the change vs the baseline."""
    tasks = {}
    for sec in model.sections:
        metrics = [m for m in (sec.main_metric, sec.secondary_metric) if m] + [
            m for m in sec.metrics if m not in (sec.main_metric, sec.secondary_metric)
        ]
        methods = {}
        for g in sec.methods:
            rho = g.effective_rho()
            methods[g.label] = {
                "method": g.name,
                "params": g.params,
                "n_seeds": len(sec.paired_seeds(g)),
                "effective_rho_seen": rho if rho is not None and math.isfinite(rho) else None,
                # main metric at the top level, so the common question is one lookup away
                "views": {v: _with_n(_interval_json(sec.delta(g, v, sec.main_metric), True), sec, v)
                          for v in sec.views}
                if sec.main_metric
                else {},
                "train_time_vs_baseline": train_cost(sec, g),
                "metrics": {m: {v: _interval_json(sec.delta(g, v, m), True) for v in sec.views} for m in metrics},
            }
        base = None
        if sec.baseline is not None:
            base = {
                "label": sec.baseline.label,
                "n_seeds": len(sec.baseline.runs),
                "metrics": {m: {v: _interval_json(sec.baseline_value(v, m), False) for v in sec.views} for m in metrics},
            }
        tasks[sec.key] = {
            "task": sec.task_name,
            "setting": sec.setting or None,
            "main_metric": sec.main_metric,
            "secondary_metric": sec.secondary_metric,
            "views": sec.views,
            "baseline": base,
            "methods": methods,
            # configurations equal to the baseline on every metric, view and seed: not in "methods"
            "identical_to_baseline": [g.label for g in sec.identical],
            "low_effective_n_views": low_n_views(sec),
        }
    return {
        "schema_version": 1,
        "confidence": 0.95,
        "n_ok": model.n_ok,
        "n_failed": model.n_failed,
        "n_unreadable": model.n_unreadable,
        "tasks": tasks,
    }
