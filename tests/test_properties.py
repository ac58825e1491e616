"""Property-based tests (hypothesis) of the VOC parser and the hierarchy geometry (issue 6, item 6).

Parser: generated VOC XML with random objects round-trips; arbitrary coordinates give exactly the boxes a plain
reference rule predicts (kept and clipped, or skipped with a warning); garbage never raises anything but UserError
and warns with nothing but UserWarning. Geometry: children inside their parent with sizes s·w × s·h, IoU in [0, 1]
and symmetric, whole-pixel crops at least one pixel at any depth of the hierarchy.
"""
import math
import warnings
import xml.etree.ElementTree as ElementTree

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from runs.errors import UserError
from image_helper import round_box
from metrics import iou_many
from parse_xml_annotations import VOC_CLASSES, Annotation, parse_annotation
from reinforcement import child_regions
from conftest import apply_action, iou

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("xml")


def write_xml(folder, width, height, objects):
    """VOC XML through ElementTree (so names are escaped); ``objects``: (name, difficult, (4 coordinate texts))."""
    root = ElementTree.Element("annotation")
    size = ElementTree.SubElement(root, "size")
    ElementTree.SubElement(size, "width").text = str(width)
    ElementTree.SubElement(size, "height").text = str(height)
    for name, difficult, coordinates in objects:
        element = ElementTree.SubElement(root, "object")
        ElementTree.SubElement(element, "name").text = name
        ElementTree.SubElement(element, "difficult").text = str(int(difficult))
        bndbox = ElementTree.SubElement(element, "bndbox")
        for tag, text in zip(("xmin", "ymin", "xmax", "ymax"), coordinates):
            ElementTree.SubElement(bndbox, tag).text = str(text)
    path = folder / "generated.xml"
    path.write_bytes(ElementTree.tostring(root, encoding="utf-8"))
    return path


def parse_recording_warnings(path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        annotation = parse_annotation(path)
    return annotation, caught


names = st.one_of(st.sampled_from(VOC_CLASSES),
                  st.text(alphabet="abcdefghijklmnopqrstuvwxyz_-", min_size=1, max_size=12))


@st.composite
def valid_objects(draw, width, height):
    xmin, xmax = sorted(draw(st.integers(1, width)) for _ in range(2))
    ymin, ymax = sorted(draw(st.integers(1, height)) for _ in range(2))
    return draw(names), draw(st.booleans()), (xmin, ymin, xmax, ymax)


@st.composite
def valid_annotations(draw):
    width, height = draw(st.integers(1, 600)), draw(st.integers(1, 600))
    return width, height, draw(st.lists(valid_objects(width, height), max_size=6))


@SETTINGS
@given(valid_annotations())
def test_generated_voc_xml_round_trips(folder, annotation):
    width, height, objects = annotation
    parsed, caught = parse_recording_warnings(write_xml(folder, width, height, objects))
    assert not caught and parsed.skipped_objects == 0
    assert (parsed.width, parsed.height) == (width, height)
    assert [obj.name for obj in parsed.objects] == [name for name, _, _ in objects]
    assert [obj.difficult for obj in parsed.objects] == [difficult for _, difficult, _ in objects]
    for obj, (_, _, (xmin, ymin, xmax, ymax)) in zip(parsed.objects, objects):
        assert obj.box.tolist() == [xmin - 1, ymin - 1, xmax, ymax]


coordinate = st.one_of(st.integers(-100, 700), st.floats(-100, 700, allow_nan=False).map(lambda v: round(v, 2)),
                       st.sampled_from(["", "x", "nan", "inf", "1e3", " 12 ", "-0"]))


def reference_box(texts, width, height):
    """The rule in plain words: numbers, not reversed, clipped to the image, some area left; else None."""
    try:
        xmin, ymin, xmax, ymax = (float(str(text).strip()) for text in texts)
    except ValueError:
        return None
    if not all(math.isfinite(v) for v in (xmin, ymin, xmax, ymax)) or xmin > xmax or ymin > ymax:
        return None
    box = [min(max(xmin - 1, 0), width), min(max(ymin - 1, 0), height), min(max(xmax, 0), width),
           min(max(ymax, 0), height)]
    return box if box[2] > box[0] and box[3] > box[1] else None


@SETTINGS
@given(st.integers(1, 500), st.integers(1, 500),
       st.lists(st.tuples(names, st.booleans(), st.tuples(coordinate, coordinate, coordinate, coordinate)),
                max_size=6))
def test_any_coordinates_keep_exactly_the_usable_boxes(folder, width, height, objects):
    parsed, caught = parse_recording_warnings(write_xml(folder, width, height, objects))
    expected = [box for _, _, texts in objects if (box := reference_box(texts, width, height)) is not None]
    assert [obj.box.tolist() for obj in parsed.objects] == expected
    assert parsed.skipped_objects == len(objects) - len(expected) == len(caught)
    assert all(issubclass(warning.category, UserWarning) for warning in caught)
    for obj in parsed.objects:
        x0, y0, x1, y1 = obj.box
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height


def check_garbage(folder, data):
    path = folder / "garbage.xml"
    path.write_bytes(data)
    try:
        annotation, caught = parse_recording_warnings(path)
    except UserError as error:
        assert "garbage.xml" in str(error)
        return
    assert isinstance(annotation, Annotation)
    assert all(issubclass(warning.category, UserWarning) for warning in caught)


@SETTINGS
@given(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(lambda text: text.encode("utf-8", "replace"))))
def test_garbage_raises_only_user_errors(folder, data):
    check_garbage(folder, data)


