"""IoU and VOC precision–recall, against hand-worked cases and a slow obvious reference implementation."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import iou
from metrics import (average_precision, average_precision_voc07, box_area, iou_many, mark_duplicates,
                     match_detections, precision_recall, regions_per_found_object)


def detection(image, box, score, **extra):
    return {'image': image, 'box': box, 'score': score, **extra}


def truth(boxes, difficult=None):
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    if difficult is None:
        difficult = [False] * len(boxes)
    return {'boxes': boxes, 'difficult': np.asarray(difficult, dtype=bool)}


# --- IoU ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('box_a, box_b, expected', [
    ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),
    ([0, 0, 10, 10], [20, 20, 30, 30], 0.0),
    ([0, 0, 10, 10], [10, 0, 20, 10], 0.0),             # half-open boxes that only touch do not overlap
    ([0, 0, 10, 10], [5, 0, 15, 10], 50 / 150),
    ([0, 0, 10, 10], [0, 0, 5, 5], 25 / 100),
    ([0, 0, 10, 10], [5, 5, 15, 15], 25 / 175),
    ([0.5, 0.5, 2.5, 1.5], [1.5, 0.5, 3.5, 1.5], 1 / 3),
    ([0, 0, 0, 0], [0, 0, 0, 0], 0.0),                  # empty union
])
def test_iou_hand_values(box_a, box_b, expected):
    assert iou(box_a, box_b) == pytest.approx(expected)
    assert iou(box_b, box_a) == pytest.approx(expected)
    assert iou_many(np.array([box_a]), box_b)[0] == pytest.approx(expected)


def test_box_area():
    assert box_area([0, 0, 10, 5]) == 50.0
    assert box_area([2.5, 1, 3, 2]) == 0.5
    assert box_area([5, 5, 3, 3]) == 0.0


def test_iou_many_empty_and_shape():
    assert iou_many(np.zeros((0, 4)), [0, 0, 1, 1]).shape == (0,)
    result = iou_many([[0, 0, 2, 2], [1, 1, 3, 3], [5, 5, 6, 6]], np.array([0, 0, 2, 2]))
    np.testing.assert_allclose(result, [1.0, 1 / 7, 0.0])


boxes_strategy = st.tuples(st.floats(0, 50), st.floats(0, 50), st.floats(0, 30), st.floats(0, 30)).map(
    lambda values: [values[0], values[1], values[0] + values[2], values[1] + values[3]])


@given(st.lists(boxes_strategy, min_size=1, max_size=6), boxes_strategy)
@settings(max_examples=100, deadline=None)
def test_iou_many_matches_iou(boxes, box):
    expected = [iou(other, box) for other in boxes]
    np.testing.assert_allclose(iou_many(np.array(boxes), box), expected, rtol=1e-12, atol=1e-12)
    assert all(0.0 <= value <= 1.0 + 1e-12 for value in expected)


# --- matching, hand-worked ---------------------------------------------------------------------------------------

def test_duplicate_is_false_positive():
    ground_truth = {'a': truth([[0, 0, 10, 10]])}
    detections = [detection('a', [0, 0, 10, 10], 0.5), detection('a', [0, 0, 10, 9], 0.9)]
    order, tp, fp = match_detections(detections, ground_truth)
    assert order.tolist() == [1, 0]
    assert tp.tolist() == [1, 0]
    assert fp.tolist() == [0, 1]


def test_duplicates_demote_ranks_repeats_last_without_losing_recall():
    # two objects in 'a'; the second-best box repeats the best one, and would push the second object down the list
    ground_truth = {'a': truth([[0, 0, 10, 10], [50, 50, 60, 60]]), 'b': truth([[0, 0, 10, 10]])}
    detections = [detection('a', [0, 0, 10, 10], 0.9), detection('a', [0, 0, 10, 9], 0.8),    # IoU 0.9: a repeat
                  detection('a', [0, 0, 10, 4], 0.75),       # IoU 0.4 with the best: not a repeat (and a miss)
                  detection('b', [0, 0, 10, 9], 0.7),        # another image: never a repeat of 'a'
                  detection('a', [50, 50, 60, 60], 0.6)]
    assert mark_duplicates(detections).tolist() == [False, True, False, False, False]
    assert mark_duplicates(detections, iou_threshold=0.3).tolist() == [False, True, True, False, False]
    kept = precision_recall(detections, ground_truth)
    demoted = precision_recall([dict(d, duplicate=bool(flag)) for d, flag in zip(detections,
                                                                                 mark_duplicates(detections))],
                               ground_truth)
    order, _, _ = match_detections([dict(d, duplicate=bool(flag)) for d, flag in zip(detections,
                                                                                      mark_duplicates(detections))],
                                   ground_truth)
    assert order.tolist() == [0, 2, 3, 4, 1]             # the repeat after all others, the rest by score
    assert demoted['max_recall'] == kept['max_recall'] == 1.0
    assert demoted['ap'] > kept['ap']
    assert demoted['true_positive'] == kept['true_positive']     # the same detections are right or wrong


def test_a_repeat_of_a_repeat_is_judged_against_the_kept_boxes_only():
    detections = [detection('a', [0, 0, 10, 10], 0.9), detection('a', [3, 0, 13, 10], 0.8),    # IoU 0.54: repeat
                  detection('a', [6, 0, 16, 10], 0.7)]       # IoU 0.25 with the kept one, 0.54 with the repeat
    assert mark_duplicates(detections).tolist() == [False, True, False]


def test_difficult_object_is_ignored():
    ground_truth = {'a': truth([[0, 0, 10, 10], [50, 50, 60, 60]], difficult=[True, False])}
    detections = [detection('a', [0, 0, 10, 10], 0.9),    # on the difficult object: ignored
                  detection('a', [0, 0, 10, 10], 0.8),    # again: still ignored, not a duplicate
                  detection('a', [50, 50, 60, 60], 0.7),  # the normal object: TP
                  detection('a', [20, 20, 30, 30], 0.6)]  # nothing there: FP
    order, tp, fp = match_detections(detections, ground_truth)
    assert order.tolist() == [0, 1, 2, 3]
    assert tp.tolist() == [0, 0, 1, 0]
    assert fp.tolist() == [0, 0, 0, 1]
    result = precision_recall(detections, ground_truth)
    assert result['num_positives'] == 1
    assert result['precision'] == pytest.approx([1.0, 0.5])  # ignored detections dropped from the curve
    assert result['recall'] == pytest.approx([1.0, 1.0])
    assert result['true_positive'] == [False, False, True, False]


def test_best_overlap_difficult_wins_over_a_normal_object():
    # the VOC rule looks at the single best-overlapping object; when it is difficult, the detection is ignored
    ground_truth = {'a': truth([[0, 0, 10, 10], [0, 0, 10, 12]], difficult=[True, False])}
    order, tp, fp = match_detections([detection('a', [0, 0, 10, 10], 1.0)], ground_truth)
    assert tp.tolist() == [0] and fp.tolist() == [0]


def test_detection_on_image_without_ground_truth_is_false_positive():
    ground_truth = {'a': truth([[0, 0, 10, 10]]), 'empty': truth(np.zeros((0, 4)))}
    detections = [detection('unknown', [0, 0, 10, 10], 0.9), detection('empty', [0, 0, 10, 10], 0.8),
                  detection('a', [0, 0, 10, 10], 0.7)]
    order, tp, fp = match_detections(detections, ground_truth)
    assert tp.tolist() == [0, 0, 1]
    assert fp.tolist() == [1, 1, 0]


def test_below_threshold_is_false_positive_and_threshold_is_inclusive():
    ground_truth = {'a': truth([[0, 0, 10, 10]])}
    # IoU exactly 0.5: [0, 0, 10, 5] covers half the object
    order, tp, fp = match_detections([detection('a', [0, 0, 10, 5], 1.0)], ground_truth)
    assert tp.tolist() == [1]
    order, tp, fp = match_detections([detection('a', [0, 0, 10, 4.9], 1.0)], ground_truth)
    assert fp.tolist() == [1]
    order, tp, fp = match_detections([detection('a', [0, 0, 10, 4.9], 1.0)], ground_truth, iou_threshold=0.4)
    assert tp.tolist() == [1]


def test_multi_image_ranking():
    ground_truth = {'a': truth([[0, 0, 10, 10], [20, 20, 30, 30]]), 'b': truth([[0, 0, 8, 8]])}
    detections = [detection('a', [0, 0, 10, 10], 0.2),    # TP (rank 4)
                  detection('b', [0, 0, 8, 8], 0.9),      # TP (rank 1)
                  detection('a', [40, 40, 50, 50], 0.8),  # FP (rank 2)
                  detection('b', [0, 0, 8, 8], 0.5),      # duplicate FP (rank 3)
                  detection('a', [20, 20, 30, 30], 0.1)]  # TP (rank 5)
    result = precision_recall(detections, ground_truth)
    assert result['num_positives'] == 3
    assert result['precision'] == pytest.approx([1, 1 / 2, 1 / 3, 2 / 4, 3 / 5])
    assert result['recall'] == pytest.approx([1 / 3, 1 / 3, 1 / 3, 2 / 3, 1])
    assert result['max_recall'] == pytest.approx(1.0)
    assert result['true_positive'] == [True, True, False, False, True]
    # envelope: 1 up to recall 1/3, then 3/5 up to recall 1
    assert result['ap'] == pytest.approx(1 / 3 + (2 / 3) * 0.6)
    # 11-point: t = 0..0.3 -> 1 (4 points), t = 0.4..1 -> 0.6 (7 points)
    assert result['ap_voc07'] == pytest.approx((4 + 7 * 0.6) / 11)


def test_ties_keep_input_order():
    ground_truth = {'a': truth([[0, 0, 10, 10]])}
    detections = [detection('a', [0, 0, 10, 10], 0.5, tag='first'), detection('a', [0, 0, 10, 10], 0.5)]
    order, tp, fp = match_detections(detections, ground_truth)
    assert order.tolist() == [0, 1]
    assert tp.tolist() == [1, 0]
    assert precision_recall(detections, ground_truth)['true_positive'] == [True, False]


def test_no_detections_and_no_positives_do_not_crash():
    result = precision_recall([], {'a': truth([[0, 0, 10, 10]])})
    assert result['precision'] == [] and result['recall'] == []
    assert result['ap'] == 0.0 and result['ap_voc07'] == 0.0 and result['max_recall'] == 0.0
    assert result['num_positives'] == 1 and result['true_positive'] == []

    result = precision_recall([detection('a', [0, 0, 1, 1], 1.0)], {'a': truth(np.zeros((0, 4)))})
    assert result['num_positives'] == 0
    assert result['precision'] == [] and result['recall'] == [] and result['ap'] == 0.0
    assert result['true_positive'] == [False]

    result = precision_recall([], {})
    assert result['ap'] == 0.0 and result['num_positives'] == 0


# --- average precision, hand values ----------------------------------------------------------------------------

def test_average_precision_hand_values():
    precision, recall = [1.0, 0.5, 2 / 3], [0.5, 0.5, 1.0]
    # envelope: precision 1 up to recall 0.5, then 2/3 up to 1
    assert average_precision(recall, precision) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # 11-point: t = 0..0.5 -> 1 (6 points), t = 0.6..1 -> 2/3 (5 points)
    assert average_precision_voc07(recall, precision) == pytest.approx((6 + 5 * 2 / 3) / 11)


def test_average_precision_edge_cases():
    assert average_precision([], []) == 0.0
    assert average_precision_voc07([], []) == 0.0
    assert average_precision([1.0], [1.0]) == pytest.approx(1.0)
    assert average_precision_voc07([1.0], [1.0]) == pytest.approx(1.0)
    # recall never reaches 0.35: only t = 0, 0.1, 0.2, 0.3 count
    assert average_precision_voc07([0.1, 0.3], [1.0, 0.5]) == pytest.approx((1 + 1 + 0.5 + 0.5) / 11)
    assert average_precision([0.1, 0.3], [1.0, 0.5]) == pytest.approx(0.1 * 1 + 0.2 * 0.5)


# --- against a slow obvious reference ----------------------------------------------------------------------------

def reference_iou(box_a, box_b):
    """IoU of integer boxes by counting unit cells."""
    cells_a = {(x, y) for x in range(box_a[0], box_a[2]) for y in range(box_a[1], box_a[3])}
    cells_b = {(x, y) for x in range(box_b[0], box_b[2]) for y in range(box_b[1], box_b[3])}
    union = len(cells_a | cells_b)
    return len(cells_a & cells_b) / union if union else 0.0


def reference_evaluation(detections, ground_truth, threshold):
    """VOC matching written out plainly: returns labels 'tp'/'fp'/'ignored' per detection in original order."""
    ranked = sorted(range(len(detections)), key=lambda index: -detections[index]['score'])  # sorted() is stable
    matched = set()
    labels = [None] * len(detections)
    for index in ranked:
        image = detections[index]['image']
        objects = ground_truth.get(image, {'boxes': [], 'difficult': []})
        best_object, best_iou = None, -1.0
        for number, box in enumerate(objects['boxes']):
            overlap = reference_iou([int(value) for value in box], detections[index]['box'])
            if overlap > best_iou:
                best_object, best_iou = number, overlap
        if best_object is None or best_iou < threshold:
            labels[index] = 'fp'
        elif objects['difficult'][best_object]:
            labels[index] = 'ignored'
        elif (image, best_object) in matched:
            labels[index] = 'fp'
        else:
            labels[index] = 'tp'
            matched.add((image, best_object))
    return ranked, labels


def reference_curves(ranked, labels, num_positives):
    tp = fp = 0
    precision, recall = [], []
    for index in ranked:
        if labels[index] == 'ignored':
            continue
        tp += labels[index] == 'tp'
        fp += labels[index] == 'fp'
        precision.append(tp / (tp + fp))
        recall.append(tp / num_positives)
    return precision, recall


def reference_ap(recall, precision):
    """Sum over each rise in recall of the rise times the best precision at that recall or beyond."""
    total, previous = 0.0, 0.0
    for level in sorted(set(recall)):
        total += (level - previous) * max(p for r, p in zip(recall, precision) if r >= level)
        previous = level
    return total


def reference_ap_voc07(recall, precision):
    total = 0.0
    for step in range(11):
        reached = [p for r, p in zip(recall, precision) if r >= step / 10]
        total += max(reached) if reached else 0.0
    return total / 11


def integer_box(rng):
    x0, y0 = rng.integers(0, 12, size=2)
    width, height = rng.integers(1, 8, size=2)
    return [int(x0), int(y0), int(x0 + width), int(y0 + height)]


@pytest.mark.parametrize('seed', range(40))
def test_matches_reference_on_random_data(seed):
    rng = np.random.default_rng(seed)
    images = ['img0', 'img1', 'img2']
    ground_truth = {}
    for image in images[:2]:  # img2 has no entry: all its detections are false positives
        count = int(rng.integers(0, 4))
        ground_truth[image] = {'boxes': [integer_box(rng) for _ in range(count)],
                               'difficult': [bool(rng.random() < 0.25) for _ in range(count)]}
    detections = []
    for _ in range(int(rng.integers(0, 25))):
        image = images[int(rng.integers(0, 3))]
        objects = ground_truth.get(image, {'boxes': []})['boxes']
        if objects and rng.random() < 0.6:  # near an object, sometimes exactly on it
            box = list(objects[int(rng.integers(0, len(objects)))])
            box = [box[0] + int(rng.integers(-1, 2)), box[1], box[2], box[3] + int(rng.integers(-1, 2))]
            box[3] = max(box[3], box[1] + 1)
        else:
            box = integer_box(rng)
        detections.append({'image': image, 'box': box, 'score': float(rng.integers(0, 6)) / 5})  # many ties
    threshold = float(rng.choice([0.3, 0.5, 0.7]))

    ranked, labels = reference_evaluation(detections, ground_truth, threshold)
    order, tp, fp = match_detections(detections, ground_truth, threshold)
    assert order.tolist() == ranked
    assert tp.tolist() == [float(labels[index] == 'tp') for index in ranked]
    assert fp.tolist() == [float(labels[index] == 'fp') for index in ranked]

    num_positives = sum(not flag for objects in ground_truth.values() for flag in objects['difficult'])
    result = precision_recall(detections, ground_truth, threshold)
    assert result['num_positives'] == num_positives
    assert result['true_positive'] == [label == 'tp' for label in labels]
    if num_positives == 0:
        assert result['recall'] == [] and result['ap'] == 0.0
        return
    precision, recall = reference_curves(ranked, labels, num_positives)
    assert result['precision'] == pytest.approx(precision)
    assert result['recall'] == pytest.approx(recall)
    assert result['max_recall'] == pytest.approx(recall[-1] if recall else 0.0)
    assert result['ap'] == pytest.approx(reference_ap(recall, precision) if recall else 0.0)
    assert result['ap_voc07'] == pytest.approx(reference_ap_voc07(recall, precision))


@given(st.lists(st.tuples(st.floats(0, 1), st.floats(0, 1)), min_size=1, max_size=20))
@settings(max_examples=150, deadline=None)
def test_average_precision_matches_reference(points):
    recall = sorted(point[0] for point in points)  # recall never decreases along a ranking
    precision = [point[1] for point in points]
    assert average_precision(recall, precision) == pytest.approx(reference_ap(recall, precision), abs=1e-12)
    assert average_precision_voc07(recall, precision) == pytest.approx(reference_ap_voc07(recall, precision),
                                                                       abs=1e-12)


# --- regions per found object ------------------------------------------------------------------------------------

def test_regions_per_found_object():
    detections = [detection('a', [0, 0, 1, 1], 0.1, search=0, step=1),
                  detection('a', [0, 0, 1, 1], 0.2, search=0, step=2),
                  detection('a', [0, 0, 1, 1], 0.3, search=1, step=1),
                  detection('b', [0, 0, 1, 1], 0.4, search=0, step=4)]
    assert regions_per_found_object(detections, [False, True, True, True]) == [2, 1, 4]
    assert regions_per_found_object(detections, [False] * 4) == []
    assert regions_per_found_object([], []) == []


def test_regions_per_found_object_from_precision_recall():
    ground_truth = {'a': truth([[0, 0, 10, 10]]), 'b': truth([[0, 0, 20, 20]])}
    detections = [detection('a', [0, 0, 20, 20], 0.1, search=0, step=1),
                  detection('a', [0, 0, 10, 10], 0.9, search=0, step=2),
                  detection('b', [0, 0, 20, 20], 0.5, search=0, step=1)]
    result = precision_recall(detections, ground_truth)
    assert regions_per_found_object(detections, result['true_positive']) == [2, 1]
