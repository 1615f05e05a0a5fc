"""`run_benchmark.py report DIR --publish DEST` and the prior-shift options on the command line."""
from __future__ import annotations

import csv
import json
import re
import sys
from pathlib import Path

import pytest

from conftest import TINY_SL, run_cli

sys.path.insert(0, str(Path(__file__).parent))
from fake_runs import make_run_dir  # noqa: E402


def _links(md: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)


def test_publish_writes_a_self_contained_folder(tmp_path):
    run = make_run_dir(tmp_path / "run", betas=(0.5, 1.0), extra_methods=("focal",))
    make_run_dir(tmp_path / "run", multi=True, C=8, betas=(0.5, 1.0))
    prior = tmp_path / "deploy.csv"
    prior.write_text("class,count\n" + "".join(f"class_{j},{10 * (j + 1)}\n" for j in range(6)))
    dest = tmp_path / "site" / "v1"
    r = run_cli("report", str(run), "--views", "uniform,backward10", "--eval-prior", f"fake-sl={prior}",
                "--bootstrap", "30", "--publish", str(dest))
    assert r.returncode == 0, r.stderr
    files = sorted(p.name for p in dest.iterdir())
    assert {"README.md", "results.csv", "summary.json"} <= set(files)
    md = (dest / "README.md").read_text()
    links = _links(md)
    # the curve, the β plot and the per-class scatter of both tasks, all beside README.md
    assert {f"priorshift_fake-{k}.png" for k in ("sl", "ml")} <= set(links)
    assert {f"perclass_fake-{k}.png" for k in ("sl", "ml")} <= set(links)
    assert {f"beta_fake-{k}_oversample_beta.png" for k in ("sl", "ml")} <= set(links)
    for link in links:
        assert not Path(link).is_absolute() and "/" not in link
        assert (dest / link).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "user:deploy" in md and "#### Prior-shift curve" in md and "on validation" in md
    # results.csv: one row per run × distribution × metric (+ the curve's γ points for the main metric)
    rows = list(csv.DictReader((dest / "results.csv").open()))
    sl = [r for r in rows if r["task"] == "fake-sl"]
    ml = [r for r in rows if r["task"] == "fake-ml"]
    assert len(sl) == 4 * 3 * ((3 + 2 + 1) * 3 + 17)  # 4 configs × 3 seeds; natural..inverse + 2 views + user
    assert len(ml) == 3 * 3 * ((3 + 2) * 3 + 17)
    one = next(r for r in sl if r["method"] == "oversample:beta=1" and r["distribution"] == "user:deploy"
               and r["metric"] == "top1" and r["seed"] == "0")
    assert float(one["delta"]) == pytest.approx(float(one["value"]) - float(one["baseline_value"]))
    base = next(r for r in sl if r["method"] == "none" and r["distribution"] == "natural" and r["metric"] == "top1")
    assert float(base["delta"]) == 0.0
    summary = json.loads((dest / "summary.json").read_text())
    ps = summary["prior_shift"]["fake-sl"]
    assert ps["bootstrap_resamples"] == 30 and "user:deploy" in ps["distributions"]
    assert ps["sweeps"][0]["param"] == "beta" and set(ps["per_class"]["bins"]) == {"many", "medium", "few"}
    # the options were saved: a plain re-render reproduces the same report
    r2 = run_cli("report", str(run))
    assert r2.returncode == 0, r2.stderr
    assert (run / "report.md").read_text() == md


def test_report_options_bad_input_one_line(tmp_path):
    run = make_run_dir(tmp_path / "run", seeds=(0,), betas=(1.0,))
    bad = tmp_path / "bad.csv"
    bad.write_text("class,probability\nclass_0,0.5\nclass_1,0.2\n")
    file_in_the_way = tmp_path / "f"
    file_in_the_way.write_text("x")
    for args, needle in [
        (["--views", "forwrd10"], "unknown evaluation view 'forwrd10'"),
        (["--eval-prior", str(bad)], "4 of 6 classes for task 'fake-sl' are missing ('class_2'"),
        (["--eval-prior", str(tmp_path / "missing.csv")], "cannot read it"),
        (["--bootstrap", "1"], "at least 2 resamples"),
        (["--shot-bins", "20,100"], "need 0 < FEW <= MANY"),
        (["--publish", str(file_in_the_way)], "a file is in the way"),
    ]:
        r = run_cli("report", str(run), *args)
        assert r.returncode == 2, (args, r.stderr)
        assert needle in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert not (run / "report_options.json").exists()


