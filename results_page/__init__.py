"""Browsable results: an ``index.html`` per test run and a page that compares runs, opened from disk.

A researcher wants to find an agent's failures in seconds: the run page shows the run's settings, its numbers and
figures, and a gallery of its images' searches (objects found and missed, best IoU, scores, the first trigger) to
filter and sort; a click opens the animated search and its step-by-step Q-values. The comparison page puts the
agents side by side, per image too.

Each page is one self-contained HTML file that works under ``file://`` with no server and no network: its data is
inlined as JSON in ``<script type="application/json">`` (browsers refuse ``fetch()`` of local files), its style and
script inlined from the files beside this module (``page.html`` around a ``<kind>.html`` body, with ``$name``
placeholders; ``page.css``, ``*.js``), and the figures and drawn searches referenced by relative links, never
copied. Written atomically.

What the pages get is computed here from a ``results.json`` (:func:`image_summaries`): the pages only show it.
"""
import json
import os
from html import escape
from pathlib import Path
from string import Template
from urllib.parse import quote

import numpy as np

from metrics import iou_many, mean_regions
from reinforcement import ACTION_NAMES, ACTION_SHORT_NAMES
from runs.errors import UserError
from runs.runtime import json_ready, write_atomically

PAGE_NAME = "index.html"        # a test run's page, in its path_testing_folder
TEMPLATES = Path(__file__).resolve().parent
DRAWINGS = "searches"           # testing's bool_draw: searches/<image id>.png and .gif
IOU_FOUND = 0.5                 # the VOC rule (metrics.match_detections)
TOP_SCORES = 5                  # detections listed on an image's card
SKETCHED = 3                    # detections drawn on the sketch of an image without a drawing
METRICS = ("ap", "ap_voc07", "max_recall")


def rounded(value, digits=3):
    """``value`` (a number, or a list of numbers) rounded for the page; None stays None."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return [rounded(item, digits) for item in value]
    return None if value is None else round(float(value), digits)


def link(path, page_folder):
    """The relative URL of ``path`` from a page in ``page_folder`` (each part percent-encoded: an id or folder
    with '#', '?', '%' or a space still links); its file:// URL where no relative path leads there (another drive)."""
    try:
        return quote(Path(os.path.relpath(Path(path).resolve(), Path(page_folder).resolve())).as_posix())
    except ValueError:
        return Path(path).resolve().as_uri()


def detection_status(true_positive, overlap, difficult):
    """By the VOC rule: 'tp', 'ignored' (a difficult object: neither required nor penalised), 'repeat' (an object
    found before: a false positive) or 'fp'; ``overlap``: best IoU with an object (None: objects not known)."""
    if true_positive:
        return "tp"
    if overlap is None or overlap < IOU_FOUND:
        return "fp"
    return "ignored" if difficult else "repeat"


def image_summaries(results, folder=None, page_folder=None):
    """``(images, steps)`` of ``results`` (a results.json's content): one summary per image, in test order, and
    each image's search step by step.
    A summary holds ``id``, ``size`` ``[w, h]`` (from its first region), ``objects`` (each: ``box``, ``difficult``,
    ``found``, ``best_iou``), the counts ``found``, ``missed``, ``objects_counted`` (not difficult) and ``difficult``
    (without ``ground_truth``: ``objects`` empty, ``missed`` and ``objects_counted`` None), ``best_iou``,
    ``false_positives`` (triggered detections that found nothing), ``triggers``, ``first_trigger`` (1-based region
    number, as drawn; None without one), ``regions``, ``top_score``, its best ``detections`` (score, status, box)
    and, given ``folder`` (the run's files) and ``page_folder``, links ``drawing`` and ``animation`` to its drawn
    search. Steps: per image id, one dict per analysed region: ``region``, ``action``, ``q`` (None for the
    baselines), ``score``, ``trigger``, ``search``, ``step``, ``status`` and ``iou`` of its detection (None if not
    one), and ``box`` where the refined box differs from the region."""
    detections = results["detections"] if isinstance(results.get("detections"), list) else []
    trajectories = results["trajectories"] if isinstance(results.get("trajectories"), dict) else {}
    ground_truth = results.get("ground_truth")
    by_image = {}
    for detection in detections:
        by_image.setdefault(str(detection["image"]), []).append(detection)
    ids = list(dict.fromkeys([*map(str, trajectories), *map(str, ground_truth or {}), *by_image]))
    images, steps = [], {}
    for image_id in ids:
        summary, steps[image_id] = image_summary(image_id, trajectories.get(image_id) or [], by_image.get(image_id, []),
                                                 None if ground_truth is None else ground_truth.get(image_id) or {})
        if folder is not None and page_folder is not None:
            for key, suffix in (("drawing", ".png"), ("animation", ".gif")):
                drawn = Path(folder) / DRAWINGS / f"{image_id}{suffix}"
                summary[key] = link(drawn, page_folder) if drawn.is_file() else None
        images.append(summary)
    return images, steps


