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

from .core.errors import UserError
from .params import split_specs
from .registry import METHODS, TASKS, get_method, get_task, list_methods, list_tasks, load_plugin
from .sweep import Sweep, check_seed_count, check_seeds, entries_from_specs, load_sweep, parse_shard

# The offline default grid: every default in one place, each with why.
# offline: two generated tasks (both label types) and one real dataset that ships with scikit-learn
# the single-label tasks carry a hidden deployment set drawn from the backward10 prior: the report estimates its
# prior from the unlabeled scores, answers for it, and checks the estimate against the truth
DEFAULT_TASKS = ["synth-multilabel", "synth-singlelabel:deploy_prior=backward10", "digits-lt:deploy_prior=backward10"]
DEFAULT_METHODS = [
    "oversample:beta=0.25",  # weak partial balancing: with 0.5 and 1 (and the baseline as 0) the paper's β curve
    "oversample:beta=0.5",  # the paper's partial balancing
    "oversample:beta=1",  # full balancing
    "class_weighted",  # the loss-side counterpart of oversampling
    "focal",  # the most common loss-based alternative
    "logit_adjust",  # post-hoc: re-scores the baseline's stored logits, costs no training
    "prior_adapt",  # post-hoc: re-scores the baseline to the estimated deployment prior (free correction vs retraining)
]
# A per-class shift of the logits cannot reorder a class's examples, so on multi-label tasks (ranking metrics
# only: mAP, AUC, d') post-hoc logit adjustment equals the baseline exactly: the default grid runs it on
# single-label tasks only (an explicit --method still runs it anywhere; the report names such methods once).
DEFAULT_SINGLE_LABEL_ONLY = {"logit_adjust", "prior_adapt"}  # prior_adapt: a per-class shift too
DEFAULT_SEEDS = 3  # 3 seeds: a usable t-interval (t=4.3 vs 12.7 at 2 seeds) and the grid stays under 2 minutes
DEFAULT_OUT = "runs/default"
# exit statuses (also in --help and README "Sweeps, resuming, clusters")
EXIT_OK = 0  # every run of the grid finished with status ok
EXIT_RUNS_FAILED = 1  # the grid went through but some runs failed (status 'failed', listed in the report)
EXIT_USAGE = 2  # bad input: a one-line error, nothing written
EXIT_ENVIRONMENT = 3  # stopped by the machine (disk full, quota, read-only): finished runs kept, rerun to resume
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM: finished runs kept, rerun to resume
DISK_ERRORS = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded", errno.EROFS: "read-only filesystem"}
MAX_AUTO_WORKERS = 4  # default --workers cap: each process holds torch and one task's data (~0.4 GB)
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
  python run_benchmark.py evaluate preds/ --out runs/mine    # the same report from your own models' predictions
  ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 run_benchmark.py --task synth-multilabel

exit status: 0 every run ok; 1 some runs failed (the last line says how many; reasons in the report and
logs/) or an unexpected crash (with a traceback); 2 bad input (one line, nothing written); 3 disk full, quota
or read-only --out (finished runs kept: rerun to resume); 130 interrupted (Ctrl-C, SIGTERM; rerun to resume).

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
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local processes sharing the grid, each running whole runs (default: $BALANCEBENCH_WORKERS, "
                        f"else one per core, at most {MAX_AUTO_WORKERS}, when every task trains a small one-thread "
                        "model on CPU and no GPU, accelerate launch, --overwrite or --log-with is involved; else 1)")
    p.add_argument("--log-with", choices=sorted(TRACKER_PACKAGES), default=None,
                   help="also log each run's loss and final metrics with this accelerate tracker (under --out)")
    p.add_argument("--no-report", action="store_true", help="do not render report.md at the end")
    p.add_argument("--plugin", action="append", default=[], metavar="FILE",
                   help="a .py file registering extra methods/tasks (repeatable)")
    p.add_argument("--data", metavar="PATH|HUB_ID", help="data location for tasks with a `data` parameter "
                   "(a local directory / files, or a hub dataset id); same as --task NAME:data=...")
    p.add_argument("--deploy", metavar="PATH|HUB_ID", help="unlabeled deployment examples for tasks with a `deploy` "
                   "parameter (feature-vector tasks: .npy/.npz/.csv; CIFAR-LT: (N, 32, 32, 3) uint8 .npy/.npz or "
                   "python batches; AST audio tasks: a directory of wav/flac files, "
                   "AudioSet-schema parquet or a hub id; labels ignored); the report estimates their class prior "
                   "and answers for it; same as --task NAME:deploy=... (generated sets: NAME:deploy_prior=backward10)")
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
    g.add_argument("--reset-options", action="store_true",
                   help="forget the saved options (report_options.json): start from the defaults, then apply "
                        "the flags given with it")


