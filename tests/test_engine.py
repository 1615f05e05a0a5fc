"""End to end through the CLI on tiny tasks: result files, resume, β=0 ≡ none, stored scores reproduce metrics."""
import json
from pathlib import Path

import numpy as np
import pytest

from benchmark.core import metrics as M
from benchmark.core.results import SCHEMA_VERSION
from conftest import TINY_ML, TINY_SL, run_cli


def results(out: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((out / "results").glob("*/*.json"))}


@pytest.fixture(scope="module")
def ml_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ml") / "run"
    r = run_cli("--task", TINY_ML, "--method", "oversample:beta=0,oversample:beta=1", "--seeds", "1",
                "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    return out, r


def test_result_files_hold_what_the_schema_promises(ml_run):
    out, r = ml_run
    res = results(out)
    assert len(res) == 3  # none + two β values, one seed
    for name, d in res.items():
        assert d["schema_version"] == SCHEMA_VERSION and d["status"] == "ok" and name == f"{d['run_id']}.json"
        assert (out / "results" / "synth-multilabel" / d["scores_file"]).exists()
        assert d["env"]["versions"]["torch"] and "git_commit" in d["env"]
        ts = d["train_stats"]
        assert ts["n_examples"] == 1500 and ts["n_classes"] == 12 and len(ts["class_counts"]) == 12
        assert ts["imbalance_ratio"] == pytest.approx(max(ts["class_counts"]) / min(ts["class_counts"]))
        assert 1.5 < ts["labels_per_example"] < 4
        ep = d["effective_prior"]
        assert ep["samples_seen"] == d["config"]["train"]["budget_samples"] == 3000
        assert set(d["eval"]) == {"natural", "balanced", "inverse"}
        for v in d["eval"].values():
            assert 0 < v["metrics"]["mAP"] <= 1 and v["metrics"]["dprime"] is not None
            assert len(v["per_class"]["AP"]) == 12
        assert d["wall_time_s"] > 0
    assert not list(out.glob("results/*/*.tmp")) and (out / "report.md").exists()
    assert (out / "logs").is_dir()


def test_beta_zero_reproduces_none_exactly(ml_run):
    out, _ = ml_run
    by_spec = {d["config"]["method"]["spec"]: d for d in results(out).values()}
    none, zero, one = by_spec["none"], by_spec["oversample:beta=0"], by_spec["oversample:beta=1"]
    assert none["eval"] == zero["eval"]
    assert none["effective_prior"]["class_counts_seen"] == zero["effective_prior"]["class_counts_seen"]
    # β=1 changes what is seen (flatter), not how much
    assert one["effective_prior"]["imbalance_ratio_seen"] < none["effective_prior"]["imbalance_ratio_seen"]
    assert one["effective_prior"]["samples_seen"] == none["effective_prior"]["samples_seen"]


def test_stored_scores_reproduce_the_metrics(ml_run):
    out, _ = ml_run
    for d in results(out).values():
        with np.load(out / "results" / "synth-multilabel" / d["scores_file"]) as z:
            for view, entry in d["eval"].items():
                idx = z[f"view_{view}_idx"]
                w = z[f"view_{view}_w"] if f"view_{view}_w" in z else None
                m = M.multilabel_metrics(z["pool_labels"][idx], z["pool_logits"][idx].astype(np.float64), w)
                assert m["mAP"] == pytest.approx(entry["metrics"]["mAP"], abs=1e-12)


def test_rerun_skips_finished_runs_and_overwrite_redoes_them(ml_run):
    out, _ = ml_run
    before = {k: v["created"] + str(v["wall_time_s"]) for k, v in results(out).items()}
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "results").glob("*/*.json")}
    r = run_cli("--task", TINY_ML, "--method", "oversample:beta=0,oversample:beta=1", "--seeds", "1",
                "--out", str(out), "--quiet")
    assert r.returncode == 0 and "0 run(s) done, 3 already finished" in r.stdout
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    r = run_cli("--task", TINY_ML, "--method", "oversample:beta=1", "--seeds", "1", "--out", str(out), "--quiet",
                "--overwrite", "--no-report")
    assert r.returncode == 0 and "2 run(s) done" in r.stdout
    assert set(results(out)) == set(before)


def test_single_label_run_and_report_rerender(tmp_path):
    out = tmp_path / "sl"
    r = run_cli("--task", TINY_SL, "--method", "class_weighted", "--seeds", "2", "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    res = list(results(out).values())
    assert len(res) == 4
    for d in res:
        m = d["eval"]["balanced"]["metrics"]
        assert set(m) >= {"top1", "balanced_acc", "mAP"}
        assert len(d["eval"]["natural"]["per_class"]["recall"]) == 6
    (out / "report.md").unlink()
    r = run_cli("report", str(out))
    assert r.returncode == 0 and (out / "report.md").exists()
    text = (out / "report.md").read_text()
    assert "class_weighted:beta=1" in text and "top1" in text
