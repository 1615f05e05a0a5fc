"""Bad input and faults: a one-line error naming the fix, exit != 0, no traceback, nothing written; or, for data
faults the benchmark can live with, a run that says what it excluded or why it failed."""
import json
import sys
from pathlib import Path

import pytest

from benchmark import cli
from conftest import ROOT, TINY_ML, TINY_SL, run_cli

PLUGIN = str(ROOT / "tests" / "plugins" / "faults.py")
FAULTY_ML = TINY_ML.replace("synth-multilabel", "test-faulty-ml")
FAULTY_SL = TINY_SL.replace("synth-singlelabel", "test-faulty-sl")
BROKEN = 3  # the class the plugin breaks


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def one_line_error(rc: int, err: str, needle: str) -> None:
    assert rc != 0, err
    assert needle in err, err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err


def main_in_process(capsys, *argv: str) -> tuple[int, str]:
    rc = cli.main(list(argv))
    return rc, capsys.readouterr().err


# ---- sweep files and grids (checked before anything is imported or written) -------------------------------------

@pytest.mark.parametrize("text,needle", [
    ('tasks = ["synth-multilabel"\n', "is not valid TOML"),
    ('seeds = [0, 1]\ntask = ["synth-multilabel"]\n', "unknown key 'task'; valid keys: description, seeds, out, tasks"),
    ('[[tasks]]\nname = "synth-multilabel"\nparam = { classes = 4 }\n', "unknown key 'param'; valid keys: name, params, grid"),
    ('[[tasks]]\nname = "synth-multilabel"\n[[methods]]\nname = "oversample"\ngrid = { beta = 0.5 }\n',
     "grid.beta must be a non-empty list or a range"),
    ('[[tasks]]\nname = "synth-multilabel"\n[[methods]]\nname = "oversample"\ngrid = { beta = "1:0:0.5" }\n',
     "is empty"),
    ('[[tasks]]\nname = "synth-multilabel"\n[[methods]]\nname = "oversample"\ngrid = { bta = [1] }\n',
     "unknown parameter 'bta'"),
    ('tasks = []\n[[methods]]\nname = "oversample"\n', "the grid has zero runs"),
    ('seeds = []\ntasks = ["synth-multilabel"]\n', "zero runs"),
    ('tasks = ["synth-multilabel"]\n[overrides]\nrho = 5\n', "[overrides] rho"),
])
def test_bad_sweep_files(tmp_path, capsys, text, needle):
    sweep = tmp_path / "bad.toml"
    sweep.write_text(text)
    out = tmp_path / "out"
    rc, err = main_in_process(capsys, "--sweep", str(sweep), "--out", str(out))
    one_line_error(rc, err, needle)
    assert rc == 2 and not out.exists()


@pytest.mark.parametrize("args,needle", [
    (["--sweep", "nosuch.toml"], "no such file"),
    (["--sweep", str(ROOT / "sweeps" / "synth.toml"), "--method", "focal"], "drop --task/--method"),
    (["--shard", "3/2", "--task", TINY_ML], "must be below the count"),
    (["--shard", "1-2", "--task", TINY_ML], "write INDEX/COUNT"),
    (["--task", TINY_ML, "--method", "oversample:beta=0:1:0"], "non-zero step"),
])
def test_bad_command_lines(tmp_path, capsys, args, needle):
    out = tmp_path / "out"
    rc, err = main_in_process(capsys, *args, "--out", str(out))
    one_line_error(rc, err, needle)
    assert not out.exists()


def test_results_of_another_schema_version_are_refused(tmp_path, capsys):
    out = tmp_path / "out"
    old = out / "results" / "synth-multilabel" / "0123456789abcdef.json"
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps({"schema_version": 0, "run_id": "0123456789abcdef", "status": "ok"}, indent=1))
    before = listing(out)
    rc, err = main_in_process(capsys, "--task", TINY_ML, "--method", "focal", "--out", str(out))
    one_line_error(rc, err, "schema version 0")
    assert "choose another --out" in err and "migrate" in err
    assert listing(out) == before


# ---- faults while running --------------------------------------------------------------------------------------

