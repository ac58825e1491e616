"""Intersection over union and the PASCAL VOC precision–recall evaluation.

Boxes are float NumPy ``[x0, y0, x1, y1)`` corners in pixels (half-open: ``x1 - x0`` is the width), the one box
format of the whole project.

Evaluation follows the VOC rule (method.md §7): detections are ranked by descending score; each one is matched
to the ground-truth object of its image with the highest IoU; at IoU >= 0.5 it is a true positive if that object
is not yet matched, a false positive if it is (a duplicate), and ignored if the object is ``difficult``. Below the
threshold it is a false positive. Average precision is reported both ways VOC has defined it: all-point (VOC 2010
and later) and 11-point (VOC 2007).

The ``duplicates demote`` option (beyond the paper, off by default) changes the ranking only: a detection that
repeats a better one of its image (:func:`mark_duplicates`) carries ``'duplicate': True`` and is ranked after every
other detection. It is still counted; nothing is removed, so the recall reached after the whole ranking is the same.
"""

import numpy as np


def box_area(box):
    """Area of a ``[x0, y0, x1, y1)`` box; an empty or inverted box has area 0."""
    x0, y0, x1, y1 = (float(value) for value in box)
    return max(0.0, x1 - x0) * max(0.0, y1 - y0)


def iou_many(boxes, box):
    """IoU of each of ``boxes`` (n, 4) with one ``box``, all ``[x0, y0, x1, y1)``; returns a float (n,) array."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    box = np.asarray(box, dtype=np.float64)
    overlap = np.clip(np.minimum(boxes[:, 2:], box[2:]) - np.maximum(boxes[:, :2], box[:2]), 0.0, None)
    intersection = overlap[:, 0] * overlap[:, 1]
    sizes = np.clip(boxes[:, 2:] - boxes[:, :2], 0.0, None)
    union = sizes[:, 0] * sizes[:, 1] + box_area(box) - intersection
    return np.divide(intersection, union, out=np.zeros_like(union), where=union > 0)     # 0 where the union is empty


def _ground_truth_arrays(entry, image):
    """The (boxes (n, 4), difficult (n,) bool) arrays of one ground-truth entry; None means no objects."""
    if entry is None:
        return np.zeros((0, 4)), np.zeros(0, dtype=bool)
    boxes = np.asarray(entry['boxes'], dtype=np.float64).reshape(-1, 4)
    difficult = entry.get('difficult')
    difficult = np.asarray(np.zeros(len(boxes)) if difficult is None else difficult, dtype=bool).reshape(-1)
    assert len(difficult) == len(boxes), f'image {image}: {len(boxes)} boxes but {len(difficult)} difficult flags'
    return boxes, difficult


def match_detections(detections, ground_truth, iou_threshold=0.5):
    """Match ranked detections to ground truth with the VOC rule (the module's docstring), at ``iou_threshold``.

    detections: list of dicts with at least 'image' (str), 'box' (``[x0, y0, x1, y1)``) and 'score' (float).
    ground_truth: dict image -> {'boxes': (n, 4) array, 'difficult': (n,) bool array}; an image missing from it
    has no objects, so every detection on it is a false positive. The ranking is by descending score (stable: ties
    keep their input order), detections marked ``'duplicate'`` (``duplicates demote``) after all others.

    Returns ``(order, tp, fp)``: ``order`` the indices into ``detections`` in ranked order, ``tp`` and ``fp`` float
    0/1 arrays aligned with ``order``; an ignored (difficult) detection has 0 in both.
    """
    scores = np.array([float(detection['score']) for detection in detections], dtype=np.float64)
    demoted = np.array([bool(detection.get('duplicate', False)) for detection in detections])
    order = np.lexsort((-scores, demoted)) if len(detections) else np.zeros(0, dtype=np.int64)   # stable
    tp, fp = np.zeros(len(order)), np.zeros(len(order))
    objects, matched = {}, {}  # image -> (boxes, difficult), converted once; image -> one flag per object
    for rank, index in enumerate(order):
        image = detections[index]['image']
        if image not in objects:
            objects[image] = _ground_truth_arrays(ground_truth.get(image), image)
        boxes, difficult = objects[image]
        overlaps = iou_many(boxes, detections[index]['box'])
        best = int(np.argmax(overlaps)) if len(boxes) else -1
        if best < 0 or overlaps[best] < iou_threshold:
            fp[rank] = 1.0
        elif not difficult[best]:     # a difficult object is neither required nor penalised
            image_matched = matched.setdefault(image, np.zeros(len(boxes), dtype=bool))
            (fp if image_matched[best] else tp)[rank] = 1.0
            image_matched[best] = True
    return order, tp, fp


DUPLICATE_IOU = 0.5     # the duplicates demote option: a box overlapping a better one of its image this much repeats it


def mark_duplicates(detections, iou_threshold=DUPLICATE_IOU):
    """The ``duplicates demote`` option (beyond the paper): one bool per detection, in the input order, True where
    its box overlaps a better-scored detection of the same image that is not itself a duplicate at IoU ≥
    ``iou_threshold`` (greedy non-maximum suppression, whose suppressed boxes are ranked last instead of removed)."""
    duplicate = np.zeros(len(detections), dtype=bool)
    kept = {}   # image -> the boxes of its detections that are not duplicates, best first
    for index in sorted(range(len(detections)), key=lambda index: -float(detections[index]['score'])):  # stable
        image_kept = kept.setdefault(detections[index]['image'], [])
        box = np.asarray(detections[index]['box'], dtype=np.float64)
        if image_kept and iou_many(np.asarray(image_kept), box).max() >= iou_threshold:
            duplicate[index] = True
        else:
            image_kept.append(box)
    return duplicate


def average_precision(recall, precision):
    """All-point average precision (VOC 2010+): area under the monotone (non-increasing) precision envelope of the
    cumulative curve ``recall``, ``precision`` (same length) over the ranking. Empty curves give 0."""
    if len(recall) == 0:
        return 0.0
    recall = np.concatenate([[0.0], np.asarray(recall, dtype=np.float64), [1.0]])
    precision = np.concatenate([[0.0], np.asarray(precision, dtype=np.float64), [0.0]])
    # envelope: the precision at recall r becomes the best precision at any recall >= r
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    changes = np.nonzero(recall[1:] != recall[:-1])[0]
    return float(np.sum((recall[changes + 1] - recall[changes]) * precision[changes + 1]))


def average_precision_voc07(recall, precision):
    """11-point average precision (VOC 2007): the mean over t = 0, 0.1, ..., 1 of the best precision at recall >= t
    (0 where no point reaches t). Empty curves give 0."""
    recall, precision = np.asarray(recall, dtype=np.float64), np.asarray(precision, dtype=np.float64)
    # k / 10 is the same double as a recall of 3 / 10 (linspace and arange(0, 1.1, 0.1) give 0.30000000000000004)
    return sum(float(np.max(precision[recall >= threshold], initial=0.0)) for threshold in np.arange(11) / 10.0) / 11.0


def precision_recall(detections, ground_truth, iou_threshold=0.5):
    """Precision–recall of ``detections`` against ``ground_truth`` (:func:`match_detections`); returns a dict:
      'precision', 'recall': lists, cumulative over the ranking with ignored (difficult) detections dropped;
      'num_positives': the number of non-difficult ground-truth objects;
      'ap': all-point average precision; 'ap_voc07': 11-point; 'max_recall': the recall after the whole ranking;
      'true_positive': one bool per detection, in the ORIGINAL order of ``detections``.
    With no detections or no positives the curves are empty and the AP values 0."""
    num_positives = sum(int(np.count_nonzero(~_ground_truth_arrays(entry, image)[1]))
                        for image, entry in ground_truth.items())
    order, tp, fp = match_detections(detections, ground_truth, iou_threshold)

    true_positive = np.zeros(len(detections), dtype=bool)
    true_positive[order] = tp > 0
    kept = (tp + fp) > 0
    cumulative_tp, cumulative_fp = np.cumsum(tp[kept]), np.cumsum(fp[kept])
    if num_positives > 0 and cumulative_tp.size > 0:
        precision, recall = cumulative_tp / (cumulative_tp + cumulative_fp), cumulative_tp / num_positives
    else:
        precision = recall = np.zeros(0)
    return {'precision': precision.tolist(), 'recall': recall.tolist(), 'num_positives': num_positives,
            'ap': average_precision(recall, precision), 'ap_voc07': average_precision_voc07(recall, precision),
            'max_recall': float(recall[-1]) if recall.size else 0.0, 'true_positive': true_positive.tolist()}


def regions_per_found_object(detections, true_positive):
    """The number of regions analysed to find each found object (the paper's Figure 8): the 'step' of every true
    positive, in detection order. detections: dicts carrying 'step', the 1-based count of regions analysed in its
    search when the region was visited. true_positive: one bool per detection, in the same order
    (``precision_recall(...)['true_positive']``)."""
    assert len(detections) == len(true_positive), (
        f'{len(detections)} detections but {len(true_positive)} true-positive flags')
    return [int(detection['step']) for detection, found in zip(detections, true_positive) if found]


def mean_regions(regions):
    """The mean of the counts :func:`regions_per_found_object` returns; None when no object was found."""
    return sum(regions) / len(regions) if regions else None


def roc_auc(scores, positive):
    """The probability that a positive outranks a negative (ties count half), from ranks; None without both."""
    scores, positive = np.asarray(scores, np.float64), np.asarray(positive, bool)
    count = positive.sum()
    if count == 0 or count == len(positive):
        return None
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2)[inverse]        # 1-based, ties averaged
    return float((ranks[positive].sum() - count * (count + 1) / 2) / (count * (len(positive) - count)))
