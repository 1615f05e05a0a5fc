"""fsd50k and esc50-lt on tiny copies of their real on-disk formats (csv + 44.1 kHz WAV files, ESC-50 parquet)."""
import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from audio_fixtures import CLASSES, TEST_ENV, clip, flac_bytes
from benchmark import UserError, get_task
from conftest import ROOT, run_cli

SR = 44_100  # both datasets ship 44.1 kHz 16-bit mono WAV
ESC_CLASSES = ["dog", "rooster", "rain", "sea_waves"]  # ESC-50's first targets are 0 dog, 1 rooster; 2, 3 are ours
ESC_TINY = "esc50-lt:n_max=8,rho=4,val_per_class=2,class_order=target,epochs=2,batch_size=8,num_workers=0"
FSD_TINY = "fsd50k:epochs=2,warmup=2,num_workers=0,balanced_min=2"


def write_wav(path: Path, labels: list[int], seconds: float, rng: np.random.Generator) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, clip(labels, SR, seconds, rng), SR, subtype="PCM_16")


def write_csv(path: Path, header: list[str] | None, rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        if header:
            w.writerow(header)
        w.writerows(rows)


# ---- FSD50K ----------------------------------------------------------------------------------------------------

def write_fsd50k(root: Path, layout: str = "zenodo", n_train: int = 14, n_val: int = 4, n_eval: int = 8) -> Path:
    """FSD50K's files: ground-truth csvs (vocabulary without header; labels and mids comma-joined in one quoted
    field) and 0.4-2 s WAVs named <fname>.wav. The first train clip is not audio, the second carries a MID outside
    the vocabulary, the last eval clip's file is missing."""
    gt, dev_dir, eval_dir = ((root / "FSD50K.ground_truth", root / "FSD50K.dev_audio", root / "FSD50K.eval_audio")
                             if layout == "zenodo" else (root / "labels", root / "clips" / "dev", root / "clips" / "eval"))
    names = [n.replace(" ", "_") for _, n, _ in CLASSES]
    write_csv(gt / "vocabulary.csv", None, [[j, n, m] for j, (n, (m, _, _)) in enumerate(zip(names, CLASSES))])
    rng = np.random.default_rng(7)
    dev, ev = [], []
    for i in range(n_train + n_val + n_eval):
        labels = sorted({i % len(CLASSES), int(rng.integers(len(CLASSES)))})  # every class in every split
        fname = str(100_000 + i)
        mids = [CLASSES[j][0] for j in labels]
        if i == 1:
            mids.append("/m/not_in_fsd50k")
        row = [fname, ",".join(names[j] for j in labels), ",".join(mids)]
        is_dev = i < n_train + n_val
        (dev if is_dev else ev).append(row + (["train" if i < n_train else "val"] if is_dev else []))
        if i == n_train + n_val + n_eval - 1:
            continue  # listed, but no file
        path = (dev_dir if is_dev else eval_dir) / f"{fname}.wav"
        if i == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"RIFF....WAVEfmt broken" + bytes(200))
        else:
            write_wav(path, labels, float(rng.uniform(0.4, 2.0)), rng)
    write_csv(gt / "dev.csv", ["fname", "labels", "mids", "split"], dev)
    write_csv(gt / "eval.csv", ["fname", "labels", "mids"], ev)
    return root


@pytest.fixture(scope="module")
def fsd_dir(tmp_path_factory) -> Path:
    return write_fsd50k(tmp_path_factory.mktemp("fsd50k"))


