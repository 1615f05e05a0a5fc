"""Markdown report and summary.json from a run directory's result JSON files.

Imports no torch (directly or indirectly): rendering a report must work on a machine without it.
"""
from .load import load_runs
from .render import build_report_markdown, render_report

__all__ = ["build_report_markdown", "load_runs", "render_report"]
