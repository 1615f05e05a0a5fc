"""Markdown rendering of the report, and `render_report` which writes report.md + summary.json to a run dir."""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Hashable, Optional, Sequence

from .analysis import (BASELINE, IDENTICAL_TOL, LOW_N_FRACTION, LOW_N_MIN, ReportModel, Section, _get, _num, build_model,
                       is_low_n, method_label, seed_of, summary_dict, task_name, train_cost, view_body, view_effective_n)
from .fmt import NA, fmt_interval, fmt_num, r4, table
from .load import atomic_write_text, load_runs
from benchmark.core.stats import seed_sort_key, imbalance_ratio

DEFAULT_TITLE = "balancebench report"


def _seeds_text(seeds: Sequence[Hashable]) -> str:
    return ", ".join(str(s) for s in seeds) if seeds else "none"


# ---------------------------------------------------------------- sections


def _dataset_stats(sec: Section) -> list[str]:
    ts = sec.reference.get("train_stats") if isinstance(sec.reference.get("train_stats"), dict) else {}
    absent = ts.get("absent_classes") or []
    names = sec.info.get("class_names") or []
    absent_txt = str(len(absent))
    if 0 < len(absent) <= 5:
        shown = [str(names[a]) if isinstance(a, int) and 0 <= a < len(names) else str(a) for a in absent]
        absent_txt += f" ({', '.join(shown)})"
    n = _num(ts.get("n_examples"))
    lpe = _num(ts.get("labels_per_example"))
    line = (f"- **Training set:** N {NA if n is None else int(n)}, "
            f"{ts.get('n_classes', sec.info.get('num_classes', NA))} classes, ρ = n_max/n_min "
            f"{fmt_num(_num(ts.get('imbalance_ratio')), 1)}, {fmt_num(lpe, 2)} labels / example, absent classes "
            f"{absent_txt}")
    if sec.train_stats_vary:
        line += f" (differ between runs; shown: {method_label(sec.reference)}, seed {seed_of(sec.reference)})"
    out = [line]
    if sec.baseline is not None:
        rho = sec.baseline.effective_rho()
        seen = [x for x in (_num(_get(r, "effective_prior", "samples_seen")) for r in sec.baseline.runs.values()) if x is not None]
        epochs = [x for x in (_num(_get(r, "effective_prior", "epochs")) for r in sec.baseline.runs.values()) if x is not None]
        line = f"- **Baseline training stream** (`{sec.baseline.label}`): effective ρ seen {fmt_num(rho, 1)}"
        if seen:
            line += f", {int(round(sum(seen) / len(seen)))} samples seen"
        if epochs:
            line += f" ({fmt_num(sum(epochs) / len(epochs), 2)} epochs)"
        out += [line + ", mean over seeds"]

    rows = []
    for v in sec.views:
        body = view_body(sec, v)
        ne = _num(body.get("n_examples"))
        w = body.get("weighted")
        eff = _num(body.get("effective_n"))
        cc = body.get("class_counts")
        rho_v = imbalance_ratio([_num(c) or 0.0 for c in cc]) if isinstance(cc, list) and cc else None
        rows.append([
            f"**{v}**",
            body.get("description") or "",
            NA if ne is None else str(int(ne)),
            NA if w is None else ("yes" if w else "no"),
            fmt_num(eff if eff is not None else ne, 1) + (" *low n*" if is_low_n(eff if eff is not None else ne, ne) else ""),
            fmt_num(rho_v, 1),
        ])
    out += ["", "Evaluation views:", "", table(["view", "description", "examples", "weighted", "effective n", "ρ in view"], rows)]
    return out


def _method_mean(sec: Section, g: Any, view: str, metric: str) -> Optional[float]:
    """The method's absolute metric: mean over the paired seeds that have a value (shown beside its change)."""
    vals = g.values(view, metric)
    xs = [vals[s] for s in sec.paired_seeds(g) if vals.get(s) is not None]
    return math.fsum(xs) / len(xs) if xs else None


def significantly_best(ivs: dict[Any, Optional[Any]]) -> Optional[Any]:
    """The key of the largest mean change when its interval lies above 0, else None (nothing is bolded)."""
    got = [(k, iv) for k, iv in ivs.items() if iv is not None]
    if not got:
        return None
    top = max(r4(iv.mean) for _, iv in got)
    k, iv = next((k, iv) for k, iv in got if r4(iv.mean) == top)  # in label order: ties -> first
    return k if iv.significant and iv.mean > 0 else None


