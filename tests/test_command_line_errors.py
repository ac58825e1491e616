"""One error style everywhere: a usage mistake on any command line (an unknown flag, a wrongly typed or impossible
value, a missing argument) is one line on stderr, ``error: ...``, and exit code 2, never argparse's usage."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

MISTAKES = [
    (["experiments/settings_tables.py", "--markdown", "html"], "--markdown: invalid choice: 'html'"),
    (["experiments/settings_tables.py", "--no_such_flag"], "unrecognized arguments: --no_such_flag"),
    (["compare_results.py"], "the following arguments are required: results"),
    (["compare_results.py", "a.json", "--no_such_flag"], "unrecognized arguments: --no_such_flag"),
    (["compare_results.py", "no_such_results.json"], "no_such_results.json: results file not found"),
    (["synthetic_dataset.py", "--num_test", "many"], "--num_test: invalid int value: 'many'"),
    (["synthetic_dataset.py", "--num_trainval", "0", "--root", "{tmp}/voc"], "num_trainval must be an integer >= 1"),
    (["synthetic_dataset.py", "--min_size", "100", "--max_size", "50", "--root", "{tmp}/voc"],
     "max_size must be an integer >= min_size"),
    (["synthetic_dataset.py", "--no_such_flag"], "unrecognized arguments: --no_such_flag"),
    (["experiments/other_voc.py", "{tmp}/voc", "busy"], "kind: invalid choice: 'busy'"),
    (["experiments/peak_memory.py"], "give the command after --"),
    (["-m", "results_page"], "the following arguments are required: results"),
    (["-m", "results_page", "no_such_results.json"], "no_such_results.json: results file not found"),
    (["experiments/screenshot.py", "no_such_page.html", "{tmp}/page.png"], "no_such_page.html: no such page"),
]


@pytest.mark.parametrize("argv, named", MISTAKES, ids=[" ".join(argv) for argv, _ in MISTAKES])
def test_a_usage_mistake_is_one_error_line_and_exit_code_2(tmp_path, argv, named):
    argv = [argument.replace("{tmp}", str(tmp_path)) for argument in argv]
    run = subprocess.run([sys.executable, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = run.stderr.splitlines()
    assert run.returncode == 2 and run.stdout == "", run.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], lines
    assert not (tmp_path / "voc").exists()                  # nothing written


@pytest.mark.parametrize("script", ["experiments/settings_tables.py", "compare_results.py", "synthetic_dataset.py"])
def test_help_still_prints_the_usage_and_exits_0(script):
    run = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and run.stdout.startswith("usage:") and run.stderr == ""
