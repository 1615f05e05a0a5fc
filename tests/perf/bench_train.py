"""Section `train`: the engine's training loop against a bare PyTorch loop, and examples/s at 1 vs 2 threads."""
from __future__ import annotations

import dataclasses
import gc
import os
import tempfile
import time
from typing import Any, Optional

from .common import load_avg, print_table

STEP_TASK = "synth-multilabel"  # MLP 24 -> 64 -> 60, batch 256, Adam, 500k samples = 1,953 steps
MAX_STEP_OVERHEAD = 1.2  # the engine's training time / a bare PyTorch loop's, same model, batch and steps


def train_once(spec: str, threads: Optional[int], epochs: Optional[float], out_dir: str,
               prepared: Any = None) -> dict[str, Any]:
    """One baseline run through the engine (accelerate, CPU, one process); the task's `cpu_threads` overridden.

    `prepared` (a `PreparedTask` of `spec`) skips building the data; its task's budget is used as it is then.
    """
    from accelerate import Accelerator

    from benchmark.engine import Engine, RunSpec, prepare_task
    from benchmark.registry import get_method, get_task

    task = prepared.task if prepared is not None else get_task(spec, **({} if epochs is None else {"epochs": epochs}))
    task.cpu_threads = threads
    prepared = prepared if prepared is not None else prepare_task(task)
    engine = Engine(Accelerator(cpu=True), out_dir, quiet=True)
    t0 = time.perf_counter()
    result = engine.run(RunSpec(task, get_method("none"), seed=0), prepared)
    wall = time.perf_counter() - t0
    seen = result["effective_prior"]["samples_seen"]
    return {"train_s": result["train_time_s"], "samples": seen, "wall_s": wall, "eval_s": result["eval_time_s"]}


def bench_train(large: bool = False) -> list[dict[str, Any]]:
    """Training throughput (examples/s) of the synthetic tasks through the engine on CPU, 1 vs 2 torch threads,
    measured alternately in one run (the machine's load changes slowly; alternating shares it fairly)."""
    import torch

    specs = [("synth-multilabel", 4.0), ("synth-singlelabel", 10.0), ("digits-lt", 40.0)]
    if large:
        specs.append(("synth-audioset", 2.0))
    threads_before = torch.get_num_threads()
    rows: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for spec, epochs in specs:
                best: dict[Optional[int], dict[str, Any]] = {}
                for rep in range(2):
                    for threads in (1, 2):  # alternate 1, 2, 1, 2
                        r = train_once(spec, threads, epochs, os.path.join(tmp, f"{spec}-{threads}-{rep}"))
                        if threads not in best or r["train_s"] < best[threads]["train_s"]:
                            best[threads] = r
                for threads, r in best.items():
                    rows.append({"task": spec, "epochs": epochs, "torch threads": threads,
                                 "samples": r["samples"], "train s": f"{r['train_s']:.2f}",
                                 "examples/s": f"{r['samples'] / r['train_s']:,.0f}",
                                 "vs 1 thread": f"{best[1]['train_s'] / r['train_s']:.2f}x",
                                 "eval s": f"{r['eval_s']:.2f}", "load avg": load_avg(),
                                 "_train_s": r["train_s"], "_samples": r["samples"]})
    finally:
        torch.set_num_threads(threads_before)
    print_table("train: baseline `none` through the engine (accelerate, CPU, 1 process), best of 2 per setting, "
                "1 and 2 torch threads alternated; train s = the engine's train_time_s (model build to last "
                "step); 'vs 1 thread' > 1 means 2 threads were faster" + ("" if large else
                                                                         "; --large adds synth-audioset"),
                rows, ["task", "epochs", "torch threads", "samples", "train s", "examples/s", "vs 1 thread",
                       "eval s", "load avg"])
    return rows


class ViaDataLoader:
    """An in-memory dataset the engine cannot index itself: its training batches go through a DataLoader
    (index lists -> `__getitems__` -> collate), the path every dataset took before `ArrayDataset.take_batches`."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __len__(self) -> int:
        return len(self.inner)

    def __getitem__(self, i: int) -> Any:
        return self.inner[i]

    def __getitems__(self, idx: list) -> Any:
        return self.inner.__getitems__(idx)


def through_dataloader(prepared: Any) -> Any:
    """A copy of a `PreparedTask` whose training set the engine can only read through a DataLoader."""
    train = prepared.data.train
    return dataclasses.replace(prepared, data=dataclasses.replace(
        prepared.data, train=dataclasses.replace(train, dataset=ViaDataLoader(train.dataset))))


def bare_loop(x: Any, y: Any, task: Any, steps: int, seed: int = 0) -> float:
    """CPU seconds of a 10-line PyTorch loop: the task's model and optimizer, uniform random batches of the task's
    batch size, BCE, `steps` steps; model and optimizer built inside the timing, as the engine builds them in its
    training. Batches are gathered with `index_select`, as the engine does (`x[idx]` costs ~40 us more per step)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    t0 = time.process_time()
    model = task.build_model()
    opt, _ = task.build_optimizer(model, steps)  # the task's Adam, as the engine builds it
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (task.batch_size,))
        loss = F.binary_cross_entropy_with_logits(model(x.index_select(0, idx)), y.index_select(0, idx))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return time.process_time() - t0