def view_header(sec: Section, v: str) -> str:
    eff, n = view_effective_n(sec, v)
    return f"{v} (low n: {fmt_num(eff, 0)})" if is_low_n(eff, n) else v


def _leaderboard(sec: Section, metric: str, what: str) -> list[str]:
    cells = {(g.label, v): sec.delta(g, v, metric) for g in sec.methods for v in sec.views}
    # nothing is bold on a low-n view: a headline should not rest on a few heavily weighted examples
    best = {v: None if is_low_n(*view_effective_n(sec, v)) else
            significantly_best({g.label: cells[(g.label, v)] for g in sec.methods}) for v in sec.views}
    n_base = len(sec.baseline.runs) if sec.baseline is not None else 0
    rows = []
    if sec.baseline is not None:
        row = [f"*`{sec.baseline.label}` (absolute)*"]
        for v in sec.views:
            iv = sec.baseline_value(v, metric)
            txt = fmt_interval(iv, signed=False)
            row.append(txt + (f" [n={iv.n}]" if iv is not None and iv.n < n_base else ""))
        rows.append(row + [fmt_num(sec.baseline.effective_rho(), 1), "1"])
    for g in sec.methods:
        row = [f"`{g.label}`"]
        for v in sec.views:
            iv = cells[(g.label, v)]
            txt = fmt_interval(iv, signed=True)
            if iv is not None:
                if best[v] == g.label:
                    txt = f"**{txt}**"
                if iv.significant is False:
                    txt += " (ns)"
                absolute = _method_mean(sec, g, v, metric)
                if absolute is not None:
                    txt += f" → {fmt_num(absolute)}"
                if iv.n < n_base:  # some seeds lack a value here (failed run, null metric or missing view)
                    txt += f" [n={iv.n}]"
            row.append(txt)
        cost = train_cost(sec, g)
        row += [fmt_num(g.effective_rho(), 1), NA if cost is None else f"{cost:.2f}"]
        rows.append(row)
    out = [f"### {what}: `{metric}`, change vs baseline → absolute", ""]
    if not sec.methods:
        return out + ["No methods other than the baseline were run."]
    return out + [table(["method"] + [view_header(sec, v) for v in sec.views] + ["ρ seen", "train ×"], rows)]


# ---------------------------------------------------------------- reading


PATTERN_METHOD = "oversample"  # the seed paper's balancing; its largest β (full balancing in the default grid)


def pattern_line(sec: Section) -> str:
    """Whether the seed paper's pattern (balancing helps the balanced view, hurts the natural one) is present:
    both intervals of the paper's method at its strongest β must exclude 0 with those signs."""
    head = f"**{sec.key}** (`{sec.main_metric}`)"
    fam = [g for g in sec.methods if g.name == PATTERN_METHOD and isinstance(_num(g.params.get("beta")), float)]
    bal = "balanced" if "balanced" in sec.views else "public" if "public" in sec.views else None
    if not fam or bal is None or "natural" not in sec.views or sec.main_metric is None:
        return f"- {head}: pattern not testable (needs `{PATTERN_METHOD}` runs and natural + balanced views)."
    g = max(fam, key=lambda g: (float(g.params["beta"]), g.label))
    ivb, ivn = sec.delta(g, bal, sec.main_metric), sec.delta(g, "natural", sec.main_metric)
    if ivb is None or ivn is None:
        return f"- {head}: pattern not testable (`{g.label}` lacks paired results on {bal} or natural)."
    if ivb.half_width is None or ivn.half_width is None:
        verdict = "no interval (one seed)"
    elif ivb.ci_low > 0 and ivn.ci_high < 0:  # type: ignore[operator]
        verdict = "**present**"
    elif ivb.mean > 0 and ivn.mean < 0:
        verdict = "not present (signs as in the paper, not both significant)"
    else:
        verdict = "not present"
    def c(iv: Any) -> str:
        return fmt_interval(iv, signed=True) + (" (ns)" if iv.significant is False else "")
    return f"- {head}, `{g.label}`: {verdict}: {bal} {c(ivb)}, natural {c(ivn)}."


