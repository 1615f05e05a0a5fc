"""Sweep specification (ranges, TOML files), --shard splits, progress bars, log files and --log-with tensorboard."""
import json
import os
import sys
from pathlib import Path

import pytest

from benchmark import UserError
from benchmark.cli import build_parser, resolve_grid
from benchmark.sweep import expand_range, expand_spec, load_sweep, parse_shard, shard_specs, unit_key
from conftest import ROOT, TINY_ML, run_cli

PLUGIN = str(ROOT / "tests" / "plugins" / "faults.py")


def grid(*argv: str):
    args = build_parser().parse_args(list(argv))
    return resolve_grid(args, load_sweep(args.sweep) if args.sweep else None)


def write(tmp_path: Path, text: str) -> str:
    p = tmp_path / "sweep.toml"
    p.write_text(text)
    return str(p)


# ---- ranges ----------------------------------------------------------------------------------------------------

def test_ranges_are_inclusive_and_round_to_short_decimals():
    assert expand_range("0:1:0.25") == ["0", "0.25", "0.5", "0.75", "1"]
    assert expand_range("0:1:0.1")[3] == "0.3" and len(expand_range("0:1:0.1")) == 11  # not 0.30000000000000004
    assert expand_range("0.1:0.3:0.1") == ["0.1", "0.2", "0.3"]  # 0.1 + 2*0.1 = 0.30000000000000004 <= 0.3 still
    assert expand_range("1:10:3") == ["1", "4", "7", "10"]
    assert expand_range("1:0:-0.5") == ["1", "0.5", "0"]
    assert expand_range("0:1:0.3") == ["0", "0.3", "0.6", "0.9"]  # stop not on the grid: values up to it
    assert expand_range("1e-4:3e-4:1e-4") == ["0.0001", "0.0002", "0.0003"]


@pytest.mark.parametrize("text,needle", [
    ("1:0:0.25", "is empty"), ("0:1:0", "non-zero step"), ("0:1000:0.001", "at most 1000"),
])
def test_bad_ranges_say_how_to_write_them(text, needle):
    with pytest.raises(UserError, match=needle):
        expand_range(text)


def test_spec_ranges_cross_and_leave_other_colons_alone():
    assert expand_spec("oversample:beta=0:1:0.5,aggregate=sum") == [
        "oversample:beta=0,aggregate=sum", "oversample:beta=0.5,aggregate=sum", "oversample:beta=1,aggregate=sum"]
    assert len(expand_spec("m:a=0:1:1,b=0:2:1")) == 6
    assert expand_spec("audioset:init=hub:MIT/ast-finetuned") == ["audioset:init=hub:MIT/ast-finetuned"]


def test_command_line_range_gives_one_method_per_value():
    tasks, methods, seeds = grid("--task", TINY_ML, "--method", "oversample:beta=0:1:0.25,focal", "--seeds", "0,2")
    betas = [m.beta for m in methods if m.name == "oversample"]
    assert betas == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert [m.name for m in methods][0] == "none" and methods[-1].name == "focal" and seeds == [0, 2]


# ---- sweep files -----------------------------------------------------------------------------------------------

def test_sweep_file_tables_strings_grids_seeds_and_overrides(tmp_path):
    path = write(tmp_path, f"""
description = "test"
seeds = "0:4:2"
out = "runs/x"
tasks = ["{TINY_ML}"]

[overrides]
hidden = 8

[[methods]]
name = "oversample"
params = {{ aggregate = "sum" }}
grid = {{ beta = [0.5, 1] }}

[[methods]]
name = "focal"
grid = {{ gamma = "1:2:1" }}

[[methods]]
name = "class_weighted"
""")
    sw = load_sweep(path)
    assert sw.out == "runs/x" and sw.seeds == [0, 2, 4] and sw.description == "test"
    tasks, methods, seeds = grid("--sweep", path)
    assert len(tasks) == 1 and tasks[0].hidden == 8  # [overrides] wins over the spec's hidden=16
    assert [(m.name, dict(m.hparams)) for m in methods if m.name == "oversample"] == [
        ("oversample", {"beta": 0.5, "aggregate": "sum"}), ("oversample", {"beta": 1.0, "aggregate": "sum"})]
    assert [m.gamma for m in methods if m.name == "focal"] == [1.0, 2.0]
    assert len(methods) == 1 + 2 + 2 + 1 and seeds == [0, 2, 4]
    # the command line wins over the file's seeds
    assert grid("--sweep", path, "--seeds", "1")[2] == [0]