def report_options(args: argparse.Namespace, out: Path, tasks: Optional[list] = None):
    """The prior-shift options for `out`: the saved ones (the defaults with --reset-options) updated by the flags
    given, or None when neither was given (the saved ones then apply unchanged).

    Every user prior, given now or saved by an earlier command, is checked against `tasks` (objects with `name`
    and `class_names`: the grid's tasks, or those of a run directory's results) before anything is saved or run;
    an error about a saved one names the file and --reset-options.
    """
    from reports.options import OPTIONS_FILE, Options, load_options

    from .core.priors import prior_entry, priors_for
    from .core.views import expand_view_names

    given = [args.views, args.eval_prior, args.bootstrap, args.shot_bins]
    reset = bool(getattr(args, "reset_options", False))
    opts = Options() if reset else load_options(out)
    saved_priors = bool(opts.priors) and args.eval_prior is None
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
        opts.shot_bins, opts.shot_bins_given = (many, few), True
    if args.eval_prior is not None:
        opts.priors = [prior_entry(spec) for spec in args.eval_prior]
        names = [p["name"] for p in opts.priors]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise UserError(f"--eval-prior: two files named '{dup[0]}'; rename one (the file stem names the prior)")
        known = {t.name for t in tasks or []}
        for p in opts.priors:
            if tasks is not None and p["task"] is not None and p["task"] not in known:
                raise UserError(f"--eval-prior {p['task']}={p['path']}: no task '{p['task']}' here "
                                f"({', '.join(sorted(known)) or 'no tasks'})")
    for task in tasks or []:  # resolve against every task now, before any training or saving
        try:
            priors_for(opts.priors, task.name, task.class_names)
        except UserError as exc:
            if not saved_priors:
                raise
            raise UserError(f"{exc} (this prior is saved in {Path(out) / OPTIONS_FILE} by an earlier command: add "
                            f"--reset-options to drop the saved report options, or give --eval-prior again)") from None
    if not reset and all(v is None for v in given):
        return None
    return opts


def store_report_options(out: Path, options, args: argparse.Namespace) -> None:
    """Save what `report_options` returned; --reset-options alone removes the saved options."""
    from reports.options import OPTIONS_FILE, save_options

    if options is None:
        return
    flags = [args.views, args.eval_prior, args.bootstrap, args.shot_bins]
    if getattr(args, "reset_options", False) and all(v is None for v in flags):
        (Path(out) / OPTIONS_FILE).unlink(missing_ok=True)
    else:
        save_options(out, options)


