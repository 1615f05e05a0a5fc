"""Shared fixtures: tiny configurations of the synthetic tasks so that end-to-end tests take seconds."""
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")
# the CLI's tiny test grids run in one process: a helper interpreter (--workers) would double their CPU under -n 2
os.environ.setdefault("BALANCEBENCH_WORKERS", "1")

# Small but real: enough positives per class for every view, a few hundred steps of training.
TINY_ML = "synth-multilabel:classes=12,groups=4,n_train=1500,n_eval=1500,n_uniform=800,epochs=2,hidden=16"
TINY_SL = "synth-singlelabel:classes=6,groups=2,n_max=200,rho=20,n_eval=800,per_class_uniform=60,epochs=3,hidden=16"


@pytest.fixture
def bench(benchmark):
    """pytest-benchmark's `benchmark` fixture under a name that cannot hide the `benchmark` package."""
    return benchmark


def pytest_collection_modifyitems(config, items):
    """A test parameter named `benchmark` would be pytest-benchmark's fixture and shadow the package of that
    name inside the test (`benchmark.get_method` would be an AttributeError on the fixture): refuse it."""
    import inspect

    for item in items:
        fn = getattr(item, "obj", None)
        if callable(fn) and "benchmark" in inspect.signature(fn).parameters:
            raise pytest.UsageError(f"{item.nodeid}: request pytest-benchmark's fixture as `bench`, not "
                                    f"`benchmark` (that name is the package under test; tests/conftest.py)")


SLOW_S = 30.0  # a test that takes longer carries @pytest.mark.slow(reason="...")


def pytest_collection_finish(session):
    """A `slow` mark says why the test cannot be cheaper: refuse one without a reason."""
    for item in session.items:
        for mark in item.iter_markers("slow"):
            if not mark.kwargs.get("reason"):
                raise pytest.UsageError(f"{item.nodeid}: @pytest.mark.slow needs reason=\"...\" (why it takes "
                                        f"more than {SLOW_S:.0f} s)")


def pytest_terminal_summary(terminalreporter):
    """Name the unmarked tests that took longer than SLOW_S (a hint, not a failure: a busy machine is slower)."""
    slow = [r for r in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", [])
            if r.when == "call" and r.duration > SLOW_S and "slow" not in r.keywords]
    if slow:
        terminalreporter.write_sep("-", f"tests over {SLOW_S:.0f} s without @pytest.mark.slow(reason=...)")
        for r in sorted(slow, key=lambda r: -r.duration):
            terminalreporter.write_line(f"{r.duration:6.1f} s  {r.nodeid}")


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