def engine_train(prepared: Any, out_dir: str) -> float:
    """CPU seconds of the engine's training of the baseline `none` on `prepared` (accelerate on CPU, one process):
    model build to last step, plus the one forward pass over the pool and validation split that follows it (a few
    per cent, counted against the engine). CPU time, not wall: the load of a shared machine barely moves it."""
    from accelerate import Accelerator

    from benchmark.engine import Engine, RunSpec
    from benchmark.registry import get_method

    prepared.task.cpu_threads = 1
    spec = RunSpec(prepared.task, get_method("none"), seed=0)
    spec.method.setup(prepared.train)
    engine = Engine(Accelerator(cpu=True), out_dir, quiet=True)
    t0 = time.process_time()
    engine._train_and_score(spec, prepared)  # the training part of Engine.run, without scoring views and writing
    return time.process_time() - t0


def step_overhead(rounds: int = 3, spec: str = STEP_TASK) -> dict[str, Any]:
    """Best-of-`rounds` training CPU seconds of the bare loop, the engine, and the engine through a DataLoader, run
    alternately in one process at one torch thread (the engine's setting for small models), same steps."""
    import numpy as np
    import torch

    from benchmark.engine import prepare_task
    from benchmark.registry import get_task

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        task = get_task(spec)
        prepared = prepare_task(task)
        train = prepared.data.train
        x = torch.as_tensor(train.features)
        y = torch.as_tensor(train.labels.astype(np.float32))
        steps = -(-task.budget_samples // task.batch_size)
        loader = through_dataloader(prepared)
        best = {"bare": float("inf"), "engine": float("inf"), "loader": float("inf")}
        with tempfile.TemporaryDirectory() as tmp:
            bare_loop(x, y, task, 20)  # first Adam step imports torch._dynamo: not a per-step cost
            # as in run_grid: long-lived objects are frozen, so the engine's end-of-training gc.collect (accelerate's
            # free_memory) scans only what the run made, not every object of this process
            gc.collect()
            gc.freeze()
            for r in range(rounds):
                best["bare"] = min(best["bare"], bare_loop(x, y, task, steps, seed=r))
                best["engine"] = min(best["engine"], engine_train(prepared, os.path.join(tmp, f"e{r}")))
                best["loader"] = min(best["loader"], engine_train(loader, os.path.join(tmp, f"l{r}")))
    finally:
        gc.unfreeze()
        torch.set_num_threads(threads)
    return {"task": spec, "steps": steps, "batch": task.batch_size, **{f"{k}_s": v for k, v in best.items()},
            "ratio": best["engine"] / best["bare"], "loader_ratio": best["loader"] / best["bare"]}


def bench_step(large: bool = False) -> list[dict[str, Any]]:
    """The engine's training step against a bare PyTorch loop (goal: <= 1.2x), and against its DataLoader path."""
    r = step_overhead(rounds=5 if large else 3)
    per = 1e3 / r["steps"]
    rows = [{"loop": name, "train s CPU": f"{r[key]:.2f}", "ms/step": f"{r[key] * per:.3f}",
             "vs bare": f"{r[key] / r['bare_s']:.2f}x"}
            for name, key in (("bare PyTorch loop (randint + index_select batches)", "bare_s"),
                              ("engine (batches gathered from the sampler's index arrays)", "engine_s"),
                              ("engine through a DataLoader (index lists, __getitems__, collate)", "loader_s"))]
    print_table(f"step: {r['task']} baseline, MLP 24-64-60, batch {r['batch']}, Adam, {r['steps']} steps, 1 torch "
                f"thread, best of {5 if large else 3} alternating rounds, CPU seconds; engine = its training (model "
                f"build to last step, accelerate on CPU) + one forward pass of pool and val; goal <= "
                f"{MAX_STEP_OVERHEAD}x; load avg {load_avg()}", rows, ["loop", "train s CPU", "ms/step", "vs bare"])
    return [r]
