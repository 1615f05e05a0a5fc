"""Every registered method through the engine on both tiny synthetic tasks; post-hoc and decoupled methods reuse the
baseline (no retraining); imbalanced-learn adapters; third-party methods from a --plugin file and an entry point."""
import json
import textwrap

import numpy as np
import pytest

from benchmark import UserError, get_method, get_task, list_methods
from benchmark.engine import Engine, RunSpec, evaluate_views, prepare_task
from benchmark.core.metrics import softmax
from conftest import TINY_ML, TINY_SL, run_cli

# even smaller budgets than the shared tiny tasks: a few optimizer steps each
ML = f"{TINY_ML},epochs=1"
SL = f"{TINY_SL},epochs=1"


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """One accelerator and engine, both tiny tasks prepared once, their baselines trained once."""
    from benchmark.runner import make_accelerator

    out = tmp_path_factory.mktemp("methods") / "run"
    engine = Engine(make_accelerator(), out, quiet=True)
    tasks = {}
    for kind, spec in (("multi", ML), ("single", SL)):
        task = get_task(spec)
        prepared = prepare_task(task)
        base = engine.run(RunSpec(task, get_method("none"), 0), prepared)
        assert base["status"] == "ok"
        tasks[kind] = (task, prepared, base)
    return engine, tasks


def npz(engine: Engine, spec: RunSpec):
    return np.load(engine.path(spec).with_suffix(".npz"))


@pytest.mark.parametrize("name", list_methods())
def test_every_method_runs_on_both_tasks(bench, name):
    engine, tasks = bench
    for kind, (task, prepared, base) in tasks.items():
        method = get_method(name)
        if (kind == "multi" and not method.multi_label) or (kind == "single" and not method.single_label):
            with pytest.raises(UserError, match=f"'{name}'.*(multi-label|single-label)"):
                engine.run(RunSpec(task, method, 0), prepared)
            continue
        res = engine.run(RunSpec(task, method, 0), prepared)
        assert res["status"] == "ok", (name, kind, res["error"])
        assert res["effective_prior"]["samples_seen"] == method.train_samples(task.budget_samples)
        main = task.main_metric
        for view in ("natural", "balanced", "inverse"):
            value = res["eval"][view]["metrics"][main]
            assert value is not None and 0.0 <= value <= 1.0
        assert res["val"]["natural"]["metrics"][main] is not None
        assert engine.path(RunSpec(task, method, 0)).with_suffix(".npz").exists()
        if method.posthoc:
            assert res["train_time_s"] == 0 and res["baseline_run_id"] == base["run_id"]
            assert res["effective_prior"]["class_counts_seen"] == base["effective_prior"]["class_counts_seen"]


