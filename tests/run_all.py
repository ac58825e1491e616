"""The whole test suite, one pytest process per test file: ``python tests/run_all.py [pytest arguments]``.

TensorFlow keeps every Q-network that went through a compiled Keras optimiser step alive until its process ends
(about 320 MB each, with Adam's state; tensorflow/tensorflow#80895), and the suite trains hundreds of tiny ones, so
one process for the whole suite would need more memory than a 24 GB machine has; a process per file needs at most
a few GB. ``TEST_JOBS`` files run at once (default 2: most of a test's time is Python and TensorFlow's per-call
work on one core, so a second file uses the second core; ``TEST_JOBS=1`` runs them one after another). Each file's
output is printed whole when it ends. Extra arguments go to every pytest call (e.g. ``-x``, ``-m "not slow"``).
Any Python 3 and no particular shell: ``tests/run_all.sh`` only calls this.
"""
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NO_TESTS_COLLECTED = 5      # every test of a file deselected by the arguments: not a failure


def main(arguments):
    root = Path(__file__).resolve().parent.parent
    files = sorted(root.glob("tests/test_*.py"))
    jobs = max(1, int(os.environ.get("TEST_JOBS", "2")))
    started, failed, running = time.monotonic(), [], []
    with tempfile.TemporaryDirectory() as logs:
        def finish(process, file, log):
            log.seek(0)
            print(f"== tests/{file.name}\n{log.read()}", end="", flush=True)
            log.close()
            if process.returncode not in (0, NO_TESTS_COLLECTED):
                failed.append(f"tests/{file.name}")

        for file in files:
            while len(running) >= jobs:
                time.sleep(0.2)
                for entry in [entry for entry in running if entry[0].poll() is not None]:
                    running.remove(entry)
                    finish(*entry)
            log = open(Path(logs) / f"{file.name}.log", "w+")
            process = subprocess.Popen([sys.executable, "-m", "pytest", "-q", str(file.relative_to(root)),
                                        *arguments], cwd=root, stdout=log, stderr=subprocess.STDOUT)
            running.append((process, file, log))
        for process, file, log in running:
            process.wait()
            finish(process, file, log)
    print(f"test files run: {len(files)}, failed: {len(failed)} ({time.monotonic() - started:.0f} s)")
    for file in failed:
        print(f"failed: {file}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