def image_summary(image_id, trajectory, detections, ground_truth):
    """One image's summary and steps (:func:`image_summaries`); ``ground_truth`` None: its objects are not known."""
    known = ground_truth is not None
    boxes = np.asarray((ground_truth or {}).get("boxes", []), dtype=np.float64).reshape(-1, 4)
    difficult = np.asarray((ground_truth or {}).get("difficult") or [False] * len(boxes), dtype=bool).reshape(-1)
    reported = np.asarray([detection["box"] for detection in detections], dtype=np.float64).reshape(-1, 4)
    # overlaps[d, o]: IoU of detection d with object o
    overlaps = np.array([iou_many(reported, box) for box in boxes]).reshape(len(boxes), len(detections)).T
    object_iou = overlaps.max(axis=0) if len(detections) else np.zeros(len(boxes))
    found = np.zeros(len(boxes), dtype=bool)
    rated = []
    for detection, overlap_row in zip(detections, overlaps):
        best = int(np.argmax(overlap_row)) if len(boxes) else None
        overlap = float(overlap_row[best]) if len(boxes) else 0.0 if known else None
        if best is not None and detection.get("true_positive"):
            found[best] = True      # a true positive took the object it overlaps most (the VOC rule)
        status = detection_status(detection.get("true_positive"), overlap, best is not None and difficult[best])
        rated.append((detection, status, overlap))
    rated.sort(key=lambda item: -float(item[0]["score"]))
    by_step = {(item[0].get("search"), item[0].get("step")): item for item in rated}
    image_steps = []
    for step in trajectory:
        detection, status, overlap = by_step.get((step.get("search"), step.get("step")), (None, None, None))
        refined = None if detection is None or detection["box"] == step["region"] else rounded(detection["box"], 1)
        image_steps.append({"region": rounded(step["region"], 1), "action": step.get("action"),
                            "q": rounded(step.get("q_values")), "score": rounded(step.get("score")),
                            "trigger": bool(step.get("triggered")), "search": step.get("search"),
                            "step": step.get("step"), "status": status, "iou": rounded(overlap), "box": refined})
    triggers = [number for number, step in enumerate(trajectory, start=1) if step.get("triggered")]
    counted = ~difficult
    size = trajectory[0]["region"][2:] if trajectory else boxes[:, 2:].max(axis=0) if len(boxes) else None
    return {
        "id": image_id, "size": rounded(size, 1),
        "objects": [{"box": rounded(box, 1), "difficult": bool(hard), "found": bool(hit), "best_iou": rounded(iou)}
                    for box, hard, hit, iou in zip(boxes, difficult, found, object_iou)],
        "found": int(found[counted].sum()) if known else sum(status == "tp" for _, status, _ in rated),
        "missed": int((~found[counted]).sum()) if known else None,
        "objects_counted": int(counted.sum()) if known else None,
        "difficult": int(difficult.sum()),
        "best_iou": rounded(max((overlap for _, _, overlap in rated if overlap is not None), default=None)),
        "false_positives": sum(status in ("fp", "repeat") and bool(detection.get("triggered"))
                               for detection, status, _ in rated),
        "triggers": len(triggers), "first_trigger": triggers[0] if triggers else None, "regions": len(trajectory),
        "top_score": rounded(rated[0][0]["score"]) if rated else None,
        "detections": [{"score": rounded(detection["score"]), "status": status, "box": rounded(detection["box"], 1)}
                       for detection, status, _ in rated[:TOP_SCORES]],
    }, image_steps


def settings_of(results):
    """The run's settings and counts as ``[name, value]`` rows: every plain value of ``results`` but its metrics."""
    return [[key, value] for key, value in results.items()
            if key not in METRICS and (value is None or isinstance(value, (str, int, float, bool)))]


def metrics_of(results):
    """AP, AP-07, max recall, the objects found and the mean regions analysed per found object."""
    regions = results.get("regions_per_found_object") or []
    return {**{key: results.get(key) for key in METRICS}, "found_objects": len(regions),
            "num_objects": results.get("num_objects"), "num_images": results.get("num_images"),
            "mean_regions_per_found_object": mean_regions(regions)}