def test_posthoc_sweeps_do_not_retrain(tmp_path, monkeypatch):
    """A τ sweep of logit_adjust and tau_norm: one training (the baseline), the rest re-score its stored arrays."""
    from benchmark.runner import run_grid

    trained = []
    original = Engine._train_and_score

    def counting(self, spec, prepared):
        trained.append(spec.method_spec)
        return original(self, spec, prepared)

    monkeypatch.setattr(Engine, "_train_and_score", counting)
    task = get_task(SL)
    specs = ["none", "logit_adjust:tau=0", "logit_adjust:tau=0.5", "logit_adjust:tau=1", "tau_norm:tau=0.5",
             "tau_norm:tau=0,keep_bias=true"]
    methods = [get_method(s) for s in specs]
    run_grid([task], methods, [0], tmp_path, quiet=True)
    assert trained == ["none"]
    engine = Engine(None, tmp_path)
    res = {s: json.loads(engine.path(RunSpec(task, m, 0)).read_text()) for s, m in zip(specs, methods)}
    with npz(engine, RunSpec(task, methods[0], 0)) as z:
        base = {k: z[k] for k in z.files}
    prepared = prepare_task(task)
    prior = prepared.train.prior
    for s, m in zip(specs[1:], methods[1:]):
        assert res[s]["train_time_s"] == 0 and res[s]["baseline_run_id"] == res["none"]["run_id"]
        with npz(engine, RunSpec(task, m, 0)) as z:
            pool = z["pool_logits"]
        if s.startswith("logit_adjust"):
            np.testing.assert_array_equal(pool, base["pool_logits"])  # raw scores stored, adjusted when evaluated
            adjusted = base["pool_logits"].astype(np.float64) - m.tau * np.log(prior)
        else:
            w = base["head_weight"].astype(np.float64)
            w = w / np.linalg.norm(w, axis=1, keepdims=True) ** m.tau
            adjusted = base["pool_features"] @ w.T + (base["head_bias"] if m.keep_bias else 0)
            np.testing.assert_allclose(pool, adjusted, rtol=1e-5, atol=1e-5)
        idx = base["view_natural_idx"]
        top1 = float(np.mean(softmax(adjusted[idx]).argmax(1) == base["pool_labels"][idx]))
        assert res[s]["eval"]["natural"]["metrics"]["top1"] == pytest.approx(top1, abs=1e-12)
    # τ = 0 is the baseline: logit adjustment exactly; τ-norm with its bias up to float32 rounding
    assert res["logit_adjust:tau=0"]["eval"] == res["none"]["eval"]
    assert res["tau_norm:tau=0,keep_bias=true"]["eval"]["natural"]["metrics"]["top1"] == pytest.approx(
        res["none"]["eval"]["natural"]["metrics"]["top1"], abs=2e-3)
    assert res["logit_adjust:tau=1"]["eval"] != res["none"]["eval"]


def test_posthoc_shift_cannot_change_multilabel_ranking_metrics(bench):
    engine, tasks = bench
    task, prepared, base = tasks["multi"]
    res = engine.run(RunSpec(task, get_method("logit_adjust:tau=2"), 0), prepared)
    for view, entry in res["eval"].items():
        assert entry["metrics"]["mAP"] == pytest.approx(base["eval"][view]["metrics"]["mAP"], abs=1e-12)


def test_crt_retrains_only_the_classifier_of_the_baseline(bench):
    engine, tasks = bench
    for kind in ("single", "multi"):
        task, prepared, base = tasks[kind]
        spec = RunSpec(task, get_method("crt"), 0)
        res = engine.run(spec, prepared)
        assert res["baseline_run_id"] == base["run_id"]
        assert engine.path(spec.baseline()).with_suffix(".pt").exists()
        assert res["effective_prior"]["samples_seen"] == round(0.2 * task.budget_samples)
        if kind == "single":  # class-balanced sampling of the classifier stage
            seen = np.array(res["effective_prior"]["class_counts_seen"])
            assert seen.max() - seen.min() <= 1
        # the backbone is the baseline's: cRT logits are an affine map of the baseline's stored features
        with npz(engine, spec.baseline()) as zb, npz(engine, spec) as zc:
            feats = np.c_[zb["pool_features"].astype(np.float64), np.ones(len(zb["pool_features"]))]
            target = zc["pool_logits"].astype(np.float64)
            assert not np.allclose(target, zb["pool_logits"], atol=1e-3)  # the head did change
        coef, *_ = np.linalg.lstsq(feats, target, rcond=None)
        assert np.abs(feats @ coef - target).max() < 1e-3


def test_runner_retrains_a_baseline_whose_model_was_not_kept(tmp_path):
    from benchmark.runner import run_grid

    task = get_task(SL)
    run_grid([task], [get_method("none")], [0], tmp_path, quiet=True)
    pt = Engine(None, tmp_path).path(RunSpec(task, get_method("none"), 0)).with_suffix(".pt")
    pt.unlink()
    msg = run_grid([task], [get_method("none"), get_method("crt")], [0], tmp_path, quiet=True)
    assert str(msg).startswith("2 run(s) done") and pt.exists()