def test_eval_prior_is_checked_before_training(tmp_path):
    prior = tmp_path / "p.csv"
    prior.write_text("class,count\nclass_0,1\nclass_9,1\n")  # the tiny task has classes 0..5
    out = tmp_path / "out"
    r = run_cli("--task", TINY_SL, "--method", "oversample:beta=1", "--seeds", "1", "--eval-prior", str(prior),
                "--out", str(out))
    assert r.returncode == 2 and "unknown class 'class_9'" in r.stderr, r.stderr
    assert not out.exists()
    r = run_cli("--task", TINY_SL, "--method", "oversample:beta=1", "--seeds", "1", "--eval-prior",
                f"nosuch-task={prior}", "--out", str(out))
    assert r.returncode == 2 and "no task 'nosuch-task'" in r.stderr, r.stderr
    assert not out.exists()


def test_grid_report_shows_curve_beta_and_per_class(tmp_path):
    """A real (tiny) run of the default methods: the report has the three figures, from the stored scores."""
    prior = tmp_path / "tail.csv"
    prior.write_text("class,probability\n" + "".join(f"{j},{p}\n" for j, p in enumerate([.05, .05, .1, .2, .3, .3])))
    out = tmp_path / "out"
    r = run_cli("--task", TINY_SL, "--seeds", "2", "--views", "uniform", "--eval-prior", str(prior), "--quiet",
                "--out", str(out))
    assert r.returncode == 0, r.stderr
    md = (out / "report.md").read_text()
    for name in ("priorshift_synth-singlelabel.png", "beta_synth-singlelabel_oversample_beta.png",
                 "perclass_synth-singlelabel.png"):
        assert f"]({name})" in md and (out / name).stat().st_size > 10_000
    assert "| **user:tail** " in md and "paired bootstrap over evaluation examples (100 resamples" in md
    summary = json.loads((out / "summary.json").read_text())
    curve = summary["prior_shift"]["synth-singlelabel"]["curve"]
    assert curve["gamma"][0] == 0.0 and curve["gamma"][-1] == 2.0
    assert set(curve["delta"]) == {"class_weighted:beta=1", "focal:gamma=2", "logit_adjust:tau=1",
                                   "oversample:beta=0.25", "oversample:beta=0.5", "oversample:beta=1"}


def test_figures_are_cached_by_what_they_show(tmp_path, monkeypatch):
    """A re-render copies unchanged figures (same bytes, nothing drawn); figures whose data changed are redrawn."""
    import reports.plots as plots
    from reports import render_report

    run = make_run_dir(tmp_path / "run", seeds=(0, 1), betas=(0.5, 1.0))
    render_report(run)
    names = sorted(p.name for p in run.glob("*.png"))
    assert {n.split("_")[0] for n in names} == {"beta", "perclass", "priorshift"}
    first = {n: (run / n).read_bytes() for n in names}
    for n in names:
        (run / n).unlink()

    def no_drawing(*args, **kwargs):
        raise AssertionError("a cached figure was drawn again")

    for fn in ("curve_png", "beta_png", "per_class_png"):
        monkeypatch.setattr(plots, fn, no_drawing)
    render_report(run)
    assert {n: (run / n).read_bytes() for n in names} == first
    monkeypatch.undo()
    # other numbers (10 bootstrap resamples, fewer than the curve's 25): its figure is drawn again
    from reports.options import Options

    drawn = []
    orig = plots.curve_png
    monkeypatch.setattr(plots, "FIGURE_WORKERS", 1)  # drawn in this process, so that `drawn` sees it
    monkeypatch.setattr(plots, "curve_png", lambda *a: drawn.append(a[1].name) or orig(*a))
    render_report(run, options=Options(bootstrap=10))
    assert drawn == ["priorshift_fake-sl.png"]
