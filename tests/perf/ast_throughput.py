"""AST training throughput on one accelerator: clips/s and MFU of the train step, with and without the audio
data loader, and the batched fbank's own cost. One prepared script for a GPU machine:

    python -m tests.perf.ast_throughput            # AST-base, bf16, batch 12 and 48 (GPU); exits in < 5 min
    python -m tests.perf.ast_throughput --tiny     # tiny AST, fp32, seconds (automatic without a GPU)

Rows (one table):
- `fbank`: the batched Kaldi fbank alone on the device (waveforms already there), per batch.
- `model`: forward + backward + Adam on ready fbanks already on the device (the model's speed).
- `model+fbank`: the engine's device path: waveforms on the device -> batched fbank -> SpecAugment -> step.
- `loader`: everything, fed by a DataLoader: 10 s FLAC clips at 48 kHz decoded with soundfile, resampled with
  soxr, MixUp (p = 0.5) on waveforms in the workers, pinned host-to-device copies, then the device path.
MFU = achieved FLOP/s / the GPU's dense bf16 peak, training FLOPs = 3 x the forward matmul FLOPs
(`benchmark.audio.ast_flops_per_clip`; softmax, norms, the fbank and the optimizer are not counted).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any, Callable, Iterator, Optional

import numpy as np

from .bench_audio import make_flac_clips

# dense bf16 tensor-core peaks (TFLOP/s, no sparsity), by device-name substring, most specific first
PEAK_BF16_TFLOPS = [("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("A100", 312.0), ("L40S", 362.0),
                    ("L4", 121.0), ("A10G", 70.0), ("V100", 125.0)]
MODES = ("fbank", "model", "model+fbank", "loader")


def peak_tflops(device_name: str, override: Optional[float] = None) -> Optional[float]:
    """Dense bf16 peak of a GPU by name (None when unknown or a CPU).

    >>> peak_tflops("NVIDIA H200"), peak_tflops("cpu")
    (989.0, None)
    """
    if override:
        return float(override)
    return next((v for k, v in PEAK_BF16_TFLOPS if k in device_name), None)


def _timed(step: Callable[[], Any], steps: int, warmup: int, sync: Callable[[], None]) -> float:
    """Seconds per call: the total over `steps` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return (time.perf_counter() - t0) / steps


