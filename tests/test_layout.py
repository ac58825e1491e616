"""The repository's shape: no import circle between its modules, the instruments in experiments/, a README a
newcomer reads in minutes, every relative link of the README and docs/ pointing at a file, and every documented
Python command answering --help."""
import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent
INSTRUMENTS = ("benchmark", "learning_benchmark", "feature_probe", "search_analysis", "other_voc")


def module_imports():
    """``{module: the project modules it imports anywhere in its text (functions included)}``, names as imported
    from the repository root (``experiments.benchmark``)."""
    paths = {path.stem: path for path in REPOSITORY.glob("*.py")}
    paths |= {f"experiments.{path.stem}": path for path in (REPOSITORY / "experiments").glob("*.py")}
    graph = {}
    for name, path in paths.items():
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
        graph[name] = {other for other in imported if other in paths and other != name}
    return graph


def test_no_module_imports_one_that_imports_it_back():
    graph = module_imports()
    circles = []
    for start in graph:
        reached, frontier = set(), [start]
        while frontier:
            for other in graph[frontier.pop()]:
                if other not in reached:
                    reached.add(other)
                    frontier.append(other)
        if start in reached:
            circles.append(start)
    assert circles == [], f"modules on an import circle: {circles}"
    assert "compare_results" not in graph["classes_run"] and "classes_run" not in graph["compare_results"]


def test_the_instruments_live_in_experiments():
    for name in INSTRUMENTS:
        assert not (REPOSITORY / f"{name}.py").exists() and not (REPOSITORY / "docs" / f"{name}.py").exists()
        assert (REPOSITORY / "experiments" / f"{name}.py").is_file()
