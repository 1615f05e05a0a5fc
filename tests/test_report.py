"""Tests of `reports/`: golden report, hand-computed cells, n/a handling, stats, and the no-torch rule.

Regenerate the golden files after an intended change of the report with:
    UPDATE_GOLDEN=1 python -m pytest tests/test_report.py
"""
from __future__ import annotations

import copy
import json
import math
import os
import random
from pathlib import Path

import pytest
import scipy.stats

from reports import build_report_markdown, load_runs, render_report
from benchmark.core.stats import imbalance_ratio, paired_deltas, t_interval

GOLDEN = Path(__file__).resolve().parent / "data" / "report_golden"
T975_1 = 12.706204736174698  # scipy.stats.t.ppf(0.975, 1), written out so the hand checks do not use the code


# ---------------------------------------------------------------- fixture

ML, SL = "synth-multilabel", "synth-singlelabel"
PARAMS = {"none": {}, "oversample:beta=0.5": {"beta": 0.5, "aggregate": "max"},
          "oversample:beta=1": {"beta": 1.0, "aggregate": "max"}, "focal": {"gamma": 2.0}}
SEED_OFFSET = {0: 0.0020, 1: -0.0010}  # shared by all methods of a seed: pairing must cancel it
# per-method seed noise amplitude (method only): small -> significant, large -> (ns)
NOISE = {"none": 0.0, "oversample:beta=0.5": 0.0002, "oversample:beta=1": 0.0005, "focal": 0.0050}
# change of the main metric vs the baseline, per view (the "true" effect)
EFFECT = {
    ML: {
        "oversample:beta=0.5": {"natural": -0.0050, "balanced": 0.0200, "inverse": 0.0300},
        "oversample:beta=1": {"natural": -0.0150, "balanced": 0.0350, "inverse": 0.0500},
        "focal": {"natural": -0.0010, "balanced": 0.0050, "inverse": 0.0040},
    },
    SL: {
        "oversample:beta=0.5": {"natural": -0.0020, "balanced": 0.0100},
        "oversample:beta=1": {"natural": 0.0040, "balanced": 0.0250},
        "focal": {"natural": 0.0030, "balanced": -0.0060},
    },
}
BASE = {
    ML: {"natural": {"mAP": 0.6000, "mAUC": 0.9000, "dprime": 1.8000},
         "balanced": {"mAP": 0.4000, "mAUC": 0.8500, "dprime": 1.5000},
         "inverse": {"mAP": 0.3000, "mAUC": 0.8000, "dprime": 1.2000}},
    SL: {"natural": {"top1": 0.8000, "balanced_acc": 0.5500, "mAP": 0.6000},
         "balanced": {"top1": 0.5500, "balanced_acc": 0.5500, "mAP": 0.5000}},
}
SCALE = {"mAP": 1.0, "mAUC": 0.5, "dprime": 10.0, "top1": 1.0, "balanced_acc": 2.0}
SEEN_RHO = {"none": 1.0, "oversample:beta=0.5": 0.5, "oversample:beta=1": 0.0, "focal": 1.0}  # exponent on counts


def _value(task: str, method: str, seed: int, view: str, metric: str) -> float:
    eff = EFFECT[task].get(method, {}).get(view, 0.0)
    noise = NOISE[method] * (1 if seed == 0 else -1)
    return round(BASE[task][view][metric] + SCALE[metric] * (SEED_OFFSET[seed] + eff + noise), 6)


