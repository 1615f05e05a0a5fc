"""Performance: the harness (``python -m tests.perf``, one ``bench_<component>.py`` per component) and the
pytest-benchmark suite (``test_perf_*.py``, marker ``perf``). Test code, not part of the installed package."""
