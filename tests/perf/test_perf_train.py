"""Training throughput (examples/s) of the synthetic tasks through the engine on CPU, one process.

Not part of the default run: ``python -m pytest tests/perf -m perf``. pytest-benchmark reports a whole baseline
run (training + scoring); the thread test checks the engine's default for small models (`Task.cpu_threads = 1`)
against two threads, and the step test the engine against a bare PyTorch loop, alternating in the same run.
"""
from __future__ import annotations

import pytest
import torch

from .bench_train import MAX_STEP_OVERHEAD, step_overhead, train_once

pytestmark = pytest.mark.perf

TASKS = [("synth-multilabel", 2.0), ("synth-singlelabel", 5.0), ("digits-lt", 20.0)]


@pytest.fixture(autouse=True)
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("spec, epochs", TASKS, ids=[t for t, _ in TASKS])
def test_examples_per_second(bench, tmp_path, spec, epochs):
    runs = iter(range(1000))
    r = bench.pedantic(lambda: train_once(spec, 1, epochs, str(tmp_path / str(next(runs)))), rounds=2)
    bench.extra_info["examples_per_s"] = r["samples"] / r["train_s"]
    print(f"\n{spec}: {r['samples'] / r['train_s']:,.0f} examples/s")
    assert r["samples"] > 0


@pytest.mark.parametrize("spec, epochs", TASKS[:2], ids=[t for t, _ in TASKS[:2]])
def test_one_thread_is_not_slower_than_two_for_small_models(tmp_path, spec, epochs):
    best = {1: float("inf"), 2: float("inf")}
    for rep in range(2):
        for threads in (1, 2):
            r = train_once(spec, threads, epochs / 2, str(tmp_path / f"{threads}-{rep}"))
            best[threads] = min(best[threads], r["train_s"])
    print(f"\n{spec}: 1 thread {best[1]:.2f} s, 2 threads {best[2]:.2f} s")
    assert best[1] <= 1.25 * best[2]


def test_engine_step_costs_at_most_1_2x_a_bare_pytorch_loop():
    r = step_overhead(rounds=3)
    print(f"\nbare {r['bare_s']:.2f} s, engine {r['engine_s']:.2f} s ({r['ratio']:.2f}x), through a DataLoader "
          f"{r['loader_s']:.2f} s ({r['loader_ratio']:.2f}x), {r['steps']} steps")
    assert r["steps"] == 1954  # 500,000 samples in batches of 256
    assert r["ratio"] <= MAX_STEP_OVERHEAD
