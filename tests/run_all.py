"""The whole test suite, one pytest process per test file: ``python tests/run_all.py [pytest arguments]``.

TensorFlow keeps every Q-network that went through a compiled Keras optimiser step alive until its process ends
(about 320 MB each, with Adam's state; tensorflow/tensorflow#80895), and the suite trains hundreds of tiny ones, so
one process for the whole suite would need more memory than a 24 GB machine has; a process per file needs at most
a few GB. ``TEST_JOBS`` files run at once (default 2: most of a test's time is Python and TensorFlow's per-call
work on one core, so a second file uses the second core; ``TEST_JOBS=1`` runs them one after another). Each file's
output is printed whole when it ends. Extra arguments go to every pytest call (e.g. ``-x``, ``-m "not slow"``).
Any Python 3 and no particular shell: ``tests/run_all.sh`` only calls this.

The last line counts the tests of every file, ``P passed, F failed, S skipped`` (:func:`count_outcomes`), after the
files that failed, one a line; it is printed even when the run is interrupted, for the files that ended.
"""
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NO_TESTS_COLLECTED = 5      # every test of a file deselected by the arguments: not a failure
# pytest's summary line, e.g. "2 failed, 30 passed, 1 skipped, 3 warnings in 12.34s" (with -q) or the same between
# "=" signs; "no tests ran in 0.01s" when nothing ran
SUMMARY = re.compile(r"^=*\s*((?:\d+ [a-z]+(?:, )?)+|no tests ran) in [\d.]+s\b.*$")
# how each of pytest's outcomes counts: an error (in a fixture, or collecting the file) is a failure; an expected
# failure (xfailed) is a test that did not run to success on purpose, like a skip; an unexpected pass (xpassed, not
# strict: a strict one is reported as failed) passed
COUNTED_AS = {"passed": "passed", "xpassed": "passed", "failed": "failed", "error": "failed", "errors": "failed",
              "skipped": "skipped", "xfailed": "skipped"}


def count_outcomes(output, returncode):
    """``{"passed": P, "failed": F, "skipped": S}`` of one file's pytest ``output`` (its last summary line) and exit
    code. A file that ended without a summary (a crash, a kill) or failed without a failing test counts as one
    failed test at least."""
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    summary = next((match for line in reversed(output.splitlines()) if (match := SUMMARY.match(line.strip()))),
                   None)
    if summary is not None:
        for number, outcome in re.findall(r"(\d+) ([a-z]+)", summary.group(1)):
            if outcome in COUNTED_AS:
                counts[COUNTED_AS[outcome]] += int(number)
    if (summary is None or returncode not in (0, NO_TESTS_COLLECTED)) and counts["failed"] == 0:
        counts["failed"] = 1
    return counts


def final_line(counts):
    return f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped"


def main(arguments, files=None):
    """Run ``files`` (default: every ``tests/test_*.py``), each in its own pytest process, with ``arguments``; 0 when
    every file ran and none failed, 1 otherwise, 130 when interrupted."""
    root = Path(__file__).resolve().parent.parent
    files = sorted(root.glob("tests/test_*.py")) if files is None else [Path(file).resolve() for file in files]
    jobs = max(1, int(os.environ.get("TEST_JOBS", "2")))
    started, failed, running, ended, interrupted = time.monotonic(), [], [], 0, False
    totals = {"passed": 0, "failed": 0, "skipped": 0}

    def shown(file):
        return str(file.relative_to(root)) if root in file.parents else str(file)

    with tempfile.TemporaryDirectory() as logs:
        def finish(process, file, log):
            nonlocal ended
            log.seek(0)
            output = log.read()
            print(f"== {shown(file)}\n{output}", end="", flush=True)
            log.close()
            counts = count_outcomes(output, process.returncode)
            for outcome, number in counts.items():
                totals[outcome] += number
            ended += 1
            if counts["failed"]:
                failed.append(shown(file))

        try:
            for file in files:
                while len(running) >= jobs:
                    time.sleep(0.2)
                    for entry in [entry for entry in running if entry[0].poll() is not None]:
                        running.remove(entry)
                        finish(*entry)
                log = open(Path(logs) / f"{file.name}.log", "w+")
                process = subprocess.Popen([sys.executable, "-m", "pytest", "-q", shown(file), *arguments],
                                           cwd=root, stdout=log, stderr=subprocess.STDOUT)
                running.append((process, file, log))
            while running:
                process, file, log = running.pop(0)
                process.wait()
                finish(process, file, log)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            for process, file, log in running:      # interrupted: the files still running are not counted
                process.kill()
                process.wait()
                log.close()
            print(f"test files run: {ended} of {len(files)}, failed: {len(failed)} "
                  f"({time.monotonic() - started:.0f} s)")
            for file in sorted(failed):
                print(f"failed: {file}")
            print(final_line(totals), flush=True)
    return 130 if interrupted else 1 if failed or ended < len(files) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