def write_run_page(results, out_folder, figures=()):
    """Write the page of one test run, ``<out_folder>/index.html``, beside its results.json, figures and drawn
    searches (``figures``: the figures' file names in ``out_folder``, shown where they exist); returns its path."""
    images, steps = image_summaries(results, out_folder, out_folder)
    title = f"{results.get('model', '')} {results.get('agent', '')}".strip() or "test run"
    title += "" if results.get("class_object") is None else f": {results['class_object']}"
    title += "" if results.get("epoch") is None else f", epoch {results['epoch']}"
    data = {"kind": "run", "title": title, "metrics": metrics_of(results),
            "settings": settings_of(results), "actions": list(ACTION_NAMES), "action_short": list(ACTION_SHORT_NAMES),
            "figures": [{"src": quote(name), "caption": Path(name).stem.replace("_", " ")}
                        for name in figures if (Path(out_folder) / name).is_file()],
            "objects_known": "ground_truth" in results, "images": images}
    return write_page(Path(out_folder) / PAGE_NAME, data, steps)


def comparison_page_data(rows, all_results, page_folder, figures=(), title=None):
    """What the comparison page shows: the runs (``rows`` of ``compare_results.compare``, whose 'path' is each
    results.json; ``all_results`` their contents), the ``figures`` (paths) and per image what each run found."""
    runs, per_run = [], []
    for row, results in zip(rows, all_results):
        folder = Path(row["path"]).parent
        page = folder / PAGE_NAME
        try:
            images, _ = image_summaries(results, folder, page_folder)
        except (KeyError, TypeError, ValueError, IndexError) as error:
            raise UserError(f"{row['path']}: its detections, trajectories or ground_truth are not those of a test "
                            f"run ({type(error).__name__}: {str(error)[:120]})") from None
        per_run.append({image["id"]: image for image in images})
        runs.append({"label": row["label"], "page": link(page, page_folder) if page.is_file() else None,
                     "results": link(row["path"], page_folder), "model": results.get("model"),
                     "agent": results.get("agent"), "objects_known": "ground_truth" in results,
                     **metrics_of(results)})
    ids = list(dict.fromkeys(image_id for images in per_run for image_id in images))
    keys = ("found", "missed", "objects_counted", "best_iou", "false_positives", "first_trigger", "top_score",
            "drawing", "size", "objects")
    return {"kind": "comparison", "title": title or "Comparison of test runs", "runs": runs,
            "figures": [{"src": link(path, page_folder), "caption": Path(path).stem.replace("_", " ")}
                        for path in figures if Path(path).is_file()],
            "images": [{"id": image_id, "runs": [None if image_id not in images else
                                                 {**{key: images[image_id].get(key) for key in keys},
                                                  "detections": images[image_id]["detections"][:SKETCHED]}
                                                 for images in per_run]} for image_id in ids]}


def write_classes_page(combined, out_folder):
    """Write the page of a test of several classes (``combined``: the combined results.json's content) in
    ``out_folder``: the per-class table and means, each class linked to its own run page; returns its path."""
    classes = [{**row, "page": f"{quote(row['class_object'])}/{PAGE_NAME}"
                if (Path(out_folder) / row["class_object"] / PAGE_NAME).is_file() else None}
               for row in combined["classes"]]
    data = {"kind": "classes", "title": f"{combined.get('model', '')} {combined.get('agent', '')}: "
                                        f"{len(classes)} classes".strip(),
            "settings": settings_of(combined), "classes": classes, "absent": combined.get("absent_classes", []),
            "means": {key: combined.get(key) for key in ("map", "mean_ap_voc07", "mean_max_recall")}}
    return write_page(Path(out_folder) / PAGE_NAME, data)


def inline_json(data):
    """``data`` as JSON that cannot end the ``<script>`` element holding it (every '<' escaped)."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("<", "\\u003c")


def write_page(path, data, steps=None):
    """Write ``data`` at ``path`` as the ``<kind>.html`` template with style, scripts and data inlined; returns it."""
    def read(name):
        return (TEMPLATES / name).read_text(encoding="utf-8")
    kind, title = data["kind"], escape(data["title"])
    html = Template(read("page.html")).substitute(
        title=title, style=read("page.css"), body=Template(read(f"{kind}.html")).substitute(title=title).rstrip(),
        data=inline_json(json_ready(data)), steps=inline_json(json_ready(steps or {})),
        script="\n".join(read(name) for name in ("common.js", f"{kind}.js")).replace("</script", "<\\/script"))
    write_atomically(path, lambda temporary: Path(temporary).write_text(html, encoding="utf-8"))
    return path
