"""ESC-50 (Piczak, ACM MM 2015) made long-tailed: the CIFAR-LT exponential profile (Cao et al. 2019) on its
training folds, the balanced held-out fold as the pool; AST with its ESC-50 recipe (Gong et al. 2021)."""
from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path
from typing import Any, Optional

import numpy as np

from benchmark import Param, Split, TaskData, UserError, register_task
from benchmark.audio_tasks import ASTTask, ast_params, encoded_audio, is_hub_id, load_hub_dataset, one_line
from benchmark.synthetic import exponential_counts

ESC50_HUB_ID = "ashraq/esc50"
ESC50_URL = "https://github.com/karolpiczak/ESC-50"
META_COLUMNS = ("filename", "fold", "target", "category")
EXPECTED = "meta/esc50.csv + audio/*.wav (the ESC-50 GitHub repository) or parquet files in ashraq/esc50's schema"


class Esc50Source:
    """Metadata of every clip (filename, fold, target, category, source-recording group) and its audio, from the
    official repository layout, parquet files or a hub dataset."""

    def __init__(self, data: str) -> None:
        self.data = data
        path = Path(data).expanduser()
        self.table = None  # Arrow table of the parquet / hub rows
        self.audio_dir: Optional[Path] = None
        if not path.exists():
            self._from_hub()
        elif (meta := self.meta_csv(path)) is not None:
            self._from_csv(meta)
        else:
            self._from_parquet(sorted(path.rglob("*.parquet")))

    @staticmethod
    def meta_csv(root: Path) -> Optional[Path]:
        for cand in (root / "meta" / "esc50.csv", root / "ESC-50-master" / "meta" / "esc50.csv"):
            if cand.is_file():
                return cand
        return None

    @staticmethod
    def check_path(data: str) -> None:
        """Cheap checks before anything runs: a directory in a known layout, or a hub id."""
        path = Path(data).expanduser()
        if path.exists():
            if not path.is_dir():
                raise UserError(f"--data {data}: give the ESC-50 directory ({EXPECTED}), not a file")
            if Esc50Source.meta_csv(path) is None and next(path.rglob("*.parquet"), None) is None:
                hint = "; meta/esc50.csv is missing" if (path / "audio").is_dir() else ""
                raise UserError(f"--data {data}: no ESC-50 metadata found{hint}; expected {EXPECTED} ({ESC50_URL})")
        elif not is_hub_id(data):
            raise UserError(f"--data {data}: no such file or directory; give a local ESC-50 directory or a hub dataset "
                            f"id such as {ESC50_HUB_ID}")

    def _set(self, cols: dict[str, list], where: str) -> None:
        missing = [c for c in META_COLUMNS if c not in cols]
        if missing:
            raise UserError(f"--data {self.data}: {where} has no '{missing[0]}' column (columns: "
                            f"{', '.join(cols) or 'none'}); expected ESC-50's {','.join(META_COLUMNS)}")
        self.filename = np.array([str(v) for v in cols["filename"]], dtype=object)
        self.category = np.array(["" if v is None else str(v) for v in cols["category"]], dtype=object)
        self.fold = _ints(cols["fold"])
        self.target = _ints(cols["target"])
        # clips cut from one recording (takes A, B, ...) share a source: ESC-50's folds keep them together, and the
        # validation split does too; filename = {fold}-{source}-{take}-{target}.wav
        src = cols.get("src_file") or [f.split("-")[1] if f.count("-") >= 3 else f for f in self.filename]
        self.group = np.unique(np.array([str(v) for v in src], dtype=object), return_inverse=True)[1]

    def _from_csv(self, meta: Path) -> None:
        try:
            with open(meta, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                rows = list(reader)
                names = [c.strip() for c in (reader.fieldnames or [])]
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise UserError(f"{meta}: cannot be read ({one_line(exc, 80)})") from None
        self._set({c: [r.get(c) for r in rows] for c in names}, str(meta))
        self.audio_dir = meta.parent.parent / "audio"
        self.identity = f"esc50:{meta.resolve()}:{os.path.getmtime(meta)}"

    def _from_parquet(self, files: list[Path]) -> None:
        import datasets

        try:
            ds = datasets.load_dataset("parquet", data_files=[str(f) for f in files], split="train")
        except Exception as exc:
            raise UserError(f"--data {self.data}: the parquet files could not be read ({one_line(exc, 120)}); "
                            f"expected {ESC50_HUB_ID}'s schema") from None
        self._from_dataset(ds, "the parquet data")
        self.identity = f"esc50:{Path(self.data).expanduser().resolve()}:{ds._fingerprint}"

    def _from_hub(self) -> None:
        import datasets

        dd = load_hub_dataset(self.data)
        ds = datasets.concatenate_datasets(list(dd.values())) if len(dd) > 1 else next(iter(dd.values()))
        self._from_dataset(ds, f"hub dataset {self.data}")
        self.identity = f"esc50:hub:{self.data}:{ds._fingerprint}"

    def _from_dataset(self, ds: Any, where: str) -> None:
        ds = encoded_audio(ds, f"--data {self.data}", where, f"{ESC50_HUB_ID}'s schema")
        table = ds.data
        self._set({c: table.column(c).to_pylist() for c in ds.column_names if c != "audio"}, where)
        self.table = table

    def clips(self, rows: np.ndarray, max_samples: int):
        from benchmark.audio import EncodedClips, FileClips

        if self.table is not None:
            return EncodedClips(self.table, rows, max_samples, names=self.filename[rows])
        return FileClips([self.audio_dir / f for f in self.filename[rows]], max_samples)


def _ints(values: list) -> np.ndarray:
    """Integer column with -1 where a value is missing or not an integer."""
    out = np.full(len(values), -1, dtype=np.int64)
    for i, v in enumerate(values):
        try:
            f = float(v)
        except (TypeError, ValueError):
            continue
        if f.is_integer():
            out[i] = int(f)
    return out


def rank_within_class(y: np.ndarray, keys: tuple[np.ndarray, ...]) -> np.ndarray:
    """Position of each example among its class when sorted by `keys` (last key most significant, as lexsort)."""
    order = np.lexsort((*keys, y))
    ys = y[order]
    rank = np.empty(y.size, dtype=np.int64)
    rank[order] = np.arange(y.size) - np.searchsorted(ys, ys, side="left")
    return rank


@register_task
class Esc50LT(ASTTask):
    """Training: the folds other than `test_fold` (8 clips per class per fold, so 32 per class), each class
    subsampled to n_r = int(n_max · ρ^(-r/(C-1))) for its rank r (a seeded class order); validation: up to
    `val_per_class` of the training-fold clips left out, none from a recording that gave a training clip; pool: the
    test fold as is (balanced), viewed at the training prior (`natural`), uniform (`balanced`) and reversed
    (`inverse`) by class-stratified subsampling.
    """

    name = "esc50-lt"
    description = ("ESC-50, 50 environmental sound classes, long-tailed training folds (ρ=10), balanced test fold; "
                   "AST with its ESC-50 recipe")
    source = f"hub {ESC50_HUB_ID} (parquet, WAV bytes) or a local clone of {ESC50_URL} (meta/esc50.csv + audio/)"
    license = "CC BY-NC 3.0 (non-commercial; clips from freesound.org)"
    size = ("2,000 5-s clips (44.1 kHz 16-bit WAV, ~880 MB; hub parquet ~770 MB), 50 classes x 40, 5 folds; defaults: "
            "448 long-tailed training clips (24 ... 2 per class), <= 400 validation, 400 test-fold clips")
    gpu_time = ("AST-base bf16, 25 epochs of 448 clips at 5.12 s: ~1-2 min per run on one H100 including the "
                "ImageNet init and evaluation (estimate, not measured)")
    multi_label = False
    main_metric = "top1"
    secondary_metric = "balanced_acc"
    views = ("natural", "balanced", "inverse")
    default_frames = 512  # 5.12 s: AST's ESC-50 input length
    fbank_stats = (-6.6268077, 5.358466)  # AST's ESC-50 fbank statistics (egs/esc50)

    params = {
        "data": Param(str, ESC50_HUB_ID, f"hub dataset id, or a local directory: {EXPECTED}"),
        "rho": Param(float, 10.0, "imbalance ratio n_max / n_min of the training set", min=1.0, max=1000.0),
        "n_max": Param(int, 24, "training clips of the most frequent class (<= 32: 4 training folds x 8)", min=1,
                       max=10_000),
        "val_per_class": Param(int, 8, "validation clips per class, from training-fold clips left out of the "
                               "long-tailed set", min=1, max=10_000),
        "test_fold": Param(int, 5, "the held-out fold: the evaluation pool", min=1, max=100),
        "class_order": Param(str, "shuffled", "which class is the head: shuffled (a permutation seeded by data_seed; "
                             "target order would tie frequency to ESC-50's 5 major categories) | target (class 0 "
                             "first)", choices=("shuffled", "target")),
        **ast_params(frames_help="fbank frames of 10 ms; 0 = 512 (5.12 s, AST's ESC-50 input; tiny: 128)",
                     lr=0.0, lr_help="peak learning rate; 0 = AST's ESC-50 recipe: 1e-4 from ImageNet or scratch, "
                     "1e-5 from a hub (AudioSet-trained) checkpoint", epochs=25.0, batch_size=48, warmup=0,
                     decay_start=5, decay_every=1, decay=0.85, freqm=24, timem=96),
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        Esc50Source.check_path(self.data)  # a bad --data fails before anything runs or is written
        self.lr = float(self.lr or (1e-5 if self.init_kind.startswith("hub:") else 1e-4))
        self._source: Optional[Esc50Source] = None
        self._classes: Optional[list[str]] = None

    def source_data(self) -> Esc50Source:
        if self._source is None:
            self._source = Esc50Source(self.data)
        return self._source

    def _class_list(self) -> list[str]:
        if self._classes is None:
            src = self.source_data()
            valid = src.target >= 0
            c = int(src.target[valid].max()) + 1 if valid.any() else 0
            have = np.bincount(src.target[valid], minlength=c)
            if c < 2 or (have == 0).any():
                gap = int(np.argmin(have)) if c else 0
                raise UserError(f"--data {self.data}: targets must be the class ids 0..C-1 (C >= 2), but "
                                f"{'class ' + str(gap) + ' has no clip' if c >= 2 else 'fewer than 2 classes'}; "
                                f"is the 'target' column ESC-50's?")
            first = np.unique(src.target[valid], return_index=True)[1]
            self._classes = [src.category[valid][i] or f"class_{j}" for j, i in enumerate(first)]
        return self._classes

    @property
    def num_classes(self) -> int:
        return len(self._class_list())

    @property
    def class_names(self) -> list[str]:
        return list(self._class_list())

    def counts_by_rank(self) -> np.ndarray:
        return exponential_counts(self.num_classes, self.n_max, self.rho)

    def class_ranks(self) -> np.ndarray:
        """Rank of each class in the profile (0 = head)."""
        c = self.num_classes
        if self.class_order == "target":
            return np.arange(c)
        ranks = np.empty(c, dtype=np.int64)
        ranks[np.random.default_rng([self.data_seed, 0xE5C]).permutation(c)] = np.arange(c)
        return ranks

    def counts(self) -> np.ndarray:
        """Target training clips per class id."""
        return self.counts_by_rank()[self.class_ranks()]

    # ---- data ---------------------------------------------------------------------------------------------------
    def load(self) -> TaskData:
        from benchmark.audio import CachedClips, LabeledClipDataset, cache_key
        from benchmark.audio_tasks import readable

        src = self.source_data()
        c = self.num_classes
        folds = np.unique(src.fold[src.fold >= 0])
        if self.test_fold not in folds:
            raise UserError(f"--task esc50-lt:test_fold={self.test_fold}: the data has folds "
                            f"{', '.join(map(str, folds))}")
        skipped: Counter = Counter()
        unknown = (src.target < 0) | (src.fold < 0)
        skipped["metadata: unknown target or fold"] += int(unknown.sum())
        part_rows = {"test": np.flatnonzero(~unknown & (src.fold == self.test_fold)),
                     "train": np.flatnonzero(~unknown & (src.fold != self.test_fold))}
        hint = (f"the audio must be encoded files whose header gives the sample rate (WAV, FLAC); expected "
                f"{EXPECTED}")
        for part, rows in part_rows.items():
            ok = readable(src.clips(rows, self.max_samples), part, self.data, skipped, hint)
            part_rows[part] = rows[ok]

        # long-tailed training set and validation from the training folds, grouped by source recording
        rows = part_rows["train"]
        y = src.target[rows]
        rng = np.random.default_rng(self.data_seed)
        group_key = rng.random(int(src.group.max()) + 1)[src.group[rows]]
        rank = rank_within_class(y, (rng.random(rows.size), group_key))
        want = self.counts()
        train = rank < want[y]
        used = np.zeros(int(src.group.max()) + 1, dtype=bool)
        used[src.group[rows[train]]] = True
        cand = ~train & ~used[src.group[rows]]
        val = np.zeros(rows.size, dtype=bool)
        val[np.flatnonzero(cand)[rank_within_class(y[cand], (rank[cand],)) < self.val_per_class]] = True
        got = np.bincount(y[train], minlength=c)
        if not val.any():
            raise UserError(f"--task esc50-lt:n_max={self.n_max}: the long-tailed training set leaves no clip of "
                            f"folds other than {self.test_fold} for validation; lower n_max")

        def split(r: np.ndarray, tag: str) -> Split:
            clips = src.clips(r, self.max_samples)
            if self.cache_dir:
                clips = CachedClips(clips, os.path.expanduser(self.cache_dir),
                                    cache_key(src.identity, tag, r, clips.max_samples))
            labels = src.target[r]
            return Split(LabeledClipDataset(clips, labels), labels)

        tr, va, te = rows[train], rows[val], part_rows["test"]
        self._set_n_train(tr.size)
        names = self.class_names
        head, tail = int(np.argmin(self.class_ranks())), int(np.argmax(self.class_ranks()))
        short = np.flatnonzero(got < want)
        n_val = np.bincount(y[val], minlength=c)
        n_test = np.bincount(src.target[te], minlength=c)
        notes = [
            f"training: {tr.size} clips of folds {', '.join(str(f) for f in folds if f != self.test_fold)}, "
            f"n = int({self.n_max} · {self.rho:g}^(-r/{c - 1})) for class rank r ({self.class_order} order): head "
            f"'{names[head]}' {got[head]}, tail '{names[tail]}' {got[tail]}",
            f"validation: {va.size} left-out training-fold clips ({n_val.min()}-{n_val.max()} per class), none from a "
            f"recording that gave a training clip; pool: fold {self.test_fold}, {te.size} clips "
            f"({n_test.min()}-{n_test.max()} per class)",
            self._prepare_init(),
        ]
        if short.size:
            notes.append(f"{short.size} class(es) have fewer usable training-fold clips than the profile asks "
                         f"('{names[short[0]]}': {got[short[0]]} of {want[short[0]]}); they keep all they have")
        data = TaskData(split(tr, "train"), split(va, "val"), split(te, "test"),
                        skipped={k: v for k, v in sorted(skipped.items()) if v}, notes=notes)
        return self.attach_deploy(data, np.bincount(src.target[tr], minlength=c))
