"""Command line: `python run_benchmark.py [--method SPEC] [--task SPEC] [--seeds N]`, `... report DIR`, `--list`.

All input is validated before anything is trained or written; a bad input is one line on stderr and exit 2.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional, Sequence

from .errors import UserError
from .params import split_specs
from .registry import METHODS, TASKS, get_method, get_task, list_methods, list_tasks, load_plugin

# The offline default grid: every default in one place, each with why.
DEFAULT_TASKS = ["synth-multilabel", "synth-singlelabel"]  # offline, generated, both label types
DEFAULT_METHODS = [
    "oversample:beta=0.5",  # the paper's partial balancing
    "oversample:beta=1",  # full balancing
    "class_weighted",  # the loss-side counterpart of oversampling
    "focal",  # the most common loss-based alternative
]
DEFAULT_SEEDS = 3  # 3 seeds: a usable t-interval (t=4.3 vs 12.7 at 2 seeds) and the grid stays under 2 minutes
DEFAULT_OUT = "runs/default"

EXAMPLES = """examples:
  python run_benchmark.py                                   # offline default grid, then runs/default/report.md
  python run_benchmark.py --list --verbose                  # methods and tasks with their parameters
  python run_benchmark.py --method oversample --task synth-multilabel
  python run_benchmark.py --method oversample,class_weighted,focal --task synth-multilabel,synth-singlelabel --seeds 3
  python run_benchmark.py --method oversample:beta=0.25 --method oversample:beta=0.5 --task synth-multilabel
  python run_benchmark.py report runs/default               # re-render the report from the JSON files
  ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 run_benchmark.py --task synth-multilabel

The baseline 'none' is always run for every task and seed: every leaderboard cell is a change against it.
Finished runs are skipped when the same command is run again (--overwrite redoes them)."""


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
    p.add_argument("--out", "-o", default=DEFAULT_OUT, metavar="DIR", help=f"results directory (default {DEFAULT_OUT})")
    p.add_argument("--overwrite", action="store_true", help="redo runs whose result file already exists")
    p.add_argument("--list", action="store_true", help="list methods and tasks, one line each, and exit")
    p.add_argument("--verbose", "-v", action="store_true", help="with --list: parameters, sources, sizes")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bars")
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
    return p


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


def resolve_grid(args: argparse.Namespace):
    """Task and method instances plus seeds, all validated (nothing is run or written here)."""
    task_specs = split_specs(args.task) if args.task else DEFAULT_TASKS
    method_specs = split_specs(args.method) if args.method else DEFAULT_METHODS
    overrides = {k: v for k, v in (("data", args.data), ("init", args.init), ("model_size", args.model_size))
                 if v is not None}
    tasks = []
    for s in task_specs:
        cls = TASKS.get_class(s.split(":", 1)[0].strip())
        accepted = {k: v for k, v in overrides.items() if k in getattr(cls, "params", {})}
        tasks.append(get_task(s, **accepted))
    for key in overrides:
        if not any(key in t.params for t in tasks):
            flag = "--" + key.replace("_", "-")
            raise UserError(f"{flag} applies to tasks with a '{key}' parameter; none of "
                            f"{', '.join(t.name for t in tasks)} has one (see --list --verbose)")
    methods = [get_method("none")] + [get_method(s) for s in method_specs]
    for t in tasks:
        for m in methods:
            m.check_task(t.multi_label, t.name)
    return tasks, methods, parse_seeds(args.seeds)


def run(args: argparse.Namespace) -> int:
    for plugin in args.plugin:
        load_plugin(plugin)
    if args.list:
        print(list_registry(args.verbose))
        return 0
    tasks, methods, seeds = resolve_grid(args)
    out = Path(args.out)
    check_writable(out)

    from .runner import run_grid  # imports torch and accelerate: only once the input is known to be good

    t0 = time.perf_counter()
    summary = run_grid(tasks, methods, seeds, out, overwrite=args.overwrite, quiet=args.quiet,
                       mixed_precision=args.mixed_precision, report=not args.no_report)
    if summary is not None:
        print(f"{summary} in {time.perf_counter() - t0:.1f} s")
    return 0


def report_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="run_benchmark.py report",
                                description="Re-render report.md (and summary.json) from the JSON results on disk.")
    p.add_argument("run_dir", help="a results directory written by run_benchmark.py (its --out)")
    args = p.parse_args(argv)
    run_dir = Path(args.run_dir)
    if not (run_dir / "results").is_dir():
        raise UserError(f"{run_dir}: no results/ folder here; pass the --out directory of a benchmark run")
    from reports import render_report

    path = render_report(run_dir)
    print(f"wrote {path}")
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
    except KeyboardInterrupt:
        print("interrupted: finished runs are saved; rerun the same command to resume", file=sys.stderr)
        return 130
