"""Process plumbing the scripts share: one seed for every generator, files written atomically, the main guard
that turns user errors into one line, and signals that end a run the way Ctrl-C does.

SIGTERM is handled like Ctrl-C; inside ``StopSignals.deferred()`` (saving an epoch) a signal waits until the block
is done. Files are written to a unique temporary name, flushed to the disk and renamed, so even SIGKILL or a power
cut never leaves half a file.
"""
import argparse
import contextlib
import errno
import functools
import json
import math
import os
import shutil
import signal
import sys
import threading
import warnings
from pathlib import Path

from runs.errors import UserError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")     # TensorFlow's start-up chatter hides the progress lines


def seed_everything(seed):
    """One seed for Python, NumPy and Keras/TensorFlow; deterministic kernels on CPU. The first TensorFlow use of
    every run, so TensorFlow is imported here, quietly (:func:`import_tensorflow`)."""
    tf = import_tensorflow()
    import keras
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


@contextlib.contextmanager
def quiet_stderr_descriptor():
    """Send file descriptor 2 to a temporary file for the block (restored in every case); show what was caught only
    if the block raises. TensorFlow's C++ start-up lines go to descriptor 2 before its logging is set up, so neither
    TF_CPP_MIN_LOG_LEVEL nor ``sys.stderr`` can hold them back."""
    import tempfile
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as caught:
        saved = os.dup(2)
        os.dup2(caught.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            if failed and (text := caught.read()).strip():      # the log may say why the block failed
                os.write(2, text)


@functools.cache
def import_tensorflow():
    """``import tensorflow`` with its C++ start-up log kept off the terminal (shown only if the import fails), then
    one line naming the device; cached, so the line is printed once."""
    with quiet_stderr_descriptor():
        import tensorflow as tf
        import keras  # noqa: F401  (its first import may log too)
        # the first device query initialises CUDA (cuInit), which logs its failure on machines without a GPU
        gpus = tf.config.list_physical_devices("GPU")
    print(f"device: {describe_device(tf, gpus)}", flush=True)
    return tf


def describe_device(tf, gpus):
    """``CPU`` or ``GPU 0 (<name>)`` (and how many more), for the one start-up line."""
    if not gpus:
        return "CPU"
    name = ""
    with contextlib.suppress(Exception):    # device details are best effort: the line must not stop a run
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "")
    more = f", and {len(gpus) - 1} more GPU{'s' if len(gpus) > 2 else ''}" if len(gpus) > 1 else ""
    return "GPU 0" + (f" ({name})" if name else "") + more


TEMPORARY_PREFIX = ".tmp_"


def temporary_path(path):
    """A name beside ``path`` to write it under before the rename: ``.tmp_<random>_<name>``, unique, so that two runs
    writing the same file at once never write or rename each other's (and the suffix, which Keras checks, is kept)."""
    return path.with_name(f"{TEMPORARY_PREFIX}{os.urandom(4).hex()}_{path.name}")


def fsync(path):
    """Flush the file or folder ``path`` to the disk: a file before it is renamed, its folder after (the rename).
    Not done where it cannot be: on Windows (a folder cannot be opened), on file systems that flush no folder."""
    if os.name == "nt":
        return
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    except OSError as error:
        if error.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(descriptor)


def write_atomically(path, write):
    """Call ``write(temporary_path)``, flush it to the disk, then rename it over ``path``: an interrupted run, even
    a power cut, never leaves half a file, and two runs writing ``path`` at once leave one of theirs whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(path)
    try:
        write(temporary)
        fsync(temporary)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.filename is None:
            error.filename = str(path)      # a failed write() names no file: the one that was being written
        raise
    os.replace(temporary, path)
    fsync(path.parent)


def write_folder(folder, write, complete):
    """Call ``write(temporary_folder)`` beside ``folder``, then rename it to ``folder``: never half a folder. A folder
    already there is kept if it holds the file ``complete`` (another run's, maybe being read), else replaced."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_path(folder)
    temporary.mkdir()
    try:
        write(temporary)
        try:
            os.replace(temporary, folder)
        except OSError:
            if not (folder / complete).is_file():
                shutil.rmtree(folder)
                os.replace(temporary, folder)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def json_ready(data):
    """``data`` with every NaN or infinity replaced by None (``json.dump`` would write non-standard literals)."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: json_ready(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_ready(value) for value in data]
    return data


def write_json(path, data):
    """Write ``data`` to ``path`` atomically, as standard JSON: a number that is not finite becomes null."""
    text = json.dumps(json_ready(data), indent=1, allow_nan=False)
    write_atomically(path, lambda temporary: temporary.write_text(text))


def one_line_warnings():
    """From now on a user warning prints as one line ``warning: ...``; returns the printer it replaced."""
    show_warning = warnings.showwarning

    def one_line(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, UserWarning):
            print(f"warning: {message}", file=sys.stderr if file is None else file, flush=True)
        else:
            show_warning(message, category, filename, lineno, file, line)
    warnings.showwarning = one_line
    return show_warning


# a write the disk refused: full, over quota, read-only, a file too large
FULL_OR_READ_ONLY = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG}


class OneLineParser(argparse.ArgumentParser):
    """A mistyped flag or value is one line naming it, ``error: ...``, and exit code 2, as every other user mistake
    (argparse would print the whole usage first). ``listed``: what ``--help`` lists, named in the line."""

    def __init__(self, *arguments, listed="setting", **keywords):
        super().__init__(*arguments, **keywords)
        self.listed = listed

    def error(self, message):
        self.exit(2, f"error: {message} (--help lists every {self.listed})\n")


def main_guard(function):
    """Run a script's main: a UserError or a write the disk refused (:data:`FULL_OR_READ_ONLY`) is one line on stderr
    and exit code 2; Ctrl-C exits with 130, SIGTERM with 143; user warnings print as one line ``warning: ...``."""
    show_warning = one_line_warnings()
    try:
        function()
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as interrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(128 + getattr(interrupt, "signal_number", signal.SIGINT))
    except OSError as error:
        if error.errno not in FULL_OR_READ_ONLY:
            raise
        where = f" {error.filename}" if error.filename else ""
        print(f"error: could not write{where}: {error.strerror}; the files written before are kept. Free space (or "
              f"choose another folder) and run again", file=sys.stderr)
        sys.exit(2)
    finally:
        warnings.showwarning = show_warning


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, raised in the main thread (KeyboardInterrupt, so it ends a run the way Ctrl-C does)."""

    def __init__(self, signal_number):
        super().__init__(signal.Signals(signal_number).name)
        self.signal_number = int(signal_number)


class StopSignals:
    """While active, SIGINT and SIGTERM raise :class:`Interrupted` (or call ``handler(signal_number, frame)``); inside
    ``deferred()`` they wait until the block ends (saving an epoch). Handlers are restored at exit; outside the main
    thread it does nothing."""

    def __init__(self, handler=None):
        self.previous, self.pending, self.deferring, self.handler = {}, [], False, handler or self._handle

    def _handle(self, signal_number, frame):
        if not self.deferring:
            raise Interrupted(signal_number)
        self.pending.append(signal_number)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self.previous = {number: signal.signal(number, self.handler) for number in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc_info):
        for number, handler in self.previous.items():
            signal.signal(number, handler)

    @contextlib.contextmanager
    def deferred(self):
        self.deferring = True
        try:
            yield
        finally:
            self.deferring = False
        if self.pending:
            raise Interrupted(self.pending[0])