def run_dir_tasks(run_dir: Path) -> list:
    """The tasks (name, class names) of the results in `run_dir`, for checking report options against them."""
    from types import SimpleNamespace

    from .core.results import iter_results

    seen: dict = {}
    for _, res in iter_results(run_dir):
        info = (res or {}).get("task_info") or {}
        if isinstance(info.get("name"), str) and isinstance(info.get("class_names"), list):
            seen.setdefault((info["name"], tuple(map(str, info["class_names"]))), None)
    return [SimpleNamespace(name=name, class_names=list(classes)) for name, classes in seen]


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
            check_seed_count(n, f"--seeds {text}")
            seeds = list(range(n))
    except ValueError:
        raise UserError(f"--seeds {text!r}: give a count (3) or a comma list of seeds (0,1,2)") from None
    if not seeds or any(s < 0 for s in seeds):
        raise UserError(f"--seeds {text!r}: seeds must be non-negative integers")
    return check_seeds(seeds, f"--seeds {text}")


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
    shown: set[str] = set()
    for name in list_tasks():
        cls = TASKS.get_class(name)
        members = [n for n in list_tasks() if TASKS.get_class(n).group == cls.group] if cls.group else [name]
        if verbose and len(members) > 1:
            if cls.group not in shown:  # the family once, its members one line each
                shown.add(cls.group)
                lines += _task_lines(cls, cls.group, f"({len(members)} tasks) {_family_doc(cls)}", details=True)
                lines += [f"  {'':<22}   {n}: {TASKS.get_class(n).description}" for n in members]
            continue
        lines += _task_lines(cls, name, cls.description or _first_line(cls.__doc__), details=verbose)
    return "\n".join(lines)


def _first_line(doc: Optional[str]) -> str:
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""


def _family_doc(cls: type) -> str:
    """What a task group is: the first docstring line of the module that defines it (one file per task family)."""
    return _first_line(sys.modules[cls.__module__].__doc__) or _first_line(cls.__doc__)


def _task_lines(cls: type, name: str, text: str, details: bool) -> list[str]:
    kind = "multi-label" if cls.multi_label else "single-label"
    lines = [f"  {name:<22} {text}  [{kind}, main metric {cls.main_metric}]"]
    if details:
        for label, value in (("source", cls.source), ("license", cls.license),
                             ("size", "" if cls.group else cls.size), ("GPU time", cls.gpu_time)):
            if value:
                lines.append(f"  {'':<22}   {label}: {value}")
        lines += [f"  {'':<22}   {key}: {prm.describe()}  {prm.help}" for key, prm in cls.params.items()]
    return lines


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
        for value in args.method or []:  # else only the baseline would run, and exit 0
            if not split_specs([value]):
                raise UserError(f"--method {value!r} names no method; give e.g. --method oversample (see --list), "
                                f"or leave --method out for the default grid")
        task_entries = entries_from_specs(split_specs(args.task) if args.task else DEFAULT_TASKS)
        method_entries = entries_from_specs(split_specs(args.method) if args.method else DEFAULT_METHODS)
    flags = {k: v for k, v in (("data", args.data), ("init", args.init), ("model_size", args.model_size),
                               ("deploy", getattr(args, "deploy", None))) if v is not None}
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
    # the seeds are checked before any note below is printed: a bad input is one line
    if args.seeds is None and sweep is not None and sweep.seeds is not None:
        seeds = sweep.seeds
    else:
        seeds = parse_seeds(args.seeds)
    if sweep is None and not args.method:
        ml_tasks = [t.name for t in tasks if t.multi_label]
        for m in [m for m in methods if m.name in DEFAULT_SINGLE_LABEL_ONLY]:
            m.multi_label = False  # this instance only: check_task / grid_specs skip multi-label tasks
            if ml_tasks and os.environ.get("RANK", "0") == "0":
                print(f"note: the default grid runs '{m.name}' on single-label tasks only: on "
                      f"{', '.join(ml_tasks)} it would equal the baseline exactly (ranking metrics)", file=sys.stderr)
        if all(t.multi_label for t in tasks):
            methods = [m for m in methods if m.name not in DEFAULT_SINGLE_LABEL_ONLY]
    for m in methods:
        if m.name in DEFAULT_SINGLE_LABEL_ONLY and not m.multi_label and sweep is None and not args.method:
            continue  # said above
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


def workers_given(args: argparse.Namespace) -> Optional[int]:
    """--workers, else $BALANCEBENCH_WORKERS (the test suite sets 1: its tiny grids are not worth a second
    interpreter), else None (decided by `local_workers`); validated."""
    value, where = args.workers, f"--workers {args.workers}"
    if value is None and os.environ.get("BALANCEBENCH_WORKERS", "").strip():
        raw = os.environ["BALANCEBENCH_WORKERS"].strip()
        where = f"BALANCEBENCH_WORKERS={raw}"
        try:
            value = int(raw)
        except ValueError:
            raise UserError(f"{where}: give a number of processes such as 1") from None
    if value is None:
        return None
    if value < 1:
        raise UserError(f"{where}: give 1 or more processes")
    if value > 1 and (args.overwrite or int(os.environ.get("WORLD_SIZE", "1")) > 1):
        why = "--overwrite redoes runs older than each process's start" if args.overwrite else \
            "accelerate launch already starts the processes"
        raise UserError(f"{where}: several local processes cannot share this grid ({why}); use --workers 1")
    return value


