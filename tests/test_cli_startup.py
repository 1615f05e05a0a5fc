"""`--help`, `--list` and argument errors answer without importing torch (or transformers, timm, accelerate):
each is a fresh interpreter that runs the CLI and then reports which heavy packages got imported."""
import json
import subprocess
import sys

import pytest

from conftest import ROOT

HEAVY = ("torch", "transformers", "timm", "accelerate", "torchaudio", "torchvision")
PROBE = """
import json, sys
from benchmark.cli import main
try:
    code = main(sys.argv[1:])
except SystemExit as exc:  # argparse: --help, usage errors
    code = exc.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(HEAVY))
print("\\n" + json.dumps({"code": code, "heavy": heavy}))
"""


def probe(*args: str, cwd=ROOT) -> tuple[int, list[str], subprocess.CompletedProcess]:
    code = f"HEAVY = {HEAVY!r}\n" + PROBE
    r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=120)
    report = json.loads(r.stdout.strip().splitlines()[-1])
    return report["code"], report["heavy"], r


@pytest.mark.parametrize("args, exit_code, needle", [
    (["--help"], 0, "examples:"),
    (["--list"], 0, "synth-multilabel"),
    (["--list", "--verbose"], 0, "imblearn-<name>"),
    (["--seeds", "x"], 2, "give a count"),
    (["--method", "nosuch"], 2, "unknown method 'nosuch'"),
    (["--task", "synth-multilabel:classes=1"], 2, "must be >= 2"),
    (["--method", "oversample:beta=abc"], 2, "must be float"),
    (["--workers", "0"], 2, "--workers 0"),
    (["--workers", "2", "--overwrite"], 2, "use --workers 1"),
    (["--shard", "9/2"], 2, "--shard"),
], ids=["help", "list", "list-verbose", "seeds", "method", "task-param", "method-param", "workers", "workers-overwrite",
        "shard"])
def test_answers_without_importing_torch(tmp_path, args, exit_code, needle):
    code, heavy, r = probe(*args, "--out", str(tmp_path / "out")) if args[0] not in ("--help",) else probe(*args)
    assert code == exit_code, r.stderr
    assert needle in r.stdout + r.stderr
    assert heavy == [], f"{args} imported {heavy}"
    assert not (tmp_path / "out").exists()  # an argument error writes nothing


def test_the_probe_sees_torch_when_a_run_starts(tmp_path, tiny_ml):
    """The check above can fail: a command that trains imports torch, and the probe reports it."""
    code, heavy, r = probe("--task", tiny_ml, "--method", "oversample", "--seeds", "1", "--no-report", "-q",
                           "--workers", "1", "--out", str(tmp_path / "out"))
    assert code == 0, r.stderr
    assert "torch" in heavy and "accelerate" in heavy
