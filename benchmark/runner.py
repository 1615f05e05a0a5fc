"""Runs a grid of (task × method × seed) on one Accelerator, skipping finished runs (the CLI renders the report)."""
from __future__ import annotations

import gc
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from accelerate import Accelerator

from .claims import Claims, claim_path, read_claim, stale_reason
from .engine import Engine, RunSpec, batch_per_process, prepare_task
from .core.errors import UserError
from .method import Method
from .core.results import SCHEMA_VERSION, check_result, find_foreign_schema, read_result, result_state
from .sweep import shard_specs
from .task import Task


def make_accelerator(mixed_precision: Optional[str] = None, log_with: Optional[str] = None,
                     out: Optional[Path] = None) -> Accelerator:
    """One Accelerator per process. Without a GPU, `cpu=True` makes a multi-process launch real CPU DDP."""
    kwargs = {"cpu": not torch.cuda.is_available()}
    if mixed_precision is not None:
        kwargs["mixed_precision"] = mixed_precision
    if log_with is not None:  # trackers write under <out>/<tracker>/<run_id>/
        from accelerate.utils import ProjectConfiguration

        kwargs["log_with"] = log_with
        kwargs["project_config"] = ProjectConfiguration(project_dir=str(out), logging_dir=str(Path(out) / log_with))
    acc = Accelerator(**kwargs)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and acc.num_processes != world:
        raise UserError(f"launched {world} processes but accelerate sees {acc.num_processes}; on CPU set "
                        f"ACCELERATE_USE_CPU=true (accelerate launch --multi_gpu --num_processes {world} ...)")
    return acc


def grid_specs(tasks: list[Task], methods: list[Method], seeds: list[int]) -> list[RunSpec]:
    """Every (task, method, seed), baseline first within each (task, seed); duplicates removed."""
    specs, seen = [], set()
    for task in tasks:
        for seed in seeds:
            for method in methods:
                try:
                    method.check_task(task.multi_label, task.name)
                except UserError:
                    continue  # the CLI said which pairs it skips (a multi-label-only method on a single-label task)
                spec = RunSpec(task, method, seed)
                key = (task.name, spec.run_id)
                if key not in seen:
                    seen.add(key)
                    specs.append(spec)
    return specs


def plan(tasks: list[Task], methods: list[Method], seeds: list[int],
         shard: Optional[tuple[int, int]] = None) -> list[RunSpec]:
    """The runs of the grid, or of shard (i, n) of it (see `sweep.shard_specs`)."""
    specs = grid_specs(tasks, methods, seeds)
    return shard_specs(specs, *shard) if shard else specs


def check_results_dir(out: Path) -> None:
    """Refuse a results directory written with another result schema (its files would be mixed up or redone)."""
    found = find_foreign_schema(out)
    if found is not None:
        path, version = found
        raise UserError(f"--out {out} holds results of schema version {version} ({path.name}); this version writes "
                        f"{SCHEMA_VERSION}: choose another --out, or migrate them with the balancebench that wrote them")


def _depends_on_baseline(spec: RunSpec) -> bool:
    return bool(spec.method.posthoc or getattr(spec.method, "init_from_baseline", False))


