"""What a training run leaves in ``path_model``, named, found and read in one place: the weights of each epoch and
the latest (``model<k>_epoch_<E>.weights.h5``, ``model<k>.weights.h5``), the resume state of the latest epoch
(``resume_model<k>_epoch_<E>.h5``), the training log (``training_log_model<k>.csv``) and the settings that made its
descriptors (``features_model<k>.json``); ``k`` is the class index.

Every file is read through checks: an unreadable, truncated, empty or incomplete file raises :class:`DamagedFile`
(a UserError: one line naming the file and what is wrong with it), and the callers add the way on
(:func:`resume_options`, :func:`test_options`). A torn last line of the log, the only damage an interrupted
write or copy leaves there, is dropped with a warning.

Writing a set of files (one epoch's) goes through :func:`write_together`: all or none of them replace the files
before, so a save that fails part-way leaves the folder as it was.

A training holds ``lock_model<k>`` in ``path_model`` while it runs (:func:`training_lock`): a second training of
the same class into the same folder stops at once with one line naming the other run; a lock left by a run that
died is taken over with a warning. Testing can ask whether a training is writing (:func:`training_holder`); it
still reads whole epochs, since every file is renamed into place.
"""
import contextlib
import errno
import csv
import io
import json
import os
import re
import socket
import time
import warnings
from datetime import datetime
from pathlib import Path

import numpy as np

from runs.errors import UserError
from parse_xml_annotations import VOC_CLASSES
from runs.runtime import TEMPORARY_PREFIX, fsync, temporary_path, write_atomically

# ---- names ----------------------------------------------------------------------------------------------------

WEIGHTS_SUFFIX = ".weights.h5"


def checkpoint_path(path_model, class_idx, epoch=None):
    """The weights of ``epoch``, or the latest epoch's when it is None."""
    return Path(path_model) / f"model{class_idx}{'' if epoch is None else f'_epoch_{epoch}'}{WEIGHTS_SUFFIX}"


def resume_state_path(path_model, class_idx, epoch):
    """Epoch, ε, optimiser, replay memory, random generators and settings at the end of ``epoch``."""
    return Path(path_model) / f"resume_model{class_idx}_epoch_{epoch}.h5"


def log_path(path_model, class_idx):
    return Path(path_model) / f"training_log_model{class_idx}.csv"


def features_path(path_model, class_idx):
    """The settings that made the trained-on descriptors (:data:`DESCRIBING_SETTINGS`); testing checks its own."""
    return Path(path_model) / f"features_model{class_idx}.json"


def saving_path(path_model, class_idx):
    """:func:`write_together`'s marker, holding the epoch: left behind, a kill or power cut stopped that save."""
    return Path(path_model) / f"saving_model{class_idx}"


# ---- found ----------------------------------------------------------------------------------------------------

def existing_epochs(path_model, class_idx, prefix="model", suffix=WEIGHTS_SUFFIX):
    """Sorted epochs with a file ``<prefix><class_idx>_epoch_<epoch><suffix>`` (by default: kept weights)."""
    pattern = re.compile(rf"{re.escape(prefix)}{class_idx}_epoch_(\d+){re.escape(suffix)}")
    return sorted(int(match.group(1)) for path in Path(path_model).glob(f"{prefix}{class_idx}_epoch_*{suffix}")
                  if (match := pattern.fullmatch(path.name)))


def missing_checkpoint(path_model, class_idx, weights):
    """What to say of a checkpoint ``weights`` that is not there: which epochs ``path_model`` holds."""
    return f"no checkpoint {weights}; epochs saved in {path_model}: {existing_epochs(path_model, class_idx) or 'none'}"


def resume_epochs(path_model, class_idx):
    """Epochs with a resume state in ``path_model`` (normally only the latest), sorted."""
    return existing_epochs(path_model, class_idx, prefix="resume_model", suffix=".h5")


