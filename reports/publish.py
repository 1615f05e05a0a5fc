"""`run_benchmark.py report DIR --publish DEST`: a self-contained folder that can be committed or served as is."""
from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

from .load import atomic_write_text

CSV_FIELDS = ("task", "setting", "method", "method_name", "method_params", "seed", "run_id", "distribution", "metric",
              "value", "baseline_value", "delta")


def results_csv(shifts: dict) -> str:
    """One row per run × distribution × metric (value, the same seed's baseline value, their difference)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for key in sorted(shifts):
        for row in shifts[key].rows:
            w.writerow({k: ("" if row.get(k) is None else f"{row[k]:.10g}" if isinstance(row.get(k), float)
                            else row[k]) for k in CSV_FIELDS})
    return buf.getvalue()


def publish_folder(dest: Path, markdown: str, summary_text: str, shifts: dict, figures_dir: Path) -> Path:
    """README.md (the report, figures linked by relative paths), the PNGs beside it, results.csv, summary.json."""
    dest.mkdir(parents=True, exist_ok=True)
    for sh in shifts.values():
        for name in sh.figures.values():
            src = Path(figures_dir) / name
            if src.resolve() != (dest / name).resolve():
                shutil.copyfile(src, dest / name)
    atomic_write_text(dest / "README.md", markdown)
    atomic_write_text(dest / "summary.json", summary_text)
    atomic_write_text(dest / "results.csv", results_csv(shifts))
    return dest / "README.md"
