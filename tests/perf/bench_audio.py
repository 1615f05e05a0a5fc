"""Section `audio`: AST's CPU input pipeline per clip (decode -> resample in the loader; the batched fbank, which
runs in the model on the accelerator, timed here on the CPU) and clips/s through a DataLoader."""
from __future__ import annotations

import math
import os
import time
import warnings
from typing import Any, Optional, Sequence

import numpy as np

from .common import best_times, fmt_x, load_avg, print_table


def make_flac_clips(directory: str, n: int, seconds: float = 10.0, sr: int = 48_000, seed: int = 0) -> list[str]:
    """n FLAC files (24-bit, mono, AudioSet's usual format) of 1/f noise under a few harmonic tones: compresses
    like real recordings (~60 % of the PCM size), unlike white noise."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    s = int(sr * seconds)
    t = np.arange(s) / sr
    hz = np.fft.rfftfreq(s, 1.0 / sr)
    paths = []
    for i in range(n):
        spec = (rng.standard_normal(hz.size) + 1j * rng.standard_normal(hz.size)) / np.sqrt(np.maximum(hz, 20.0))
        w = np.fft.irfft(spec, n=s)
        w *= 0.05 / w.std()
        for f0 in rng.uniform(100, 2000, size=3):
            w += 0.1 * np.sin(2 * np.pi * f0 * t + rng.uniform(0, 6.3)) * (0.5 + 0.5 * np.sin(2 * np.pi * t / 3))
        path = os.path.join(directory, f"clip{i:03d}.flac")
        sf.write(path, np.clip(w, -1, 1).astype(np.float32), sr, subtype="PCM_24")
        paths.append(path)
    return paths


def _children_cpu(pids: Sequence[int]) -> Optional[float]:
    """CPU seconds (user + system) used so far by these processes, from /proc (Linux); None elsewhere."""
    total = 0.0
    try:
        for pid in pids:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None
    return total


def bench_audio(large: bool = False) -> list[dict[str, Any]]:
    """AST's CPU data pipeline per clip (FLAC decode -> soxr to 16 kHz; the batched fbank on the CPU, vs
    torchaudio's kaldi.fbank and transformers' ASTFeatureExtractor), and clips/s through a DataLoader with 0, 1,
    2 workers (decode + resample, and MixUp's partner decode)."""
    import tempfile

    import pyarrow as pa
    import torch
    from torch.utils.data import DataLoader

    from benchmark.audio import AudioClipDataset, EncodedClips, Fbank, kaldi_reference, read_audio, stack_waves, to_16k

    n_clips = 96 if large else 48
    fb = Fbank(frames=1024)
    rows: list[dict[str, Any]] = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            paths = make_flac_clips(tmp, n_clips)
            blobs = [open(p, "rb").read() for p in paths]
            mb = np.mean([len(b) for b in blobs]) / 2**20
            waves48 = [read_audio(b, max_seconds=fb.max_samples / 16_000)[0] for b in blobs]
            waves16 = [to_16k(w, 48_000, fb.max_samples) for w in waves48]
            batch16 = stack_waves([torch.from_numpy(w) for w in waves16], fb.max_samples)
            try:
                from transformers import ASTFeatureExtractor

                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # its Kaldi mel filters warn about an empty lowest filter
                    fe = ASTFeatureExtractor()

                def ast_fe() -> list:
                    return [fe(w, sampling_rate=16_000, return_tensors="np") for w in waves16]
            except ImportError:
                ast_fe = None
            per = {
                "decode (soundfile, FLAC 48 kHz 24-bit)":
                    lambda: [read_audio(b, max_seconds=fb.max_samples / 16_000) for b in blobs],
                "resample 48 -> 16 kHz (soxr)": lambda: [to_16k(w, 48_000, fb.max_samples) for w in waves48],
                "fbank, ours (benchmark.audio.Fbank, batched torch)": lambda: fb(*batch16),
                "fbank, torchaudio kaldi.fbank (AST's reference, per clip)":
                    lambda: [kaldi_reference(torch.from_numpy(w), fb.frames) for w in waves16],
            }
            if ast_fe is not None:
                per["fbank, transformers ASTFeatureExtractor"] = ast_fe
            ms = {k: 1e3 * best_times(f)[1] / n_clips for k, f in per.items()}
            # the loader's work: the fbank runs in the model on the accelerator
            ours = ms["decode (soundfile, FLAC 48 kHz 24-bit)"] + ms["resample 48 -> 16 kHz (soxr)"]
            for k, v in ms.items():
                rows.append({"stage": k, "ms/clip CPU": f"{v:.1f}",
                             "vs ours": fmt_x(v / ms["fbank, ours (benchmark.audio.Fbank, batched torch)"])
                             if "fbank" in k else None, "_ms": v})
            mix = ms["decode (soundfile, FLAC 48 kHz 24-bit)"] + ms["resample 48 -> 16 kHz (soxr)"]
            train = ours + 0.5 * mix  # MixUp with p = 0.5 decodes a partner clip for half the clips (AST)
            rows.append({"stage": "loader total per clip, evaluation (decode + resample)", "ms/clip CPU": f"{ours:.1f}",
                         "cores for 350 clips/s": f"{350 * ours / 1e3:.1f}", "_ms": ours})
            rows.append({"stage": "loader total per clip, training (MixUp p = 0.5: a partner decoded for half)",
                         "ms/clip CPU": f"{train:.1f}", "cores for 350 clips/s": f"{350 * train / 1e3:.1f}",
                         "_ms": train})
            print_table(f"audio: per-clip CPU cost of AST's input pipeline ({n_clips} generated 10 s FLAC clips, "
                        f"{mb:.2f} MB each; best of 3; 1 thread); cores = 350 clips/s (AST-base on an H100, the "
                        f"issue's figure) x ms/clip, assuming perfect scaling over workers", rows,
                        ["stage", "ms/clip CPU", "vs ours", "cores for 350 clips/s"])
            table = pa.table({"audio": pa.array([{"bytes": b, "path": None} for b in blobs],
                                                type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))})
            clips = EncodedClips(table, np.arange(n_clips), fb.max_samples)
            targets = np.zeros((n_clips, 527), dtype=bool)
            loader_rows = []
            for mixup in (0.0, 0.5):
                ds = AudioClipDataset(clips, targets, mixup=mixup)
                for workers in (0, 1, 2):
                    dl = DataLoader(ds, batch_size=12, shuffle=False, num_workers=workers,
                                    persistent_workers=workers > 0)
                    t0 = time.perf_counter()
                    it = iter(dl)
                    sum(1 for _ in it)  # first pass: starts the workers
                    t_first = time.perf_counter() - t0
                    pids = [w.pid for w in getattr(it, "_workers", [])]  # persistent: the same workers next pass
                    wall, cpu = math.inf, math.inf
                    for _ in range(2):
                        c0, w0, t0 = time.process_time(), _children_cpu(pids), time.perf_counter()
                        sum(1 for _ in dl)
                        wall = min(wall, time.perf_counter() - t0)
                        w1 = _children_cpu(pids)
                        if w0 is not None and w1 is not None:
                            cpu = min(cpu, time.process_time() - c0 + w1 - w0)
                    del dl, it
                    loader_rows.append({"MixUp p": mixup, "workers": workers,
                                        "clips/s (wall)": f"{n_clips / wall:.1f}",
                                        "ms/clip CPU (all processes)": None if cpu == math.inf else
                                        f"{1e3 * cpu / n_clips:.1f}",
                                        "cores for 350 clips/s": None if cpu == math.inf else
                                        f"{350 * cpu / n_clips:.1f}",
                                        "first pass s (worker start)": f"{t_first:.2f}",
                                        "load avg": load_avg(), "_clips_per_s": n_clips / wall,
                                        "_cpu_per_clip_s": None if cpu == math.inf else cpu / n_clips})
            print_table(f"audio: clips/s through DataLoader(AudioClipDataset(EncodedClips)), batch 12, {n_clips} "
                        f"clips, a pass with persistent workers (best of 2); CPU = main process + workers "
                        f"(/proc); this machine has {os.cpu_count()} cores shared with other jobs, so the wall "
                        f"clips/s cannot show scaling: the CPU per clip can", loader_rows,
                        ["MixUp p", "workers", "clips/s (wall)", "ms/clip CPU (all processes)",
                         "cores for 350 clips/s", "first pass s (worker start)", "load avg"])
            rows += loader_rows
    finally:
        torch.set_num_threads(threads)
    return rows
