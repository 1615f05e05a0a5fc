#!/usr/bin/env python
"""balancebench entry point: `python run_benchmark.py --help` (also `accelerate launch run_benchmark.py ...`)."""
import sys

from benchmark.cli import main

if __name__ == "__main__":
    sys.exit(main())
