"""AST's input features: a batched Kaldi log-mel fbank in torch (on the accelerator, inside the model) and
SpecAugment.

The frames, window, mel banks and normalization are those of AST's reference,
`torchaudio.compliance.kaldi.fbank(htk_compat=True, use_energy=False, window_type='hanning', num_mel_bins=128,
dither=0.0, frame_shift=10)` then zero-padding to `frames` and (x - mean) / (2 std); the mel filters come from
torchaudio's own `kaldi.get_mel_banks`. Batching all clips' frames into one FFT and one matmul is what makes it
fast; DataLoader workers then only decode and resample.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .config import (AUDIOSET_MEAN, AUDIOSET_STD, FRAME_LENGTH, FRAME_SHIFT, MASK_VALUE, N_FFT, NUM_MEL_BINS,
                     SAMPLE_RATE)

PREEMPHASIS = 0.97
LOW_FREQ = 20.0  # Kaldi's default lower mel edge; the upper edge is Nyquist
LOG_FLOOR = torch.finfo(torch.float32).eps  # Kaldi's floor before the log


def num_frames(n_samples: torch.Tensor | int) -> torch.Tensor | int:
    """Kaldi frames of a clip (snip_edges): 1 + (n - 400) // 160, 0 below one frame.

    >>> num_frames(16_000)
    98
    """
    if isinstance(n_samples, torch.Tensor):
        return torch.where(n_samples >= FRAME_LENGTH, 1 + (n_samples - FRAME_LENGTH) // FRAME_SHIFT, 0)
    return 0 if n_samples < FRAME_LENGTH else 1 + (int(n_samples) - FRAME_LENGTH) // FRAME_SHIFT


class Fbank(nn.Module):
    """Batched AST fbank: (waves (B, S) float, lengths (B,) int) -> (B, frames, bins) float32, normalized.

    Each clip gives Kaldi's frames of its own `lengths[b]` samples (25 ms Hann frames every 10 ms, DC removal,
    pre-emphasis 0.97, 512-point power spectrum, 128 Kaldi mel bins 20 Hz - 8 kHz, natural log), cut or padded
    with zeros to `frames` frames, then normalized with the dataset's mean and 2 x std (AST). Samples past a
    clip's length are ignored. Runs in float32 with autocast off (bf16 would lose the log's precision).

    >>> fb = Fbank(frames=100)
    >>> fb(torch.zeros(2, fb.max_samples), torch.tensor([16_000, 300])).shape
    torch.Size([2, 100, 128])
    """

    def __init__(self, frames: int = 1024, num_mel_bins: int = NUM_MEL_BINS, mean: float = AUDIOSET_MEAN,
                 std: float = AUDIOSET_STD) -> None:
        super().__init__()
        if int(frames) < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        if not std > 0:
            raise ValueError(f"std must be > 0, got {std}")
        from torchaudio.compliance.kaldi import get_mel_banks

        self.frames = int(frames)
        self.num_mel_bins = int(num_mel_bins)
        self.mean, self.std = float(mean), float(std)
        banks, _ = get_mel_banks(self.num_mel_bins, N_FFT, float(SAMPLE_RATE), LOW_FREQ, 0.0, 100.0, -500.0, 1.0)
        banks = nn.functional.pad(banks, (0, 1))  # Kaldi's banks leave out the Nyquist bin
        # not persistent: derived from the arguments, and keeps checkpoints loadable into a model without them
        self.register_buffer("mel", banks.T.contiguous().float(), persistent=False)  # (257, bins)
        self.register_buffer("window", torch.hann_window(FRAME_LENGTH, periodic=False), persistent=False)

    @property
    def max_samples(self) -> int:
        """Samples a clip is cut to: `frames` x 10 ms (1024 frames: 163,840 samples = 10.24 s)."""
        return self.frames * FRAME_SHIFT

    def log_mel(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, frames, bins) log-mel energies before normalization; 0 past each clip's last frame (AST's pad)."""
        if waves.dim() != 2 or lengths.shape != waves.shape[:1]:
            raise ValueError(f"waves must be (batch, samples) and lengths (batch,), got shapes "
                             f"{tuple(waves.shape)} and {tuple(lengths.shape)}")
        # on a CPU, chunks of ~512 frames stay in cache: 1.3-2x faster than the whole batch at 128 and 1024
        # frames per clip (measured, 1 thread); an accelerator takes the batch at once
        step = max(1, 512 // self.frames) if waves.device.type == "cpu" else max(1, waves.shape[0])
        parts = [self._log_mel(waves[i:i + step], lengths[i:i + step]) for i in range(0, waves.shape[0], step)]
        return torch.cat(parts) if len(parts) != 1 else parts[0]

    def _log_mel(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        b, t = waves.shape[0], self.frames
        need = FRAME_LENGTH + FRAME_SHIFT * (t - 1)  # room for `frames` frames; frames past a clip are masked
        x = waves.float()
        x = nn.functional.pad(x, (0, need - x.shape[1])) if x.shape[1] < need else x[:, :need]
        frames = x.unfold(1, FRAME_LENGTH, FRAME_SHIFT)  # (B, T, 400), a view
        g = frames - frames.mean(dim=2, keepdim=True)  # Kaldi's per-frame DC removal
        buf = torch.zeros(b, t, N_FFT, device=x.device)  # zero-padded to the FFT size
        buf[..., 1:FRAME_LENGTH].copy_(g[..., 1:]).sub_(g[..., :-1], alpha=PREEMPHASIS)
        buf[..., 0] = g[..., 0] * (1.0 - PREEMPHASIS)  # Kaldi repeats the first sample before pre-emphasis
        buf[..., :FRAME_LENGTH] *= self.window
        spec = torch.fft.rfft(buf, dim=2)  # (B, T, 257)
        power = spec.real.square() + spec.imag.square()
        mel = torch.matmul(power, self.mel).clamp_min_(LOG_FLOOR).log_()
        n = num_frames(lengths.to(mel.device).long()).clamp(max=t)
        past = torch.arange(t, device=mel.device)[None, :] >= n[:, None]
        return mel.masked_fill_(past[:, :, None], 0.0)

    def forward(self, waves: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        with torch.autocast(waves.device.type, enabled=False):
            return (self.log_mel(waves, lengths) - self.mean) / (2.0 * self.std)


def spec_augment(x: torch.Tensor, freqm: int, timem: int, value: float = MASK_VALUE) -> torch.Tensor:
    """One frequency mask (width < freqm) and one time mask (width < timem) per example, as torchaudio's
    FrequencyMasking / TimeMasking in AST's loader; masked bins get `value`, the normalized value of AST's zero
    mask under the task's fbank statistics (AudioSet's by default).

    x: (B, frames, bins) normalized fbanks. Vectorized over the batch, on x's device.

    >>> spec_augment(torch.zeros(2, 10, 8), freqm=4, timem=3).shape
    torch.Size([2, 10, 8])
    """
    if x.dim() != 3:
        raise ValueError(f"x must be (batch, frames, bins), got shape {tuple(x.shape)}")
    if freqm < 0 or timem < 0:
        raise ValueError(f"freqm and timem must be >= 0, got {freqm}, {timem}")
    b, t, f = x.shape
    dev = x.device

    def band(size: int, width_max: int) -> torch.Tensor:
        width_max = min(int(width_max), size)
        w = torch.rand(b, device=dev) * width_max
        start = (torch.rand(b, device=dev) * (size - w)).long()
        stop = start + w.long()
        pos = torch.arange(size, device=dev)
        return (pos >= start[:, None]) & (pos < stop[:, None])

    mask = torch.zeros(b, t, f, dtype=torch.bool, device=dev)
    if freqm > 0:
        mask |= band(f, freqm)[:, None, :]
    if timem > 0:
        mask |= band(t, timem)[:, :, None]
    return x.masked_fill(mask, value)


def kaldi_reference(wave: torch.Tensor, frames: int, mean: float = AUDIOSET_MEAN,
                    std: float = AUDIOSET_STD) -> torch.Tensor:
    """AST's reference features of one 16 kHz clip with `torchaudio.compliance.kaldi.fbank` (src/dataloader.py):
    (frames, 128), zero-padded or cut, normalized. One clip at a time: for checks and measurements, not training.

    >>> kaldi_reference(torch.zeros(16_000), frames=100).shape
    torch.Size([100, 128])
    """
    from torchaudio.compliance import kaldi

    w = torch.as_tensor(wave, dtype=torch.float32).reshape(1, -1)
    out = torch.zeros(frames, NUM_MEL_BINS)
    if w.shape[1] >= FRAME_LENGTH:
        fb = kaldi.fbank(w - w.mean(), htk_compat=True, sample_frequency=SAMPLE_RATE, use_energy=False,
                         window_type="hanning", num_mel_bins=NUM_MEL_BINS, dither=0.0, frame_shift=10)
        out[: min(frames, fb.shape[0])] = fb[:frames]
    return (out - mean) / (2.0 * std)


def stack_waves(waves: Sequence[torch.Tensor], max_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero-padded (B, max_samples) batch and the (B,) lengths of 1-D waveforms (each cut to max_samples)."""
    out = torch.zeros(len(waves), max_samples)
    lengths = torch.zeros(len(waves), dtype=torch.long)
    for i, w in enumerate(waves):
        w = torch.as_tensor(w)[:max_samples]
        out[i, : w.numel()] = w
        lengths[i] = w.numel()
    return out, lengths
