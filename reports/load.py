"""Reading result JSON files from a run directory (no torch, no numpy needed)."""
from __future__ import annotations

from pathlib import Path

from benchmark.core.results import atomic_write_bytes, iter_checked

class RunList(list):
    """The loaded results (a plain list of dicts) plus the files skipped while loading."""

    def __init__(self, results: list[dict], unreadable: list[tuple[str, str]],
                 foreign: list[tuple[str, str]]) -> None:
        super().__init__(results)
        self.unreadable = unreadable  # (path relative to the run dir, why): broken files, not finished results
        self.foreign = foreign  # (path, why): results of another schema version (another balancebench)

    @property
    def n_unreadable(self) -> int:
        """Every skipped file, foreign ones included."""
        return len(self.unreadable) + len(self.foreign)

    def warnings(self) -> list[str]:
        """One stderr line per skipped file, saying whether it is broken or of another schema version."""
        lines = [f"warning: {rel}: broken, skipped: {why}" for rel, why in self.unreadable]
        lines += [f"warning: {rel}: skipped: {why}; report it with that version" for rel, why in self.foreign]
        return lines


def load_runs(run_dir: str | Path) -> RunList:
    """All finished results (status ok or failed) under `<run_dir>/results/*/*.json`, sorted by path.

    Files that are not finished results of this schema (truncated, bogus, unfinished) and results of another
    schema version are skipped, and listed on the returned list (`unreadable`, `foreign`, `warnings()`).
    """
    run_dir = Path(run_dir)
    results: list[dict] = []
    unreadable: list[tuple[str, str]] = []
    foreign: list[tuple[str, str]] = []
    for path, check in iter_checked(run_dir):
        rel = path.relative_to(run_dir).as_posix()
        if check.state == "ok":
            results.append(check.data)
        elif check.state == "foreign":
            foreign.append((rel, check.reason))
        else:
            unreadable.append((rel, check.reason))
    return RunList(results, unreadable, foreign)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
