"""The command line as a user runs it: listing, bad input (one line, exit 2, nothing written), help."""
import os

import pytest

from conftest import TINY_ML, run_cli


def test_list_shows_methods_and_tasks():
    r = run_cli("--list")
    assert r.returncode == 0, r.stderr
    assert "oversample" in r.stdout and "synth-multilabel" in r.stdout and "focal" in r.stdout
    v = run_cli("--list", "--verbose")
    assert "beta: float=0.5 [0, 4]" in v.stdout and "source:" in v.stdout


def test_help_has_examples():
    r = run_cli("--help")
    assert r.returncode == 0 and "examples:" in r.stdout and "report runs/default" in r.stdout


@pytest.mark.parametrize("args,needle", [
    (["--method", "nosuch"], "unknown method 'nosuch'"),
    (["--task", "nosuch"], "unknown task 'nosuch'"),
    (["--method", "oversample:beta=-1"], "must be >= 0"),
    (["--method", "oversample:beta=abc"], "must be float"),
    (["--method", "oversample:bta=1"], "unknown parameter 'bta'"),
    (["--seeds", "0"], "need at least 1 seed"),
    (["--seeds", "x"], "give a count"),
])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, args, needle):
    out = tmp_path / "out"
    r = run_cli(*args, "--task", TINY_ML, "--out", str(out)) if "--task" not in args else run_cli(*args, "--out", str(out))
    assert r.returncode == 2
    assert needle in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert not out.exists()


def test_unwritable_out_is_an_error(tmp_path):
    if os.geteuid() == 0:
        target = "/proc/balancebench-out"  # root can write anywhere on disk, but not into /proc
    else:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        target = str(ro / "out")
    r = run_cli("--task", TINY_ML, "--method", "focal", "--out", target)
    assert r.returncode == 2 and "--out" in r.stderr and "Traceback" not in r.stderr
    f = tmp_path / "file"
    f.write_text("x")
    r = run_cli("--task", TINY_ML, "--out", str(f / "sub"))
    assert r.returncode == 2 and "is a file" in r.stderr


def test_report_of_missing_dir_is_an_error(tmp_path):
    r = run_cli("report", str(tmp_path / "nothing"))
    assert r.returncode == 2 and "no results/ folder" in r.stderr
