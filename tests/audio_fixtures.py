"""Tiny AudioSet-schema parquet data (agkphysics/AudioSet layout) for the audio tests."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

# real AudioSet MIDs (class_labels_indices.csv) with a class-specific tone each, so a model can learn something
CLASSES = [("/m/09x0r", "Speech", 300.0), ("/m/04rlf", "Music", 660.0), ("/m/0bt9lr", "Dog", 1200.0),
           ("/m/05tny_", "Bark", 1800.0), ("/m/07yv9", "Vehicle", 2600.0), ("/m/03kmc9", "Siren", 3500.0)]
TEST_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
            "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"}


def flac_bytes(wave: np.ndarray, sr: int, fmt: str = "FLAC", subtype: str = "PCM_24") -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, wave, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def clip(labels: list[int], sr: int, seconds: float, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(sr * seconds)) / sr
    w = 0.01 * rng.standard_normal(t.size)
    for j in labels:
        w += 0.3 * np.sin(2 * np.pi * CLASSES[j][2] * t + rng.uniform(0, 6.3))
    return (w / max(1.0, np.abs(w).max())).astype(np.float32)


def rows(n: int, seed: int, broken: int = 0, unknown_mid: int = 0, raw_pcm: bool = False,
         seconds: float = 1.5) -> list[dict]:
    """n clips alternating 48 kHz and 44.1 kHz FLAC (24-bit), 1-3 labels each (class i % 6 always); the first
    `broken` clips hold bytes that are not audio, the next `unknown_mid` carry a MID outside the vocabulary;
    `raw_pcm`: headerless audio (no sample rate to read)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        sr = 48_000 if i % 2 == 0 else 44_100
        extra = rng.choice(len(CLASSES), size=int(rng.integers(0, 3)), replace=False)
        labels = sorted({i % len(CLASSES), *(int(j) for j in extra)})  # every class in every split
        wave = clip(labels, sr, seconds, rng)
        if raw_pcm:
            data = flac_bytes(wave, sr, fmt="RAW", subtype="PCM_16")
        elif i < broken:
            data = b"this is not audio" + bytes(rng.integers(0, 256, 2000, dtype=np.uint8))
        else:
            data = flac_bytes(wave, sr)
        mids = [CLASSES[j][0] for j in labels]
        names = [CLASSES[j][1] for j in labels]
        if broken <= i < broken + unknown_mid:
            mids, names = mids + ["/m/not_a_class"], names + ["Unknown"]
        out.append({"video_id": f"vid{seed}_{i:03d}", "audio": {"bytes": data, "path": f"vid{seed}_{i:03d}.flac"},
                    "labels": mids, "human_labels": names})
    return out


def write_audioset(root: Path, n_train: int = 14, n_eval: int = 6, broken: int = 1, unknown_mid: int = 1,
                   raw_pcm: bool = False, drop_labels: bool = False) -> Path:
    """root/data/bal_train/00.parquet and root/data/eval/00.parquet in agkphysics/AudioSet's schema."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for split, n, seed, bad, unk in (("bal_train", n_train, 1, broken, unknown_mid), ("eval", n_eval, 2, 0, 0)):
        table = pa.Table.from_pylist(rows(n, seed, bad, unk, raw_pcm))
        if drop_labels:
            table = table.drop_columns(["labels"])
        d = root / "data" / split
        d.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, d / "00.parquet")
    return root
