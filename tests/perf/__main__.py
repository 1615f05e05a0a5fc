"""``python -m tests.perf``: see tests/perf/harness.py."""
from .harness import main

raise SystemExit(main())
