"""Command line: `python run_benchmark.py [--method SPEC] [--task SPEC] [--seeds N]`, `... report DIR`, `--list`.

All input is validated before anything is trained or written; a bad input is one line on stderr and exit 2.
"""
from __future__ import annotations

import argparse
import errno
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

from .errors import UserError
from .params import split_specs
from .registry import METHODS, TASKS, get_method, get_task, list_methods, list_tasks, load_plugin
from .sweep import Sweep, entries_from_specs, load_sweep, parse_shard

# The offline default grid: every default in one place, each with why.
# offline: two generated tasks (both label types) and one real dataset that ships with scikit-learn
DEFAULT_TASKS = ["synth-multilabel", "synth-singlelabel", "digits-lt"]
DEFAULT_METHODS = [
    "oversample:beta=0.25",  # weak partial balancing: with 0.5 and 1 (and the baseline as 0) the paper's β curve
    "oversample:beta=0.5",  # the paper's partial balancing
    "oversample:beta=1",  # full balancing
    "class_weighted",  # the loss-side counterpart of oversampling
    "focal",  # the most common loss-based alternative
    "logit_adjust",  # post-hoc: re-scores the baseline's stored logits, costs no training
]
DEFAULT_SEEDS = 3  # 3 seeds: a usable t-interval (t=4.3 vs 12.7 at 2 seeds) and the grid stays under 2 minutes
DEFAULT_OUT = "runs/default"
DISK_ERRORS = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EROFS: "read-only filesystem"}
TRACKER_PACKAGES = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow"}  # --log-with -> pip name

