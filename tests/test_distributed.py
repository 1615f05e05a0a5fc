"""Multi-process correctness on CPU (gloo): disjoint training shards, exact evaluation gathering, main-only writes.

The launched tests start 2 CPU processes (torchrun / accelerate launch with ACCELERATE_USE_CPU=true); they are
marked `distributed` (select with `-m distributed`) and sized for a 2-core CI machine.
"""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

from benchmark.method import TrainInfo
from benchmark.registry import get_method, get_task
from benchmark.sampling import BudgetBatchSampler, ShardedBatchSampler
from conftest import ROOT, TINY_ML

PLUGIN = str(ROOT / "tests" / "plugins" / "faults.py")
LAUNCH_TIMEOUT = 600  # generous: two processes each import torch on a loaded 2-core machine


def cpu_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("TQDM_DISABLE", "WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env.update(ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1", COLUMNS="120", PYTHONPATH=str(ROOT))
    return env


def train_info(n: int = 203, classes: int = 5) -> TrainInfo:
    y = np.random.default_rng(0).integers(0, classes, n)
    y[: classes] = np.arange(classes)
    return TrainInfo(labels=y, multi_label=False, num_classes=classes, budget_samples=0)


@pytest.mark.parametrize("budget,batch,n", [(1001, 64, 2), (1000, 50, 2), (777, 32, 3), (5, 4, 3), (333, 16, 1)])
def test_each_process_gets_a_disjoint_deterministic_part_of_the_stream(budget, batch, n):
    train = train_info()
    method = get_method("oversample:beta=1")
    full = [i for b in BudgetBatchSampler(method, train, budget, batch, 7) for i in b]
    parts = []
    for rank in range(n):
        shard = ShardedBatchSampler(BudgetBatchSampler(method, train, budget, batch, 7), n, rank)
        batches = list(shard)
        assert batches == list(shard)  # deterministic: a second pass is the same
        assert len(batches) == len(shard)
        parts.append(batches)
        drawn = int(shard.draw_counts.sum())
    assert len({len(p) for p in parts}) == 1  # every process takes the same number of steps
    # interleaving the processes' batches step by step gives back the single-process stream, minus a dropped tail
    merged = [i for step in zip(*parts) for b in step for i in b]
    assert merged == full[: len(merged)] and len(full) - len(merged) < n
    assert drawn == len(merged)  # what was drawn is what was trained
    steps = [[len(b) for b in step] for step in zip(*parts)]
    assert all(sizes == [batch] * n for sizes in steps[:-1])
    assert max(steps[-1]) - min(steps[-1]) <= 1 and min(steps[-1]) > 0  # the last step split evenly, not padded
    if n == 1:
        assert parts[0] == list(BudgetBatchSampler(method, train, budget, batch, 7))


@pytest.mark.distributed
@pytest.mark.slow(reason="starts 2 gloo processes with torchrun, each importing torch (~15 s)")
def test_two_process_evaluation_equals_one_process_and_streams_are_disjoint(tmp_path):
    torch.manual_seed(0)
    task = get_task(TINY_ML)
    weights = tmp_path / "weights.pt"
    torch.save(task.build_model().state_dict(), weights)
    script = str(ROOT / "tests" / "dist_check.py")
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = subprocess.run([sys.executable, script, str(one), str(weights), TINY_ML], capture_output=True, text=True,
                        env=cpu_env(), timeout=LAUNCH_TIMEOUT)
    assert r1.returncode == 0, r1.stderr[-3000:]
    r2 = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                         script, str(two), str(weights), TINY_ML], capture_output=True, text=True, env=cpu_env(),
                        timeout=LAUNCH_TIMEOUT)
    assert r2.returncode == 0, r2.stderr[-3000:]

    s = json.loads((two / "stream.json").read_text())
    assert s["num_processes"] == 2
    r0, r1_ = s["ranks"]
    assert r0["same_again"] and r1_["same_again"] and r0["len"] == r1_["len"] == len(r0["batches"]) == 8
    merged = [i for a, b in zip(r0["batches"], r1_["batches"]) for i in a + b]
    single = [i for b in s["single_stream"] for i in b]
    assert merged == single and r0["drawn"] == r1_["drawn"] == len(single) == 1001  # disjoint positions, all of it
    assert [len(b) for b in (r0["batches"][-1], r1_["batches"][-1])] == [53, 52]

    l1, l2 = np.load(one / "pool_logits.npy"), np.load(two / "pool_logits.npy")
    assert l1.shape == l2.shape == (2300, 12)  # the whole pool, no padding duplicates
    np.testing.assert_allclose(l2, l1, rtol=0, atol=1e-6)
    e1, e2 = json.loads((one / "eval.json").read_text()), json.loads((two / "eval.json").read_text())
    assert e1.keys() == e2.keys() == {"natural", "balanced", "inverse"}
    for view in e1:
        assert e1[view]["n_examples"] == e2[view]["n_examples"]
        for k, v in e1[view]["metrics"].items():
            assert abs(e2[view]["metrics"][k] - v) <= 1e-6, (view, k)
        np.testing.assert_allclose(e2[view]["per_class"]["AP"], e1[view]["per_class"]["AP"], rtol=0, atol=1e-6)