def remove_temporary_files(path_model, class_idx):
    """Half-written files a killed run of this class left behind (never read: the real files are intact)."""
    pattern = re.compile(rf"{re.escape(TEMPORARY_PREFIX)}([0-9a-f]{{8}}_)?(refiner_|scorer_|resume_|features_|"
                         rf"training_log_|saving_)?model{class_idx}(\D.*)?")
    for path in Path(path_model).glob(f"{TEMPORARY_PREFIX}*"):
        if pattern.fullmatch(path.name):
            path.unlink(missing_ok=True)


# ---- damage ---------------------------------------------------------------------------------------------------

class DamagedFile(UserError):
    """A file of the run folder that cannot be read: ``path`` and ``problem`` (what is wrong), in one line."""

    def __init__(self, path, problem):
        super().__init__(f"{path}: {problem}")


def hdf5_problem(path, error):
    """What is wrong with an HDF5 file that h5py (or Keras) could not read, in a few words."""
    size = Path(path).stat().st_size if Path(path).is_file() else None
    text = str(error)
    if size == 0:
        return "empty (0 bytes)"
    if truncated := re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", text):
        return f"truncated ({int(truncated[1]):,} of its {int(truncated[2]):,} bytes)"
    if "file signature not found" in text:
        return f"not an HDF5 file ({size:,} bytes)"
    return f"unreadable ({type(error).__name__}: {text.splitlines()[0] if text else 'no detail'})"


def check_weights(path):
    """Raise :class:`DamagedFile` unless every array of the HDF5 weights file ``path`` can be read and is finite."""
    import h5py
    arrays = []
    try:
        with h5py.File(path, "r") as handle:
            handle.visititems(lambda _, item: arrays.append(item[()]) if isinstance(item, h5py.Dataset) else None)
    except Exception as error:      # h5py raises OSError, KeyError, ValueError or RuntimeError for a damaged file
        raise DamagedFile(path, hdf5_problem(path, error)) from None
    if not arrays:
        raise DamagedFile(path, "incomplete (an HDF5 file without any weights)")
    if not all(np.all(np.isfinite(array)) for array in arrays if np.asarray(array).dtype.kind == "f"):
        raise DamagedFile(path, "damaged (a weight that is not finite: NaN or infinity)")


# ---- the resume state -----------------------------------------------------------------------------------------

RESUME_STATE_ATTRIBUTES = ("epoch", "epsilon", "numpy_rng", "settings")
REPLAY_MEMORY_ARRAYS = ("states", "next_states", "actions", "rewards", "terminals", "pos", "full")
# optional: reinforcement.TRANSITION_FIELDS, and older names of the oracle's and trigger_targets' arrays
REFINE_SAMPLE_ARRAYS = ("descriptors", "windows", "boxes", "seen", "keys", "rng")    # refinement.WindowSample
OPTIONAL_REPLAY_ARRAYS = ("upper_bound_values", "trigger_values", "expert_actions", "targets", "trigger_targets")
# the groups of named arrays: what each is, the arrays it must hold, those it may hold besides
NAMED_ARRAYS = {"replay_memory": ("replay memory", REPLAY_MEMORY_ARRAYS, OPTIONAL_REPLAY_ARRAYS),
                "refine_sample": ("window sample", REFINE_SAMPLE_ARRAYS, ()),
                "score_sample": ("score sample", REFINE_SAMPLE_ARRAYS, ())}     # refinement.ScoreSample


def write_resume_state(path, state):
    """Write ``state`` (as :func:`read_resume_state` returns it) to the HDF5 file ``path``."""
    import h5py
    with h5py.File(path, "w") as handle:
        for name in RESUME_STATE_ATTRIBUTES:
            handle.attrs[name] = state[name] if name in ("epoch", "epsilon") else json.dumps(state[name])
        optimizer = handle.create_group("optimizer")
        for index, (array, variable_path) in enumerate(zip(state["optimizer"], state["optimizer_paths"])):
            optimizer[str(index)] = array
            optimizer[str(index)].attrs["path"] = variable_path
        for group in ("seed_generators", *NAMED_ARRAYS):     # a list of arrays, then named ones
            if state.get(group) is not None:
                arrays = handle.create_group(group)
                for name, array in (state[group].items() if group in NAMED_ARRAYS else enumerate(state[group])):
                    arrays[str(name)] = array


