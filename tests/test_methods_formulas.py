"""Each added method's defining formula against hand-computed values, and degenerate inputs that must stay finite."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmark import UserError, get_method, list_methods
from benchmark.method import TrainInfo
from benchmark.losses import class_weights, effective_number_weights
from benchmark.sampling import lvis_class_factors, lvis_threshold
from methods.tau_norm import tau_normalize


def sl(counts, features=None):
    y = np.repeat(np.arange(len(counts)), counts)
    return TrainInfo(labels=y, multi_label=False, num_classes=len(counts), budget_samples=max(y.size, 1),
                     features=features)


def ml(rows, num_classes):
    y = np.zeros((len(rows), num_classes), dtype=bool)
    for i, labels in enumerate(rows):
        y[i, list(labels)] = True
    return TrainInfo(labels=y, multi_label=True, num_classes=num_classes, budget_samples=len(rows))


def setup(spec, info, **kw):
    m = get_method(spec, **kw)
    m.setup(info)
    return m


def close(a, b, tol=1e-6):
    return torch.allclose(torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64), atol=tol)


# ---- logit adjustment / balanced softmax ------------------------------------------------------------------------

def test_logit_adjust_posthoc_subtracts_tau_log_prior():
    m = setup("logit_adjust", sl([6, 3, 1]))
    assert m.posthoc
    np.testing.assert_allclose(m.adjust_logits(np.zeros((1, 3))), [[0.5108256, 1.2039728, 2.3025851]], atol=1e-6)
    half = setup("logit_adjust:tau=0.5", sl([6, 3, 1]))
    np.testing.assert_allclose(half.adjust_logits(np.ones((2, 3))), 1 - 0.5 * np.log([[.6, .3, .1]] * 2))
    zero = setup("logit_adjust:tau=0", sl([6, 3, 1]))
    z = np.random.default_rng(0).normal(size=(4, 3))
    np.testing.assert_array_equal(zero.adjust_logits(z), z)


def test_logit_adjusted_loss_hand_values():
    m = setup("logit_adjust:form=loss", sl([6, 3, 1]))
    assert not m.posthoc and m.adjust_logits(np.ones((1, 3))).tolist() == [[1, 1, 1]]
    # softmax(log π) = π, so at zero logits the loss of class 2 is −log 0.1
    assert close(m.loss(torch.zeros(1, 3), torch.tensor([2]), 0.0), math.log(10))
    # multi-label: BCE(z + log(π_j / (1 − π_j))), the log prior odds as balanced_softmax; n = (2, 1), N = 4:
    # shift (log 1, log 1/3): −log σ(0) = log 2, −log(1 − σ(log 1/3)) = −log 0.75
    mm = setup("logit_adjust:form=loss", ml([[0, 1], [0], [], []], 2))
    assert close(mm.loss(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]), 0.0), (math.log(2) - math.log(0.75)) / 2)
    bs = setup("balanced_softmax", ml([[0, 1], [0], [], []], 2))
    z, t = torch.tensor([[0.3, -1.2]]), torch.tensor([[0.0, 1.0]])
    assert close(mm.loss(z, t, 0.0), bs.loss(z, t, 0.0))  # τ = 1 is balanced softmax for both label types
    # post-hoc multi-label subtracts τ times the same log odds
    ph = setup("logit_adjust:tau=0.5", ml([[0, 1], [0], [], []], 2))
    np.testing.assert_allclose(ph.adjust_logits(np.zeros((1, 2))), [[0.0, 0.5 * math.log(3)]], atol=1e-12)


def test_balanced_softmax_single_and_multi_label():
    m = setup("balanced_softmax", sl([6, 3, 1]))
    lg = torch.tensor([[0.3, -0.2, 1.0]])
    assert close(m.loss(lg, torch.tensor([1]), 0.0),
                 F.cross_entropy(lg + torch.log(torch.tensor([.6, .3, .1])), torch.tensor([1])))
    assert m.adjust_logits(np.ones((1, 3))).tolist() == [[1, 1, 1]]  # evaluation uses the raw logits
    # sigmoid analog: shift log(n_j / (N − n_j)) = (log 1, log 1/3) for n = (2, 1), N = 4
    mm = setup("balanced_softmax", ml([[0, 1], [0], [], []], 2))
    assert close(mm.loss(torch.zeros(1, 2), torch.tensor([[1.0, 0.0]]), 0.0), (math.log(2) - math.log(0.75)) / 2)


# ---- class-balanced (effective number) ---------------------------------------------------------------------------

def test_effective_number_weights_hand_values():
    counts = np.array([90, 9, 1])
    raw = np.array([0.1 / (1 - 0.9 ** 90), 0.1 / (1 - 0.9 ** 9), 1.0])  # (1 − β) / (1 − β^n), β = 0.9
    want = raw * 3 / raw.sum()  # Cui et al.: Σ_j w_j = C
    np.testing.assert_allclose(effective_number_weights(counts, 0.9), want, rtol=1e-12)
    np.testing.assert_allclose(effective_number_weights(counts, 0.9).sum(), 3.0, rtol=1e-12)
    # by hand: 0.9^90 = 7.6e-5, 0.9^9 = 0.387420; raw = (0.100008, 0.163243, 1), sum 1.263251, × 3 / sum
    np.testing.assert_allclose(effective_number_weights(counts, 0.9), [0.237500, 0.387676, 2.374824], rtol=1e-5)
    np.testing.assert_allclose(effective_number_weights(counts, 0.0), [1, 1, 1])
    # an absent class keeps weight 1 and is left out of the sum: the present ones sum to 2
    np.testing.assert_allclose(effective_number_weights(np.array([3, 0, 1]), 0.5), [8 / 11, 1.0, 14 / 11])


def test_beta_cb_one_is_exactly_inverse_frequency_and_continuous():
    info = sl([90, 9, 1])
    w1 = effective_number_weights(info.class_counts, 1.0)
    inverse = 1.0 / np.array([90, 9, 1])
    np.testing.assert_allclose(w1, inverse * 3 / inverse.sum(), rtol=1e-12)  # limit: ∝ 1/n_j, Σ = C
    cw = class_weights(info.class_counts, 1.0)
    np.testing.assert_allclose(w1 / w1.sum(), cw / cw.sum(), rtol=1e-12)  # class_weighted at β = 1, rescaled
    near = effective_number_weights(info.class_counts, 1 - 1e-12)
    assert np.all(np.isfinite(near)) and np.allclose(near, w1, rtol=1e-6)


def test_class_balanced_loss_on_ce_and_focal():
    info = sl([3, 1])
    lg, y = torch.tensor([[2.0, -1.0], [0.5, 0.3]]), torch.tensor([0, 1])
    m = setup("class_balanced:beta_cb=0.5", info)
    w = torch.tensor([8 / 11, 14 / 11])  # raw (0.5 / (1 − 0.5^3), 1) = (4/7, 1), scaled to sum 2
    assert close(m.criterion.weight, w)
    assert close(m.loss(lg, y, 0.0), (F.cross_entropy(lg, y, reduction="none") * w[y]).mean())
    fm = setup("class_balanced:beta_cb=0.5,base=focal,gamma=2", info)
    p = torch.softmax(lg, 1)[torch.arange(2), y]
    assert close(fm.loss(lg, y, 0.0), (-(1 - p) ** 2 * torch.log(p) * w[y]).mean())
    # multi-label: positives weighted w_j, negatives 1
    mi = ml([[0], [0], [0, 1], []], 2)
    mm = setup("class_balanced:beta_cb=0.5", mi)
    t, z = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.2, -0.4], [1.0, 0.1]])
    wt = mm.criterion.weight
    bce = F.binary_cross_entropy_with_logits(z, t, reduction="none")
    assert close(mm.loss(z, t, 0.0), (bce * torch.where(t > 0, wt, torch.ones_like(wt))).mean())


# ---- LDAM-DRW ----------------------------------------------------------------------------------------------------

def test_ldam_margins_and_deferred_reweighting():
    assert get_method("ldam_drw").s == 30.0  # the paper's scale
    m = setup("ldam_drw:max_m=0.5,drw_start=0.8,beta_cb=0.9,s=1", sl([16, 1]))
    np.testing.assert_allclose(m.criterion.margins, [0.25, 0.5])  # 16^-1/4 = 0.5, 1^-1/4 = 1, scaled to max 0.5
    z, y = torch.zeros(1, 2), torch.tensor([1])
    ce = math.log(1 + math.exp(0.5))  # CE([0, −0.5], class 1)
    assert close(m.loss(z, y, 0.5), ce)
    # DRW from 80 % of the budget: a weighted mean Σ w_y ℓ / Σ w_y as the authors' code (torch's weight=)
    w = effective_number_weights(np.array([16, 1]), 0.9)
    z2, y2 = torch.zeros(2, 2), torch.tensor([0, 1])
    ce0 = math.log(1 + math.exp(0.25))  # CE([−0.25, 0], class 0)
    assert close(m.loss(z2, y2, 0.5), (ce0 + ce) / 2)
    assert close(m.loss(z2, y2, 0.8), (w[0] * ce0 + w[1] * ce) / (w[0] + w[1]))
    s30 = setup("ldam_drw", sl([16, 1]))
    assert close(s30.loss(torch.tensor([[0.1, 0.2]]), y, 0.0),
                 F.cross_entropy(30 * torch.tensor([[0.1, 0.2 - 0.5]]), y))
    mm = setup("ldam_drw:drw_start=1", ml([[0], [0, 1]] * 8, 2))  # n = (16, 8)
    marg = torch.tensor([0.5 * (16 ** -0.25) / (8 ** -0.25), 0.5])
    t, zz = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.3, 0.1]])
    assert close(mm.loss(zz, t, 0.99), F.binary_cross_entropy_with_logits(30 * (zz - marg * t), t))


# ---- samplers ----------------------------------------------------------------------------------------------------

def test_repeat_factor_lvis_formula():
    info = ml([[0], [0, 1], [0, 1, 2], [0], [0], [0], [0], [0]], 4)  # f = 1, 2/8, 1/8, 0 (absent)
    np.testing.assert_allclose(lvis_class_factors(info.class_counts, info.n_examples, 0.5, 0.5),
                               [1, math.sqrt(2), 2, 1])
    m = setup("repeat_factor:t=0.5", info)
    np.testing.assert_allclose(m.repeat_factors(info), [1, math.sqrt(2), 2, 1, 1, 1, 1, 1])
    assert m.setup_warnings == []
    np.testing.assert_allclose(setup("repeat_factor:t=0", info).repeat_factors(info), np.ones(8))


def test_repeat_factor_auto_threshold_and_the_no_op_warning():
    # 9 classes with f = 0.01 ... 0.09 (N = 100, one class per example, class 9 has the other 55 examples)
    info = sl([1, 2, 3, 4, 5, 6, 7, 8, 9, 55])
    # auto: round(798/1203 · 10) = 7 classes below t, so t is the 8th rarest frequency, 0.08
    assert lvis_threshold(info.class_counts, info.n_examples) == 0.08
    m = setup("repeat_factor", info)
    assert m.t == "auto" and m.threshold == 0.08 and m.setup_warnings == []
    f = m.repeat_factors(info)
    np.testing.assert_allclose(f[info.labels == 0], math.sqrt(0.08 / 0.01))  # √8 for the rarest
    np.testing.assert_allclose(f[info.labels == 3], math.sqrt(2))  # f = 0.04
    assert (f[info.labels >= 7] == 1).all() and (np.bincount(info.labels[f > 1]) > 0).sum() == 7
    # LVIS' t = 0.001 is below every class here: a no-op, and the run says so
    lvis = setup("repeat_factor:t=0.001", info)
    assert (lvis.repeat_factors(info) == 1).all()
    assert lvis.setup_warnings == ["method 'repeat_factor': no class is rarer than t = 0.001 (the rarest has "
                                   "frequency 0.01): every repeat factor is 1, sampling is plain shuffling; use "
                                   "t=auto or a t above 0.01"]
    with pytest.raises(UserError, match="parameter 't'.*auto or a number in"):
        get_method("repeat_factor:t=often")
    with pytest.raises(UserError, match="parameter 't'"):
        get_method("repeat_factor:t=2")


def epochs(m, info, n_epochs, seed=0):
    m.setup(info)
    rng = np.random.default_rng(seed)
    return [m.epoch_indices(info, e, e / n_epochs, rng) for e in range(n_epochs)]


def test_class_uniform_round_robin_draws_classes_equally():
    info = sl([50, 5, 1])
    (idx,) = epochs(get_method("class_uniform"), info, 1)
    assert idx.size == 56
    per_class = np.bincount(info.labels[idx], minlength=3)
    assert sorted(per_class.tolist()) == [18, 19, 19]  # 56 slots over 3 classes, round robin
    draws = np.bincount(idx, minlength=56)
    assert set(draws[50:55].tolist()) <= {3, 4}  # class 1's 5 examples each once per pass (cyclic reshuffle)
    assert draws[55] == per_class[2]  # the single example of class 2 fills all its slots
    # per_class = 4: slots come in runs of 4 of one class
    (idx4,) = epochs(get_method("class_uniform:per_class=4"), info, 1)
    runs = info.labels[idx4][:52].reshape(13, 4)
    assert np.all(runs == runs[:, :1])
    # the stream restarts identically (a re-iterated sampler must reproduce it)
    a, b = epochs(get_method("class_uniform"), info, 3), epochs(get_method("class_uniform"), info, 3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_class_uniform_multilabel_lists_examples_under_each_class():
    info = ml([[0]] * 30 + [[0, 1]] * 3 + [[2]], 4)  # class 3 absent
    idx = np.concatenate(epochs(get_method("class_uniform"), info, 3))
    assert idx.size == 3 * 34 and np.all(info.label_matrix[idx].any(axis=1))
    # three present classes: class 2 (one example) gets a third of the slots
    assert abs(np.mean(idx == 33) - 1 / 3) < 0.02


def test_sqrt_sampling_class_probabilities():
    info = sl([100, 25, 4, 0])
    m = get_method("sqrt_sampling")
    m.setup(info)
    np.testing.assert_allclose(m.class_p, [10 / 17, 5 / 17, 2 / 17, 0])  # n^0.5 = 10, 5, 2
    idx = np.concatenate(epochs(m, info, 400))
    freq = np.bincount(info.labels[idx], minlength=4) / idx.size
    np.testing.assert_allclose(freq, [10 / 17, 5 / 17, 2 / 17, 0], atol=0.005)
    within = np.bincount(idx[info.labels[idx] == 2], minlength=129)[125:]
    assert within.min() > 0.8 * within.mean()  # uniform within the class
    np.testing.assert_allclose(setup("sqrt_sampling:q=0", info).class_p, [1 / 3, 1 / 3, 1 / 3, 0])


def test_progressive_moves_from_instance_to_class_balanced():
    info = sl([90, 9, 1])
    m = get_method("progressive")
    m.setup(info)
    rng = np.random.default_rng(0)
    first = m.epoch_indices(info, 0, 0.0, rng)
    assert np.array_equal(np.sort(first), np.arange(100))  # t = 0: an ordinary shuffled epoch
    mid = np.concatenate([m.epoch_indices(info, 1, 0.5, rng) for _ in range(300)])
    want = 0.5 * np.array([.9, .09, .01]) + 0.5 / 3  # (1 − t) p^IB + t p^CB
    np.testing.assert_allclose(np.bincount(info.labels[mid], minlength=3) / mid.size, want, atol=0.01)
    end = np.concatenate([m.epoch_indices(info, 2, 1.0, rng) for _ in range(300)])
    np.testing.assert_allclose(np.bincount(info.labels[end], minlength=3) / end.size, [1 / 3] * 3, atol=0.01)
    # exponent schedule at t = 0.5 draws exactly as sqrt_sampling (q = 1 − t)
    e = get_method("progressive:schedule=exponent")
    e.setup(info)
    s = setup("sqrt_sampling", info)
    assert np.array_equal(e.epoch_indices(info, 1, 0.5, np.random.default_rng(3)),
                          s.epoch_indices(info, 1, 0.5, np.random.default_rng(3)))


# ---- multi-label losses ------------------------------------------------------------------------------------------

def test_asymmetric_loss_hand_values():
    m = get_method("asl")  # γ− = 4, γ+ = 0, clip 0.05
    assert close(m.loss(torch.zeros(1, 1), torch.ones(1, 1), 0.0), math.log(2))
    assert close(m.loss(torch.zeros(1, 1), torch.zeros(1, 1), 0.0), -(0.45 ** 4) * math.log(0.55))
    assert m.loss(torch.tensor([[-4.0]]), torch.zeros(1, 1), 0.0).item() == 0.0  # p = 0.018 < clip: discarded
    plain = get_method("asl:gamma_neg=0,gamma_pos=0,clip=0")
    z, t = torch.tensor([[1.5, -0.3, 20.0]]), torch.tensor([[1.0, 0.0, 0.0]])
    assert close(plain.loss(z, t, 0.0), F.binary_cross_entropy_with_logits(z, t))
    with pytest.raises(UserError, match="supports multi-label tasks only"):
        m.check_task(False, "synth-singlelabel")


def test_distribution_balanced_weights_and_loss():
    # N = 20: n = (10, 2, 1); example k carries classes 0 and 1
    info = ml([[0, 1], [0, 1]] + [[0]] * 8 + [[2]] + [[]] * 9, 3)
    np.testing.assert_array_equal(info.class_counts, [10, 2, 1])
    m = setup("dist_balanced:kappa=0,lam=1,gamma=0,scale=1", info)
    t = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    r = torch.tensor([0.1, 0.5, 1.0]) / 0.6  # (1/n_i) / (1/10 + 1/2)
    w = 0.1 + torch.sigmoid(10 * (r - 0.2))
    z = torch.tensor([[0.4, -1.0, 0.7], [0.2, 0.1, -0.3]])
    bce = F.binary_cross_entropy_with_logits(z, t, reduction="none")
    want = torch.cat([bce[0] * w, bce[1] * 1.1]).mean()  # an example without labels: r = inf, weight α + 1
    assert close(m.loss(z, t, 0.0), want, 1e-6)
    # NTR: ν_j = κ log(n_j/(N−n_j)) / λ; positives softplus(−(z+ν)) σ(−(z+ν))^γ; negatives
    # (1/λ) softplus(λ(z+ν)) σ(λ(z+ν))^γ; all × scale × r̂ (defaults κ .05, λ 2, γ 2, scale 2)
    d = setup("dist_balanced", info)
    sp = lambda v: math.log1p(math.exp(v))  # noqa: E731
    sg = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    nu = [0.05 * math.log(n / (20 - n)) / 2 for n in (10, 2, 1)]
    terms = [sp(-nu[0]) * sg(-nu[0]) ** 2, sp(-nu[1]) * sg(-nu[1]) ** 2,
             sp(2 * (0.7 + nu[2])) / 2 * sg(2 * (0.7 + nu[2])) ** 2]
    want = sum(2 * float(wi) * ti for wi, ti in zip(w, terms)) / 3
    assert close(d.loss(torch.tensor([[0.0, 0.0, 0.7]]), torch.tensor([[1.0, 1.0, 0.0]]), 0.0), want, 1e-6)


# ---- imbalanced-learn adapters -----------------------------------------------------------------------------------

def feature_info(counts, dim=3, seed=0):
    n = int(sum(counts))
    return sl(counts, features=np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32))


def test_imblearn_over_under_smote_counts():
    info = feature_info([20, 6, 3])
    rng = np.random.default_rng(0)
    x, y = get_method("imblearn_over").resample(info, rng)
    assert np.bincount(y).tolist() == [20, 20, 20] and x.dtype == np.float32
    x, y = get_method("imblearn_under").resample(info, rng)
    assert np.bincount(y).tolist() == [3, 3, 3]
    x, y = get_method("imblearn_smote").resample(info, rng)  # k = 5 capped at 3 − 1 for the rarest class
    assert np.bincount(y).tolist() == [20, 20, 20] and y.dtype == np.int64
    # synthetic class-2 points lie on segments between class-2 points: inside the class's bounding box
    own = info.features[info.labels == 2]
    new = x[29:][y[29:] == 2]
    assert new.shape[0] == 17 and np.all(new >= own.min(0) - 1e-6) and np.all(new <= own.max(0) + 1e-6)


def test_imblearn_errors_are_clear():
    with pytest.raises(UserError, match="imbalanced-learn does not support multi-label"):
        get_method("imblearn_smote").check_task(True, "synth-multilabel")
    with pytest.raises(UserError, match="training split has none"):
        get_method("imblearn_over").resample(sl([5, 2]), np.random.default_rng(0))
    with pytest.raises(UserError, match="at least 2 training examples per class.*imblearn_over"):
        get_method("imblearn_smote").resample(feature_info([5, 1]), np.random.default_rng(0))


# ---- decoupled: cRT and τ-norm -----------------------------------------------------------------------------------

def test_crt_freezes_backbone_and_reinitializes_head():
    from benchmark.task import MLP

    torch.manual_seed(0)
    model = MLP(4, 8, 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    m = get_method("crt:budget=0.25")
    m.prepare_model(model)
    assert not any(p.requires_grad for p in model.backbone.parameters())
    assert all(p.requires_grad for p in model.head.parameters())
    assert torch.equal(model.backbone[0].weight, before["backbone.0.weight"])
    assert not torch.equal(model.head.weight, before["head.weight"])  # re-initialized
    assert m.train_samples(1000) == 250 and m.init_from_baseline
    keep = get_method("crt:reinit=false")
    model2 = MLP(4, 8, 3)
    w = model2.head.weight.clone()
    keep.prepare_model(model2)
    assert torch.equal(model2.head.weight, w)
    with pytest.raises(UserError, match="has none; give the model a `.head`"):
        get_method("crt").prepare_model(torch.nn.Sequential(torch.nn.Linear(2, 2)))


def test_tau_norm_rescales_class_weights():
    w = np.array([[3.0, 4.0], [0.0, 2.0], [0.0, 0.0]])  # norms 5, 2, 0
    np.testing.assert_allclose(tau_normalize(w, 1.0), [[.6, .8], [0, 1], [0, 0]])
    np.testing.assert_allclose(tau_normalize(w, 0.5), [[3 / 5 ** .5, 4 / 5 ** .5], [0, 2 / 2 ** .5], [0, 0]])
    np.testing.assert_array_equal(tau_normalize(w, 0.0), w)
    stored = {"pool_features": np.array([[1.0, 1.0]]), "val_features": np.array([[2.0, 0.0]]),
              "head_weight": w, "head_bias": np.array([0.5, -0.5, 0.1]),
              "pool_logits": np.zeros((1, 3)), "val_logits": np.zeros((1, 3))}
    pool, val = get_method("tau_norm").posthoc_scores(stored)
    np.testing.assert_allclose(pool, [[1.4, 1.0, 0.0]])  # bias dropped, as in the paper's code
    np.testing.assert_allclose(val, [[1.2, 0.0, 0.0]])
    pool, _ = get_method("tau_norm:tau=0,keep_bias=true").posthoc_scores(stored)
    np.testing.assert_allclose(pool, [[7.5, 1.5, 0.1]])  # τ = 0 with the bias: the baseline's logits
    with pytest.raises(UserError, match="did not store"):
        get_method("tau_norm").posthoc_scores({"pool_logits": np.zeros((1, 3)), "val_logits": np.zeros((1, 3))})


# ---- degenerate inputs: every registered method ------------------------------------------------------------------

def degenerate_infos():
    rng = np.random.default_rng(0)
    absent_ml = rng.random((40, 4)) < [0.6, 0.2, 0.05, 0.0]
    absent_ml[0, 2] = True
    feats = rng.normal(size=(30, 3)).astype(np.float32)
    return {
        "absent-class-single": TrainInfo(labels=np.array([0] * 20 + [1] * 8 + [3] * 2), multi_label=False,
                                         num_classes=4, budget_samples=60, features=feats),
        "absent-class-multi": TrainInfo(labels=absent_ml, multi_label=True, num_classes=4, budget_samples=80),
        "one-class-single": TrainInfo(labels=np.zeros(30, dtype=np.int64), multi_label=False, num_classes=1,
                                      budget_samples=60, features=feats),
        "one-class-multi": TrainInfo(labels=rng.random((30, 1)) < 0.3, multi_label=True, num_classes=1,
                                     budget_samples=60),
        "every-example-positive": TrainInfo(labels=np.ones((30, 2), dtype=bool), multi_label=True, num_classes=2,
                                            budget_samples=60),
    }


DEGENERATE = degenerate_infos()


@pytest.mark.parametrize("case", list(DEGENERATE))
@pytest.mark.parametrize("name", list_methods())
def test_degenerate_inputs_stay_finite(name, case):
    info = DEGENERATE[case]
    m = get_method(name)
    if (info.multi_label and not m.multi_label) or (not info.multi_label and not m.single_label):
        with pytest.raises(UserError):
            m.check_task(info.multi_label, case)
        return
    m.setup(info)
    c = info.num_classes
    torch.manual_seed(0)
    logits = (4 * torch.randn(6, c)).requires_grad_(True)
    targets = (torch.as_tensor(info.labels[:6], dtype=torch.float32) if info.multi_label
               else torch.as_tensor(info.labels[:6]))
    for progress in (0.0, 0.99):
        loss = m.loss(logits, targets, progress)
        assert torch.isfinite(loss), (name, case, progress)
        loss.backward()
        assert torch.isfinite(logits.grad).all()
    assert np.all(np.isfinite(m.adjust_logits(np.random.default_rng(0).normal(size=(5, c)))))
    rng = np.random.default_rng(0)
    for e in range(3):
        idx = m.epoch_indices(info, e, e / 3, rng)
        assert idx.size > 0 and idx.min() >= 0 and idx.max() < info.n_examples
    if info.features is not None:
        out = m.resample(info, rng)
        if out is not None:
            x, y = out
            assert np.all(np.isfinite(x)) and x.shape[0] == y.shape[0] and set(y.tolist()) <= set(info.labels.tolist())
    if m.posthoc:
        stored = {"pool_logits": np.zeros((3, c)), "val_logits": np.zeros((2, c)),
                  "pool_features": np.ones((3, 4)), "val_features": np.ones((2, 4)),
                  "head_weight": np.zeros((c, 4)), "head_bias": np.zeros(c)}
        for arr in m.posthoc_scores(stored):
            assert np.all(np.isfinite(m.adjust_logits(arr)))


@pytest.mark.parametrize("spec", ["logit_adjust:tau=0", "logit_adjust:tau=0,form=loss", "tau_norm:tau=0",
                                  "class_balanced:beta_cb=1", "class_balanced:beta_cb=0", "ldam_drw:beta_cb=1",
                                  "ldam_drw:max_m=0", "repeat_factor:t=1", "sqrt_sampling:q=0"])
def test_parameter_edges_stay_finite(spec):
    for info in (DEGENERATE["absent-class-single"], DEGENERATE["absent-class-multi"]):
        m = setup(spec, info)
        z = torch.randn(5, 4)
        t = torch.as_tensor(info.labels[:5], dtype=torch.float32) if info.multi_label else torch.as_tensor(
            info.labels[:5])
        assert torch.isfinite(m.loss(z, t, 0.9))
        assert np.all(np.isfinite(m.adjust_logits(z.numpy().astype(np.float64))))


# ---- the losses as a library (benchmark.losses): the modules the methods train with --------------------------------

from benchmark import losses as L  # noqa: E402


def test_methods_train_with_the_library_modules():
    info = sl([6, 3, 1])
    for spec, cls in (("class_weighted", L.ClassWeightedLoss), ("class_balanced", L.ClassBalancedLoss),
                      ("focal", L.FocalLoss), ("balanced_softmax", L.BalancedSoftmaxLoss),
                      ("logit_adjust:form=loss", L.LogitAdjustedLoss), ("ldam_drw", L.LDAMLoss)):
        m = setup(spec, info)
        assert type(m.criterion) is cls, spec
        z, y = torch.randn(4, 3), torch.tensor([0, 1, 2, 2])
        assert close(m.loss(z, y, 0.0), m.criterion(z, y)), spec
    mi = ml([[0, 1], [0], [2], []], 3)
    for spec, cls in (("asl", L.AsymmetricLoss), ("dist_balanced", L.DistributionBalancedLoss)):
        assert type(setup(spec, mi).criterion) is cls


def test_loss_modules_from_counts_by_hand():
    z = torch.zeros(2, 2)
    # balanced softmax, single-label: CE(z + log π), π = (3/4, 1/4): class 1 at zero logits costs −log 1/4
    bs = L.BalancedSoftmaxLoss.from_counts([3, 1])
    assert close(bs(z[:1], torch.tensor([1])), math.log(4))
    # multi-label without N: the prior odds are unknown, and the error says how to give them
    with pytest.raises(ValueError, match="from_counts\\(counts, n_examples=N\\)"):
        bs(z, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    # LDAM: reweight switches DRW on; weights sum to C
    ld = L.LDAMLoss.from_counts([16, 1], s=1.0, drw_beta=0.9)
    np.testing.assert_allclose(ld.drw_weight.sum().item(), 2.0, rtol=1e-6)
    plain = ld(z, torch.tensor([0, 1])).item()
    ld.reweight = True
    assert ld(z, torch.tensor([0, 1])).item() > plain  # the rare class's larger term weighs more
    # class-weighted, multi-label: positives × w_j, negatives × 1
    cw = L.ClassWeightedLoss([1.0, 3.0])
    t = torch.tensor([[0.0, 1.0]])
    assert close(cw(torch.zeros(1, 2), t), (math.log(2) + 3 * math.log(2)) / 2)
    # float64 logits work (the buffers follow the logits' dtype)
    assert cw(torch.zeros(1, 2, dtype=torch.float64), t.double()).dtype == torch.float64


@pytest.mark.parametrize("make, call, match", [
    (lambda: L.FocalLoss(), (torch.zeros(2, 3), torch.zeros(2, 2)), r"multi-label targets must have the logits' shape"),
    (lambda: L.FocalLoss(), (torch.zeros(2, 3), torch.tensor([[0, 1]])), r"single-label targets must be \(B,\)"),
    (lambda: L.FocalLoss(), (torch.zeros(3), torch.tensor([0])), r"logits must be \(B, C\)"),
    (lambda: L.FocalLoss(), (torch.zeros(1, 2), torch.tensor([[True, False]])), "give multi-label targets as float"),
    (lambda: L.AsymmetricLoss(), (torch.zeros(2, 2), torch.tensor([0, 1])), "AsymmetricLoss is a multi-label loss"),
    (lambda: L.ClassWeightedLoss([1.0, 2.0]), (torch.zeros(1, 3), torch.tensor([0])), "weight has 2 classes but"),
    (lambda: L.FocalLoss(gamma=-1), None, "gamma must be >= 0"),
    (lambda: L.FocalLoss(alpha=1.5), None, r"alpha must be in \[0, 1\]"),
    (lambda: L.ClassBalancedLoss.from_counts([3, 1], beta=2), None, r"beta must be in \[0, 1\]"),
    (lambda: L.ClassWeightedLoss.from_counts([[3, 1]]), None, r"counts must be a non-empty \(C,\) array"),
    (lambda: L.ClassWeightedLoss.from_counts([3, -1]), None, "counts must be finite and >= 0, got -1.0"),
    (lambda: L.LDAMLoss.from_counts([3, 1], s=0), None, "s must be > 0"),
    (lambda: L.LogitAdjustedLoss.from_counts([3, 1], n_examples=2), None, "n_examples=2 is below the largest"),
])
def test_loss_errors_name_the_argument(make, call, match):
    with pytest.raises(ValueError, match=match):
        loss = make()
        loss(*call)