def _result(task: str, method: str, seed: int) -> dict:
    multi = task == ML
    counts = [1000, 300, 100, 30, 10, 0] if multi else [800, 150, 40, 10]
    metrics = ["mAP", "mAUC", "dprime"] if multi else ["top1", "balanced_acc", "mAP"]
    views = ["natural", "balanced", "inverse"] if multi else ["natural", "balanced"]
    present = [c for c in counts if c]
    # seen counts: n_c^exponent rescaled to the same stream length; seed 1 is slightly different
    e = SEEN_RHO[method]
    raw = [c ** e if c else 0 for c in counts]
    seen = [round(20000 * r / sum(raw) * (1.0 + 0.01 * seed * i)) for i, r in enumerate(raw)]
    ev = {}
    for v in views:
        w = v != "natural"
        ev[v] = {
            "description": {"natural": "same class prior as training", "balanced": "every class equally likely",
                            "inverse": "class prior inverted (rare classes frequent)"}[v],
            "n_examples": 2000, "weighted": w, "effective_n": {"natural": 2000.0, "balanced": 812.34, "inverse": 301.66}[v],
            "class_counts": {"natural": [200.0, 60.0, 20.0, 6.0, 2.0, 0.0][: len(counts)],
                             "balanced": [50.0, 50.0, 50.0, 50.0, 50.0, 0.0][: len(counts)],
                             "inverse": [2.0, 6.0, 20.0, 60.0, 200.0, 0.0][: len(counts)]}[v],
            "metrics": {m: _value(task, method, seed, v, m) for m in metrics},
            "per_class": {"AP": [0.9, 0.7, 0.5, 0.3, 0.1, None][: len(counts)],
                          **({} if multi else {"recall": [0.95, 0.8, 0.6, 0.4]})},
        }
    spec_task = task
    return {
        "schema_version": 1,
        "run_id": f"{task[:5]}-{method.replace(':', '-').replace('=', '')}-{seed}",
        "status": "ok",
        "error": None,
        "config": {
            "task": {"name": task, "params": {}, "spec": spec_task},
            "method": {"name": method.split(":")[0], "params": PARAMS[method], "spec": method},
            "seed": seed,
            "train": {"budget_samples": 20000, "batch_size": 64, "lr": 0.001, "weight_decay": 0.0, "optimizer": "adamw"},
        },
        "task_info": {
            "name": task, "num_classes": len(counts), "multi_label": multi, "main_metric": "mAP" if multi else "top1",
            "metrics": metrics, "class_names": [f"c{i}" for i in range(len(counts))], "source": "synthetic (Gaussian clusters)",
            "description": ("Synthetic multi-label task with a long-tailed label prior." if multi
                            else "Synthetic single-label task with a long-tailed class prior."),
        },
        "train_stats": {
            "n_examples": sum(counts) if not multi else 1200, "n_classes": len(counts), "class_counts": counts,
            "imbalance_ratio": max(present) / min(present), "labels_per_example": 1.2 if multi else 1.0,
            "absent_classes": [i for i, c in enumerate(counts) if c == 0],
        },
        "effective_prior": {"samples_seen": 20000, "class_counts_seen": seen, "imbalance_ratio_seen": None, "epochs": 16.67},
        "eval": ev,
        "scores_file": "x.npz",
        "env": {"git_commit": "0123456789abcdef0123456789abcdef01234567", "git_dirty": False, "python": "3.11.7 (main)",
                "platform": "Linux", "versions": {"numpy": "2.4.6", "torch": "2.5.1"}, "num_processes": 1,
                "device": "cpu", "mixed_precision": False},
        "wall_time_s": 1.0, "train_time_s": 0.5, "eval_time_s": 0.1,
        "created": "2026-11-27T01:02:03Z",
    }


def fixture_results() -> list[dict]:
    out = []
    for task in (ML, SL):
        for method in PARAMS:
            for seed in (0, 1):
                r = _result(task, method, seed)
                if task == SL and method == "focal" and seed == 1:
                    r.update(status="failed", error="CUDA out of memory | tried 2 times\nsee log", eval={})
                if task == ML and method == "oversample:beta=0.5" and seed == 1:
                    r["eval"]["inverse"]["metrics"]["dprime"] = None  # a null metric
                if task == SL and method == "oversample:beta=1" and seed == 1:
                    del r["eval"]["balanced"]  # a view missing from one result
                out.append(r)
    return out


def write_fixture(run_dir: Path) -> None:
    for r in fixture_results():
        p = run_dir / "results" / r["config"]["task"]["name"] / f"{r['run_id']}.json"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(r, indent=1))
    (run_dir / "results" / ML / "garbage.json").write_text("{not json")


@pytest.fixture()
def rendered(tmp_path: Path) -> tuple[Path, str]:
    write_fixture(tmp_path)
    path = render_report(tmp_path)
    return tmp_path, path.read_text()


def _row(md: str, section: str, table_heading: str, label: str) -> list[str]:
    """Cells of the row `label` in the first table after `table_heading` within task `section`."""
    part = md.split(f"## Task `{section}`", 1)[1]
    part = part.split(table_heading, 1)[1]
    for line in part.splitlines():
        if line.startswith(f"| `{label}`"):
            return [c.strip() for c in line.strip().strip("|").split("|")]
    raise AssertionError(f"row {label} not found")


