"""`run_benchmark.py evaluate`: the report from prediction files written by any training code.

Covers the format (logits / probabilities, JSON sidecar metadata, --baseline, --train-counts, multi-label,
deployment scores), the README's PyTorch example, exact agreement with `report` on balancebench's own runs, no torch
import, and every kind of bad input (one line naming the file, exit 2, nothing written).
"""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmark.cli import main
from conftest import ROOT, run_cli

COUNTS = np.array([200, 80, 30, 12, 5])
POOL_PER_CLASS = 60


def _pool(rng, per_class=POOL_PER_CLASS, c=COUNTS.size):
    return np.repeat(np.arange(c), per_class)


def _logits(rng, y, c, signal):
    s = rng.normal(size=(y.size, c))
    s[np.arange(y.size), y] += signal
    return s.astype(np.float32)


def write_preds(d: Path, methods=("none", "oversample:beta=0.5", "oversample:beta=1"), seeds=(0, 1, 2),
                task="toy", val=True, **extra) -> Path:
    """Single-label prediction files: one per (method, seed), a stronger signal for later methods."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    y, yv = _pool(rng), _pool(rng, 20)
    for i, m in enumerate(methods):
        for s in seeds:
            arrays = dict(pool_scores=_logits(rng, y, COUNTS.size, 1.0 + 0.3 * i), pool_labels=y,
                          train_counts=COUNTS, task=task, method=m, seed=s)
            if val:
                arrays.update(val_scores=_logits(rng, yv, COUNTS.size, 1.0 + 0.3 * i), val_labels=yv)
            arrays.update(extra)
            np.savez(d / f"{m.replace(':', '_').replace('=', '')}_{s}.npz", **arrays)
    return d


def evaluate(*args) -> int:
    return main(["evaluate", *map(str, args), "--bootstrap", "20"])


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


# ---------------------------------------------------------------------------------------------------- format


def test_evaluate_writes_the_report_and_summary(tmp_path):
    preds = write_preds(tmp_path / "preds")
    out = tmp_path / "out"
    assert evaluate(preds, "--out", out) == 0
    s = summary(out)
    task = s["tasks"]["toy"]
    assert task["main_metric"] == "top1" and task["views"] == ["natural", "balanced", "inverse"]
    assert set(task["methods"]) == {"oversample:beta=0.5", "oversample:beta=1"}
    cell = task["methods"]["oversample:beta=1"]["views"]["balanced"]
    assert set(cell) >= {"mean_delta", "ci_low", "ci_high", "significant"}
    assert cell["ci_low"] <= cell["mean_delta"] <= cell["ci_high"] and cell["mean_delta"] > 0  # stronger signal
    assert task["methods"]["oversample:beta=1"]["n_seeds"] == 3
    # the two β values with the baseline as β=0 are a sweep: chosen on validation
    assert s["prior_shift"]["toy"]["sweeps"][0]["param"] == "beta"
    assert len(list((out / "results" / "toy").glob("*.json"))) == 9
    md = (out / "report.md").read_text()
    assert "## Task `toy`" in md and "Prior-shift" in md


def test_probabilities_give_the_same_numbers_as_logits(tmp_path):
    from benchmark.core.metrics import softmax

    logit_dir = write_preds(tmp_path / "logits")
    prob_dir = tmp_path / "probs"
    prob_dir.mkdir()
    for f in logit_dir.glob("*.npz"):
        z = dict(np.load(f))
        for k in ("pool_scores", "val_scores"):
            z[k] = softmax(z[k].astype(np.float64))
        np.savez(prob_dir / f.name, **z, score_type="probs")
    assert evaluate(logit_dir, "--out", tmp_path / "a") == 0
    assert evaluate(prob_dir, "--out", tmp_path / "b") == 0
    a, b = summary(tmp_path / "a")["tasks"]["toy"], summary(tmp_path / "b")["tasks"]["toy"]
    for m in a["methods"]:
        for v in a["views"]:
            assert a["methods"][m]["metrics"]["top1"][v] == b["methods"][m]["metrics"]["top1"][v]
            assert a["methods"][m]["metrics"]["mAP"][v]["mean_delta"] == pytest.approx(
                b["methods"][m]["metrics"]["mAP"][v]["mean_delta"], abs=1e-9)


def test_json_sidecar_baseline_spec_and_train_counts_csv(tmp_path):
    d = tmp_path / "preds"
    d.mkdir()
    rng = np.random.default_rng(1)
    y = _pool(rng)
    for m in ("erm", "ldam"):
        for s in (0, 1):
            np.savez(d / f"{m}{s}.npz", pool_scores=_logits(rng, y, 5, 1.5), pool_labels=y)
            (d / f"{m}{s}.json").write_text(json.dumps({"task": "mine", "method": m, "seed": s}))
    (tmp_path / "counts.csv").write_text("class,count\n" + "".join(f"{j},{c}\n" for j, c in enumerate(COUNTS)))
    out = tmp_path / "out"
    assert evaluate(d, "--out", out, "--baseline", "erm", "--train-counts", tmp_path / "counts.csv") == 0
    task = summary(out)["tasks"]["mine"]
    assert task["baseline"]["label"] == "erm" and list(task["methods"]) == ["ldam"]
    rec = json.loads(next((out / "results" / "mine").glob("*.json")).read_text())
    assert rec["train_stats"]["class_counts"] == COUNTS.tolist()


def test_multilabel_files_and_deploy_scores(tmp_path):
    d = tmp_path / "preds"
    d.mkdir()
    rng = np.random.default_rng(2)
    c, n = 6, 900
    prev = np.array([0.5, 0.3, 0.2, 0.1, 0.08, 0.06])
    y = rng.random((n, c)) < prev
    counts = np.array([1000, 600, 400, 200, 160, 120])
    for m in ("none", "oversample:beta=1"):
        for s in (0, 1):
            scores = (rng.normal(size=(n, c)) + 2.0 * y).astype(np.float32)
            np.savez(d / f"{m[:4]}{s}.npz", pool_scores=scores, pool_labels=y.astype(np.int8), train_counts=counts,
                     n_train=np.array(2000), deploy_scores=scores[:50], task="ml", method=m, seed=s)
    out = tmp_path / "out"
    assert evaluate(d, "--out", out) == 0
    task = summary(out)["tasks"]["ml"]
    assert task["main_metric"] == "mAP" and task["secondary_metric"] == "dprime"
    rec = json.loads(next((out / "results" / "ml").glob("*.json")).read_text())
    assert rec["train_stats"]["n_examples"] == 2000 and rec["task_info"]["multi_label"] is True
    with np.load(out / "results" / "ml" / rec["scores_file"]) as z:
        assert z["deploy_logits"].shape == (50, c) and z["pool_labels"].dtype == bool


def test_rerun_replaces_what_the_previous_evaluate_wrote(tmp_path):
    out = tmp_path / "out"
    assert evaluate(write_preds(tmp_path / "p1", task="first"), "--out", out) == 0
    assert evaluate(write_preds(tmp_path / "p2", task="second", methods=("none", "focal"), seeds=(0, 1)),
                    "--out", out) == 0
    assert sorted(p.name for p in (out / "results").iterdir() if any(p.iterdir())) == ["second"]
    assert list(summary(out)["tasks"]) == ["second"]


def test_report_options_publish_and_no_report(tmp_path):
    preds = write_preds(tmp_path / "preds", seeds=(0, 1))
    (tmp_path / "mine.csv").write_text("class,count\n0,1\n1,1\n2,2\n3,3\n4,3\n")
    out, site = tmp_path / "out", tmp_path / "site"
    assert evaluate(preds, "--out", out, "--views", "forward10,uniform", "--eval-prior", tmp_path / "mine.csv",
                    "--publish", site) == 0
    dists = summary(out)["prior_shift"]["toy"]["distributions"]
    assert {"forward10", "uniform", "user:mine"} <= set(dists) and dists["user:mine"]["source"] == "report"
    assert (site / "README.md").is_file() and (site / "results.csv").is_file()
    assert json.loads((out / "report_options.json").read_text())["views"] == ["forward10", "uniform"]
    bare = tmp_path / "bare"
    assert evaluate(preds, "--out", bare, "--no-report") == 0
    assert not (bare / "report.md").exists() and len(list((bare / "results" / "toy").glob("*.json"))) == 6
    assert main(["report", str(bare), "--bootstrap", "0"]) == 0 and (bare / "report.md").is_file()


def test_readme_example_runs_and_evaluates(tmp_path):
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Evaluate predictions from your own training code"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert "np.savez" in code and len(code.splitlines()) <= 25
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True, timeout=300)
    assert len(list((tmp_path / "preds").glob("*.npz"))) == 6
    r = run_cli("evaluate", "preds/", "--out", "runs/toy", "--bootstrap", "20", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    task = summary(tmp_path / "runs" / "toy")["tasks"]["toy-lt"]
    cell = task["methods"]["class_weighted"]["views"]["balanced"]
    assert cell["n_seeds"] == 3 and cell["ci_low"] <= cell["mean_delta"] <= cell["ci_high"]


def test_evaluate_imports_no_torch(tmp_path):
    preds = write_preds(tmp_path / "preds", seeds=(0, 1))
    code = ("import sys; from benchmark.cli import main; "
            f"rc = main(['evaluate', {str(preds)!r}, '--out', {str(tmp_path / 'out')!r}, '--bootstrap', '5']); "
            "assert rc == 0, rc; assert 'torch' not in sys.modules, 'torch was imported'; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and r.stdout.strip().endswith("ok"), r.stderr
    assert (tmp_path / "out" / "report.md").is_file()


# ---------------------------------------------------------------------------------------------------- own runs


@pytest.mark.slow(reason="trains 6 real digits-lt runs (a post-hoc method, a deployment set) to compare against")
def test_evaluate_on_balancebench_runs_reproduces_report(tmp_path):
    run = tmp_path / "run"
    # a post-hoc method (stored adjusted logits) and a deployment set (deploy_logits, its estimated prior)
    r = run_cli("--task", "digits-lt:deploy_prior=backward5", "--method", "oversample,logit_adjust", "--seeds", "2",
                "--out", str(run), "--quiet", "--bootstrap", "30")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "again"
    assert main(["evaluate", str(run / "results"), "--out", str(out), "--bootstrap", "30"]) == 0
    a, b = summary(run), summary(out)
    assert a == b
    assert a["tasks"]["digits-lt"]["methods"] and "deploy" in a["prior_shift"]["digits-lt"]["distributions"]
    for path in (run / "results" / "digits-lt").glob("*.json"):  # every metric recomputed equals the engine's
        mine = json.loads((out / "results" / "digits-lt" / path.name).read_text())
        theirs = json.loads(path.read_text())
        assert mine["eval"] == theirs["eval"] and mine["val"] == theirs["val"]


# ---------------------------------------------------------------------------------------------------- bad input


def _bad(tmp_path, preds: Path, *extra) -> str:
    out = tmp_path / "out"
    err_file = tmp_path / "err.txt"
    r = run_cli("evaluate", str(preds), "--out", str(out), *map(str, extra))
    err_file.write_text(r.stderr)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert not out.exists(), "something was written"
    return lines[0]


def _edit(path: Path, **changes):
    z = dict(np.load(path))
    z.update(changes)
    for k in [k for k, v in changes.items() if v is None]:
        del z[k]
    np.savez(path, **z)


def test_bad_shapes(tmp_path):
    preds = write_preds(tmp_path / "p", seeds=(0,))
    f = preds / "oversample_beta1_0.npz"
    _edit(f, pool_labels=np.zeros(7, dtype=int))
    msg = _bad(tmp_path, preds)
    assert str(f) in msg and "7 labels but the scores have 300 rows" in msg


def test_labels_out_of_range(tmp_path):
    preds = write_preds(tmp_path / "p", seeds=(0,))
    f = preds / "none_0.npz"
    y = _pool(None)
    y[3] = 9
    _edit(f, pool_labels=y)
    msg = _bad(tmp_path, preds)
    assert str(f) in msg and "out of range [0, 5)" in msg


def test_nan_scores(tmp_path):
    preds = write_preds(tmp_path / "p", seeds=(0,))
    f = preds / "oversample_beta0.5_0.npz"
    s = np.load(f)["pool_scores"].copy()
    s[4, 2] = np.nan
    _edit(f, pool_scores=s)
    msg = _bad(tmp_path, preds)
    assert str(f) in msg and "1 NaN/inf values (first at row 4, class 2)" in msg


def test_missing_baseline(tmp_path):
    preds = write_preds(tmp_path / "p", methods=("erm", "focal"), seeds=(0,))
    msg = _bad(tmp_path, preds)
    assert "task 'toy': no baseline" in msg and "--baseline SPEC" in msg
    msg = _bad(tmp_path, preds, "--baseline", "erm:lr=0.1")
    assert "no baseline" in msg


def test_missing_baseline_seed(tmp_path):
    preds = write_preds(tmp_path / "p", seeds=(0, 1))
    (preds / "none_1.npz").unlink()
    msg = _bad(tmp_path, preds)
    assert "oversample" in msg and "seed 1 has no baseline of the same seed" in msg


def test_two_files_claim_the_same_run(tmp_path):
    preds = write_preds(tmp_path / "p", seeds=(0, 1))
    _edit(preds / "oversample_beta1_1.npz", seed=np.array(0))
    msg = _bad(tmp_path, preds)
    assert "method 'oversample:beta=1', seed 0 again" in msg and "oversample_beta1_" in msg


def test_pools_differ(tmp_path):
    preds = write_preds(tmp_path / "p", seeds=(0,))
    f = preds / "oversample_beta1_0.npz"
    y = _pool(None)
    y[[0, -1]] = y[[-1, 0]]
    _edit(f, pool_labels=y)
    msg = _bad(tmp_path, preds)
    assert str(f) in msg and "same size but different labels" in msg and "none_0.npz" in msg
    rng = np.random.default_rng(0)
    y2 = _pool(rng, 50)
    _edit(f, pool_labels=y2, pool_scores=_logits(rng, y2, 5, 1.0))
    msg = _bad(tmp_path, preds)
    assert str(f) in msg and "250 x 5" in msg


def test_pool_too_small_for_a_view(tmp_path):
    d = tmp_path / "p"
    d.mkdir()
    rng = np.random.default_rng(0)
    y = np.array([0, 1, 2, 3, 4])  # one example per class: the natural view keeps only the head class
    for m in ("none", "focal"):
        np.savez(d / f"{m}.npz", pool_scores=_logits(rng, y, 5, 1.0), pool_labels=y, train_counts=COUNTS,
                 task="toy", method=m, seed=0)
    msg = _bad(tmp_path, d)
    assert "too small for view 'natural'" in msg and "none.npz" in msg


@pytest.mark.parametrize("change,needle", [
    ({"task": None}, "no 'task' metadata"),
    ({"train_counts": None}, "no train_counts"),
    ({"score_type": "odds"}, "score_type must be 'logits' or 'probs'"),
    ({"val_labels": None}, "has 'val_scores' but no 'val_labels'"),
    ({"pool_scores": np.zeros((300, 5), dtype=int)}, "must hold floats"),
])
def test_other_bad_files(tmp_path, change, needle):
    preds = write_preds(tmp_path / "p", seeds=(0,))
    for f in preds.glob("*.npz"):
        _edit(f, **change)
    assert needle in _bad(tmp_path, preds)


def test_out_holding_benchmark_results_is_refused(tmp_path):
    preds = write_preds(tmp_path / "p", seeds=(0,))
    out = tmp_path / "run"
    (out / "results" / "x").mkdir(parents=True)
    r = run_cli("evaluate", str(preds), "--out", str(out))
    assert r.returncode == 2 and "holds results of a benchmark run" in r.stderr
    assert list((out / "results").iterdir()) == [out / "results" / "x"]
