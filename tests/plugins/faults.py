"""Test plugin (loaded with --plugin): tasks and methods that break on purpose, for the fault and sweep tests."""
import time

import numpy as np

from benchmark import Method, Param, Split, TaskData, register_method, register_task
from benchmark.task import ArrayDataset
from tasks.synth_multilabel import SynthMultiLabel
from tasks.synth_singlelabel import SynthSingleLabel


@register_method
class NanLoss(Method):
    """Plain BCE / CE that turns NaN once `at` of the budget has been drawn (a diverging method)."""

    name = "test-nan-loss"
    params = {"at": Param(float, 0.3, "fraction of the budget after which the loss is NaN", min=0.0, max=1.0)}

    def loss(self, logits, targets, progress):
        loss = super().loss(logits, targets, progress)
        return loss * float("nan") if progress >= self.at else loss


@register_method
class PosthocPrior(Method):
    """Post-hoc logit adjustment by tau * log(training prior) (Menon et al. 2021); reuses the baseline's scores."""

    name = "test-posthoc"
    posthoc = True
    params = {"tau": Param(float, 1.0, "adjustment strength", min=0.0, max=10.0)}

    def adjust_logits(self, logits):
        prior = np.clip(self.train.prior, 1e-12, None)
        return logits - self.tau * np.log(prior)


HOOKS = ("setup", "repeat_factors", "epoch_indices", "loss", "adjust_logits")
BAD_RETURNS = ("factors_nan", "factors_negative", "factors_shape", "indices_range", "loss_shape", "logits_shape")


@register_method
class RaisingHook(Method):
    """A method with a bug: the hook named by `hook` raises (a plugin's ValueError)."""

    name = "test-raise"
    params = {"hook": Param(str, "loss", "the hook that raises", choices=HOOKS)}

    def _maybe_raise(self, hook: str) -> None:
        if self.hook == hook:
            raise ValueError(f"boom in {hook}")

    def setup(self, train):
        super().setup(train)
        self._maybe_raise("setup")

    def repeat_factors(self, train):
        self._maybe_raise("repeat_factors")
        return None

    def epoch_indices(self, train, epoch, progress, rng):
        self._maybe_raise("epoch_indices")
        return super().epoch_indices(train, epoch, progress, rng)

    def loss(self, logits, targets, progress):
        self._maybe_raise("loss")
        return super().loss(logits, targets, progress)

    def adjust_logits(self, logits):
        self._maybe_raise("adjust_logits")
        return logits


@register_method
class BadReturn(Method):
    """A method whose hook returns something the engine cannot use (`what` says which)."""

    name = "test-bad-return"
    params = {"what": Param(str, "factors_nan", "what to return wrongly", choices=BAD_RETURNS)}

    def repeat_factors(self, train):
        f = np.ones(train.n_examples)
        if self.what == "factors_nan":
            f[5] = np.nan
        elif self.what == "factors_negative":
            f[7] = -1.0
        elif self.what == "factors_shape":
            f = f[:-1]
        return f

    def epoch_indices(self, train, epoch, progress, rng):
        idx = super().epoch_indices(train, epoch, progress, rng)
        if self.what == "indices_range":
            idx[0] = train.n_examples
        return idx

    def loss(self, logits, targets, progress):
        if self.what == "loss_shape":  # forgot the mean
            import torch.nn.functional as F

            return F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
        return super().loss(logits, targets, progress)

    def adjust_logits(self, logits):
        return logits[:, :-1] if self.what == "logits_shape" else logits


FAULTS = ("none", "zero_class", "no_pos_eval", "labels_out_of_range", "nan_features")


def _fault_params(base: dict) -> dict:
    return {**base,
            "fault": Param(str, "none", "what to break", choices=FAULTS),
            "step_sleep": Param(float, 0.0, "seconds slept per training step (to kill a run midway)", min=0.0),
            "ckpt_every": Param(int, 0, "steps between checkpoints", min=0),
            "lr_decay": Param(float, 1.0, "LR factor per step (< 1: a scheduler whose state must survive a resume)",
                              min=0.5, max=1.0)}


def _relabel(split: Split, labels: np.ndarray) -> Split:
    return Split(ArrayDataset(split.features, labels.astype(np.float32) if labels.ndim == 2 else labels),
                 labels, features=split.features)


class _Faulty:
    """Mixin: break the loaded data as `fault` says, sleep per step, checkpoint every `ckpt_every` steps."""

    BROKEN_CLASS = 3

    @property
    def checkpoint_every(self) -> int:  # type: ignore[override]
        return self.ckpt_every

    def load(self) -> TaskData:
        data = super().load()
        j = self.BROKEN_CLASS
        if self.fault == "zero_class":
            keep = ~(data.train.labels[:, j].astype(bool)) if self.multi_label else data.train.labels != j
            data.train = Split(ArrayDataset(data.train.features[keep], data.train.dataset.y[keep]),
                               data.train.labels[keep], features=data.train.features[keep])
        elif self.fault == "no_pos_eval":
            y = data.pool.labels.copy()
            y[:, j] = False  # multi-label: class j has no positive anywhere in the pool
            data.pool = _relabel(data.pool, y)
        elif self.fault == "nan_features":  # every method diverges, the baseline included
            x = data.train.features.copy()
            x[::7] = np.nan
            data.train = Split(ArrayDataset(x, data.train.dataset.y), data.train.labels, features=x)
        elif self.fault == "labels_out_of_range":
            y = data.train.labels.copy()
            y[:5] = self.num_classes + 2
            data.train = _relabel(data.train, y)
        return data

    def build_optimizer(self, model, total_steps):
        opt, _ = super().build_optimizer(model, total_steps)
        if self.lr_decay == 1.0:
            return opt, None
        import torch

        # LambdaLR sets lr = base · f(step) from its own step count (not from the optimizer's current lr, which a
        # resumed optimizer state carries), so a scheduler that is not resumed restarts the schedule: visible here
        decay = self.lr_decay
        return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda step: decay ** step)

    def augment_batch(self, x, y):
        if self.step_sleep:
            time.sleep(self.step_sleep)
        return x, y


@register_task
class FaultyML(_Faulty, SynthMultiLabel):
    """synth-multilabel with a fault switch."""

    name = "test-faulty-ml"
    params = _fault_params(SynthMultiLabel.params)


@register_task
class FaultySL(_Faulty, SynthSingleLabel):
    """synth-singlelabel with a fault switch."""

    name = "test-faulty-sl"
    params = _fault_params(SynthSingleLabel.params)