# ---------------------------------------------------------------- golden


def test_golden_report(rendered: tuple[Path, str]) -> None:
    run_dir, md = rendered
    summary = (run_dir / "summary.json").read_text()
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.mkdir(parents=True, exist_ok=True)
        (GOLDEN / "expected_report.md").write_text(md)
        (GOLDEN / "expected_summary.json").write_text(summary)
    assert md == (GOLDEN / "expected_report.md").read_text()
    # full-precision floats: compare with a tolerance so a scipy ulp change does not break the test
    _assert_close(json.loads(summary), json.loads((GOLDEN / "expected_summary.json").read_text()))


def _assert_close(got: object, want: object, where: str = "$") -> None:
    if isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        assert got == pytest.approx(want, rel=1e-9, abs=1e-12), where
    elif isinstance(want, dict):
        assert isinstance(got, dict) and list(got) == list(want), where
        for k in want:
            _assert_close(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), where
        for i, (g, w) in enumerate(zip(got, want)):
            _assert_close(g, w, f"{where}[{i}]")
    else:
        assert got == want, where


def test_hand_computed_cells(rendered: tuple[Path, str]) -> None:
    _, md = rendered
    # oversample:beta=1 on balanced: deltas 0.0350 +- 0.0005 -> mean 0.0350, sd 0.000707, hw t*sd/sqrt(2)
    d = [0.400 + 0.002 + 0.035 + 0.0005 - (0.400 + 0.002), 0.400 - 0.001 + 0.035 - 0.0005 - (0.400 - 0.001)]
    mean, sd = sum(d) / 2, math.sqrt(sum((x - sum(d) / 2) ** 2 for x in d))
    expected = f"**{mean:+.4f} ± {T975_1 * sd / math.sqrt(2):.4f}**"
    assert expected == "**+0.0350 ± 0.0064**"
    # beside each change, the method's absolute value: mean over the paired seeds (seed offsets +0.002, -0.001)
    absolute = {v: b + (0.002 - 0.001) / 2 + e for v, b, e in (("natural", 0.6, -0.015), ("balanced", 0.4, 0.035),
                                                                ("inverse", 0.3, 0.05))}
    row = _row(md, ML, "### Leaderboard: `mAP`", "oversample:beta=1")
    assert row[:4] == ["`oversample:beta=1`", f"-0.0150 ± 0.0064 → {absolute['natural']:.4f}",
                       f"{expected} → {absolute['balanced']:.4f}", f"**+0.0500 ± 0.0064** → {absolute['inverse']:.4f}"]
    assert row[5] == "1.00"  # train time relative to the baseline (0.5 s each in the fixture)
    # the baseline's absolute values head the table: plain means over seeds
    part = md.split(f"## Task `{ML}`", 1)[1].split("### Leaderboard: `mAP`", 1)[1]
    base_row = next(line for line in part.splitlines() if line.startswith("| *`none` (absolute)*"))
    assert f"| {0.600 + (0.002 - 0.001) / 2:.4f} ± " in base_row
    # focal: noisy -> interval spans 0 -> (ns); the largest change on natural is negative: nothing is bold
    focal = _row(md, ML, "### Leaderboard: `mAP`", "focal")
    assert focal[1] == f"-0.0010 ± 0.0635 (ns) → {0.6005 - 0.001:.4f}"
    assert focal[2].endswith(f"→ {0.4005 + 0.005:.4f}") and "(ns)" in focal[2] and not focal[2].startswith("**")
    # the null dprime of oversample:beta=0.5 seed 1 leaves one paired seed on inverse
    dp = _row(md, ML, "### Secondary leaderboard: `dprime`", "oversample:beta=0.5")
    assert dp[3] == f"{10 * (0.030 + 0.0002):+.4f} → {1.2 + 10 * (0.002 + 0.030 + 0.0002):.4f} [n=1]"
    # single-label: focal seed 1 failed -> one paired seed, no interval, no (ns), nothing bold without an interval
    sl_focal = _row(md, SL, "### Leaderboard: `top1`", "focal")
    assert sl_focal[1:5] == [f"{0.0030 + 0.0050:+.4f} → {0.8 + 0.002 + 0.003 + 0.005:.4f} [n=1]",
                             f"{-0.0060 + 0.0050:+.4f} → {0.55 + 0.002 - 0.006 + 0.005:.4f} [n=1]", "80.0", "1.00"]
    # missing "balanced" view in oversample:beta=1 seed 1 -> that cell uses the one seed that has it
    sl_b1 = _row(md, SL, "### Leaderboard: `top1`", "oversample:beta=1")
    assert sl_b1[2] == f"{0.0250 + 0.0005:+.4f} → {0.55 + 0.002 + 0.025 + 0.0005:.4f} [n=1]"
    # effective rho seen: oversample:beta=1 is fully balanced on seed 0
    assert row[4] == "1.0"


