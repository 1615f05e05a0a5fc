"""Deployment splits end to end: task parameters, --deploy files, the engine's .npz, the report's deployment
section and summary.json, prior_adapt, and bad input (one line, exit 2, nothing written)."""
import json
from pathlib import Path

import numpy as np
import pytest

from benchmark.core.deploy import named_prior
from benchmark.core.errors import UserError
from benchmark.registry import get_task
from conftest import TINY_SL, run_cli

DEPLOY_SL = TINY_SL + ",deploy_prior=backward10,deploy_size=1500"


# ------------------------------------------------------------------------------------------- tasks


@pytest.mark.parametrize("name, params", [
    ("synth-singlelabel", dict(classes=6, groups=2, n_max=200, rho=20, n_eval=800, per_class_uniform=60)),
    ("synth-multilabel", dict(classes=12, groups=4, n_train=1500, n_eval=1500, n_uniform=800)),
    ("digits-lt", {}),
])
def test_generated_deploy_split_leaves_other_splits_unchanged(name, params):
    plain = get_task(name, **params).load()
    data = get_task(name, **params, deploy_prior="backward10", deploy_size=300 if name != "digits-lt" else None).load()
    for split in ("train", "val", "pool"):
        np.testing.assert_array_equal(getattr(plain, split).features, getattr(data, split).features)
        np.testing.assert_array_equal(getattr(plain, split).labels, getattr(data, split).labels)
    assert plain.deploy is None and data.deploy is not None
    assert not np.any(data.deploy.labels)  # placeholders: the model pass never sees the true labels
    y = data.deploy_true_labels
    assert y is not None and y.shape[0] == len(data.deploy)
    assert data.deploy_info["source"] == "generated" and data.deploy_info["prior_name"] == "backward10"
    if name != "synth-multilabel":  # class frequencies follow the backward prior: rarest training class most common
        freq = np.bincount(y, minlength=data.pool.labels.max() + 1)
        counts = np.bincount(data.train.labels)
        assert freq[np.argmin(counts)] > freq[np.argmax(counts)]
    else:
        prev = y.mean(axis=0)
        counts = data.train.labels.sum(axis=0)
        assert prev[np.argmin(counts)] > prev[np.argmax(counts)]


def test_digits_deploy_images_are_disjoint_from_every_split():
    data = get_task("digits-lt", deploy_prior="backward10").load()
    used = np.concatenate([data.train.features, data.val.features, data.pool.features])
    rows = {r.tobytes() for r in used}  # the 1,797 digits images are pairwise distinct
    assert not any(r.tobytes() in rows for r in data.deploy.features)
    # backward10 fits 321 of the images no split uses (the head digit has only 8 left)
    assert len(data.deploy) == 321


def test_named_priors():
    counts = np.array([100, 50, 10])
    np.testing.assert_allclose(named_prior("uniform", counts), [1 / 3] * 3)
    np.testing.assert_allclose(named_prior("train_prior", counts), counts / 160)
    np.testing.assert_allclose(named_prior("inverse", counts), [10 / 160, 50 / 160, 100 / 160])
    np.testing.assert_allclose(named_prior("forward10", counts), np.array([1, 10 ** -0.5, 0.1]) / (1.1 + 10 ** -0.5))
    np.testing.assert_allclose(named_prior("gamma2", counts), named_prior("inverse", counts))
    with pytest.raises(UserError, match="deploy_prior 'sideways' is not a prior"):
        named_prior("sideways", counts)


def test_deploy_param_errors():
    with pytest.raises(UserError, match="deploy_prior"):
        get_task("synth-singlelabel", deploy_prior="sideways")
    with pytest.raises(UserError, match="deploy_size=2000: .* at most ~"):
        get_task("digits-lt", deploy_prior="forward50", deploy_size=2000).load()
    with pytest.raises(UserError, match="either deploy=PATH"):
        get_task("synth-singlelabel", deploy_prior="uniform", deploy="x.npy").load()


# ------------------------------------------------------------------------------------------- bad --deploy input


