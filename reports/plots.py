"""PNG figures of the prior-shift analysis (matplotlib's Agg canvas: no display, no pyplot global state)."""
from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from .per_class import PerClass
from .priorshift import Curve, SectionShift
from .sweeps import Sweep

DPI = 110


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI)  # laid out by _fit_grid
    FigureCanvasAgg(fig)
    return fig


PAD = 0.06  # inches between a panel's labels and its neighbours' (or the figure's edge and texts)


def _fit_grid(fig, axes: np.ndarray, title=None, xlabel=None, ylabel=None) -> None:
    """Place the (rows, cols) grid of equal panels so that nothing overlaps, from one measurement: the first
    panel's tick labels and title give every panel's margins (the panels share their axes and label formats),
    and the figure's `title`, `xlabel` and `ylabel` (the Texts of suptitle, supxlabel, supylabel) the figure's.
    Constrained layout measured every panel and was a third of each figure's drawing time."""
    rows, cols = axes.shape
    r = fig.canvas.get_renderer()
    dpi = fig.dpi
    W, H = fig.get_size_inches()
    ax = axes.flat[0]
    box, tight = ax.get_window_extent(r), ax.get_tightbbox(r)
    left, right = (box.x0 - tight.x0) / dpi, (tight.x1 - box.x1) / dpi
    below, above = (box.y0 - tight.y0) / dpi, (tight.y1 - box.y1) / dpi

    def extent(text, axis: int) -> float:  # a figure-level text's height (axis 1) or width (axis 0), inches
        if text is None or not text.get_text():
            return 0.0
        b = text.get_window_extent(r)
        return (b.height if axis else b.width) / dpi

    top = extent(title, 1) + 0.02 * H  # suptitle: y = 0.98 of the height, hanging down
    bottom = extent(xlabel, 1) + 0.01 * H  # supxlabel: y = 0.01
    side = extent(ylabel, 0) + 0.02 * W  # supylabel: x = 0.02
    x0, x1 = side + PAD + left, W - PAD - right
    y0, y1 = bottom + PAD + below, H - top - PAD - above
    gap_x, gap_y = left + right + PAD, below + above + PAD
    w = (x1 - x0 - (cols - 1) * gap_x) / cols
    h = (y1 - y0 - (rows - 1) * gap_y) / rows
    fig.subplots_adjust(left=x0 / W, right=x1 / W, bottom=y0 / H, top=y1 / H,
                        wspace=gap_x / w if cols > 1 else 0.0, hspace=gap_y / h if rows > 1 else 0.0)


def _save(fig, path: Path) -> None:
    import io

    from benchmark.core.results import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})  # no version stamp: same input, same bytes
    atomic_write_bytes(path, buf.getvalue())


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "task"


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


