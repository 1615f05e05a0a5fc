"""Clip sources: 16 kHz waveforms by position, from memory, encoded audio in an Arrow table, audio files, or an
on-disk cache in front of another source (torch-free)."""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import numpy as np

from .decode import AudioError, decode_clip, probe_audio


class Clips:
    """Random access to 16 kHz mono waveforms (at most `max_samples` long) by position."""

    max_samples: int

    def __len__(self) -> int:
        raise NotImplementedError

    def wave(self, i: int) -> np.ndarray:
        raise NotImplementedError


def header_check(n: int, source: Callable[[int], Any], missing: str,
                 describe: Callable[[int, Optional[Exception]], str]) -> tuple[np.ndarray, Optional[str]]:
    """Read the header of clips 0..n-1: (reason per clip: '' ok / `missing` where `source(i)` is None /
    'undecodable audio', the first problem described by `describe(i, error or None)`).

    >>> header_check(2, lambda i: None if i else b"junk", "no audio", lambda i, e: f"clip {i}")[0].tolist()
    ['undecodable audio', 'no audio']
    """
    reasons = np.full(n, "", dtype=object)
    first = None
    for i in range(n):
        src = source(i)
        if src is None:
            reasons[i] = missing
            first = first or describe(i, None)
            continue
        try:
            probe_audio(src)
        except AudioError as exc:
            reasons[i] = "undecodable audio"
            first = first or describe(i, exc)
    return reasons, first


class ArrayClips(Clips):
    """Waveforms held in memory, (N, S) float32 with per-clip lengths (generated audio).

    >>> ArrayClips(np.zeros((2, 10), np.float32), lengths=np.array([10, 4])).wave(1).shape
    (4,)
    """

    def __init__(self, waves: np.ndarray, lengths: Optional[np.ndarray] = None) -> None:
        self.waves = np.asarray(waves, dtype=np.float32)
        if self.waves.ndim != 2:
            raise ValueError(f"waves must be (clips, samples), got shape {self.waves.shape}")
        self.lengths = (np.full(len(self.waves), self.waves.shape[1], dtype=np.int64) if lengths is None
                        else np.asarray(lengths, dtype=np.int64))
        if self.lengths.shape != (len(self.waves),):
            raise ValueError(f"lengths must have one entry per clip ({len(self.waves)}), got {self.lengths.shape}")
        self.max_samples = int(self.waves.shape[1])

    def __len__(self) -> int:
        return int(self.waves.shape[0])

    def wave(self, i: int) -> np.ndarray:
        return self.waves[i, : self.lengths[i]]


class EncodedClips(Clips):
    """Encoded audio (struct {bytes, path}) in a column of an Arrow table, decoded on access.

    `table` is a `datasets` table (memory-mapped; it pickles by file reference, so DataLoader workers share it);
    `rows` selects and orders the clips. A clip whose header was readable but whose body fails to decode mid-run
    is returned as silence with a warning (tasks check headers at load time; `cache_dir` decodes every clip).
    """

    def __init__(self, table: Any, rows: np.ndarray, max_samples: int, column: str = "audio",
                 names: Optional[Sequence[str]] = None) -> None:
        self.table = table
        self.rows = np.asarray(rows, dtype=np.int64)
        self.max_samples = int(max_samples)
        self.column = column
        self.names = list(names) if names is not None else None
        self._chunks: Optional[tuple[list, np.ndarray, list]] = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_chunks"] = None  # pyarrow views are rebuilt in each worker
        return state

    def __len__(self) -> int:
        return int(self.rows.size)

    def _column(self):
        if self._chunks is None:
            col = self.table.column(self.column)
            chunks = list(col.chunks)
            starts = np.cumsum([0] + [len(c) for c in chunks])
            self._chunks = (chunks, starts, [None] * len(chunks))
        return self._chunks

    def blob(self, i: int) -> Any:
        """The encoded bytes (a zero-copy pyarrow Buffer) or an existing file path of clip i, else None."""
        chunks, starts, fields = self._column()
        row = int(self.rows[i])
        k = int(np.searchsorted(starts, row, side="right")) - 1
        if fields[k] is None:
            fields[k] = (chunks[k].field("bytes"), chunks[k].field("path"))
        data, path = fields[k]
        j = row - int(starts[k])
        if data[j].is_valid:
            buf = data[j].as_buffer()
            if buf.size:
                return buf
        if path[j].is_valid:
            p = path[j].as_py()
            if p and os.path.isfile(p):
                return p
        return None

    def name(self, i: int) -> str:
        return self.names[i] if self.names is not None else f"row {int(self.rows[i])}"

    def check(self) -> tuple[np.ndarray, Optional[str]]:
        """Header check of every clip: (reason per clip: '' ok / 'no audio' / 'undecodable audio', first error)."""
        return header_check(len(self), self.blob, "no audio",
                            lambda i, exc: f"clip '{self.name(i)}' has no audio bytes" if exc is None
                            else f"clip '{self.name(i)}': {exc}")

    def wave(self, i: int) -> np.ndarray:
        src = self.blob(i)
        try:
            if src is None:
                raise AudioError("no audio bytes")
            return decode_clip(src, self.max_samples)
        except AudioError as exc:
            warnings.warn(f"clip '{self.name(i)}' could not be decoded ({exc}); used as silence", RuntimeWarning)
            return np.zeros(0, dtype=np.float32)


