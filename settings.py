"""Settings at the top of a script, each overridable by a flag of the same name (nanoGPT's configurator, typed).

``configure(defaults, argv)`` turns a dict of plain values into argparse flags ``--name`` whose type is the
default's type; unknown flags and wrongly typed values stop with argparse's one-line error (exit code 2).
"""
from __future__ import annotations

import argparse
import math
import numbers
import os
import sys
import tokenize
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Callable, NamedTuple

from runs.errors import UserError
from runs.runtime import TEMPORARY_PREFIX, OneLineParser


BOOLEANS = {**dict.fromkeys(("1", "true", "yes", "on"), True), **dict.fromkeys(("0", "false", "no", "off"), False)}


def parse_bool(text):
    """0/1/true/false/yes/no, as the 2016 scripts used 0/1 flags."""
    if str(text).strip().lower() not in BOOLEANS:
        raise argparse.ArgumentTypeError(f"expected 0/1 or true/false, got {text!r}")
    return BOOLEANS[str(text).strip().lower()]


def parse_optional_int(text):
    return None if str(text).lower() in ("none", "") else int(text)


class Defaults(dict):
    """A script's settings (name → default) with their meanings (``comments``: name → the comment beside it)."""

    def __init__(self, values, comments):
        super().__init__(values)
        self.comments = comments


def script_settings(namespace):
    """The plain settings a script defines or imports from a ``*_settings`` module (lower-case names bound to numbers,
    strings or None) with the comments beside them (:func:`read_comments`), which ``--help`` and the README use."""
    values = {name: value for name, value in namespace.items()
              if not name.startswith("_") and name.islower() and isinstance(value, (int, float, str, type(None)))}
    own = read_comments(namespace["__file__"]) if namespace.get("__file__") else {}
    comments = {}
    for module in namespace.values():
        if isinstance(module, ModuleType) and module.__name__.endswith("_settings"):
            comments.update(read_comments(module.__file__))
    # the script's own settings first (a stable sort), and its own comment wins
    return Defaults(sorted(values.items(), key=lambda item: item[0] not in own), {**comments, **own})


def read_comments(path):
    """``{name: comment}`` for the top-level ``name = value  # comment`` lines of the Python file ``path``; comment
    lines that follow, indented to the same column, continue the comment."""
    comments, current, column = {}, None, None
    with open(path, encoding="utf-8") as handle:
        tokens = [token for token in tokenize.generate_tokens(handle.readline)
                  if token.type not in (tokenize.INDENT, tokenize.DEDENT, tokenize.NL, tokenize.NEWLINE)]
    for index, token in enumerate(tokens):
        if token.type != tokenize.COMMENT:
            continue
        code = [before for before in tokens[:index] if before.start[0] == token.start[0]]   # on the comment's line
        text = token.string.lstrip("#").strip()
        if len(code) > 1 and code[0].type == tokenize.NAME and code[0].start[1] == 0 and code[1].string == "=":
            current, column = code[0].string, token.start[1]
            comments[current] = text
        elif not code and current is not None and token.start[1] == column:
            comments[current] += " " + text
        else:
            current = None
    return comments


def help_text(name, value, comments):
    """What ``--help`` says of a setting: its meaning, the values it takes and its default."""
    accepts = f"takes {RULES[name].accepts}; " if name in RULES else "a path; " if name.startswith("path") else ""
    return f"{comments.get(name, '').rstrip('.')} ({accepts}default: {value!r})".replace("%", "%%").strip()


