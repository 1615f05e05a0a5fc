"""The report is the same whether its sections are analyzed in the figure worker processes or in threads."""
import multiprocessing
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from fake_runs import make_run_dir  # noqa: E402


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="worker processes need fork")
def test_sections_in_processes_equal_threads(tmp_path, monkeypatch):
    import reports.plots as plots
    import reports.priorshift as priorshift
    from reports import render_report

    run = tmp_path / "a"
    make_run_dir(run, seeds=(0, 1), betas=(1.0,))
    make_run_dir(run, multi=True, C=5, seeds=(0, 1), betas=(1.0,))  # a second section in the same run dir
    shutil.copytree(run, tmp_path / "b")
    used = []
    analyze = priorshift.analyze
    monkeypatch.setattr(priorshift, "analyze", lambda *a, **k: used.append(k.get("processes")) or analyze(*a, **k))
    monkeypatch.setattr(plots, "FIGURE_WORKERS", 2)
    reused = []  # per-class panels started early are taken over when their section is done, not drawn again
    submit = plots.FigureWriter.submit

    def spy(self, sh, kind, fn, data, name, *args):
        if kind == "per_class":
            reused.append(self.cache.key(data, self.out_dir / name, *args) in self.early)
        return submit(self, sh, kind, fn, data, name, *args)

    monkeypatch.setattr(plots.FigureWriter, "submit", spy)
    render_report(run)
    assert reused == [True, True]
    monkeypatch.setattr(plots.FigureWriter, "submit", submit)
    monkeypatch.setattr(plots, "FIGURE_WORKERS", 1)
    render_report(tmp_path / "b")
    assert used[0] is not None and used[1] is None  # processes, then this process's threads
    for name in ("report.md", "summary.json"):
        assert (run / name).read_text() == (tmp_path / "b" / name).read_text(), name
    assert "fake-ml" in (run / "report.md").read_text() and "fake-sl" in (run / "report.md").read_text()
    assert sorted(p.name for p in run.glob("*.png")) == sorted(p.name for p in (tmp_path / "b").glob("*.png"))


def test_given_shot_bins_are_kept_even_with_an_empty_bin(tmp_path):
    """The default bins fall back to terciles when one would be empty; bins the user gave are kept as given."""
    from reports import render_report
    from reports.options import Options

    run = make_run_dir(tmp_path / "run", seeds=(0, 1), betas=(1.0,))  # training counts 505 ... 21: none < 20
    render_report(run)
    assert "(top third)" in (run / "report.md").read_text()
    render_report(run, options=Options(shot_bins=(100, 20), shot_bins_given=True))
    text = (run / "report.md").read_text()
    assert "(top third)" not in text and "> 100 training examples" in text and "< 20" in text
    assert Options.from_json(Options(shot_bins=(50, 10), shot_bins_given=True).to_json()).shot_bins_given