@SETTINGS
@given(valid_annotations(), st.data())
def test_damaged_xml_raises_only_user_errors(folder, annotation, data):
    width, height, objects = annotation
    text = write_xml(folder, width, height, objects).read_bytes()
    position = data.draw(st.integers(0, len(text)))
    damage = data.draw(st.sampled_from(["truncate", "insert", "delete"]))
    if damage == "truncate":
        text = text[:position]
    elif damage == "insert":
        text = text[:position] + data.draw(st.binary(min_size=1, max_size=8)) + text[position:]
    else:
        text = text[:position] + text[position + data.draw(st.integers(1, 20)):]
    check_garbage(folder, text)


# ---------------------------------------------------------------------------------------------------------------
# geometry

regions = st.tuples(st.floats(-1000, 1000), st.floats(-1000, 1000), st.floats(1e-3, 1e4), st.floats(1e-3, 1e4))
scales = st.floats(0.05, 0.95)


@SETTINGS
@given(regions, scales)
def test_children_lie_inside_their_parent_with_size_s_w_by_s_h(region, scale):
    x, y, w, h = region
    parent = np.array([x, y, x + w, y + h])
    children = child_regions(parent, scale)
    tolerance = 1e-9 * (1 + np.abs(parent).max())
    assert np.all(children[:, :2] >= parent[:2] - tolerance) and np.all(children[:, 2:] <= parent[2:] + tolerance)
    np.testing.assert_allclose(children[:, 2] - children[:, 0], scale * w, rtol=1e-9, atol=tolerance)
    np.testing.assert_allclose(children[:, 3] - children[:, 1], scale * h, rtol=1e-9, atol=tolerance)
    # the centre child is centred; the corner children touch their corners
    np.testing.assert_allclose((children[4, :2] + children[4, 2:]) / 2, (parent[:2] + parent[2:]) / 2, atol=tolerance)
    np.testing.assert_allclose(children[[0, 1, 2, 3], [0, 2, 0, 2]], parent[[0, 2, 0, 2]], atol=tolerance)
    np.testing.assert_allclose(children[[0, 1, 2, 3], [1, 1, 3, 3]], parent[[1, 1, 3, 3]], atol=tolerance)


boxes = st.tuples(st.floats(-100, 100), st.floats(-100, 100), st.floats(0, 100), st.floats(0, 100)).map(
    lambda b: [b[0], b[1], b[0] + b[2], b[1] + b[3]])


@SETTINGS
@given(boxes, boxes)
def test_iou_is_in_zero_one_and_symmetric(box_a, box_b):
    value = iou(box_a, box_b)
    assert 0.0 <= value <= 1.0 and value == pytest.approx(iou(box_b, box_a), abs=1e-12)
    assert iou_many([box_a, box_b], box_b)[0] == pytest.approx(value, abs=1e-12)
    area = (box_a[2] - box_a[0]) * (box_a[3] - box_a[1])
    assume(area > 1e-6)
    assert iou(box_a, box_a) == pytest.approx(1.0)


@SETTINGS
@given(st.integers(1, 6), st.integers(1, 6), scales, st.lists(st.integers(0, 5), max_size=15))
def test_crops_are_at_least_one_pixel_at_any_depth(width, height, scale, actions):
    """Regions follow the hierarchy below a pixel (they are floats); the crop rounds to whole pixels, at least
    one on each side, inside the image, at any depth. A region keeps a positive extent while its size (scale to the
    depth) is above float64's resolution; deeper (scale 0.05, 13 steps: 1e-17 of the image) it may collapse to a
    point, and its crop is still one pixel."""
    region = np.array([0.0, 0.0, width, height])
    for depth, action in enumerate(actions, start=1):
        region = apply_action(region, action, scale)
        x0, y0, x1, y1 = round_box(region, width, height)
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        if scale ** depth > 1e-12:
            assert region[2] > region[0] and region[3] > region[1]


@SETTINGS
@given(st.integers(1, 50), st.integers(1, 50), st.tuples(*[st.floats(-1e4, 1e4)] * 4))
def test_round_box_of_any_box_is_a_pixel_box_inside_the_image(width, height, box):
    x0, y0, x1, y1 = round_box(np.array(box), width, height)
    assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
