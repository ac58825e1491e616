"""The peak memory of a command and every process it starts, summed: ``python experiments/peak_memory.py --
python image_zooms_training.py --demo --class_object all --epochs 1 --max_images 8``.

``/usr/bin/time -v`` reports the largest single process; a several-class training runs each class in a child
process beside its parent, so what a machine must hold is their sum. This samples the resident memory (``VmRSS``
in ``/proc``, Linux only) of the command's whole process tree every ``--every`` seconds and prints the peak of the
sum, the command's exit code and its time. The command's own output goes through unchanged.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the top-level modules

from runs.runtime import OneLineParser, main_guard  # noqa: E402


def tree_rss_bytes(root_pid):
    """The summed resident memory of ``root_pid`` and its descendants (0 for processes already gone)."""
    children, rss = {}, {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except OSError:         # ended meanwhile
            continue
        pid = int(status.parent.name)
        children.setdefault(int(fields["PPid"].strip()), []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    total, waiting = 0, [root_pid]
    while waiting:
        pid = waiting.pop()
        total += rss.get(pid, 0)
        waiting += children.get(pid, [])
    return total


def main(argv=None):
    parser = OneLineParser(description=__doc__.split("\n")[0], listed="option")
    parser.add_argument("--every", type=float, default=0.2, help="seconds between samples (default: 0.2)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    arguments = parser.parse_args(argv)
    command = arguments.command[1:] if arguments.command[:1] == ["--"] else arguments.command
    if not command:
        parser.error("give the command after --")
    started = time.monotonic()
    process = subprocess.Popen(command)
    peak = 0
    while process.poll() is None:
        peak = max(peak, tree_rss_bytes(process.pid))
        time.sleep(arguments.every)
    print(f"peak memory {peak / 2**30:.2f} GiB (the process tree's summed RSS, sampled every {arguments.every} s), "
          f"exit code {process.returncode}, {time.monotonic() - started:.0f} s", flush=True)
    return process.returncode


if __name__ == "__main__":
    main_guard(lambda: sys.exit(main()))