class FileClips(Clips):
    """Audio files (WAV, FLAC, OGG: whatever soundfile reads) by path, decoded to 16 kHz mono on access.

    A file whose header was readable but whose body fails mid-run is returned as silence with a warning (tasks
    check every header at load time with `check`).
    """

    def __init__(self, paths: Sequence[str], max_samples: int) -> None:
        self.paths = np.asarray([os.fspath(p) for p in paths], dtype=object)
        self.max_samples = int(max_samples)

    def __len__(self) -> int:
        return int(self.paths.size)

    def check(self) -> tuple[np.ndarray, Optional[str]]:
        """(reason per clip: '' ok / 'missing audio' / 'undecodable audio', first problem in words)."""
        return header_check(len(self), lambda i: self.paths[i] if os.path.isfile(self.paths[i]) else None,
                            "missing audio",
                            lambda i, exc: f"no file {self.paths[i]}" if exc is None else f"{self.paths[i]}: {exc}")

    def wave(self, i: int) -> np.ndarray:
        try:
            return decode_clip(self.paths[i], self.max_samples)
        except AudioError as exc:
            warnings.warn(f"clip '{self.paths[i]}' could not be decoded ({exc}); used as silence", RuntimeWarning)
            return np.zeros(0, dtype=np.float32)


class ConcatClips(Clips):
    """Several sources one after the other (an evaluation pool drawn from two splits)."""

    def __init__(self, parts: Sequence[Clips]) -> None:
        self.parts = list(parts)
        self.starts = np.cumsum([0] + [len(p) for p in self.parts])
        self.max_samples = max((p.max_samples for p in self.parts), default=0)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def wave(self, i: int) -> np.ndarray:
        k = int(np.searchsorted(self.starts, i, side="right")) - 1
        return self.parts[k].wave(i - int(self.starts[k]))


class CachedClips(Clips):
    """On-disk cache of decoded 16 kHz waveforms in front of another source, filled on first access.

    Memory-mapped .npy files: (N, max_samples) int16 scaled to each clip's peak (so quiet clips keep 16 bits),
    the scales, lengths and a done flag per clip. Workers fill distinct rows of the shared mapping; a row counts
    only once its flag is written after its data, so an interrupted run never reads a half-written clip.
    For small subsets: 330 KB per 10.24 s clip.
    """

    def __init__(self, inner: Clips, directory: str | Path, key: str) -> None:
        self.inner = inner
        self.max_samples = inner.max_samples
        self.dir = Path(directory)
        self.key = key
        self._maps: Optional[tuple[np.ndarray, ...]] = None
        self._create()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_maps"] = None
        return state

    def __len__(self) -> int:
        return len(self.inner)

    def _files(self) -> list[tuple[Path, tuple[int, ...], type]]:
        n = len(self.inner)
        return [(self.dir / f"{self.key}.{name}.npy", shape, dtype) for name, shape, dtype in
                (("waves", (n, self.max_samples), np.int16), ("scales", (n,), np.float32),
                 ("lengths", (n,), np.int64), ("done", (n,), np.uint8))]

    def _create(self) -> None:
        """Create the files if missing; `os.link` publishes each atomically (concurrent processes agree)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for path, shape, dtype in self._files():
            if path.exists():
                continue
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            np.lib.format.open_memmap(tmp, mode="w+", dtype=dtype, shape=shape).flush()  # sparse: zeros
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)

    def _open(self) -> tuple[np.ndarray, ...]:
        if self._maps is None:
            self._maps = tuple(np.load(path, mmap_mode="r+") for path, _, _ in self._files())
        return self._maps

    def wave(self, i: int) -> np.ndarray:
        waves, scales, lengths, done = self._open()
        if done[i]:
            return waves[i, : lengths[i]].astype(np.float32) * scales[i]
        w = self.inner.wave(i)
        scale = float(np.abs(w).max()) / 32767.0 if w.size else 0.0
        if scale > 0:
            waves[i, : w.size] = np.round(w / scale).astype(np.int16)
        scales[i], lengths[i] = scale, w.size
        done[i] = 1  # written last: the row is complete
        return w


def cache_key(*parts: Any) -> str:
    """Stable short hash naming a cache file (source identity, split, rows, length).

    >>> cache_key("hub:x", "train", 163840)
    '445fbeb05420f68040c8'
    """
    h = hashlib.sha256()
    for p in parts:
        h.update(p.tobytes() if isinstance(p, np.ndarray) else str(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:20]
