"""Kill and resume: SIGKILL mid-sweep then rerun, checkpoints, corrupt results, claims, concurrent processes."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.claims import Claims, claim_path, process_start, read_claim, stale_reason
from benchmark.core.results import read_result
from conftest import ROOT, TINY_ML, run_cli

PLUGIN = str(ROOT / "tests" / "plugins" / "faults.py")
FAULTY = TINY_ML.replace("synth-multilabel", "test-faulty-ml")


def start_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "run_benchmark.py"), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, env=dict(os.environ))


def wait_for(cond, proc: subprocess.Popen, timeout: float = 240.0) -> None:
    t0 = time.time()
    while not cond():
        assert proc.poll() is None, f"finished before it could be killed: {proc.communicate()}"
        assert time.time() - t0 < timeout, "timed out waiting"
        time.sleep(0.02)


def results(out: Path) -> list[Path]:
    return sorted((out / "results").glob("*/*.json"))


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def fake_claim(path: Path, pid: int, host: str, age_s: float = 0.0, proc_start=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "host": host, "boot_id": "", "proc_start": proc_start,
                                "started": "2026-01-01T00:00:00", "token": "x" * 32}))
    if age_s:
        t = time.time() - age_s
        os.utime(path, (t, t))


# ---- claims ----------------------------------------------------------------------------------------------------

def test_claim_is_exclusive_and_released(tmp_path):
    res = tmp_path / "r" / "abc.json"
    a, b = Claims(), Claims()
    got = a.acquire(res)
    assert got.acquired and claim_path(res).exists()
    info = read_claim(claim_path(res))
    assert info.pid == os.getpid() and info.host == socket.gethostname() and info.proc_start == process_start(os.getpid())
    other = b.acquire(res)  # a live owner (this very process): not stale, not ours
    assert not other.acquired and other.holder.pid == os.getpid()
    b.release(res)  # not b's claim: left alone
    assert claim_path(res).exists() and a.still_held(res)
    a.release(res)
    assert not claim_path(res).exists()
    assert b.acquire(res).acquired
    b.release_all()
    assert not claim_path(res).exists() and not list(res.parent.glob(".*"))


def test_stale_claims_are_taken_over_and_live_ones_are_not(tmp_path):
    res = tmp_path / "abc.json"
    c = claim_path(res)
    host = socket.gethostname()
    fake_claim(c, dead_pid(), host)  # same host, process gone
    got = Claims().acquire(res)
    assert got.acquired and "is gone" in got.took_over
    Claims().release_all()
    c.unlink()
    fake_claim(c, os.getpid(), host, proc_start="1")  # our pid, but another process start: the pid was reused
    assert "gone" in stale_reason(read_claim(c))
    fake_claim(c, 12345, "another-host", age_s=5)  # another host with a fresh heartbeat: running there
    assert stale_reason(read_claim(c), stale_after_s=60) is None
    assert not Claims(stale_after_s=60).acquire(res).acquired
    fake_claim(c, 12345, "another-host", age_s=120)  # no heartbeat for 2 minutes
    got = Claims(stale_after_s=60).acquire(res)
    assert got.acquired and "no heartbeat" in got.took_over
    c.write_text("{trunc")  # unreadable, judged by age
    os.utime(c, (time.time() - 120,) * 2)
    assert stale_reason(read_claim(c), stale_after_s=60) is not None


def test_heartbeat_touches_held_claims(tmp_path):
    res = tmp_path / "abc.json"
    claims = Claims(heartbeat_s=0.05)
    assert claims.acquire(res).acquired
    old = time.time() - 100
    os.utime(claim_path(res), (old, old))
    time.sleep(0.4)
    assert claim_path(res).stat().st_mtime > old + 50
    claims.release_all()


# ---- kill and resume -------------------------------------------------------------------------------------------

@pytest.mark.slow(reason="kills a real sweep mid-run, then reruns it: ~6 s quiet, 30+ s on a loaded 2-core box")
def test_sigkill_mid_sweep_then_rerun_completes_every_run_exactly_once(tmp_path):
    out = tmp_path / "out"
    # one process: SIGKILL does not reach the helper processes of --workers, which would finish the grid meanwhile
    args = ("--task", TINY_ML, "--method", "oversample:beta=0:1:0.25", "--seeds", "1", "--out", str(out), "--quiet",
            "--workers", "1")
    proc = start_cli(*args, "--no-report")
    wait_for(lambda: len(results(out)) >= 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = results(out)
    assert 2 <= len(finished) < 6
    # what a non-atomic writer killed mid-write would leave: a truncated result, and a temp file of our own writer
    broken = finished[0]
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])
    (broken.parent / f".{broken.name}.x1y2.tmp").write_bytes(b'{"schema_version": 1, "ru')
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    assert f"warning: {broken}" in r.stderr and "redoing" in r.stderr
    files = results(out)
    assert len(files) == 6  # none + 5 β
    runs = [read_result(p) for p in files]
    assert all(d is not None and d["status"] == "ok" for d in runs)
    assert len({d["run_id"] for d in runs}) == 6
    assert sorted(d["config"]["method"]["spec"] for d in runs) == sorted(
        ["none"] + [f"oversample:beta={b}" for b in ("0", "0.25", "0.5", "0.75", "1")])
    done = {p.stem: p.read_text().count("done status=") for p in (out / "logs").glob("*.log")}
    for p in finished:  # finished before the kill: not run again, except the one we broke
        assert done[p.stem] == (2 if p == broken else 1)
    assert sum(done.values()) == 6 + 1
    left = list(out.glob("results/*/*.claim")) + list(out.glob("results/*/.*"))
    assert not left, left


@pytest.mark.parametrize("damage,reason", [
    (lambda d: {"schema_version": 1, "run_id": "x"}, "run_id 'x' does not match the file name"),
    (lambda d: {**d, "run_id": "0" * 16}, "does not match the file name"),
    (lambda d: {**d, "eval": {}}, "status ok but no evaluation results"),
    (lambda d: {k: v for k, v in d.items() if k != "config"}, "'config' is missing"),
    (lambda d: {**d, "status": "failed", "error": None}, "status failed without an error"),
])
def test_a_parseable_but_bogus_result_is_not_finished(tmp_path, damage, reason):
    from benchmark.core.results import check_result

    path = tmp_path / "results" / "t" / "0123456789abcdef.json"
    path.parent.mkdir(parents=True)
    good = {"schema_version": 1, "run_id": path.stem, "status": "ok", "error": None, "config": {"seed": 0},
            "task_info": {"name": "t"}, "eval": {"natural": {"metrics": {"mAP": 0.5}}}, "env": {}}
    path.write_text(json.dumps(good))
    assert check_result(path).state == "ok" and read_result(path) == good
    path.write_text(json.dumps(damage(good)))
    check = check_result(path)
    assert check.state == "invalid" and reason in check.reason and read_result(path) is None


def test_a_bogus_result_is_redone_with_a_warning(tmp_path):
    out = tmp_path / "out"
    args = ("--task", TINY_ML, "--method", "none", "--seeds", "1", "--out", str(out), "--quiet", "--no-report")
    assert run_cli(*args).returncode == 0
    (path,) = results(out)
    path.write_text(json.dumps({"schema_version": 1, "run_id": "x"}))
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    assert f"warning: {path} is not a valid result (run_id 'x' does not match the file name" in r.stderr
    assert "redoing that run" in r.stderr and "1 run(s) done, 0 already finished" in r.stdout
    assert read_result(path)["status"] == "ok"


@pytest.mark.slow(reason="trains one run three times (killed, resumed, reference): ~13 s quiet, 35 s loaded")
def test_killed_long_run_resumes_from_its_checkpoint_with_identical_results(tmp_path):
    task = f"{FAULTY},ckpt_every=3,step_sleep=0.08,lr_decay=0.9"  # the LR schedule's state must resume too
    args = ("--plugin", PLUGIN, "--task", task, "--method", "none", "--seeds", "1", "--quiet", "--no-report")
    out = tmp_path / "killed"
    proc = start_cli(*args, "--out", str(out))
    wait_for(lambda: any(out.glob("checkpoints/*/step.json")), proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not results(out)
    r = run_cli(*args, "--out", str(out))
    assert r.returncode == 0, r.stderr
    (res,) = [read_result(p) for p in results(out)]
    log = (out / "logs" / f"{res['run_id']}.log").read_text()
    assert "resumed from checkpoint at step" in log
    assert not (out / "checkpoints" / res["run_id"]).exists()  # the result supersedes the checkpoint
    ref_out = tmp_path / "ref"
    assert run_cli(*args, "--out", str(ref_out)).returncode == 0
    (ref,) = [read_result(p) for p in results(ref_out)]
    assert ref["run_id"] == res["run_id"]
    assert res["eval"] == ref["eval"] and res["effective_prior"] == ref["effective_prior"]


def test_two_concurrent_processes_never_run_one_config_twice(tmp_path):
    out = tmp_path / "out"
    args = ("--plugin", PLUGIN, "--task", f"{FAULTY},step_sleep=0.04", "--method",
            "oversample:beta=0:1:0.5,test-posthoc", "--seeds", "1", "--out", str(out), "--quiet", "--no-report",
            "--workers", "1")  # exactly two processes (no helpers), so that their "run(s) done" add up to the grid
    procs = [start_cli(*args) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    files = results(out)
    assert len(files) == 5 and all(read_result(p)["status"] == "ok" for p in files)
    starts = {p.stem: p.read_text().count(" start ") for p in (out / "logs").glob("*.log")}
    assert len(starts) == 5 and set(starts.values()) == {1}  # each configuration started by one process, once
    done = [int(o.split(" run(s) done")[0].split()[-1]) for o, _ in outs]
    assert sum(done) == 5
    assert not list(out.glob("results/*/*.claim"))


def test_same_command_twice_gives_identical_metrics(tmp_path):
    args = ("--task", TINY_ML, "--method", "oversample:beta=1", "--seeds", "1", "--quiet", "--no-report")
    runs = []
    for name in ("a", "b"):
        r = run_cli(*args, "--out", str(tmp_path / name))
        assert r.returncode == 0, r.stderr[-2000:]
        runs.append({d["run_id"]: d for d in map(read_result, results(tmp_path / name))})
    assert runs[0].keys() == runs[1].keys() and len(runs[0]) == 2
    for rid, a in runs[0].items():
        b = runs[1][rid]
        for key in ("effective_prior", "val", "eval"):
            assert a[key] == b[key], (key, first_difference(a[key], b[key]))


def first_difference(a, b, path=""):
    """Where two JSON values first differ, for the failure message."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return first_difference(a.get(k), b.get(k), f"{path}/{k}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return first_difference(x, y, f"{path}[{i}]")
    return path, a, b


