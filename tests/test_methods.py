"""Loss-side methods against hand-computed values, and every registered method on both synthetic tasks."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmark import get_method, list_methods
from benchmark.method import TrainInfo
from benchmark.losses import class_weights


def sl_info(counts):
    y = np.repeat(np.arange(len(counts)), counts)
    return TrainInfo(labels=y, multi_label=False, num_classes=len(counts), budget_samples=y.size)


def test_class_weights_formula_and_normalization():
    info = sl_info([90, 9, 1])
    w = class_weights(info.class_counts, beta=1.0)
    raw = np.array([1.0, 10.0, 90.0])
    np.testing.assert_allclose(w, raw / ((raw * [90, 9, 1]).sum() / 100))
    assert math.isclose((w * info.class_counts).sum() / info.n_examples, 1.0)
    np.testing.assert_allclose(class_weights(info.class_counts, beta=0.0), [1, 1, 1])


def test_class_weights_with_absent_class_are_finite():
    y = np.array([0, 0, 1])
    info = TrainInfo(labels=y, multi_label=False, num_classes=3, budget_samples=3)
    w = class_weights(info.class_counts, 1.0)
    assert np.all(np.isfinite(w)) and w[2] == 1.0


def test_class_weighted_loss_values():
    info = sl_info([3, 1])
    m = get_method("class_weighted", beta=1.0)
    m.setup(info)
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.3]])
    y = torch.tensor([0, 1])
    ce = F.cross_entropy(logits, y, reduction="none")
    w = m.criterion.weight
    np.testing.assert_allclose(w.numpy(), [2 / 3, 2.0], rtol=1e-6)  # (1, 3) / mean 1.5 over the 4 examples
    assert torch.allclose(m.loss(logits, y, 0.0), (ce * w[y]).mean())
    # multi-label: positives weighted by w_j, negatives by 1
    yml = np.array([[1, 0], [1, 1], [1, 0], [0, 0]], dtype=bool)
    mi = TrainInfo(labels=yml, multi_label=True, num_classes=2, budget_samples=4)
    m.setup(mi)
    t = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    lg = torch.tensor([[0.2, -0.4], [1.0, 0.1]])
    bce = F.binary_cross_entropy_with_logits(lg, t, reduction="none")
    wt = m.criterion.weight
    assert torch.allclose(m.loss(lg, t, 0.0), (bce * torch.where(t > 0, wt, torch.ones_like(wt))).mean())


def test_focal_matches_the_paper_by_hand():
    logits = torch.tensor([[1.0, -2.0, 0.5]])
    t = torch.tensor([[1.0, 0.0, 1.0]])
    bce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    # γ = 0, no α: BCE summed over the elements, divided by the 2 positive labels
    f0 = get_method("focal", gamma=0.0, alpha=None)
    assert torch.allclose(f0.loss(logits, t, 0.0), bce.sum() / 2)
    # the defaults, as the paper: γ 2, α 0.25 on positives and 0.75 on negatives
    f2 = get_method("focal")
    assert (f2.gamma, f2.alpha) == (2.0, 0.25)
    p = torch.sigmoid(logits)
    pt = torch.where(t > 0, p, 1 - p)
    alpha_t = torch.tensor([[0.25, 0.75, 0.25]])
    want = (-alpha_t * (1 - pt) ** 2 * torch.log(pt)).sum() / 2
    assert torch.allclose(f2.loss(logits, t, 0.0), want, atol=1e-6)
    # by hand for one element: z = 0, positive: 0.25 · 0.5² · log 2
    assert math.isclose(f2.loss(torch.zeros(1, 1), torch.ones(1, 1), 0.0).item(), 0.25 * 0.25 * math.log(2),
                        rel_tol=1e-6)
    # a batch without positives is divided by 1, not 0
    assert torch.isfinite(f2.loss(logits, torch.zeros(1, 3), 0.0))
    # single-label: softmax form, mean over examples, α not applied
    y = torch.tensor([2])
    assert torch.allclose(f0.loss(logits, y, 0.0), F.cross_entropy(logits, y))
    p2 = torch.softmax(logits, 1)[0, 2]
    assert torch.allclose(f2.loss(logits, y, 0.0), -(1 - p2) ** 2 * torch.log(p2), atol=1e-6)


@pytest.mark.parametrize("name", list_methods())
@pytest.mark.parametrize("kind", ["multi", "single"])
def test_every_method_gives_a_finite_differentiable_loss(name, kind):
    m = get_method(name)
    rng = np.random.default_rng(0)
    if kind == "multi":
        y = rng.random((40, 5)) < [0.6, 0.3, 0.1, 0.05, 0.0]
        info = TrainInfo(labels=y, multi_label=True, num_classes=5, budget_samples=80)
        targets = torch.tensor(y[:8], dtype=torch.float32)
    else:
        y = rng.choice(5, size=40, p=[0.5, 0.3, 0.1, 0.1, 0.0])
        info = TrainInfo(labels=y, multi_label=False, num_classes=5, budget_samples=80)
        targets = torch.tensor(y[:8])
    if (kind == "multi" and not m.multi_label) or (kind == "single" and not m.single_label):
        pytest.skip(f"{name} does not support {kind}-label")
    m.setup(info)
    logits = torch.randn(8, 5, requires_grad=True)
    loss = m.loss(logits, targets, 0.5)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    adj = m.adjust_logits(logits.detach().numpy().astype(np.float64))
    assert adj.shape == (8, 5) and np.all(np.isfinite(adj))
    f = m.repeat_factors(info)
    assert f is None or (f.shape == (40,) and np.all(np.isfinite(f)) and np.all(f >= 0))


def test_listing_and_building_methods_imports_no_torch():
    """The losses (and torch) load with a run's first setup / loss, not when methods are listed or validated."""
    import subprocess
    import sys

    from conftest import ROOT

    code = ("import sys; from benchmark import get_method, list_methods; "
            "[get_method(n) for n in list_methods()]; get_method('repeat_factor:t=0.01'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'torch' or m == 'benchmark.losses'))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[]"