def read_resume_state(path, epoch):
    """The resume state of ``epoch``: ``epoch``, ``epsilon``, ``numpy_rng`` and ``settings`` (dicts), ``optimizer``
    and ``optimizer_paths``, ``seed_generators`` (lists in variable order), ``replay_memory``, ``refine_sample`` and
    ``score_sample`` (None when not saved). All is read before use, so a damaged file raises :class:`DamagedFile`,
    changing nothing."""
    import h5py
    try:
        with h5py.File(path, "r") as handle:
            if missing := [name for name in RESUME_STATE_ATTRIBUTES if name not in handle.attrs] + \
                    [group for group in ("optimizer", "seed_generators") if group not in handle]:
                raise DamagedFile(path, f"incomplete (no {', '.join(missing)}): not a resume state of this project")
            state = {name: read_attribute(path, handle.attrs[name], name) for name in RESUME_STATE_ATTRIBUTES}
            for group in ("optimizer", "seed_generators"):      # lists of arrays named 0, 1, …
                keys = sorted(handle[group], key=lambda key: int(key) if key.isdigit() else -1)
                if keys != [str(index) for index in range(len(keys))]:
                    raise DamagedFile(path, f"incomplete (its {group} arrays are {', '.join(keys)}, not 0 to "
                                            f"{len(keys) - 1})")
                state[group] = [np.asarray(handle[group][key]) for key in keys]
            state["optimizer_paths"] = [str(handle[f"optimizer/{index}"].attrs.get("path", ""))
                                        for index in range(len(state["optimizer"]))]
            for group, (what, required, optional) in NAMED_ARRAYS.items():
                stored = handle.get(group)
                if stored is not None and (missing := [name for name in required if name not in stored]):
                    raise DamagedFile(path, f"incomplete (its {what} has no {', '.join(missing)})")
                state[group] = None if stored is None else {name: np.asarray(stored[name])
                                                            for name in required + optional if name in stored}
    except DamagedFile:
        raise
    except Exception as error:      # h5py's errors on a damaged file (see check_weights), a damaged attribute or JSON
        raise DamagedFile(path, hdf5_problem(path, error)) from None
    if state["epoch"] != epoch:
        raise DamagedFile(path, f"holds epoch {state['epoch']}, its name says epoch {epoch}")
    return state


def read_attribute(path, value, name):
    """The resume state's attribute ``name``, checked: ``epoch`` a whole number ≥ 0, ``epsilon`` in 0..1,
    ``numpy_rng`` a state NumPy's default generator takes, ``settings`` a JSON object; else :class:`DamagedFile`."""
    try:
        # epoch and epsilon: a 0-d array or a number (text or a longer array raise here); the others: JSON
        value = float(value) if name in ("epoch", "epsilon") else json.loads(value)
        if name == "epoch" and not (value >= 0 and value == int(value)):
            raise ValueError(f"{value} is not a whole number ≥ 0")
        if name == "epsilon" and not 0 <= value <= 1:
            raise ValueError(f"{value} is not a number in 0..1")
        if name == "numpy_rng":
            np.random.default_rng().bit_generator.state = value    # as -n sets it: a wrong state raises here
        if name == "settings" and not isinstance(value, dict):
            raise ValueError(f"a JSON {type(value).__name__}, not an object naming each setting")
        return int(value) if name == "epoch" else value
    except Exception as error:      # float(), json.loads (RecursionError too) and NumPy's state setter
        meaning = {"numpy_rng": " (the random generator's state)", "settings": " (the run's settings)"}.get(name, "")
        raise DamagedFile(path, f"its attribute {name}{meaning} is damaged ({type(error).__name__}: "
                                f"{str(error)[:200]})") from None