@pytest.mark.distributed
@pytest.mark.slow(reason="accelerate launch of 2 CPU processes through the CLI (~15 s)")
def test_accelerate_launch_two_processes_runs_the_grid_once_from_the_main_process(tmp_path):
    out = tmp_path / "out"
    cmd = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", str(ROOT / "run_benchmark.py"),
           "--plugin", PLUGIN, "--task", TINY_ML, "--method", "oversample:beta=1,test-posthoc", "--seeds", "1",
           "--out", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=cpu_env(), cwd=ROOT, timeout=LAUNCH_TIMEOUT)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = [json.loads(p.read_text()) for p in sorted((out / "results").glob("*/*.json"))]
    assert len(runs) == 3 and all(d["status"] == "ok" for d in runs)
    for d in runs:
        assert d["env"]["num_processes"] == 2
        # the global batch is the task's: each of the 2 processes takes half of it, so 1 and 2 processes train alike
        assert d["env"]["batch_per_process"] * 2 == d["config"]["train"]["batch_size"]
        # the fair budget is drawn exactly once over both processes (no padding repeats)
        assert d["effective_prior"]["samples_seen"] == d["config"]["train"]["budget_samples"] == 3000
        assert d["eval"]["natural"]["n_examples"] == 1500
    logs = list((out / "logs").glob("*.log"))
    assert len(logs) == 3 and all(p.read_text().count(" start ") == 1 for p in logs)  # one writer per run
    assert r.stdout.count("3 run(s) done") == 1 and (out / "report.md").exists()
    # the grid's bar, from the main process only: one bar starts (each bar prints its empty state once)
    assert len(re.findall(r"runs:\s+0%\|[^|]*\| 0/3 \[00:00<\?, \?run/s\]", r.stderr)) == 1
    assert not list(out.glob("results/*/*.claim")) and not list(out.glob("results/*/.*"))


@pytest.mark.distributed
@pytest.mark.slow(reason="trains the same grid with 1 and with 2 launched processes")
def test_one_and_two_processes_train_alike_and_old_full_batch_runs_are_not_mixed_in(tmp_path):
    """Fixed global batch: a 2-process run takes the optimizer steps of a 1-process run on the same batches, so
    its metrics match (to float rounding) and a 2-process rerun into a 1-process --out may reuse its results."""
    grid = ("--task", TINY_ML, "--method", "oversample:beta=1", "--seeds", "1", "--quiet", "--no-report")
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = subprocess.run([sys.executable, str(ROOT / "run_benchmark.py"), *grid, "--out", str(one)],
                        capture_output=True, text=True, env=cpu_env(), cwd=ROOT, timeout=LAUNCH_TIMEOUT)
    assert r1.returncode == 0, r1.stderr[-3000:]
    launch = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
              "--mixed_precision", "no", "--dynamo_backend", "no", str(ROOT / "run_benchmark.py")]
    r2 = subprocess.run([*launch, *grid, "--out", str(two)], capture_output=True, text=True, env=cpu_env(),
                        cwd=ROOT, timeout=LAUNCH_TIMEOUT)
    assert r2.returncode == 0, r2.stderr[-3000:]
    a = {p.name: json.loads(p.read_text()) for p in (one / "results").glob("*/*.json")}
    b = {p.name: json.loads(p.read_text()) for p in (two / "results").glob("*/*.json")}
    assert a.keys() == b.keys() and len(a) == 2  # one run id for both process counts
    for name, d1 in a.items():
        d2 = b[name]
        assert (d1["env"]["num_processes"], d2["env"]["num_processes"]) == (1, 2)
        assert d1["effective_prior"] == d2["effective_prior"]  # the same samples were drawn
        for view, e in d1["eval"].items():
            for k, v in e["metrics"].items():
                assert abs(d2["eval"][view]["metrics"][k] - v) <= 1e-5, (name, view, k)
    # a result trained by 2 processes that each took a full batch (before the global batch was fixed) differs in
    # its optimizer steps: it is not counted as finished (redone), and the report leaves it out with a warning
    path = next(p for p in (two / "results").glob("*/*.json") if "oversample" in p.read_text())
    d = json.loads(path.read_text())
    del d["env"]["batch_per_process"]
    path.write_text(json.dumps(d))
    from benchmark.core.results import check_result

    assert check_result(path).state == "invalid" and "each took a full batch" in check_result(path).reason
    r = subprocess.run([sys.executable, str(ROOT / "run_benchmark.py"), "report", str(two)], capture_output=True,
                       text=True, env=cpu_env(), cwd=ROOT, timeout=LAUNCH_TIMEOUT)
    assert r.returncode == 0 and "each took a full batch" in r.stderr, r.stderr[-3000:]