def test_fsd50k_end_to_end(fsd_dir, tmp_path):
    out = tmp_path / "out"
    r = run_cli("--task", FSD_TINY, "--data", str(fsd_dir), "--model-size", "tiny", "--method", "oversample",
                "--seeds", "1", "--out", str(out), "-q", env=TEST_ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    results = {x["config"]["method"]["name"]: x for x in
               (json.loads(p.read_text()) for p in (out / "results" / "fsd50k").glob("*.json"))}
    assert sorted(results) == ["none", "oversample"]
    for res in results.values():
        assert res["status"] == "ok"
        assert res["task_info"]["skipped"] == {"eval: missing audio": 1, "train: undecodable audio": 1,
                                               "train: unknown or no label": 1}
        assert res["task_info"]["num_classes"] == 6 and res["task_info"]["class_names"][2] == "Dog"
        assert res["train_stats"]["n_examples"] == 12  # 14 train rows - broken wav - unknown MID
        ev = res["eval"]
        assert set(ev) == {"public", "natural", "balanced", "inverse"}
        assert ev["public"]["n_examples"] == 7  # 8 eval rows - the missing file
        assert res["val"]["public"]["n_examples"] == 4
        assert 0.0 <= ev["public"]["metrics"]["mAP"] <= 1.0
        assert res["effective_prior"]["samples_seen"] == 24  # 2 epochs x 12 clips, equal for every method
        assert res["config"]["train"]["frames"] == 128 and res["config"]["train"]["init"] == "scratch"
    report = (out / "report.md").read_text()
    assert "eval: missing audio: 1" in report and "fsd50k" in report


def test_fsd50k_hub_layout_subsets_and_features(tmp_path):
    import torch

    root = write_fsd50k(tmp_path / "hubcopy", layout="hub")
    task = get_task("fsd50k:max_train=6,max_eval=5,num_workers=0", data=str(root), model_size="tiny",
                    cache_dir=str(tmp_path / "cache"))
    data = task.load()
    assert len(data.train) + data.skipped.get("train: undecodable audio", 0) == 6  # the subset, less a broken clip
    assert data.skipped["train: unknown or no label"] == 1  # counted before subsetting
    assert len(data.train) == task._n_train and task.budget_samples == 25 * len(data.train)
    assert len(data.val) == 4 and len(data.pool) + data.skipped.get("eval: missing audio", 0) == 5
    assert data.train.labels.shape[1] == 6 and data.train.labels.any(axis=1).all()
    np.testing.assert_array_equal(data.pool_groups["public"], np.arange(len(data.pool)))
    assert "Fhrozen/FSD50k layout" in data.notes[0]
    (w, n), y = data.pool.dataset[0]
    assert tuple(w.shape) == (128 * 160,) and y.dtype.is_floating_point and y.sum() == data.pool.labels[0].sum()
    # a 0.4-2 s clip fills part of the 1.28 s window; the rest is zero padding past its length
    assert 0 < int(n) <= 128 * 160 and torch.all(w[int(n):] == 0) and float(w[: int(n)].std()) > 0.01
    model = task.build_model()
    x = model.fbank(w[None], n[None])[0]
    assert float(x.std()) > 0.1 and torch.all(x[int(n) // 160:] == x[-1])  # padded frames: one normalized value
    assert (model.fbank.mean, model.fbank.std) == task.fbank_stats  # FSD50K's statistics, not AudioSet's
    assert model((w[None], n[None])).shape == (1, 6)
    assert len(list((tmp_path / "cache").glob("*.done.npy"))) == 3  # train, val, eval
    again = get_task("fsd50k:max_train=6,max_eval=5,num_workers=0", data=str(root), model_size="tiny",
                     cache_dir=str(tmp_path / "cache")).load()
    assert len(list((tmp_path / "cache").glob("*.done.npy"))) == 3  # same clips, same cache files
    (w2, n2), _ = again.pool.dataset[0]
    assert int(n2) == int(n)
    np.testing.assert_allclose(w2.numpy(), w.numpy(), atol=float(w.abs().max()) / 32767)  # from the 16-bit cache


def test_fsd50k_hub_id_downloads_only_the_selected_clips(tmp_path, monkeypatch):
    """The hub path with huggingface_hub's two download calls faked by a local snapshot of the Fhrozen layout."""
    import huggingface_hub

    snap = write_fsd50k(tmp_path / "snapshot", layout="hub")
    calls: dict[str, list] = {"patterns": [], "files": []}

    def snapshot_download(repo_id, repo_type, allow_patterns):
        assert (repo_id, repo_type) == ("someone/fsd50k-copy", "dataset")
        calls["patterns"] += allow_patterns
        return str(snap)

    def hf_hub_download(repo_id, filename, repo_type):
        calls["files"].append(filename)
        return str(snap / filename)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    task = get_task("fsd50k:max_train=5,max_val=2,max_eval=3,num_workers=0", data="someone/fsd50k-copy",
                    model_size="tiny")
    data = task.load()
    assert calls["patterns"] == ["FSD50K.ground_truth/*", "labels/*"]  # the ground truth of either layout
    assert len(calls["files"]) == 5 + 2 + 3 and all(f.startswith(("clips/dev/", "clips/eval/")) for f in
                                                    calls["files"])
    assert len(data.val) == 2 and task.num_classes == 6


# ---- ESC-50 ------------------------------------------------------------------------------------------------------

def esc50_rows(per_fold: int = 4) -> list[dict]:
    """ESC-50 metadata: per class and fold, `per_fold` clips from per_fold/2 recordings (takes A, B)."""
    rows = []
    for fold in range(1, 6):
        for target, cat in enumerate(ESC_CLASSES):
            for k in range(per_fold):
                src = 1000 * fold + 10 * target + k // 2
                take = "AB"[k % 2]
                rows.append({"filename": f"{fold}-{src}-{take}-{target}.wav", "fold": fold, "target": target,
                             "category": cat, "esc10": target == 0, "src_file": src, "take": take})
    return rows


BROKEN_ESC = ("1-1000-A-0.wav", "5-5030-A-3.wav")  # one clip of a training fold, one of the test fold


def write_esc50(root: Path, with_audio: bool = True) -> Path:
    """The GitHub repository's layout: meta/esc50.csv and audio/<filename>.wav (44.1 kHz, here 0.6 s)."""
    rows = esc50_rows()
    write_csv(root / "meta" / "esc50.csv", list(rows[0]), [list(r.values()) for r in rows])
    if with_audio:
        rng = np.random.default_rng(3)
        for r in rows:
            path = root / "audio" / r["filename"]
            if r["filename"] in BROKEN_ESC:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(b"not a wav file" + bytes(100))
            else:
                write_wav(path, [r["target"]], 0.6, rng)
    return root


def write_esc50_parquet(root: Path) -> Path:
    """ashraq/esc50's schema: data/train-*.parquet with the metadata columns and audio {bytes, path}."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(3)
    rows = esc50_rows()
    for r in rows:
        data = b"not a wav file" if r["filename"] in BROKEN_ESC else \
            flac_bytes(clip([r["target"]], SR, 0.6, rng), SR, fmt="WAV", subtype="PCM_16")
        r["audio"] = {"bytes": data, "path": r["filename"]}
    (root / "data").mkdir(parents=True)
    for k, part in enumerate((rows[:48], rows[48:])):  # two shards, as on the hub
        pq.write_table(pa.Table.from_pylist(part), root / "data" / f"train-0000{k}-of-00002.parquet")
    return root


@pytest.fixture(scope="module")
def esc_dir(tmp_path_factory) -> Path:
    return write_esc50(tmp_path_factory.mktemp("esc50"))


def test_esc50_lt_end_to_end(esc_dir, tmp_path):
    out = tmp_path / "out"
    r = run_cli("--task", ESC_TINY, "--data", str(esc_dir), "--model-size", "tiny", "--method", "oversample:beta=1",
                "--seeds", "1", "--out", str(out), "-q", env=TEST_ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    results = {x["config"]["method"]["spec"]: x for x in
               (json.loads(p.read_text()) for p in (out / "results" / "esc50-lt").glob("*.json"))}
    assert sorted(results) == ["none", "oversample:beta=1"]
    base = results["none"]
    assert base["status"] == "ok" and base["task_info"]["class_names"] == ESC_CLASSES
    assert base["task_info"]["skipped"] == {"test: undecodable audio": 1, "train: undecodable audio": 1}
    # int(8 · 4^(-r/3)) for r = 0..3, class 0 the head (class_order=target): the broken training clip is not missed
    assert base["train_stats"]["class_counts"] == [8, 5, 3, 2]
    ev = base["eval"]
    assert set(ev) == {"natural", "balanced", "inverse"}
    assert ev["balanced"]["class_counts"] == [3.0, 3.0, 3.0, 3.0]  # fold 5: 4 per class, one broken -> 3 each
    assert ev["natural"]["class_counts"] == [4.0, 2.0, 1.0, 1.0]  # floor(4 · n_j / 8), scarcest class first
    assert ev["inverse"]["class_counts"] == [0.0, 1.0, 1.0, 3.0]  # ∝ [2, 3, 5, 8]: the rarest class has 3 clips
    assert 0.0 <= ev["balanced"]["metrics"]["top1"] <= 1.0 and "balanced_acc" in ev["balanced"]["metrics"]
    assert base["val"]["balanced"]["n_examples"] == 8  # 2 validation clips per class
    assert base["effective_prior"]["samples_seen"] == 36  # 2 epochs x 18 training clips
    seen = results["oversample:beta=1"]["effective_prior"]
    assert seen["samples_seen"] == 36 and seen["imbalance_ratio_seen"] < 2.0
    report = (out / "report.md").read_text()
    assert "test: undecodable audio: 1" in report and "esc50-lt" in report


def test_esc50_split_keeps_recordings_apart_and_parquet_reads_the_same(esc_dir, tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf"))
    spec = "esc50-lt:n_max=10,rho=5,val_per_class=3,num_workers=0,data_seed=4"
    task = get_task(spec, data=str(esc_dir), model_size="tiny")
    data = task.load()
    src = task.source_data()
    want = task.counts()
    assert sorted(want.tolist(), reverse=True) == [10, 5, 3, 2]  # shuffled class order, same profile
    assert np.bincount(data.train.labels, minlength=4).tolist() == want.tolist()
    assert np.bincount(data.pool.labels, minlength=4).tolist() == [4, 4, 4, 3]
    tr_groups = {int(src.group[i]) for i in np.flatnonzero(np.isin(src.filename, _names(data.train)))}
    va_groups = {int(src.group[i]) for i in np.flatnonzero(np.isin(src.filename, _names(data.val)))}
    assert tr_groups and va_groups and not tr_groups & va_groups  # no recording in both
    assert np.bincount(data.val.labels, minlength=4).max() <= 3
    (x, n), y = data.train.dataset[0]
    assert tuple(x.shape) == (128 * 160,) and y.dtype.is_floating_point is False and int(y) == data.train.labels[0]

    pq_task = get_task(spec, data=str(write_esc50_parquet(tmp_path / "pq")), model_size="tiny")
    pq_data = pq_task.load()
    assert pq_data.skipped == data.skipped == {"test: undecodable audio": 1, "train: undecodable audio": 1}
    for a, b in ((pq_data.train, data.train), (pq_data.val, data.val), (pq_data.pool, data.pool)):
        np.testing.assert_array_equal(a.labels, b.labels)
    (xq, nq), _ = pq_data.train.dataset[0]
    assert int(nq) == int(n)
    np.testing.assert_allclose(xq.numpy(), x.numpy(), atol=1e-5)  # same audio


def _names(split) -> np.ndarray:
    clips = split.dataset.clips
    return np.array([os.path.basename(p) for p in clips.paths])


def test_esc50_default_profile_counts(tmp_path):
    """The real metadata's shape (50 classes x 40 clips, 5 folds): n_r = int(24 · 10^(-r/49)), 448 clips."""
    rows = [[f"{f}-{100 * t + k}-A-{t}.wav", f, t, f"c{t}", False, 100 * t + k, "A"]
            for f in range(1, 6) for t in range(50) for k in range(8)]
    write_csv(tmp_path / "meta" / "esc50.csv", ["filename", "fold", "target", "category", "esc10", "src_file",
                                                "take"], rows)
    task = get_task("esc50-lt", data=str(tmp_path))
    assert task.num_classes == 50
    assert task.counts_by_rank().tolist() == [24, 22, 21, 20, 19, 18, 18, 17, 16, 15, 15, 14, 13, 13, 12, 11, 11, 10,
                                              10, 9, 9, 8, 8, 8, 7, 7, 7, 6, 6, 6, 5, 5, 5, 5, 4, 4, 4, 4, 4, 3, 3, 3,
                                              3, 3, 3, 2, 2, 2, 2, 2]
    assert task.counts().sum() == 448 and sorted(task.counts()) == sorted(task.counts_by_rank())
    assert task.train_config()["lr"] == 1e-4 and task.train_config()["frames"] == 512
    assert get_task("esc50-lt:rho=20,init=hub:someone/ast", data=str(tmp_path)).lr == 1e-5


# ---- bad inputs ----------------------------------------------------------------------------------------------

def _fsd_without_vocab(root: Path) -> None:
    write_fsd50k(root, n_train=2, n_val=1, n_eval=2)
    (root / "FSD50K.ground_truth" / "vocabulary.csv").unlink()


def _fsd_without_split(root: Path) -> None:
    write_csv(root / "FSD50K.ground_truth" / "dev.csv", ["fname", "labels", "mids"], [["1", "Dog", "/m/0bt9lr"]])
    write_csv(root / "FSD50K.ground_truth" / "eval.csv", ["fname", "labels", "mids"], [])
    write_csv(root / "FSD50K.ground_truth" / "vocabulary.csv", None, [[0, "Dog", "/m/0bt9lr"]])


def _fsd_without_audio(root: Path) -> None:
    write_fsd50k(root, n_train=3, n_val=1, n_eval=2)
    for f in (root / "FSD50K.dev_audio").glob("*.wav"):
        f.unlink()


def _esc_without_target(root: Path) -> None:
    write_csv(root / "meta" / "esc50.csv", ["filename", "fold", "category"], [["1-1-A-0.wav", 1, "dog"]])


@pytest.mark.parametrize("task,make,message", [
    ("fsd50k", None, "no such file or directory"),
    ("fsd50k", lambda r: r.mkdir(), "no FSD50K ground truth found"),
    ("fsd50k", _fsd_without_vocab, "FSD50K.ground_truth/vocabulary.csv is missing"),
    ("fsd50k", _fsd_without_split, "no 'split' column"),
    ("fsd50k", _fsd_without_audio, "clips of the train split cannot be read"),
    ("esc50-lt", None, "no such file or directory"),
    ("esc50-lt", lambda r: (r / "audio").mkdir(parents=True), "meta/esc50.csv is missing"),
    ("esc50-lt", _esc_without_target, "no 'target' column"),
    ("esc50-lt", lambda r: write_esc50(r, with_audio=False), "clips of the test split cannot be read"),
])
def test_bad_inputs_are_one_line_errors(task, make, message, tmp_path):
    root = tmp_path / "d"
    if make is not None:
        make(root)
    with pytest.raises(UserError) as err:  # path problems at construction, content problems at load
        get_task(task, data=str(root), model_size="tiny", num_workers=0).load()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cli_rejects_a_bad_data_dir_before_running(tmp_path, capsys):
    from benchmark.cli import main

    out = tmp_path / "out"
    for task in ("fsd50k", "esc50-lt"):
        assert main(["--task", task, "--data", str(tmp_path), "--model-size", "tiny", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--data" in err
    assert not out.exists()  # nothing written


def test_offline_hub_ids_fail_with_the_fix(tmp_path):
    script = textwrap.dedent("""
        from benchmark import UserError, get_task
        for spec in ("fsd50k", "esc50-lt"):
            try:
                get_task(spec, model_size="tiny").load()
            except UserError as exc:
                print("ERR", exc)
    """)
    env = {**os.environ, **TEST_ENV, "HF_HOME": str(tmp_path / "hf")}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("ERR")]
    assert len(lines) == 2, r.stdout + r.stderr[-2000:]
    assert "huggingface-cli download Fhrozen/FSD50k --repo-type dataset" in lines[0] and "offline" in lines[0]
    assert "huggingface-cli download ashraq/esc50 --repo-type dataset" in lines[1] and "--data DIR" in lines[1]


def test_hub_checkpoint_positions_fit_the_input_length():
    import torch

    from benchmark.audio import ast_config, ast_grid, fit_time_positions

    config = ast_config("tiny", 3, frames=1024)
    f, t = ast_grid(config)  # (12, 101)
    key = "audio_spectrogram_transformer.embeddings.position_embeddings"
    grid = torch.arange(f * t, dtype=torch.float32).reshape(1, f * t, 1).expand(1, f * t, 4)
    pos = torch.cat([torch.full((1, 2, 4), -1.0), grid], dim=1)
    out = fit_time_positions({key: pos}, config, 512)[key]
    assert config.max_length == 512 and out.shape == (1, 2 + 12 * 50, 4)
    kept = out[0, 2:, 0].reshape(12, 50)
    expected = torch.arange(f * t, dtype=torch.float32).reshape(f, t)[:, 25:75]  # the middle 50 of 101 (as AST)
    assert torch.equal(kept, expected) and torch.equal(out[0, :2], pos[0, :2])
    longer = fit_time_positions({key: pos}, ast_config("tiny", 3, frames=1024), 2048)[key]
    assert longer.shape == (1, 2 + 12 * 204, 4)  # (2048 - 16) // 10 + 1 time patches