@pytest.mark.parametrize("content, message", [
    (np.zeros((10, 5), np.float32), "expected (N, 16) feature vectors for this task, got shape (10, 5)"),
    (np.zeros((0, 16), np.float32), "the deployment set is empty"),
    (np.full((3, 16), np.nan, np.float32), "48 values are NaN or inf"),
])
def test_bad_deploy_file_is_one_line_exit_2_nothing_written(tmp_path, content, message):
    f = tmp_path / "deploy.npy"
    np.save(f, content)
    out = tmp_path / "out"
    r = run_cli("--task", TINY_SL, "--deploy", str(f), "--method", "logit_adjust", "--seeds", "1", "--out", str(out),
                "--quiet")
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert not out.exists()


def test_too_little_validation_data_fails_before_training(tmp_path):
    spec = "synth-singlelabel:classes=6,groups=2,n_max=200,rho=20,n_eval=40,per_class_uniform=4,epochs=1,hidden=8"
    out = tmp_path / "out"
    r = run_cli("--task", spec + ",deploy_prior=uniform,deploy_size=100", "--seeds", "1", "--method",
                "logit_adjust", "--out", str(out), "--quiet")
    assert r.returncode == 2
    assert "too little validation data to calibrate" in r.stderr and "at least 5 per class" in r.stderr
    assert not out.exists()


def test_deploy_csv_ignores_a_label_column(tmp_path):
    from benchmark.deploy import read_deploy_features

    f = tmp_path / "d.csv"
    f.write_text("a,b,label\n1,2,0\n3,4,1\n")
    np.testing.assert_array_equal(read_deploy_features(str(f), 2), [[1, 2], [3, 4]])


# ------------------------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def deploy_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("deploy") / "run"
    r = run_cli("--task", DEPLOY_SL, "--method", "oversample:beta=0.5,oversample:beta=1,prior_adapt", "--seeds", "2",
                "--out", str(out), "--quiet", "--bootstrap", "20")
    assert r.returncode == 0, r.stderr
    return out


def test_npz_keeps_deploy_logits_and_true_labels_apart(deploy_run):
    npzs = sorted((deploy_run / "results" / "synth-singlelabel").glob("*.npz"))
    assert npzs
    for p in npzs:
        with np.load(p) as z:
            assert z["deploy_logits"].shape == (1500, 6)
            assert z["deploy_true_labels"].shape == (1500,)
            assert "deploy_labels" not in z.files
    res = [json.loads(p.read_text()) for p in (deploy_run / "results" / "synth-singlelabel").glob("*.json")]
    assert all(r["task_info"]["deploy"] == {"source": "generated", "prior_name": "backward10", "n": 1500}
               for r in res)


def test_report_and_summary_answer_for_the_deployment(deploy_run):
    md = (deploy_run / "report.md").read_text()
    assert "### On your deployment data" in md and "**On your deployment data** (synth-singlelabel" in md
    assert "Estimate vs the true deployment prior" in md and "| deploy " in md
    summary = json.loads((deploy_run / "summary.json").read_text())
    dep = summary["tasks"]["synth-singlelabel"]["deployment"]
    q, lo, hi = (np.array(dep[k]) for k in ("estimated_prior", "ci_low", "ci_high"))
    assert dep["estimator"] == "mlls+bcts" and q.shape == (6,) and q.sum() == pytest.approx(1.0, abs=1e-5)
    assert np.all(lo <= q + 1e-9) and np.all(q <= hi + 1e-9)
    truth = np.array(dep["true_prior"])
    assert dep["l1_error"] == pytest.approx(np.abs(q - truth).sum(), abs=1e-5)
    assert set(dep["cross_checks"]) == {"bbse", "rlls"}
    # the deploy distribution is scored like every other, with an interval
    cell = summary["prior_shift"]["synth-singlelabel"]["delta"]["oversample:beta=1"]["top1"]["deploy"]
    assert cell["ci_low"] < cell["mean"] < cell["ci_high"]
    assert "prior_adapt" in " ".join(summary["tasks"]["synth-singlelabel"]["methods"])


