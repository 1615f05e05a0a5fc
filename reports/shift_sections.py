"""Markdown of the prior-shift analysis: distributions, Δ table, curve, β choice, per-class mechanism."""
from __future__ import annotations

import math
from typing import Optional, Sequence

from .analysis import Section, _get, is_low_n
from .fmt import NA, fmt_interval, fmt_num, table
from .priorshift import SectionShift
from .sweeps import Sweep
from benchmark.core.stats import Interval


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
    if not any(d.source == "report" for d in sh.dists):  # the views table above lists them: say how they were built
        built = [f"**{d.name}**: {_realization(d)}" for d in sh.dists if d.info]
        if built:
            out += ["Weighted views: " + "; ".join(built) + ".", ""]
    else:
        rows = []
        for d in sh.dists:
            rows.append([f"**{d.name}**", "run" if d.source == "run" else "report", str(d.n_examples),
                         fmt_num(d.effective_n, 1), _realization(d)])
        out += ["Evaluation distributions (\"run\": the engine's view stored with the runs; \"report\": built here "
                "on the stored pool). The effective sample size (Σw)²/Σw² tells how much data a weighted "
                "distribution really rests on.", "",
                table(["distribution", "built by", "examples", "effective n", "realization"], rows), ""]
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
    from .render import significantly_best

    best = {d: significantly_best({g.label: sh.cells.get((g.label, d, metric)) for g in sec.methods}) for d in dists}
    rows = []
    base = [sh.baseline.get((d, metric)) for d in dists]
    rows.append([f"*`{sec.baseline.label}` (absolute)*"]  # type: ignore[union-attr]
                + [fmt_interval(b, signed=False) for b in base])
    for g in sec.methods:
        row = [f"`{g.label}`"]
        for d in dists:
            iv = sh.cells.get((g.label, d, metric))
            row.append(_cell(iv, best[d] == g.label))
        rows.append(row)
    eff = {x.name: x for x in sh.dists}
    heads = [f"{d} (low n: {fmt_num(eff[d].effective_n, 0)})" if d in eff and is_low_n(eff[d].effective_n,
             eff[d].n_examples) else d for d in dists]
    return [f"Change of `{metric}` vs baseline on the distributions built from the stored scores:", "",
            table(["method"] + heads, rows)]


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


def flag_runs(flags: Sequence[bool]) -> list[tuple[int, int]]:
    """(first, last) index of each run of consecutive true flags.

    >>> flag_runs([False, True, True, False, True])
    [(1, 2), (4, 4)]
    """
    runs, k = [], 0
    while k < len(flags):
        if flags[k]:
            j = k
            while j + 1 < len(flags) and flags[j + 1]:
                j += 1
            runs.append((k, j))
            k = j + 1
        else:
            k += 1
    return runs


