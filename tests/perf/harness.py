"""The perf harness: ``python -m tests.perf [--section NAME] [--large]`` (from the repository root).

Every section measures its competitors in the same process, one after the other, and prints a table, so ratios
are comparable even on a noisy machine; absolute seconds are not (rerun the baseline whenever you compare).
A section is a function ``bench_<name>(large: bool) -> list[dict]`` in ``bench_<component>.py``, listed in
``SECTIONS``:

- metrics: exact AP/AUC/d' vs scikit-learn and torchmetrics
- sampler: the oversampling index stream at AudioSet train scale vs numpy's shuffle, a Python loop and torch's
  WeightedRandomSampler
- views: one forward pass + K metric passes
- step: the engine's training step vs a bare PyTorch loop (same model, batch, optimizer and steps)
- train: examples/s through the engine, 1 vs 2 threads
- audio: decode -> resample -> fbank per clip, and clips/s through a DataLoader with 0-2 workers

torch / torchmetrics are imported only inside the sections that need them. The pytest-benchmark suite beside
this file (``python -m pytest tests/perf -m perf``) asserts the ratios.
"""
from __future__ import annotations

import argparse
from typing import Any, Callable, Optional, Sequence

from .bench_audio import bench_audio
from .bench_metrics import bench_metrics
from .bench_sampler import bench_sampler
from .bench_train import bench_step, bench_train
from .bench_views import bench_views
from .common import environment

SECTIONS: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "metrics": bench_metrics, "sampler": bench_sampler, "views": bench_views, "step": bench_step,
    "train": bench_train, "audio": bench_audio,
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the chosen sections (default: all) and print one table per section."""
    ap = argparse.ArgumentParser(prog="python -m tests.perf", description=__doc__.splitlines()[0])
    ap.add_argument("--section", choices=sorted(SECTIONS), action="append",
                    help="section to run (repeatable); default: all")
    ap.add_argument("--large", action="store_true",
                    help="also run the large sizes (metrics: 200,000 x 527, sklearn alone takes ~1 min there; "
                         "sampler: the previous implementation on a 470 M-draw epoch, ~8 GB; views: SADE raking at "
                         "20,000 x 527; step: 5 rounds; train: synth-audioset; audio: 96 clips)")
    args = ap.parse_args(argv)
    print(environment())
    for name in args.section or sorted(SECTIONS):
        SECTIONS[name](large=args.large)
    return 0
