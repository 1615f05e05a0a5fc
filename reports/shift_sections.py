"""Markdown of the prior-shift analysis: distributions, Δ table, curve, β choice, per-class mechanism."""
from __future__ import annotations

import math
from typing import Optional

from .analysis import Section
from .priorshift import SectionShift, Sweep
from .render import NA, _r4, _table, fmt_interval, fmt_num
from .stats import Interval


def ci_note(shifts: dict[str, SectionShift]) -> list[str]:
    """One paragraph for the top of the report, when any section's intervals include the bootstrap."""
    bs = sorted({s.n_bootstrap for s in shifts.values() if s.scores_available and s.n_bootstrap >= 2})
    if not bs:
        return []
    return [
        f"Intervals from stored scores: every change also accounts for the finite evaluation set. A paired "
        f"bootstrap over evaluation examples ({'/'.join(str(b) for b in bs)} resamples; one resample is shared by "
        f"a method, the baseline and every seed) gives the variance of the seed-averaged change; it is added to "
        f"the seed variance s²/n, with Welch–Satterthwaite degrees of freedom for the 95% t quantile. `(ns)`: "
        f"that interval includes 0.",
        "",
    ]


def _cell(iv: Optional[Interval], best: bool = False) -> str:
    if iv is None:
        return NA
    txt = fmt_interval(iv, signed=True)
    if best:
        txt = f"**{txt}**"
    if iv.significant is False:
        txt += " (ns)"
    return txt


def _realization(d) -> str:
    info = d.info or {}
    if info.get("method") == "raking":
        cap = info.get("weight_cap")
        txt = f"raking, weights ≤ {cap:g}× mean" if cap else "raking, uncapped"
        txt += f", max marginal error {fmt_num(info.get('max_marginal_error'), 5)}"
        if not info.get("converged", True):
            txt += " (**not converged**)"
        if info.get("unmatched_classes"):
            txt += f", {info['unmatched_classes']} classes unmatched"
        return txt
    if info.get("method") == "reweighting":
        txt = "exact class reweighting"
        if info.get("unmatched_classes"):
            txt += f", {info['unmatched_classes']} classes have no examples"
        return txt
    return "weighted" if d.weighted else "subset of the pool"


def section_markdown(sec: Section, sh: SectionShift) -> list[str]:
    main = sh.main_metric
    out = [f"### Prior shift (`{main}`)", ""]
    for note in sh.notes:
        out += [f"*{note}*", ""]
    if any(d.source == "report" or d.info for d in sh.dists):  # else the views table above says it all
        rows = []
        for d in sh.dists:
            rows.append([f"**{d.name}**", "run" if d.source == "run" else "report", str(d.n_examples),
                         fmt_num(d.effective_n, 1), _realization(d)])
        out += ["Evaluation distributions (\"run\": the engine's view stored with the runs; \"report\": built here "
                "on the stored pool). The effective sample size (Σw)²/Σw² tells how much data a weighted "
                "distribution really rests on.", "",
                _table(["distribution", "built by", "examples", "effective n", "realization"], rows), ""]
    extra = [d.name for d in sh.dists if d.source == "report"]
    if extra and sec.methods:
        out += _delta_table(sec, sh, extra, main) + [""]
    if sh.curve is not None and sh.figures.get("curve"):
        out += _curve_md(sh) + [""]
    for sw in sh.sweeps:
        out += _sweep_md(sec, sh, sw) + [""]
    if sh.per_class is not None:
        out += _per_class_md(sh) + [""]
    return out


