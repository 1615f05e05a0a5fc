"""PNG figures of the prior-shift analysis (matplotlib's Agg canvas: no display, no pyplot global state)."""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Optional

import numpy as np

from .priorshift import PerClass, SectionShift, Sweep

DPI = 110


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> None:
    import io

    from .load import results_module

    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})  # no version stamp: same input, same bytes
    results_module().atomic_write_bytes(path, buf.getvalue())


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "task"


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def curve_png(shift: SectionShift, path: Path, title: str) -> bool:
    """Δ main metric vs γ (0 training prior, 1 uniform, 2 reversed), one line per method, 95% band over seeds."""
    c = shift.curve
    if c is None or not c.delta:
        return False
    fig = _figure(7.2, 4.4)
    ax = fig.add_subplot()
    x = np.asarray(c.gammas)
    for color, (label, ivs) in zip(_colors(len(c.delta)), sorted(c.delta.items())):
        mean = np.array([np.nan if iv is None else iv.mean for iv in ivs])
        hw = np.array([np.nan if iv is None or iv.half_width is None else iv.half_width for iv in ivs])
        ax.plot(x, mean, color=color, lw=2, label=label)
        if np.isfinite(hw).any():
            ax.fill_between(x, mean - hw, mean + hw, color=color, alpha=0.18, lw=0)
    ax.axhline(0.0, color="black", lw=0.8)
    for g, name in ((0, "training prior"), (1, "uniform"), (2, "reversed prior")):
        ax.axvline(g, color="grey", lw=0.6, ls=":")
    ax.set_xticks([0, 0.5, 1, 1.5, 2], ["0\ntraining prior", "0.5", "1\nuniform", "1.5", "2\nreversed prior"])
    ax.set_xlim(x.min(), x.max())
    ax.set_xlabel("evaluation prior γ")
    ax.set_ylabel(f"Δ {c.metric} vs baseline")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    _save(fig, path)
    return True


def beta_png(sweep: Sweep, metric: str, path: Path, title: str) -> bool:
    """The paper's Figure 1: Δ metric (test) vs the swept parameter, one line per evaluation distribution, with
    the value chosen on validation starred."""
    dists = [d for d in sweep.test if any(iv is not None for iv in sweep.test[d])]
    if not dists:
        return False
    fig = _figure(7.2, 4.4)
    ax = fig.add_subplot()
    x = np.asarray(sweep.values)
    for color, d in zip(_colors(len(dists)), dists):
        ivs = sweep.test[d]
        mean = np.array([np.nan if iv is None else iv.mean for iv in ivs])
        hw = np.array([0.0 if iv is None or iv.half_width is None else iv.half_width for iv in ivs])
        ax.errorbar(x, mean, yerr=hw, color=color, marker="o", ms=4, lw=1.6, capsize=3, label=d)
        ch = sweep.choice.get(d)
        if ch is not None and ch.get("test") is not None:
            ax.plot([ch["value"]], [ch["test"].mean], marker="*", ms=15, color=color, mec="black", mew=0.8,
                    ls="none")
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xticks(x, [f"{v:g}" for v in x])
    ax.set_xlabel(f"{sweep.param} (0 = baseline `none`)")
    ax.set_ylabel(f"Δ {metric} vs baseline (test)")
    ax.set_title(title + "\n★ = value chosen on the validation split", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best", ncol=2 if len(dists) > 6 else 1)
    _save(fig, path)
    return True


def per_class_png(pc: PerClass, path: Path, title: str, max_panels: int = 6) -> bool:
    """Per-class Δ AP vs training count (log x), one panel per method, bin thresholds dashed, Spearman ρ in the
    panel title."""
    labels = sorted(pc.delta)[:max_panels]
    if not labels:
        return False
    cols = min(3, len(labels))
    rows = math.ceil(len(labels) / cols)
    fig = _figure(3.4 * cols, 2.9 * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
    counts = np.asarray(pc.counts, dtype=np.float64)
    many, few = _thresholds(pc)
    for ax, label in zip(axes.ravel(), labels):
        d = np.array([np.nan if v is None else v for v in pc.delta[label]])
        ok = np.isfinite(d) & (counts > 0)
        ax.scatter(counts[ok], d[ok], s=14, alpha=0.75, color="#1f77b4", edgecolors="none")
        ax.axhline(0.0, color="black", lw=0.8)
        for thr in (many, few):
            if thr is not None:
                ax.axvline(thr, color="grey", lw=0.7, ls="--")
        ax.set_xscale("log")
        rho, p, k = pc.spearman.get(label, (None, None, 0))
        stat = "ρ n/a" if rho is None else f"Spearman ρ={rho:+.2f}, p={p:.2g}"
        ax.set_title(f"{label}\n{stat} ({k} classes)", fontsize=8.5)
        ax.grid(alpha=0.3)
        ax.tick_params(labelbottom=True, labelleft=True)  # shared axes would hide them above empty panels
    for ax in axes.ravel()[len(labels):]:
        ax.set_visible(False)
    fig.supxlabel("training examples of the class (log scale)", fontsize=9)
    fig.supylabel(f"Δ {pc.metric} vs baseline ({pc.view})", fontsize=9)
    fig.suptitle(title, fontsize=10)
    _save(fig, path)
    return True


def _thresholds(pc: PerClass) -> tuple[Optional[float], Optional[float]]:
    nums = [re.findall(r"\d+", desc) for _, desc in pc.bins]
    try:
        return float(nums[0][0]), float(nums[2][0])
    except (IndexError, ValueError):
        return None, None


def write_figures(shifts: dict[str, SectionShift], out_dir: Path) -> None:
    """Render each section's figures into `out_dir` and record their file names in `shift.figures`."""
    out_dir = Path(out_dir)
    for key, sh in shifts.items():
        base = slug(key)
        sh.figures = {}
        name = f"priorshift_{base}.png"
        if curve_png(sh, out_dir / name, f"{key}: change of {sh.main_metric} under prior shift"):
            sh.figures["curve"] = name
        for i, sw in enumerate(sh.sweeps):
            name = f"beta_{base}_{slug(sw.method)}_{slug(sw.param)}.png"
            if name in sh.figures.values():  # the same method swept at several fixed settings
                name = name[:-4] + f"_{i}.png"
            fixed = ", ".join(f"{k}={v}" for k, v in sw.fixed.items())
            title = f"{key}: {sw.method}" + (f" ({fixed})" if fixed else "") + f", {sh.main_metric} vs {sw.param}"
            if beta_png(sw, sh.main_metric, out_dir / name, title):
                sh.figures[f"beta:{sw.method}:{sw.param}:{_fixed_key(sw)}"] = name
        if sh.per_class is not None:
            name = f"perclass_{base}.png"
            if per_class_png(sh.per_class, out_dir / name, f"{key}: per-class change of AP vs training prior"):
                sh.figures["per_class"] = name


def _fixed_key(sw: Sweep) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(sw.fixed.items()))
