"""Decoding audio for AST: soundfile reads the encoded clip (FLAC, WAV, OGG ...), soxr resamples it to 16 kHz
mono. This is all DataLoader workers do; the fbank runs batched in the model (`features.Fbank`)."""
from __future__ import annotations

import io
import math
import os
from typing import Any, Optional

import numpy as np

from .config import SAMPLE_RATE


class AudioError(ValueError):
    """A clip that cannot be decoded; tasks skip and count it."""


def _open(src: Any):
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src)
    return io.BytesIO(src)  # bytes, memoryview or pyarrow Buffer


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def read_audio(src: Any, max_seconds: Optional[float] = None) -> tuple[np.ndarray, int]:
    """Decode an encoded file (bytes, buffer or path) with soundfile: mono float32 in [-1, 1] and its sample rate.

    Only the first `max_seconds` are decoded when given. Raises AudioError when it cannot be decoded.

    >>> import io, soundfile as sf
    >>> buf = io.BytesIO(); sf.write(buf, np.zeros((4_410, 2), np.float32), 44_100, format="FLAC")
    >>> wave, sr = read_audio(buf.getvalue()); wave.shape, sr
    ((4410,), 44100)
    """
    import soundfile as sf

    if max_seconds is not None and not max_seconds > 0:
        raise ValueError(f"max_seconds must be > 0, got {max_seconds}")
    try:
        with sf.SoundFile(_open(src)) as f:
            sr = int(f.samplerate)
            if sr <= 0:
                raise AudioError(f"invalid sample rate {sr}")
            n = -1 if max_seconds is None else int(math.ceil(max_seconds * sr)) + 64
            data = f.read(frames=n, dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as exc:  # libsndfile reports every format problem as its own error type
        raise AudioError(_one_line(exc)) from None
    if data.shape[0] == 0:
        raise AudioError("no samples")
    return (data[:, 0] if data.shape[1] == 1 else data.mean(axis=1)), sr


def probe_audio(src: Any) -> int:
    """Sample rate from the header only (cheap: nothing is decoded). Raises AudioError.

    >>> import io, numpy as np, soundfile as sf
    >>> buf = io.BytesIO(); sf.write(buf, np.zeros(480, np.float32), 48_000, format="FLAC")
    >>> probe_audio(buf.getvalue())
    48000
    """
    import pyarrow as pa
    import soundfile as sf

    try:
        f = pa.BufferReader(src) if isinstance(src, pa.Buffer) else _open(src)
        info = sf.info(f)
    except Exception as exc:
        raise AudioError(_one_line(exc)) from None
    if info.samplerate <= 0 or info.frames == 0:
        raise AudioError(f"invalid header (sample rate {info.samplerate}, {info.frames} frames)")
    return int(info.samplerate)


def to_16k(wave: np.ndarray, sr: int, max_samples: int) -> np.ndarray:
    """Resample to 16 kHz with soxr and cut to `max_samples` (cut first: only what is kept is resampled).

    >>> to_16k(np.zeros(48_000, np.float32), 48_000, max_samples=8_000).shape
    (8000,)
    """
    import soxr

    if sr <= 0 or max_samples < 0:
        raise ValueError(f"sr must be > 0 and max_samples >= 0, got sr={sr}, max_samples={max_samples}")
    if sr != SAMPLE_RATE:
        keep = int(math.ceil(max_samples * sr / SAMPLE_RATE)) + 64
        wave = soxr.resample(wave[:keep], sr, SAMPLE_RATE)
    return np.ascontiguousarray(wave[:max_samples], dtype=np.float32)


def decode_clip(src: Any, max_samples: int) -> np.ndarray:
    """Encoded file -> 16 kHz mono float32, at most `max_samples` long. Raises AudioError.

    >>> import io, soundfile as sf
    >>> buf = io.BytesIO(); sf.write(buf, np.zeros(48_000, np.float32), 48_000, format="FLAC")
    >>> decode_clip(buf.getvalue(), max_samples=10 * 16_000).shape
    (16000,)
    """
    if max_samples < 1:
        raise ValueError(f"max_samples must be >= 1, got {max_samples}")
    wave, sr = read_audio(src, max_seconds=max_samples / SAMPLE_RATE)
    return to_16k(wave, sr, max_samples)


def fit_length(wave: np.ndarray, n: int) -> np.ndarray:
    """Zero-pad or cut to n samples (MixUp's partner takes the first clip's length, as AST does).

    >>> fit_length(np.ones(3, np.float32), 5).tolist()
    [1.0, 1.0, 1.0, 0.0, 0.0]
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    if wave.size >= n:
        return wave[:n]
    return np.pad(wave, (0, n - wave.size))
