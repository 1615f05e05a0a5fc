"""AudioSet with the Audio Spectrogram Transformer: the seed paper's task (Moore et al. 2023, arXiv 2307.00079)."""
from __future__ import annotations

import os
import warnings
from collections import Counter
from typing import Any, Optional

import numpy as np

from benchmark import Param, Split, TaskData, UserError, register_task
from benchmark.audio.audioset_data import AUDIOSET_HUB_ID, TRAIN_SPLITS
from benchmark.audio_tasks import ASTTask, ast_params

FINETUNED_ON_AUDIOSET = ("MIT/ast-finetuned-audioset",)  # checkpoints that have already seen AudioSet's labels


@register_task
class AudioSet(ASTTask):
    """AudioSet (527 sound classes, multi-label) with AST: public eval vs a held-out slice at the training prior.

    Views: `public` = the official eval split (near-balanced by construction), `natural` = a seeded slice held out
    of the training split (the paper's internal eval set analog: same conditions, training prior), `balanced` /
    `inverse` built from the public set. Recipe and defaults from AST (Gong et al. 2021, YuanGongND/ast).
    """

    name = "audioset"
    description = ("AudioSet, 527 sound classes, AST (transformers) on log-mel fbanks; public eval split vs a "
                   "held-out slice of the training split at its natural prior")
    source = f"hub {AUDIOSET_HUB_ID} (parquet, FLAC) or a local copy in its schema (--data)"
    license = "CC BY 4.0 (labels); audio from YouTube"
    size = "balanced: 18,685 train + 17,142 eval clips (~50 GB); unbalanced: 1.74 M clips (~2.4 TB)"
    gpu_time = "balanced, 25 epochs, AST-base bf16: ~30 min per run on one H100 (estimate); full: ~8 h per run"
    multi_label = True
    main_metric = "mAP"
    secondary_metric = "dprime"
    views = ("public", "natural", "balanced", "inverse")
    balanced_min_positives = 59  # AudioSet's eval set has >= 59 clips of every class

    params = {
        "config": Param(str, "balanced", "training split: balanced (bal_train) | unbalanced (unbal_train) | full "
                        "(both); evaluation always uses the eval split", choices=tuple(TRAIN_SPLITS)),
        "data": Param(str, AUDIOSET_HUB_ID, "hub dataset id, or a local directory of parquet files in its schema "
                      "(data/bal_train, data/unbal_train, data/eval)"),
        "vocab": Param(str, "official", "classes: official (the 527 AudioSet MIDs) | data (MIDs seen in the data) | "
                       "path to a class_labels_indices.csv"),
        **ast_params(frames_help="fbank frames of 10 ms; 0 = the size's: 1024 (10.24 s), tiny 128", lr=0.0,
                     lr_help="peak learning rate; 0 = AST's: 5e-5 balanced, 1e-5 otherwise", epochs=25.0,
                     batch_size=12, warmup=1000, decay_start=0, decay_every=1, decay=0.5, freqm=48, timem=192),
        # AST's recipe depends on the training split: 0 picks it
        "epochs": Param(float, 0.0, "budget in epochs of the training split; 0 = AST's: 25 balanced, 5 otherwise",
                        min=0.0, max=1000.0),
        "lr_decay_start": Param(int, 0, "multiply the LR by lr_decay after this epoch and every lr_decay_every "
                                "epochs after; 0 = AST's: 10 balanced, 2 otherwise", min=0, max=10_000),
        "lr_decay_every": Param(int, 0, "epochs between LR decays; 0 = AST's: 5 balanced, 1 otherwise", min=0,
                                max=10_000),
        "weight_avg_from": Param(int, 0, "average end-of-epoch weights from this epoch on (AST: 6 balanced, 1 full); "
                                 "0 = off", min=0, max=10_000),
        "mixup": Param(float, 0.5, "probability of MixUp on waveforms (partner drawn uniformly)", min=0.0, max=1.0),
        "mixup_alpha": Param(float, 10.0, "MixUp λ ~ Beta(α, α)", min=0.01, max=1000.0),
        "natural_fraction": Param(float, 0.1, "fraction of the training split held out as the `natural` view",
                                  min=0.0, max=0.9),
        "natural_max": Param(int, 20_000, "at most this many natural clips (0 = no cap)", min=0),
        "val_fraction": Param(float, 0.02, "fraction of the training split held out for validation (>= 1 clip)",
                              min=0.0, max=0.5),
        "val_max": Param(int, 1000, "at most this many validation clips (0 = no cap)", min=0),
        "max_train": Param(int, 0, "use a seeded subset of this many training-split clips (0 = all)", min=0),
        "max_eval": Param(int, 0, "use a seeded subset of this many eval clips (0 = all)", min=0),
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        balanced = self.config == "balanced"
        self.epochs = float(self.epochs or (25.0 if balanced else 5.0))
        self.lr = float(self.lr or (5e-5 if balanced else 1e-5))
        self.lr_decay_start = int(self.lr_decay_start or (10 if balanced else 2))
        self.lr_decay_every = int(self.lr_decay_every or (5 if balanced else 1))
        from benchmark.audio.audioset_data import check_data_source

        check_data_source(self.data, self.config)  # a bad --data fails before anything runs or is written
        if self.init_kind.startswith("hub:") and self.init_kind[4:].startswith(FINETUNED_ON_AUDIOSET):
            warnings.warn(f"--init {self.init_kind}: this checkpoint is already fine-tuned on AudioSet (with its own "
                          f"balanced sampling), so every method starts from a balanced-trained model; use --init "
                          f"imagenet for the paper's setting", UserWarning, stacklevel=2)
        self._vocab: Optional[tuple[list[str], list[str]]] = None
        self._splits: Optional[tuple[dict, str]] = None

    # ---- metadata -------------------------------------------------------------------------------------------
    def _data(self) -> tuple[dict, str]:
        if self._splits is None:
            from benchmark.audio.audioset_data import load_audio_splits

            self._splits = load_audio_splits(self.data, self.config)
        return self._splits

    def _vocabulary(self) -> tuple[list[str], list[str]]:
        if self._vocab is None:
            from benchmark.audio.audioset_data import OFFICIAL_VOCAB, read_vocab, vocab_from_data

            if self.vocab == "official":
                self._vocab = read_vocab(OFFICIAL_VOCAB)
            elif self.vocab == "data":
                self._vocab = vocab_from_data(self._data()[0])
            else:
                if not os.path.isfile(os.path.expanduser(self.vocab)):
                    raise UserError(f"task 'audioset': vocab={self.vocab!r} is neither official, data nor an "
                                    f"existing class_labels_indices.csv")
                self._vocab = read_vocab(self.vocab)
        return self._vocab

    @property
    def num_classes(self) -> int:
        return len(self._vocabulary()[0])

    @property
    def class_names(self) -> list[str]:
        return list(self._vocabulary()[1])

    # ---- data ---------------------------------------------------------------------------------------------------
    def _readable(self, part: str, ds, rng, skipped: Counter):
        """Rows of a split with known MIDs and a readable audio header (optionally a seeded subset), their labels
        and video ids; the others are counted in `skipped`. Mostly unreadable audio is a format error."""
        from benchmark.audio.audioset_data import label_matrix
        from benchmark.audio.clips import EncodedClips

        y, unknown = label_matrix(ds, self._vocabulary()[0])
        skipped[f"{part}: unknown label MID"] += int(unknown.sum())
        rows = np.flatnonzero(~unknown)
        if rows.size == 0:
            raise UserError(f"--data {self.data}: the {part} split has no clip with a label in the vocabulary "
                            f"({self.vocab}); use --task audioset:vocab=data")
        cap = self.max_train if part == "train" else self.max_eval
        if cap and rows.size > cap:
            rows = np.sort(rng.choice(rows, size=cap, replace=False))
        ids = (np.asarray(ds.data.table.column("video_id").to_pylist(), dtype=object)[rows]
               if "video_id" in ds.column_names else None)
        reasons, first = EncodedClips(ds.data, rows, self.max_samples, names=ids).check()
        bad = reasons != ""
        if bad.mean() > 0.5:  # not a few broken clips: the audio format itself is wrong
            raise UserError(f"--data {self.data}: {int(bad.sum())} of {rows.size} clips of the {part} split cannot "
                            f"be read ({first}); the audio must be encoded files whose header gives the sample rate "
                            f"(FLAC, WAV, OGG): re-encode them, e.g. soundfile.write(f, x, sr, format='FLAC')")
        for reason, n in Counter(reasons[bad]).items():
            skipped[f"{part}: {reason}"] += int(n)
        return rows[~bad], y[rows[~bad]], None if ids is None else ids[~bad]

    def load(self) -> TaskData:
        from benchmark.audio import AudioClipDataset, CachedClips, ConcatClips, EncodedClips, cache_key

        splits, identity = self._data()
        rng = np.random.default_rng(self.data_seed)
        skipped: Counter = Counter()
        rows_tr, y_tr, ids_tr = self._readable("train", splits["train"], rng, skipped)
        rows_ev, y_ev, ids_ev = self._readable("eval", splits["eval"], rng, skipped)

        # seeded held-out slices of the training split: the natural view and validation
        n = rows_tr.size
        n_nat = min(int(round(self.natural_fraction * n)), self.natural_max or n) if self.natural_fraction else 0
        n_val = max(1, min(int(round(self.val_fraction * n)), self.val_max or n))
        if n - n_nat - n_val < 1:
            raise UserError(f"--data {self.data}: {n} usable training clips cannot give natural ({n_nat}) and "
                            f"validation ({n_val}) slices and a training set; lower natural_fraction / val_fraction")
        perm = rng.permutation(n)
        cut = {"natural": np.sort(perm[:n_nat]), "val": np.sort(perm[n_nat:n_nat + n_val]),
               "train": np.sort(perm[n_nat + n_val:])}

        def clips(ds, rows, ids, tag):
            c = EncodedClips(ds.data, rows, self.max_samples, names=ids)
            if self.cache_dir:
                c = CachedClips(c, os.path.expanduser(self.cache_dir), cache_key(identity, tag, rows, c.max_samples))
            return c

        part = {k: (clips(splits["train"], rows_tr[i], None if ids_tr is None else ids_tr[i], k), y_tr[i])
                for k, i in cut.items()}
        (train_clips, y_train), (nat_clips, y_nat), (val_clips, y_val) = part["train"], part["natural"], part["val"]
        pub_clips = clips(splits["eval"], rows_ev, ids_ev, "public")
        self._set_n_train(y_train.shape[0])

        y_pool = np.concatenate([y_ev, y_nat])  # public clips first, then the natural slice
        train = Split(AudioClipDataset(train_clips, y_train, mixup=self.mixup, alpha=self.mixup_alpha), y_train)
        val = Split(AudioClipDataset(val_clips, y_val), y_val)
        pool = Split(AudioClipDataset(ConcatClips([pub_clips, nat_clips]), y_pool), y_pool)
        n_pub = int(y_ev.shape[0])
        groups = {"public": np.arange(n_pub), "balanced_candidates": np.arange(n_pub)}
        if n_nat:
            groups["natural"] = np.arange(n_pub, n_pub + n_nat)
        src = "+".join(TRAIN_SPLITS[self.config])
        prior = "the training prior" + (", itself near-balanced by construction" if self.config == "balanced" else "")
        notes = [
            f"training: {self._n_train} clips of {src}; natural view: {n_nat} clips held out of {src} (i.i.d., "
            f"{prior}); public view: {n_pub} clips of the eval split (near-balanced, >= 59 per class on the full "
            f"set); validation: {n_val} clips held out of {src}",
            f"classes: {self.num_classes} ({'official AudioSet list' if self.vocab == 'official' else self.vocab})",
            self._prepare_init(),
        ]
        data = TaskData(train, val, pool, groups, {"natural": np.arange(n_val)},
                        skipped={k: v for k, v in sorted(skipped.items()) if v}, notes=notes)
        return self.attach_deploy(data, y_train.sum(axis=0))

    # ---- model --------------------------------------------------------------------------------------------------
    def _prepare_init(self) -> str:
        fresh = self._model_config is None
        note = super()._prepare_init()
        if fresh and self.init_kind.startswith("hub:") and self.init_kind[4:].startswith(FINETUNED_ON_AUDIOSET):
            self._init_note = note = note + "; already fine-tuned on AudioSet"
        return note
