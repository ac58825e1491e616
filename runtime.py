"""Process plumbing the scripts share: one seed for every generator, files written atomically, the main guard
that turns user errors into one line, and signals that end a run the way Ctrl-C does.

SIGTERM is handled like Ctrl-C; inside ``StopSignals.deferred()`` (saving an epoch) a signal waits until the block
is done. Files are written to a temporary name and renamed, so even SIGKILL never leaves half a file.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import warnings
from pathlib import Path

from errors import UserError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")     # TensorFlow's start-up chatter hides the progress lines


def seed_everything(seed):
    """One seed for Python, NumPy and Keras/TensorFlow; deterministic kernels on CPU."""
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


TEMPORARY_PREFIX = ".tmp_"


def write_atomically(path, write):
    """Call ``write(temporary_path)`` then rename over ``path``: an interrupted run never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(TEMPORARY_PREFIX + path.name)     # keeps the suffix, which Keras checks
    try:
        write(temporary)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)


def write_json(path, data):
    def write(temporary):
        with open(temporary, "w") as handle:
            json.dump(data, handle, indent=1)
    write_atomically(path, write)


def main_guard(function):
    """Run a script's main: user errors become one line on stderr and exit code 2; Ctrl-C exits with 130, SIGTERM
    with 143 (128 + the signal number); user warnings print as one line ``warning: ...``."""
    show_warning = warnings.showwarning

    def one_line(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, UserWarning):
            print(f"warning: {message}", file=sys.stderr if file is None else file, flush=True)
        else:
            show_warning(message, category, filename, lineno, file, line)
    warnings.showwarning = one_line
    try:
        function()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as interrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(128 + getattr(interrupt, "signal_number", signal.SIGINT))
    finally:
        warnings.showwarning = show_warning


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, raised in the main thread (KeyboardInterrupt, so it ends a run the way Ctrl-C does)."""

    def __init__(self, signal_number):
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = int(signal_number)


class StopSignals:
    """While active, SIGINT and SIGTERM raise :class:`Interrupted`; inside ``deferred()`` they wait until the
    block is done (saving an epoch), then raise. The previous handlers come back at exit. Outside the main thread
    (where Python cannot set handlers) it does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.previous = {}
        self.pending = []
        self.deferring = False

    def _handle(self, signal_number, frame):
        if self.deferring:
            self.pending.append(signal_number)
        else:
            raise Interrupted(signal_number)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = {number: signal.signal(number, self._handle) for number in self.SIGNALS}
        return self

    def __exit__(self, *exc_info):
        for number, handler in self.previous.items():
            signal.signal(number, handler)
        return False

    @contextlib.contextmanager
    def deferred(self):
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False
        if self.pending:
            raise Interrupted(self.pending[0])
