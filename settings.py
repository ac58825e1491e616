"""Settings at the top of a script, each overridable by a flag of the same name (nanoGPT's configurator, typed).

``configure(defaults, argv)`` turns a dict of plain values into argparse flags ``--name`` whose type is the
default's type; unknown flags and wrongly typed values stop with argparse's one-line error (exit code 2).
"""
from __future__ import annotations

import argparse
import numbers
from pathlib import Path
from types import SimpleNamespace

from errors import UserError


def parse_bool(text):
    """0/1/true/false/yes/no, as the 2016 scripts used 0/1 flags."""
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected 0/1 or true/false, got {text!r}")


def parse_optional_int(text):
    return None if str(text).lower() in ("none", "") else int(text)


def script_settings(namespace):
    """The plain settings a script defines at its top: lower-case names bound to numbers, strings or None."""
    return {name: value for name, value in namespace.items()
            if not name.startswith("_") and name.islower() and isinstance(value, (int, float, str, type(None)))}


def _type_of(value):
    if isinstance(value, bool):
        return parse_bool
    if isinstance(value, int):
        return int
    if isinstance(value, float):
        return float
    return str


def configure(defaults, argv=None, description=None, extra=None):
    """Parse ``argv`` against ``defaults`` (name → default value) and return a namespace of settings.

    ``extra``: a function ``extra(parser)`` that adds flags not listed in ``defaults`` (``-n``, ``--demo`` …).
    A default of ``None`` takes an optional integer (``--max_images``) unless ``extra`` declares it;
    ``class_object`` is a string (an id or a class name).
    """
    epilog = None
    if "path_vgg" in defaults:
        from features import PATH_VGG_HELP     # features imports TensorFlow only inside its functions
        epilog = PATH_VGG_HELP
    parser = argparse.ArgumentParser(description=description, epilog=epilog,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    if extra is not None:
        extra(parser)
    declared = {action.dest for action in parser._actions}
    # a flag declared by ``extra`` still takes its default from the script's variable
    parser.set_defaults(**{name: value for name, value in defaults.items() if name in declared})
    for name, value in defaults.items():
        if name in declared:
            continue
        kind = str if name == "class_object" else parse_optional_int if value is None else _type_of(value)
        parser.add_argument(f"--{name}", type=kind, default=value, metavar=type(value).__name__.upper()
                            if value is not None else "INT")
    arguments = parser.parse_args(argv)
    settings = SimpleNamespace(**vars(arguments))
    settings.explicit = {name for name in vars(arguments) if _given(name, argv)}
    return settings


def _given(name, argv):
    """Whether the flag ``--name`` (or ``--name=``) appears on the command line (demo defaults yield to it)."""
    import sys
    argv = sys.argv[1:] if argv is None else argv
    flag = f"--{name}"
    return any(arg == flag or arg.startswith(flag + "=") for arg in argv)


# ---------------------------------------------------------------------------------------------------------------
# the scripts' own flags and --demo

DEMO_DATA = Path("data/synthetic_voc")


def training_flags(parser):
    """Flags of the training scripts beyond their settings."""
    parser.add_argument("-n", "--n", type=int, default=0, metavar="N",
                        help="start at epoch N, resuming from the checkpoint of epoch N-1")
    parser.add_argument("--demo", action="store_true", help="synthetic dataset and demo budgets")


def testing_flags(parser):
    """Flags of the testing scripts beyond their settings (choices checked here)."""
    parser.add_argument("--demo", action="store_true", help="the synthetic dataset")
    parser.add_argument("--agent", choices=("trained", "random", "upper_bound"), default="trained")
    parser.add_argument("--detections", choices=("visited", "triggered"), default="visited",
                        help="visited: every analysed region is a detection (the paper's); triggered: only triggers")
    parser.add_argument("--image", action="append", default=None, metavar="FILE",
                        help="search this image (repeat for more) with the trained agent instead of testing on a "
                             "dataset: no annotations needed; writes <path_testing_folder>/images/<name>.png and "
                             "detections.json. Detections are the triggered regions unless --detections is given")
    parser.add_argument("--epoch", type=parse_epochs, default=-1, metavar="E[,E...]",
                        help="checkpoint epoch (-1: the latest); a comma-separated list or 'all' tests each and "
                             "compares them (the paper's Figure 7); 'best': the epoch with the best validation "
                             "AP (training with validation_images)")


def parse_epochs(text):
    """``-1`` or ``4`` → an int; ``0,4,9`` → a list; ``all`` → every saved epoch (resolved in ``test``); ``best``
    → the epoch with the best validation AP (training with ``validation_images``)."""
    text = str(text).strip()
    if text in ("all", "best"):
        return text
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an epoch, a comma-separated list or 'all', got {text!r}") \
            from None
    if not values:
        raise argparse.ArgumentTypeError("no epoch given")
    return values[0] if len(values) == 1 and "," not in text else values


# a learning option given explicitly with --demo drops the demo's options it cannot be combined with
DEMO_OPTIONS_EXCLUDED_BY = {"oracle": ("trigger_targets", "expert_margin")}


def apply_demo(settings, demo_values):
    """``--demo``: the synthetic dataset (generated if absent) and the demo's values (:func:`apply_demo_values`)."""
    if not settings.demo:
        return
    apply_demo_values(settings, demo_values)
    from synthetic_dataset import ensure_synthetic_voc
    ensure_synthetic_voc(DEMO_DATA)


def apply_demo_values(settings, demo_values):
    """The demo's values, except where a flag was given, and except the demo's learning options that an option
    given explicitly excludes (``oracle 1`` takes neither ``trigger_targets`` nor ``expert_margin``: they stay
    off, the script's default)."""
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

PATH_VGG_KEYWORDS = ("random", "imagenet", "hed")


def is_whole_number(value, least=0):
    """Whether a setting's ``value`` is an integer (not a boolean) of at least ``least``."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= least


def check_dataset(path_voc, set_name, class_object, setting_name):
    """The dataset folder, its ``ImageSets/Main`` and, for one class, ``<class>_<set_name>.txt`` exist."""
    from parse_xml_annotations import class_name
    path_voc = Path(path_voc)
    if not path_voc.is_dir():
        raise UserError(f"dataset folder not found: {path_voc} ({setting_name})")
    image_sets = path_voc / "ImageSets" / "Main"
    if not image_sets.is_dir():
        raise UserError(f"image set folder not found: {image_sets} ({setting_name}: a PASCAL VOC root holds "
                        f"Annotations/, JPEGImages/ and ImageSets/Main/)")
    from parse_xml_annotations import class_ids
    ids = class_ids(class_object)
    if len(ids) == 1:
        list_file = image_sets / f"{class_name(ids[0])}_{set_name}.txt"
        if not list_file.is_file():
            raise UserError(f"image set file not found: {list_file}")


def check_path_vgg(path_vgg):
    """``path_vgg`` is 'random', 'imagenet', 'hed' with its package installed, or an existing file."""
    from features import PATH_VGG_OPTIONS, hed_weights_path   # features imports TensorFlow only inside functions
    if str(path_vgg) == "hed":
        hed_weights_path()
        return
    if str(path_vgg) in PATH_VGG_KEYWORDS:
        return
    if not Path(path_vgg).is_file():
        raise UserError(f"path_vgg={str(path_vgg)!r}: no such file. path_vgg takes {PATH_VGG_OPTIONS}.")
