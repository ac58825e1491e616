"""The per-class results table, in one place for the testing scripts (classes_run) and compare_results: read a
results.json (checked), combine single-class results into one row per class and their means (the VOC devkit's
table), merge separate jobs' files and print the table (``visualization.plot_class_bars`` draws it).

A single-class results.json is what one testing run writes; a combined one adds ``classes`` (one row per class),
``absent_classes`` and the means ``map``, ``mean_ap_voc07`` and ``mean_max_recall``.
"""
import json
import math
from pathlib import Path

from metrics import mean_regions
from runs.errors import UserError
from runs.runtime import write_json

REQUIRED_KEYS = ['model', 'agent', 'scale_subregion', 'precision', 'recall', 'ap', 'ap_voc07', 'max_recall',
                 'regions_per_found_object']


# regions analysed before an object was found: far above any number_of_steps, low enough for the histogram's bins
MAX_REGIONS = 100_000


def _read_json(path):
    """The JSON content of ``path``; UserError naming the file when it cannot be read or parsed."""
    try:
        return json.loads(Path(path).read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise UserError(f'{path}: results file not found') from None
    except IsADirectoryError:
        raise UserError(f'{path}: is a folder, not a results.json file') from None
    except (ValueError, UnicodeDecodeError) as error:    # ValueError: JSON syntax, or an integer of over 4300 digits
        raise UserError(f'{path}: not a valid JSON file ({str(error)[:200]})') from None
    except RecursionError:
        raise UserError(f'{path}: not a results file of the testing scripts (JSON nested too deeply)') from None
    except OSError as error:
        raise UserError(f'{path}: cannot be read ({error.strerror or error})') from None


def load_results(path):
    """Read one results.json and check it has what a comparison needs (types, lengths, finite values in their
    ranges); UserError naming the file and the field otherwise."""
    results = _read_json(path)
    if not isinstance(results, dict):
        raise UserError(f'{path}: expected a JSON object with the test results, found {type(results).__name__}')
    if missing := [key for key in REQUIRED_KEYS if key not in results]:
        raise UserError(f'{path}: not a results file of the testing scripts, missing key(s) {", ".join(missing)}')
    _check_numbers(path, results, ['precision', 'recall'], low=0.0, high=1.0, listed=True)
    _check_numbers(path, results, ['regions_per_found_object'], low=0, high=MAX_REGIONS, whole=True, listed=True)
    if len(results['precision']) != len(results['recall']):
        raise UserError(f'{path}: precision has {len(results["precision"])} values but recall {len(results["recall"])}')
    _check_numbers(path, results, ['ap', 'ap_voc07', 'max_recall'], low=0.0, high=1.0)
    _check_label_fields(path, results)
    _check_numbers(path, results, ['num_images', 'num_objects'], low=0, whole=True, optional=True)
    if 'class_object' in results and not isinstance(results['class_object'], (str, int)):
        raise UserError(f"{path}: 'class_object' must be a class name or id, found {results['class_object']!r:.60}")
    return results


def _problem(value, low=None, high=None, whole=False, listed=False):
    """What keeps ``value`` from being a finite number (whole, with ``whole``) in ``low..high``, or a list of them
    with ``listed``; None if nothing does."""
    if listed:
        if not isinstance(value, list):
            return f'found {type(value).__name__}'
        return next((f'item {index}: {problem}' for index, item in enumerate(value)
                     if (problem := _problem(item, low, high, whole))), None)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return f'found {value!r:.60}' if not isinstance(value, (dict, list)) else f'found a {type(value).__name__}'
    if not math.isfinite(value):
        return f'found {value}'
    if whole and value != int(value):
        return f'found {value!r}, not a whole number'
    if (low is not None and value < low) or (high is not None and value > high + 1e-9):   # a sum's rounding
        return f'found {value!r}, outside {low}..{"" if high is None else high}'
    return None


def _kind(low, high, whole, listed=False):
    """'a number in 0.0..1.0', 'a list of whole numbers in 0..', 'a finite number', … for the messages."""
    kind = ('whole number' if whole else 'number') + ('s' if listed else '')
    where = f' in {low}..{"" if high is None else high}' if low is not None or high is not None else ''
    return f'{"a list of " if listed else "a "}{"" if where else "finite "}{kind}{where}'


def _check_numbers(path, record, keys, low=None, high=None, whole=False, listed=False, optional=False, prefix=''):
    """UserError naming the file and the field unless each ``record[key]`` passes :func:`_problem` (or is None, with
    ``optional``); ``prefix`` goes before the key in the message ('classes[0].')."""
    for key in keys:
        problem = _problem(record.get(key), low, high, whole, listed)
        if problem and not (optional and record.get(key) is None):
            raise UserError(f'{path}: {prefix + key!r} must be {_kind(low, high, whole, listed)}, {problem}')


def _check_label_fields(path, results):
    """The fields a comparison's legend names (``default_label``)."""
    for key in ['model', 'agent']:
        if not isinstance(results[key], str):
            raise UserError(f'{path}: {key!r} must be a text, found {results[key]!r:.60}')
    _check_numbers(path, results, ['scale_subregion'])
    if results.get('epoch') is not None and not isinstance(results['epoch'], (int, str)):
        raise UserError(f"{path}: 'epoch' must be a number or a text, found {results['epoch']!r:.60}")


def load_combined(path):
    """A combined (several-class) results.json, checked (UserError naming the file and field); None for a
    single-class or unreadable file (:func:`load_results` names its problem)."""
    try:
        results = _read_json(path)
    except UserError:
        return None
    if not isinstance(results, dict) or 'classes' not in results:
        return None
    if missing := [key for key in COMBINED_KEYS if key not in results]:
        raise UserError(f'{path}: not a combined results file of the testing scripts, missing key(s) '
                        f'{", ".join(missing)}')
    _check_label_fields(path, results)
    from parse_xml_annotations import VOC_CLASSES
    rows = results['classes']
    if not isinstance(rows, list) or not rows or not all(isinstance(row, dict) for row in rows):
        raise UserError(f"{path}: 'classes' must be a list of rows (one JSON object per class), found {rows!r:.60}")
    for index, row in enumerate(rows):
        field = f'classes[{index}].'
        if row.get('class_object') not in VOC_CLASSES:
            raise UserError(f"{path}: {field}class_object must be a VOC class name, found "
                            f"{row.get('class_object')!r:.60}")
        _check_numbers(path, row, ['ap', 'ap_voc07', 'max_recall'], low=0.0, high=1.0, prefix=field)
        _check_numbers(path, row, ['mean_regions_per_found_object'], low=0, high=MAX_REGIONS, prefix=field,
                       optional=True)
        _check_numbers(path, row, ['num_images', 'num_objects'], low=0, whole=True, prefix=field)
    absent = results['absent_classes']
    if not isinstance(absent, list) or not all(isinstance(name, str) and name in VOC_CLASSES for name in absent):
        raise UserError(f"{path}: 'absent_classes' must be a list of VOC class names, found {absent!r:.60}")
    _check_numbers(path, results, ['map', 'mean_ap_voc07', 'mean_max_recall'], low=0.0, high=1.0, optional=True)
    return results


# what a combined results.json holds besides the label fields (``combine``)
COMBINED_KEYS = ['model', 'agent', 'scale_subregion', 'classes', 'absent_classes', 'map', 'mean_ap_voc07',
                 'mean_max_recall']


def class_row(results):
    """A class's row of the table: its AP, AP-07, max recall, mean regions per found object and counts."""
    return {"class_object": results["class_object"], **{key: results[key] for key in ("ap", "ap_voc07", "max_recall")},
            "mean_regions_per_found_object": mean_regions(results["regions_per_found_object"]),
            "num_images": results["num_images"], "num_objects": results["num_objects"]}


def combine(per_class, absent=()):
    """The combined results: one row per class (VOC id order) and the means over the classes tested (``absent``
    ones, with no test image, are listed but left out of the means)."""
    from parse_xml_annotations import class_id
    rows = sorted((class_row(results) for results in per_class), key=lambda row: class_id(row["class_object"]))
    if not rows:
        raise UserError("no class was tested: every class asked for is absent from the test set")
    shared = ("model", "agent", "scale_subregion", "epoch", "detections_protocol", "only_first_object",
              "number_of_steps")         # the settings of the runs, the same for every class: the first one's
    means = {"map": "ap", "mean_ap_voc07": "ap_voc07", "mean_max_recall": "max_recall"}
    return {**{key: per_class[0].get(key) for key in shared}, "classes": rows,
            "absent_classes": sorted(absent, key=class_id),
            **{mean: sum(row[key] for row in rows) / len(rows) for mean, key in means.items()}}


def number(value, digits=3):
    """``value`` with ``digits`` decimals, for a table; '-' for None (a mean without values)."""
    return "-" if value is None else f"{value:.{digits}f}"


def format_class_table(combined):
    """One row per class and the mean, as the VOC devkit prints them."""
    lines = [f"{'class':<12} {'AP':>6} {'AP-07':>6} {'max rec':>7} {'regions':>7} {'images':>6} {'objects':>7}",
             *(f"{row['class_object']:<12} {number(row['ap']):>6} {number(row['ap_voc07']):>6} "
               f"{number(row['max_recall']):>7} {number(row['mean_regions_per_found_object'], 2):>7} "
               f"{row['num_images']:>6} {row['num_objects']:>7}" for row in combined["classes"]),
             f"{'mean':<12} {number(combined['map']):>6} {number(combined['mean_ap_voc07']):>6} "
             f"{number(combined['mean_max_recall']):>7}"]
    if combined["absent_classes"]:
        lines.append(f"absent from the test set, not in the mean: {', '.join(combined['absent_classes'])}")
    return "\n".join(lines)


def merge(paths, output):
    """Merge single-class results.json files (separate jobs) into one combined results.json; returns it. A null in
    it is a mean without values (``runtime.json_ready`` writes non-finite numbers so; the inputs are checked finite)."""
    from parse_xml_annotations import class_name
    per_class, seen = [], {}
    for path in paths:
        results = load_results(path)
        if "class_object" not in results:
            raise UserError(f"{path}: names no class_object; not a single-class results file")
        try:
            results = {**results, "class_object": class_name(results["class_object"])}
        except UserError as error:
            raise UserError(f"{path}: {error}") from None
        _check_numbers(path, results, ["num_images", "num_objects"], low=0, whole=True)   # may be null elsewhere
        if results["class_object"] in seen:
            raise UserError(f"{path}: class {results['class_object']} is also in {seen[results['class_object']]}")
        seen[results["class_object"]] = path
        per_class.append(results)
    if not per_class:
        raise UserError("no results.json given to merge")
    combined = combine(per_class)
    try:
        write_json(Path(output), combined)
    except OSError as error:
        raise UserError(f"{output}: cannot write the merged results ({error.strerror or error})") from None
    return combined
