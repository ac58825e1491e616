"""Instruments, not the product: they measure the project (speed, learning, features, searches) and draw data to
measure it on. Each runs from the repository root, e.g. ``python experiments/benchmark.py --quick``."""