EXAMPLES = """examples:
  python run_benchmark.py                                   # offline default grid, then runs/default/report.md
  python run_benchmark.py --list --verbose                  # methods and tasks with their parameters
  python run_benchmark.py --method oversample --task synth-multilabel
  python run_benchmark.py --method oversample,class_weighted,focal --task synth-multilabel,synth-singlelabel --seeds 3
  python run_benchmark.py --method oversample:beta=0.25 --method oversample:beta=0.5 --task synth-multilabel
  python run_benchmark.py --method oversample:beta=0:1:0.25 --task synth-multilabel --seeds 0,1,2   # a range
  python run_benchmark.py --sweep sweeps/synth.toml                 # a sweep file (tasks, grids, seeds)
  python run_benchmark.py --sweep sweeps/paper.toml --shard 3/8     # the 4th of 8 parts (e.g. a Slurm array)
  python run_benchmark.py report runs/default               # re-render the report from the JSON files
  python run_benchmark.py report runs/default --views sade --eval-prior my_prior.csv --publish site/
  ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 run_benchmark.py --task synth-multilabel

The baseline 'none' is always run for every task and seed: every leaderboard cell is a change against it.
Finished runs are skipped when the same command is run again (--overwrite redoes them): a killed sweep
resumes where it stopped, and processes sharing one --out never run the same configuration twice."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="run_benchmark.py",
        description="balancebench: does class balancing help on YOUR evaluation distribution? Trains every method "
                    "and the no-balancing baseline on each task and reports the metric change per evaluation view.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", "-m", action="append", metavar="SPEC",
                   help="method spec 'name[:key=value,...]'; repeat or comma-separate (default: the offline grid)")
    p.add_argument("--task", "-t", action="append", metavar="SPEC",
                   help="task spec 'name[:key=value,...]'; repeat or comma-separate (default: the offline grid)")
    p.add_argument("--seeds", default=None, metavar="N|LIST",
                   help=f"number of seeds (0..N-1) or a comma list like 0,3,7 (default {DEFAULT_SEEDS})")
    p.add_argument("--sweep", metavar="FILE.toml", help="a sweep file naming tasks, method grids, seeds and task "
                   "overrides (see sweeps/); replaces --task/--method")
    p.add_argument("--shard", metavar="I/N", help="run the I-th of N deterministic parts of the grid (0-based, e.g. "
                   "$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT); all parts may share one --out")
    p.add_argument("--out", "-o", default=None, metavar="DIR",
                   help=f"results directory (default: the sweep file's `out`, else {DEFAULT_OUT})")
    p.add_argument("--overwrite", action="store_true", help="redo runs whose result file already exists")
    p.add_argument("--list", action="store_true", help="list methods and tasks, one line each, and exit")
    p.add_argument("--verbose", "-v", action="store_true", help="with --list: parameters, sources, sizes")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
    p.add_argument("--log-with", choices=sorted(TRACKER_PACKAGES), default=None,
                   help="also log each run's loss and final metrics with this accelerate tracker (under --out)")
    p.add_argument("--no-report", action="store_true", help="do not render report.md at the end")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE",
                   help="a .py file registering extra methods/tasks (repeatable)")
    p.add_argument("--data", metavar="PATH|HUB_ID", help="data location for tasks with a `data` parameter "
                   "(a local directory / files, or a hub dataset id); same as --task NAME:data=...")
    p.add_argument("--init", metavar="INIT", help="model initialization for tasks with an `init` parameter "
                   "(e.g. audioset: imagenet | scratch | hub:<id>)")
    p.add_argument("--model-size", metavar="SIZE", help="model size for tasks with a `model_size` parameter "
                   "(e.g. tiny for CPU runs and tests)")
    p.add_argument("--mixed-precision", choices=("no", "fp16", "bf16"), default=None,
                   help="override accelerate's mixed precision (default: accelerate's config / launch flags)")
    add_report_options(p)
    return p


def add_report_options(p: argparse.ArgumentParser) -> None:
    """Options of the prior-shift analysis; given to a run or to `report`, they are saved with the run dir."""
    g = p.add_argument_group("evaluation under prior shift (computed from the stored scores, saved in "
                             "<out>/report_options.json)")
    g.add_argument("--views", action="append", metavar="LIST",
                   help="extra evaluation distributions for the report: forward<ρ>, backward<ρ>, uniform, "
                        "train_prior, gamma<γ>, or 'sade' for forward50..2, uniform, backward2..50 (comma list)")
    g.add_argument("--eval-prior", action="append", metavar="[TASK=]FILE",
                   help="a user evaluation prior: CSV 'class,probability' or 'class,count' (class by index or "
                        "name); TASK= limits it to one task; shown as distribution user:<file stem>")
    g.add_argument("--bootstrap", type=int, default=None, metavar="B",
                   help="paired bootstrap resamples of the evaluation examples per distribution (default "
                        "100; 0: intervals over seeds only)")
    g.add_argument("--shot-bins", default=None, metavar="MANY,FEW",
                   help="per-class bins: many > MANY, few < FEW training examples (default 100,20)")


def report_options(args: argparse.Namespace, out: Path, tasks: Optional[list] = None):
    """The prior-shift options for `out`: the saved ones updated by the flags given (validated here), or None
    when no flag was given (the saved ones, if any, apply unchanged)."""
    given = [args.views, args.eval_prior, args.bootstrap, args.shot_bins]
    if all(v is None for v in given):
        return None
    from reports.priorshift import load_options, prior_entry, priors_for

    from .views import expand_view_names

    opts = load_options(out)
    if args.views is not None:
        opts.views = expand_view_names(split_specs(args.views))
    if args.bootstrap is not None:
        if args.bootstrap < 0 or args.bootstrap == 1:
            raise UserError(f"--bootstrap {args.bootstrap}: give 0 (seeds only) or at least 2 resamples (e.g. 100)")
        opts.bootstrap = args.bootstrap
    if args.shot_bins is not None:
        try:
            many, few = (int(x) for x in args.shot_bins.split(","))
        except ValueError:
            raise UserError(f"--shot-bins {args.shot_bins!r}: give two integers MANY,FEW such as 100,20") from None
        if not 0 < few <= many:
            raise UserError(f"--shot-bins {args.shot_bins}: need 0 < FEW <= MANY (e.g. 100,20)")
        opts.shot_bins = (many, few)
    if args.eval_prior is not None:
        opts.priors = [prior_entry(spec) for spec in args.eval_prior]
        names = [p["name"] for p in opts.priors]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise UserError(f"--eval-prior: two files named '{dup[0]}'; rename one (the file stem names the prior)")
        for task in tasks or []:  # resolve against every task of the grid now, before any training
            priors_for(opts, task.name, task.class_names)
        known = {t.name for t in tasks or []}
        for p in opts.priors:
            if tasks is not None and p["task"] is not None and p["task"] not in known:
                raise UserError(f"--eval-prior {p['task']}={p['path']}: no task '{p['task']}' in this grid "
                                f"({', '.join(sorted(known))})")
    return opts


def parse_seeds(text: Optional[str]) -> list[int]:
    if text is None:
        return list(range(DEFAULT_SEEDS))
    text = text.strip()
    try:
        if "," in text:
            seeds = [int(s) for s in text.split(",") if s.strip()]
        else:
            n = int(text)
            if n < 1:
                raise UserError(f"--seeds {text}: need at least 1 seed; write --seeds 1 (or a list like 0,1,2)")
            seeds = list(range(n))
    except ValueError:
        raise UserError(f"--seeds {text!r}: give a count (3) or a comma list of seeds (0,1,2)") from None
    if not seeds or any(s < 0 for s in seeds):
        raise UserError(f"--seeds {text!r}: seeds must be non-negative integers")
    return sorted(set(seeds))


def check_writable(out: Path) -> None:
    """Fail before any work if `out` cannot be written (nothing is left behind when it cannot)."""
    probe = out
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"--out {out}: {probe} is a file, not a directory; choose another --out")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"--out {out}: {probe} is not writable; choose a writable directory with --out")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write there ({exc.strerror}); choose a writable directory") from None


def list_registry(verbose: bool) -> str:
    lines = ["methods:"]
    for name in list_methods():
        cls = METHODS.get_class(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        kinds = "/".join(k for k, ok in (("multi", cls.multi_label), ("single", cls.single_label)) if ok)
        lines.append(f"  {name:<22} {doc}" + (f"  [{kinds}-label]" if verbose else ""))
        if verbose:
            if cls.paper:
                lines.append(f"  {'':<22}   paper: {cls.paper}")
            for key, prm in cls.params.items():
                lines.append(f"  {'':<22}   {key}: {prm.describe()}  {prm.help}")
    lines.append("tasks:")
    for name in list_tasks():
        cls = TASKS.get_class(name)
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else cls.description
        kind = "multi-label" if cls.multi_label else "single-label"
        lines.append(f"  {name:<22} {cls.description or doc}  [{kind}, main metric {cls.main_metric}]")
        if verbose:
            for label, value in (("source", cls.source), ("license", cls.license), ("size", cls.size),
                                 ("GPU time", cls.gpu_time)):
                if value:
                    lines.append(f"  {'':<22}   {label}: {value}")
            for key, prm in cls.params.items():
                lines.append(f"  {'':<22}   {key}: {prm.describe()}  {prm.help}")
    return "\n".join(lines)


def resolve_grid(args: argparse.Namespace, sweep: Optional[Sweep] = None):
    """Task and method instances plus seeds, all validated (nothing is run or written here).

    Specs may hold ranges (`oversample:beta=0:1:0.25`); a sweep file replaces --task/--method, and its seeds and
    [overrides] apply unless --seeds / --data / --init / --model-size say otherwise.
    """
    if sweep is not None and (args.task or args.method):
        raise UserError(f"--sweep {sweep.path} names the tasks and methods; drop --task/--method (or drop --sweep)")
    if sweep is not None:
        task_entries, method_entries = sweep.tasks, sweep.methods
    else:
        task_entries = entries_from_specs(split_specs(args.task) if args.task else DEFAULT_TASKS)
        method_entries = entries_from_specs(split_specs(args.method) if args.method else DEFAULT_METHODS)
    flags = {k: v for k, v in (("data", args.data), ("init", args.init), ("model_size", args.model_size))
             if v is not None}
    overrides = {**(sweep.overrides if sweep is not None else {}), **flags}
    tasks = []
    for e in task_entries:
        cls = TASKS.get_class(e.name)
        accepted = {k: v for k, v in overrides.items() if k in getattr(cls, "params", {})}
        tasks.append(get_task(e.name, **{**e.params, **accepted}))
    if not tasks:
        where = f"{sweep.path} lists no tasks; add a [[tasks]] table" if sweep is not None else "no tasks"
        raise UserError(f"the grid has zero runs: {where} (see --list for task names)")
    for key in overrides:
        if not any(key in t.params for t in tasks):
            flag = "--" + key.replace("_", "-") if key in flags else f"[overrides] {key} in {sweep.path}"
            raise UserError(f"{flag} applies to tasks with a '{key}' parameter; none of "
                            f"{', '.join(t.name for t in tasks)} has one (see --list --verbose)")
    methods = [get_method("none")] + [get_method(e.name, **e.params) for e in method_entries]
    for m in methods:
        # a method that fits none of the tasks is an error; one that fits some is skipped on the others
        errors = []
        for t in tasks:
            try:
                m.check_task(t.multi_label, t.name)
            except UserError as exc:
                errors.append(exc)
        if len(errors) == len(tasks):
            raise errors[0]
        if errors and os.environ.get("RANK", "0") == "0":
            for exc in errors:
                print(f"note: skipping: {exc}", file=sys.stderr)
    if args.seeds is None and sweep is not None and sweep.seeds is not None:
        seeds = sweep.seeds
    else:
        seeds = parse_seeds(args.seeds)
    return tasks, methods, seeds


def check_tracker(name: Optional[str]) -> None:
    """--log-with needs its tracker's package; say which to install before anything runs."""
    if name is None:
        return
    import importlib.util

    pkg = TRACKER_PACKAGES[name]
    if importlib.util.find_spec(pkg) is None:
        raise UserError(f"--log-with {name} needs the {pkg} package: pip install {pkg} (or drop --log-with)")


