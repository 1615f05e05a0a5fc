"""The one training loop (accelerate), the single scoring pass, and the result file of a run.

Read top to bottom: `RunSpec` says what to run, `Engine.run` trains (or, for post-hoc methods, reuses the
baseline's scores), scores the evaluation pool and the validation split once, evaluates every view of the pool,
and writes `<run_id>.npz` then `<run_id>.json` atomically from the main process only.
"""
from __future__ import annotations

import datetime as _dt
import errno
import functools
import io
import itertools
import json
import math
import platform
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import send_to_device, set_seed
from torch.utils.data import DataLoader

from .core.errors import UserError
from .method import Method, MethodError, TrainInfo
from .params import format_spec
from .core.results import SCHEMA_VERSION, atomic_write_bytes, read_result, result_path, run_id, write_result
from .sampling import BudgetBatchSampler, ShardedBatchSampler
from .task import ArrayDataset, Task, TaskData, collate
from .core.scoring import score_views
from .core.views import View, ViewContext, build_views

_DEFAULT_THREADS = torch.get_num_threads()  # restored for tasks that want torch's default (large models)
CHECK_FINITE_EVERY = 25  # steps between loss checks: NaN persists once it appears, and a check syncs the GPU
# What a baseline (`none`) run keeps for methods that build on it without retraining it:
STORE_MODEL_MAX_BYTES = 64 * 2**20  # its state_dict as <run_id>.pt (larger: only when the grid has a method needing it)
STORE_FEATURES_MAX_BYTES = 256 * 2**20  # the linear head's inputs on pool + val, and the head, in its .npz


# the Method seams the engine calls (benchmark/method.py); an exception raised inside one fails only that run
METHOD_HOOKS = frozenset({"setup", "resample", "prepare_model", "train_samples", "repeat_factors", "epoch_indices",
                          "epoch_head", "loss", "adjust_logits", "posthoc_scores"})


class TrainingDiverged(RuntimeError):
    """The loss became NaN or inf: the run is recorded as failed and the sweep goes on."""


@dataclass
class RunSpec:
    task: Task
    method: Method
    seed: int

    @property
    def task_spec(self) -> str:
        return format_spec(self.task.name, self.task.hparams, _defaults(type(self.task)))

    @property
    def method_spec(self) -> str:
        return format_spec(self.method.name, self.method.hparams, _defaults(type(self.method)))

    @property
    def config(self) -> dict[str, Any]:
        return {
            "task": {"name": self.task.name, "params": self.task.hparams, "spec": self.task_spec},
            "method": {"name": self.method.name, "params": self.method.hparams, "spec": self.method_spec},
            "seed": self.seed,
            "train": self.task.train_config(),
            "views": list(self.task.views),
        }

    @property
    def run_id(self) -> str:
        return run_id(self.config)

    def baseline(self) -> "RunSpec":
        from .registry import get_method

        return RunSpec(self.task, get_method("none"), self.seed)

    @property
    def is_baseline(self) -> bool:
        return self.method.name == "none"


def _defaults(cls: type) -> dict[str, Any]:
    return {k: p.default for k, p in getattr(cls, "params", {}).items()}


@dataclass
class PreparedTask:
    """A task's data, training statistics and evaluation views, built once and shared by all its runs."""

    task: Task
    data: TaskData
    train: TrainInfo
    views: dict[str, View]
    val_views: dict[str, View]


def prepare_task(task: Task) -> PreparedTask:
    data = task.load()
    tr = data.train
    _check_labels(task, "train", tr.labels)
    _check_labels(task, "val", data.val.labels)
    _check_labels(task, "pool", data.pool.labels)
    train = TrainInfo(labels=tr.labels, multi_label=task.multi_label, num_classes=task.num_classes,
                      budget_samples=int(task.budget_samples), features=tr.features)
    counts = train.class_counts
    if data.deploy is not None:  # its prior is estimated after calibrating on validation: fail before training
        from .core.labelshift import check_calibration_data

        check_calibration_data(data.val.labels, task.multi_label, task.num_classes, counts > 0)

    def views_of(split, groups):
        ctx = ViewContext(labels=split.labels, multi_label=task.multi_label, num_classes=task.num_classes,
                          train_counts=counts, n_train=train.n_examples, groups=groups, seed=0,
                          min_positives=task.balanced_min_positives)
        return build_views(task.views, ctx)

    return PreparedTask(task, data, train, views_of(data.pool, data.pool_groups), views_of(data.val, data.val_groups))


