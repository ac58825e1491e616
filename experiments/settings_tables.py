"""The settings tables of the README (the settings a newcomer sets first) and of docs/settings.md (every setting),
made from the one description of the settings: the comments beside the variables at the top of the scripts and of
the ``*_settings`` modules, and the rules ``settings.RULES`` checks (a tool for the documentation, not for runs).

    python experiments/settings_tables.py --markdown readme     # paste between the README's table markers
    python experiments/settings_tables.py --markdown docs       # paste into docs/settings.md
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the top-level modules

from runs.runtime import OneLineParser, main_guard
from settings import RULES, script_settings


SCRIPT_GROUPS = (("Training", ("image_zooms_training", "pool45_crops_training")),
                 ("Testing", ("image_zooms_testing", "pool45_crops_testing")))
MODEL_NAMES = {"image_zooms": "Image-Zooms", "pool45_crops": "Pool45-Crops"}
# the README's tables: the settings a newcomer sets first, in this order (docs/settings.md has every setting)
README_SETTINGS = {
    "Training": ("path_voc", "two_databases", "path_voc2", "path_vgg", "vgg_precision", "path_model", "class_object",
                 "epochs", "checkpoint_every", "max_images", "refine"),
    "Testing": ("path_voc_test", "path_model", "path_testing_folder", "class_object", "epoch", "agent",
                "only_first_object", "refine", "duplicates", "bool_draw"),
}


def default_cell(script_names, scripts, name):
    """A setting's default as the tables show it: one value where the scripts agree, else each script's value
    named by its model (``1024`` (Image-Zooms only) where the other script has no such setting)."""
    def shown(value):
        return f"`{value}`" if isinstance(value, str) and value else '`""`' if value == "" else f"`{value!r}`"
    values = {MODEL_NAMES[script.rsplit("_", 1)[0]]: script_values[name]
              for script, script_values in zip(script_names, scripts) if name in script_values}
    if len(values) == len(scripts) and len({repr(value) for value in values.values()}) == 1:
        return shown(next(iter(values.values())))
    only = " only" if len(values) == 1 else ""
    return ", ".join(f"{shown(value)} ({model}{only})" for model, value in values.items())


def table_row(cells):
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def settings_tables(short=False):
    """The Markdown settings tables: docs/settings.md's (every setting: meaning, values it takes, default) or,
    ``short``, the README's (:data:`README_SETTINGS`: meaning, default). Defaults as :func:`default_cell` shows."""
    import importlib
    lines = []
    for title, names in SCRIPT_GROUPS:
        scripts = [script_settings(vars(importlib.import_module(name))) for name in names]
        columns = ["setting", "meaning", *([] if short else ["takes"]), "default"]
        lines += [f"**{title}** (`{names[0]}.py`, `{names[1]}.py`)", "", table_row(columns),
                  table_row(["---"] * len(columns))]
        for name in README_SETTINGS[title] if short else dict.fromkeys(name for script in scripts for name in script):
            comment = next(script.comments.get(name) for script in scripts if name in script)
            accepts = RULES[name].accepts if name in RULES else "a path" if name.startswith("path") else "text"
            lines.append(table_row([f"`{name}`", comment, *([] if short else [accepts]),
                                    default_cell(names, scripts, name)]))
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None):
    parser = OneLineParser(description="The settings of the four scripts, described once.", listed="option")
    parser.add_argument("--markdown", choices=("readme", "docs"), default=None,
                        help="print the README's settings tables (the settings a newcomer sets first) or "
                             "docs/settings.md's (every setting) (default: none)")
    kind = parser.parse_args(argv).markdown
    if kind:
        print(settings_tables(short=kind == "readme"), end="")
    else:
        parser.print_help()


if __name__ == "__main__":
    main_guard(main)