DISK_FULL = """
import errno, os, sys
sys.path.insert(0, {root!r})
real = os.fdopen

class Full:
    '''A file on a full disk: half of the bytes land, then ENOSPC.'''
    def __init__(self, f): self.f = f
    def write(self, data):
        self.f.write(data[: len(data) // 2]); self.f.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    def __getattr__(self, name): return getattr(self.f, name)
    def __enter__(self): return self
    def __exit__(self, *exc): self.f.close()

def fdopen(fd, *a, **k):
    f = real(fd, *a, **k)
    return Full(f) if os.readlink(f"/proc/self/fd/{{fd}}").endswith(".tmp") else f

os.fdopen = fdopen
from benchmark.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_disk_full_while_writing_is_one_line_and_leaves_no_partial_file(tmp_path):
    import subprocess

    script = tmp_path / "full.py"
    script.write_text(DISK_FULL.format(root=str(ROOT)))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(script), "--task", TINY_ML, "--method", "focal", "--seeds", "1",
                        "--out", str(out), "--quiet"], capture_output=True, text=True, timeout=600)
    one_line_error(r.returncode, r.stderr, "error: disk full")
    assert "free space or choose another --out" in r.stderr
    left = listing(out / "results")
    assert not [p for p in left if p.endswith((".tmp", ".json", ".npz", ".pt", ".claim"))], left


def test_labels_out_of_range_is_one_line_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    r = run_cli("--plugin", PLUGIN, "--task", f"{FAULTY_SL},fault=labels_out_of_range", "--method", "focal",
                "--out", str(out), "--quiet")
    one_line_error(r.returncode, r.stderr, "labels out of range [0, 6)")
    assert "fix the label mapping" in r.stderr and not out.exists()


@pytest.fixture(scope="module")
def faults_run(tmp_path_factory):
    """One sweep over broken data and a diverging method; it must go through and say what happened."""
    out = tmp_path_factory.mktemp("faults") / "out"
    r = run_cli("--plugin", PLUGIN,
                "--task", f"{FAULTY_ML},fault=zero_class", "--task", f"{FAULTY_ML},fault=no_pos_eval",
                "--task", f"{FAULTY_ML},fault=nan_features", "--task", f"{FAULTY_SL},fault=zero_class",
                "--method", "test-nan-loss:at=0.3,test-posthoc", "--seeds", "1", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    runs = {}
    for p in sorted((out / "results").glob("*/*.json")):
        text = p.read_text()
        assert "NaN" not in text and "Infinity" not in text
        d = json.loads(text)
        runs[(d["task_info"]["name"], d["config"]["task"]["params"]["fault"], d["config"]["method"]["name"])] = d
    return out, r, runs


def test_class_without_training_examples_is_excluded_and_reported(faults_run):
    out, _, runs = faults_run
    for task, key in (("test-faulty-ml", "AP"), ("test-faulty-sl", "recall")):
        d = runs[(task, "zero_class", "none")]
        assert d["status"] == "ok"
        assert d["train_stats"]["absent_classes"] == [BROKEN] and d["train_stats"]["class_counts"][BROKEN] == 0
        for view, e in d["eval"].items():
            assert e["excluded_classes"] == [BROKEN], view
            assert e["per_class"][key][BROKEN] is None
            assert all(v is not None for j, v in enumerate(e["per_class"][key]) if j != BROKEN), view
            assert e["n_classes_scored"] == d["train_stats"]["n_classes"] - 1
        assert d["eval"]["inverse"]["class_counts"][BROKEN] == 0 or task == "test-faulty-ml"  # no mirrored rank
    report = (out / "report.md").read_text()
    assert "1 (class_3)" in report  # the absent-classes column of the task table


def test_eval_view_without_positives_for_a_class_is_na_not_nan(faults_run):
    _, _, runs = faults_run
    d = runs[("test-faulty-ml", "no_pos_eval", "none")]
    assert d["status"] == "ok" and d["train_stats"]["absent_classes"] == []
    for view, e in d["eval"].items():
        assert e["class_counts"][BROKEN] == 0
        assert e["per_class"]["AP"][BROKEN] is None and e["per_class"]["AUC"][BROKEN] is None
        assert 0 < e["metrics"]["mAP"] <= 1 and e["n_classes_scored"] == 11


def test_nan_loss_fails_the_run_with_a_reason_and_the_sweep_goes_on(faults_run):
    out, r, runs = faults_run
    for fault in ("zero_class", "no_pos_eval"):
        bad = runs[("test-faulty-ml", fault, "test-nan-loss")]
        assert bad["status"] == "failed" and "loss became nan" in bad["error"] and bad["eval"] == {}
        assert runs[("test-faulty-ml", fault, "none")]["status"] == "ok"
        assert runs[("test-faulty-ml", fault, "test-posthoc")]["status"] == "ok"
    # a diverging baseline fails its post-hoc dependents too, with the reason, instead of stopping the sweep
    base = runs[("test-faulty-ml", "nan_features", "none")]
    post = runs[("test-faulty-ml", "nan_features", "test-posthoc")]
    assert base["status"] == "failed" and "loss became nan" in base["error"]
    assert post["status"] == "failed" and "baseline 'none'" in post["error"]
    n_failed = sum(d["status"] == "failed" for d in runs.values())
    assert n_failed == 6 and f"{n_failed} failed" in r.stdout
    assert r.stderr.count("run failed:") == n_failed
    report = (out / "report.md").read_text()
    failed_section = report.split("## Failed runs", 1)[1]
    assert failed_section.count("`test-nan-loss:at=0.3`") == 4 and "loss became nan" in failed_section