def _delta_table(sec: Section, sh: SectionShift, dists: list[str], metric: str) -> list[str]:
    best = {}
    for d in dists:
        means = [_r4(sh.cells[(g.label, d, metric)].mean) for g in sec.methods if (g.label, d, metric) in sh.cells]
        best[d] = max(means) if means else None
    rows = []
    for g in sec.methods:
        row = [f"`{g.label}`"]
        for d in dists:
            iv = sh.cells.get((g.label, d, metric))
            row.append(_cell(iv, iv is not None and _r4(iv.mean) == best[d]))
        rows.append(row)
    base = [sh.baseline.get((d, metric)) for d in dists]
    rows.append([f"*baseline `{sec.baseline.label}` (absolute)*"]  # type: ignore[union-attr]
                + [fmt_interval(b, signed=False) for b in base])
    return [f"Change of `{metric}` vs baseline on the distributions built from the stored scores:", "",
            _table(["method"] + dists, rows)]


def _crossings(ivs: list[Optional[Interval]], gammas: list[float]) -> str:
    """Where the mean change changes sign (linear interpolation between grid points), e.g. '0.47 (−→+)'."""
    pts = [(g, iv.mean) for g, iv in zip(gammas, ivs) if iv is not None]
    out = []
    for (g0, m0), (g1, m1) in zip(pts, pts[1:]):
        if (m0 < 0 < m1) or (m0 > 0 > m1):
            g = g0 + (g1 - g0) * m0 / (m0 - m1)
            out.append(f"{g:.2f} ({'−→+' if m1 > 0 else '+→−'})")
    if out:
        return ", ".join(out)
    signs = {(m > 0) - (m < 0) for _, m in pts}
    return "none" + (f" (always {'+' if 1 in signs else '−'})" if len(signs - {0}) == 1 else "")


def _ranges(ivs: list[Optional[Interval]], gammas: list[float], above: bool) -> str:
    """The γ ranges where the interval lies entirely above (or below) 0, e.g. '0.75–2'."""
    flags = [iv is not None and iv.half_width is not None and ((iv.ci_low > 0) if above else (iv.ci_high < 0))
             for iv in ivs]
    runs, k = [], 0
    while k < len(flags):
        if flags[k]:
            j = k
            while j + 1 < len(flags) and flags[j + 1]:
                j += 1
            runs.append(f"{gammas[k]:g}" if j == k else f"{gammas[k]:g}–{gammas[j]:g}")
            k = j + 1
        else:
            k += 1
    return ", ".join(runs) if runs else "—"


def _curve_md(sh: SectionShift) -> list[str]:
    c = sh.curve
    assert c is not None
    idx = {g: i for i, g in enumerate(c.gammas)}
    marks = [g for g in (0.0, 0.5, 1.0, 1.5, 2.0) if g in idx]
    rows = []
    for label, ivs in sorted(c.delta.items()):
        rows.append([f"`{label}`"] + [_cell(ivs[idx[g]]) for g in marks]
                    + [_crossings(ivs, c.gammas), _ranges(ivs, c.gammas, True), _ranges(ivs, c.gammas, False)])
    names = {0.0: "γ=0 (training)", 1.0: "γ=1 (uniform)", 2.0: "γ=2 (reversed)"}
    eff = ", ".join(f"γ={g:g}: {fmt_num(c.effective_n[idx[g]], 0)}" for g in marks)
    return [
        "#### Prior-shift curve", "",
        f"![Δ {c.metric} vs evaluation prior γ]({sh.figures['curve']})", "",
        f"The whole pool reweighted to the prior p_γ ∝ p^(1−γ) for γ ≤ 1 (p: the training prior) and "
        f"p_rev^(γ−1) beyond (p_rev: class ranks mirrored), so γ=0 is the training prior, 1 uniform and 2 the "
        f"reversed prior; multi-label by raking to per-class prevalences. Band and ± : 95% t-interval over seeds "
        f"(evaluation noise not included; the tables' intervals include it). Effective n: {eff}. \"Sign change "
        f"at γ\": where the mean change crosses 0, i.e. where balancing starts to help (−→+) or to hurt "
        f"(+→−); "
        f"the last two columns give the γ ranges where the interval lies above or below 0.", "",
        _table(["method"] + [names.get(g, f"γ={g:g}") for g in marks]
               + ["sign change at γ", "helps (CI > 0) at γ", "hurts (CI < 0) at γ"], rows),
    ]