def test_summary_table_and_pattern(rendered: tuple[Path, str]) -> None:
    _, md = rendered
    top = md.split("## Task", 1)[0]
    lines = [" ".join(x.split()) for x in top.splitlines()]
    # one row per task and view: the best method, its change, baseline → method, significance, tallies
    assert ("| synth-multilabel (`mAP`) | balanced | 812 | **`oversample:beta=1`** | **+0.0350 ± 0.0064** | "
            "0.4005 → 0.4355 | yes | 2 / 0 of 3 |") in lines
    # the largest change on natural is negative: "none helps", never bold
    assert ("| synth-multilabel (`mAP`) | natural | 2000 | none helps (least harmful `focal`) | "
            "-0.0010 ± 0.0635 (ns) | 0.6005 → 0.5995 | no | 0 / 2 of 3 |") in lines
    assert ("- **synth-multilabel** (`mAP`), `oversample:beta=1`: **present**: balanced +0.0350 ± 0.0064, "
            "natural -0.0150 ± 0.0064.") in lines
    # one seed on balanced: no interval, so the pattern cannot be judged
    assert any(x.startswith("- **synth-singlelabel** (`top1`), `oversample:beta=1`: no interval (one seed)")
               for x in lines)
    # one explanation of intervals, no repeated readings
    assert md.count("How to read") == 1 and "At a glance" not in md and "In short" not in md


def test_failed_and_footer(rendered: tuple[Path, str]) -> None:
    _, md = rendered
    # tabulate pads cells: compare with runs of spaces collapsed
    failed = "\n".join(" ".join(line.split()) for line in md.split("## Failed runs", 1)[1].splitlines())
    assert f"| {SL} | `focal` | 1 | CUDA out of memory \\| tried 2 times see log |" in failed
    assert "Generated from 17 result files: 15 ok, 1 failed, 1 unreadable" in md
    assert "git `0123456789ab` (16 runs)" in md
    assert "numpy 2.4.6, torch 2.5.1" in md


def test_identical_methods_and_low_n_views() -> None:
    res = [r for r in fixture_results() if r["config"]["task"]["name"] == ML and r["status"] == "ok"]
    # a post-hoc per-class shift on ranking metrics: the baseline's numbers up to float noise
    for r in [copy.deepcopy(r) for r in res if r["config"]["method"]["name"] == "none"]:
        r["config"]["method"] = {"name": "logit_adjust", "params": {"tau": 1.0}, "spec": "logit_adjust:tau=1"}
        r["run_id"] += "-la"
        for v in r["eval"].values():
            v["metrics"] = {k: x + 1e-13 for k, x in v["metrics"].items()}
        res.append(r)
    for r in res:
        r["eval"]["inverse"]["effective_n"] = 84.0  # of 2000 examples: below 100 and below 5 %
    md = build_report_markdown(res)
    assert md.count("`logit_adjust:tau=1`") == 1  # named once, in the task's header
    assert "**Equal to the baseline:** `logit_adjust:tau=1`" in md
    with pytest.raises(AssertionError):
        _row(md, ML, "### Leaderboard: `mAP`", "logit_adjust:tau=1")
    assert "| inverse (low n: 84)" in md and "84.0 *low n*" in md
    assert "Left out (low effective n, see How to read): synth-multilabel / inverse (effective n 84 of 2000)." in md
    summary_rows = [" ".join(x.split()) for x in md.split("## Task", 1)[0].splitlines()]
    assert not any(x.startswith("| synth-multilabel (`mAP`) | inverse |") for x in summary_rows)
    from reports.analysis import build_model, summary_dict

    s = summary_dict(build_model(res))["tasks"][ML]
    assert s["identical_to_baseline"] == ["logit_adjust:tau=1"] and "logit_adjust:tau=1" not in s["methods"]
    assert s["low_effective_n_views"] == ["inverse"]
    cell = s["methods"]["oversample:beta=1"]["views"]["inverse"]
    assert cell["effective_n"] == 84.0 and cell["low_effective_n"] is True and cell["interval"] == "seeds"


