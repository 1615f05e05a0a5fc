"""FSD50K (Fonseca et al., IEEE/ACM TASLP 2022; Zenodo 4060432): 200 sound classes, multi-label, with AST."""
from __future__ import annotations

import csv
import os
from collections import Counter
from pathlib import Path
from typing import Any, Optional

import numpy as np

from benchmark import Param, Split, TaskData, UserError, register_task
from benchmark.audio_tasks import ASTTask, ast_params, hub_snapshot, is_hub_id

FSD50K_HUB_ID = "Fhrozen/FSD50k"
# (name, ground-truth folder, dev audio folder, eval audio folder)
LAYOUTS = (("Zenodo", "FSD50K.ground_truth", "FSD50K.dev_audio", "FSD50K.eval_audio"),
           (FSD50K_HUB_ID, "labels", "clips/dev", "clips/eval"))
EXPECTED = "FSD50K.ground_truth/{dev,eval,vocabulary}.csv + FSD50K.{dev,eval}_audio/ (Zenodo) or " \
           "labels/*.csv + clips/{dev,eval}/ (Fhrozen/FSD50k)"
HUB_FILE_BY_FILE = 500  # beyond this many selected clips of a split, fetch its whole folder


def find_layout(root: Path) -> tuple[str, Path, Path, Path]:
    """(layout name, ground-truth dir, dev audio dir, eval audio dir) of a local copy; UserError naming what is
    missing (a layout is recognized by its dev.csv)."""
    for name, gt, dev, ev in LAYOUTS:
        if (root / gt / "dev.csv").is_file():
            for f in ("eval.csv", "vocabulary.csv"):
                if not (root / gt / f).is_file():
                    raise UserError(f"--data {root}: {gt}/dev.csv is there but {gt}/{f} is missing; copy the whole "
                                    f"ground-truth folder of FSD50K")
            return name, root / gt, root / dev, root / ev
    raise UserError(f"--data {root}: no FSD50K ground truth found; expected {EXPECTED}")


def read_vocabulary(path: Path) -> tuple[list[str], list[str]]:
    """(label names, MIDs) of vocabulary.csv (rows index,label,mid, no header), in index order."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
        if rows and not rows[0][0].strip().isdigit():
            rows = rows[1:]  # tolerate a header line
        rows = sorted(((int(r[0]), r[1].strip(), r[2].strip()) for r in rows), key=lambda r: r[0])
    except (OSError, UnicodeDecodeError, ValueError, IndexError) as exc:
        raise UserError(f"{path}: not FSD50K's vocabulary.csv (rows index,label,mid; {type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:80]})") from None
    if not rows or [r[0] for r in rows] != list(range(len(rows))) or len({r[2] for r in rows}) != len(rows):
        raise UserError(f"{path}: vocabulary.csv needs rows index,label,mid with indices 0..C-1 and unique MIDs")
    return [r[1] for r in rows], [r[2] for r in rows]


def read_clip_table(path: Path, need_split: bool) -> dict[str, Any]:
    """fname, label tokens (MIDs when the csv has them, else label names) and, for dev.csv, the split column."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            cols = [c.strip() for c in (reader.fieldnames or [])]
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"{path}: cannot be read ({type(exc).__name__}: {' '.join(str(exc).split())[:80]})") from None
    need = ["fname", "labels", "mids"] + (["split"] if need_split else [])
    key = "mids" if "mids" in cols else "labels"
    missing = [c for c in need if c not in cols and not (c in ("labels", "mids") and key in cols)]
    if missing:
        raise UserError(f"{path}: no '{missing[0]}' column (columns: {', '.join(cols) or 'none'}); expected FSD50K's "
                        f"{','.join(need)}")
    return {
        "fname": np.array([r["fname"].strip() for r in rows], dtype=object),
        "tokens": [[t.strip() for t in (r[key] or "").split(",") if t.strip()] for r in rows],
        "key": key,
        "split": np.array([(r["split"] or "").strip() for r in rows], dtype=object) if need_split else None,
    }