# ---- the training log -----------------------------------------------------------------------------------------

LOG_FIELDS = ("epoch", "epsilon", "images", "searches", "steps", "mean_reward", "triggers", "correct_triggers",
              "hit_rate", "mean_trigger_iou", "updates", "mean_loss", "vgg_forwards", "cache_hits", "steps_per_s",
              "seconds")


def write_log(path, rows):
    """The log rows as CSV in ``path`` (the caller writes it to a temporary name: :func:`write_together`)."""
    # columns not in LOG_FIELDS (older runs') are kept, at the end
    fields = LOG_FIELDS + tuple(dict.fromkeys(key for row in rows for key in row if key not in LOG_FIELDS))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows({key: f"{value:.6g}" if isinstance(value, float) else value for key, value in row.items()}
                         for row in rows)


def write_features_file(path, settings, features=None):
    """:data:`DESCRIBING_SETTINGS` and ``features``' model, backbone and descriptor size, as JSON in ``path``."""
    describing = {name: str(getattr(settings, name)) if name == "path_vgg" else getattr(settings, name)
                  for name in DESCRIBING_SETTINGS if hasattr(settings, name)}
    if features is not None:
        describing.update(model=features.name, backbone=features.backbone.name,
                          descriptor_size=int(features.descriptor_size))
    Path(path).write_text(json.dumps(describing, indent=1) + "\n")


def read_features_file(path):
    """What :func:`write_features_file` wrote in ``path`` (a Path), or None without the file (earlier runs, the 2016
    files). It only serves a check, so damage is a warning: an unreadable file gives None, a value training would not
    write is left out."""
    from settings import RULES
    if not path.is_file():
        return None
    try:
        describing = json.loads(path.read_text())
        problem = None if isinstance(describing, dict) else \
            f"a JSON {type(describing).__name__}, not an object naming the describing settings"
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:  # RecursionError: nested too deeply
        problem = f"unreadable ({type(error).__name__}: {str(error)[:200]})"
    if problem:
        warnings.warn(f"{path}: {problem}; the features it was trained on are not checked", UserWarning, stacklevel=2)
        return None
    rules = {"path_vgg": lambda value: isinstance(value, str) and value != "", "model": FEATURE_CLASSES.__contains__,
             "vgg_precision": RULES["vgg_precision"].holds, "scale_subregion": RULES["scale_subregion"].holds}
    for name, holds in rules.items():
        if name in describing and not holds(describing[name]):
            warnings.warn(f"{path}: {name} is {describing[name]!r:.60}, not a value training writes; it is not "
                          f"checked", UserWarning, stacklevel=2)
            del describing[name]
    return describing


FEATURE_CLASSES = {"image_zooms": "features.ImageZoomsFeatures", "pool45_crops": "features.Pool45CropsFeatures"}
# path_vgg keywords: weights that are the same wherever they are read from
NAMED_VGG_WEIGHTS = ("random", "imagenet", "hed")


def check_trained_features(path_model, class_idx, path_vgg, scale_subregion, what="this test", model=None):
    """Check that a trained agent gets the descriptors it was trained on (:func:`features_path`): another ``model``
    is a UserError; another ``path_vgg`` a UserError where either is a keyword ('random', 'hed', …), a warning where
    both are files (the weights may have moved); another ``scale_subregion`` a warning (the other hierarchy may be
    meant). Without the file nothing is checked."""
    path = features_path(path_model, class_idx)
    trained = read_features_file(path) or {}
    if model is not None and trained.get("model") not in (None, model):
        remedy = (f"test it with {trained['model']}_testing.py" if what == "this test" else
                  f"pass the features it was trained on ({FEATURE_CLASSES.get(trained['model'], 'its describer')})")
        raise UserError(f"{path_model}/ was trained on {trained['model']} features ({path.name}), {what} describes "
                        f"regions with {model}'s: {remedy}")
    given, used = str(path_vgg), str(trained.get("path_vgg", path_vgg))
    if path_vgg is not None and given != used:
        if given in NAMED_VGG_WEIGHTS or used in NAMED_VGG_WEIGHTS:
            remedy = f"Test with --path_vgg {used}" if what == "this test" else f"Pass path_vgg={used!r}"
            raise UserError(f"{path_model}/ was trained on path_vgg {used!r} ({path.name}), {what} uses path_vgg "
                            f"{given!r}: its Q-network reads other descriptors. {remedy}, or train on {given} first")
        if Path(given).resolve() != Path(used).resolve():
            warnings.warn(f"{path_model}/ was trained on path_vgg {used!r} ({path.name}), {what} uses {given!r}: "
                          f"unless the two files hold the same weights, its Q-network reads other descriptors",
                          UserWarning, stacklevel=3)
    if (scale := trained.get("scale_subregion")) is not None and abs(scale - float(scale_subregion)) > 1e-9:
        warnings.warn(f"{path_model}/ was trained with scale_subregion {scale} ({path.name}), {what} searches with "
                      f"{scale_subregion}", UserWarning, stacklevel=3)