def test_summary_json(rendered: tuple[Path, str]) -> None:
    run_dir, _ = rendered
    s = json.loads((run_dir / "summary.json").read_text())
    cell = s["tasks"][ML]["methods"]["oversample:beta=1"]["views"]["balanced"]
    assert cell["n_seeds"] == 2 and cell["significant"] is True
    assert cell["mean_delta"] == pytest.approx(0.035)
    assert cell["ci_high"] - cell["ci_low"] == pytest.approx(2 * T975_1 * 0.0005)
    assert s["tasks"][ML]["methods"]["focal"]["views"]["balanced"]["significant"] is False
    assert s["tasks"][SL]["methods"]["focal"]["views"]["natural"] == {
        "mean_delta": pytest.approx(0.008), "ci_low": None, "ci_high": None, "n_seeds": 1, "significant": None,
        "effective_n": 2000.0, "low_effective_n": False}
    # no stored scores in this fixture: seeds-only intervals, and summary.json says so per cell
    assert cell["interval"] == "seeds" and cell["effective_n"] == 812.34
    assert s["tasks"][ML]["identical_to_baseline"] == [] and s["tasks"][ML]["low_effective_n_views"] == []
    assert s["tasks"][ML]["methods"]["oversample:beta=1"]["train_time_vs_baseline"] == pytest.approx(1.0)
    assert s["n_failed"] == 1 and s["n_unreadable"] == 1 and s["n_ok"] == 15


# ---------------------------------------------------------------- robustness


def test_pure_and_order_independent() -> None:
    res = fixture_results()
    md = build_report_markdown(res, n_unreadable=1)
    shuffled = copy.deepcopy(res)
    random.Random(0).shuffle(shuffled)
    assert build_report_markdown(shuffled, n_unreadable=1) == md
    assert res == fixture_results()  # inputs not mutated


def test_nulls_missing_views_and_no_baseline() -> None:
    res = [r for r in fixture_results() if r["status"] == "ok" and r["config"]["task"]["name"] == ML]
    for r in res:
        if r["config"]["method"]["name"] == "none":
            del r["eval"]["inverse"]  # baseline lacks a view: every delta there is n/a
        r["eval"]["balanced"]["metrics"] = {k: None for k in r["eval"]["balanced"]["metrics"]}
    md = build_report_markdown(res)
    row = _row(md, ML, "### Leaderboard: `mAP`", "oversample:beta=1")
    assert row[2:4] == ["n/a", "n/a"]
    summary = [" ".join(x.split()) for x in md.split("## Task", 1)[0].splitlines()]
    assert "| synth-multilabel (`mAP`) | inverse | 302 | n/a | n/a | n/a | n/a | n/a |" in summary
    # no baseline at all: a note instead of numbers, no crash
    md2 = build_report_markdown([r for r in res if r["config"]["method"]["name"] != "none"])
    assert "No baseline (`none`) runs" in md2
    assert "n/a" in _row(md2, ML, "### Leaderboard: `mAP`", "focal")[1]
    # nothing at all
    assert "No successful runs found." in build_report_markdown([])
    # seeds only on one side are not paired
    odd = [r for r in res if not (r["config"]["method"]["name"] == "none" and r["config"]["seed"] == 1)]
    odd = [r for r in odd if not (r["config"]["method"]["name"] == "focal" and r["config"]["seed"] == 0)]
    unpaired = _row(build_report_markdown(odd), ML, "### Leaderboard: `mAP`", "focal")
    assert unpaired[1:4] == ["n/a", "n/a", "n/a"] and unpaired[5] == "n/a"  # no paired seed: no cost either


def test_settings_are_not_mixed_and_duplicates_dropped() -> None:
    res = [r for r in fixture_results() if r["config"]["task"]["name"] == ML]
    other = copy.deepcopy(res)
    for r in other:  # same task and seeds, another training budget: must not be paired with the first
        r["config"]["train"]["budget_samples"] = 5000
        r["run_id"] += "-b"
        if r["config"]["method"]["name"] == "none":
            for v in r["eval"].values():
                v["metrics"]["mAP"] -= 0.5
    dup = copy.deepcopy(res[0])
    dup.update(run_id="zz-newer", created="2027-01-01T00:00:00Z")
    md = build_report_markdown(res + other + [dup])
    assert "## Task `synth-multilabel` (train.budget_samples=20000)" in md
    assert "## Task `synth-multilabel` (train.budget_samples=5000)" in md
    part = md.split("(train.budget_samples=20000)", 1)[1].split("## Task", 1)[0]
    assert _row("## Task `x`" + part, "x", "### Leaderboard: `mAP`", "oversample:beta=1")[2] == "**+0.0350 ± 0.0064** → 0.4355"
    assert "Duplicate runs of one configuration and seed ignored (latest kept): 1." in md