def batch_per_process(task: Task, num_processes: int) -> int:
    """Each process's share of the task's (global) batch; a UserError when the batch does not divide.

    >>> from types import SimpleNamespace
    >>> batch_per_process(SimpleNamespace(name="t", batch_size=128), 2)
    64
    """
    b, n = int(task.batch_size), int(num_processes)
    if b % n:
        fits = [k for k in range(1, min(b, 64) + 1) if b % k == 0]
        raise UserError(f"task '{task.name}': its batch of {b} does not divide over {n} processes (each process "
                        f"takes an equal share of the global batch); launch {', '.join(map(str, fits[-4:]))} "
                        f"processes, or set the task's batch_size to a multiple of {n}")
    return b // n


def _check_labels(task: Task, split: str, labels: np.ndarray) -> None:
    c = task.num_classes
    if task.multi_label:
        if labels.ndim != 2 or labels.shape[1] != c:
            raise UserError(f"task '{task.name}': {split} labels must be (N, {c}) for {c} classes, got {labels.shape}")
    else:
        if labels.ndim != 1:
            raise UserError(f"task '{task.name}': {split} labels must be 1-D class ids, got shape {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() >= c):
            raise UserError(f"task '{task.name}': {split} labels out of range [0, {c}): "
                            f"found {labels.min()}..{labels.max()}; fix the label mapping")


@functools.lru_cache(maxsize=1)
def environment() -> dict[str, Any]:
    """Git commit and library versions (lm-evaluation-harness style), computed once per process."""
    root = Path(__file__).resolve().parent.parent
    commit, dirty = None, None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                capture_output=True, text=True, timeout=10).stdout
        dirty = bool(status.strip()) if commit else None
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for pkg in ("torch", "accelerate", "numpy", "scipy", "scikit-learn", "transformers", "timm", "datasets",
                "imbalanced-learn", "torchvision"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return {"git_commit": commit, "git_dirty": dirty, "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions}


class Engine:
    """Runs one configuration at a time on a shared Accelerator; only the main process writes."""

    def __init__(self, accelerator: Accelerator, out_dir: str | Path, quiet: bool = False,
                 keep_models: bool = False) -> None:
        self.acc = accelerator
        self.out = Path(out_dir)
        self.quiet = quiet
        self.keep_models = keep_models  # keep baseline models of any size (a method of the grid starts from them)

    # ---- paths -----------------------------------------------------------------------------------------------
    def path(self, spec: RunSpec) -> Path:
        return result_path(self.out, spec.task.name, spec.run_id)

    def log(self, spec: RunSpec, line: str) -> None:
        if self.acc.is_main_process:
            p = self.out / "logs" / f"{spec.run_id}.log"
            p.parent.mkdir(parents=True, exist_ok=True)
            with open(p, "a") as f:
                f.write(f"{_dt.datetime.now().isoformat(timespec='seconds')} {line}\n")

    # ---- one run ---------------------------------------------------------------------------------------------
    def run(self, spec: RunSpec, prepared: PreparedTask) -> Optional[dict]:
        """Train (or reuse the baseline's scores), evaluate every view, write the result. Returns it on main."""
        t0 = time.perf_counter()
        task, method = spec.task, spec.method
        method.check_task(task.multi_label, task.name)
        before = self._artifacts(spec)
        self.log(spec, f"start {spec.task_spec} {spec.method_spec} seed={spec.seed}")
        try:
            return self._run(spec, prepared, t0)
        except BaseException:
            if self.acc.is_main_process:
                self._remove_orphans(spec, before)
            raise

    def _run(self, spec: RunSpec, prepared: PreparedTask, t0: float) -> Optional[dict]:
        method = spec.method
        self._start_tracking(spec)
        error = None
        seen = None
        try:
            method.setup(prepared.train)
            for warning in method.setup_warnings:  # e.g. a threshold that makes the method a no-op on this task
                self.log(spec, f"warning: {warning}")
            if method.posthoc:
                pool_logits, val_logits, seen = self._baseline_scores(spec)
                train_time, extra = 0.0, self._baseline_deploy(spec)
            else:
                pool_logits, val_logits, seen, train_time, extra = self._train_and_score(spec, prepared)
        except Exception as exc:
            error = self._failure(spec, exc)
            if error is None:
                raise
            pool_logits, val_logits, train_time, extra = None, None, time.perf_counter() - t0, {}
        if not self.acc.is_main_process:
            self.acc.wait_for_everyone()
            return None
        t1 = time.perf_counter()
        try:
            result = self._result(spec, prepared, pool_logits, val_logits, seen, error)
        except Exception as exc:  # e.g. a post-hoc adjustment that makes the scores NaN, or that raises
            error = self._failure(spec, exc)
            if error is None:
                raise
            pool_logits, val_logits = None, None
            result = self._result(spec, prepared, None, None, seen, error)
        result["train_time_s"] = round(train_time, 3)
        result["eval_time_s"] = round(time.perf_counter() - t1, 3)
        result["wall_time_s"] = round(time.perf_counter() - t0, 3)
        if pool_logits is not None:
            self._write_scores(spec, prepared, pool_logits, val_logits, extra)
        write_result(self.path(spec), result)
        self.log(spec, f"done status={result['status']} wall={result['wall_time_s']}s")
        self._end_tracking(result)
        self.acc.wait_for_everyone()
        return result

    def _failure(self, spec: RunSpec, exc: Exception) -> Optional[str]:
        """The one-line reason when `exc` fails only this run, logged with its traceback; None when it is not
        the run's own failure (an engine bug, a full disk: the caller re-raises it).

        The run's own failures: a diverged loss, a hook returning something unusable (`MethodError`), and any
        exception raised inside one of the method's hooks (a plugin's bug), named by the innermost hook frame.
        """
        if isinstance(exc, UserError):  # bad input (e.g. imblearn on a task without feature vectors): one line, exit 2
            return None
        if isinstance(exc, (TrainingDiverged, MethodError)):
            reason = str(exc)
        elif isinstance(exc, OSError) and exc.errno in _ENVIRONMENT_ERRNOS:
            return None
        else:
            hook = _raising_hook(exc, spec.method)
            if hook is None:
                return None
            text = " ".join(str(exc).split()) or "(no message)"
            reason = f"method '{spec.method.name}': {hook} raised {type(exc).__name__}: {text}"
        tb = "" if isinstance(exc, TrainingDiverged) else "\n" + "".join(traceback.format_exception(exc)).rstrip()
        self.log(spec, f"failed: {reason}{tb}")
        return reason

    def _artifacts(self, spec: RunSpec) -> dict[str, Optional[int]]:
        """mtime (ns) of this run's result, scores, model and log files, None where missing."""
        out = {}
        for kind, p in self._artifact_paths(spec).items():
            try:
                out[kind] = p.stat().st_mtime_ns
            except FileNotFoundError:
                out[kind] = None
        return out

    def _artifact_paths(self, spec: RunSpec) -> dict[str, Path]:
        res = self.path(spec)
        return {"json": res, "npz": res.with_suffix(".npz"), "pt": res.with_suffix(".pt"),
                "log": self.out / "logs" / f"{spec.run_id}.log"}

    def _remove_orphans(self, spec: RunSpec, before: dict[str, Optional[int]]) -> None:
        """After an aborted run (a full disk, an interrupt, a crash) that wrote no result: remove the scores and
        model it wrote (and an older result they no longer match), and its log when this attempt started it and
        left no checkpoint to resume from. The run directory keeps no file without its JSON."""
        now, paths = self._artifacts(spec), self._artifact_paths(spec)
        if now["json"] is not None and now["json"] != before["json"]:
            return  # the result was written: what it refers to stays
        wrote = [k for k in ("npz", "pt") if now[k] is not None and now[k] != before[k]]
        if wrote and now["json"] is not None:
            wrote.append("json")
        if before["log"] is None and not (self.out / "checkpoints" / spec.run_id).exists():
            wrote.append("log")
        for k in wrote:
            paths[k].unlink(missing_ok=True)

    def _start_tracking(self, spec: RunSpec) -> None:
        """One tracker run per configuration (--log-with), named by its run id."""
        if self.acc.log_with and self.acc.is_main_process:
            self.acc.trackers = []
            cfg = {"task": spec.task_spec, "method": spec.method_spec, "seed": spec.seed, **spec.task.train_config()}
            self.acc.init_trackers(spec.run_id, config=cfg)

    def _end_tracking(self, result: dict) -> None:
        """Final metrics of every view, then close this run's trackers (not `end_training`: it ends DDP)."""
        if not self.acc.trackers:
            return
        final = {f"eval/{view}/{k}": v for view, e in result["eval"].items() for k, v in e["metrics"].items()
                 if isinstance(v, (int, float))}
        final["failed"] = int(result["status"] != "ok")
        self.acc.log(final)
        for tracker in self.acc.trackers:
            tracker.finish()
        self.acc.trackers = []

    def _train_and_score(self, spec: RunSpec, prepared: PreparedTask):
        acc, task, method = self.acc, spec.task, spec.method
        t0 = time.perf_counter()
        if acc.device.type == "cpu":
            torch.set_num_threads(task.cpu_threads or _DEFAULT_THREADS)
        set_seed(spec.seed)
        model = task.build_model()
        train, train_ds = prepared.train, prepared.data.train.dataset
        resampled = method.resample(train, np.random.default_rng([spec.seed, 0x2E5A]))
        if resampled is not None:  # imbalanced-learn style: a new training set of feature vectors
            x, y = resampled
            train = TrainInfo(labels=y, multi_label=train.multi_label, num_classes=train.num_classes,
                              budget_samples=train.budget_samples, features=x)
            train_ds = ArrayDataset(x, y)
        if method.init_from_baseline:
            self._load_baseline_model(spec, model)
        method.prepare_model(model)
        # the task's batch is the global one: each process takes its share, so that the optimizer steps, and the
        # samples of each step, do not depend on the process count
        sampler = BudgetBatchSampler(method, train, method.train_samples(task.budget_samples),
                                     batch_per_process(task, acc.num_processes), spec.seed)
        loader_kw = dict(collate_fn=collate, num_workers=task.num_workers,
                         persistent_workers=False, pin_memory=acc.device.type == "cuda")
        # each process takes its own disjoint part of the stream (not accelerate's prepare, which pads by repeating)
        shard = ShardedBatchSampler(sampler, acc.num_processes, acc.process_index)
        pool_dl = DataLoader(prepared.data.pool.dataset, batch_size=task.eval_batch_size, shuffle=False, **loader_kw)
        val_dl = DataLoader(prepared.data.val.dataset, batch_size=task.eval_batch_size, shuffle=False, **loader_kw)
        deploy = prepared.data.deploy
        deploy_dl = (DataLoader(deploy.dataset, batch_size=task.eval_batch_size, shuffle=False, **loader_kw)
                     if deploy is not None else None)
        steps = len(shard)
        optimizer, scheduler = task.build_optimizer(model, steps)
        model, optimizer, pool_dl, val_dl = acc.prepare(model, optimizer, pool_dl, val_dl)
        if deploy_dl is not None:
            deploy_dl = acc.prepare(deploy_dl)
        # the scheduler is stepped once per optimizer step of this process and sized with this process's steps;
        # accelerate's prepare_scheduler would step it num_processes times per step
        ckpt = self.out / "checkpoints" / spec.run_id
        start = self._resume(spec, ckpt, scheduler)
        batches = _train_batches(acc, train_ds, shard, start, loader_kw)
        model.train()
        _frozen_to_eval(acc.unwrap_model(model))
        bar = _bar(total=steps, initial=start, desc=f"  {spec.method_spec} seed {spec.seed}", leave=False,
                   disable=self.quiet or not acc.is_main_process)
        step = start
        plain = _plain_steps(acc)
        opt = optimizer.optimizer if plain else optimizer
        for step, (x, y) in enumerate(batches, start=start):
            x, y = send_to_device((x, y), acc.device, non_blocking=acc.device.type == "cuda")
            if task.multi_label:
                y = y.float()
            x, y = task.augment_batch(x, y)
            logits = model(x)
            loss = method.loss(logits.float(), y, step / steps)
            if loss.ndim != 0:  # a metadata check, no GPU sync
                raise MethodError(f"method '{method.name}': loss returned shape {tuple(loss.shape)}, expected a "
                                  f"scalar (reduce the batch, e.g. .mean())")
            if plain:
                loss.backward()
            else:
                acc.backward(loss)
            opt.step()
            if scheduler is not None:
                scheduler.step()
            opt.zero_grad(set_to_none=True)
            if step % CHECK_FINITE_EVERY == 0 or step == steps - 1:
                # mean over processes: NaN on any one stops them all at the same step (no DDP hang)
                value = acc.reduce(loss.detach().float(), reduction="mean").item()
                if acc.trackers:
                    acc.log({"train/loss": value}, step=step)
                if not math.isfinite(value):
                    bar.close()
                    acc.free_memory()
                    raise TrainingDiverged(f"loss became {value} at step {step} of {steps}; "
                                           f"lower the learning rate or check the method's parameters")
                if step % (CHECK_FINITE_EVERY * 20) == 0:
                    self.log(spec, f"step {step}/{steps} loss {value:.5f}")
            if task.checkpoint_every and (step + 1) % task.checkpoint_every == 0 and step + 1 < steps:
                self._checkpoint(ckpt, step + 1, scheduler)
            bar.update(1)
        bar.close()
        train_time = time.perf_counter() - t0
        model.eval()
        extra: dict[str, np.ndarray] = {}
        head = self._storable_head(spec, prepared, model)
        pool_logits, pool_feats = self._predict(model, pool_dl, head)
        val_logits, val_feats = self._predict(model, val_dl, head)
        if head is not None:  # post-hoc classifier methods (tau_norm) rebuild logits from these
            extra = {"pool_features": pool_feats, "val_features": val_feats,
                     "head_weight": head.weight.detach().float().cpu().numpy(),
                     "head_bias": (head.bias.detach().float().cpu().numpy() if head.bias is not None
                                   else np.zeros(head.out_features, dtype=np.float32))}
        if deploy_dl is not None:  # unlabeled: only its logits (true labels of a generated set go in apart)
            extra["deploy_logits"] = self._predict(model, deploy_dl)[0]
        if spec.is_baseline:
            self._save_model(spec, model)
        seen = {
            "samples_seen": int(sampler.draw_counts.sum()),
            "epochs": round(sampler.epochs, 4),
            "class_counts_seen": sampler.class_counts_seen().tolist(),
        }
        acc.free_memory()
        if acc.is_main_process and ckpt.exists():
            shutil.rmtree(ckpt, ignore_errors=True)  # the result file supersedes it
        return pool_logits, val_logits, seen, train_time, extra

    def _checkpoint(self, ckpt: Path, next_step: int, scheduler: Any = None) -> None:
        """accelerator.save_state, the LR scheduler's state, then a marker written last: a checkpoint without it is
        incomplete. (The scheduler is saved here, not registered with accelerate: registrations would pile up on an
        accelerator that serves every run of a grid.)"""
        self.acc.save_state(str(ckpt / "state"))
        if self.acc.is_main_process:
            if scheduler is not None:
                buf = io.BytesIO()
                torch.save(scheduler.state_dict(), buf)
                atomic_write_bytes(ckpt / "scheduler.pt", buf.getvalue())
            atomic_write_bytes(ckpt / "step.json", json.dumps({"next_step": next_step}).encode())
        self.acc.wait_for_everyone()

    def _resume(self, spec: RunSpec, ckpt: Path, scheduler: Any = None) -> int:
        """The step to resume from: that of a complete checkpoint of this run (model, optimizer, RNG and LR
        schedule restored), else 0."""
        marker = ckpt / "step.json"
        if not marker.exists():
            return 0
        try:
            next_step = int(json.loads(marker.read_text())["next_step"])
            # read before restoring anything: a checkpoint without it must start over with untouched weights
            sched_state = (torch.load(ckpt / "scheduler.pt", map_location="cpu", weights_only=True)
                           if scheduler is not None else None)
            self.acc.load_state(str(ckpt / "state"))
            if scheduler is not None:
                # a schedule restarted at step 0 would redo warm-up and decay (LR wrong for the rest of the run)
                scheduler.load_state_dict(sched_state)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            self.log(spec, f"checkpoint unusable ({exc}); starting over")
            return 0
        self.log(spec, f"resumed from checkpoint at step {next_step}")
        return next_step

    @torch.no_grad()
    def _predict(self, model: torch.nn.Module, loader: DataLoader, head: Optional[torch.nn.Linear] = None):
        """Logits of every example of the loader, in order, gathered across processes without padding.

        With `head`, also the inputs the model feeds to it (penultimate features), caught by a forward hook.
        """
        out, feats, caught = [], [], []
        hook = head.register_forward_hook(lambda m, inp, o: caught.append(inp[0])) if head is not None else None
        try:
            for x, _ in loader:
                out.append(self.acc.gather_for_metrics(model(x).float()).cpu())
                if hook is not None:
                    feats.append(self.acc.gather_for_metrics(caught.pop().float()).cpu())
        finally:
            if hook is not None:
                hook.remove()
        logits = torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)
        return logits, (torch.cat(feats).numpy() if feats else None)

    def _storable_head(self, spec: RunSpec, prepared: PreparedTask, model) -> Optional[torch.nn.Linear]:
        """The baseline model's linear `.head` when its inputs on pool + val are small enough to store."""
        head = getattr(self.acc.unwrap_model(model), "head", None)
        if not spec.is_baseline or not isinstance(head, torch.nn.Linear):
            return None
        n = len(prepared.data.pool) + len(prepared.data.val)
        return head if n * head.in_features * 4 <= STORE_FEATURES_MAX_BYTES else None

    def _save_model(self, spec: RunSpec, model) -> None:
        """Keep the baseline's weights as <run_id>.pt for methods that start from it (small models always)."""
        net = self.acc.unwrap_model(model)
        nbytes = sum(t.numel() * t.element_size() for t in net.state_dict().values())
        if self.acc.is_main_process and (self.keep_models or nbytes <= STORE_MODEL_MAX_BYTES):
            buf = io.BytesIO()
            torch.save({k: v.detach().cpu() for k, v in net.state_dict().items()}, buf)
            atomic_write_bytes(self.path(spec).with_suffix(".pt"), buf.getvalue())

    def _load_baseline_model(self, spec: RunSpec, model: torch.nn.Module) -> None:
        base = spec.baseline()
        pt = self.path(base).with_suffix(".pt")
        res = read_result(self.path(base))
        if res is not None and res.get("status") == "failed":  # this run fails too; the sweep goes on
            raise TrainingDiverged(f"its baseline 'none' (same task and seed) failed: {res.get('error')}")
        if res is None or res.get("status") != "ok" or not pt.exists():
            raise UserError(f"method '{spec.method.name}' starts from the trained baseline 'none' of task "
                            f"{spec.task_spec} seed {spec.seed}, but {pt} is missing; run it in a grid with the "
                            f"baseline (the runner retrains a baseline whose model was not kept)")
        model.load_state_dict(torch.load(pt, map_location="cpu", weights_only=True))
        self.log(spec, f"initialized from baseline model {pt.name}")

    def _baseline_deploy(self, spec: RunSpec) -> dict[str, np.ndarray]:
        """A post-hoc run's deployment logits: the baseline's (the same model), when it scored a deployment set."""
        npz = self.path(spec.baseline()).with_suffix(".npz")
        if not npz.exists():
            return {}
        with np.load(npz) as z:
            return {"deploy_logits": z["deploy_logits"]} if "deploy_logits" in z.files else {}

    def _baseline_scores(self, spec: RunSpec):
        """Post-hoc methods reuse the baseline's stored scores of the same task and seed (no retraining)."""
        base = spec.baseline()
        path = self.path(base)
        res = read_result(path)
        npz = path.with_suffix(".npz")
        if res is not None and res.get("status") == "failed":  # this run fails too; the sweep goes on
            raise TrainingDiverged(f"its baseline 'none' (same task and seed) failed: {res.get('error')}")
        if res is None or res.get("status") != "ok" or not npz.exists():
            raise UserError(f"method '{spec.method.name}' is post-hoc and needs the baseline 'none' result for "
                            f"task {spec.task_spec} seed {spec.seed} in {self.out}; it runs first in every grid")
        with np.load(npz) as z:
            pool_logits, val_logits = spec.method.posthoc_scores(z)
        return pool_logits, val_logits, res["effective_prior"]

    # ---- results ---------------------------------------------------------------------------------------------
    def _result(self, spec: RunSpec, prepared: PreparedTask, pool_logits, val_logits, seen, error) -> dict:
        task, train = spec.task, prepared.train
        counts = train.class_counts
        present = counts > 0
        result: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "run_id": spec.run_id,
            "status": "failed" if error else "ok",
            "error": error,
            "config": spec.config,
            "task_info": {**task.info(), "skipped": prepared.data.skipped, "notes": prepared.data.notes,
                          **({"deploy": prepared.data.deploy_info} if prepared.data.deploy is not None else {})},
            "train_stats": train_stats(train),
            "effective_prior": None,
            "eval": {},
            "val": {},
            "scores_file": None,
            "env": {**environment(), "num_processes": self.acc.num_processes,
                    "batch_per_process": batch_per_process(task, self.acc.num_processes),
                    "device": str(self.acc.device), "mixed_precision": str(self.acc.mixed_precision)},
            "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        if spec.method.setup_warnings:
            result["warnings"] = list(spec.method.setup_warnings)
        if seen is not None:
            cs = np.asarray(seen["class_counts_seen"])
            result["effective_prior"] = {**seen, "imbalance_ratio_seen": _ratio(cs[present])}
        if error:
            return result
        absent = ~present  # a class with no training example cannot be learned: reported, not scored
        result["eval"] = evaluate_views(spec.method, task.multi_label, pool_logits, prepared.data.pool.labels,
                                        prepared.views, exclude=absent)
        result["val"] = evaluate_views(spec.method, task.multi_label, val_logits, prepared.data.val.labels,
                                       prepared.val_views, per_class=False, exclude=absent)
        result["scores_file"] = f"{spec.run_id}.npz"
        if spec.method.posthoc or spec.method.init_from_baseline:
            result["baseline_run_id"] = spec.baseline().run_id
        return result

    def _write_scores(self, spec: RunSpec, prepared: PreparedTask, pool_logits, val_logits,
                      extra: Optional[dict[str, np.ndarray]] = None) -> None:
        arrays = {"pool_logits": pool_logits.astype(np.float32), "pool_labels": prepared.data.pool.labels,
                  "val_logits": val_logits.astype(np.float32), "val_labels": prepared.data.val.labels,
                  **(extra or {})}
        # the scores actually evaluated, when the method adjusts its logits (post-hoc logit adjustment): the
        # report recomputes metrics on new evaluation priors from these (benchmark.core.metrics.RunMetrics)
        if "deploy_logits" in arrays and prepared.data.deploy_true_labels is not None:
            # kept apart under a name no estimator reads: only the report's "estimate vs truth" check uses it
            arrays["deploy_true_labels"] = prepared.data.deploy_true_labels
        splits = [("pool", pool_logits), ("val", val_logits)]
        if "deploy_logits" in arrays:
            splits.append(("deploy", arrays["deploy_logits"]))
        for split, logits in splits:
            adjusted = spec.method.adjust_logits(np.asarray(logits, dtype=np.float64))
            if not np.array_equal(adjusted, logits):
                arrays[f"{split}_adjusted_logits"] = np.asarray(adjusted, dtype=np.float32)
        for prefix, views in (("view", prepared.views), ("valview", prepared.val_views)):
            for name, v in views.items():
                arrays[f"{prefix}_{name}_idx"] = v.indices
                if v.weights is not None:
                    arrays[f"{prefix}_{name}_w"] = v.weights
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(self.path(spec).with_suffix(".npz"), buf.getvalue())


def _train_batches(acc: Accelerator, dataset, shard: ShardedBatchSampler, start: int, loader_kw: dict):
    """This process's training batches from step `start` on, in the stream's order.

    In-memory tensors without workers are gathered a batch at a time straight from the sampler's index arrays:
    through a DataLoader (index lists, fetch, collate) a small model's step cost ~1.4x a bare PyTorch loop's.
    Skipped steps are drawn either way, so `draw_counts` and the rest of the stream do not depend on the path.
    """
    if isinstance(dataset, ArrayDataset) and not loader_kw.get("num_workers"):
        return dataset.take_batches(itertools.islice(shard.index_batches(), start, None))
    train_dl = DataLoader(dataset, batch_sampler=shard, **loader_kw)
    return acc.skip_first_batches(train_dl, start) if start else train_dl


def _plain_steps(acc: Accelerator) -> bool:
    """Whether `loss.backward()` and the bare optimizer do exactly what accelerate's wrappers would.

    True without a gradient scaler (fp16), gradient accumulation, DeepSpeed, FSDP or XLA: the wrappers then only
    divide the loss by 1 and call the same methods, but add ~0.15 ms per step (an importlib lookup for LOMO and an
    inspect.signature call in accelerate 1.x), ~25 % of a small model's step on CPU. DDP's hooks live on the model.
    """
    from accelerate.utils import DistributedType

    return (acc.scaler is None and acc.gradient_accumulation_steps == 1
            and acc.distributed_type in (DistributedType.NO, DistributedType.MULTI_CPU, DistributedType.MULTI_GPU))


_ENVIRONMENT_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)  # the machine's fault, not the run's: stop the sweep