def run_grid(tasks: list[Task], methods: list[Method], seeds: list[int], out: Path, *, overwrite: bool = False,
             quiet: bool = False, mixed_precision: Optional[str] = None,
             accelerator: Optional[Accelerator] = None, shard: Optional[tuple[int, int]] = None,
             log_with: Optional[str] = None, claims: Optional[Claims] = None,
             helpers: Sequence[Any] = ()) -> Optional[GridSummary]:
    """Run what is not finished yet; returns a summary on the main process (None on the others).

    Safe to run in several processes on one results directory: the main process claims each run before it starts
    (`benchmark.claims`), skips runs another live process holds, and takes over claims of dead processes. Its
    decisions are broadcast, so every rank of a multi-process launch runs the same configurations. `helpers` are
    local processes working on the same grid (objects with `wait()`, e.g. the CLI's --workers): they are waited
    for before the summary, and what a crashed one left is run here.
    """
    out = Path(out)
    check_results_dir(out)
    acc = accelerator or make_accelerator(mixed_precision, log_with=log_with, out=out)
    for task in tasks:  # before any run: a batch that does not divide over the processes is an input error
        batch_per_process(task, acc.num_processes)
    main = acc.is_main_process
    needs_model = any(getattr(m, "init_from_baseline", False) for m in methods)  # e.g. crt retrains its classifier
    engine = Engine(acc, out, quiet=quiet, keep_models=needs_model)
    specs = plan(tasks, methods, seeds, shard)
    since = time.time()  # --overwrite redoes results older than this; fresher ones come from a concurrent process
    from tqdm.auto import tqdm

    bar = tqdm(total=len(specs), desc="runs", unit="run", dynamic_ncols=True, disable=quiet or not main)

    def say(line: str) -> None:
        if main:
            bar.write(line, file=sys.stderr)

    def state(s: RunSpec) -> str:
        path = engine.path(s)
        st = result_state(path)
        if st != "ok":
            return st  # 'corrupt' / 'invalid' are redone (with a warning), as 'missing' is run
        if overwrite and path.stat().st_mtime < since:
            return "stale"
        # a baseline whose model was not kept (large models are kept only on demand) is redone when needed
        if needs_model and s.is_baseline and not path.with_suffix(".pt").exists():
            return "stale"
        return "done"

    flags = None
    if main:
        flags = []
        for s in specs:
            st = state(s)
            if st == "corrupt":
                say(f"warning: {engine.path(s)} is unreadable or truncated (a killed write?); redoing that run")
            elif st == "invalid":
                say(f"warning: {engine.path(s)} is not a valid result ({check_result(engine.path(s)).reason}); "
                    f"redoing that run")
            flags.append(st != "done")
    flags = _broadcast(acc, flags)
    todo = [s for s, f in zip(specs, flags) if f]
    bar.update(len(specs) - len(todo))
    claims = (claims or Claims()) if main else None

    def decide(s: RunSpec) -> tuple[str, str]:
        """(action, whose) on the main process: ('skip'|'busy'|'run', 'self'|'baseline')."""
        if state(s) == "done":
            return "skip", "self"  # another process finished it meanwhile
        if _depends_on_baseline(s):
            base = s.baseline()
            if read_result(engine.path(base)) is None:  # neither finished nor failed yet
                holder = read_claim(claim_path(engine.path(base)))
                if holder is not None and stale_reason(holder, claims.stale_after_s) is None:
                    return "busy", "self"  # its baseline runs elsewhere; that process runs this right after
                got = claims.acquire(engine.path(base))  # the baseline was left by a dead process: do it first
                if got.took_over:
                    say(f"took over the claim of {got.took_over}")
                if not got.acquired:
                    return "busy", "self"
                if read_result(engine.path(base)) is None:
                    _remove_partial_writes(engine.path(base))
                    return "run", "baseline"
                claims.release(engine.path(base))  # finished meanwhile
        got = claims.acquire(engine.path(s))
        if got.took_over:
            say(f"took over the claim of {got.took_over}")
        if not got.acquired:
            return "busy", "self"
        if state(s) == "done":  # finished between our check and our claim
            claims.release(engine.path(s))
            return "skip", "self"
        _remove_partial_writes(engine.path(s))
        return "run", "self"

    prepared: dict = {}
    ran = failed = elsewhere = 0
    queue = list(todo)
    try:
        while queue:
            spec = queue[0]
            action, whose = _broadcast(acc, decide(spec) if main else None)
            if action != "run" or whose == "self":
                queue.pop(0)
            if action in ("skip", "busy"):
                elsewhere += 1  # running in, or finished by, another process
                bar.update(1)
                continue
            target = spec if whose == "self" else spec.baseline()
            key = target.task_spec
            try:
                if key not in prepared:
                    bar.set_postfix_str(f"loading {key}")
                    prepared = {key: prepare_task(target.task)}  # one task's data in memory at a time
                bar.set_postfix_str(f"{key} {target.method_spec} seed {target.seed}")
                result = engine.run(target, prepared[key])
                # what survived the run is long-lived (torch, accelerate, the task's data): exempt it from the full
                # collection accelerate's free_memory runs after every training run (~0.35 s each on ~300k objects).
                # Collected first, so that no garbage of this run is frozen with it (never freed while the grid
                # runs); with the earlier runs' survivors frozen, that collection only visits this run's objects
                gc.collect()
                gc.freeze()
            finally:
                if claims is not None:
                    claims.release(engine.path(target))
            ran += 1
            if whose == "baseline":  # counted as running elsewhere when it was passed; its owner had died
                elsewhere = max(0, elsewhere - 1)
            if result is not None and result["status"] != "ok":
                failed += 1
                say(f"run failed: {key} {target.method_spec} seed {target.seed}: {result['error']}")
            if whose == "self":
                bar.update(1)
    finally:
        gc.unfreeze()  # the caller's objects are collected as usual again
        if claims is not None:
            claims.release_all()
        bar.close()
    if not main:
        return None
    for helper in helpers:
        helper.wait()
    if helpers and any(state(s) != "done" for s in todo):  # a helper died mid-grid: its runs are left to us
        rest = run_grid(tasks, methods, seeds, out, quiet=quiet, accelerator=acc, shard=shard, claims=claims)
        ran, failed, elsewhere = ran + rest.ran, failed + rest.failed, max(0, elsewhere - rest.ran)
    failed_in_grid = [s for s in specs if (read_result(engine.path(s)) or {}).get("status") == "failed"]
    return GridSummary(ran=ran, already=len(specs) - len(todo), failed=failed, elsewhere=elsewhere, out=out,
                       total=len(specs), failed_in_grid=len(failed_in_grid))