def test_shipped_synth_sweep_resolves_to_the_beta_grid():
    tasks, methods, seeds = grid("--sweep", str(ROOT / "sweeps" / "synth.toml"))
    assert [t.name for t in tasks] == ["synth-multilabel"] and seeds == [0, 1, 2]
    assert [m.beta for m in methods[1:]] == [0.0, 0.25, 0.5, 0.75, 1.0]
    from benchmark.runner import plan

    assert len(plan(tasks, methods, seeds)) == 3 * 6


def test_shipped_paper_sweep_is_the_beta_grid_on_audioset():
    sw = load_sweep(ROOT / "sweeps" / "paper.toml")
    assert [t.name for t in sw.tasks] == ["audioset"] and sw.seeds == [0, 1, 2]
    assert [e.params["beta"] for e in sw.methods] == [0, 0.25, 0.5, 0.75, 1]
    assert {e.name for e in sw.methods} == {"oversample"}
    from benchmark.registry import list_tasks

    if "audioset" in list_tasks():  # the real task: the whole grid must resolve (no data is touched)
        tasks, methods, seeds = grid("--sweep", str(ROOT / "sweeps" / "paper.toml"))
        assert len(methods) == 6 and seeds == [0, 1, 2] and tasks[0].config == "full"


# ---- shards ----------------------------------------------------------------------------------------------------

def test_shard_parsing():
    assert parse_shard("0/1") == (0, 1) and parse_shard(" 7 / 8 ") == (7, 8) and parse_shard(None) is None
    for bad in ("3/2", "2/2", "1/0", "-1/2", "a/b", "1"):
        with pytest.raises(UserError, match="--shard"):
            parse_shard(bad)


def test_shards_partition_the_grid_deterministically_and_keep_posthoc_with_their_baseline():
    from benchmark.runner import plan

    tasks, methods, seeds = grid("--task", TINY_ML, "--method", "oversample:beta=0:1:0.25,logit_adjust",
                                 "--seeds", "3")
    full = plan(tasks, methods, seeds)
    assert len(full) == 3 * 7
    ids = [s.run_id for s in full]
    parts = [[s.run_id for s in plan(tasks, methods, seeds, (i, 4))] for i in range(4)]
    assert sorted(sum(parts, [])) == sorted(ids)  # a partition: every run exactly once
    assert parts == [[s.run_id for s in plan(tasks, methods, seeds, (i, 4))] for i in range(4)]  # deterministic
    assert max(map(len, parts)) - min(map(len, parts)) <= 3  # units dealt round-robin
    for part in parts:
        assert [i for i in ids if i in part] == part  # grid order (baseline first) within a shard
    by_id = {s.run_id: s for s in full}
    for part in parts:
        for rid in part:
            s = by_id[rid]
            if s.method.posthoc:
                assert s.baseline().run_id in part and part.index(s.baseline().run_id) < part.index(rid)
    assert {unit_key(s) for s in full if s.method.posthoc} == {s.run_id for s in full if s.method.name == "none"}
    assert shard_specs(full, 0, 1) == full


def test_two_shards_fill_one_results_directory(tmp_path):
    out = tmp_path / "out"
    common = ("--plugin", PLUGIN, "--task", TINY_ML, "--method", "oversample:beta=0:1:1,test-posthoc",
              "--seeds", "1", "--out", str(out), "--quiet")
    r0 = run_cli(*common, "--shard", "0/2", "--no-report")
    r1 = run_cli(*common, "--shard", "1/2")
    assert r0.returncode == 0 and r1.returncode == 0, r0.stderr + r1.stderr
    files = sorted((out / "results").glob("*/*.json"))
    assert len(files) == 4  # none, β=0, β=1, test-posthoc: each once
    runs = [json.loads(p.read_text()) for p in files]
    assert all(d["status"] == "ok" for d in runs)
    done = [int(r.stdout.split(" run(s) done")[0].split()[-1]) for r in (r0, r1)]
    assert sum(done) == 4 and min(done) >= 1



def test_an_empty_shard_is_not_an_error(tmp_path, capsys):
    from benchmark import cli

    out = tmp_path / "out"  # 3 runs in 2 units: part 5 of 8 is empty (a Slurm array larger than the grid)
    rc = cli.main(["--task", TINY_ML, "--method", "oversample:beta=1", "--seeds", "1", "--out", str(out),
                   "--shard", "5/8"])
    assert rc == 0 and "empty" in capsys.readouterr().err and not out.exists()


