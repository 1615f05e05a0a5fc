"""Bad input and faults: a one-line error naming the fix, exit != 0, no traceback, nothing written; or, for data
faults the benchmark can live with, a run that says what it excluded or why it failed."""
import json
import os
import sys
from pathlib import Path

import pytest

from benchmark import cli
from benchmark.registry import get_task
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
    (["--task", TINY_ML, "--seeds", "99999999999", "--method", "focal"], "--seeds 99999999999: at most 10000 seeds"),
    (["--task", TINY_ML, "--seeds", "0,99999999999", "--method", "focal"], "seeds must be below 2^32"),
    (["--task", TINY_ML, "--method", ""], "--method '' names no method"),
    (["--task", TINY_ML, "--method", ","], "--method ',' names no method"),
    (["--task", TINY_ML, "--method", "focal", "--method", " "], "--method ' ' names no method"),
    (["--task", TINY_ML, "--shard", "-1/2", "--method", "focal"], "--shard -1/2: the index is 0-based"),
    (["--task", TINY_ML, "--shard=-1/2", "--method", "focal"], "e.g. --shard 1/2 for the last part"),
])
def test_bad_command_lines(tmp_path, capsys, args, needle):
    out = tmp_path / "out"
    rc, err = main_in_process(capsys, *args, "--out", str(out))
    one_line_error(rc, err, needle)
    assert not out.exists()


def test_sweep_file_seeds_are_bounded_too(tmp_path, capsys):
    sweep = tmp_path / "s.toml"
    sweep.write_text(f'seeds = 99999999999\ntasks = ["{TINY_ML}"]\n')
    rc, err = main_in_process(capsys, "--sweep", str(sweep), "--out", str(tmp_path / "out"))
    one_line_error(rc, err, "at most 10000 seeds")


def test_integer_parameters_parse_exactly_and_refuse_floats():
    from benchmark import UserError
    from benchmark.registry import get_task

    assert get_task("digits-lt:data_seed=9007199254740993").data_seed == 9007199254740993  # 2^53 + 1, exact
    assert get_task("digits-lt:data_seed=+7").data_seed == 7
    for text in ("1e1", "10.0", "0x10", "ten"):
        with pytest.raises(UserError, match=f"parameter 'hidden' must be an integer such as 10, got '{text}'"):
            get_task(f"synth-multilabel:hidden={text}")
    with pytest.raises(UserError, match="parameter 'hidden' must be int, got 10.0"):  # a TOML float
        get_task("synth-multilabel", hidden=10.0)


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
    name = os.readlink(f"/proc/self/fd/{{fd}}")
    return Full(f) if name.endswith(".tmp") and {match!r} in name else f

os.fdopen = fdopen
from benchmark.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_disk_full_while_writing_is_one_line_and_leaves_no_partial_file(tmp_path):
    import subprocess

    script = tmp_path / "full.py"
    script.write_text(DISK_FULL.format(root=str(ROOT), match=""))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(script), "--task", TINY_ML, "--method", "focal", "--seeds", "1",
                        "--out", str(out), "--quiet"], capture_output=True, text=True, timeout=600)
    one_line_error(r.returncode, r.stderr, "error: disk full")
    assert "free space or choose another --out" in r.stderr
    left = listing(out / "results")
    assert not [p for p in left if p.endswith((".tmp", ".json", ".npz", ".pt", ".claim"))], left


def test_disk_full_after_the_model_was_saved_leaves_no_orphan_model_or_log(tmp_path):
    import subprocess

    script = tmp_path / "full.py"
    script.write_text(DISK_FULL.format(root=str(ROOT), match=".npz."))  # the baseline's .pt lands, its .npz not
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, str(script), "--task", TINY_ML, "--method", "focal", "--seeds", "1",
                        "--out", str(out), "--quiet"], capture_output=True, text=True, timeout=600)
    one_line_error(r.returncode, r.stderr, "error: disk full writing")
    assert r.returncode == 3 and ".npz" in r.stderr
    assert listing(out / "results") in ([], ["synth-multilabel"]), listing(out / "results")
    assert listing(out / "logs") == [] and not (out / "checkpoints").exists()


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
    assert r.returncode == 1, r.stderr  # it went through, and says that some runs failed
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
    assert r.stdout.strip().splitlines()[-1].startswith(f"6 of {len(runs)} runs failed")
    assert r.stderr.count("run failed:") == n_failed
    report = (out / "report.md").read_text()
    failed_section = report.split("## Failed runs", 1)[1]
    assert failed_section.count("`test-nan-loss:at=0.3`") == 4 and "loss became nan" in failed_section


# ---- a method with a bug: the run fails with its reason, the sweep goes on ---------------------------------------

