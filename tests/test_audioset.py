"""The audioset task on generated AudioSet-schema parquet, its bad inputs, and the synth-audioset task."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from audio_fixtures import CLASSES, TEST_ENV, write_audioset
from benchmark import UserError, get_task
from conftest import ROOT, run_cli

TINY_SYNTH = ("synth-audioset:classes=8,families=4,n_train=48,n_natural=24,n_public=24,n_val=8,frames=48,"
              "epochs=2,batch_size=16,warmup=2")


@pytest.fixture(scope="module")
def audioset_dir(tmp_path_factory) -> Path:
    return write_audioset(tmp_path_factory.mktemp("audioset"))


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """datasets writes its Arrow cache under the test's tmp dir, not ~/.cache."""
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf"))
    return tmp_path / "hf"


def test_audioset_end_to_end_on_generated_parquet(audioset_dir, tmp_path):
    out = tmp_path / "out"
    env = {**TEST_ENV, "HF_DATASETS_CACHE": str(tmp_path / "hf")}
    r = run_cli("--task", "audioset", "--data", str(audioset_dir), "--model-size", "tiny", "--method", "oversample",
                "--seeds", "1", "--out", str(out), "-q", env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in sorted((out / "results" / "audioset").glob("*.json"))]
    assert sorted(x["config"]["method"]["name"] for x in results) == ["none", "oversample"]
    for res in results:
        assert res["status"] == "ok"
        # the broken clip and the clip with an unknown MID are counted, not fatal
        assert res["task_info"]["skipped"] == {"train: undecodable audio": 1, "train: unknown label MID": 1}
        assert res["task_info"]["num_classes"] == 527
        ev = res["eval"]
        assert set(ev) == {"public", "natural", "balanced", "inverse"}
        assert ev["public"]["n_examples"] == 6  # the whole eval split
        assert ev["natural"]["n_examples"] == 1  # 10 % of the 12 readable training clips
        assert res["train_stats"]["n_examples"] == 10
        assert 0.0 <= ev["public"]["metrics"]["mAP"] <= 1.0
        assert res["config"]["train"]["budget_epochs"] == 25.0 and res["config"]["train"]["init"] == "scratch"
        assert res["effective_prior"]["samples_seen"] == 250  # 25 epochs x 10 clips, equal for every method
    report = (out / "report.md").read_text()
    assert "Skipped while loading:** train: undecodable audio: 1; train: unknown label MID: 1" in report
    assert "**public**" in report and "held out of bal_train" in report


def test_audioset_load_splits_views_and_features(audioset_dir, hf_cache, tmp_path):
    task = get_task("audioset", data=str(audioset_dir), model_size="tiny", natural_fraction=0.25,
                    cache_dir=str(tmp_path / "cache"))
    data = task.load()
    assert task.num_classes == 527 and task.class_names[0] == "Speech"
    assert len(data.pool) == 6 + 3 and len(data.val) == 1 and len(data.train) == 12 - 3 - 1
    np.testing.assert_array_equal(data.pool_groups["public"], np.arange(6))
    np.testing.assert_array_equal(data.pool_groups["natural"], np.arange(6, 9))
    assert task.budget_samples == 25 * 8
    (w, n), y = data.train.dataset[0]
    assert tuple(w.shape) == (128 * 160,) and tuple(y.shape) == (527,)
    assert int(n) == 128 * 160  # 1.5 s clips cut to the 1.28 s window: the loader only decodes and resamples
    (wp, np_), yp = data.pool.dataset[0]
    idx = [task.class_names.index(c[1]) for c in CLASSES]
    assert yp.numpy()[idx].sum() >= 1 and yp.sum() == data.pool.labels[0].sum()  # eval clips are not mixed
    model = task.build_model()
    assert model((w[None], n[None])).shape == (1, 527)
    assert model.fbank.frames == 128 and (model.freqm, model.timem) == (48, 24)  # timem 192 of 1024, scaled
    done = sorted((tmp_path / "cache").glob("*.done.npy"))
    assert len(done) == 4  # train, natural, val, public: one cache per slice
    assert sum(int(np.load(f).sum()) for f in done) >= 2  # the two clips read above are cached
    (w2, n2), _ = data.pool.dataset[0]
    assert int(n2) == int(np_)
    np.testing.assert_allclose(w2.numpy(), wp.numpy(), atol=float(wp.abs().max()) / 32767)  # 16-bit cache


def test_vocab_from_data_and_from_csv(audioset_dir, hf_cache, tmp_path):
    task = get_task("audioset", data=str(audioset_dir), model_size="tiny", vocab="data")
    data = task.load()
    assert task.num_classes == len(CLASSES) + 1  # the six classes and the unknown MID, now a class
    assert "Dog" in task.class_names and "Unknown" in task.class_names
    assert data.skipped == {"train: undecodable audio": 1}
    csv = tmp_path / "classes.csv"
    csv.write_text("index,mid,display_name\n" + "".join(f'{i},{m},"{n}"\n' for i, (m, n, _) in enumerate(CLASSES)))
    task = get_task("audioset", data=str(audioset_dir), model_size="tiny", vocab=str(csv))
    assert task.load().train.labels.shape[1] == 6 and task.class_names[2] == "Dog"