# the settings that decide what the Q-network reads: the VGG-16 weights, their arithmetic, the hierarchy
DESCRIBING_SETTINGS = ("path_vgg", "vgg_precision", "scale_subregion")


def read_log(path):
    """The rows of the training log ``path`` (``[]`` when there is none): epoch an int, the rest floats, an empty
    field None. A torn last line is dropped with a warning; any other damage raises :class:`DamagedFile`."""
    path = Path(path)
    if not path.is_file():
        return []
    try:
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise DamagedFile(path, f"unreadable ({error})") from None
    if not text.strip():
        raise DamagedFile(path, f"empty ({len(text)} bytes), not even its header")
    lines = text.splitlines(keepends=True)
    header = next(csv.reader([lines[0]]))
    if not lines[0].endswith("\n") or header[:1] != ["epoch"] or "" in header or len(set(header)) < len(header):
        raise DamagedFile(path, f"line 1 is not the header of a training log ({lines[0].strip()[:60]!r})")
    if not lines[-1].endswith("\n"):
        # the writer ends every line with a line break: a last line without one is torn, however it parses
        warnings.warn(f"{path}: its last line is torn (an interrupted write or copy): dropped, the log has no row "
                      f"for that epoch", UserWarning, stacklevel=2)
        lines = lines[:-1]
    rows = []
    for number, values in enumerate(csv.reader(io.StringIO("".join(lines[1:]))), start=2):
        if len(values) != len(header):
            raise DamagedFile(path, f"line {number} has {len(values)} fields, the header {len(header)}")
        try:
            rows.append({key: int(value) if key == "epoch" else None if value == "" else float(value)
                         for key, value in zip(header, values)})
        except ValueError as error:
            raise DamagedFile(path, f"line {number} is damaged ({error})") from None
    return rows


# ---- the way on -----------------------------------------------------------------------------------------------

def interrupted_save(path_model, class_idx):
    """``(epoch, problem)`` when :func:`saving_path` shows the save of ``epoch`` stopped part-way, else None."""
    path = saving_path(path_model, class_idx)
    if not path.is_file() or training_holder(path_model, class_idx):
        return None
    text = path.read_text(errors="replace").strip()
    epoch = int(text) if text.isdigit() else 0
    return epoch, (f"{path_model}/: the save of epoch {epoch} was stopped between the renames of its files (a kill or "
                   f"a power cut; {path.name} is left), so its files and the latest ones disagree")


def resume_options(path_model, class_idx, before):
    """How to go on when epoch ``before`` cannot be resumed: an earlier epoch that can be resumed exactly (its
    resume state kept), else one whose weights alone are kept, else a fresh start."""
    weights = [epoch for epoch in existing_epochs(path_model, class_idx) if epoch < before]
    if exact := [epoch for epoch in resume_epochs(path_model, class_idx) if epoch in weights]:
        return f"epoch {exact[-1]} can be resumed exactly (its resume state is kept): -n {exact[-1] + 1}"
    if weights:
        return (f"epoch {weights[-1]} can be resumed from its weights alone with -n {weights[-1] + 1} (inexact: a "
                f"fresh optimiser and replay memory, said so when it starts), or start afresh with -n 0")
    return "no earlier epoch is saved: start afresh with -n 0"