@dataclass
class GridSummary:
    """What `run_grid` did; `str()` is its one-line summary, `failed_line()` the line that says runs failed."""

    ran: int  # runs this process ran
    already: int  # finished before it started
    failed: int  # of the runs it ran
    elsewhere: int  # left to (or finished by) other processes
    out: Path
    total: int  # runs of the grid (this shard)
    failed_in_grid: int  # runs of the grid whose result says failed, whoever ran them and when

    def __str__(self) -> str:
        msg = f"{self.ran} run(s) done, {self.already} already finished, {self.failed} failed"
        if self.elsewhere:
            msg += f", {self.elsewhere} run(s) by other processes"
        return msg + f"; results in {self.out}"

    def failed_line(self) -> Optional[str]:
        """None when no run of the grid failed."""
        if not self.failed_in_grid:
            return None
        return (f"{self.failed_in_grid} of {self.total} runs failed (status 'failed': the reasons are in the "
                f"report's Failed runs and each run's log under {self.out / 'logs'}); exit status 1")


def _remove_partial_writes(result: Path) -> None:
    """Temporary files a killed writer of this run left (atomic writes leave none otherwise); we own the run now.

    Includes a killed claimer's claim temp file or stale-claim tombstone (claims.py tolerates their removal).
    """
    for pattern in (".json.*.tmp", ".npz.*.tmp", ".pt.*.tmp", ".claim.*"):
        for tmp in result.parent.glob(f".{result.stem}{pattern}"):
            tmp.unlink(missing_ok=True)


def _broadcast(acc: Accelerator, obj):
    """The main process's `obj` on every process (a no-op with one process)."""
    if acc.num_processes == 1:
        return obj
    from accelerate.utils import broadcast_object_list

    box = [obj]
    broadcast_object_list(box, from_process=0)
    return box[0]