HOOK_FAILS = {  # method spec -> what its result's error says
    **{f"test-raise:hook={h}": f"method 'test-raise': {h} raised ValueError: boom in {h}"
       for h in ("setup", "repeat_factors", "epoch_indices", "loss", "adjust_logits")},
    "test-bad-return:what=factors_nan": "method 'test-bad-return': repeat_factors returned a non-finite factor "
                                        "(nan at example 5)",
    "test-bad-return:what=factors_negative": "method 'test-bad-return': repeat_factors returned a negative factor "
                                             "(-1 at example 7)",
    "test-bad-return:what=factors_shape": "method 'test-bad-return': repeat_factors returned shape (1499,), "
                                          "expected (1500,)",
    "test-bad-return:what=indices_range": "method 'test-bad-return': epoch_indices returned index 1500, outside "
                                          "the training set [0, 1500)",
    "test-bad-return:what=loss_shape": "method 'test-bad-return': loss returned shape "
                                       f"({get_task(TINY_ML).batch_size}, 12), expected a scalar",
    "test-bad-return:what=logits_shape": "method 'test-bad-return': adjust_logits returned shape (2300, 11) for "
                                         "logits of shape (2300, 12)",
}


@pytest.fixture(scope="module")
def hook_faults_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("hooks") / "out"
    # the failing methods come first and a working one last: the sweep must go on to it
    methods = [*HOOK_FAILS, "oversample:beta=1"]
    r = run_cli("--plugin", PLUGIN, "--task", TINY_ML, *[a for m in methods for a in ("--method", m)],
                "--seeds", "1", "--out", str(out), "--quiet")
    runs = {d["config"]["method"]["spec"]: d for d in map(json.loads, map(Path.read_text,
                                                                           (out / "results").glob("*/*.json")))}
    return out, r, runs


def test_a_raising_or_invalid_hook_fails_its_run_and_the_sweep_goes_on(hook_faults_run):
    out, r, runs = hook_faults_run
    assert r.returncode == 1, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert runs["none"]["status"] == "ok" and runs["oversample:beta=1"]["status"] == "ok"
    for spec, reason in HOOK_FAILS.items():
        d = runs[spec]
        assert d["status"] == "failed" and d["eval"] == {}, spec
        assert d["error"].startswith(reason) and "\n" not in d["error"], (d["error"], reason)
        log = (out / "logs" / f"{d['run_id']}.log").read_text()
        assert "Traceback (most recent call last)" in log and reason in log, spec
        assert f"run failed: {TINY_ML.split(':')[0]}" in r.stderr
    n = len(HOOK_FAILS)
    assert f"{n} failed" in r.stdout
    assert r.stdout.strip().splitlines()[-1].startswith(f"{n} of {n + 2} runs failed")
    report = (out / "report.md").read_text().split("## Failed runs", 1)[1]
    for spec, reason in HOOK_FAILS.items():
        assert f"`{spec}`" in report and "boom in" in report
    # every file the command wrote (results, scores, model, logs, report, figures) has the mode of the umask
    umask = os.umask(0o022)
    os.umask(umask)
    modes = {str(p.relative_to(out)): p.stat().st_mode & 0o777 for p in out.rglob("*") if p.is_file()}
    assert any(k.endswith(".pt") for k in modes) and any(k.endswith(".png") for k in modes)
    assert {k: m for k, m in modes.items() if m != 0o666 & ~umask} == {}


def test_rerunning_a_grid_with_failed_runs_still_exits_1_and_says_so(hook_faults_run):
    out, _, runs = hook_faults_run
    r = run_cli("--plugin", PLUGIN, "--task", TINY_ML, "--method", "test-raise:hook=loss", "--seeds", "1",
                "--out", str(out), "--quiet", "--no-report")
    assert r.returncode == 1 and "0 run(s) done, 2 already finished" in r.stdout
    assert r.stdout.strip().splitlines()[-1].startswith("1 of 2 runs failed")


@pytest.mark.parametrize("umask", [0o022, 0o007, 0o077])
def test_atomic_writes_create_files_with_the_process_umask(tmp_path, umask):
    from benchmark.core.results import atomic_write_bytes

    old = os.umask(umask)
    try:
        atomic_write_bytes(tmp_path / "r.json", b"{}")
        atomic_write_bytes(tmp_path / "r.json", b"{} ")  # a replaced file gets the mode of a new one
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o666 & ~umask
    assert os.umask(old) == old  # reading the umask did not change it


# ---- report options -----------------------------------------------------------------------------------------

def test_a_bad_eval_prior_is_refused_before_it_is_saved(tmp_path, capsys):
    from fake_runs import make_run_dir

    run = make_run_dir(tmp_path / "run", seeds=(0, 1), betas=(1.0,))
    bad = tmp_path / "bad.csv"
    bad.write_text("class,probability\nclass_0,0.5\nnope,0.5\n")
    before = listing(run)
    rc, err = main_in_process(capsys, "report", str(run), "--eval-prior", str(bad))
    one_line_error(rc, err, "unknown class 'nope' for task 'fake-sl'")
    assert rc == 2 and listing(run) == before  # no report_options.json, no report


