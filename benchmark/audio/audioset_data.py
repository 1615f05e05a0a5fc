"""AudioSet-schema data (agkphysics/AudioSet: parquet with video_id, FLAC bytes, MID lists): a hub dataset id or
local parquet files, the official 527-class vocabulary, label matrices. Audio is not decoded here."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np

from ..core.errors import UserError
from .clips import cache_key

AUDIOSET_HUB_ID = "agkphysics/AudioSet"
AUDIOSET_SCHEMA = "video_id, audio {bytes, path}, labels (list of MIDs), human_labels"
OFFICIAL_VOCAB = Path(__file__).resolve().parent.parent / "data" / "audioset_class_labels_indices.csv"
TRAIN_SPLITS = {"balanced": ("bal_train",), "unbalanced": ("unbal_train",), "full": ("bal_train", "unbal_train")}
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def split_of(rel_path: str) -> Optional[str]:
    """AudioSet split named by a parquet file's path (agkphysics/AudioSet layout: data/bal_train/*.parquet,
    data/unbal_train/*.parquet, data/eval/*.parquet; also names like balanced_train-*.parquet, test*.parquet)."""
    s = rel_path.lower().replace("\\", "/")
    tok = r"(?:^|[/_.-])"
    if re.search(tok + r"unbal(?:anced)?[_-]?train", s):
        return "unbal_train"
    if re.search(tok + r"bal(?:anced)?[_-]?train", s):
        return "bal_train"
    if re.search(tok + r"(?:eval|evaluation|test)(?:[/_.-]|$)", s):
        return "eval"
    if re.search(tok + r"train(?:[/_.-]|$)", s):
        return "bal_train"
    return None


def local_parquet_files(root: Path, config: str) -> dict[str, list[str]]:
    """{'train': [...], 'eval': [...]} parquet files under `root` for a config; UserError naming what is missing."""
    files = sorted(root.rglob("*.parquet"))
    if not files:
        raise UserError(f"--data {root}: no .parquet files found; point it at a local copy of {AUDIOSET_HUB_ID} "
                        f"(huggingface-cli download {AUDIOSET_HUB_ID} --repo-type dataset --local-dir DIR)")
    by_split: dict[str, list[str]] = {}
    for f in files:
        sp = split_of(f.relative_to(root).as_posix())
        if sp is not None:
            by_split.setdefault(sp, []).append(str(f))
    wanted = TRAIN_SPLITS[config]
    train = [f for sp in wanted for f in by_split.get(sp, [])]
    found = ", ".join(f"{k} ({len(v)} files)" for k, v in sorted(by_split.items())) or "none"
    if not train or not by_split.get("eval"):
        missing = " and ".join(x for x, ok in ((("/".join(wanted)), bool(train)), ("eval", bool(by_split.get("eval"))))
                               if not ok)
        raise UserError(f"--data {root}: config '{config}' needs {missing} parquet files (found: {found}); "
                        f"use the {AUDIOSET_HUB_ID} layout data/{{bal_train,unbal_train,eval}}/*.parquet")
    return {"train": train, "eval": by_split["eval"]}


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_data_source(data: str, config: str) -> str:
    """'local' or 'hub' for `data`, checked without reading anything: a local directory must hold the config's
    parquet splits; anything else must look like a hub id (owner/name). UserError otherwise."""
    path = Path(data).expanduser()
    if path.exists():
        if not path.is_dir():
            raise UserError(f"--data {data}: give the directory holding the parquet files (bal_train/, eval/ ...), "
                            f"not a single file")
        local_parquet_files(path, config)
        return "local"
    if _HUB_ID.fullmatch(data) and not data.startswith((".", "~")):
        return "hub"
    raise UserError(f"--data {data}: no such file or directory; give a local directory of AudioSet parquet "
                    f"files or a hub dataset id such as {AUDIOSET_HUB_ID}")


def load_audio_splits(data: str, config: str) -> tuple[dict[str, Any], str]:
    """({'train': Dataset, 'eval': Dataset}, identity) from a hub id or a local directory, audio not decoded.

    The `audio` column is cast to `datasets.Audio(decode=False)` ({bytes, path}); decoding is soundfile's job.
    `identity` names the source for cache keys. Every failure is a one-line UserError naming the fix.
    """
    import datasets

    path = Path(data).expanduser()
    if check_data_source(data, config) == "local":
        files = local_parquet_files(path, config)
        try:
            dd = datasets.load_dataset("parquet", data_files=files)
        except Exception as exc:
            raise UserError(f"--data {data}: the parquet files could not be read ({_one_line(exc)}); check that "
                            f"they are complete ({AUDIOSET_SCHEMA})") from None
        stamp = [(f, os.path.getsize(f), int(os.path.getmtime(f))) for fs in files.values() for f in fs]
        identity = f"local:{path.resolve()}:{config}:{cache_key(stamp)}"
        splits = {"train": dd["train"], "eval": dd["eval"]}
    else:
        try:
            dd = datasets.load_dataset(data, config)
        except Exception as exc:
            offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false") or \
                os.environ.get("HF_DATASETS_OFFLINE", "0") not in ("0", "", "false")
            why = "offline mode (HF_HUB_OFFLINE)" if offline else _one_line(exc, 120)
            raise UserError(f"--data {data}: hub dataset (config '{config}') could not be loaded: {why}; download it "
                            f"once with `huggingface-cli download {data} --repo-type dataset --local-dir DIR` "
                            f"and pass --data DIR (no local path '{data}' exists)") from None
        names = list(dd.keys())
        ev = next((s for s in ("test", "eval", "evaluation", "validation") if s in dd), None)
        if "train" not in dd or ev is None:
            raise UserError(f"--data {data}: expected 'train' and 'test' splits, found {', '.join(names)}")
        splits = {"train": dd["train"], "eval": dd[ev]}
        identity = f"hub:{data}:{config}:{dd['train']._fingerprint}:{dd[ev]._fingerprint}"
    for name, ds in splits.items():
        missing = [c for c in ("audio", "labels") if c not in ds.column_names]
        if missing:
            raise UserError(f"--data {data}: the {name} split has no '{missing[0]}' column (columns: "
                            f"{', '.join(ds.column_names)}); expected the {AUDIOSET_HUB_ID} schema: {AUDIOSET_SCHEMA}")
        try:
            splits[name] = ds.cast_column("audio", datasets.Audio(decode=False))
        except Exception as exc:
            raise UserError(f"--data {data}: the {name} split's 'audio' column is not encoded audio "
                            f"{{bytes, path}} ({_one_line(exc, 120)}); expected {AUDIOSET_SCHEMA}") from None
    return splits, identity


def read_vocab(path: str | Path) -> tuple[list[str], list[str]]:
    """(MIDs, display names) of a class_labels_indices.csv (index,mid,display_name), in index order."""
    import csv

    p = Path(path).expanduser()
    try:
        with open(p, newline="") as f:
            rows = list(csv.DictReader(f))
        rows.sort(key=lambda r: int(r["index"]))
        mids, names = [r["mid"].strip() for r in rows], [r["display_name"].strip() for r in rows]
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise UserError(f"vocab {path}: not a readable class_labels_indices.csv with columns index,mid,display_name "
                        f"({_one_line(exc, 100)})") from None
    if not mids or len(set(mids)) != len(mids):
        raise UserError(f"vocab {path}: needs at least one class and unique MIDs")
    return mids, names


def _list_column(ds: Any, name: str):
    """(row of each value, flat values) of a list<string> column, as numpy / pyarrow arrays."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = ds.data.table.column(name)
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if not (pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type)):
        raise UserError(f"column '{name}' must be a list of strings (MIDs like /m/09x0r), got {arr.type}")
    lengths = pc.list_value_length(arr).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    values = pc.list_flatten(arr).cast(pa.string())
    rows = np.repeat(np.arange(len(arr), dtype=np.int64), lengths)
    return rows, values


def vocab_from_data(splits: dict[str, Any]) -> tuple[list[str], list[str]]:
    """MIDs seen in the data (sorted), with names from `human_labels` where it is aligned with `labels`."""
    names: dict[str, str] = {}
    for ds in splits.values():
        rows, values = _list_column(ds, "labels")
        mids = values.to_pylist()
        if "human_labels" in ds.column_names:
            hrows, hvals = _list_column(ds, "human_labels")
            if np.array_equal(rows, hrows):  # names only where they pair one-to-one with the MIDs
                for m, h in zip(mids, hvals.to_pylist()):
                    if m:
                        names.setdefault(m, h or m)
        for m in mids:
            if m:
                names.setdefault(m, m)
    order = sorted(names)
    return order, [names[m] for m in order]


def label_matrix(ds: Any, mids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) bool label matrix of a split over `mids`, and (N,) bool: clip carries a MID outside `mids`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    rows, values = _list_column(ds, "labels")
    idx = pc.index_in(values, value_set=pa.array(list(mids), type=pa.string()))
    idx = idx.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    n = ds.num_rows
    y = np.zeros((n, len(mids)), dtype=bool)
    known = idx >= 0
    y[rows[known], idx[known]] = True
    unknown = np.zeros(n, dtype=bool)
    unknown[rows[~known]] = True
    return y, unknown
