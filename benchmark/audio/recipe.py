"""AST's optimization recipe: Adam (betas 0.95 / 0.999, weight decay 5e-7), linear warm-up then x gamma at epoch
milestones, stepped once per batch, and weight averaging of end-of-epoch weights (Gong et al. 2021).

Built from torch: `LinearLR` + `MultiStepLR` chained (`ChainedScheduler`, which multiplies their factors) and
`torch.optim.swa_utils.AveragedModel`. `SequentialLR` is not used: it restarts the decay schedule after the
warm-up, so a milestone that falls inside the warm-up (short runs, small subsets) would be lost, while AST's
factor is warm-up x decay at every step.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch import nn
from torch.optim.lr_scheduler import ChainedScheduler, LinearLR, MultiStepLR


class WeightAverager:
    """Mean of a module's weights at the end of epochs >= `start` and at the end of training (AST's weight
    averaging), kept by `AveragedModel` in a copy on the module's device at construction.

    >>> lin = nn.Linear(1, 1); avg = WeightAverager(lin, start=1)
    >>> for v in (1.0, 3.0):
    ...     _ = lin.bias.data.fill_(v); avg.snapshot()
    >>> avg.finish(); float(lin.bias.detach())
    2.0
    """

    def __init__(self, module: nn.Module, start: int) -> None:
        from torch.optim.swa_utils import AveragedModel

        if int(start) < 1:
            raise ValueError(f"start must be an epoch >= 1, got {start}")
        self.module = module
        self.start = int(start)
        self.average = AveragedModel(module, use_buffers=False)
        self.dirty = False  # weights changed since the last snapshot
        self.done = False

    @property
    def count(self) -> int:
        """Snapshots averaged so far."""
        return int(self.average.n_averaged)

    def stepped(self) -> None:
        self.dirty = True

    def snapshot(self) -> None:
        self.average.update_parameters(self.module)
        self.dirty = False

    def finish(self) -> None:
        """Load the average into the module (once, when it is put in eval mode after training)."""
        if self.done or (self.count == 0 and not self.dirty):
            return
        if self.dirty:  # a partial last epoch counts as one more snapshot
            self.snapshot()
        with torch.no_grad():
            for p, a in zip(self.module.parameters(), self.average.module.parameters()):
                p.copy_(a.to(device=p.device, dtype=p.dtype))
        self.done = True

    def state_dict(self) -> dict:
        return {"average": self.average.state_dict(), "dirty": self.dirty}

    def load_state_dict(self, state: dict) -> None:
        self.average.load_state_dict(state["average"])
        self.dirty = bool(state["dirty"])


def decay_milestones(batches_per_epoch: float, decay_start: int, decay_every: int, total_steps: int) -> list[int]:
    """Batches at which the LR is multiplied by gamma: the first batch of epochs decay_start, decay_start +
    decay_every, ... (an epoch is `batches_per_epoch` batches, possibly fractional), up to `total_steps`.

    >>> decay_milestones(100, 2, 1, 450)
    [200, 300, 400]
    """
    if not batches_per_epoch > 0 or decay_every < 1 or decay_start < 0:
        raise ValueError(f"need batches_per_epoch > 0, decay_every >= 1, decay_start >= 0; got {batches_per_epoch}, "
                         f"{decay_every}, {decay_start}")
    out = []
    epoch = decay_start
    while True:
        b = max(0, math.ceil(epoch * batches_per_epoch))
        # the batch whose completed epochs (b // batches_per_epoch) first reach `epoch`, in float arithmetic
        while b > 0 and int((b - 1) // batches_per_epoch) >= epoch:
            b -= 1
        while int(b // batches_per_epoch) < epoch:
            b += 1
        if b > total_steps:
            return out
        out.append(b)
        epoch += decay_every


class ASTSchedule(ChainedScheduler):
    """AST's learning rate, stepped once per batch: linear warm-up over `warmup` batches (factor (b + 1) / warmup)
    times `gamma` ** (milestones passed), the milestones at the end of epoch `decay_start`, `decay_start +
    decay_every`, ... (AST's MultiStepLR: [2, 3, 4, 5] on full AudioSet, [10, 15, 20, 25] on the balanced subset).
    An epoch is `batches_per_epoch` batches of the natural training set, the same for every method. With an
    `averager`, end-of-epoch weights from its start epoch are averaged.

    >>> opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> s = ASTSchedule(opt, batches_per_epoch=2, total_steps=6, warmup=2, decay_start=1)
    >>> lrs = []
    >>> for _ in range(5):
    ...     lrs.append(opt.param_groups[0]["lr"]); opt.step(); s.step()
    >>> [round(v, 6) for v in lrs]
    [0.5, 1.0, 0.5, 0.5, 0.25]
    """

    def __init__(self, optimizer: torch.optim.Optimizer, batches_per_epoch: float, total_steps: int,
                 warmup: int = 1000, decay_start: int = 2, decay_every: int = 1, gamma: float = 0.5,
                 averager: Optional[WeightAverager] = None) -> None:
        if warmup < 0 or not 0.0 <= gamma <= 1.0:
            raise ValueError(f"need warmup >= 0 and 0 <= gamma <= 1, got warmup={warmup}, gamma={gamma}")
        self.batches_per_epoch = max(float(batches_per_epoch), 1e-9)
        self.averager = averager
        self.steps = 0
        parts: list[Any] = []
        if warmup > 1:  # LinearLR's factor at step t: 1/w + (1 - 1/w) t / (w - 1) = (t + 1) / w
            parts.append(LinearLR(optimizer, start_factor=1.0 / warmup, end_factor=1.0, total_iters=warmup - 1))
        parts.append(MultiStepLR(optimizer, decay_milestones(self.batches_per_epoch, decay_start, decay_every,
                                                             total_steps), gamma=gamma))
        super().__init__(parts, optimizer=optimizer)

    def step(self) -> None:  # type: ignore[override]
        super().step()
        self.steps += 1
        b = self.steps
        if self.averager is not None:
            self.averager.stepped()
            epoch_done = int(b // self.batches_per_epoch)
            if epoch_done > int((b - 1) // self.batches_per_epoch) and epoch_done >= self.averager.start:
                self.averager.snapshot()

    def state_dict(self) -> dict:
        chained = super().state_dict()
        chained.pop("averager", None)  # saved on its own below (tensors only: loadable with weights_only)
        state = {"chained": chained, "steps": self.steps}
        if self.averager is not None:
            state["averager_state"] = self.averager.state_dict()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict["chained"])
        self.steps = int(state_dict["steps"])
        if "averager_state" in state_dict and self.averager is not None:
            self.averager.load_state_dict(state_dict["averager_state"])


def ast_optimizer(model: nn.Module, lr: float, batches_per_epoch: float, total_steps: int, warmup: int = 1000,
                  decay_start: int = 2, decay_every: int = 1, gamma: float = 0.5, average_from: int = 0,
                  weight_decay: float = 5e-7, betas: tuple[float, float] = (0.95, 0.999)
                  ) -> tuple[torch.optim.Optimizer, ASTSchedule]:
    """AST's Adam and its schedule over `total_steps` batches; `average_from` > 0 turns on weight averaging from
    that epoch (AST: 1 on full AudioSet, 6 on the balanced subset) for a model with an `averager` slot.

    >>> opt, sched = ast_optimizer(nn.Linear(2, 2), lr=1e-3, batches_per_epoch=10, total_steps=50, warmup=0)
    >>> opt.defaults["betas"], opt.param_groups[0]["lr"]
    ((0.95, 0.999), 0.001)
    """
    if lr < 0 or average_from < 0:
        raise ValueError(f"lr and average_from must be >= 0, got lr={lr}, average_from={average_from}")
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay)
    averager = None
    if average_from > 0 and hasattr(model, "averager"):
        averager = WeightAverager(getattr(model, "ast", model), average_from)
        model.averager = averager
    return opt, ASTSchedule(opt, batches_per_epoch, total_steps, warmup, decay_start, decay_every, gamma, averager)
