"""tests/run_all.py's last line counts every test of every file, ``P passed, F failed, S skipped``: each file's
pytest summary line parsed and summed, an error counted as a failure, a file that crashed as one failure at least."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from run_all import count_outcomes, final_line, main


@pytest.mark.parametrize("output, returncode, counts", [
    ("....\n4 passed in 1.20s\n", 0, (4, 0, 0)),
    ("..F.\n=== short test summary info ===\nFAILED tests/test_x.py::test_b - assert 1 == 2\n"
     "1 failed, 3 passed, 2 warnings in 61.02s (0:01:01)\n", 1, (3, 1, 0)),
    ("2 failed, 10 passed, 3 skipped, 1 xfailed, 1 xpassed, 2 warnings, 1 error in 3.21s\n", 1, (11, 3, 4)),
    ("E\n1 error in 0.31s\n", 1, (0, 1, 0)),
    ("======================== 5 passed, 1 skipped in 0.04s =========================\n", 0, (5, 0, 1)),
    ("22 passed, 58 deselected in 2.86s\n", 0, (22, 0, 0)),
    ("58 deselected in 0.50s\n", 5, (0, 0, 0)),                   # every test deselected: not a failure
    ("no tests ran in 0.01s\n", 5, (0, 0, 0)),
    ("4 passed in 1.20s\n1 passed in 0.50s\n", 0, (1, 0, 0)),     # the last summary line is the file's
])
def test_a_files_summary_line_is_counted(output, returncode, counts):
    assert tuple(count_outcomes(output, returncode).values()) == counts


@pytest.mark.parametrize("output, returncode", [
    ("..\nFatal Python error: Segmentation fault\n", -11),           # killed before its summary
    ("", -9),
    ("3 passed in 1.00s\nINTERNALERROR> Traceback\n", 3),            # failed though no test did
    ("usage: pytest [options]\nerror: unrecognized arguments: --bogus\n", 4),
])
def test_a_file_that_crashed_counts_as_a_failure(output, returncode):
    counts = count_outcomes(output, returncode)
    assert counts["failed"] >= 1


def test_the_last_line_sums_every_file_after_the_failed_files(tmp_path, capsys):
    files = {"test_good.py": """
        import pytest
        def test_one(): pass
        def test_two(): pass
        @pytest.mark.skip(reason="not here")
        def test_skipped(): pass
        @pytest.mark.xfail(reason="known")
        def test_known(): assert False
        """,
             "test_bad.py": """
        def test_fine(): pass
        def test_broken(): assert 1 == 2
        """,
             "test_crash.py": """
        import os
        def test_dies(): os._exit(9)
        """}
    for name, text in files.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
    code = main(["-p", "no:cacheprovider"], files=sorted(tmp_path.glob("test_*.py")))
    lines = capsys.readouterr().out.splitlines()
    assert code == 1
    assert lines[-1] == "3 passed, 2 failed, 2 skipped"       # the crash counts one; the xfail is a skip
    assert lines[-3:-1] == [f"failed: {tmp_path / 'test_bad.py'}", f"failed: {tmp_path / 'test_crash.py'}"]


def test_the_runner_prints_the_counts_as_its_last_line_from_the_command_line(tmp_path):
    (tmp_path / "test_one.py").write_text("def test_a(): pass\n")
    run = subprocess.run([sys.executable, "-c", "import sys, run_all; sys.exit(run_all.main([], sys.argv[1:]))",
                          str(tmp_path / "test_one.py")], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).parent)
    assert run.returncode == 0 and run.stdout.splitlines()[-1] == "1 passed, 0 failed, 0 skipped"


def test_final_line():
    assert final_line({"passed": 412, "failed": 0, "skipped": 3}) == "412 passed, 0 failed, 3 skipped"