# one hue per sweep family (light → dark with the swept value); other methods get distinct qualitative colours
FAMILY_CMAPS = ("Blues", "Purples", "Greens", "Greys")
SINGLE_COLORS = ("#e6550d", "#d62728", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#7f7f7f", "#ff7f0e")


def method_colors(labels: list[str]) -> dict[str, object]:
    """A colour per method label: configurations of one method that differ in numeric parameters (a β sweep)
    share a sequential colour map, light (smallest value) to dark (largest); the rest get qualitative colours.

    >>> c = method_colors(["focal:gamma=2", "oversample:beta=0.25", "oversample:beta=1"])
    >>> c["oversample:beta=0.25"] != c["oversample:beta=1"], c["focal:gamma=2"]
    (True, '#e6550d')
    """
    from matplotlib import colormaps

    def nums(label: str) -> tuple[float, ...]:
        return tuple(float(x) for x in re.findall(r"=(-?\d+(?:\.\d+)?(?:e-?\d+)?)", label))

    by_name: dict[str, list[str]] = {}
    for lab in labels:
        by_name.setdefault(lab.split(":")[0].split(" ")[0], []).append(lab)
    out: dict[str, object] = {}
    fam = single = 0
    for name in sorted(by_name):
        members = by_name[name]
        if len(members) >= 2:
            cmap = colormaps[FAMILY_CMAPS[fam % len(FAMILY_CMAPS)]]
            fam += 1
            ordered = sorted(members, key=lambda lab: (nums(lab), lab))
            for k, lab in enumerate(ordered):  # 0.4..1.0 of the map: the lightest shade stays visible on white
                out[lab] = cmap(0.4 + 0.6 * k / (len(ordered) - 1))
        else:
            out[members[0]] = SINGLE_COLORS[single % len(SINGLE_COLORS)]
            single += 1
    return out


def _low_n_spans(gammas: np.ndarray, low: np.ndarray) -> list[tuple[float, float]]:
    """x-ranges (half-way to the neighbours) of consecutive γ points flagged low effective n."""
    from .shift_sections import flag_runs

    last = len(gammas) - 1
    return [(float(gammas[k] if k == 0 else (gammas[k - 1] + gammas[k]) / 2),
             float(gammas[j] if j == last else (gammas[j] + gammas[j + 1]) / 2)) for k, j in flag_runs(list(low))]


def curve_png(c: Optional[Curve], path: Path, title: str) -> bool:
    """Δ main metric vs γ (0 training prior, 1 uniform, 2 reversed): small multiples, one panel per method with
    its 95% band, the other methods as thin grey lines for reference; γ ranges of low effective n shaded."""
    if c is None or not c.delta:
        return False
    from .analysis import is_low_n

    labels = sorted(c.delta)
    colors = method_colors(labels)
    cols = min(3, len(labels))
    rows = math.ceil(len(labels) / cols)
    fig = _figure(3.3 * cols + 0.3, 2.5 * rows + 0.7)
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
    x = np.asarray(c.gammas, dtype=np.float64)
    n_pool = getattr(c, "n_examples", 0) or None
    low = np.array([is_low_n(e, n_pool) for e in c.effective_n])
    series = {}
    for label in labels:
        ivs = c.delta[label]
        mean = np.array([np.nan if iv is None else iv.mean for iv in ivs])
        hw = np.array([np.nan if iv is None or iv.half_width is None else iv.half_width for iv in ivs])
        series[label] = (mean, hw)
    kinds = {iv.kind for ivs in c.delta.values() for iv in ivs if iv is not None and iv.half_width is not None}
    for ax, label in zip(axes.ravel(), labels):
        for other in labels:
            if other != label:
                ax.plot(x, series[other][0], color="#c8c8c8", lw=0.8, zorder=1)
        mean, hw = series[label]
        if np.isfinite(hw).any():
            ax.fill_between(x, mean - hw, mean + hw, color=colors[label], alpha=0.25, lw=0, zorder=2)
        ax.plot(x, mean, color=colors[label], lw=2, zorder=3)
        mark = (getattr(c, "marks", None) or {}).get(label)
        if mark is not None:  # the deployment data's estimated prior, placed at its nearest γ
            ax.errorbar([mark[0]], [mark[1]], yerr=None if mark[2] is None else [[mark[2]], [mark[2]]], fmt="D",
                        color="black", ms=4, capsize=2, lw=1, zorder=4, label="your deployment")
        for a, b in _low_n_spans(x, low):
            ax.axvspan(a, b, color="#ebebeb", lw=0, zorder=0)
        ax.axhline(0.0, color="black", lw=0.8, zorder=2)
        ax.axvline(1.0, color="grey", lw=0.6, ls=":")
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
        ax.set_xticks([0, 1, 2], ["0\ntrain", "1\nuniform", "2\nreversed"])
        ax.tick_params(labelsize=8, labelbottom=True, labelleft=True)
    for ax in axes.ravel()[len(labels):]:
        ax.set_visible(False)
    ax0 = axes.ravel()[0]
    ax0.set_xlim(x.min(), x.max())
    band = "seeds + bootstrap" if kinds == {"seeds+bootstrap"} else "seeds"
    note = f"band: 95% interval ({band})" + ("; shaded: low effective n" if low.any() else "")
    if getattr(c, "marks", None):
        note += "; ◆: your deployment data (estimated prior, at its nearest γ)"
    _fit_grid(fig, axes, title=fig.suptitle(f"{title}\n{note}", fontsize=10),
              xlabel=fig.supxlabel("evaluation prior γ (0 training prior, 1 uniform, 2 reversed prior)", fontsize=9),
              ylabel=fig.supylabel(f"Δ {c.metric} vs baseline", fontsize=9))
    _save(fig, path)
    return True


def beta_png(sweep: Sweep, path: Path, metric: str, title: str) -> bool:
    """The paper's Figure 1: Δ metric (test) vs the swept parameter, one line per evaluation distribution, with
    the value chosen on validation starred. Distributions are dodged sideways so their error bars and markers do
    not sit on top of each other."""
    dists = [d for d in sweep.test if any(iv is not None for iv in sweep.test[d])]
    if not dists:
        return False
    fig = _figure(7.2, 4.4)
    ax = fig.add_subplot()
    x = np.asarray(sweep.values, dtype=np.float64)
    gaps = np.diff(np.unique(x))
    step = 0.5 * float(gaps.min()) / max(len(dists), 1) if gaps.size else 0.0
    offsets = (np.arange(len(dists)) - (len(dists) - 1) / 2) * step
    for color, d, off in zip(_colors(len(dists)), dists, offsets):
        ivs = sweep.test[d]
        mean = np.array([np.nan if iv is None else iv.mean for iv in ivs])
        hw = np.array([0.0 if iv is None or iv.half_width is None else iv.half_width for iv in ivs])
        ax.errorbar(x + off, mean, yerr=hw, color=color, marker="o", ms=4, lw=1.6, capsize=3, label=d)
        ch = sweep.choice.get(d)
        if ch is not None and ch.get("test") is not None:
            k = int(np.argmin(np.abs(x - ch["value"])))
            ax.plot([x[k] + off], [ch["test"].mean], marker="*", ms=14, color=color, mec="black", mew=0.8,
                    ls="none", zorder=4)
    ax.axhline(0.0, color="black", lw=0.8)
    ax.set_xticks(x, [f"{v:g}" for v in x])
    ax.set_xlabel(f"{sweep.param} (0 = baseline `none`)")
    ax.set_ylabel(f"Δ {metric} vs baseline (test)")
    ax.set_title(title + "\n★ = value chosen on the validation split; bars: 95% interval", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best", ncol=2 if len(dists) > 6 else 1)
    _fit_grid(fig, np.array([[ax]]))
    _save(fig, path)
    return True


def per_class_png(pc: PerClass, path: Path, title: str, max_panels: int = 6) -> bool:
    """Per-class Δ (AP or recall) vs training count (log x), one panel per method, bin thresholds dashed, Spearman ρ in the
    panel title."""
    labels = sorted(pc.delta)[:max_panels]
    if not labels:
        return False
    cols = min(3, len(labels))
    rows = math.ceil(len(labels) / cols)
    fig = _figure(3.4 * cols, 2.9 * rows + 0.4)
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True, sharey=True)
    from matplotlib.ticker import NullLocator

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
        ax.xaxis.set_minor_locator(NullLocator())  # unlabeled, and most of this figure's drawing time
        rho, p, k = pc.spearman.get(label, (None, None, 0))
        stat = "ρ n/a" if rho is None else f"Spearman ρ={rho:+.2f}, p={p:.2g}"
        ax.set_title(f"{label}\n{stat} ({k} classes)", fontsize=8.5)
        ax.grid(alpha=0.3)
        ax.tick_params(labelbottom=True, labelleft=True)  # shared axes would hide them above empty panels
    for ax in axes.ravel()[len(labels):]:
        ax.set_visible(False)
    _fit_grid(fig, axes, title=fig.suptitle(title, fontsize=10),
              xlabel=fig.supxlabel("training examples of the class (log scale)", fontsize=9),
              ylabel=fig.supylabel(f"Δ {pc.metric} vs baseline ({pc.view})", fontsize=9))
    _save(fig, path)
    return True


def _thresholds(pc: PerClass) -> tuple[Optional[float], Optional[float]]:
    nums = [re.findall(r"\d+", desc) for _, desc in pc.bins]
    try:
        return float(nums[0][0]), float(nums[2][0])
    except (IndexError, ValueError):
        return None, None


class FigureCache:
    """PNG bytes under <out_dir>/cache/figures/<digest>.png, keyed by everything a figure is drawn from (its data,
    title, this module's code and matplotlib's version): a re-render copies unchanged figures instead of drawing
    them again (drawing is most of a cached re-render)."""

    def __init__(self, out_dir: Path) -> None:
        self.dir = Path(out_dir) / "cache" / "figures"
        import matplotlib

        self.salt = hashlib.sha1(Path(__file__).read_bytes() + matplotlib.__version__.encode()).hexdigest()

    def key(self, data: object, path: Path, *args: object) -> str:
        # the file name says which figure it is (priorshift_ / beta_ / perclass_<task>)
        return hashlib.sha1(repr((self.salt, data, path.name, args)).encode()).hexdigest()

    def fetch(self, key: str, path: Path) -> bool:
        """Copy the cached figure `key` to `path`; False when it is not cached."""
        from benchmark.core.results import atomic_write_bytes

        try:
            atomic_write_bytes(path, (self.dir / f"{key}.png").read_bytes())
            return True
        except OSError:
            return False

    def store(self, key: str, path: Path) -> None:
        from benchmark.core.results import atomic_write_bytes

        try:
            atomic_write_bytes(self.dir / f"{key}.png", path.read_bytes())
        except OSError:
            pass  # a read-only cache: the figure is right, only drawn again next time


FIGURE_WORKERS: Optional[int] = None  # processes drawing figures (None: up to 2 by the CPUs; 1: in this process)


def _draw(fn: Callable[..., bool], data: object, path: Path, args: tuple) -> bool:
    return fn(data, path, *args)


class FigureWriter:
    """Draws the sections' figures (FigureCache first) as they are handed in with `section()`, in worker processes
    where the platform forks: Agg drawing is pure Python (~0.4 s a figure, GIL-bound), so one section's figures
    are drawn on the other core while the next section is analyzed. `close()` waits for them and records each
    drawn figure's file name in its section's `figures`.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d, FigureWriter(Path(d), workers=1) as w:
    ...     w.section("t", SectionShift("t", "top1", ["top1"]))  # nothing to draw: no curve, sweep or per-class
    >>> w.pending
    []
    """

    def __init__(self, out_dir: Path, workers: Optional[int] = None) -> None:
        import os

        self.out_dir = Path(out_dir)
        self.cache = FigureCache(self.out_dir)
        if workers is None:
            workers = FIGURE_WORKERS or min(2, os.cpu_count() or 1)
        n = int(workers)
        if n < 1:
            raise ValueError(f"FigureWriter: workers must be >= 1, got {workers}")
        self.pool = None
        import multiprocessing

        if n > 1 and "fork" in multiprocessing.get_all_start_methods():
            from concurrent.futures import ProcessPoolExecutor

            # matplotlib is imported here, before the fork: workers inherit it instead of importing it (~0.5 s each)
            _figure(1.0, 1.0)
            self.pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("fork"))
            # the first task forks every worker now, while this process has no other threads (forking a process
            # whose threads hold locks can deadlock the child; the analysis starts its threads after this)
            self.pool.submit(int).result()
        self.pending: list[tuple[SectionShift, str, str, str, Any]] = []  # shift, kind, name, cache key, future
        self.order: list[tuple[SectionShift, list[str]]] = []  # each section's figure kinds in drawing order
        self.early: dict[str, Any] = {}  # cache key -> future of a figure started before its section was done

    def submit(self, sh: SectionShift, kind: str, fn: Callable[..., bool], data: object, name: str,
               *args: object) -> None:
        path = self.out_dir / name
        key = self.cache.key(data, path, *args)
        if key in self.early:  # started by per_class_early: the same data, so the same figure
            self.pending.append((sh, kind, name, key, self.early.pop(key)))
        elif self.cache.fetch(key, path):
            sh.figures[kind] = name
        elif self.pool is None:
            if fn(data, path, *args):
                self.cache.store(key, path)
                sh.figures[kind] = name
        else:
            self.pending.append((sh, kind, name, key, self.pool.submit(_draw, fn, data, path, args)))

    def section(self, key: str, sh: SectionShift) -> None:
        """Queue the figures of section `key`: the prior-shift curve, each β sweep, the per-class panel."""
        base = slug(key)
        sh.figures = {}
        names: set[str] = set()
        kinds: list[str] = []
        self.order.append((sh, kinds))
        submit = self.submit

        def queue(kind: str, *a: Any) -> None:
            kinds.append(kind)
            submit(sh, kind, *a)

        queue("curve", curve_png, sh.curve, f"priorshift_{base}.png",
              f"{key}: change of {sh.main_metric} under prior shift")
        for i, sw in enumerate(sh.sweeps):
            name = f"beta_{base}_{slug(sw.method)}_{slug(sw.param)}.png"
            if name in names:  # the same method swept at several fixed settings
                name = name[:-4] + f"_{i}.png"
            names.add(name)
            fixed = ", ".join(f"{k}={v}" for k, v in sw.fixed.items())
            title = f"{key}: {sw.method}" + (f" ({fixed})" if fixed else "") + f", {sh.main_metric} vs {sw.param}"
            queue(f"beta:{sw.method}:{sw.param}:{_fixed_key(sw)}", beta_png, sw, name, sh.main_metric, title)
        if sh.per_class is not None:
            queue("per_class", per_class_png, sh.per_class, *_per_class_file(key, sh.per_class))

    def per_class_early(self, key: str, pc: Optional[PerClass]) -> None:
        """Start drawing section `key`'s per-class panel now, in a worker: it needs the results' per-class values
        only, not the section's analysis, so the last section's figures wait on its curve and sweeps alone."""
        if self.pool is None or pc is None:
            return
        name, title = _per_class_file(key, pc)
        path = self.out_dir / name
        key = self.cache.key(pc, path, title)
        if key not in self.early and not self.cache.fetch(key, path):
            self.early[key] = self.pool.submit(_draw, per_class_png, pc, path, (title,))

    def close(self) -> None:
        """Wait for the queued figures (a drawing error is raised here) and record the drawn ones."""
        try:
            for sh, kind, name, key, fut in self.pending:
                if fut.result():
                    self.cache.store(key, self.out_dir / name)
                    sh.figures[kind] = name
            for sh, kinds in self.order:  # the order of a serial render, whichever finished first
                sh.figures = {k: sh.figures[k] for k in kinds if k in sh.figures}
        finally:
            self.pending, self.order = [], []
            if self.pool is not None:
                self.pool.shutdown()
                self.pool = None

    def __enter__(self) -> "FigureWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _per_class_file(key: str, pc: PerClass) -> tuple[str, str]:
    """The per-class panel's file name and title in section `key`."""
    return f"perclass_{slug(key)}.png", f"{key}: per-class change of {pc.metric} vs training prior"


def _fixed_key(sw: Sweep) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(sw.fixed.items()))
