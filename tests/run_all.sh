#!/bin/sh
# The whole test suite, one pytest process per test file (why: tests/run_all.py). Any sh and any Python 3.
cd "$(dirname "$0")/.." && exec python tests/run_all.py "$@"
