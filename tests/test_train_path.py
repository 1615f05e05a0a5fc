"""The fast training path changes no number: batch gathers from the sampler's index arrays, the bare optimizer
step, foreach Adam and helper processes (--workers) all give bitwise the same results as the slower paths."""
import gc
import json
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch
from accelerate import Accelerator

import benchmark.engine as engine_module
from benchmark.engine import Engine, RunSpec, prepare_task
from benchmark.method import TrainInfo
from benchmark.registry import get_method, get_task, list_methods
from benchmark.sampling import BudgetBatchSampler, ShardedBatchSampler
from conftest import TINY_ML, TINY_SL, run_cli
from tests.perf.bench_train import through_dataloader


def scores(tmp_path: Path, spec: str, method: str, prepared=None) -> dict:
    task = get_task(spec)
    prepared = prepared or prepare_task(task)
    result = Engine(Accelerator(cpu=True), tmp_path, quiet=True).run(RunSpec(prepared.task, get_method(method), 0),
                                                                      prepared)
    assert result["status"] == "ok", result["error"]
    npz = tmp_path / "results" / prepared.task.name / result["scores_file"]
    with np.load(npz) as z:
        return {"pool": z["pool_logits"], "val": z["val_logits"], "prior": result["effective_prior"]}


@pytest.mark.parametrize("spec, method", [(TINY_ML, "oversample:beta=1"), (TINY_SL, "class_uniform")],
                         ids=["multi", "single"])
def test_batch_gathers_train_exactly_as_the_dataloader_did(tmp_path, spec, method):
    fast = scores(tmp_path / "fast", spec, method)
    slow = scores(tmp_path / "slow", spec, method, through_dataloader(prepare_task(get_task(spec))))
    assert np.array_equal(fast["pool"], slow["pool"]) and np.array_equal(fast["val"], slow["val"])
    assert fast["prior"] == slow["prior"]


def test_the_bare_optimizer_step_equals_accelerates(tmp_path, monkeypatch):
    plain = scores(tmp_path / "plain", TINY_ML, "focal")
    monkeypatch.setattr(engine_module, "_plain_steps", lambda acc: False)  # accelerator.backward + its optimizer
    wrapped = scores(tmp_path / "wrapped", TINY_ML, "focal")
    assert np.array_equal(plain["pool"], wrapped["pool"])


def test_foreach_adam_is_bitwise_the_per_tensor_loop():
    task = get_task(TINY_ML)
    x = torch.randn(64, task.dim, generator=torch.Generator().manual_seed(0))
    y = (torch.rand(64, task.classes, generator=torch.Generator().manual_seed(1)) < 0.2).float()
    params = []
    for foreach in (True, False):
        torch.manual_seed(0)
        model = task.build_model()
        opt = task.build_optimizer(model, 100)[0] if foreach else torch.optim.Adam(model.parameters(), lr=task.lr)
        assert opt.defaults["foreach"] is foreach or not foreach
        for _ in range(100):
            torch.nn.functional.binary_cross_entropy_with_logits(model(x), y).backward()
            opt.step()
            opt.zero_grad()
        params.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(params[0], params[1])


def test_index_batches_are_the_lists_the_dataloader_gets():
    rng = np.random.default_rng(0)
    labels = rng.random((500, 7)) < np.linspace(0.5, 0.02, 7)
    labels[:, 0] |= ~labels.any(1)
    checked = 0
    for name in list_methods():
        method = get_method(name)
        if method.posthoc or not method.multi_label:
            continue
        train = TrainInfo(labels=labels, multi_label=True, num_classes=7, budget_samples=1234)
        method.setup(train)
        for shards in (1, 2, 3):
            for shard in range(shards):
                lists = list(ShardedBatchSampler(BudgetBatchSampler(method, train, 1234, 50, 3), shards, shard))
                s = ShardedBatchSampler(BudgetBatchSampler(method, train, 1234, 50, 3), shards, shard)
                arrays = list(s.index_batches())
                assert [a.tolist() for a in arrays] == lists, (name, shards, shard)
                assert all(a.dtype == np.int64 for a in arrays)
        checked += 1
    assert checked >= 8


def test_the_grid_unfreezes_what_it_froze(tmp_path):
    from benchmark.runner import run_grid

    run_grid([get_task(TINY_SL)], [get_method("none")], [0], tmp_path, quiet=True)
    assert gc.get_freeze_count() == 0


def args(**kw) -> Namespace:
    return Namespace(**{"workers": None, "overwrite": False, "log_with": None, **kw})