def test_scrambled_true_labels_change_the_check_not_the_estimate(deploy_run, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(deploy_run, copy, ignore=shutil.ignore_patterns("cache"))
    rng = np.random.default_rng(0)
    for p in (copy / "results" / "synth-singlelabel").glob("*.npz"):
        with np.load(p) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["deploy_true_labels"] = rng.integers(0, 6, arrays["deploy_true_labels"].size)  # scrambled
        np.savez(p, **arrays)
    r = run_cli("report", str(copy))
    assert r.returncode == 0, r.stderr
    a = json.loads((deploy_run / "summary.json").read_text())["tasks"]["synth-singlelabel"]["deployment"]
    b = json.loads((copy / "summary.json").read_text())["tasks"]["synth-singlelabel"]["deployment"]
    assert a["estimated_prior"] == b["estimated_prior"] and a["ci_low"] == b["ci_low"]
    assert a["true_prior"] != b["true_prior"]


# ------------------------------------------------------------------------------------------- prior_adapt


def test_prior_adapt_is_the_em_posterior_correction():
    from benchmark.core.labelshift import estimate_prior, fit_bcts
    from benchmark.method import TrainInfo
    from benchmark.registry import get_method

    rng = np.random.default_rng(0)
    y_train = rng.choice(3, 3000, p=[0.6, 0.3, 0.1])
    yv, yd = rng.choice(3, 2000, p=[0.6, 0.3, 0.1]), rng.choice(3, 3000, p=[0.1, 0.3, 0.6])
    z = lambda y: 2.0 * np.eye(3)[y] + rng.normal(size=(y.size, 3))  # noqa: E731
    stored = {"pool_logits": z(yv), "val_logits": z(yv), "val_labels": yv, "deploy_logits": z(yd),
              "deploy_true_labels": np.zeros(3000, np.int64)}  # never read: zeros would ruin any estimate
    m = get_method("prior_adapt")
    m.setup(TrainInfo(labels=y_train, multi_label=False, num_classes=3, budget_samples=1))
    pool, val = m.posthoc_scores(stored)
    p_train = np.bincount(y_train, minlength=3) / y_train.size
    q = estimate_prior(stored["val_logits"], yv, stored["deploy_logits"], p_train, False, n_boot=0).prior
    assert q[2] > 0.5  # the shift was found
    cal = fit_bcts(stored["val_logits"], yv)
    p_val = np.bincount(yv, minlength=3) / yv.size
    expect = stored["pool_logits"] * cal.scale + cal.bias + np.log(q) - np.log(p_val)
    np.testing.assert_allclose(pool, expect, atol=1e-9)
    raw = get_method("prior_adapt", calibrate=False)
    raw.setup(TrainInfo(labels=y_train, multi_label=False, num_classes=3, budget_samples=1))
    np.testing.assert_allclose(raw.posthoc_scores(stored)[0], stored["pool_logits"] + np.log(q) - np.log(p_train))
    # without a deployment split: the baseline's scores, and a warning
    del stored["deploy_logits"]
    m2 = get_method("prior_adapt")
    m2.setup(TrainInfo(labels=y_train, multi_label=False, num_classes=3, budget_samples=1))
    np.testing.assert_array_equal(m2.posthoc_scores(stored)[0], stored["pool_logits"])
    assert "no deployment split" in m2.setup_warnings[0]


def test_non_convergence_is_a_warning_and_a_marked_estimate(deploy_run, tmp_path, monkeypatch):
    import shutil

    import benchmark.core.labelshift as ls
    from reports.render import render_report

    copy = tmp_path / "copy"
    shutil.copytree(deploy_run, copy, ignore=shutil.ignore_patterns("cache"))
    monkeypatch.setattr(ls, "EM_MAX_ITER", 1)  # EM cannot reach its tolerance in one step
    render_report(copy)
    md = (copy / "report.md").read_text()
    assert "> **Warning:** EM did not converge in 1 iterations" in md and "**estimate not converged**" in md
    dep = json.loads((copy / "summary.json").read_text())["tasks"]["synth-singlelabel"]["deployment"]
    assert dep["converged"] is False and any("did not converge" in w for w in dep["warnings"])


def test_data_task_deploy_file_end_to_end(tmp_path):
    """imblearn-ecoli (a generated cache in imbalanced-learn's format) with a --deploy file of raw minority rows:
    standardized like the task's splits, and the report finds the shift to the minority."""
    from test_tasks_tabular import NO_NET, write_zenodo

    cache = write_zenodo(tmp_path / "home", "ecoli", 336, 7, 35)
    with np.load(cache) as z:
        raw_minority = z["data"][z["label"] == 1]
    f = tmp_path / "deploy.npy"
    np.save(f, raw_minority)
    task = get_task("imblearn-ecoli", data=str(tmp_path / "home"), deploy=str(f))
    data = task.load()
    # the same 35 rows as the splits' minority examples, so standardized identically: equal means
    minority = np.concatenate([s.features[s.labels == 1] for s in (data.train, data.val, data.pool)])
    np.testing.assert_allclose(data.deploy.features.mean(axis=0), minority.mean(axis=0), atol=1e-5)
    out = tmp_path / "out"
    r = run_cli("--task", "imblearn-ecoli", "--data", str(tmp_path / "home"), "--deploy", str(f), "--method",
                "prior_adapt", "--seeds", "1", "--out", str(out), "-q", env=NO_NET)
    assert r.returncode == 0, r.stderr
    dep = json.loads((out / "summary.json").read_text())["tasks"]["imblearn-ecoli"]["deployment"]
    assert dep["source"] == "file" and "true_prior" not in dep
    assert dep["estimated_prior"][1] > 0.8  # every deployment row is a minority example


# ------------------------------------------------------------------------------------------- AST audio tasks

# a tiny synth-audioset whose validation split has >= 5 positives and negatives of every class (calibration)
SYNTH_AUDIO = ("synth-audioset:classes=8,families=4,exponent=0.3,n_train=64,n_natural=24,n_public=24,n_val=40,"
               "frames=48,epochs=2,batch_size=16,warmup=2")


def _audio_env(tmp_path: Path) -> dict:
    from audio_fixtures import TEST_ENV

    return {**TEST_ENV, "HF_HOME": str(tmp_path / "hf"), "HF_DATASETS_CACHE": str(tmp_path / "hf" / "datasets")}


def write_flac_dir(root: Path, n: int = 12, broken: int = 1) -> Path:
    """n FLAC clips (48 / 44.1 kHz, some in a subfolder), `broken` .wav files that are not audio, one text file."""
    import soundfile as sf
    from audio_fixtures import clip

    rng = np.random.default_rng(0)
    (root / "sub").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        sr = 48_000 if i % 2 else 44_100
        sf.write(root / ("sub" if i % 3 == 0 else "") / f"c{i:02d}.flac", clip([i % 6], sr, 0.8, rng), sr,
                 format="FLAC")
    for i in range(broken):
        (root / f"broken{i}.wav").write_bytes(b"RIFF....WAVEfmt broken" + bytes(200))
    (root / "notes.txt").write_text("not audio, not counted")
    return root


def test_synth_audioset_deploy_prior_end_to_end(tmp_path):
    plain = get_task(SYNTH_AUDIO).load()
    data = get_task(SYNTH_AUDIO, deploy_prior="backward10", deploy_size=60).load()
    np.testing.assert_array_equal(plain.train.dataset.clips.waves, data.train.dataset.clips.waves)
    np.testing.assert_array_equal(plain.pool.dataset.clips.waves, data.pool.dataset.clips.waves)
    assert len(data.deploy) == 60 and not data.deploy.labels.any()
    (wave, n), y = data.deploy.dataset[0]
    assert n == 48 * 160 and not y.any()  # a 0.48 s clip for the fbank, placeholder labels only
    prev, counts = data.deploy_true_labels.mean(axis=0), data.train.labels.sum(axis=0)
    assert prev[np.argmin(counts)] > prev[np.argmax(counts)]  # backward: the rarest training class most common
    out = tmp_path / "out"
    r = run_cli("--task", SYNTH_AUDIO + ",deploy_prior=backward10,deploy_size=60", "--method", "oversample",
                "--seeds", "1", "--out", str(out), "-q", "--bootstrap", "20", env=_audio_env(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    for p in (out / "results" / "synth-audioset").glob("*.npz"):
        with np.load(p) as z:
            assert z["deploy_logits"].shape == (60, 8) and z["deploy_true_labels"].shape == (60, 8)
    md = (out / "report.md").read_text()
    assert "### On your deployment data" in md and "generated from the prior `backward10`" in md
    dep = json.loads((out / "summary.json").read_text())["tasks"]["synth-audioset"]["deployment"]
    assert len(dep["estimated_prior"]) == 8 and len(dep["true_prior"]) == 8 and dep["l1_error"] >= 0


def test_ast_task_deploy_directory_of_flac_end_to_end(tmp_path):
    from benchmark.audio import decode_clip

    clips = write_flac_dir(tmp_path / "clips")
    task = get_task(SYNTH_AUDIO, deploy=str(clips))
    data = task.load()
    assert len(data.deploy) == 12 and data.skipped == {"deploy: undecodable audio": 1}
    assert data.deploy_info == {"source": "file", "path": str(clips), "format": "audio files", "skipped": 1, "n": 12}
    # the task's own decode path: soundfile + soxr to 16 kHz, cut to the task's clip length
    first = sorted(clips.rglob("*.flac"))[0]
    (wave, n), _ = data.deploy.dataset[0]
    expect = decode_clip(first, task.max_samples)
    assert int(n) == expect.size == task.max_samples
    np.testing.assert_array_equal(wave.numpy()[: int(n)], expect)
    out = tmp_path / "out"
    r = run_cli("--task", SYNTH_AUDIO, "--deploy", str(clips), "--method", "oversample", "--seeds", "1",
                "--out", str(out), "-q", "--bootstrap", "20", env=_audio_env(tmp_path))
    assert r.returncode == 0, r.stderr[-3000:]
    res = [json.loads(p.read_text()) for p in (out / "results" / "synth-audioset").glob("*.json")]
    assert len(res) == 2 and all(x["task_info"]["skipped"] == {"deploy: undecodable audio": 1} for x in res)
    for p in (out / "results" / "synth-audioset").glob("*.npz"):
        with np.load(p) as z:
            assert z["deploy_logits"].shape == (12, 8) and "deploy_true_labels" not in z.files
    md = (out / "report.md").read_text()
    assert "### On your deployment data" in md and f"`{clips}`" in md
    dep = json.loads((out / "summary.json").read_text())["tasks"]["synth-audioset"]["deployment"]
    assert dep["source"] == "file" and "true_prior" not in dep


def test_single_label_ast_task_deploy_directory(tmp_path):
    """esc50-lt (single-label): the deployment clips carry placeholder class ids, never a real label."""
    from test_tasks_audio import ESC_TINY, write_esc50

    task = get_task(ESC_TINY, data=str(write_esc50(tmp_path / "esc")), deploy=str(write_flac_dir(tmp_path / "c", 5, 0)),
                    model_size="tiny")
    data = task.load()
    assert len(data.deploy) == 5 and data.deploy.labels.dtype == np.int64 and not data.deploy.labels.any()
    (wave, n), y = data.deploy.dataset[4]
    assert not y.dtype.is_floating_point and int(y) == 0
    assert int(n) == 12_800 < task.max_samples and not wave[12_800:].any()  # 0.8 s at 16 kHz, zero-padded
    assert not any(k.startswith("deploy") for k in data.skipped)


def test_audioset_deploy_parquet_ignores_labels_and_counts_broken_clips(tmp_path, monkeypatch):
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq
    from audio_fixtures import rows, write_audioset

    from benchmark.audio import decode_clip

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf"))
    root = write_audioset(tmp_path / "audioset")
    dep = tmp_path / "deploy" / "data"
    dep.mkdir(parents=True)
    table = pa.Table.from_pylist(rows(7, seed=5, broken=2))  # AudioSet's schema, labels included
    pq.write_table(table.slice(0, 4), dep / "a.parquet")
    pq.write_table(table.slice(4).drop_columns(["labels"]), dep / "b.parquet")  # a labels column is not needed
    data = get_task("audioset", data=str(root), deploy=str(dep.parent), model_size="tiny", num_workers=0).load()
    assert len(data.deploy) == 5 and data.skipped["deploy: undecodable audio"] == 2
    assert data.deploy.labels.shape == (5, 527) and not data.deploy.labels.any()
    assert data.deploy_info["format"] == "parquet"
    (wave, n), _ = data.deploy.dataset[0]  # row 2: the first readable clip
    expect = decode_clip(table.column("audio")[2]["bytes"].as_py(), 128 * 160)
    np.testing.assert_array_equal(wave.numpy()[: int(n)], expect)


@pytest.mark.parametrize("make, message", [
    (lambda d: d.mkdir(), "is empty"),
    (lambda d: (d.mkdir(), (d / "readme.txt").write_text("x")), "holds no audio"),
    (lambda d: write_flac_dir(d, n=1, broken=3), "3 of 4 clips of the deploy split cannot be read"),
    (lambda d: None, "no such file or directory"),
])
def test_bad_deploy_directory_is_one_line_exit_2_nothing_written(tmp_path, make, message):
    d = tmp_path / "deploy"
    make(d)
    out = tmp_path / "out"
    r = run_cli("--task", SYNTH_AUDIO, "--deploy", str(d), "--method", "oversample", "--seeds", "1",
                "--out", str(out), "-q", env=_audio_env(tmp_path))
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0] and "--deploy" in lines[0], r.stderr
    assert not out.exists()


def test_deploy_hub_id_offline_fails_with_the_fetch_once_fix(tmp_path):
    """In a fresh process, so that `datasets` reads the offline switch at import, as a user's run does."""
    out = tmp_path / "out"
    r = run_cli("--task", SYNTH_AUDIO, "--deploy", "someone/deploy-clips", "--method", "oversample", "--seeds", "1",
                "--out", str(out), "-q", env=_audio_env(tmp_path))
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "offline" in lines[0], r.stderr
    assert "huggingface-cli download someone/deploy-clips --repo-type dataset" in lines[0]
    assert "--deploy DIR" in lines[0]
    assert not out.exists()


@pytest.mark.parametrize("content", [b"PK\x03\x04 not a zip", b""])
def test_broken_deploy_npz_or_npy_is_a_user_error(tmp_path, content):
    from benchmark.core.errors import UserError
    from benchmark.deploy import read_deploy_features

    for suffix in (".npz", ".npy"):
        path = tmp_path / f"broken{suffix}"
        path.write_bytes(content)
        with pytest.raises(UserError, match="cannot read it as numbers"):
            read_deploy_features(str(path), 4)


def test_digits_deploy_file_is_scaled_like_the_splits(tmp_path):
    from sklearn.datasets import load_digits

    raw = load_digits().data[:7]  # raw pixels 0..16, as a user has them
    np.save(tmp_path / "d.npy", raw)
    data = get_task("digits-lt", deploy=str(tmp_path / "d.npy")).load()
    np.testing.assert_allclose(data.deploy.features, raw / 16.0, rtol=0, atol=1e-7)


def test_deploy_csv_with_a_column_number_header_drops_it(tmp_path):
    from benchmark.deploy import read_deploy_features

    x = np.arange(12, dtype=np.float64).reshape(3, 4) + 0.5
    path = tmp_path / "d.csv"
    path.write_text("0,1,2,3\n" + "\n".join(",".join(str(v) for v in row) for row in x) + "\n")
    np.testing.assert_array_equal(read_deploy_features(str(path), 4), x.astype(np.float32))