@pytest.mark.parametrize("kind,message", [
    ("missing", "no such file or directory"),
    ("no_labels", "no 'labels' column"),
    ("raw_pcm", "sample rate"),
    ("no_eval", "needs eval parquet files"),
])
def test_bad_audioset_inputs_are_one_line_errors(kind, message, tmp_path, hf_cache):
    root = tmp_path / "d"
    if kind == "no_labels":
        write_audioset(root, n_train=4, n_eval=2, broken=0, unknown_mid=0, drop_labels=True)
    elif kind == "raw_pcm":
        write_audioset(root, n_train=4, n_eval=2, broken=0, unknown_mid=0, raw_pcm=True)
    elif kind == "no_eval":
        write_audioset(root, n_train=4, n_eval=2, broken=0, unknown_mid=0)
        (root / "data" / "eval" / "00.parquet").rename(root / "data" / "other.parquet")
    with pytest.raises(UserError) as err:  # path problems at construction, content problems at load
        get_task("audioset", data=str(root), model_size="tiny").load()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_init_and_size_checks():
    with pytest.raises(UserError, match="init=imagenet needs"):
        get_task("audioset", model_size="tiny", init="imagenet")
    with pytest.raises(UserError, match="hub:<model id>"):
        get_task("audioset", init="pretrained")
    with pytest.warns(UserWarning, match="already fine-tuned on AudioSet"):
        get_task("audioset", init="hub:MIT/ast-finetuned-audioset-10-10-0.4593")
    task = get_task("audioset", config="full")  # run ids are computed before any data is read
    assert task.train_config()["lr"] == 1e-5 and task.train_config()["budget_epochs"] == 5.0
    assert get_task("audioset").train_config()["lr"] == 5e-5


def test_offline_hub_data_and_imagenet_weights_fail_with_the_fix(tmp_path):
    """The real download paths (datasets hub id, timm pretrained=True) offline: one line naming the fix."""
    script = textwrap.dedent("""
        from benchmark import UserError
        from benchmark.audio import ast_config, imagenet_ast_state, load_audio_splits
        for call in (lambda: load_audio_splits("agkphysics/AudioSet", "balanced"),
                     lambda: imagenet_ast_state("small", ast_config("small", 527))):
            try:
                call()
            except UserError as exc:
                print("ERR", exc)
    """)
    env = {**__import__("os").environ, **TEST_ENV, "HF_HOME": str(tmp_path / "hf")}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("ERR")]
    assert len(lines) == 2, r.stdout + r.stderr[-2000:]
    assert "huggingface-cli download agkphysics/AudioSet --repo-type dataset" in lines[0]
    assert "--data DIR" in lines[0]
    assert "deit_small_distilled_patch16_224" in lines[1] and "--init scratch" in lines[1]


def test_cli_rejects_bad_data_dirs_before_running(tmp_path, capsys):
    from benchmark.cli import main

    out = tmp_path / "out"
    for data, message in ((tmp_path / "nope", "no such file or directory"),
                          (tmp_path, "no .parquet files found")):
        assert main(["--task", "audioset", "--data", str(data), "--model-size", "tiny", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err
    assert not out.exists()  # nothing written


def test_synth_audioset_generates_learnable_events_and_runs(tmp_path):
    from benchmark.engine import Engine, RunSpec, prepare_task
    from benchmark.registry import get_method
    from benchmark.runner import make_accelerator
    from tasks.synth_audioset import event_params, render_events

    rng = np.random.default_rng(0)
    p = event_params(8, 4, 0.08, rng)
    tone = int(np.flatnonzero(p["kind"] == 0)[0])
    w = render_events(0, p, np.array([tone]), np.array([0.1]), np.array([0.6]), 16_000, rng)[0]
    peak = np.argmax(np.abs(np.fft.rfft(w))) * 16_000 / w.size
    assert abs(peak - p["freq"][tone]) < 3.0  # the class's own frequency
    task = get_task(TINY_SYNTH)
    prepared = prepare_task(task)
    assert prepared.data.train.labels.shape == (48, 8)
    assert set(prepared.views) == {"public", "natural", "balanced", "inverse"}
    engine = Engine(make_accelerator(), tmp_path, quiet=True)
    res = engine.run(RunSpec(task, get_method("oversample"), 0), prepared)
    assert res["status"] == "ok" and res["effective_prior"]["samples_seen"] == 96
    assert res["eval"]["public"]["n_examples"] == 24 and res["eval"]["natural"]["n_examples"] == 24
    again = get_task(TINY_SYNTH).load()  # seeded: the same audio every time
    np.testing.assert_array_equal(again.train.dataset.clips.waves, prepared.data.train.dataset.clips.waves)


def test_hub_checkpoint_of_another_length_is_fitted_as_in_every_ast_task(audioset_dir, hf_cache, monkeypatch):
    """audioset shares ASTTask's init path: a hub checkpoint read at 1024 frames is fitted to the task's 128
    (it used to fail there) and its weights load; the note says so and that it has seen AudioSet."""
    import torch

    import benchmark.audio.model as ast_model

    def fake_hub(model_id, num_classes):
        config = ast_model.ast_config("tiny", num_classes, frames=1024)
        torch.manual_seed(1)
        return config, ast_model.ASTClassifier(config).ast.state_dict()

    monkeypatch.setattr(ast_model, "hub_ast", fake_hub)
    with pytest.warns(UserWarning, match="already fine-tuned"):
        task = get_task("audioset", data=str(audioset_dir), model_size="tiny",
                        init="hub:MIT/ast-finetuned-audioset-10-10-0.4593")
    task.load()
    note = task._prepare_init()
    assert "fitted from 1024 to 128 frames" in note and note.endswith("already fine-tuned on AudioSet")
    model = task.build_model()
    ref = fake_hub("x", 527)[1]
    key = "audio_spectrogram_transformer.layers.0.mlp.fc1.weight"
    assert torch.equal(model.ast.state_dict()[key], ref[key])  # the checkpoint's weights, not a fresh init
    assert model.ast.config.max_length == 128 and model.fbank.frames == 128
    w = torch.zeros(2, model.fbank.max_samples)
    assert model((w, torch.tensor([20_480, 3_000]))).shape == (2, 527)