def _sweep_md(sec: Section, sh: SectionShift, sw: Sweep) -> list[str]:
    metric = sh.main_metric
    fixed = ", ".join(f"{k}={v}" for k, v in sw.fixed.items())
    head = f"#### Choosing `{sw.param}` of `{sw.method}`" + (f" ({fixed})" if fixed else "") + " on validation"
    rows = []
    for d in sw.test:
        ch = sw.choice.get(d)
        if ch is None:
            rows.append([f"**{d}**", NA, NA, NA, NA, NA])
            continue
        def val_txt(v: float, iv: Optional[Interval]) -> str:
            return "0 (baseline)" if v == 0.0 else _cell(iv)
        rows.append([f"**{d}**", f"{ch['value']:g}", fmt_num(ch["val_metric"]), val_txt(ch["value"], ch["test"]),
                     NA if ch["best_value"] is None else f"{ch['best_value']:g}",
                     NA if ch["best_value"] is None else val_txt(ch["best_value"], ch["best_test"])])
    if not sw.choice:
        rows = []
    vals = ", ".join(f"{v:g}" for v in sw.values)
    out = [head, "",
           f"Candidates {sw.param} ∈ {{{vals}}} (0 is the baseline `{sec.baseline.label}`). For each "  # type: ignore
           f"distribution the value with the best mean validation `{metric}` over seeds (the same distribution "
           f"built on the validation split) is chosen; its change on the test pool is reported. \"Best on test\" "
           f"is the value a test-set oracle would pick: the gap is what choosing on validation costs.", "",
           _table(["distribution", f"chosen {sw.param}", f"validation {metric}", "test Δ of the choice",
                   f"best {sw.param} on test", "test Δ there"], rows) if rows else
           f"*No validation `{metric}` in these results: no choice can be made; the figure shows the test "
           f"changes only.*"]
    key = next((k for k in sh.figures if k.startswith(f"beta:{sw.method}:{sw.param}:")
                and k.endswith(",".join(f"{a}={b}" for a, b in sorted(sw.fixed.items())))), None)
    if key:
        out += ["", f"![{metric} vs {sw.param}]({sh.figures[key]})"]
    return out


def _per_class_md(sh: SectionShift) -> list[str]:
    pc = sh.per_class
    assert pc is not None
    rows = []
    for label in sorted(pc.delta):
        rho, p, k = pc.spearman[label]
        rtxt = NA if rho is None else f"{rho:+.3f} (p={_p(p)})"
        cells = []
        for b, _ in pc.bins:
            iv = pc.bin_means[label].get(b)
            cells.append(NA if iv is None else f"{fmt_interval(iv, signed=True)} [{iv.n}]")
        rows.append([f"`{label}`", rtxt, str(k)] + cells)
    sizes = ", ".join(f"{b} {pc.bin_sizes.get(b, 0)}" for b, _ in pc.bins)
    out = [f"#### Per-class change vs training prior (`{pc.view}`, Δ {pc.metric})", "",
           f"Spearman ρ between each class's change of {pc.metric} (method minus baseline, mean over paired seeds) "
           f"and its log training count, over the classes seen in training; the paper found no correlation "
           f"(balancing did not favour rare classes). Bins by training examples ({sizes} classes): mean change over "
           f"the bin's classes ± 95% t-interval over classes [classes]; an empty bin is n/a.", "",
           _table(["method", "Spearman ρ (p)", "classes"] + [f"{b} ({desc})" for b, desc in pc.bins], rows)]
    if sh.figures.get("per_class"):
        out += ["", f"![per-class Δ {pc.metric} vs training count]({sh.figures['per_class']})"]
    return out


def _p(p: Optional[float]) -> str:
    if p is None or not math.isfinite(p):
        return NA
    return f"{p:.2g}" if p >= 1e-4 else "<1e-4"