def test_helper_processes_only_for_small_cpu_runs(monkeypatch):
    from benchmark.cli import MAX_AUTO_WORKERS, local_workers

    small, big = get_task(TINY_ML), get_task(TINY_SL)
    big.cpu_threads = None  # a task that uses all threads
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("BALANCEBENCH_WORKERS", raising=False)  # tests/conftest.py sets 1 for the CLI's subprocesses
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(8)))
    assert local_workers(args(), [small]) == MAX_AUTO_WORKERS
    assert local_workers(args(workers=3), [big]) == 3  # asked for
    assert local_workers(args(), [small, big]) == 1
    assert local_workers(args(overwrite=True), [small]) == 1
    assert local_workers(args(log_with="tensorboard"), [small]) == 1
    monkeypatch.setenv("BALANCEBENCH_WORKERS", "2")
    assert local_workers(args(), [big]) == 2
    assert local_workers(args(workers=1), [small]) == 1  # the flag wins over the variable
    monkeypatch.delenv("BALANCEBENCH_WORKERS")
    monkeypatch.setenv("WORLD_SIZE", "2")  # inside accelerate launch
    assert local_workers(args(), [small]) == 1


def test_two_workers_give_the_same_results_as_one(tmp_path):
    """Which process runs which configuration depends on timing (on a busy machine the main process may finish
    before its helper has imported torch); the results may not."""
    grid = ["--task", TINY_SL, "--method", "oversample,logit_adjust", "--seeds", "2", "--quiet", "--no-report"]
    for workers in ("1", "2"):
        r = run_cli(*grid, "--workers", workers, "--out", str(tmp_path / workers))
        assert r.returncode == 0, r.stderr
        assert "6 run(s)" in r.stdout or "by other processes" in r.stdout
    one, two = (sorted((tmp_path / w / "results").glob("*/*.json")) for w in ("1", "2"))
    assert [p.name for p in one] == [p.name for p in two] and len(one) == 6
    assert not list((tmp_path / "2").rglob("*.claim"))  # every claim released
    for a, b in zip(one, two):
        ra, rb = json.loads(a.read_text()), json.loads(b.read_text())
        assert (ra["eval"], ra["val"], ra["effective_prior"]) == (rb["eval"], rb["val"], rb["effective_prior"])
        with np.load(a.with_suffix(".npz")) as za, np.load(b.with_suffix(".npz")) as zb:
            assert za.files == zb.files and all(np.array_equal(za[k], zb[k]) for k in za.files)


@pytest.mark.parametrize("module", ["benchmark.task", "benchmark.models", "tests.perf.common"])
def test_docstring_examples_run(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted >= 1 and result.failed == 0


def test_garbage_of_a_run_is_not_frozen_with_its_survivors(tmp_path, monkeypatch):
    """The grid freezes what survives each run; cyclic garbage left by that run is collected first, not kept for the
    rest of the grid."""
    import weakref

    from benchmark.engine import Engine
    from benchmark.runner import run_grid

    class Cycle:
        def __init__(self) -> None:
            self.me = self

    refs, alive_at_next_run = [], []
    real = Engine.run

    def run(self, spec, prepared):
        if refs:
            alive_at_next_run.append(refs[-1]() is not None)
        out = real(self, spec, prepared)
        c = Cycle()  # garbage once this returns: only a collection frees it
        refs.append(weakref.ref(c))
        return out

    monkeypatch.setattr(Engine, "run", run)
    run_grid([get_task(TINY_SL)], [get_method("none"), get_method("oversample")], [0], tmp_path, quiet=True)
    assert alive_at_next_run == [False]


def test_a_crashed_helper_is_reported_though_its_exit_status_is_that_of_failed_runs(capsys):
    """An uncaught exception exits with 1, like "some runs failed": the helper's traceback tells them apart."""
    import subprocess
    import sys
    import tempfile

    from benchmark.cli import Helper

    def helper(code: str) -> Helper:
        h = Helper.__new__(Helper)  # its process replaced by a stand-in that crashes or reports a failed run
        h.log = tempfile.TemporaryFile(mode="w+")
        h.proc = subprocess.Popen([sys.executable, "-c", code], stderr=h.log)
        return h

    assert helper("raise RuntimeError('boom')").wait() == 1
    err = capsys.readouterr().err
    assert "warning: helper process" in err and "exited with code 1 (RuntimeError: boom)" in err
    assert helper("import sys; print('run failed: t m seed 0: x', file=sys.stderr); sys.exit(1)").wait() == 1
    err = capsys.readouterr().err
    assert "run failed: t m seed 0: x" in err and "warning: helper process" not in err