def test_load_runs_skips_and_counts(tmp_path: Path) -> None:
    write_fixture(tmp_path)
    r = _result(ML, "none", 1)
    r["run_id"] = "still-running"
    r["status"] = "running"
    (tmp_path / "results" / ML / "running.json").write_text(json.dumps(r))
    runs = load_runs(tmp_path)
    assert len(runs) == 16 and runs.n_unreadable == 2
    assert {x["status"] for x in runs} == {"ok", "failed"}
    assert load_runs(tmp_path / "missing") == []


# ---------------------------------------------------------------- stats


@pytest.mark.parametrize("values", [[1.0, 2.0], [0.1, 0.4, -0.2, 0.05], [3.0, 3.0, 3.0], list(range(10))])
def test_t_interval_matches_scipy(values: list[float]) -> None:
    mean, hw = t_interval(values)
    n = len(values)
    sem = scipy.stats.sem(values)
    if sem == 0:
        assert hw == 0 and mean == pytest.approx(3.0)
        return
    lo, hi = scipy.stats.t.interval(0.95, n - 1, loc=sum(values) / n, scale=sem)
    assert mean == pytest.approx((lo + hi) / 2) and hw == pytest.approx((hi - lo) / 2)


def test_stats_helpers() -> None:
    assert t_interval([0.5]) == (0.5, None)
    with pytest.raises(ValueError):
        t_interval([])
    assert paired_deltas({0: 1.0, 1: 2.0, 2: None, 3: 5.0}, {0: 0.5, 1: None, 2: 1.0, 4: 1.0}) == [0.5]
    assert imbalance_ratio([100, 10, 0]) == 10.0
    assert imbalance_ratio([100, 0, 5], present=[True, True, False]) == math.inf
    assert imbalance_ratio([0, 0]) is None



def test_validation_slices_say_what_they_are() -> None:
    """β is chosen on validation views: the β table says what each is, and flags one not built like the test view
    (AudioSet's `public` is the official eval set; a validation split has none, so a natural slice stands in)."""
    from reports.analysis import build_model
    from reports.shift_sections import _val_slice

    res = [r for r in fixture_results() if r["config"]["task"]["name"] == ML and r["status"] == "ok"]
    for r in res:
        r["eval"]["public"] = {**r["eval"]["natural"], "description": "official evaluation split as released"}
        r["val"] = {"balanced": {"description": "every class equally likely", "n_examples": 500,
                                 "effective_n": 203.1},
                    "public": {"description": "no official split here: all 500 examples (same prior as this split)",
                               "n_examples": 500, "effective_n": 500.0},
                    "inverse": {"description": "class prior inverted (rare classes frequent)", "n_examples": 500,
                                "effective_n": 20.0}}
    sec = build_model(res).sections[0]
    assert _val_slice(sec, "balanced") == "every class equally likely (203)"
    assert _val_slice(sec, "public") == ("no official split here: all 500 examples (same prior as this split) (500) "
                                         "**not built like the test view**")
    assert _val_slice(sec, "inverse") == "class prior inverted (rare classes frequent) (20 — low n)"
    assert _val_slice(sec, "natural") == "n/a"  # the runs stored no validation version of it


def test_run_warnings_are_shown_once_per_method() -> None:
    res = [copy.deepcopy(r) for r in fixture_results() if r["config"]["task"]["name"] == SL and r["status"] == "ok"]
    text = "no class is rarer than t = 0.001: every repeat factor is 1, so the method equals the baseline"
    for r in res:
        if r["config"]["method"]["spec"] == "focal":
            r["warnings"] = [text]  # the same warning on every seed
    md = build_report_markdown(res)
    assert md.count(text) == 1
    assert f"- **Warning** (`focal`): {text}" in md
    assert "**Warning**" not in build_report_markdown([r for r in res if "warnings" not in r])