def label_matrix(tokens: list[list[str]], vocab: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) bool labels and (N,) bool 'usable' (at least one label, none outside the vocabulary)."""
    index = {t: j for j, t in enumerate(vocab)}
    lengths = np.array([len(t) for t in tokens], dtype=np.int64)
    flat = np.array([index.get(t, -1) for ts in tokens for t in ts], dtype=np.int64)
    rows = np.repeat(np.arange(len(tokens)), lengths)
    y = np.zeros((len(tokens), len(vocab)), dtype=bool)
    known = flat >= 0
    y[rows[known], flat[known]] = True
    unknown = np.zeros(len(tokens), dtype=bool)
    unknown[rows[~known]] = True
    return y, (lengths > 0) & ~unknown


@register_task
class FSD50K(ASTTask):
    """dev `split=train` clips train, dev `split=val` clips validate, the eval set is the pool.

    Views: `public` = the eval set as released, `natural` = the eval set raked to the training prior, `balanced`
    (AudioSet-style greedy pick) and `inverse` from it. Clips are 0.3-30 s: the fbank keeps the first `frames` x
    10 ms (default 1024 = 10.24 s, AST's input length; PSLA's CNNs read 3000 frames) and zero-pads shorter ones.
    """

    name = "fsd50k"
    description = ("FSD50K, 200 sound classes (AudioSet ontology), multi-label, AST on log-mel fbanks; dev train/val "
                   "split, official eval set as the pool")
    source = (f"hub {FSD50K_HUB_ID} (labels/*.csv, clips/{{dev,eval}}/*.wav) or a local copy of Zenodo 4060432 "
              f"(--data)")
    license = "CC BY 4.0 (dataset); each clip under its own CC license (CC0, CC BY, CC BY-NC, CC Sampling+)"
    size = ("51,197 clips of 0.3-30 s (108 h, 44.1 kHz 16-bit WAV, ~34 GB): dev 40,966 (36,796 train + 4,170 "
            "val), eval 10,231")
    gpu_time = ("AST-base bf16, 25 epochs of 36,796 clips at 10.24 s: ~45-50 min per run on one H100 (estimate from "
                "~350 clips/s, not measured on FSD50K)")
    multi_label = True
    main_metric = "mAP"
    secondary_metric = "dprime"
    views = ("public", "natural", "balanced", "inverse")
    default_frames = 1024
    fbank_stats = (-4.6476, 4.5699)  # PSLA's FSD50K fbank statistics (YuanGongND/psla, egs/fsd50k)

    params = {
        "data": Param(str, FSD50K_HUB_ID, f"hub dataset id, or a local directory: {EXPECTED}"),
        **ast_params(frames_help="fbank frames of 10 ms kept per clip (longer clips are cut, shorter "
                     "padded); 0 = 1024 (10.24 s; tiny: 128)", lr=5e-5, lr_help="peak learning rate (AST's "
                     "balanced-AudioSet recipe, a set of similar size)", epochs=25.0, batch_size=12, warmup=1000,
                     decay_start=10, decay_every=5, decay=0.5, freqm=48, timem=192),
        "mixup": Param(float, 0.5, "probability of MixUp on waveforms (partner drawn uniformly)", min=0.0, max=1.0),
        "mixup_alpha": Param(float, 10.0, "MixUp λ ~ Beta(α, α)", min=0.01, max=1000.0),
        "balanced_min": Param(int, 30, "balanced view: greedy pick until every class has this many positives "
                              "(a class with fewer in the eval set contributes all it has)", min=1, max=100_000),
        "max_train": Param(int, 0, "use a seeded subset of this many dev train clips (0 = all)", min=0),
        "max_val": Param(int, 0, "use a seeded subset of this many dev val clips (0 = all)", min=0),
        "max_eval": Param(int, 0, "use a seeded subset of this many eval clips (0 = all)", min=0),
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.balanced_min_positives = int(self.balanced_min)
        path = Path(self.data).expanduser()
        if path.exists():  # a bad --data fails before anything runs or is written
            if not path.is_dir():
                raise UserError(f"--data {self.data}: give the FSD50K directory ({EXPECTED}), not a file")
            find_layout(path)
        elif not is_hub_id(self.data):
            raise UserError(f"--data {self.data}: no such file or directory; give a local FSD50K directory or a hub "
                            f"dataset id such as {FSD50K_HUB_ID}")
        self._vocab: Optional[tuple[list[str], list[str]]] = None
        self._root: Optional[tuple[str, Path, Path, Path]] = None

    # ---- metadata -------------------------------------------------------------------------------------------
    def _layout(self) -> tuple[str, Path, Path, Path]:
        if self._root is None:
            path = Path(self.data).expanduser()
            if not path.exists():  # hub: the ground truth first; clips once the subsets are known
                path = hub_snapshot(self.data, [f"{gt}/*" for _, gt, _, _ in LAYOUTS], "the FSD50K ground truth")
            self._root = find_layout(path)
        return self._root

    def _vocabulary(self) -> tuple[list[str], list[str]]:
        if self._vocab is None:
            self._vocab = read_vocabulary(self._layout()[1] / "vocabulary.csv")
        return self._vocab

    @property
    def num_classes(self) -> int:
        return len(self._vocabulary()[0])

    @property
    def class_names(self) -> list[str]:
        return list(self._vocabulary()[0])

    # ---- data ---------------------------------------------------------------------------------------------------
    def load(self) -> TaskData:
        from benchmark.audio import AudioClipDataset, CachedClips, FileClips, cache_key
        from benchmark.audio_tasks import readable

        layout, gt, dev_dir, eval_dir = self._layout()
        names, mids = self._vocabulary()
        rng = np.random.default_rng(self.data_seed)
        skipped: Counter = Counter()
        dev = read_clip_table(gt / "dev.csv", need_split=True)
        ev = read_clip_table(gt / "eval.csv", need_split=False)

        def select(table: dict, part: str, mask: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
            y, ok = label_matrix(table["tokens"], mids if table["key"] == "mids" else names)
            skipped[f"{part}: unknown or no label"] += int((mask & ~ok).sum())
            rows = np.flatnonzero(mask & ok)
            if cap and rows.size > cap:
                rows = np.sort(rng.choice(rows, size=cap, replace=False))
            return rows, y[rows]

        split = dev["split"]
        skipped["dev: split not train/val"] += int((~np.isin(split, ("train", "val"))).sum())
        parts = {"train": (dev, dev_dir, *select(dev, "train", split == "train", self.max_train)),
                 "val": (dev, dev_dir, *select(dev, "val", split == "val", self.max_val)),
                 "eval": (ev, eval_dir, *select(ev, "eval", np.ones(ev["fname"].size, bool), self.max_eval))}
        for part, (_, _, rows, _) in parts.items():
            if rows.size == 0:
                raise UserError(f"--data {self.data}: the {part} split has no clip with a label in vocabulary.csv; "
                                f"check the {'dev' if part != 'eval' else 'eval'}.csv labels/mids columns")
        if not Path(self.data).expanduser().exists():
            self._fetch_clips(parts)

        stamp = os.path.getmtime(gt / "dev.csv")
        out: dict[str, tuple[Any, np.ndarray, np.ndarray]] = {}
        for part, (table, folder, rows, y) in parts.items():
            fnames = table["fname"][rows]
            clips = FileClips([folder / f"{f}.wav" for f in fnames], self.max_samples)
            ok = readable(clips, part, self.data, skipped, f"the audio must be {folder}/<fname>.wav ({EXPECTED})")
            clips = FileClips(clips.paths[ok], self.max_samples)
            if self.cache_dir:
                clips = CachedClips(clips, os.path.expanduser(self.cache_dir),
                                    cache_key("fsd50k", Path(folder).resolve(), stamp, part, "/".join(fnames[ok]),
                                              clips.max_samples))
            out[part] = (clips, y[ok], fnames[ok])
        (tr_clips, y_tr, _), (va_clips, y_va, _), (ev_clips, y_ev, _) = out["train"], out["val"], out["eval"]
        self._set_n_train(y_tr.shape[0])
        train = Split(AudioClipDataset(tr_clips, y_tr, mixup=self.mixup, alpha=self.mixup_alpha), y_tr)
        val = Split(AudioClipDataset(va_clips, y_va), y_va)
        pool = Split(AudioClipDataset(ev_clips, y_ev), y_ev)
        absent = int((y_tr.sum(axis=0) == 0).sum())
        notes = [
            f"training: {y_tr.shape[0]} dev clips with split=train; validation: {y_va.shape[0]} dev clips with "
            f"split=val; pool: {y_ev.shape[0]} eval clips (the `public` view as released; `natural` raked to the "
            f"training prior) [{layout} layout]",
            f"classes: {len(names)} (vocabulary.csv){f'; {absent} without a training clip' if absent else ''}; "
            f"clips cut / zero-padded to {self.n_frames} frames ({self.n_frames / 100:g} s)",
            self._prepare_init(),
        ]
        data = TaskData(train, val, pool, {"public": np.arange(y_ev.shape[0])},
                        skipped={k: v for k, v in sorted(skipped.items()) if v}, notes=notes)
        return self.attach_deploy(data, y_tr.sum(axis=0))

    def _fetch_clips(self, parts: dict) -> None:
        """Hub copy: download only the selected clips (file by file), or whole folders when many are selected."""
        root = self._layout()[1].parent
        patterns: set[str] = set()
        files: list[str] = []
        for table, folder, rows, _ in parts.values():
            rel = Path(folder).relative_to(root).as_posix()
            fnames = table["fname"][rows]
            if fnames.size > HUB_FILE_BY_FILE:
                patterns.add(f"{rel}/*")
            else:
                files += [f"{rel}/{f}.wav" for f in fnames]
        hub_snapshot(self.data, sorted(patterns), "the FSD50K audio clips", files=files)