def local_workers(args: argparse.Namespace, tasks: list) -> int:
    """How many local processes share the grid: `--workers`, else one per core (at most MAX_AUTO_WORKERS) when
    runs are small and independent: every task trains a one-thread model on CPU (`Task.cpu_threads == 1`), there
    is no GPU and no `accelerate launch`, and neither --overwrite (its cut-off time is per process) nor --log-with
    (one tracker per process) is given. Results do not depend on it: each run is seeded and single-threaded."""
    given = workers_given(args)
    if given is not None:
        return given
    import torch

    if (int(os.environ.get("WORLD_SIZE", "1")) > 1 or torch.cuda.is_available() or torch.backends.mps.is_available()
            or args.overwrite or args.log_with or any(t.cpu_threads != 1 for t in tasks)):
        return 1
    return max(1, min(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1,
                      MAX_AUTO_WORKERS))


def _die_with_parent() -> None:
    """Run in a helper before it starts (Linux): it gets SIGTERM when this process dies, even by SIGKILL, so a
    killed command leaves no process behind that would finish the grid (its claims are released on SIGTERM)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # no prctl: the helper outlives a SIGKILLed parent, its claims go stale
        pass


class Helper:
    """A helper process running this same command on the same --out (see `start_helpers`)."""

    def __init__(self, argv: Sequence[str]) -> None:
        import subprocess

        self.log = tempfile.TemporaryFile(mode="w+")  # its stderr: shown only if it fails
        cmd = [sys.executable, "-m", "benchmark.cli", *argv, "--workers", "1", "--no-report", "--quiet"]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self.log,
                                     preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)

    def wait(self) -> int:
        """Its exit code, once it has exited; a crash (not a failed run) is reported in one line."""
        code = self.proc.wait()
        self.log.seek(0)
        lines = self.log.read().splitlines()
        for line in lines:  # what it said about the runs it took (a redone corrupt result, a failed run) is kept
            if line.startswith(("warning: ", "run failed: ")):
                print(line, file=sys.stderr)
        # an uncaught exception exits with 1, as "some runs failed" does: the traceback in its log tells them apart
        crashed = code == EXIT_RUNS_FAILED and any(line.startswith("Traceback (most recent call") for line in lines)
        if code not in (EXIT_OK, EXIT_RUNS_FAILED) or crashed:
            last = ([line for line in lines if line.strip()] or ["no output"])[-1]
            print(f"warning: helper process {self.proc.pid} exited with code {code} ({last.strip()}); this "
                  f"process runs what it left", file=sys.stderr)
        self.log.close()
        return code

    def stop(self) -> None:
        """SIGTERM (unwinds like Ctrl-C there: its claims are released), then reap it."""
        import subprocess

        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # its claims go stale and are taken over by the next run
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def start_helpers(n: int, argv: Sequence[str], into: list[Helper]) -> list[Helper]:
    """`n` more processes running this same command on the same --out, quietly and without the report: the claim
    files (benchmark.claims) give each run to exactly one process, and `run_grid` waits for them. Each is appended
    to `into` as soon as it starts, so a later failed start still lets the caller stop the earlier ones."""
    for _ in range(max(n, 0)):
        into.append(Helper(argv))
    return into


def run(args: argparse.Namespace, argv: Sequence[str] = ()) -> int:
    """The `run_benchmark.py [options]` command; `argv` (its arguments) is what helper processes are started with."""
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
    workers_given(args)  # checked before torch is imported, as every argument
    options = report_options(args, out, tasks)
    created = [d for d in (out, *out.parents) if not d.exists()]
    check_writable(out)
    helpers: list = []
    try:
        # imports torch and accelerate: only once the arguments are known to be good (their errors stay fast)
        from .runner import check_results_dir, plan, run_grid

        check_results_dir(out)
        if not plan(tasks, methods, seeds):
            raise UserError("the grid has zero runs; give at least one task and one seed")
        if shard is not None and not plan(tasks, methods, seeds, shard):
            n = len(plan(tasks, methods, seeds))
            print(f"--shard {args.shard}: this part of the grid is empty (the grid has {n} runs); nothing to do",
                  file=sys.stderr)
            for d in created:
                prune_empty(d)
            return 0
        store_report_options(out, options, args)
        _interrupt_on_sigterm()
        t0 = time.perf_counter()
        start_helpers(local_workers(args, tasks) - 1, argv, into=helpers)
        summary = run_grid(tasks, methods, seeds, out, overwrite=args.overwrite, quiet=args.quiet,
                           mixed_precision=args.mixed_precision, shard=shard, log_with=args.log_with,
                           helpers=helpers)
    except BaseException:
        for helper in helpers:
            helper.stop()
        for d in created:  # innermost first: what this command created and left empty goes
            prune_empty(d)
        raise
    if summary is None:  # the other ranks of a multi-process launch
        return EXIT_OK
    text = str(summary)
    if not args.no_report:
        from reports import render_report

        text += f"\nreport: {render_report(out)}"
    print(f"{text} in {time.perf_counter() - t0:.1f} s")
    failed = summary.failed_line()
    if failed is not None:
        print(failed)
    return EXIT_OK if failed is None else EXIT_RUNS_FAILED


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

    options = report_options(args, run_dir, run_dir_tasks(run_dir))
    store_report_options(run_dir, options, args)
    path = render_report(run_dir, options=options, publish=args.publish)
    print(f"wrote {path}" + (f" and {Path(args.publish) / 'README.md'}" if args.publish else ""))
    return 0


DEFAULT_EVALUATE_OUT = "runs/evaluate"


def evaluate_main(argv: Sequence[str]) -> int:
    """`evaluate PATH...`: the report from prediction files written by any training code (no torch import)."""
    p = argparse.ArgumentParser(
        prog="run_benchmark.py evaluate",
        description="Build the full report (leaderboards per evaluation view with CIs, prior-shift curve, β on "
                    "validation, per-class analysis) from prediction files: one .npz per trained model with "
                    "pool_scores (n, C), pool_labels and metadata task / method / seed (see README, 'Evaluate "
                    "predictions from your own training code'). A balancebench run's own results/ are accepted too.",
        epilog="example: python run_benchmark.py evaluate preds/ --out runs/mine --baseline erm --views sade")
    p.add_argument("paths", nargs="+", metavar="PATH", help=".npz prediction files, or directories (every .npz "
                   "under them)")
    p.add_argument("--out", default=DEFAULT_EVALUATE_OUT,
                   help=f"where results/, report.md and summary.json go (default {DEFAULT_EVALUATE_OUT})")
    p.add_argument("--baseline", default="none", metavar="SPEC",
                   help="the method spec of each task's baseline, every other method's Δ is against it "
                        "(default: none)")
    p.add_argument("--train-counts", action="append", default=[], metavar="[TASK=]FILE",
                   help="training examples per class, CSV 'class,count' (class by index or name), for files "
                        "without a train_counts array; TASK= limits it to one task")
    p.add_argument("--publish", metavar="DIR", help="also write a self-contained folder: README.md (the report), "
                   "its PNG figures, results.csv and summary.json")
    p.add_argument("--no-report", action="store_true", help="write the result records only (render later with "
                   "`run_benchmark.py report OUT`)")
    add_report_options(p)
    args = p.parse_args(argv)
    out = Path(args.out)
    if args.publish is not None and Path(args.publish).exists() and not Path(args.publish).is_dir():
        raise UserError(f"--publish {args.publish}: a file is in the way; choose a folder name")
    from .predictions import MANIFEST, load_predictions, write_results

    t0 = time.perf_counter()
    tasks = load_predictions(args.paths, baseline=args.baseline, train_counts=args.train_counts)
    inside = next((f.path for t in tasks.values() for f in t.files
                   if (out / "results").resolve() in f.path.parents), None)
    if inside is not None:
        raise UserError(f"--out {out}: {inside} is one of its result files; choose another --out for the evaluation")
    if (out / "results").is_dir() and not (out / MANIFEST).is_file():
        raise UserError(f"--out {out}: holds results of a benchmark run; choose an empty or new --out (evaluate "
                        f"replaces what it wrote there before, nothing else)")
    options = report_options(args, out, list(tasks.values()))
    created = [d for d in (out, *out.parents) if not d.exists()]
    check_writable(out)
    try:
        paths = write_results(tasks, out)
    except BaseException:
        for d in created:  # innermost first: what this command created and left empty goes
            prune_empty(d)
        raise
    n_files = sum(len(t.files) for t in tasks.values())
    print(f"evaluated {n_files} prediction files of {len(tasks)} tasks: {len(paths)} results in {out / 'results'} "
          f"({time.perf_counter() - t0:.1f} s)")
    store_report_options(out, options, args)
    if args.no_report:
        return 0
    from reports import render_report

    path = render_report(out, options=options, publish=args.publish)
    print(f"wrote {path}" + (f" and {Path(args.publish) / 'README.md'}" if args.publish else ""))
    return 0


NEGATIVE_VALUE_FLAGS = ("--shard", "--seeds")  # argparse reads "-1/2" after them as an option, not a value


def _attach_negative_values(argv: list[str]) -> list[str]:
    """`--shard -1/2` as `--shard=-1/2`, so that the value reaches its own check and its one-line error."""
    import re

    out: list[str] = []
    for arg in argv:
        if out and out[-1] in NEGATIVE_VALUE_FLAGS and re.fullmatch(r"-\d[\d,/ ]*", arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


# Memory settings for the report's metric kernel, which frees and reallocates multi-megabyte arrays thousands of
# times from two threads per process (measured on the default grid's first render, 2 cores, 3 renders each):
# * glibc malloc keeps freed memory for reuse instead of handing every large block back to the kernel and faulting
#   fresh zeroed pages in on the next one (the analysis: system CPU 2.0 -> 1.2 s, wall 9.6 -> 9.1 s). Values: the
#   largest mmap threshold glibc accepts (32 MiB), up to 256 MiB kept free.
# * numpy does not ask for transparent huge pages: with this kernel's `defrag=madvise` each such fault compacts
#   memory synchronously (system CPU 1.1-2.0 -> 0.8-1.0 s, wall 9.6-10.3 -> 9.5-9.8 s; user time unchanged).
_MALLOPT = ((-3, 32 << 20), (-1, 256 << 20), (-2, 64 << 20))  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, M_TOP_PAD


def tune_memory() -> bool:
    """Apply the settings above to this process (numpy's before it is imported; helper processes inherit it);
    True where glibc took them, False (nothing else changed) where there is no glibc."""
    if "numpy" not in sys.modules:
        os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")  # numpy reads it at import
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # musl and others: no mallopt
        return False
    return all(mallopt(param, value) == 1 for param, value in _MALLOPT)


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    tune_memory()
    try:
        if argv and argv[0] == "report":
            return report_main(argv[1:])
        if argv and argv[0] == "evaluate":
            return evaluate_main(argv[1:])
        return run(build_parser().parse_args(_attach_negative_values(argv)), argv)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        if exc.errno not in DISK_ERRORS:
            raise
        where = f" writing {exc.filename}" if exc.filename else ""
        print(f"error: {DISK_ERRORS[exc.errno]}{where}; {os.strerror(exc.errno).lower()}: free space or choose another "
              f"--out, then rerun the same command (finished runs are kept)", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except KeyboardInterrupt:
        print("interrupted: finished runs are saved; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # `python -m benchmark.cli ...`: how helper processes (--workers) are started
    sys.exit(main())