def test_options(path_model, class_idx, damaged):
    """Which other saved weights a test can use when the file ``damaged`` cannot be read."""
    epochs = existing_epochs(path_model, class_idx)
    if Path(damaged) == checkpoint_path(path_model, class_idx) and epochs:
        return (f"the latest epoch's own file {checkpoint_path(path_model, class_idx, epochs[-1]).name} holds the "
                f"same weights: test it with --epoch {epochs[-1]}")
    if others := [epoch for epoch in epochs if checkpoint_path(path_model, class_idx, epoch) != Path(damaged)]:
        return f"test another saved epoch with --epoch N (saved: {others})"
    return "no other epoch is saved: train again"


# ---- writing a set of files -----------------------------------------------------------------------------------

def write_together(writes, marker=None):
    """``writes``: ``[(path, write)]``, each ``write(temporary_path)`` writing beside its path; once all are written
    and synced they are renamed over their paths in order. A failed write removes the temporaries and raises, leaving
    the files as they were. ``marker``: ``(path, text)``, there only during the renames (:func:`interrupted_save`)."""
    temporaries = []
    try:
        for path, write in writes:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            temporaries.append((temporary_path(path), path))
            write(temporaries[-1][0])
            fsync(temporaries[-1][0])
        if folders := [path for _, path in temporaries if path.is_dir()]:  # its rename would fail after those before
            raise IsADirectoryError(errno.EISDIR, "a folder is in the way", str(folders[0]))
    except BaseException:
        for temporary, _ in temporaries:
            with contextlib.suppress(OSError):      # the write's own error is the one to report
                temporary.unlink(missing_ok=True)
        raise
    if marker is not None:
        write_atomically(marker[0], lambda temporary: Path(temporary).write_text(marker[1]))
    for temporary, path in temporaries:
        os.replace(temporary, path)
    for folder in {path.parent for _, path in temporaries}:
        fsync(folder)
    if marker is not None:
        Path(marker[0]).unlink()
        fsync(Path(marker[0]).parent)


# ---- the lock: one training per class and folder --------------------------------------------------------------

def lock_path(path_model, class_idx):
    """The lock of a training of class ``class_idx`` in ``path_model``: JSON ``{pid, host, started, ticks}``."""
    return Path(path_model) / f"lock_model{class_idx}"


# a takeover marker older than this was left by a process killed while taking over a stale lock (which takes ms)
TAKEOVER_SECONDS = 30


def _process_stat(pid):
    """``(state, ticks)`` of ``pid`` from ``/proc/<pid>/stat``, or None without /proc: ``Z`` for an unreaped ended
    process; its start in clock ticks after boot tells the run that locked from a later process given its pid."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return fields[0], int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def _read_holder(path):
    """The run recorded in the lock ``path``: a dict, ``{}`` when the file cannot be read as one, None without it."""
    try:
        holder = json.loads(Path(path).read_bytes().decode("utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):       # ValueError: not UTF-8, not JSON
        return {}
    return holder if isinstance(holder, dict) else {}


def _holder_alive(holder):
    """Whether the run a lock records may still be running: its process (not a later one given its pid) is alive on
    this host. A run on another host cannot be checked and counts as alive."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0 or not isinstance(holder.get("host"), str):
        return False                # not a lock this project wrote in full
    if holder["host"] != socket.gethostname() or os.name == "nt":  # Windows' os.kill(pid, 0) would end the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:         # alive, another user's process
        pass
    except OSError:
        return True
    stat = _process_stat(pid)       # without /proc: alive; else not ended (a zombie), and not a later process
    return stat is None or stat[0] not in ("Z", "X") and holder.get("ticks") in (None, stat[1])


