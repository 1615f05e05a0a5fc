"""imbalanced-learn benchmark tasks on a tiny copy of fetch_datasets' cache (<data_home>/zenodo/x<ID>data.npz)."""
import json
from pathlib import Path

import numpy as np
import pytest

from benchmark import UserError, get_task, list_tasks
from conftest import run_cli
from tasks.imblearn_tasks import DATASETS

NO_NET = {"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9", "OMP_NUM_THREADS": "1"}


def write_zenodo(home: Path, name: str, n: int, d: int, n_minority: int, seed: int = 0) -> Path:
    """The cache file imblearn's fetch_datasets reads: an npz with `data` (n, d) and `label` in {-1, 1}."""
    from imblearn.datasets._zenodo import MAP_NAME_ID

    rng = np.random.default_rng(seed)
    y = rng.permutation(np.where(np.arange(n) < n_minority, 1, -1))
    x = rng.normal(size=(n, d)) * 3.0 + 10.0 + (y == 1)[:, None] * 4.0  # unstandardized, separable minority
    path = home / "zenodo" / f"x{MAP_NAME_ID[name]}data.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, data=x, label=y)
    return path


def test_the_27_datasets_are_registered_in_imblearns_order():
    from imblearn.datasets._zenodo import MAP_NAME_ID_KEYS

    assert list(DATASETS) == MAP_NAME_ID_KEYS
    assert list_tasks("imblearn-*") == sorted(f"imblearn-{n}" for n in MAP_NAME_ID_KEYS)
    task = get_task("imblearn-abalone_19")
    assert task.num_classes == 2 and "ρ=130" in task.description and task.main_metric == "top1"


def test_imblearn_ecoli_end_to_end(tmp_path):
    write_zenodo(tmp_path / "home", "ecoli", 336, 7, 35)  # the real set's shape and minority count
    out = tmp_path / "out"
    r = run_cli("--task", "imblearn-ecoli", "--data", str(tmp_path / "home"), "--method", "oversample:beta=1",
                "--seeds", "1", "--out", str(out), "-q", env=NO_NET)
    assert r.returncode == 0, r.stderr
    res = {x["config"]["method"]["spec"]: x for x in map(json.loads, map(Path.read_text, out.glob("results/*/*.json")))}
    base = res["none"]
    # stratified: per class, round(30%) to the pool and round(20%) to validation, the rest to training
    assert base["train_stats"]["class_counts"] == [151, 18]
    ev = base["eval"]
    assert ev["natural"]["class_counts"] == [90.0, 10.0] and ev["natural"]["n_examples"] == 100
    assert ev["balanced"]["class_counts"] == [10.0, 10.0]
    assert ev["inverse"]["class_counts"][1] == 10.0
    assert ev["natural"]["metrics"]["top1"] > 0.9  # the generated minority is separable after standardization
    assert res["oversample:beta=1"]["effective_prior"]["imbalance_ratio_seen"] < 1.5


def test_imblearn_logistic_and_split(tmp_path):
    write_zenodo(tmp_path, "abalone_19", 400, 10, 20, seed=1)
    task = get_task("imblearn-abalone_19:model=logistic,test_fraction=0.25,val_fraction=0.25", data=str(tmp_path))
    data = task.load()
    assert np.bincount(data.pool.labels).tolist() == [95, 5] and np.bincount(data.val.labels).tolist() == [95, 5]
    assert np.bincount(data.train.labels).tolist() == [190, 10]
    np.testing.assert_allclose(data.train.features.mean(axis=0), 0.0, atol=1e-5)  # standardized on training
    assert list(data.pool_groups) == ["natural"] and data.pool_groups["natural"].size == 100
    model = task.build_model()
    assert len(model.backbone) == 0 and (model.head.in_features, model.head.out_features) == (10, 2)


def test_imblearn_offline_error_says_how_to_fetch(tmp_path):
    out = tmp_path / "out"
    r = run_cli("--task", "imblearn-ecoli", "--data", str(tmp_path / "home"), "--out", str(out), "-q", env=NO_NET)
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1
    assert "fetch_datasets()" in r.stderr and str(tmp_path / "home" / "zenodo") in r.stderr
    assert "x1data.npz is missing" in r.stderr and "~/scikit_learn_data" in r.stderr


def test_imblearn_bad_cache_and_fractions(tmp_path):
    path = write_zenodo(tmp_path, "ecoli", 50, 7, 5)
    path.write_bytes(b"not an npz")
    with pytest.raises(UserError, match="delete it and fetch again"):
        get_task("imblearn-ecoli", data=str(tmp_path)).load()
    write_zenodo(tmp_path, "oil", 60, 4, 2)  # one minority example to the pool, one to validation
    with pytest.raises(UserError, match="no minority example"):
        get_task("imblearn-oil:val_fraction=0.3", data=str(tmp_path)).load()
    with pytest.raises(UserError, match="at least 10%"):
        get_task("imblearn-oil:test_fraction=0.5,val_fraction=0.45", data=str(tmp_path)).load()
