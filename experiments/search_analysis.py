"""Where does a test's AP go? Reads the searches of testing runs and splits AP into where the agent looks and how
it ranks what it saw.

    python experiments/search_analysis.py results/demo/image_zooms_trained/results.json results/demo/random/results.json
    python experiments/search_analysis.py run/results.json --path_voc_test my_voc --output analysis.json

For each ``results.json`` (a test of the trained, random or upper-bound agent, any model), with the annotations of
``--path_voc_test`` (default: the synthetic dataset), it reports:

- ``ap``: the test's AP, detections ranked by their score (the trained agent's trigger Q-value);
- ``ap_ranked_by_iou``: the AP of the same visited regions ranked by their IoU with the nearest object instead: a
  score that knows where the objects are, so what the search's regions allow when ranked by how well they fit
  (a second region on an object already found still counts as a false positive, so a score that ranked exactly one
  region per object first would do better still: its AP is the max recall). ``max_recall`` is the same for both;
- ``score_auc``: how well the score separates regions that hold an object (IoU ≥ 0.5 with one) from the rest,
  0.5 being no better than chance (rank-based ROC AUC over all visited regions);
- ``hit_rate``: the share of visited regions that hold an object; ``trigger_precision``: the share of triggered
  regions that do; ``triggers_per_image``, ``regions_per_image``; ``whole_image_trigger_share``: the share of images
  where the agent triggered on the whole image (in testing the triggered region is painted, so such a search sees
  nothing after it);
- ``actions``: how often each action was taken; ``best_iou_by_step``: the mean, over searches, of the best IoU
  with an object at each step of a search (does zooming get closer?).

Writes the table to stdout and, with ``--output``, the figures as JSON.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the top-level modules

from runs.errors import UserError
from runs.runtime import OneLineParser, main_guard, write_json
from settings import DEMO_DATA


def load_results(path):
    try:
        results = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"cannot read {path}: {error}") from None
    if "trajectories" not in results or "class_object" not in results:
        raise UserError(f"{path}: not the results.json of a test run (no trajectories)")
    return results


def ground_truth_of(results, path_voc_test):
    """Boxes of the tested class per image id, from the annotations of ``path_voc_test``."""
    from parse_xml_annotations import annotation_path, parse_annotation
    boxes = {}
    for image_id in results["trajectories"]:
        path = annotation_path(path_voc_test, image_id)
        if not Path(path).is_file():
            raise UserError(f"{path}: no annotation for image {image_id} of the results (give the test's dataset "
                            f"with --path_voc_test)")
        boxes[image_id] = parse_annotation(path).boxes_of(results["class_object"])
    return boxes


def rank_auc(scores, positive):
    """ROC AUC of ``scores`` for the ``positive`` flags (ties count half); None without both kinds."""
    scores, positive = np.asarray(scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    n_positive, n_negative = int(positive.sum()), int((~positive).sum())
    if n_positive == 0 or n_negative == 0:
        return None
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    start = 0
    for end in range(1, len(scores) + 1):          # average ranks of tied scores
        if end == len(scores) or sorted_scores[end] != sorted_scores[start]:
            ranks[order[start:end]] = (start + end + 1) / 2.0
            start = end
    return float((ranks[positive].sum() - n_positive * (n_positive + 1) / 2.0) / (n_positive * n_negative))


def analyse(results, boxes):
    """The figures of one test (see the module docstring)."""
    from metrics import iou_many, precision_recall
    from reinforcement import ACTION_NAMES, NUM_ACTIONS
    steps = [(image_id, step) for image_id, trajectory in results["trajectories"].items() for step in trajectory]
    best_iou = np.array([float(iou_many(boxes[image_id], np.asarray(step["region"], dtype=np.float64)).max())
                         if len(boxes[image_id]) else 0.0 for image_id, step in steps])
    hits = best_iou >= 0.5
    triggered = np.array([bool(step["triggered"]) for _, step in steps])
    whole_image_triggers = sum(any(step["triggered"] and step["region"] == trajectory[0]["region"]
                                   for step in trajectory)
                               for trajectory in results["trajectories"].values() if trajectory)
    ground_truth = {image_id: {"boxes": image_boxes, "difficult": np.zeros(len(image_boxes), dtype=bool)}
                    for image_id, image_boxes in boxes.items()}
    by_iou = [{"image": image_id, "box": step["region"], "score": iou}
              for (image_id, step), iou in zip(steps, best_iou)]
    actions = np.bincount([int(step["action"]) for _, step in steps], minlength=NUM_ACTIONS)
    by_step = {}
    for (image_id, step), iou in zip(steps, best_iou):
        by_step.setdefault(int(step["step"]), []).append(iou)
    images = max(len(results["trajectories"]), 1)
    return {
        "agent": results.get("agent"), "model": results.get("model"), "epoch": results.get("epoch"),
        "images": len(results["trajectories"]), "objects": int(sum(len(b) for b in boxes.values())),
        "ap": results["ap"], "ap_ranked_by_iou": precision_recall(by_iou, ground_truth)["ap"],
        "max_recall": results["max_recall"],
        "score_auc": rank_auc([step["score"] for _, step in steps], hits),
        "hit_rate": float(hits.mean()) if len(hits) else 0.0,
        "trigger_precision": float(hits[triggered].mean()) if triggered.any() else None,
        "triggers_per_image": float(triggered.sum()) / images, "regions_per_image": len(steps) / images,
        "whole_image_trigger_share": whole_image_triggers / images,
        "actions": {name: float(count) / max(len(steps), 1) for name, count in zip(ACTION_NAMES, actions)},
        "best_iou_by_step": {step: float(np.mean(values)) for step, values in sorted(by_step.items())},
    }


def format_table(labels, analyses):
    def number(value):
        return "–" if value is None else f"{value:.3f}"
    lines = ["| run | AP | AP ranked by IoU | max recall | score AUC | hit rate | trigger precision | triggers / image "
             "| regions / image | whole-image triggers |", "|---|---|---|---|---|---|---|---|---|---|"]
    for label, entry in zip(labels, analyses):
        lines.append(f"| {label} | {number(entry['ap'])} | {number(entry['ap_ranked_by_iou'])} | "
                     f"{number(entry['max_recall'])} | {number(entry['score_auc'])} | {number(entry['hit_rate'])} | "
                     f"{number(entry['trigger_precision'])} | {entry['triggers_per_image']:.2f} | "
                     f"{entry['regions_per_image']:.2f} | {entry['whole_image_trigger_share']:.2f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = OneLineParser(description=__doc__.split("\n")[0], listed="option")
    parser.add_argument("results", nargs="+", help="results.json files of test runs")
    parser.add_argument("--path_voc_test", default=str(DEMO_DATA), help="the tests' dataset (its annotations)")
    parser.add_argument("--labels", nargs="+", default=None, help="one label per results file")
    parser.add_argument("--output", default=None, help="write the figures to this JSON file")
    arguments = parser.parse_args(sys.argv[1:] if argv is None else argv)
    labels = arguments.labels or [str(path) for path in arguments.results]
    if len(labels) != len(arguments.results):
        parser.error(f"{len(labels)} labels for {len(arguments.results)} results files")
    analyses = []
    for path in arguments.results:
        results = load_results(path)
        analyses.append(analyse(results, ground_truth_of(results, arguments.path_voc_test)))
    print(format_table(labels, analyses))
    if arguments.output:
        write_json(arguments.output, {"runs": [dict(entry, label=label, results=str(path)) for label, entry, path
                                               in zip(labels, analyses, arguments.results)]})
    return analyses


if __name__ == "__main__":
    main_guard(main)