def configure(defaults, argv=None, description=None, extra=None):
    """Parse ``argv`` against ``defaults`` (name → default value) into a namespace of settings.
    ``extra(parser)`` adds flags not in ``defaults``. A ``None`` default takes an optional integer unless ``extra``
    declares it; ``class_object`` is a string. A removed option is a UserError (:func:`check_removed`).
    ``explicit``: the settings whose flag was given (demo values yield to them)."""
    given = sys.argv[1:] if argv is None else argv
    check_removed(given)
    comments = getattr(defaults, "comments", {})
    from features import PATH_VGG_HELP     # features imports TensorFlow only inside its functions
    parser = OneLineParser(description=description, epilog=PATH_VGG_HELP if "path_vgg" in defaults else None,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    if extra is not None:
        extra(parser)
    declared = {action.dest: action for action in parser._actions}
    # a flag declared by ``extra`` still takes its default from the script's variable, and its meaning
    parser.set_defaults(**{name: value for name, value in defaults.items() if name in declared})
    for name, value in defaults.items():
        if name not in declared:
            kind = (str if name == "class_object" else parse_optional_int if value is None else
                    parse_bool if isinstance(value, bool) else type(value))       # int, float or str
            metavar = "CLASS" if name == "class_object" else "INT" if value is None else type(value).__name__.upper()
            parser.add_argument(f"--{name}", type=kind, default=value, help=help_text(name, value, comments),
                                metavar=metavar)
        elif name in comments:
            declared[name].help = help_text(name, value, comments)
    settings = SimpleNamespace(**vars(parser.parse_args(argv)))
    settings.explicit = {name for name in vars(settings)
                         if any(arg == f"--{name}" or arg.startswith(f"--{name}=") for arg in given)}
    return settings


# ---------------------------------------------------------------------------------------------------------------
# the scripts' own flags and --demo

DEMO_DATA = Path("data/synthetic_voc")


def training_flags(parser):
    """Flags of the training scripts beyond their settings."""
    parser.add_argument("-n", "--n", type=int, default=0, metavar="N",
                        help="start at epoch N, resuming from the checkpoint of epoch N-1 (default: 0, a fresh run); "
                             "with several classes (all, or a list) any N > 0 continues each class after its own "
                             "latest saved epoch, and a class with none starts at epoch 0")
    parser.add_argument("--demo", action="store_true", help="the demo: the synthetic dataset (generated if absent) "
                        "and the values of the script's DEMO, where no flag sets them (default: off)")


def testing_flags(parser):
    """Flags of the testing scripts beyond their settings (choices checked here). The help of ``--agent``,
    ``--detections`` and ``--epoch`` is their setting's comment (:func:`configure`)."""
    parser.add_argument("--demo", action="store_true", help="the demo: the synthetic dataset's test split and the "
                        "values of the script's DEMO, where no flag sets them (default: off)")
    parser.add_argument("--agent", choices=("trained", "random", "upper_bound"), default="trained")
    parser.add_argument("--detections", choices=("visited", "triggered"), default="visited")
    parser.add_argument("--image", action="append", default=None, metavar="FILE",
                        help="search this image (repeat for more) with the trained agent instead of testing on a "
                             "dataset: no annotations needed; writes <path_testing_folder>/images/<name>.png and "
                             "detections.json. Detections are the triggered regions unless --detections is given "
                             "(default: none, the dataset is tested)")
    parser.add_argument("--epoch", type=parse_epochs, default=-1, metavar="E[,E...]")


def parse_epochs(text):
    """``-1`` or ``4`` → an int; ``0,4,9`` → a list; ``all`` → every saved epoch (resolved in ``test``); the removed
    ``best`` → a UserError."""
    text = str(text).strip()
    if text == "best":
        raise UserError(f"--epoch best: {removed_message('validation_images')}")
    if text == "all":
        return text
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an epoch, a comma-separated list or 'all', got {text!r}") from None
    if not values:
        raise argparse.ArgumentTypeError("no epoch given")
    return values[0] if len(values) == 1 and "," not in text else values


# a learning option given explicitly with --demo drops the demo's options it cannot be combined with
DEMO_OPTIONS_EXCLUDED_BY = {"oracle": ("trigger_targets", "expert_margin")}


def apply_demo(settings, demo_values):
    """``--demo``: the demo's values (:func:`apply_demo_values`), checked; the dataset is generated later
    (:func:`ensure_demo_dataset`)."""
    if settings.demo:
        from parse_xml_annotations import class_ids
        apply_demo_values(settings, demo_values)
        check_settings(settings)
        class_ids(settings.class_object)


def ensure_demo_dataset(settings, path_voc):
    """``--demo``'s synthetic dataset at ``path_voc``, generated if absent; called after the runs' checks, so a
    mistake in the settings, the class or ``-n`` is found first."""
    if getattr(settings, "demo", False) and Path(path_voc) == DEMO_DATA:
        from synthetic_dataset import ensure_synthetic_voc
        ensure_synthetic_voc(DEMO_DATA)


def apply_demo_values(settings, demo_values):
    """The demo's values, except where a flag was given or an explicit option excludes them
    (:data:`DEMO_OPTIONS_EXCLUDED_BY`: they keep the script's default)."""
    excluded = set()
    for option, names in DEMO_OPTIONS_EXCLUDED_BY.items():
        if option in settings.explicit and getattr(settings, option, 0):
            dropped = [name for name in names if name in demo_values and name not in settings.explicit]
            if dropped:
                print(f"--demo with {option} {getattr(settings, option)}: the demo's "
                      f"{', '.join(f'{name} {demo_values[name]}' for name in dropped)} not applied "
                      f"({option} takes none of them)")
            excluded.update(dropped)
    for name, value in demo_values.items():
        if name not in settings.explicit and name not in excluded:
            setattr(settings, name, value)


def class_index(settings):
    from parse_xml_annotations import class_id
    return class_id(settings.class_object) - 1


# ---------------------------------------------------------------------------------------------------------------
# checks of the user's settings before TensorFlow is imported (one line in under 2 s, not 7 lines after 5 s)

def is_whole_number(value, least=0):
    """Whether a setting's ``value`` is an integer (not a boolean) of at least ``least``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= least


def check_dataset(path_voc, set_name, class_object, setting_name):
    """The dataset folder, its ``ImageSets/Main`` and, for one class, ``<class>_<set_name>.txt`` exist."""
    from parse_xml_annotations import class_ids, class_name
    path_voc = Path(path_voc)
    if not path_voc.is_dir():
        raise UserError(f"dataset folder not found: {path_voc} ({setting_name})")
    image_sets = path_voc / "ImageSets" / "Main"
    if not image_sets.is_dir():
        raise UserError(f"image set folder not found: {image_sets} ({setting_name}: a PASCAL VOC root holds "
                        f"Annotations/, JPEGImages/ and ImageSets/Main/)")
    ids = class_ids(class_object)
    list_file = image_sets / f"{class_name(ids[0])}_{set_name}.txt"
    if len(ids) == 1 and not list_file.is_file():
        raise UserError(f"image set file not found: {list_file}")


def check_path_vgg(path_vgg):
    """``path_vgg`` is 'random', 'imagenet', 'hed' with its package installed, or an existing file."""
    from features import PATH_VGG_OPTIONS, hed_weights_path   # features imports TensorFlow only inside functions
    if str(path_vgg) == "hed":
        hed_weights_path()
    if str(path_vgg) in ("random", "imagenet", "hed"):
        return
    import h5py
    problem = ("no such file" if not Path(path_vgg).is_file() else None if h5py.is_hdf5(path_vgg) else
               "not an HDF5 file (VGG-16 weights are a Keras .h5 file)")
    if problem:
        raise UserError(f"path_vgg={str(path_vgg)!r}: {problem}. path_vgg takes {PATH_VGG_OPTIONS}.")


def check_output_folder(folder, setting_name, files=()):
    """The run can write ``files`` in ``folder`` (the setting ``setting_name``), checked before the work so a run
    does not lose its searches at the end (a trial file in it or the nearest existing folder above). Anything in
    the way (a file, a dangling link, a non-file at one of ``files``) or an unwritable folder is a UserError."""
    folder = Path(folder)
    for name in files:
        path = folder / name
        if path.is_symlink() or path.exists() and not path.is_file():
            kind = "a link" if path.is_symlink() else "a folder" if path.is_dir() else "not a file"
            raise UserError(f"{setting_name} {folder}: {path} is {kind}, and the run writes its {name} there; "
                            f"move it away")
    try:        # a link whose target is missing is there too: the folder cannot be created in its place
        nearest = next(path for path in (folder, *folder.parents) if path.exists() or path.is_symlink())
    except OSError as error:        # a folder above it that cannot be looked into
        raise UserError(f"{setting_name} {folder}: cannot reach the folder ({error.strerror or error})") from None
    if not nearest.is_dir():
        kind = (f"a link to {os.readlink(nearest)}, which does not exist" if not nearest.exists() else
                "a file" if nearest.is_file() else "a device, a pipe or a socket, not a folder")
        raise UserError(f"{setting_name} {folder}: cannot create the folder ({nearest} is {kind})")
    trial = nearest / f"{TEMPORARY_PREFIX}write_check_{os.getpid()}"
    try:
        trial.write_bytes(b"")
        trial.unlink()
    except OSError as error:
        where = "it" if nearest == folder else f"{nearest}, where it would be created"
        raise UserError(f"{setting_name} {folder}: cannot write in {where} ({error.strerror or error})") from None


# ---------------------------------------------------------------------------------------------------------------
# what each setting takes, checked before TensorFlow is imported (detect() applies the same rules)

class Rule(NamedTuple):
    """The values a setting takes: ``accepts`` says it (``--help``, the README, the error), ``holds(value)`` checks."""

    accepts: str
    holds: Callable


def number(accepts, holds):
    """A rule for a finite real number (not a boolean) that ``holds``."""
    return Rule(accepts, lambda value: isinstance(value, numbers.Real) and not isinstance(value, bool)
                and math.isfinite(value) and holds(value))


def whole(least):
    return Rule(f"a whole number ≥ {least}", lambda value: is_whole_number(value, least))


def one_of(*values):
    names = [str(value) for value in values]
    return Rule(f"{', '.join(names[:-1])} or {names[-1]}", lambda value: value in values)


SWITCH, FRACTION = one_of(0, 1), number("a number ≥ 0 and ≤ 1", lambda value: 0 <= value <= 1)
RULES = {
    "two_databases": SWITCH, "max_images": Rule("a whole number ≥ 1, or None (all)",
                                                lambda value: value is None or is_whole_number(value, 1)),
    "max_pixels": whole(1), "vgg_precision": one_of("float32", "bfloat16", "auto"),
    "weights_order": one_of("auto", "channels_first", "channels_last"),
    "scale_subregion": number("a number > 0 and < 1", lambda value: 0 < value < 1), "number_of_steps": whole(1),
    "bool_draw": SWITCH, "draw_every": whole(1), "epochs": whole(1), "gamma": FRACTION, "epsilon": FRACTION,
    "batch_size": whole(1), "buffer_experience_replay": whole(1),
    "learning_rate": number("a number ≥ 0 (0: frozen)", lambda value: value >= 0),
    "seed": Rule("a whole number from 0 to 4294967295", lambda value: is_whole_number(value, 0) and value < 2 ** 32),
    "save_replay_memory": SWITCH, "checkpoint_every": whole(1), "cache_mb": whole(0), "map_cache_mb": whole(0),
    "trigger_targets": SWITCH, "expert_margin": number("a number ≥ 0", lambda value: value >= 0), "oracle": SWITCH,
    "only_first_object": SWITCH, "agent": one_of("trained", "random", "upper_bound"),
    "detections": one_of("visited", "triggered"), "duplicates": one_of("keep", "demote"), "draw_images": whole(0),
    "refine": SWITCH, "score_head": SWITCH, "score": one_of("trigger", "learned"),
    "class_object": Rule("a VOC id 1-20 or class name, all, or a comma list", lambda value: True),
    "epoch": Rule("-1 (the latest), an epoch ≥ 0, a comma list of them or all",
                  lambda value: value in (-1, "all") or all(is_whole_number(epoch, 0) for epoch in (
                      value if isinstance(value, list) and value else [value]))),
}


# the settings that name files or folders (``image``: a list of files); each of their names must fit the filesystem
PATH_SETTINGS = ("path_voc", "path_voc2", "path_voc_test", "path_model", "path_testing_folder", "path_vgg", "image")
NAME_MAX = 255          # bytes in one file or folder name (Linux, macOS, Windows)


def check_path_names(name, value):
    """``value`` (the setting ``name``) is a path whose every name fits the filesystem: else a UserError."""
    if not isinstance(value, (str, os.PathLike)) or str(value) == "":
        raise UserError(f"{name} must be a path (a text naming a file or folder), got {value!r}")
    for part in Path(value).parts:
        if (size := len(os.fsencode(part))) > NAME_MAX:
            raise UserError(f"{name}: the name {part[:40]!r}... in it is {size} bytes long, more than a file or "
                            f"folder name may be ({NAME_MAX})")


def check_settings(settings):
    """Every setting with a rule holds it, the paths' names fit the filesystem and the settings fit together; else a
    UserError naming the setting."""
    optional = {"image", *(() if getattr(settings, "two_databases", 0) else ("path_voc2",))}    # None: not used
    for name in PATH_SETTINGS:
        value = getattr(settings, name, None)
        if not hasattr(settings, name) or name in optional and value is None:
            continue
        for path in value if name == "image" and isinstance(value, (list, tuple)) else [value]:
            check_path_names(name, path)
    for name, rule in RULES.items():
        if hasattr(settings, name) and not rule.holds(getattr(settings, name)):
            raise UserError(f"{name} must be {rule.accepts}, got {getattr(settings, name)!r}")
    if hasattr(settings, "batch_size") and settings.batch_size > settings.buffer_experience_replay:
        raise UserError(f"batch_size {settings.batch_size} is larger than the replay memory "
                        f"(buffer_experience_replay {settings.buffer_experience_replay}): a minibatch is drawn from it")
    if getattr(settings, "oracle", 0) and (settings.trigger_targets or settings.expert_margin):
        raise UserError("oracle 1 regresses Q to the upper bound's values with the squared error: it takes no "
                        "trigger_targets or expert_margin")


# ---------------------------------------------------------------------------------------------------------------
# options that measurements showed did not help: removed, their figures kept in docs/learning.md

REMOVED_OPTIONS = {"flip": 0, "update_every": 1, "images_per_epoch": 0, "guided_exploration": 0, "standardize": 0,
                   "weight_decay": 0.0, "trigger_bias": 0.0, "target_update": 0, "double_dqn": 0, "loss": "mse",
                   "validation_images": 0, "update_precision": "float32"}      # each with the value that meant "off"
# the last commit that had each
REMOVED_AT = {**dict.fromkeys(("flip", "update_every", "images_per_epoch", "guided_exploration", "standardize",
                               "weight_decay", "trigger_bias"), "08670f3"),
              **dict.fromkeys(("target_update", "double_dqn", "loss", "validation_images"), "92bc4d5"),
              "update_precision": "d406629"}


def removed_message(name):
    return (f"{name} was removed: measured, it did not help (docs/learning.md#removed-options keeps its figures and "
            f"command; the last commit with it is {REMOVED_AT[name]})")


def check_removed(argv):
    """A removed option on the command line: a UserError saying where its measurement is."""
    for name in (str(argument)[2:].split("=")[0] for argument in argv if str(argument).startswith("--")):
        if name in REMOVED_OPTIONS:
            raise UserError(removed_message(name))


def check_removed_in(saved, what):
    """A removed option switched on in ``saved`` (the settings a resume state or results file recorded)."""
    for name, off in REMOVED_OPTIONS.items():
        if name in saved and saved[name] != off:
            raise UserError(f"{what} was made with {name} {saved[name]!r}: {removed_message(name)}")