def _summary_table(sections: Sequence[Section]) -> list[str]:
    rows, left_out = [], []
    for sec in sections:
        if sec.baseline is None or not sec.methods or sec.main_metric is None:
            continue
        m = sec.main_metric
        for v in sec.views:
            eff, n = view_effective_n(sec, v)
            if is_low_n(eff, n):
                left_out.append(f"{sec.key} / {v} (effective n {fmt_num(eff, 0)} of {fmt_num(n, 0)})")
                continue
            ivs = {g.label: sec.delta(g, v, m) for g in sec.methods}
            got = [(lab, iv) for lab, iv in ivs.items() if iv is not None]
            if not got:
                rows.append([f"{sec.key} (`{m}`)", v, fmt_num(eff, 0), NA, NA, NA, NA, NA])
                continue
            top = max(r4(iv.mean) for _, iv in got)
            lab, iv = next((lab, iv) for lab, iv in got if r4(iv.mean) == top)
            sig = significantly_best(ivs) is not None
            up = sum(bool(x.significant) and x.mean > 0 for _, x in got)
            down = sum(bool(x.significant) and x.mean < 0 for _, x in got)
            g = next(g for g in sec.methods if g.label == lab)
            base = sec.baseline_value(v, m)
            absolute = _method_mean(sec, g, v, m)
            name = f"`{lab}`" if iv.mean > 0 else f"none helps (least harmful `{lab}`)"
            cell = fmt_interval(iv, signed=True) + (" (ns)" if iv.significant is False else "")
            rows.append([f"{sec.key} (`{m}`)", v, fmt_num(eff, 0), f"**{name}**" if sig else name,
                         f"**{cell}**" if sig else cell,
                         f"{fmt_num(None if base is None else base.mean)} → {fmt_num(absolute)}",
                         "yes" if sig else "n/a (1 seed)" if iv.half_width is None else "no",
                         f"{up} / {down} of {len(got)}"])
    if not rows:
        return []
    out = ["## Summary", "",
           table(["task (metric)", "view", "effective n", "best method", "Δ vs baseline", "baseline → method",
                   "significant", "methods ↑ / ↓ significantly"], rows)]
    if left_out:
        out += ["", "Left out (low effective n, see How to read): " + "; ".join(left_out) + "."]
    pattern = [pattern_line(sec) for sec in sections if sec.baseline is not None and sec.methods]
    if pattern:
        out += ["", "The seed paper's pattern (full balancing helps the balanced view and hurts the natural one; "
                    "both intervals must exclude 0), per task:", ""] + pattern
    return out + [""]


