"""Shared parts of the AST audio tasks (audioset, synth-audioset, fsd50k, esc50-lt) on top of `benchmark.audio`
(AST, Gong et al. 2021): header checks that skip and count bad clips, hub downloads with one-line errors, the AST
recipe parameters, and the `ASTTask` base: the one init / model / optimizer / augmentation path of every AST task.
"""
from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .audio.config import AST_SIZES, AUDIOSET_MEAN, AUDIOSET_STD, FRAME_SHIFT
from .core.errors import UserError
from .params import Param
from .task import Split, Task, TaskData

HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def one_line(exc: BaseException, limit: int = 160) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def is_hub_id(data: str) -> bool:
    """'owner/name' that is not an existing local path."""
    return bool(HUB_ID.fullmatch(data)) and not data.startswith((".", "~")) and not Path(data).expanduser().exists()


def hub_offline() -> bool:
    return any(os.environ.get(k, "0").lower() not in ("0", "", "false")
               for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def readable(clips: Any, part: str, data: str, skipped: Counter, hint: str, flag: str = "--data") -> np.ndarray:
    """Bool mask of the clips whose header reads; the others are counted in `skipped` as '<part>: <reason>'.

    More than half unreadable is not a few broken clips but a wrong layout or format: a UserError with `hint`
    (naming `flag`, the option that gave `data`).
    """
    reasons, first = clips.check()
    bad = reasons != ""
    if bad.size and bad.mean() > 0.5:
        raise UserError(f"{flag} {data}: {int(bad.sum())} of {bad.size} clips of the {part} split cannot be read "
                        f"({first}); {hint}")
    for reason, n in Counter(reasons[bad]).items():
        skipped[f"{part}: {reason}"] += int(n)
    return ~bad


# ---- hub downloads -----------------------------------------------------------------------------------------------


def hub_snapshot(repo_id: str, patterns: Sequence[str] = (), what: str = "the data", files: Sequence[str] = ()) -> Path:
    """Local folder of a hub dataset repository (its snapshot in the Hugging Face cache) holding the files matching
    `patterns` and the exact `files` (downloaded once; single files one by one, which is cheaper than matching
    thousands of patterns against the whole repository). Offline or unreachable: a one-line UserError with the fix."""
    try:
        from huggingface_hub import hf_hub_download, snapshot_download

        root = None
        if patterns:
            root = Path(snapshot_download(repo_id=repo_id, repo_type="dataset", allow_patterns=list(patterns)))
        for name in files:
            local = Path(hf_hub_download(repo_id=repo_id, filename=name, repo_type="dataset"))
            root = root or local.parents[len(Path(name).parts) - 1]
        if root is None:
            raise ValueError("nothing to download")
        return root
    except Exception as exc:  # offline, not cached, no such repo or file, network errors
        why = "offline mode (HF_HUB_OFFLINE) and not in the cache" if hub_offline() else one_line(exc, 120)
        raise UserError(f"--data {repo_id}: {what} could not be fetched from the hub ({why}); download it once with "
                        f"`huggingface-cli download {repo_id} --repo-type dataset --local-dir DIR` and pass "
                        f"--data DIR") from None


def load_hub_dataset(repo_id: str, flag: str = "--data") -> Any:
    """`datasets.load_dataset(repo_id)` (a DatasetDict) or a one-line UserError naming the fix (for `flag`)."""
    import datasets

    try:
        return datasets.load_dataset(repo_id)
    except Exception as exc:
        why = "offline mode (HF_HUB_OFFLINE)" if hub_offline() else one_line(exc, 120)
        raise UserError(f"{flag} {repo_id}: hub dataset could not be loaded ({why}); download it once with "
                        f"`huggingface-cli download {repo_id} --repo-type dataset --local-dir DIR` and pass "
                        f"{flag} DIR") from None


# ---- deployment clips (--deploy) ---------------------------------------------------------------------------------

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif")  # what soundfile decodes without FFmpeg
DEPLOY_AUDIO_HELP = ("unlabeled deployment clips (--deploy): a directory of audio files (wav / flac / ogg, searched "
                     "recursively), parquet files with an `audio` {bytes, path} column (AudioSet's hub schema; a "
                     "labels column is ignored) or a hub dataset id of them; decoded like the task's clips")


def _deploy_files(path: Path) -> tuple[list[Path], list[Path]]:
    """(parquet files, audio files) under a --deploy path, sorted (a single file counts as the one it is)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    parquet = [p for p in files if p.suffix.lower() == ".parquet"]
    audio = [p for p in files if p.suffix.lower() in AUDIO_SUFFIXES]
    return parquet, audio


def check_deploy_source(deploy: str) -> None:
    """Cheap checks of a --deploy value before anything runs: an existing directory / file holding audio or parquet
    files, or a hub id (fetched at load time). One-line UserError naming the fix otherwise.

    >>> check_deploy_source("someone/their-clips")  # a hub id: checked when loaded
    """
    path = Path(deploy).expanduser()
    if not path.exists():
        if is_hub_id(deploy):
            return
        raise UserError(f"--deploy {deploy}: no such file or directory; give a directory of audio files (wav / "
                        f"flac), parquet files with an `audio` column, or a hub dataset id")
    parquet, audio = _deploy_files(path)
    if not parquet and not audio:
        what = "is empty" if path.is_dir() and next(path.iterdir(), None) is None else \
            f"holds no audio ({', '.join(AUDIO_SUFFIXES)}) or .parquet files"
        raise UserError(f"--deploy {deploy}: {what}; give a directory of unlabeled audio clips (wav / flac) or "
                        f"parquet files with an `audio` column")


def _parquet_table(deploy: str, files: Sequence[Path]) -> tuple[Any, str]:
    """(Arrow table with an encoded `audio` column, identity) of local parquet files or a hub dataset."""
    import datasets

    if files:
        try:
            ds = datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train")
        except Exception as exc:
            raise UserError(f"--deploy {deploy}: the parquet files could not be read ({one_line(exc, 120)})") from None
    else:
        dd = load_hub_dataset(deploy, flag="--deploy")
        ds = datasets.concatenate_datasets(list(dd.values())) if len(dd) > 1 else next(iter(dd.values()))
    ds = encoded_audio(ds, f"--deploy {deploy}", "the deployment data", "AudioSet's hub schema")
    return ds.data, f"deploy:{deploy}:{ds._fingerprint}"


def encoded_audio(ds: Any, given: str, where: str, expected: str) -> Any:
    """`ds` (a `datasets.Dataset`) with its `audio` column cast to encoded {bytes, path}, not decoded (soundfile
    decodes it later); a one-line UserError starting with `given` (e.g. '--data DIR') otherwise."""
    import datasets

    if "audio" not in ds.column_names:
        raise UserError(f"{given}: {where} has no 'audio' column (columns: {', '.join(ds.column_names)}); expected "
                        f"{expected}")
    try:
        return ds.cast_column("audio", datasets.Audio(decode=False))
    except Exception as exc:
        raise UserError(f"{given}: the 'audio' column of {where} is not encoded audio {{bytes, path}} "
                        f"({one_line(exc, 100)})") from None


def deploy_clips(deploy: str, max_samples: int, skipped: Counter, cache_dir: str = "") -> tuple[Any, dict]:
    """The readable clips of a --deploy source (`check_deploy_source`), decoded on access like the task's own, and
    info for the run's `task_info.deploy`. Clips whose header does not read are skipped and counted in `skipped`
    ('deploy: <reason>'); mostly unreadable is a one-line UserError."""
    from .audio.clips import CachedClips, EncodedClips, FileClips, cache_key

    check_deploy_source(deploy)
    path = Path(deploy).expanduser()
    parquet, audio = _deploy_files(path) if path.exists() else ([], [])
    hint = "give encoded audio whose header gives the sample rate (wav, flac, ogg)"
    if parquet or not path.exists():  # parquet wins: a dataset copy may carry stray audio files beside it
        table, identity = _parquet_table(deploy, parquet)
        names = table.column("video_id").to_pylist() if "video_id" in table.column_names else None
        clips = EncodedClips(table, np.arange(table.num_rows), max_samples, names=names)
        ok = readable(clips, "deploy", deploy, skipped, hint, flag="--deploy")
        clips = EncodedClips(table, np.flatnonzero(ok), max_samples,
                             names=None if names is None else np.asarray(names, dtype=object)[ok])
        fmt = "parquet" if parquet else "hub"
    else:
        clips = FileClips(audio, max_samples)
        ok = readable(clips, "deploy", deploy, skipped, hint, flag="--deploy")
        clips = FileClips(clips.paths[ok], max_samples)
        identity = cache_key(*[(p, os.path.getsize(p), int(os.path.getmtime(p))) for p in clips.paths])
        fmt = "audio files"
    if len(clips) == 0:
        raise UserError(f"--deploy {deploy}: no readable clip; {hint}")
    if cache_dir:
        clips = CachedClips(clips, os.path.expanduser(cache_dir), cache_key("deploy", identity, max_samples))
    return clips, {"format": fmt, "skipped": int((~ok).sum())}


# ---- the task base -----------------------------------------------------------------------------------------------


def _check_init(v: str) -> Optional[str]:
    if v in ("auto", "imagenet", "scratch") or (v.startswith("hub:") and len(v) > 4):
        return None
    return "use auto, imagenet, scratch or hub:<model id>"


def ast_params(*, frames_help: str, lr: float, lr_help: str, epochs: float, batch_size: int,
               warmup: int, decay_start: int, decay_every: int, decay: float, freqm: int, timem: int,
               weight_avg_from: int = 0, eval_batch_size: int = 48, num_workers: int = -1) -> dict[str, Param]:
    """The AST recipe parameters shared by the audio tasks, with each task's recipe as defaults.

    >>> p = ast_params(frames_help="", lr=1e-4, lr_help="", epochs=25.0, batch_size=48, warmup=0,
    ...                decay_start=5, decay_every=1, decay=0.85, freqm=24, timem=96)
    >>> p["lr_decay"].default, p["timem"].default
    (0.85, 96)
    """
    return {
        "init": Param(str, "auto", "imagenet (timm DeiT adapted as AST does) | scratch | hub:<id> (a transformers "
                      "AST checkpoint; its position embeddings are fitted to `frames`) | auto (imagenet; scratch for "
                      "model_size=tiny)", check=_check_init),
        "model_size": Param(str, "base", "AST size: base (DeiT-B/384) | small (DeiT-S) | tiny (CPU runs and tests)",
                            choices=tuple(AST_SIZES)),
        "frames": Param(int, 0, frames_help, min=0, max=8192),
        "epochs": Param(float, epochs, "budget in epochs of the training set (the same samples for every method)",
                        min=0.01, max=1000.0),
        "lr": Param(float, lr, lr_help, min=0.0, max=1.0),
        "batch_size": Param(int, batch_size, "training batch size", min=1, max=65_536),
        "eval_batch_size": Param(int, eval_batch_size, "evaluation batch size", min=1, max=65_536),
        "warmup": Param(int, warmup, "linear learning-rate warm-up, in batches", min=0, max=10_000_000),
        "lr_decay_start": Param(int, decay_start, "multiply the LR by lr_decay after this epoch and every "
                                "lr_decay_every epochs after", min=0, max=10_000),
        "lr_decay_every": Param(int, decay_every, "epochs between LR decays", min=1, max=10_000),
        "lr_decay": Param(float, decay, "LR factor at each decay", min=0.0, max=1.0),
        "weight_avg_from": Param(int, weight_avg_from, "average end-of-epoch weights from this epoch on (AST's "
                                 "weight averaging); 0 = off", min=0, max=10_000),
        "freqm": Param(int, freqm, "SpecAugment: one frequency mask narrower than this (bins)", min=0, max=128),
        "timem": Param(int, timem, "SpecAugment: one time mask narrower than this (frames at the default input "
                       "length; scaled with frames)", min=0, max=8192),
        "num_workers": Param(int, num_workers, "DataLoader workers decoding and resampling clips (the fbank runs "
                             "batched on the model's device); -1 = min(16, CPUs - 1)", min=-1, max=256),
        "cache_dir": Param(str, "", "cache decoded 16 kHz clips here (16-bit; for small subsets); empty = off"),
        "deploy": Param(str, None, DEPLOY_AUDIO_HELP),
        "checkpoint_every": Param(int, 5000, "steps between accelerator.save_state for resuming (0 = off)", min=0),
        "data_seed": Param(int, 0, "seed of the data splits and subsets (model seeds vary per run)", min=0),
    }


class ASTTask(Task):
    """An AST task: subclasses set `default_frames`, `fbank_stats` and implement `load`, calling `_set_n_train`
    with the training-set size (the budget is `epochs` of it). Their datasets yield (padded 16 kHz waveform,
    length) pairs (`benchmark.audio.AudioClipDataset`, MixUp on waveforms there); the model built here computes
    the fbank batched on its device and applies SpecAugment to it while training."""

    default_frames: int = 1024  # input length of the recipe at model sizes base / small
    fbank_stats: tuple[float, float] = (AUDIOSET_MEAN, AUDIOSET_STD)  # (mean, std) of the dataset's fbanks
    weight_decay = 5e-7  # AST's Adam

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        size = AST_SIZES[self.model_size]
        self.n_frames = int(self.frames or (size["frames"] if size["deit"] is None else self.default_frames))
        if self.num_workers < 0:
            self.num_workers = max(0, min(16, (os.cpu_count() or 1) - 1))
        self.init_kind = self.init
        if self.init == "auto":
            self.init_kind = "imagenet" if size["deit"] else "scratch"
        elif self.init == "imagenet" and not size["deit"]:
            raise UserError(f"task '{self.name}': init=imagenet needs an ImageNet DeiT of the model's size; "
                            f"model_size={self.model_size} has none: use --init scratch or --model-size base/small")
        self._n_train: Optional[int] = None
        self._model_config = None
        self._init_state: Optional[dict[str, Any]] = None
        self._init_note = ""
        if getattr(self, "deploy", None):
            check_deploy_source(self.deploy)  # a bad --deploy fails before anything runs or is written

    @property
    def budget_samples(self) -> int:  # type: ignore[override]
        if self._n_train is None:
            raise RuntimeError(f"{self.name}: the budget is known once the data is loaded")
        return int(round(self.epochs * self._n_train))

    def _set_n_train(self, n: int) -> None:
        self._n_train = int(n)

    @property
    def max_samples(self) -> int:
        """Samples kept per clip: `frames` x 10 ms."""
        return self.n_frames * FRAME_SHIFT

    @property
    def _timem(self) -> int:
        return int(round(self.timem * self.n_frames / self.default_frames))

    def train_config(self) -> dict[str, Any]:
        # computed before the data is read (run ids): the budget is in epochs of the training set
        config = {
            "budget_epochs": float(self.epochs),
            "batch_size": int(self.batch_size),
            "lr": float(self.lr),
            "weight_decay": self.weight_decay,
            "optimizer": "adam(0.95, 0.999)",
            "schedule": f"warmup {self.warmup}, x{self.lr_decay:g} after epoch {self.lr_decay_start} and every "
                        f"{self.lr_decay_every}",
            "weight_avg_from": int(self.weight_avg_from),
            "specaugment": [int(self.freqm), self._timem],
            "frames": self.n_frames,
            "fbank_stats": list(self.fbank_stats),
            "init": self.init_kind,
            "model_size": self.model_size,
        }
        if hasattr(self, "mixup"):
            config["mixup"] = [float(self.mixup), float(self.mixup_alpha)]
        return config

    # ---- deployment split -----------------------------------------------------------------------------------------
    def attach_deploy(self, data: TaskData, train_counts: np.ndarray,
                      draw: Optional[Callable[[np.ndarray, int, np.random.Generator],
                                              tuple[np.ndarray, np.ndarray]]] = None) -> TaskData:
        """`data` with the deployment split the task's parameters ask for (`benchmark.deploy.attach_deploy`):
        `deploy=PATH|HUB_ID` reads unlabeled clips (`deploy_clips`, skipped ones added to `data.skipped`);
        generated tasks pass `draw(prior, n, rng)` -> ((n, samples) waveforms, true labels) for `deploy_prior`."""
        from .audio.clips import ArrayClips
        from .deploy import attach_deploy

        def split(clips) -> Split:
            if self.multi_label:
                from .audio.dataset import AudioClipDataset

                zeros = np.zeros((len(clips), self.num_classes), dtype=bool)
                return Split(AudioClipDataset(clips, zeros), zeros.astype(np.float32))
            from .audio.dataset import LabeledClipDataset

            ids = np.zeros(len(clips), dtype=np.int64)
            return Split(LabeledClipDataset(clips, ids), ids)

        def read(path: str) -> tuple[Split, dict]:
            skipped: Counter = Counter()
            clips, info = deploy_clips(path, self.max_samples, skipped, getattr(self, "cache_dir", ""))
            for k, v in skipped.items():
                data.skipped[k] = data.skipped.get(k, 0) + v
            return split(clips), info

        return attach_deploy(self, data, train_counts, draw, read=read,
                             unlabeled=lambda waves: split(ArrayClips(waves)))

    # ---- model --------------------------------------------------------------------------------------------------
    def _prepare_init(self) -> str:
        """Model config and initial weights, fetched once per process; returns a note saying what the model
        starts from."""
        from .audio.model import fit_time_positions, hub_ast, local_ast_init

        if self._model_config is not None:
            return self._init_note
        if self.init_kind.startswith("hub:"):
            config, state = hub_ast(self.init_kind[4:], self.num_classes)
            frames_was = int(config.max_length)
            state = fit_time_positions(state, config, self.n_frames)
            head = "its classifier head" if any(k.startswith("classifier.dense.") for k in state) else "a new head"
            fitted = f", position embeddings fitted from {frames_was} to {self.n_frames} frames" \
                if frames_was != self.n_frames else ""
            self._init_note = f"init: {self.init_kind} with {head}{fitted}"
        else:
            config, state, self._init_note = local_ast_init(self.model_size, self.num_classes, self.n_frames,
                                                            self.init_kind)
        self._model_config, self._init_state = config, state
        return self._init_note

    def build_model(self):
        """AST with the batched fbank (this task's statistics) and SpecAugment in front."""
        from .audio.features import Fbank
        from .audio.model import build_ast

        self._prepare_init()
        fbank = Fbank(self.n_frames, mean=self.fbank_stats[0], std=self.fbank_stats[1])
        return build_ast(self._model_config, self._init_state, fbank, self.freqm, self._timem)

    def build_optimizer(self, model, total_steps: int):
        from .audio.recipe import ast_optimizer

        if self._n_train is None:
            raise RuntimeError(f"{self.name}: the optimizer is built once the data is loaded")
        return ast_optimizer(model, self.lr, self._n_train / self.batch_size, total_steps, warmup=self.warmup,
                             decay_start=self.lr_decay_start, decay_every=self.lr_decay_every, gamma=self.lr_decay,
                             average_from=self.weight_avg_from, weight_decay=self.weight_decay)
