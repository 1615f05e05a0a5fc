"""Image tasks on their real formats: digits-lt (bundled), CIFAR-10/100-LT on tiny pickled batches, SADE views."""
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmark import UserError, get_task
from benchmark.core.views import ViewContext, build_views
from conftest import run_cli
from tasks.cifar_lt import cifar_lt_counts, random_crop_flip, read_cifar

CIFAR10_LT_100 = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]  # LDAM-DRW / BagofTricks-LT, ρ=100
# https_proxy to a closed port: any download attempt fails at once, with or without internet
NO_NET = {"https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"}
# one intra-op thread: tiny models run ~10x faster than with 2 threads competing with other test workers
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def write_cifar(root: Path, num_classes: int, train_per_class: int, test_per_class: int) -> Path:
    """A tiny copy of the extracted python version: pickled dicts with (N, 3072) uint8 rows (R, G, B planes)."""
    rng = np.random.default_rng(num_classes)
    colour = np.arange(num_classes)[:, None] * np.array([37, 91, 53]) % 256  # learnable: class-specific colour

    def batch(per_class: int):
        y = rng.permutation(np.repeat(np.arange(num_classes), per_class))
        x = np.clip(colour[y][:, :, None] + rng.normal(0, 40, (y.size, 3, 1024)), 0, 255).astype(np.uint8)
        return x.reshape(y.size, 3072), [int(v) for v in y]

    def dump(path: Path, obj: dict) -> None:
        with open(path, "wb") as f:
            pickle.dump(obj, f, protocol=2)

    x, y = batch(train_per_class)
    xt, yt = batch(test_per_class)
    if num_classes == 10:
        folder = root / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        for i, part in enumerate(np.array_split(np.arange(len(y)), 5), start=1):
            dump(folder / f"data_batch_{i}", {"batch_label": f"training batch {i} of 5", "data": x[part],
                                              "labels": [y[k] for k in part],
                                              "filenames": [f"img_{k}.png" for k in part]})
        dump(folder / "test_batch", {"batch_label": "testing batch 1 of 1", "data": xt, "labels": yt,
                                     "filenames": [f"t_{k}.png" for k in range(len(yt))]})
        dump(folder / "batches.meta", {"num_cases_per_batch": len(y) // 5, "num_vis": 3072,
                                       "label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog",
                                                       "frog", "horse", "ship", "truck"]})
    else:
        folder = root / "cifar-100-python"
        folder.mkdir(parents=True)
        for name, data, labels in (("train", x, y), ("test", xt, yt)):
            dump(folder / name, {"filenames": [f"{name}_{k}.png" for k in range(len(labels))], "batch_label": name,
                                 "fine_labels": labels, "coarse_labels": [v // 5 for v in labels], "data": data})
        dump(folder / "meta", {"fine_label_names": [f"fine_{j}" for j in range(100)],
                               "coarse_label_names": [f"coarse_{j}" for j in range(20)]})
    return folder


def result_files(out: Path) -> dict[str, dict]:
    runs = [json.loads(p.read_text()) for p in out.glob("results/*/*.json")]
    return {r["config"]["method"]["spec"]: r for r in runs}


# ---- CIFAR-LT ------------------------------------------------------------------------------------------------

def test_cifar_lt_counts_match_the_published_profile():
    c10 = cifar_lt_counts(10, 5000, 100.0)
    assert c10.tolist() == CIFAR10_LT_100 and c10.sum() == 12406
    c100 = cifar_lt_counts(100, 500, 100.0)
    assert c100.sum() == 10847 and c100[0] == 500 and c100[-1] == 5 and c100[:4].tolist() == [500, 477, 455, 434]
    # the registered tasks use them at their defaults
    assert get_task("cifar10-lt").counts().tolist() == CIFAR10_LT_100
    assert get_task("cifar100-lt").counts().sum() == 10847
    assert get_task("cifar10-lt:rho=10").counts()[-1] == 500


@pytest.mark.parametrize("classes,tv_name", [(10, "CIFAR10"), (100, "CIFAR100")])
def test_tiny_copy_reads_like_torchvision(tmp_path, monkeypatch, classes, tv_name):
    """Our reader and torchvision's agree on the tiny copy (torchvision's md5 check is what stops it reading one)."""
    import torchvision
    import torchvision.datasets.cifar as tv_cifar

    folder = write_cifar(tmp_path, classes, 3, 2)
    cls = getattr(torchvision.datasets, tv_name)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args, **kwargs: True)
    for train in (True, False):
        tv = cls(str(tmp_path), train=train, download=False)
        x_tr, y_tr, x_te, y_te, names = read_cifar(folder, classes)
        x, y = (x_tr, y_tr) if train else (x_te, y_te)
        np.testing.assert_array_equal(x.transpose(0, 2, 3, 1), tv.data)  # torchvision keeps HWC
        np.testing.assert_array_equal(y, tv.targets)
        assert names == tv.classes


def test_cifar_training_images_are_ldam_drws(tmp_path):
    """Same images as LDAM-DRW's IMBALANCECIFAR10: np.random.seed(0), then per class shuffle and keep n_j."""
    folder = write_cifar(tmp_path, 10, 40, 4)
    task = get_task("cifar10-lt:n_max=30,rho=10,val_per_class=5", data=str(folder))
    data = task.load()
    x_tr, y_tr, *_ = read_cifar(folder, 10)
    np.random.seed(0)
    want = []
    for j, n in enumerate(cifar_lt_counts(10, 30, 10.0)):
        idx = np.where(y_tr == j)[0]
        np.random.shuffle(idx)
        want.append(idx[:n])
    want = np.concatenate(want)
    np.testing.assert_array_equal(data.train.dataset.x.numpy(), x_tr[want])
    np.testing.assert_array_equal(data.train.labels, y_tr[want])
    # validation: 5 per class from the images the long-tailed set left out, disjoint from training
    assert np.bincount(data.val.labels).tolist() == [5] * 10
    train_rows = {r.tobytes() for r in data.train.dataset.x.numpy()}
    assert not any(r.tobytes() in train_rows for r in data.val.dataset.x.numpy())
    assert data.pool.labels.size == 40 and task.class_names[0] == "airplane"


def test_cifar10_lt_end_to_end(tmp_path):
    write_cifar(tmp_path / "data", 10, 40, 20)
    out = tmp_path / "out"
    # --data may name the parent of cifar-10-batches-py
    r = run_cli("--task", "cifar10-lt:n_max=30,rho=10,val_per_class=5,epochs=2,model_size=tiny", "--data",
                str(tmp_path / "data"), "--method", "oversample:beta=1", "--seeds", "1", "--out", str(out), "-q",
                env=ONE_THREAD)
    assert r.returncode == 0, r.stderr
    res = result_files(out)
    assert set(res) == {"none", "oversample:beta=1"}
    base = res["none"]
    assert base["status"] == "ok"
    assert base["train_stats"]["class_counts"] == cifar_lt_counts(10, 30, 10.0).tolist() == \
        [30, 23, 17, 13, 10, 8, 6, 5, 3, 3]
    assert base["config"]["train"]["optimizer"].startswith("sgd")
    ev = base["eval"]
    assert list(ev) == ["natural", "forward50", "forward10", "forward2", "balanced", "backward2", "backward10",
                        "backward50", "inverse"]
    # SADE's subsampled test sets: int(20 · (1/ρ)^(r/9)) per class of rank r, reversed for backward
    assert ev["balanced"]["class_counts"] == [20.0] * 10
    fwd10 = [float(int(20 * 0.1 ** (r / 9) + 1e-9)) for r in range(10)]
    assert ev["forward10"]["class_counts"] == fwd10
    assert ev["backward10"]["class_counts"] == fwd10[::-1]
    for view in ev.values():
        assert 0.0 <= view["metrics"]["top1"] <= 1.0
    # full balancing flattens the training stream; the baseline's stream keeps ρ = 10
    assert res["oversample:beta=1"]["effective_prior"]["imbalance_ratio_seen"] < 2.0
    assert base["effective_prior"]["imbalance_ratio_seen"] == pytest.approx(10.0, rel=0.2)
    assert (out / "report.md").is_file()


def test_cifar100_lt_end_to_end_notes_head_class_missing_from_validation(tmp_path):
    folder = write_cifar(tmp_path, 100, 8, 3)
    out = tmp_path / "out"
    r = run_cli("--task", "cifar100-lt:n_max=8,rho=4,val_per_class=1,epochs=1,model_size=tiny", "--data",
                str(folder), "--method", "class_weighted", "--seeds", "1", "--out", str(out), "-q",
                env=ONE_THREAD)
    assert r.returncode == 0, r.stderr
    base = result_files(out)["none"]
    assert base["train_stats"]["class_counts"] == cifar_lt_counts(100, 8, 4.0).tolist()
    assert base["train_stats"]["imbalance_ratio"] == 4.0
    assert base["task_info"]["class_names"][:2] == ["fine_0", "fine_1"]
    # class 0 keeps all 8 training images, so none is left for validation: said in the notes
    assert "class 0 has 0" in base["task_info"]["notes"][0]
    assert base["eval"]["balanced"]["n_examples"] == 300


def test_cifar_input_errors(tmp_path):
    r = run_cli("--task", "cifar10-lt", "--out", str(tmp_path / "o"), "-q", env={"XDG_CACHE_HOME": str(tmp_path), **NO_NET})
    assert r.returncode == 2 and "could not download CIFAR" in r.stderr and "--data" in r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    with pytest.raises(UserError, match="no CIFAR python batches"):
        get_task("cifar100-lt", data=str(tmp_path / "nothing")).load()
    with pytest.raises(UserError, match="not a timm model name"):
        get_task("cifar10-lt:backbone=resnet999")
    folder = write_cifar(tmp_path, 10, 5, 1)
    with pytest.raises(UserError, match="lower n_max"):
        get_task("cifar10-lt", data=str(folder)).load()
    with pytest.raises(UserError, match="no training image"):
        get_task("cifar10-lt:n_max=5,rho=100", data=str(folder)).load()
    with pytest.raises(UserError, match="cifar_stem"):
        get_task("cifar10-lt:backbone=mobilenetv3_small_050").build_model()
    with pytest.raises(UserError, match="tiny needs a timm ResNet"):
        get_task("cifar10-lt:backbone=mobilenetv3_small_050,model_size=tiny,cifar_stem=false").build_model()


def _test_images_hwc(folder: Path, label: int) -> np.ndarray:
    """The fixture's test images of one class as a user's (N, 32, 32, 3) uint8 array."""
    with open(folder / "test_batch", "rb") as f:
        entry = pickle.load(f, encoding="latin1")
    x = entry["data"].reshape(-1, 3, 32, 32)[np.asarray(entry["labels"]) == label]
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


def test_cifar_deploy_npz_end_to_end(tmp_path):
    folder = write_cifar(tmp_path / "data", 10, 40, 20)
    hwc = _test_images_hwc(folder, 9)  # the rarest training class only: a strongly shifted deployment
    np.savez(tmp_path / "deploy.npz", x=hwc)
    out = tmp_path / "out"
    r = run_cli("--task", "cifar10-lt:n_max=30,rho=10,val_per_class=5,epochs=1,model_size=tiny", "--data",
                str(folder), "--deploy", str(tmp_path / "deploy.npz"), "--method", "prior_adapt", "--seeds", "1",
                "--out", str(out), "-q", "--bootstrap", "10", env=ONE_THREAD)
    assert r.returncode == 0, r.stderr
    runs = {json.loads(p.read_text())["config"]["method"]["spec"]: p.with_suffix(".npz")
            for p in (out / "results" / "cifar10-lt").glob("*.json")}
    assert set(runs) == {"none", "prior_adapt:estimator=mlls"}
    with np.load(runs["none"]) as base_npz, np.load(runs["prior_adapt:estimator=mlls"]) as adapted:
        dep = base_npz["deploy_logits"]
        assert dep.shape == (20, 10) and "deploy_true_labels" not in base_npz.files
        # the same images as the pool's class-9 ones, so the same test-time input and the same scores
        np.testing.assert_allclose(dep, base_npz["pool_logits"][base_npz["pool_labels"] == 9], atol=1e-4)
        np.testing.assert_array_equal(adapted["deploy_logits"], dep)  # post-hoc runs copy the baseline's
    base = result_files(out)["none"]
    assert base["task_info"]["deploy"]["n"] == 20 and base["task_info"]["deploy"]["format"] == "npz"
    md = (out / "report.md").read_text()
    assert "### On your deployment data" in md
    dep = json.loads((out / "summary.json").read_text())["tasks"]["cifar10-lt"]["deployment"]
    assert dep["source"] == "file" and len(dep["estimated_prior"]) == 10


def test_cifar_deploy_reads_python_batches_in_the_test_time_layout(tmp_path):
    folder = write_cifar(tmp_path, 10, 40, 2)
    spec = "cifar10-lt:n_max=30,rho=10,val_per_class=5,model_size=tiny"
    # a directory of batches (batches.meta skipped): all 400 training and 20 test images, labels ignored
    data = get_task(spec, data=str(folder), deploy=str(folder)).load()
    assert len(data.deploy) == 400 + 20 and data.deploy_info["files"] == 6
    assert data.deploy.labels.tolist() == [0] * 420
    # one batch file is the same images, in the same (N, 3, 32, 32) uint8 layout, as the task's own test split
    data = get_task(spec, data=str(folder), deploy=str(folder / "test_batch")).load()
    assert data.deploy.dataset.x.dtype == data.pool.dataset.x.dtype == torch.uint8
    assert torch.equal(data.deploy.dataset.x, data.pool.dataset.x)
    # an HWC .npy of those images arrives as the same CHW tensor
    np.save(tmp_path / "d.npy", data.pool.dataset.x.numpy().transpose(0, 2, 3, 1))
    data = get_task(spec, data=str(folder), deploy=str(tmp_path / "d.npy")).load()
    assert torch.equal(data.deploy.dataset.x, data.pool.dataset.x)


@pytest.mark.parametrize("name, content, message", [
    ("d.npy", np.zeros((4, 3, 32, 32), np.uint8), "expected (N, 32, 32, 3) uint8 images, got uint8 of shape "
                                                  "(4, 3, 32, 32)"),
    ("d.npy", np.zeros((4, 32, 32, 3), np.float32), "expected (N, 32, 32, 3) uint8 images, got float32"),
    ("d.npz", np.zeros((0, 32, 32, 3), np.uint8), "no images"),
    ("data_batch_9", b"not a pickle", "not a CIFAR python batch"),
])
def test_cifar_bad_deploy_is_one_line_exit_2_nothing_written(tmp_path, name, content, message):
    folder = write_cifar(tmp_path / "data", 10, 40, 2)
    f = tmp_path / name
    if isinstance(content, bytes):
        f.write_bytes(content)
    elif name.endswith(".npz"):
        np.savez(f, images=content)
    else:
        np.save(f, content)
    out = tmp_path / "out"
    r = run_cli("--task", "cifar10-lt:n_max=30,rho=10,val_per_class=5,epochs=1,model_size=tiny", "--data",
                str(folder), "--deploy", str(f), "--method", "prior_adapt", "--seeds", "1", "--out", str(out), "-q",
                env=ONE_THREAD)
    assert r.returncode == 2, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--deploy" in lines[0] and message in lines[0], r.stderr
    assert "(N, 32, 32, 3)" in lines[0] and not out.exists()


def test_cifar_model_is_cifar_resnet():
    task = get_task("cifar10-lt:model_size=tiny")
    model = task.build_model()
    assert model.backbone.conv1.kernel_size == (3, 3) and model.backbone.conv1.stride == (1, 1)
    assert isinstance(model.backbone.maxpool, torch.nn.Identity) and model.head.in_features == 64
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    assert model(x).shape == (2, 10)
    full = get_task("cifar100-lt").build_model()
    assert full.backbone.layer1[0].conv1.in_channels == 64 and full(x).shape == (2, 100)


def test_random_crop_flip_is_a_padded_crop():
    torch.manual_seed(0)
    x = torch.randint(1, 256, (16, 3, 32, 32), dtype=torch.uint8)  # no zeros: the padding is recognizable
    out = random_crop_flip(x)
    assert out.shape == x.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    flips = 0
    for i in range(16):
        crops = [padded[i, :, a:a + 32, b:b + 32] for a in range(9) for b in range(9)]
        plain = any(torch.equal(out[i], c) for c in crops)
        flipped = any(torch.equal(out[i], c.flip(-1)) for c in crops)
        assert plain or flipped
        flips += flipped and not plain
    assert 0 < flips < 16  # both branches taken


def test_lr_schedule_warmup_and_steps():
    task = get_task("cifar10-lt:model_size=tiny")
    model = task.build_model()
    opt, sched = task.build_optimizer(model, 1000)
    lrs = []
    for _ in range(1000):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1 / 25) and lrs[24] == pytest.approx(0.1)
    assert lrs[500] == pytest.approx(0.1) and lrs[850] == pytest.approx(1e-3) and lrs[950] == pytest.approx(1e-5)


# ---- SADE views ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("rho", [50, 10, 2])
def test_sade_views_single_label(rho):
    y = np.repeat(np.arange(10), 1000)
    train = np.array(CIFAR10_LT_100)[[3, 0, 1, 2, 4, 5, 6, 7, 8, 9]]  # class 1 is the head: order from the prior
    ctx = ViewContext(labels=y, multi_label=False, num_classes=10, train_counts=train, n_train=int(train.sum()),
                      groups={}, seed=0)
    views = build_views([f"forward{rho}", f"backward{rho}"], ctx)
    sade = np.array([int(1000 * (1 / rho) ** (r / 9)) for r in range(10)])  # SADE's test set sizes per rank
    rank = np.argsort(np.argsort(-train, kind="stable"), kind="stable")
    np.testing.assert_array_equal(np.bincount(y[views[f"forward{rho}"].indices], minlength=10), sade[rank])
    np.testing.assert_array_equal(np.bincount(y[views[f"backward{rho}"].indices], minlength=10), sade[9 - rank])


def test_sade_views_multi_label_rake_to_the_exponential_shape():
    rng = np.random.default_rng(0)
    y = rng.random((20000, 5)) < 0.2
    train = np.array([4000, 2000, 1000, 500, 250])
    ctx = ViewContext(labels=y, multi_label=True, num_classes=5, train_counts=train, n_train=10000, groups={},
                      seed=0)
    views = build_views(["forward10", "backward10"], ctx)
    for name, ranks in (("forward10", np.arange(5)), ("backward10", np.arange(5)[::-1])):
        v = views[name]
        prev = (v.weights @ y[v.indices]) / v.weights.sum()
        np.testing.assert_allclose(prev / prev.max(), 10.0 ** (-ranks / 4), rtol=2e-3)


# ---- digits-lt -----------------------------------------------------------------------------------------------

def test_digits_lt_end_to_end(tmp_path):
    out = tmp_path / "out"
    r = run_cli("--task", "digits-lt", "--method", "oversample:beta=1", "--seeds", "1", "--out", str(out), "-q",
                env=ONE_THREAD)
    assert r.returncode == 0, r.stderr
    res = result_files(out)
    base = res["none"]
    assert base["train_stats"]["class_counts"] == [100, 77, 59, 46, 35, 27, 21, 16, 12, 10]
    ev = base["eval"]
    assert ev["balanced"]["class_counts"] == [50.0] * 10  # the held-out pool is balanced
    assert ev["natural"]["class_counts"][0] == 50.0 and ev["natural"]["class_counts"][-1] == 5.0
    # real, learnable data: the baseline is far above chance everywhere
    assert ev["natural"]["metrics"]["top1"] > 0.85 and ev["balanced"]["metrics"]["top1"] > 0.8
    assert res["oversample:beta=1"]["effective_prior"]["imbalance_ratio_seen"] < 1.5


def test_digits_lt_split_and_errors():
    task = get_task("digits-lt:rho=20,n_max=80,test_per_class=60,val_per_class=10,model=cnn")
    data = task.load()
    assert np.bincount(data.pool.labels).tolist() == [60] * 10
    assert np.bincount(data.val.labels).tolist() == [10] * 10
    assert np.bincount(data.train.labels).tolist() == task.counts().tolist() and task.counts()[-1] == 4
    pool = {r.tobytes() for r in data.pool.features}
    assert not any(r.tobytes() in pool for r in data.train.features)
    assert task.build_model()(torch.as_tensor(data.pool.features[:3])).shape == (3, 10)
    with pytest.raises(UserError, match="lower n_max"):
        get_task("digits-lt:n_max=150").load()