def _section(sec: Section) -> list[str]:
    info = sec.info
    title = f"## Task `{sec.task_name}`" + (f" ({sec.setting})" if sec.setting else "")
    out = [title, ""]
    if info.get("description"):
        out += [" ".join(str(info["description"]).split()), ""]
    ml = info.get("multi_label")
    kind = NA if ml is None else ("multi-label" if ml else "single-label")
    ncls = info.get("num_classes", _get(sec.reference, "train_stats", "n_classes", default=NA))
    seeds = sorted({s for g in ([sec.baseline] if sec.baseline else []) + sec.methods for s in g.runs}, key=seed_sort_key)
    main = f"`{sec.main_metric}`" if sec.main_metric else NA
    if sec.secondary_metric:
        main += f" (secondary: `{sec.secondary_metric}`)"
    out += [
        f"- **Source:** {' '.join(str(info.get('source') or NA).split())}; {kind}, {ncls} classes; main metric "
        f"{main}; {sec.n_ok} runs ok, seeds {_seeds_text(seeds)}",
    ]
    if sec.identical:
        names = ", ".join(f"`{g.label}`" for g in sec.identical)
        out.append(f"- **Equal to the baseline:** {names}: every metric on every view and seed within "
                   f"{IDENTICAL_TOL:g} of `{BASELINE}` (a per-class monotone change of the scores, such as a "
                   f"post-hoc logit shift, cannot change a ranking metric); left out of this task's tables and plots")
    skipped = info.get("skipped") or {}
    if isinstance(skipped, dict) and skipped:  # e.g. undecodable audio clips: counted, never silent
        out.append("- **Skipped while loading:** " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    for note in info.get("notes") or []:
        out.append(f"- **Note:** {' '.join(str(note).split())}")
    for label, text in method_warnings(sec):
        out.append(f"- **Warning** (`{label}`): {text}")
    out += _dataset_stats(sec) + [""]
    if sec.baseline is None:
        out += [f"**No baseline (`{BASELINE}`) runs for this task, so no changes can be computed.**", ""]
    if sec.main_metric:
        out += _leaderboard(sec, sec.main_metric, "Leaderboard") + [""]
    if sec.secondary_metric:
        out += _leaderboard(sec, sec.secondary_metric, "Secondary leaderboard") + [""]
    return out


def method_warnings(sec: Section) -> list[tuple[str, str]]:
    """(method label, warning) pairs the runs recorded (`result["warnings"]`, e.g. a setting that makes a method a
    no-op on this task), each once per method however many seeds repeat it."""
    seen: dict[tuple[str, str], None] = {}
    for g in sec.methods + sec.identical:
        for res in g.runs.values():
            for w in res.get("warnings") or []:
                seen[(g.label, " ".join(str(w).split()))] = None
    return list(seen)


def interval_text(shifts: dict) -> str:
    """The one explanation of the report's intervals (every table and figure uses the same kind)."""
    bs = sorted({s.n_bootstrap for s in shifts.values() if s.scores_available and s.n_bootstrap >= 2})
    if not bs:
        return ("95% t-interval over seeds (no stored scores, or `--bootstrap 0`: the finite evaluation set's "
                "noise is not included).")
    return (f"95% interval over training seeds and evaluation examples: a paired bootstrap over evaluation "
            f"examples ({'/'.join(str(b) for b in bs)} resamples, one shared by method, baseline and every seed) "
            f"gives the variance v_boot of the seed-averaged change; half-width √(t²(n−1)·s²/n + t²(B−1)·v_boot), "
            f"each part with the t quantile of its own degrees of freedom (simulated false-positive rate ≤ 5.1 % "
            f"at 2, 3 and 5 seeds; tests/test_stats.py).")


def how_to_read(shifts: dict) -> list[str]:
    return [
        f"How to read: each cell is the change of the metric from the baseline `{BASELINE}` (plain training on "
        f"the natural training distribution) to the method, paired by seed, mean ± half-width of its interval, "
        f"then → the method's absolute value. Intervals, the same kind in every table and figure: "
        f"{interval_text(shifts)} `(ns)`: the interval includes 0. **Bold**: the best change on a view when its "
        f"interval lies above 0 (nothing is bold where no method is significantly better than the baseline). "
        f"`[n=k]`: only k seeds had a value there. *low n*: the view's effective sample size (Σw)²/Σw² is below "
        f"{LOW_N_MIN:g} (a rate's 95% half-width then exceeds ±0.098) or below {LOW_N_FRACTION:.0%} of its "
        f"examples (a few heavy weights carry it): marked, and left out of the summary. \"ρ seen\": n_max/n_min of "
        f"the classes the training stream showed (1 = fully balanced). \"train ×\": training time relative to the "
        f"baseline on the same seeds (results' `train_time_s`; ~0 for post-hoc methods). Views re-weight one "
        f"evaluation pool to different class priors: read the one that matches your deployment.",
        "",
    ]


def _failed(model: ReportModel) -> list[str]:
    out = ["## Failed runs", ""]
    if not model.failed:
        return out + ["None."]
    rows = []
    for r in model.failed:
        err = " ".join(str(r.get("error") or "").split())
        rows.append([task_name(r), f"`{method_label(r)}`", str(seed_of(r)), (err[:197] + "...") if len(err) > 200 else err or NA])
    return out + [table(["task", "method", "seed", "error"], rows)]


def _footer(model: ReportModel) -> list[str]:
    n_files = model.n_ok + model.n_failed + model.n_unreadable
    line = f"Generated from {n_files} result files: {model.n_ok} ok, {model.n_failed} failed"
    n_broken = model.n_unreadable - model.n_foreign
    if model.n_foreign:
        line += f", {n_broken} unreadable or unfinished, {model.n_foreign} of another schema version (skipped)."
    else:
        line += f", {n_broken} unreadable or unfinished (skipped)." if n_broken else "."
    if model.n_duplicates:
        line += f" Duplicate runs of one configuration and seed ignored (latest kept): {model.n_duplicates}."
    parts = [line]
    if model.commits:
        parts.append("Code: " + ", ".join(f"git `{c}` ({k} runs)" for c, k in model.commits) + ".")
    libs = [f"Python {' / '.join(model.pythons)}"] if model.pythons else []
    libs += [f"{lib} {' / '.join(vs)}" for lib, vs in model.versions.items()]
    if libs:
        parts.append("Versions: " + ", ".join(libs) + ".")
    if model.devices:
        parts.append("Device: " + ", ".join(model.devices) + ".")
    return [
        "---",
        "",
        " ".join(parts),
        "",
        "This report was generated from the result JSON files only; "
        "`python run_benchmark.py report <dir>` regenerates it.",
    ]


# ---------------------------------------------------------------- public API


def build_report_markdown(
    results: list[dict], title: str = DEFAULT_TITLE, *, n_unreadable: Optional[int] = None,
    model: Optional[ReportModel] = None, shifts: Optional[dict] = None,
) -> str:
    """The report as markdown: a pure, deterministic function of `results` (input order does not matter).

    `n_unreadable` (files skipped while loading) defaults to the attribute `load_runs` puts on its list.
    `model` and `shifts` (reports.priorshift.analyze of that model) add the prior-shift sections.
    """
    if n_unreadable is None:
        n_unreadable = int(getattr(results, "n_unreadable", 0))
    if model is None:
        model = build_model(list(results), n_unreadable)
    shifts = shifts or {}
    if shifts:
        from .deployment import deployment_markdown
        from .shift_sections import section_markdown
    out = [f"# {title}", ""] + how_to_read(shifts)
    if model.sections:
        out += _summary_table(model.sections)
        if shifts:
            from .deployment import glance_line

            glance = [ln for sec in model.sections if sec.key in shifts
                      for ln in [glance_line(sec, shifts[sec.key])] if ln]
            if glance:
                out += ["At a glance, for the tasks with unlabeled deployment data (details in each task's "
                        "\"On your deployment data\"):", ""] + glance + [""]
    else:
        out += ["No successful runs found.", ""]
    for sec in model.sections:
        out += _section(sec)
        if sec.key in shifts:
            out += section_markdown(sec, shifts[sec.key])
            out += deployment_markdown(sec, shifts[sec.key])
    out += _failed(model) + [""] + _footer(model)
    return "\n".join(out).rstrip("\n") + "\n"


def render_report(run_dir: str | Path, out_name: str = "report.md", title: str = DEFAULT_TITLE, *,
                  options: Any = None, publish: Optional[str | Path] = None) -> Path:
    """Load `<run_dir>/results`, write `<run_dir>/<out_name>` and `<run_dir>/summary.json` atomically.

    The prior-shift analysis (reports.priorshift, with `options` or the run dir's saved ones) reads the stored
    scores and writes its PNG figures beside the report. `publish`: also write a self-contained folder there.
    """
    from .plots import FigureWriter
    from .options import load_options
    from .per_class import per_class_analysis
    from .priorshift import analyze, summary_json

    run_dir = Path(run_dir)
    results = load_runs(run_dir)
    for line in results.warnings():  # report.md says how many; stderr says which and why
        print(line, file=sys.stderr)
    model = build_model(list(results), results.n_unreadable, n_foreign=len(results.foreign))
    options = options if options is not None else load_options(run_dir)
    with FigureWriter(run_dir) as figures:  # each section's figures are drawn while the next is analyzed
        # the sections are analyzed in the figure workers too; their per-class panels are drawn meanwhile
        shifts = analyze(run_dir, model, options, figures.section, processes=figures.pool,
                         on_start=lambda sec: figures.per_class_early(sec.key, per_class_analysis(sec, options)))
    md = build_report_markdown(results, title, model=model, shifts=shifts)
    summary = summary_dict(model)  # after the analysis: its intervals include the bootstrap
    summary["prior_shift"] = {key: summary_json(sh) for key, sh in shifts.items()}
    from .deployment import deployment_json
    from .summary import json_safe

    for key, sh in shifts.items():  # per task: the deployment prior estimate and the answer for it
        if sh.deployment is not None and key in summary["tasks"]:
            summary["tasks"][key]["deployment"] = json_safe(deployment_json(sh))
    summary_text = json.dumps(summary, indent=1, allow_nan=False) + "\n"
    atomic_write_text(run_dir / "summary.json", summary_text)
    path = run_dir / out_name
    atomic_write_text(path, md)
    if publish is not None:
        from .publish import publish_folder

        publish_folder(Path(publish), md, summary_text, shifts, run_dir)
    return path