def _ranges(ivs: list[Optional[Interval]], gammas: list[float], above: bool) -> str:
    """The γ ranges where the interval lies entirely above (or below) 0, e.g. '0.75–2'."""
    flags = [iv is not None and iv.half_width is not None and ((iv.ci_low > 0) if above else (iv.ci_high < 0))
             for iv in ivs]
    runs = [f"{gammas[k]:g}" if j == k else f"{gammas[k]:g}–{gammas[j]:g}" for k, j in flag_runs(flags)]
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

    def head(g: float) -> str:
        e = c.effective_n[idx[g]]
        return names.get(g, f"γ={g:g}") + (f" (low n: {fmt_num(e, 0)})" if is_low_n(e, c.n_examples or None)
                                           else f" n={fmt_num(e, 0)}")
    low = [f"{g:g}" for g, e in zip(c.gammas, c.effective_n) if is_low_n(e, c.n_examples or None)]
    boot = f", {c.n_bootstrap} resamples per γ" if c.n_bootstrap else ""
    if c.n_bootstrap and c.boot_gammas and len(c.boot_gammas) < len(c.gammas):
        boot = (f", {c.n_bootstrap} resamples at γ = {', '.join(f'{g:g}' for g in c.boot_gammas)} (the bootstrap "
                f"variance interpolated linearly between them)")
    return [
        "#### Prior-shift curve", "",
        f"![Δ {c.metric} vs evaluation prior γ]({sh.figures['curve']})", "",
        f"The pool reweighted to p_γ ∝ p^(1−γ) for γ ≤ 1 (p: training prior) and p_rev^(γ−1) beyond (class ranks "
        f"mirrored): 0 training prior, 1 uniform, 2 reversed; multi-label by raking. Intervals as in the "
        f"leaderboards{boot}; n = effective n. \"Sign change\": where the mean change crosses 0 (−→+: balancing "
        f"starts to help); the last two columns: the γ ranges where the interval lies above / below 0"
        + (f" (low effective n at γ = {', '.join(low)}: read with care)." if low else "."), "",
        table(["method"] + [head(g) for g in marks]
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
            rows.append([f"**{d}**", _val_slice(sec, d), NA, NA, NA, NA, NA])
            continue
        def val_txt(v: float, iv: Optional[Interval]) -> str:
            return "0 (baseline)" if v == 0.0 else _cell(iv)
        rows.append([f"**{d}**", _val_slice(sec, d), f"{ch['value']:g}", fmt_num(ch["val_metric"]),
                     val_txt(ch["value"], ch["test"]),
                     NA if ch["best_value"] is None else f"{ch['best_value']:g}",
                     NA if ch["best_value"] is None else val_txt(ch["best_value"], ch["best_test"])])
    if not sw.choice:
        rows = []
    vals = ", ".join(f"{v:g}" for v in sw.values)
    out = [head, "",
           f"Candidates {sw.param} ∈ {{{vals}}} (0 is the baseline `{sec.baseline.label}`). For each "  # type: ignore
           f"distribution the value with the best mean validation `{metric}` over seeds is chosen, on the "
           f"validation slice described in the second column (built like the test view unless it says "
           f"otherwise); its change on the test pool is reported. \"Best on test\": a test-set oracle's pick; "
           f"the gap is what choosing on validation costs.", "",
           table(["distribution", "validation slice (effective n)", f"chosen {sw.param}", f"validation {metric}", "test Δ of the choice",
                   f"best {sw.param} on test", "test Δ there"], rows) if rows else
           f"*No validation `{metric}` in these results: no choice can be made; the figure shows the test "
           f"changes only.*"]
    key = next((k for k in sh.figures if k.startswith(f"beta:{sw.method}:{sw.param}:")
                and k.endswith(",".join(f"{a}={b}" for a, b in sorted(sw.fixed.items())))), None)
    if key:
        out += ["", f"![{metric} vs {sw.param}]({sh.figures[key]})"]
    return out


def _val_slice(sec: Section, d: str) -> str:
    """What the validation version of view `d` is (from the runs' JSON), flagged when it is not built like the
    test view (e.g. AudioSet's `public` has no official validation split: a natural-prior slice stands in)."""
    runs = [r for g in ([sec.baseline] if sec.baseline else []) for r in g.runs.values()]
    val = next((_get(r, "val", d) for r in runs if isinstance(_get(r, "val", d), dict)), None)
    test = next((_get(r, "eval", d) for r in runs if isinstance(_get(r, "eval", d), dict)), None)
    if val is None:
        return "built by the report like the test distribution" if test is None else NA
    desc = " ".join(str(val.get("description") or "").split()) or NA
    eff, n = val.get("effective_n"), val.get("n_examples")
    txt = f"{desc} ({fmt_num(eff if eff is not None else n, 0)}"
    txt += " — low n)" if is_low_n(eff if eff is not None else n, n) else ")"
    if test is not None and str(test.get("description") or "") != str(val.get("description") or ""):
        txt += " **not built like the test view**"
    return txt


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
           f"Spearman ρ between each class's change of {pc.metric} (mean over paired seeds) and its log training "
           f"count; the paper found none (balancing did not favour rare classes). Bins ({sizes} classes): mean "
           f"change over the bin's classes ± 95% t-interval over classes [classes]; an empty bin is n/a.", "",
           table(["method", "Spearman ρ (p)", "classes"] + [f"{b} ({desc})" for b, desc in pc.bins], rows)]
    if sh.figures.get("per_class"):
        out += ["", f"![per-class Δ {pc.metric} vs training count]({sh.figures['per_class']})"]
    return out


def _p(p: Optional[float]) -> str:
    if p is None or not math.isfinite(p):
        return NA
    return f"{p:.2g}" if p >= 1e-4 else "<1e-4"