def describe_holder(holder):
    """``process 1234 on host, started 2024-05-01T10:00:00+02:00`` for the lines that name a run."""
    return (f"process {holder.get('pid', '?')} on {holder.get('host', '?')}, "
            f"started {holder.get('started', 'at an unknown time')}")


def _write_lock(path, record, replace=False):
    """Put ``record`` in the lock ``path`` whole: written under a temporary name, then linked (fails if a lock is
    there: False) or, with ``replace``, renamed over the stale one. A reader never sees half a lock."""
    temporary = path.with_name(f"{TEMPORARY_PREFIX}{path.name}_{os.getpid()}")
    temporary.write_text(json.dumps(record) + "\n")
    try:
        if replace:
            os.replace(temporary, path)
            return True
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        except OSError:             # a file system without hard links: create it exclusively, then write
            with os.fdopen(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644), "w") as handle:
                handle.write(json.dumps(record) + "\n")
        return True
    except FileExistsError:         # the exclusive create met a lock
        return False
    finally:
        temporary.unlink(missing_ok=True)


def _take_over(path, stale, ours):
    """Replace the stale lock ``path`` (holding ``stale``) with ``ours``; False if another process takes it over."""
    marker = path.with_name(f"{path.name}.takeover")
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    except FileExistsError:
        with contextlib.suppress(OSError):
            if time.time() - marker.stat().st_mtime > TAKEOVER_SECONDS:
                marker.unlink()
        return False
    try:
        return _read_holder(path) == stale and _write_lock(path, ours, replace=True)
    finally:
        marker.unlink(missing_ok=True)


@contextlib.contextmanager
def training_lock(path_model, class_idx):
    """Hold ``lock_model<k>`` in ``path_model`` for the block (yields its path): a UserError naming the other run when
    a live run holds it; a stale or unreadable lock is taken over with a warning. Released however the block ends."""
    path = lock_path(path_model, class_idx)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        blocking = next((parent for parent in (path.parent, *path.parent.parents) if parent.exists()), None)
        why = f"{blocking} is a file" if blocking is not None and not blocking.is_dir() else error.strerror or error
        raise UserError(f"path_model {path_model}: cannot create the folder ({why})") from None
    ours = {"pid": os.getpid(), "host": socket.gethostname(),
            "started": datetime.now().astimezone().isoformat(timespec="seconds"),
            "ticks": (_process_stat(os.getpid()) or (None, None))[1]}
    for _ in range(20):
        try:
            if _write_lock(path, ours):
                break
        except OSError as error:
            raise UserError(f"path_model {path_model}/: cannot write its lock {path.name} "
                            f"({error.strerror or error})") from None
        if (holder := _read_holder(path)) is None:      # released meanwhile
            continue
        if _holder_alive(holder):
            raise UserError(f"{path_model}/ is in use by another training of class {VOC_CLASSES[class_idx]}: "
                            f"{describe_holder(holder)} ({path.name}). Wait for it to end or train into another "
                            f"path_model" + ("" if holder.get("host") == socket.gethostname() else
                                             f"; if that run is gone, delete {path}"))
        if _take_over(path, holder, ours):
            what = describe_holder(holder) if holder else "a run that left it unreadable"
            warnings.warn(f"{path_model}/: the lock {path.name} of {what} is stale (that run is no longer "
                          f"running); taken over", UserWarning, stacklevel=3)
            break
        time.sleep(0.05)            # another process is taking it over: look again
    else:
        raise UserError(f"{path_model}/: could not take its lock {path.name} (other runs keep taking it); try again")
    try:
        yield path
    finally:
        if _read_holder(path) == ours:      # never remove the lock of a run that took ours over
            path.unlink(missing_ok=True)


def training_holder(path_model, class_idx):
    """The live run holding the training lock of class ``class_idx`` (:func:`describe_holder`), or None."""
    holder = _read_holder(lock_path(path_model, class_idx))
    return describe_holder(holder) if holder and _holder_alive(holder) else None
