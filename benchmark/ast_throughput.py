"""AST training throughput: forward + backward clips/s and MFU, with and without the audio data loader.

    python -m benchmark.ast_throughput                          # AST-base, bf16, batch 12 and 48 (GPU)
    python -m benchmark.ast_throughput --model-size tiny --steps 5 --clips 24   # CPU smoke test

"model": random fbanks already on the device (the model's speed). "loader": the real input path of the
audioset task: 10 s FLAC clips at 48 kHz decoded with soundfile, resampled with soxr, MixUp (p=0.5) on
waveforms, AST fbank in DataLoader workers, pinned host-to-device copies, SpecAugment on the device.
MFU = achieved FLOP/s / peak dense bf16 FLOP/s, with training FLOPs = 3 x the forward matmul FLOPs
(`benchmark.audio.ast_flops_per_clip`; attention softmax, norms and the optimizer are not counted).
"""
from __future__ import annotations

import argparse
import io
import time
from typing import Optional

import numpy as np
import torch

from .audio import (AST_SIZES, ASTClassifier, AudioClipDataset, Clips, Fbank, ast_config, ast_flops_per_clip,
                    decode_clip, spec_augment)

# dense bf16 tensor-core peaks (TFLOP/s, no sparsity), by device-name substring, most specific first
PEAK_BF16_TFLOPS = [("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("A100", 312.0), ("L40S", 362.0),
                    ("L4", 121.0), ("A10G", 70.0), ("V100", 125.0)]


class BytesClips(Clips):
    """Encoded clips held in memory (the loader benchmark's stand-in for parquet rows)."""

    def __init__(self, blobs: list[bytes], max_samples: int) -> None:
        self.blobs, self.max_samples = blobs, max_samples

    def __len__(self) -> int:
        return len(self.blobs)

    def wave(self, i: int) -> np.ndarray:
        return decode_clip(self.blobs[i], self.max_samples)


def make_flac_clips(n: int, seconds: float = 10.0, sr: int = 48_000, seed: int = 0) -> list[bytes]:
    """n AudioSet-like FLAC files (24-bit, 48 kHz): noise plus a few tones, so FLAC cannot shortcut them."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    out = []
    for _ in range(n):
        w = 0.05 * rng.standard_normal(t.size)
        for f in rng.uniform(100, 6000, size=3):
            w += 0.2 * np.sin(2 * np.pi * f * t)
        buf = io.BytesIO()
        sf.write(buf, (w / np.abs(w).max()).astype(np.float32), sr, format="FLAC", subtype="PCM_24")
        out.append(buf.getvalue())
    return out


def peak_tflops(device: torch.device, override: Optional[float]) -> Optional[float]:
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS if k in name), None)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(model, opt, batches, steps: int, warmup: int, device, dtype, freqm: int, timem: int) -> float:
    """Seconds per training step (median-free: total over `steps` after `warmup` untimed steps)."""
    it = iter(batches)
    t0 = 0.0
    for i in range(warmup + steps):
        if i == warmup:
            sync(device)
            t0 = time.perf_counter()
        x, y = next(it)
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        x = spec_augment(x, freqm, timem)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
            logits = model(x)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), y)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    sync(device)
    return (time.perf_counter() - t0) / steps


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmark.ast_throughput", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-size", default="base", choices=tuple(AST_SIZES))
    p.add_argument("--batch-sizes", default="12,48", help="comma list (default 12,48: AST's and a larger one)")
    p.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first (cuDNN/autotune, allocator)")
    p.add_argument("--workers", type=int, default=-1, help="DataLoader workers (-1: CPUs - 1, at most 16)")
    p.add_argument("--clips", type=int, default=96, help="distinct FLAC clips the loader cycles through")
    p.add_argument("--dtype", default="bf16", choices=("bf16", "fp32"))
    p.add_argument("--mode", default="model,loader", help="model (device-resident inputs), loader, or both")
    p.add_argument("--compile", action="store_true", help="torch.compile the model first")
    p.add_argument("--peak-tflops", type=float, default=None, help="peak FLOP/s for MFU (default: by GPU name)")
    args = p.parse_args(argv)

    import os

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    workers = args.workers if args.workers >= 0 else max(0, min(16, (os.cpu_count() or 1) - 1))
    cfg = ast_config(args.model_size, 527)
    train_flops = 3.0 * ast_flops_per_clip(cfg)
    peak = peak_tflops(device, args.peak_tflops)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}; AST-{args.model_size} ({cfg.num_hidden_layers} layers, width {cfg.hidden_size}, "
          f"{cfg.max_length} frames); {args.dtype}; {train_flops / 1e9:.4g} GFLOP per training clip; "
          f"peak {peak or 'n/a'} TFLOP/s; loader workers {workers}", flush=True)
    modes = [m.strip() for m in args.mode.split(",") if m.strip()]
    fbank = Fbank(cfg.max_length)
    blobs = make_flac_clips(args.clips) if "loader" in modes else []
    freqm, timem = 48, int(round(192 * cfg.max_length / 1024))
    print(f"{'mode':<8} {'batch':>5} {'clips/s':>9} {'ms/step':>9} {'TFLOP/s':>9} {'MFU':>7}")
    for bs in [int(b) for b in args.batch_sizes.split(",") if b.strip()]:
        for mode in modes:
            torch.manual_seed(0)
            model = ASTClassifier(cfg).to(device).train()
            opt = torch.optim.Adam(model.parameters(), lr=1e-5, betas=(0.95, 0.999), weight_decay=5e-7)
            run_model = torch.compile(model) if args.compile else model
            if mode == "model":
                x = torch.randn(bs, cfg.max_length, 128, device=device)
                y = (torch.rand(bs, 527, device=device) < 0.01).float()
                batches = iter(lambda: (x, y), None)
            else:
                labels = np.random.default_rng(1).random((len(blobs), 527)) < 0.01
                ds = AudioClipDataset(BytesClips(blobs, fbank.max_samples), labels, fbank, mixup=0.5)
                sampler = torch.utils.data.RandomSampler(ds, replacement=True, num_samples=10 ** 9)
                batches = torch.utils.data.DataLoader(ds, batch_size=bs, sampler=sampler, num_workers=workers,
                                                      pin_memory=device.type == "cuda", drop_last=True,
                                                      persistent_workers=workers > 0,
                                                      prefetch_factor=4 if workers else None)
            dt = measure(run_model, opt, batches, args.steps, args.warmup, device, dtype, freqm, timem)
            rate = bs / dt
            tflops = rate * train_flops / 1e12
            mfu = f"{100 * tflops / peak:.1f}%" if peak else "n/a"
            print(f"{mode:<8} {bs:>5} {rate:>9.1f} {1000 * dt:>9.1f} {tflops:>9.2f} {mfu:>7}", flush=True)
            del model, opt, run_model, batches
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
