"""AST's fbank on the CPU: the batched torch fbank (what the model runs) vs torchaudio's kaldi.fbank per clip
(AST's reference), 12 clips of 10.24 s, one thread.

Not part of the default run: ``python -m pytest tests/perf -m perf``. The harness section ``audio``
(``python -m tests.perf --section audio``) prints the same comparison with the decode and resample stages.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from benchmark.audio import Fbank, kaldi_reference, stack_waves

pytestmark = pytest.mark.perf


@pytest.fixture(scope="module")
def clips():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a DataLoader worker's share, and comparable across machines
    rng = np.random.default_rng(0)
    fb = Fbank(1024)
    waves = [torch.from_numpy((0.1 * rng.standard_normal(fb.max_samples)).astype(np.float32)) for _ in range(12)]
    yield fb, waves, stack_waves(waves, fb.max_samples)
    torch.set_num_threads(threads)


def test_batched_fbank(bench, clips):
    fb, waves, batch = clips
    out = bench(fb, *batch)
    assert out.shape == (12, 1024, 128)


def test_kaldi_fbank_per_clip(bench, clips):
    fb, waves, _ = clips
    out = bench(lambda: [kaldi_reference(w, fb.frames) for w in waves])
    assert len(out) == 12 and out[0].shape == (1024, 128)


def test_batched_fbank_is_as_fast_as_kaldi(clips):
    """The reason it replaced the numpy fbank: at least as fast as the reference on the CPU (best of 5, one run;
    1.3x slack for a shared machine)."""
    fb, waves, batch = clips

    def best(f):
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            f()
            times.append(time.perf_counter() - t0)
        return min(times)

    ours = best(lambda: fb(*batch))
    ref = best(lambda: [kaldi_reference(w, fb.frames) for w in waves])
    assert ours <= 1.3 * ref, f"batched fbank {ours:.3f} s vs kaldi.fbank {ref:.3f} s for 12 clips"