def prune_empty(root: Path) -> None:
    """Remove empty directories under `root` and `root` itself if empty (an aborted command leaves nothing)."""
    if not root.is_dir():
        return
    for d in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
        try:
            d.rmdir()
        except OSError:
            pass
    try:
        root.rmdir()
    except OSError:
        pass


def _interrupt_on_sigterm() -> None:
    """SIGTERM (a scheduler's time limit or preemption) unwinds like Ctrl-C: claims are released, so a requeued
    job on another machine does not wait for them to go stale."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        def handler(signum, frame):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, handler)


def run(args: argparse.Namespace) -> int:
    for plugin in args.plugin:
        load_plugin(plugin)
    if args.list:
        print(list_registry(args.verbose))
        return 0
    sweep = load_sweep(args.sweep) if args.sweep else None
    shard = parse_shard(args.shard)
    tasks, methods, seeds = resolve_grid(args, sweep)
    check_tracker(args.log_with)
    out = Path(args.out or (sweep.out if sweep is not None and sweep.out else DEFAULT_OUT))

    # imports torch and accelerate: only once the input is known to be good
    from .runner import check_results_dir, plan, run_grid

    check_results_dir(out)
    if not plan(tasks, methods, seeds):
        raise UserError("the grid has zero runs; give at least one task and one seed")
    if shard is not None and not plan(tasks, methods, seeds, shard):
        n = len(plan(tasks, methods, seeds))
        print(f"--shard {args.shard}: this part of the grid is empty (the grid has {n} runs); nothing to do",
              file=sys.stderr)
        return 0
    created = [d for d in (out, *out.parents) if not d.exists()]
    options = report_options(args, out, tasks)
    check_writable(out)
    if options is not None:
        from reports.priorshift import save_options

        save_options(out, options)
    _interrupt_on_sigterm()
    t0 = time.perf_counter()
    try:
        summary = run_grid(tasks, methods, seeds, out, overwrite=args.overwrite, quiet=args.quiet,
                           mixed_precision=args.mixed_precision, report=not args.no_report, shard=shard,
                           log_with=args.log_with)
    except BaseException:
        for d in created:  # innermost first: what this command created and left empty goes
            prune_empty(d)
        raise
    if summary is not None:
        print(f"{summary} in {time.perf_counter() - t0:.1f} s")
    return 0


def report_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="run_benchmark.py report",
                                description="Re-render report.md, summary.json and the figures from the results on disk (result JSON "
                                            "and stored scores; no GPU, no training).")
    p.add_argument("run_dir", help="a results directory written by run_benchmark.py (its --out)")
    p.add_argument("--publish", metavar="DIR", help="also write a self-contained folder: README.md (the report), "
                   "its PNG figures, results.csv (run × distribution × metric) and summary.json")
    add_report_options(p)
    args = p.parse_args(argv)
    run_dir = Path(args.run_dir)
    if not (run_dir / "results").is_dir():
        raise UserError(f"{run_dir}: no results/ folder here; pass the --out directory of a benchmark run")
    if args.publish is not None and Path(args.publish).exists() and not Path(args.publish).is_dir():
        raise UserError(f"--publish {args.publish}: a file is in the way; choose a folder name")
    from reports import render_report
    from reports.priorshift import save_options

    options = report_options(args, run_dir)
    if options is not None:
        save_options(run_dir, options)
    path = render_report(run_dir, options=options, publish=args.publish)
    print(f"wrote {path}" + (f" and {Path(args.publish) / 'README.md'}" if args.publish else ""))
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] == "report":
            return report_main(argv[1:])
        return run(build_parser().parse_args(argv))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno not in DISK_ERRORS:
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"error: {DISK_ERRORS[exc.errno]}{where}; {os.strerror(exc.errno).lower()}: free space or choose another "
              f"--out, then rerun the same command (finished runs are kept)", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: finished runs are saved; rerun the same command to resume", file=sys.stderr)
        return 130
