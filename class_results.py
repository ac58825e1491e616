"""The per-class results table, in one place for the testing scripts (classes_run) and compare_results: read a
results.json (checked), combine single-class results into one row per class and their means (the VOC devkit's
table), merge separate jobs' files, print the table and draw the per-class AP bars.

A single-class results.json is what one testing run writes; a combined one adds ``classes`` (one row per class),
``absent_classes`` and the means ``map``, ``mean_ap_voc07`` and ``mean_max_recall``.
"""
import json
from pathlib import Path

from errors import UserError
from runtime import write_json

REQUIRED_KEYS = ['model', 'agent', 'scale_subregion', 'precision', 'recall', 'ap', 'ap_voc07', 'max_recall',
                 'regions_per_found_object']


def load_results(path):
    """Read one results.json and check it has what a comparison needs; UserError naming the file otherwise."""
    try:
        with open(path, encoding='utf-8') as file:
            results = json.load(file)
    except FileNotFoundError:
        raise UserError(f'{path}: results file not found') from None
    except IsADirectoryError:
        raise UserError(f'{path}: is a folder, not a results.json file') from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f'{path}: not a valid JSON file ({error})') from None
    except OSError as error:
        raise UserError(f'{path}: cannot be read ({error.strerror or error})') from None
    if not isinstance(results, dict):
        raise UserError(f'{path}: expected a JSON object with the test results, found {type(results).__name__}')
    missing = [key for key in REQUIRED_KEYS if key not in results]
    if missing:
        raise UserError(f'{path}: not a results file of the testing scripts, missing key(s) {", ".join(missing)}')
    for key in ['precision', 'recall', 'regions_per_found_object']:
        if not isinstance(results[key], list) or not all(_is_number(value) for value in results[key]):
            raise UserError(f'{path}: {key!r} must be a list of numbers')
    if len(results['precision']) != len(results['recall']):
        raise UserError(f'{path}: precision has {len(results["precision"])} values but recall '
                        f'{len(results["recall"])}')
    for key in ['ap', 'ap_voc07', 'max_recall']:
        if not _is_number(results[key]):
            raise UserError(f'{path}: {key!r} must be a number, found {results[key]!r}')
    return results


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_combined(path):
    """The content of a combined (several-class) results.json, or None for a single-class one."""
    try:
        with open(path, encoding='utf-8') as file:
            results = json.load(file)
    except (OSError, ValueError):
        return None     # load_results names the problem
    return results if isinstance(results, dict) and 'classes' in results else None


# the per-class numbers of a combined results.json, in the order of the printed table
TABLE_KEYS = ("ap", "ap_voc07", "max_recall", "mean_regions_per_found_object", "num_images", "num_objects")


def class_row(results):
    regions = results["regions_per_found_object"]
    return {"class_object": results["class_object"], "ap": results["ap"], "ap_voc07": results["ap_voc07"],
            "max_recall": results["max_recall"],
            "mean_regions_per_found_object": sum(regions) / len(regions) if regions else None,
            "num_images": results["num_images"], "num_objects": results["num_objects"]}


def combine(per_class, absent=()):
    """The combined results: one row per class (VOC id order) and the means over the classes tested (absent classes
    — no test image — are listed and left out of the means)."""
    from parse_xml_annotations import class_id
    rows = sorted((class_row(results) for results in per_class), key=lambda row: class_id(row["class_object"]))
    if not rows:
        raise UserError("no class was tested: every class asked for is absent from the test set")
    first = per_class[0]

    def mean(key):
        return sum(row[key] for row in rows) / len(rows)
    return {"model": first["model"], "agent": first["agent"], "scale_subregion": first["scale_subregion"],
            "epoch": first.get("epoch"), "detections_protocol": first.get("detections_protocol"),
            "only_first_object": first.get("only_first_object"), "number_of_steps": first.get("number_of_steps"),
            "classes": rows, "absent_classes": sorted(absent, key=class_id), "map": mean("ap"),
            "mean_ap_voc07": mean("ap_voc07"), "mean_max_recall": mean("max_recall")}


def format_class_table(combined):
    """One row per class and the mean, as the VOC devkit prints them."""
    def number(value, digits=3):
        return "-" if value is None else f"{value:.{digits}f}"
    lines = [f"{'class':<12} {'AP':>6} {'AP-07':>6} {'max rec':>7} {'regions':>7} {'images':>6} {'objects':>7}"]
    for row in combined["classes"]:
        lines.append(f"{row['class_object']:<12} {number(row['ap']):>6} {number(row['ap_voc07']):>6} "
                     f"{number(row['max_recall']):>7} {number(row['mean_regions_per_found_object'], 2):>7} "
                     f"{row['num_images']:>6} {row['num_objects']:>7}")
    lines.append(f"{'mean':<12} {number(combined['map']):>6} {number(combined['mean_ap_voc07']):>6} "
                 f"{number(combined['mean_max_recall']):>7}")
    if combined["absent_classes"]:
        lines.append(f"absent from the test set, not in the mean: {', '.join(combined['absent_classes'])}")
    return "\n".join(lines)


def merge(paths, output):
    """Merge single-class results.json files (separate jobs) into one combined results.json; returns it."""
    per_class, seen = [], {}
    for path in paths:
        results = load_results(path)
        if "class_object" not in results:
            raise UserError(f"{path}: names no class_object; not a single-class results file")
        if results["class_object"] in seen:
            raise UserError(f"{path}: class {results['class_object']} is also in {seen[results['class_object']]}")
        seen[results["class_object"]] = path
        per_class.append(results)
    if not per_class:
        raise UserError("no results.json given to merge")
    combined = combine(per_class)
    write_json(Path(output), combined)
    return combined


def plot_class_bars(combined_list, labels, output, title=None):
    """Per-class AP of several combined results side by side (one bar group per class, the mAP in the legend)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from parse_xml_annotations import VOC_CLASSES
    names = [name for name in VOC_CLASSES if any(row["class_object"] == name for combined in combined_list
                                                for row in combined["classes"])]
    width = 0.8 / len(combined_list)
    figure, axes = plt.subplots(figsize=(max(6, 0.6 * len(names) + 2), 4))
    for index, (combined, label) in enumerate(zip(combined_list, labels)):
        ap = {row["class_object"]: row["ap"] for row in combined["classes"]}
        axes.bar(np.arange(len(names)) + (index - (len(combined_list) - 1) / 2) * width,
                 [ap.get(name, 0.0) for name in names], width, label=f"{label} (mAP {combined['map']:.3f})")
    axes.set_xticks(np.arange(len(names)))
    axes.set_xticklabels(names, rotation=60, ha="right")
    axes.set_ylabel("AP")
    axes.set_ylim(0, 1)
    axes.legend(fontsize=8)
    if title:
        axes.set_title(title)
    figure.tight_layout()
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=120)
    plt.close(figure)
