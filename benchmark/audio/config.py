"""Constants of AST's input path and model sizes (torch-free, so task modules can name them at import time)."""
from __future__ import annotations

from typing import Any

SAMPLE_RATE = 16_000
FRAME_SHIFT = 160  # 10 ms
FRAME_LENGTH = 400  # 25 ms
N_FFT = 512  # Kaldi rounds the frame up to a power of two
NUM_MEL_BINS = 128
AUDIOSET_MEAN = -4.2677393  # AST's AudioSet fbank statistics
AUDIOSET_STD = 4.5689974
MASK_VALUE = (0.0 - AUDIOSET_MEAN) / (2 * AUDIOSET_STD)  # AST masks (and pads) the fbank with 0 before normalizing

# AST / DeiT sizes. `frames` is the fbank length (1024 = 10.24 s); `deit` is the timm ImageNet model to adapt.
AST_SIZES: dict[str, dict[str, Any]] = {
    "base": dict(hidden=768, layers=12, heads=12, mlp=3072, frames=1024, deit="deit_base_distilled_patch16_384"),
    "small": dict(hidden=384, layers=12, heads=6, mlp=1536, frames=1024, deit="deit_small_distilled_patch16_224"),
    # CPU runs and tests: 1.28 s of audio, no ImageNet counterpart
    "tiny": dict(hidden=32, layers=1, heads=2, mlp=64, frames=128, deit=None),
}