# ---- progress, logs, trackers ----------------------------------------------------------------------------------

def _env_with_bars() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "TQDM_DISABLE"}
    env["COLUMNS"] = "120"
    return env


def test_progress_bars_show_unless_quiet_and_each_run_has_a_log(tmp_path):
    import subprocess

    out = tmp_path / "out"
    cmd = [sys.executable, str(ROOT / "run_benchmark.py"), "--task", TINY_ML, "--method", "oversample:beta=1",
           "--seeds", "1", "--out", str(out), "--no-report"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=_env_with_bars(), timeout=600)
    assert r.returncode == 0, r.stderr
    assert "runs: 100%" in r.stderr and "2/2" in r.stderr  # the grid bar: runs done / total
    assert "oversample:beta=1 seed 0" in r.stderr  # the steps bar of a run
    logs = sorted((out / "logs").glob("*.log"))
    assert len(logs) == 2
    text = {p.stem: p.read_text() for p in logs}
    for d in (json.loads(p.read_text()) for p in (out / "results").glob("*/*.json")):
        log = text[d["run_id"]]
        assert f"start {d['config']['task']['spec']} {d['config']['method']['spec']} seed=0" in log
        assert "step 0/" in log and " loss " in log and "done status=ok" in log
    q = subprocess.run(cmd + ["--quiet"], capture_output=True, text=True, env=_env_with_bars(), timeout=600)
    assert q.returncode == 0 and "0 run(s) done, 2 already finished" in q.stdout
    assert "%|" not in q.stderr and "runs:" not in q.stderr  # the same rerun without --quiet shows the bar at 2/2


def test_log_with_tensorboard_writes_loss_and_final_metrics(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "out"
    r = run_cli("--task", TINY_ML, "--method", "oversample:beta=1", "--seeds", "1", "--out", str(out), "--quiet",
                "--no-report", "--log-with", "tensorboard")
    assert r.returncode == 0, r.stderr
    runs = sorted(p for p in (out / "tensorboard").iterdir() if p.is_dir())
    assert len(runs) == 2
    ids = {json.loads(p.read_text())["run_id"] for p in (out / "results").glob("*/*.json")}
    assert {p.name for p in runs} == ids
    ev = EventAccumulator(str(runs[0]))
    ev.Reload()
    tags = set(ev.Tags()["scalars"])
    assert "train/loss" in tags and "eval/natural/mAP" in tags and "failed" in tags


def test_log_with_a_missing_tracker_names_the_package(monkeypatch, tmp_path, capsys):
    import importlib.util

    from benchmark import cli

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else real(name, *a))
    out = tmp_path / "out"
    rc = cli.main(["--task", TINY_ML, "--method", "focal", "--out", str(out), "--log-with", "tensorboard"])
    err = capsys.readouterr().err
    assert rc == 2 and "pip install tensorboard" in err and err.count("\n") == 1
    assert not out.exists()


def test_default_grid_runs_posthoc_logit_adjust_on_single_label_tasks_only(capsys):
    """On multi-label ranking metrics a per-class logit shift equals the baseline exactly: not worth a run."""
    from benchmark.runner import grid_specs

    tasks, methods, seeds = grid()  # the offline default grid
    pairs = {(s.task.name, s.method.name) for s in grid_specs(tasks, methods, seeds)}
    assert ("synth-singlelabel", "logit_adjust") in pairs and ("digits-lt", "logit_adjust") in pairs
    assert ("synth-multilabel", "logit_adjust") not in pairs and ("synth-multilabel", "oversample") in pairs
    assert "runs 'logit_adjust' on single-label tasks only" in capsys.readouterr().err
    # default methods on a multi-label task only: dropped, not an error
    tasks, methods, seeds = grid("--task", "synth-multilabel")
    assert "logit_adjust" not in {m.name for m in methods}
    # asked for explicitly, it still runs there (the report then names it once as equal to the baseline)
    tasks, methods, seeds = grid("--task", "synth-multilabel", "--method", "logit_adjust")
    assert ("synth-multilabel", "logit_adjust") in {(s.task.name, s.method.name)
                                                   for s in grid_specs(tasks, methods, seeds)}
