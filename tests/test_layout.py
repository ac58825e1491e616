"""The repository's shape: no import circle between its modules, the instruments in experiments/, a README a
newcomer reads in minutes, every relative link of the README and docs/ pointing at a file, and every documented
Python command answering --help."""
import ast
import json
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
    paths |= {folder if path.stem == "__init__" else f"{folder}.{path.stem}": path
              for folder in ("runs", "experiments", "results_page") for path in (REPOSITORY / folder).glob("*.py")}
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
    assert "compare_results" not in graph["runs.classes_run"] and "runs.classes_run" not in graph["compare_results"]


def test_the_instruments_live_in_experiments():
    for name in INSTRUMENTS:
        assert not (REPOSITORY / f"{name}.py").exists() and not (REPOSITORY / "docs" / f"{name}.py").exists()
        assert (REPOSITORY / "experiments" / f"{name}.py").is_file()


# --- the README and docs/ ----------------------------------------------------------------------------------------

DOCUMENTS = [REPOSITORY / "README.md", *sorted((REPOSITORY / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def test_the_readme_reads_in_minutes():
    assert len((REPOSITORY / "README.md").read_text(encoding="utf-8").splitlines()) <= 350


def heading_anchors(path):
    """GitHub's anchors of a Markdown file's headings: lower case, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            text = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return anchors


def test_every_relative_link_of_the_readme_and_docs_points_at_a_file_and_heading():
    broken = []
    for document in DOCUMENTS:
        for target in LINK.findall(document.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target):
                continue                                        # https:, mailto:
            path, _, anchor = target.partition("#")
            linked = (document.parent / path).resolve() if path else document
            if not linked.is_file() or REPOSITORY not in linked.parents:
                broken.append(f"{document.name}: {target} (no such file in the repository)")
            elif anchor and linked.suffix == ".md" and anchor not in heading_anchors(linked):
                broken.append(f"{document.name}: {target} (no such heading)")
    assert broken == []


def documented_commands():
    """``{script: flags}`` of every ``python <script>.py …`` command in the README and docs/, code blocks and inline
    code alike (continued lines joined, comments dropped)."""
    commands = {}
    for document in DOCUMENTS:
        text = document.read_text(encoding="utf-8").replace("\\\n", " ")
        for script, rest in re.findall(r"python ((?:experiments/)?\w+\.py)([^`\n|]*)", text):
            rest = rest.split(" #")[0]
            commands.setdefault(script, set()).update(re.findall(r"(?:^|[\s\[])(--?[a-zA-Z]\w*)", rest))
    return commands


HELP_RUNNER = """
import contextlib, io, json, runpy, sys
answers = {}
for script in sys.argv[1:]:
    sys.argv, output = [script, "--help"], io.StringIO()
    with contextlib.redirect_stdout(output):
        try:
            runpy.run_path(script, run_name="__main__")
            code = 0
        except SystemExit as stop:
            code = stop.code
    answers[script] = [code, output.getvalue()]
print(json.dumps(answers))
"""


def test_every_documented_command_answers_help_and_knows_its_flags():
    commands = documented_commands()
    assert {"image_zooms_training.py", "pool45_crops_testing.py", "compare_results.py",
            "experiments/benchmark.py", "experiments/learning_benchmark.py", "experiments/feature_probe.py",
            "experiments/search_analysis.py", "experiments/other_voc.py"} <= set(commands)
    # one process for all of them: TensorFlow is imported once
    completed = subprocess.run([sys.executable, "-c", HELP_RUNNER, *sorted(commands)], cwd=REPOSITORY,
                               capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-2000:]
    answers = json.loads(completed.stdout.splitlines()[-1])
    unknown = []
    for script, flags in sorted(commands.items()):
        code, usage = answers[script]
        assert code in (0, None) and "usage:" in usage, f"{script} --help: exit code {code}"
        unknown += [f"{script} {flag}" for flag in sorted(flags)
                    if not re.search(rf"(?<![\w-]){re.escape(flag)}\b", usage)]
    assert unknown == [], f"flags the documents give that the scripts do not know: {unknown}"


def test_the_documented_shell_scripts_exist_and_parse():
    for document in DOCUMENTS:
        for script in re.findall(r"bash (\w+\.sh)", document.read_text(encoding="utf-8")):
            assert subprocess.run(["bash", "-n", str(REPOSITORY / script)]).returncode == 0, script