def test_a_saved_option_that_no_longer_fits_names_reset_options_and_reset_drops_it(tmp_path, capsys):
    from fake_runs import make_run_dir
    from reports.options import OPTIONS_FILE

    run = make_run_dir(tmp_path / "run", seeds=(0, 1), betas=(1.0,))
    # what an older balancebench saved without checking it (or a hand edit): a prior naming an unknown class
    saved = {"views": [], "eval_priors": [{"name": "bad", "task": None, "path": "bad.csv", "kind": "probability",
                                           "rows": [["class_0", 0.5, 2], ["nope", 0.5, 3]]}],
             "bootstrap": 10, "shot_bins": [100, 20], "per_class_view": None}
    (run / OPTIONS_FILE).write_text(json.dumps(saved))
    for argv in (["report", str(run)], ["--task", TINY_ML, "--method", "focal", "--out", str(run)]):
        rc, err = main_in_process(capsys, *argv)
        one_line_error(rc, err, "unknown class 'nope'")
        assert f"saved in {run / OPTIONS_FILE}" in err and "--reset-options" in err, err
    assert not (run / "results" / "synth-multilabel").exists()  # the run command trained nothing
    rc, err = main_in_process(capsys, "report", str(run), "--reset-options")
    assert rc == 0, err
    assert not (run / OPTIONS_FILE).exists() and (run / "report.md").exists()
    assert "user:bad" not in (run / "report.md").read_text()
    good = tmp_path / "good.csv"
    good.write_text("class,count\n" + "".join(f"class_{j},{j + 1}\n" for j in range(6)))
    rc, err = main_in_process(capsys, "report", str(run), "--eval-prior", str(good), "--bootstrap", "0")
    assert rc == 0, err
    assert json.loads((run / OPTIONS_FILE).read_text())["eval_priors"][0]["name"] == "good"
    rc, err = main_in_process(capsys, "report", str(run), "--reset-options", "--bootstrap", "0")
    assert rc == 0 and json.loads((run / OPTIONS_FILE).read_text())["eval_priors"] == []  # reset, then the flags


def test_report_warns_on_stderr_and_tells_a_foreign_schema_from_a_broken_file(tmp_path, capsys):
    from fake_runs import make_run_dir

    run = make_run_dir(tmp_path / "run", seeds=(0, 1), betas=(1.0,))
    folder = run / "results" / "fake-sl"
    good = sorted(folder.glob("*.json"))[0].read_text()
    (folder / "truncated.json").write_text(good[: len(good) // 2])
    (folder / "foreign.json").write_text(json.dumps({"schema_version": 2, "run_id": "foreign", "status": "ok"}))
    (folder / "minimal.json").write_text(json.dumps({"schema_version": 1, "run_id": "x"}))
    rc, err = main_in_process(capsys, "report", str(run))
    assert rc == 0, err
    lines = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(lines) == 3, err
    by_file = {name: next(line for line in lines if f"results/fake-sl/{name}" in line)
               for name in ("truncated.json", "foreign.json", "minimal.json")}
    assert "broken" in by_file["truncated.json"] and "not valid JSON" in by_file["truncated.json"]
    assert "schema version 2" in by_file["foreign.json"] and "broken" not in by_file["foreign.json"]
    assert "another balancebench version" in by_file["foreign.json"]
    assert "broken" in by_file["minimal.json"] and "run_id 'x' does not match the file name" in by_file["minimal.json"]
    md = (run / "report.md").read_text()
    assert "2 unreadable or unfinished, 1 of another schema version (skipped)" in md


@pytest.mark.parametrize("rows,needle", [
    ("class_0,0.2\nclass_1,0.2\nclass_2,0.2\nclass_3,0.2\nclass_4,0.1\n",
     "1 of 6 classes for task 'fake-sl' are missing ('class_5')"),
    ("".join(f"class_{j},0.16\n" for j in range(6)) + "class_0,0.04\n",
     "class 'class_0' is listed twice (lines 2 and 8)"),
    ("".join(f"class_{j},0.2\n" for j in range(5)) + "cls_9,0.1\n", "unknown class 'cls_9' for task 'fake-sl'"),
    ("".join(f"class_{j},0.1\n" for j in range(6)), "probabilities sum to 0.6, not 1"),
])
def test_a_probability_prior_names_the_missing_duplicated_or_unknown_class(tmp_path, capsys, rows, needle):
    from fake_runs import make_run_dir

    run = make_run_dir(tmp_path / "run", seeds=(0,), betas=(1.0,))
    prior = tmp_path / "p.csv"
    prior.write_text("class,probability\n" + rows)
    rc, err = main_in_process(capsys, "report", str(run), "--eval-prior", str(prior))
    one_line_error(rc, err, needle)


def test_a_global_batch_that_does_not_divide_over_the_processes_is_a_user_error():
    from benchmark import UserError
    from benchmark.engine import batch_per_process
    from benchmark.registry import get_task

    task = get_task(TINY_ML)
    assert batch_per_process(task, 1) == task.batch_size and batch_per_process(task, 2) == task.batch_size // 2
    with pytest.raises(UserError, match=f"its batch of {task.batch_size} does not divide over 3 processes"):
        batch_per_process(task, 3)


def test_help_documents_the_exit_statuses():
    text = " ".join(cli.build_parser().format_help().split())
    assert "exit status: 0 every run ok; 1 some runs failed" in text and "2 bad input" in text
    assert "3 disk full" in text and "130 interrupted" in text and "--reset-options" in text