def _raising_hook(exc: BaseException, method: Method) -> Optional[str]:
    """The innermost of `method`'s hooks on the traceback of `exc`, or None when none of them raised it."""
    hook, tb = None, exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_name in METHOD_HOOKS and frame.f_locals.get("self") is method:
            hook = frame.f_code.co_name
        tb = tb.tb_next
    return hook


def _frozen_to_eval(model: torch.nn.Module) -> None:
    """Top-level submodules with parameters, none trainable, stay in eval mode (no dropout, fixed BN statistics)."""
    for child in model.children():
        params = list(child.parameters())
        if params and not any(p.requires_grad for p in params):
            child.eval()


def _ratio(counts: np.ndarray) -> Optional[float]:
    counts = np.asarray(counts, dtype=np.float64)
    counts = counts[counts > 0]
    return float(counts.max() / counts.min()) if counts.size else None


def train_stats(train: TrainInfo) -> dict[str, Any]:
    counts = train.class_counts
    lpe = float(train.label_matrix.sum() / max(train.n_examples, 1)) if train.multi_label else 1.0
    return {
        "n_examples": train.n_examples,
        "n_classes": train.num_classes,
        "class_counts": counts.tolist(),
        "imbalance_ratio": _ratio(counts),
        "labels_per_example": round(lpe, 4),
        "absent_classes": np.flatnonzero(counts == 0).tolist(),
    }