def main(argv: Optional[list[str]] = None) -> int:
    """Run the measurements and print one table; returns 0."""
    p = argparse.ArgumentParser(prog="python -m tests.perf.ast_throughput", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tiny", action="store_true", help="tiny AST, fp32, few steps (the default without a GPU)")
    p.add_argument("--batch-sizes", default=None, help="comma list (default 12,48: AST's and a larger one; tiny 4)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per row (default 20; tiny 2)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3; tiny 1)")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers (default CPUs - 1, <= 16; tiny 0)")
    p.add_argument("--clips", type=int, default=None, help="distinct FLAC clips the loader cycles (default 96)")
    p.add_argument("--modes", default=",".join(MODES), help=f"comma list of {', '.join(MODES)}")
    p.add_argument("--compile", action="store_true", help="torch.compile the model first")
    p.add_argument("--peak-tflops", type=float, default=None, help="peak FLOP/s for MFU (default: by GPU name)")
    p.add_argument("--time-limit", type=float, default=270.0, help="skip the remaining rows after this many s")
    args = p.parse_args(argv)

    import torch
    from tabulate import tabulate
    from torch.utils.data import DataLoader, RandomSampler

    from benchmark.audio import (ASTClassifier, AudioClipDataset, Clips, Fbank, ast_config, ast_flops_per_clip,
                                 decode_clip)

    t_start = time.perf_counter()
    cuda = torch.cuda.is_available()
    tiny = args.tiny or not cuda
    device = torch.device("cuda" if cuda else "cpu")
    dtype = torch.float32 if tiny else torch.bfloat16
    sizes = [int(b) for b in (args.batch_sizes or ("4" if tiny else "12,48")).split(",") if b.strip()]
    steps = args.steps if args.steps is not None else (2 if tiny else 20)
    warmup = args.warmup if args.warmup is not None else (1 if tiny else 3)
    workers = args.workers if args.workers is not None else (0 if tiny else max(0, min(16, (os.cpu_count() or 1) - 1)))
    n_clips = args.clips or (4 if tiny else 96)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or steps < 1 or warmup < 0 or not sizes or min(sizes) < 1:
        p.error(f"--modes must be among {', '.join(MODES)} (got {', '.join(bad)}); --steps >= 1, --warmup >= 0, "
                f"--batch-sizes >= 1" if bad else "--steps >= 1, --warmup >= 0 and --batch-sizes >= 1")
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    cfg = ast_config("tiny" if tiny else "base", 527)
    train_flops = 3.0 * ast_flops_per_clip(cfg)
    name = torch.cuda.get_device_name(device) if cuda else "cpu"
    peak = peak_tflops(name, args.peak_tflops)
    fbank = Fbank(cfg.max_length)
    freqm, timem = 48, int(round(192 * cfg.max_length / 1024))

    class BytesClips(Clips):
        def __init__(self, blobs: list[bytes]) -> None:
            self.blobs, self.max_samples = blobs, fbank.max_samples

        def __len__(self) -> int:
            return len(self.blobs)

        def wave(self, i: int) -> np.ndarray:
            return decode_clip(self.blobs[i], self.max_samples)

    blobs: list[bytes] = []
    if "loader" in modes:  # AudioSet-like clips: 24-bit FLAC at 48 kHz, 10 s (tiny: the model's 1.28 s)
        with tempfile.TemporaryDirectory() as tmp:
            for path in make_flac_clips(tmp, n_clips, seconds=fbank.max_samples / 16_000 if tiny else 10.0):
                with open(path, "rb") as f:
                    blobs.append(f.read())
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    for bs in sizes:
        for mode in modes:
            if time.perf_counter() - t_start > args.time_limit:
                skipped.append(f"{mode} @ {bs}")
                continue
            torch.manual_seed(0)
            model = opt = run = None
            if mode != "fbank":  # AST-base is 86 M parameters: built only where a row trains it
                model = ASTClassifier(cfg, Fbank(cfg.max_length), freqm, timem).to(device).train()
                opt = torch.optim.Adam(model.parameters(), lr=1e-5, betas=(0.95, 0.999), weight_decay=5e-7)
                run = torch.compile(model) if args.compile else model
            waves = (0.1 * torch.randn(bs, fbank.max_samples, device=device))
            lengths = torch.full((bs,), fbank.max_samples, device=device)
            y = (torch.rand(bs, 527, device=device) < 0.01).float()

            def train_step(x: Any, target: torch.Tensor) -> None:
                with torch.autocast(device.type, dtype=dtype, enabled=dtype != torch.float32):
                    logits = run(x)
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), target)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)

            batches: Optional[Iterator] = None
            if mode == "fbank":
                fb = fbank.to(device)
                step = lambda: fb(waves, lengths)  # noqa: E731
            elif mode == "model":
                with torch.no_grad():
                    ready = fbank.to(device)(waves, lengths)
                step = lambda: train_step(ready, y)  # noqa: E731
            elif mode == "model+fbank":
                step = lambda: train_step((waves, lengths), y)  # noqa: E731
            else:
                labels = np.random.default_rng(1).random((len(blobs), 527)) < 0.01
                ds = AudioClipDataset(BytesClips(blobs), labels, mixup=0.5)
                dl = DataLoader(ds, batch_size=bs, sampler=RandomSampler(ds, replacement=True, num_samples=10 ** 9),
                                num_workers=workers, pin_memory=cuda, drop_last=True, persistent_workers=workers > 0,
                                prefetch_factor=4 if workers else None)
                batches = iter(dl)

                def step() -> None:
                    (w, n), target = next(batches)
                    train_step((w.to(device, non_blocking=True), n.to(device, non_blocking=True)),
                               target.to(device, non_blocking=True))
            dt = _timed(step, steps, warmup, sync)
            flops = 0.0 if mode == "fbank" else bs / dt * train_flops / 1e12
            rows.append({"mode": mode, "batch": bs, "clips/s": f"{bs / dt:.1f}", "ms/step": f"{1e3 * dt:.2f}",
                         "ms/clip": f"{1e3 * dt / bs:.3f}", "TFLOP/s": f"{flops:.2f}" if flops else "-",
                         "MFU": f"{100 * flops / peak:.1f}%" if peak and flops else "-"})
            del model, opt, run, batches
            if cuda:
                torch.cuda.empty_cache()
    print(f"AST-{'tiny' if tiny else 'base'} ({cfg.num_hidden_layers} layers, width {cfg.hidden_size}, "
          f"{cfg.max_length} frames), {'fp32' if dtype == torch.float32 else 'bf16'} on {name}; "
          f"{train_flops / 1e9:.4g} GFLOP per training clip; peak {peak or 'n/a'} TFLOP/s; loader workers "
          f"{workers}; {steps} timed steps after {warmup}")
    print(tabulate(rows, headers="keys", tablefmt="github", disable_numparse=True))
    if skipped:
        print(f"skipped (over --time-limit {args.time_limit:g} s): {', '.join(skipped)}")
    print(f"total {time.perf_counter() - t_start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
