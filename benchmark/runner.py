"""Runs a grid of (task × method × seed) on one Accelerator, skipping finished runs, then renders the report."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import torch
from accelerate import Accelerator

from .engine import Engine, RunSpec, prepare_task
from .errors import UserError
from .method import Method
from .results import read_result
from .task import Task


def make_accelerator(mixed_precision: Optional[str] = None) -> Accelerator:
    """One Accelerator per process. Without a GPU, `cpu=True` makes a multi-process launch real CPU DDP."""
    kwargs = {"cpu": not torch.cuda.is_available()}
    if mixed_precision is not None:
        kwargs["mixed_precision"] = mixed_precision
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
                spec = RunSpec(task, method, seed)
                key = (task.name, spec.run_id)
                if key not in seen:
                    seen.add(key)
                    specs.append(spec)
    return specs


def run_grid(tasks: list[Task], methods: list[Method], seeds: list[int], out: Path, *, overwrite: bool = False,
             quiet: bool = False, mixed_precision: Optional[str] = None, report: bool = True,
             accelerator: Optional[Accelerator] = None) -> Optional[str]:
    """Run what is not finished yet; returns a one-line summary on the main process."""
    acc = accelerator or make_accelerator(mixed_precision)
    engine = Engine(acc, out, quiet=quiet)
    specs = grid_specs(tasks, methods, seeds)
    todo = [s for s in specs if overwrite or read_result(engine.path(s)) is None]
    from tqdm.auto import tqdm

    bar = tqdm(total=len(specs), initial=len(specs) - len(todo), desc="runs", unit="run", dynamic_ncols=True,
               disable=quiet or not acc.is_main_process)
    prepared = {}
    failed = 0
    for spec in todo:
        key = spec.task_spec
        if key not in prepared:
            bar.set_postfix_str(f"loading {key}")
            prepared = {key: prepare_task(spec.task)}  # one task's data in memory at a time
        bar.set_postfix_str(f"{key} {spec.method_spec} seed {spec.seed}")
        result = engine.run(spec, prepared[key])
        if result is not None and result["status"] != "ok":
            failed += 1
            bar.write(f"run failed: {key} {spec.method_spec} seed {spec.seed}: {result['error']}")
        bar.update(1)
    bar.close()
    if not acc.is_main_process:
        return None
    msg = f"{len(todo)} run(s) done, {len(specs) - len(todo)} already finished, {failed} failed; results in {out}"
    if report:
        from reports import render_report

        msg += f"\nreport: {render_report(out)}"
    return msg