def evaluate_views(method: Method, multi_label: bool, logits: np.ndarray, labels: np.ndarray,
                   views: dict[str, View], per_class: bool = True,
                   exclude: Optional[np.ndarray] = None) -> dict[str, Any]:
    """Metrics of every view from one array of logits: the method's adjustment is applied once, then the core's
    `score_views` (the one implementation, shared with `evaluate`) scores every view.

    `exclude` (C,) bool marks classes that are not scored (those absent from training), see `score_views`.
    """
    logits = np.asarray(logits, dtype=np.float64)
    scores = np.asarray(method.adjust_logits(logits), dtype=np.float64)
    if scores.shape != logits.shape:
        raise MethodError(f"method '{method.name}': adjust_logits returned shape {scores.shape} for logits of "
                          f"shape {logits.shape}; it must keep the shape")
    # scored as stored: the .npz keeps float32 (`_write_scores`), and the report and `evaluate` recompute every
    # number from it, so a near-tie that float64 would break differently cannot make them disagree
    with np.errstate(over="ignore"):  # beyond float32's range: inf, caught just below
        scores = scores.astype(np.float32).astype(np.float64)
    if not np.all(np.isfinite(scores)):
        raise TrainingDiverged("evaluation scores contain NaN or inf")
    return score_views(multi_label, scores, labels, views, per_class=per_class, exclude=exclude)


def _bar(**kw):
    from tqdm.auto import tqdm

    return tqdm(file=sys.stderr, dynamic_ncols=True, **kw)
