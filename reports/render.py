"""Markdown rendering of the report, and `render_report` which writes report.md + summary.json to a run dir."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Hashable, Optional, Sequence

from tabulate import tabulate

from .analysis import BASELINE, ReportModel, Section, _get, _num, build_model, method_label, seed_of, summary_dict, task_name
from .load import atomic_write_text, load_runs
from .stats import seed_sort_key, imbalance_ratio

DEFAULT_TITLE = "balancebench report"
NA = "n/a"


# ---------------------------------------------------------------- formatting


def _cell(s: Any) -> str:
    """One table cell: pipes escaped and newlines flattened so user text cannot break the table."""
    return " ".join(str(s).split()).replace("|", "\\|")


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    # disable_numparse: tabulate would otherwise re-format "+0.0120" strings as numbers
    return tabulate(
        [[_cell(c) for c in r] for r in rows],
        headers=[_cell(h) for h in headers],
        tablefmt="github",
        disable_numparse=True,
    )


def _r4(x: float) -> float:
    return round(x, 4) + 0.0  # + 0.0 turns -0.0 into 0.0, so "-0.0000" never shows


def fmt_num(x: Optional[float], digits: int = 4) -> str:
    if x is None:
        return NA
    if math.isinf(x):
        return "∞"
    return f"{round(x, digits) + 0.0:.{digits}f}"


def fmt_interval(iv: Any, signed: bool) -> str:
    """'+0.0123 ± 0.0045' (or without '±' with a single seed); 'n/a' for None."""
    if iv is None:
        return NA
    m = f"{_r4(iv.mean):+.4f}" if signed else f"{_r4(iv.mean):.4f}"
    return m if iv.half_width is None else f"{m} ± {_r4(iv.half_width):.4f}"


def _seeds_text(seeds: Sequence[Hashable]) -> str:
    return ", ".join(str(s) for s in seeds) if seeds else "none"


# ---------------------------------------------------------------- sections


def _view_body(sec: Section, view: str) -> dict:
    """The eval entry of `view` from the first run that has it (baseline first, lowest seed first)."""
    groups = ([sec.baseline] if sec.baseline else []) + sec.methods
    for g in groups:
        for s in g.seeds():
            body = _get(g.runs[s], "eval", view)
            if isinstance(body, dict):
                return body
    return {}


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
    out = ["### Dataset statistics", ""]
    out.append(
        _table(
            ["N train", "classes", "ρ = n_max/n_min", "labels / example", "absent classes"],
            [[
                NA if n is None else str(int(n)),
                str(ts.get("n_classes", sec.info.get("num_classes", NA))),
                fmt_num(_num(ts.get("imbalance_ratio")), 1),
                fmt_num(lpe, 2),
                absent_txt,
            ]],
        )
    )
    if sec.train_stats_vary:
        out += ["", f"Training statistics differ between runs; shown: {method_label(sec.reference)}, seed {seed_of(sec.reference)}."]
    if sec.baseline is not None:
        rho = sec.baseline.effective_rho()
        seen = [x for x in (_num(_get(r, "effective_prior", "samples_seen")) for r in sec.baseline.runs.values()) if x is not None]
        epochs = [x for x in (_num(_get(r, "effective_prior", "epochs")) for r in sec.baseline.runs.values()) if x is not None]
        line = f"Baseline training stream (`{sec.baseline.label}`): effective ρ seen {fmt_num(rho, 1)}"
        if seen:
            line += f", {int(round(sum(seen) / len(seen)))} samples seen"
        if epochs:
            line += f" ({fmt_num(sum(epochs) / len(epochs), 2)} epochs)"
        out += ["", line + ", mean over seeds."]

    rows = []
    for v in sec.views:
        body = _view_body(sec, v)
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
            fmt_num(eff if eff is not None else ne, 1),
            fmt_num(rho_v, 1),
        ])
    out += ["", "Evaluation views:", "", _table(["view", "description", "examples", "weighted", "effective n", "ρ in view"], rows)]
    return out


def _baseline_table(sec: Section) -> list[str]:
    b = sec.baseline
    if b is None:
        return [
            "### Baseline absolute metrics",
            "",
            f"**No baseline (`{BASELINE}`) runs for this task, so no changes can be computed.**",
        ]
    n = len(b.runs)
    head = f"### Baseline absolute metrics (`{b.label}`, mean" + (f" ± 95% CI over {n} seeds)" if n > 1 else ", 1 seed)")
    rows = []
    for m in sec.metrics:
        row = [f"`{m}`" + (" (main)" if m == sec.main_metric else "")]
        for v in sec.views:
            iv = sec.baseline_value(v, m)
            txt = fmt_interval(iv, signed=False)
            if iv is not None and iv.n < n:
                txt += f" [n={iv.n}]"
            row.append(txt)
        rows.append(row)
    return [head, "", _table(["metric"] + sec.views, rows)]


def _leaderboard(sec: Section, metric: str, what: str) -> list[str]:
    cells = {(g.label, v): sec.delta(g, v, metric) for g in sec.methods for v in sec.views}
    best = {}
    for v in sec.views:
        means = [_r4(iv.mean) for (lab, vv), iv in cells.items() if vv == v and iv is not None]
        best[v] = max(means) if means else None
    rows = []
    for g in sec.methods:
        paired = len(sec.paired_seeds(g))
        row = [f"`{g.label}`"]
        for v in sec.views:
            iv = cells[(g.label, v)]
            txt = fmt_interval(iv, signed=True)
            if iv is not None:
                if _r4(iv.mean) == best[v]:
                    txt = f"**{txt}**"
                if iv.significant is False:
                    txt += " (ns)"
                if iv.n < paired:  # some paired seeds lack a value here (null metric or missing view)
                    txt += f" [n={iv.n}]"
            row.append(txt)
        row += [str(paired), fmt_num(g.effective_rho(), 1)]
        rows.append(row)
    out = [f"### {what}: `{metric}`, change vs baseline", ""]
    if not sec.methods:
        return out + ["No methods other than the baseline were run."]
    return out + [_table(["method"] + sec.views + ["seeds", "effective ρ seen"], rows)]


# ---------------------------------------------------------------- reading


def _view_reading(sec: Section, view: str) -> tuple[str, str]:
    """(short phrase for the summary sentence, full bullet) for the main metric on one view."""
    cells = [(g.label, sec.delta(g, view, sec.main_metric)) for g in sec.methods]  # type: ignore[arg-type]
    cells = [(lab, iv) for lab, iv in cells if iv is not None]
    if not cells:
        return f"has no paired results on **{view}**", f"- **{view}**: no method has results paired with the baseline."
    n = len(cells)
    has_ci = any(iv.half_width is not None for _, iv in cells)
    above = sum(iv.mean > 0 for _, iv in cells)
    below = sum(iv.mean < 0 for _, iv in cells)
    sig_up = sum(bool(iv.significant) and iv.mean > 0 for _, iv in cells)
    sig_down = sum(bool(iv.significant) and iv.mean < 0 for _, iv in cells)
    top = max(_r4(iv.mean) for _, iv in cells)
    best_label, best = next(c for c in cells if _r4(c[1].mean) == top)  # cells are in label order: ties -> first

    caveat = ""
    if has_ci:
        if sig_up and not sig_down:
            verdict = "helps"
        elif sig_down and not sig_up:
            verdict = "hurts"
        elif sig_up and sig_down:
            verdict, caveat = "has mixed effects", " (some methods help, some hurt)"
        else:
            verdict = "makes no significant difference"
    else:  # one seed: only signs are available, say so
        verdict = "helps" if above == n else "hurts" if below == n else "has mixed effects"
        caveat = " (single seed, no CI)"

    best_txt = f"`{best_label}` {fmt_interval(best, signed=True)}" + (" (ns)" if best.significant is False else "")
    best_word = "least harmful" if best.mean < 0 else "best"
    up = f"{above} of {n} methods above baseline" + (f" ({sig_up} significantly)" if has_ci and above else "")
    down = f"{below} below" + (f" ({sig_down} significantly)" if has_ci and below else "")
    bullet = f"- **{view}**: balancing {verdict}{caveat}; {best_word}: {best_txt}; {up}, {down}."
    short = f"{verdict} on **{view}**"
    if verdict in ("helps", "hurts"):
        short += f" ({best_word} `{best_label}`, {_r4(best.mean):+.4f})"
    return short, bullet


def _short_reading(sec: Section) -> str:
    if sec.baseline is None or not sec.methods or sec.main_metric is None:
        return "no comparison available (needs baseline and method runs)."
    text = "balancing " + "; ".join(_view_reading(sec, v)[0] for v in sec.views) + "."
    if all(len(sec.paired_seeds(g)) < 2 for g in sec.methods):
        text += " (Single seed: signs only, no confidence intervals.)"
    return text


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
        f"- **Source:** {' '.join(str(info.get('source') or NA).split())}",
        f"- **Labels:** {kind}, {ncls} classes",
        f"- **Main metric:** {main}",
        f"- **Runs:** {sec.n_ok} ok; {len(sec.methods)} method configurations besides the baseline; "
        f"seeds {_seeds_text(seeds)}",
    ]
    skipped = info.get("skipped") or {}
    if isinstance(skipped, dict) and skipped:  # e.g. undecodable audio clips: counted, never silent
        out.append("- **Skipped while loading:** " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    for note in info.get("notes") or []:
        out.append(f"- **Note:** {' '.join(str(note).split())}")
    out.append("")
    out += _dataset_stats(sec) + [""]
    out += _baseline_table(sec) + [""]
    if sec.main_metric:
        out += _leaderboard(sec, sec.main_metric, "Leaderboard") + [""]
    if sec.secondary_metric:
        out += _leaderboard(sec, sec.secondary_metric, "Secondary leaderboard") + [""]
    if sec.main_metric and sec.baseline is not None and sec.methods:
        out += [f"### Reading (`{sec.main_metric}`)", "", "In short: " + _short_reading(sec), ""]
        out += [_view_reading(sec, v)[1] for v in sec.views] + [""]
    return out


HOW_TO_READ = [
    "How to read: the baseline is method `none` (plain training on the natural training distribution). "
    "Each leaderboard cell is the change of the metric when switching from the baseline to the method, "
    "paired by seed (method minus baseline trained with the same seed), as mean ± half-width of the 95% "
    "t-interval over seeds. **Bold** marks the best method per view; `(ns)` marks changes whose interval "
    "includes 0 (not significant); `[n=k]` means only k paired seeds had a value there. "
    "\"effective ρ seen\" is n_max/n_min of the classes the training stream actually showed, mean over seeds "
    "(ρ of the training set means no rebalancing; 1 means fully balanced). "
    "Views re-weight the same evaluation pool to a different class prior: pick the one that matches the "
    "distribution you will deploy on.",
]


def _failed(model: ReportModel) -> list[str]:
    out = ["## Failed runs", ""]
    if not model.failed:
        return out + ["None."]
    rows = []
    for r in model.failed:
        err = " ".join(str(r.get("error") or "").split())
        rows.append([task_name(r), f"`{method_label(r)}`", str(seed_of(r)), (err[:197] + "...") if len(err) > 200 else err or NA])
    return out + [_table(["task", "method", "seed", "error"], rows)]


def _footer(model: ReportModel) -> list[str]:
    n_files = model.n_ok + model.n_failed + model.n_unreadable
    line = f"Generated from {n_files} result files: {model.n_ok} ok, {model.n_failed} failed"
    line += f", {model.n_unreadable} unreadable or unfinished (skipped)." if model.n_unreadable else "."
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
        from .shift_sections import ci_note, section_markdown
    out = [f"# {title}", ""] + HOW_TO_READ + [""] + (ci_note(shifts) if shifts else [])
    if model.sections:
        out += ["## At a glance", ""]
        for sec in model.sections:
            metric = f" (`{sec.main_metric}`)" if sec.main_metric else ""
            out.append(f"- **{sec.key}**{metric}: {_short_reading(sec)}")
        out.append("")
    else:
        out += ["No successful runs found.", ""]
    for sec in model.sections:
        out += _section(sec)
        if sec.key in shifts:
            out += section_markdown(sec, shifts[sec.key])
    out += _failed(model) + [""] + _footer(model)
    return "\n".join(out).rstrip("\n") + "\n"


def render_report(run_dir: str | Path, out_name: str = "report.md", title: str = DEFAULT_TITLE, *,
                  options: Any = None, publish: Optional[str | Path] = None) -> Path:
    """Load `<run_dir>/results`, write `<run_dir>/<out_name>` and `<run_dir>/summary.json` atomically.

    The prior-shift analysis (reports.priorshift, with `options` or the run dir's saved ones) reads the stored
    scores and writes its PNG figures beside the report. `publish`: also write a self-contained folder there.
    """
    from .plots import write_figures
    from .priorshift import analyze, load_options, summary_json

    run_dir = Path(run_dir)
    results = load_runs(run_dir)
    model = build_model(list(results), results.n_unreadable)
    shifts = analyze(run_dir, model, options if options is not None else load_options(run_dir))
    write_figures(shifts, run_dir)
    md = build_report_markdown(results, title, model=model, shifts=shifts)
    summary = summary_dict(model)  # after the analysis: its intervals include the bootstrap
    summary["prior_shift"] = {key: summary_json(sh) for key, sh in shifts.items()}
    summary_text = json.dumps(summary, indent=1, allow_nan=False) + "\n"
    atomic_write_text(run_dir / "summary.json", summary_text)
    path = run_dir / out_name
    atomic_write_text(path, md)
    if publish is not None:
        from .publish import publish_folder

        publish_folder(Path(publish), md, summary_text, shifts, run_dir)
    return path
