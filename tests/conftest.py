"""Shared fixtures: tiny configurations of the synthetic tasks so that end-to-end tests take seconds."""
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")

# Small but real: enough positives per class for every view, a few hundred steps of training.
TINY_ML = "synth-multilabel:classes=12,groups=4,n_train=1500,n_eval=1500,n_uniform=800,epochs=2,hidden=16"
TINY_SL = "synth-singlelabel:classes=6,groups=2,n_max=200,rho=20,n_eval=800,per_class_uniform=60,epochs=3,hidden=16"


@pytest.fixture
def tiny_ml() -> str:
    return TINY_ML


@pytest.fixture
def tiny_sl() -> str:
    return TINY_SL


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None):
    """Run `python run_benchmark.py ARGS` in a subprocess; returns CompletedProcess (text)."""
    import subprocess

    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, str(ROOT / "run_benchmark.py"), *args], capture_output=True, text=True,
                          cwd=cwd or ROOT, env=e, timeout=600)