def test_a_threshold_that_repeats_nothing_is_logged_and_stored(bench):
    engine, tasks = bench
    task, prepared, base = tasks["single"]
    spec = RunSpec(task, get_method("repeat_factor:t=0.001"), 0)  # LVIS' t: below every class of the tiny task
    res = engine.run(spec, prepared)
    assert res["status"] == "ok" and len(res["warnings"]) == 1
    assert "no class is rarer than t = 0.001" in res["warnings"][0]
    # all factors 1: exactly the baseline's stream
    assert res["effective_prior"]["class_counts_seen"] == base["effective_prior"]["class_counts_seen"]
    log = (engine.out / "logs" / f"{spec.run_id}.log").read_text()
    assert "warning: method 'repeat_factor': no class is rarer than t = 0.001" in log
    auto = engine.run(RunSpec(task, get_method("repeat_factor"), 0), prepared)  # t=auto repeats the rarer classes
    assert "warnings" not in auto
    assert auto["effective_prior"]["imbalance_ratio_seen"] < base["effective_prior"]["imbalance_ratio_seen"]


def test_imblearn_resamples_before_training_with_the_same_budget(bench):
    engine, tasks = bench
    task, prepared, base = tasks["single"]
    res = engine.run(RunSpec(task, get_method("imblearn_under"), 0), prepared)
    assert res["effective_prior"]["samples_seen"] == base["effective_prior"]["samples_seen"]
    assert res["effective_prior"]["imbalance_ratio_seen"] < 1.6  # a balanced training set, ρ = 20 before
    assert res["train_stats"] == base["train_stats"]  # the task's own training set is what is described


def test_imblearn_without_feature_vectors_is_a_clear_error(bench):
    engine, tasks = bench
    task, prepared, _ = tasks["single"]
    from dataclasses import replace

    stripped = replace(prepared, train=replace(prepared.train, features=None))
    with pytest.raises(UserError, match="resamples feature vectors.*has none"):
        engine.run(RunSpec(task, get_method("imblearn_smote"), 0), stripped)


ABSENT = {  # tiny tasks where some classes have no training example (and rare ones have 1 or 2)
    "single": "synth-singlelabel:classes=6,groups=2,n_max=40,rho=1000,n_eval=300,per_class_uniform=30,epochs=1,"
              "hidden=8",
    "multi": "synth-multilabel:classes=12,groups=4,n_train=40,n_eval=600,n_uniform=400,epochs=1,hidden=8,"
             "exponent=2.5",
}


@pytest.mark.parametrize("kind", ["single", "multi"])
def test_count_based_methods_run_with_absent_classes(tmp_path, kind):
    from benchmark.runner import run_grid

    task = get_task(ABSENT[kind])
    assert (prepare_task(task).train.class_counts == 0).any()
    specs = ["logit_adjust", "logit_adjust:form=loss", "balanced_softmax", "class_balanced:beta_cb=1", "ldam_drw",
             "repeat_factor:t=0.5", "class_uniform", "sqrt_sampling", "progressive", "crt", "tau_norm"]
    specs += ["imblearn_smote", "imblearn_over"] if kind == "single" else ["asl", "dist_balanced"]
    run_grid([task], [get_method("none")] + [get_method(s) for s in specs], [0], tmp_path, quiet=True)
    res = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("*/*.json")]
    assert len(res) == len(specs) + 1
    assert all(d["status"] == "ok" for d in res), [(d["config"]["method"]["spec"], d["error"]) for d in res]


def test_cli_refuses_unsupported_label_types_before_running(tmp_path):
    out = tmp_path / "o"
    r = run_cli("--task", ML, "--method", "imblearn_smote", "--seeds", "1", "--out", str(out))
    assert r.returncode == 2 and "imbalanced-learn does not support multi-label" in r.stderr
    assert r.stderr.count("\n") == 1 and not out.exists()


