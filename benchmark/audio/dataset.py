"""The datasets the DataLoader reads: each item is a 16 kHz waveform zero-padded to the clip length, with its
length in samples; MixUp mixes waveforms here. Workers only decode, resample and mix: the fbank is computed later,
batched on the model's device (`features.Fbank`), and SpecAugment is applied to it there."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from .clips import Clips
from .decode import fit_length


def item_rng() -> np.random.Generator:
    """Per-item generator drawn from torch's RNG: seeded by the run in the main process and per DataLoader
    worker by torch, so a run's MixUp draws are reproducible."""
    return np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))


def padded(wave: np.ndarray, max_samples: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(waveform zero-padded to max_samples, its length): the model's input for one clip (see `features.Fbank`).

    >>> w, n = padded(np.ones(3, np.float32), 5); w.tolist(), int(n)
    ([1.0, 1.0, 1.0, 0.0, 0.0], 3)
    """
    w = np.asarray(wave, dtype=np.float32)[:max_samples]
    out = np.zeros(max_samples, dtype=np.float32)
    out[: w.size] = w
    return torch.from_numpy(out), torch.tensor(w.size, dtype=torch.int64)


class AudioClipDataset(Dataset):
    """((waveform (max_samples,), length), label vector float32) per clip: multi-label audio for AST.

    With `mixup` > 0 (training): with that probability the clip's waveform is mixed with a partner drawn
    uniformly from the dataset, λ ~ Beta(alpha, alpha), and the label vector mixed with the same λ (AST). MixUp
    acts on waveforms, before the model computes the fbank and applies SpecAugment.

    >>> from benchmark.audio.clips import ArrayClips
    >>> ds = AudioClipDataset(ArrayClips(np.zeros((2, 800), np.float32)), np.eye(2, dtype=bool))
    >>> (w, n), y = ds[1]; tuple(w.shape), int(n), y.tolist()
    ((800,), 800, [0.0, 1.0])
    """

    def __init__(self, clips: Clips, targets: np.ndarray, mixup: float = 0.0, alpha: float = 10.0) -> None:
        if len(clips) != len(targets):
            raise ValueError(f"{len(clips)} clips but {len(targets)} label rows")
        if not 0.0 <= mixup <= 1.0 or not alpha > 0:
            raise ValueError(f"mixup must be in [0, 1] and alpha > 0, got mixup={mixup}, alpha={alpha}")
        self.clips = clips
        self.targets = np.asarray(targets, dtype=bool)
        self.mixup = float(mixup)
        self.alpha = float(alpha)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        i = int(i)
        wave = self.clips.wave(i)
        y = self.targets[i].astype(np.float32)
        if self.mixup > 0:
            rng = item_rng()
            if rng.random() < self.mixup:
                j = int(rng.integers(len(self)))
                lam = float(rng.beta(self.alpha, self.alpha))
                partner = fit_length(self.clips.wave(j), wave.size)
                wave = lam * wave + (1.0 - lam) * partner
                y = lam * y + (1.0 - lam) * self.targets[j].astype(np.float32)
        return padded(wave, self.clips.max_samples), torch.from_numpy(y)


class LabeledClipDataset(Dataset):
    """((waveform (max_samples,), length), class id int64) per clip: single-label audio, no MixUp (integer
    targets are what the single-label losses and samplers read).

    >>> from benchmark.audio.clips import ArrayClips
    >>> ds = LabeledClipDataset(ArrayClips(np.zeros((2, 800), np.float32)), np.array([3, 1]))
    >>> int(ds[0][1])
    3
    """

    def __init__(self, clips: Clips, labels: np.ndarray) -> None:
        if len(clips) != len(labels):
            raise ValueError(f"{len(clips)} clips but {len(labels)} labels")
        self.clips = clips
        self.labels = np.asarray(labels, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> tuple[tuple[torch.Tensor, torch.Tensor], torch.Tensor]:
        i = int(i)
        return padded(self.clips.wave(i), self.clips.max_samples), torch.tensor(self.labels[i])
