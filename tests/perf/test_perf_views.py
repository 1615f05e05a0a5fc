"""Evaluation views: K distributions cost one forward pass plus K metric passes.

Not part of the default run: ``python -m pytest tests/perf -m perf``. pytest-benchmark reports the forward pass
and the metric pass per view; the engine test asserts the structure that makes the cost "one forward + K
metric passes": with 14 views, every pool and validation example is still forwarded exactly once.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from accelerate import Accelerator

from benchmark.core.views import SADE_VIEWS
from benchmark.engine import Engine, RunSpec, evaluate_views, prepare_task
from benchmark.registry import get_method, get_task

from .bench_views import forward_pass

pytestmark = pytest.mark.perf

ALL_VIEWS = ("natural", "balanced", "inverse") + SADE_VIEWS


def sade_task(**params):
    task = get_task("synth-multilabel", **params)
    task.views = ALL_VIEWS  # instance override of the class default (natural, balanced, inverse)
    return task


@pytest.fixture(scope="module")
def scored():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the engine runs small models on CPU
    task = sade_task()
    prepared = prepare_task(task)
    torch.manual_seed(0)
    model = task.build_model().eval()
    logits = forward_pass(task, model, prepared.data.pool.dataset)
    yield task, prepared, model, logits
    torch.set_num_threads(threads)


def test_forward_pass_of_the_pool(bench, scored):
    task, prepared, model, _ = scored
    logits = bench(forward_pass, task, model, prepared.data.pool.dataset)
    assert logits.shape == (len(prepared.data.pool), task.num_classes)


@pytest.mark.parametrize("view", ["natural", "balanced", "inverse", "forward50", "uniform", "backward50"])
def test_metric_pass_of_one_view(bench, scored, view):
    task, prepared, _, logits = scored
    v = {view: prepared.views[view]}
    out = bench(evaluate_views, get_method("none"), True, logits, prepared.data.pool.labels, v)
    assert 0.0 < out[view]["metrics"]["mAP"] < 1.0


def test_fourteen_views_forward_every_example_once(tmp_path, monkeypatch):
    task = sade_task(n_train=2000, n_eval=3000, n_uniform=1500, epochs=0.5)
    prepared = prepare_task(task)
    forwarded = []
    build = task.build_model

    def counting_model():
        model = build()
        model.register_forward_hook(lambda m, inp, out: None if m.training else forwarded.append(inp[0].shape[0]))
        return model

    monkeypatch.setattr(task, "build_model", counting_model)
    result = Engine(Accelerator(cpu=True), tmp_path, quiet=True).run(RunSpec(task, get_method("none"), 0), prepared)
    assert result["status"] == "ok" and set(result["eval"]) == set(ALL_VIEWS)
    assert sum(forwarded) == len(prepared.data.pool) + len(prepared.data.val)
    assert np.isfinite([e["metrics"]["mAP"] for e in result["eval"].values()]).all()