# The README's "Add a method in 5 minutes" example, verbatim: the test keeps it working.
README_EXAMPLE = textwrap.dedent('''\
    """Square-root inverse-frequency loss weights (example plugin for balancebench)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    from benchmark import Method, Param, register_method


    @register_method
    class SqrtInvWeights(Method):
        """Loss weights (n_max / n_j)^power per class: positives only for multi-label tasks."""

        name = "sqrt_inv_weights"
        paper = "my note, 2025"
        params = {"power": Param(float, 0.5, "exponent of n_max / n_j", min=0.0, max=2.0)}

        def setup(self, train):
            super().setup(train)  # train: TrainInfo (labels, class_counts, prior, label_matrix, present)
            n = np.maximum(train.class_counts, 1)
            self.w = (n.max() / n) ** self.power

        def loss(self, logits, targets, progress):
            w = self.on(logits, self.w)  # cached on the logits' device
            if targets.dtype.is_floating_point:  # multi-label: (B, C) float targets
                per = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
                return (per * (1 + (w - 1) * targets)).mean()
            return (F.cross_entropy(logits, targets, reduction="none") * w[targets]).mean()
    ''')


def test_plugin_file_method_runs_end_to_end_through_the_cli(tmp_path):
    plugin = tmp_path / "my_methods.py"
    plugin.write_text(README_EXAMPLE)
    out = tmp_path / "out"
    r = run_cli("--plugin", str(plugin), "--task", SL, "--method", "sqrt_inv_weights:power=1", "--seeds", "1",
                "--out", str(out), "--quiet", "--no-report")
    assert r.returncode == 0, r.stderr
    res = [json.loads(p.read_text()) for p in (out / "results").glob("*/*.json")]
    mine = [d for d in res if d["config"]["method"]["name"] == "sqrt_inv_weights"]
    assert len(res) == 2 and len(mine) == 1 and mine[0]["status"] == "ok"
    assert mine[0]["config"]["method"]["params"] == {"power": 1.0}
    r = run_cli("--plugin", str(plugin), "--method", "sqrt_inv_weights:power=3", "--task", SL, "--out", str(out))
    assert r.returncode == 2 and "must be <= 2" in r.stderr


def test_entry_point_group_adds_methods(tmp_path):
    """An installed distribution exposing `balancebench.methods` (a dist-info on the path, as pip writes it)."""
    (tmp_path / "bb_demo_pkg.py").write_text(textwrap.dedent('''\
        """Demo third-party package."""
        import numpy as np
        from benchmark import Method, Param


        class HalfShift(Method):
            """Post-hoc: subtract half the log prior (an entry-point method, not decorated)."""

            name = "ep_half_shift"
            posthoc = True
            params = {"scale": Param(float, 0.5, "multiplier of log prior", min=0.0, max=1.0)}

            def setup(self, train):
                super().setup(train)
                self.shift = self.scale * np.log(np.maximum(train.prior, 1e-12))

            def adjust_logits(self, logits):
                return logits - self.shift
        '''))
    dist = tmp_path / "bb_demo_pkg-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: bb-demo-pkg\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[balancebench.methods]\nep_half_shift = bb_demo_pkg:HalfShift\n")
    env = {"PYTHONPATH": str(tmp_path)}
    r = run_cli("--list", env=env)
    assert r.returncode == 0 and "ep_half_shift" in r.stdout, r.stderr
    out = tmp_path / "out"
    r = run_cli("--task", SL, "--method", "ep_half_shift", "--seeds", "1", "--out", str(out), "--quiet",
                "--no-report", env=env)
    assert r.returncode == 0, r.stderr
    res = {d["config"]["method"]["name"]: d for d in
           (json.loads(p.read_text()) for p in (out / "results").glob("*/*.json"))}
    assert res["ep_half_shift"]["status"] == "ok" and res["ep_half_shift"]["train_time_s"] == 0


def test_evaluate_views_applies_the_adjustment_once(bench):
    engine, tasks = bench
    task, prepared, base = tasks["single"]
    m = get_method("logit_adjust")
    m.setup(prepared.train)
    logits = np.random.default_rng(0).normal(size=(len(prepared.data.pool), task.num_classes))
    a = evaluate_views(m, False, logits, prepared.data.pool.labels, prepared.views, per_class=False)
    b = evaluate_views(get_method("none"), False, m.adjust_logits(logits), prepared.data.pool.labels,
                       prepared.views, per_class=False)
    assert a == b