def test_weight_average_survives_a_checkpoint_round_trip():
    """A resumed run averages the same end-of-epoch weights as one that was never stopped: the averager's state
    travels with the LR schedule's state_dict (through torch.save with weights_only, as the engine saves it)."""
    import io

    import torch
    from torch import nn

    from benchmark.audio.recipe import ast_optimizer

    def train(steps: range, model, opt, sched):
        for s in steps:
            g = torch.Generator().manual_seed(s)
            loss = model(torch.randn(8, 3, generator=g)).square().mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()

    def fresh():
        torch.manual_seed(0)
        model = nn.Linear(3, 2)
        model.averager = None  # the slot ast_optimizer fills
        opt, sched = ast_optimizer(model, lr=0.05, batches_per_epoch=4, total_steps=20, warmup=2, average_from=1)
        return model, opt, sched

    model, opt, sched = fresh()
    train(range(20), model, opt, sched)
    model.averager.finish()
    want = [p.detach().clone() for p in model.parameters()]

    model, opt, sched = fresh()
    train(range(10), model, opt, sched)  # stopped mid-epoch, after two snapshots
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    model, opt, sched = fresh()
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    assert model.averager.count == 2
    train(range(10, 20), model, opt, sched)
    model.averager.finish()
    for got, ref in zip(model.parameters(), want):
        torch.testing.assert_close(got.detach(), ref, rtol=0, atol=1e-7)
