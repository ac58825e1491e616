"""Tests of parse_xml_annotations: real VOC 2007 test annotations, class names, broken files."""

import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from any folder

from runs.errors import UserError  # noqa: E402
from parse_xml_annotations import (  # noqa: E402
    VOC_CLASSES, Annotation, annotation_path, class_id, class_name, load_records, parse_annotation,
    read_class_image_set, unpack_compact_annotations,
)
from experiments.compact_annotations import read_image_set, write_compact_annotations  # noqa: E402



# ---------------------------------------------------------------- class names

def test_voc_classes_order():
    assert len(VOC_CLASSES) == 20
    assert VOC_CLASSES[0] == "aeroplane" and VOC_CLASSES[11] == "dog" and VOC_CLASSES[19] == "tvmonitor"


@pytest.mark.parametrize("given, expected", [
    (1, 1), (20, 20), ("1", 1), (" 7 ", 7), ("aeroplane", 1), ("AeroPlane ", 1), ("tvmonitor", 20),
    (np.int64(3), 3),
])
def test_class_id_accepts_ids_and_names(given, expected):
    assert class_id(given) == expected


def test_class_id_and_name_round_trip():
    for index, name in enumerate(VOC_CLASSES, start=1):
        assert class_id(name) == index
        assert class_name(index) == name
        assert class_name(str(index)) == name
        assert class_name(name.upper()) == name


@pytest.mark.parametrize("bad", [0, 21, -1, "0", "21", "plane", "", None, True, 1.0, "aeroplanes"])
def test_class_id_rejects_unknown(bad):
    with pytest.raises(UserError, match="aeroplane"):  # the message lists the valid names
        class_id(bad)
    with pytest.raises(UserError):
        class_name(bad)


# ---------------------------------------------------------------- real annotations

def test_parse_real_annotation_000001(voc2007_test):
    annotation = parse_annotation(voc2007_test / "Annotations" / "000001.xml")
    assert annotation.image_id == "000001"
    assert (annotation.width, annotation.height) == (353, 500)
    assert [obj.name for obj in annotation.objects] == ["dog", "person"]
    # VOC xmin 48, ymin 240, xmax 195, ymax 371 -> [47, 239, 195, 371)
    np.testing.assert_array_equal(annotation.objects[0].box, [47, 239, 195, 371])
    np.testing.assert_array_equal(annotation.objects[1].box, [7, 11, 352, 498])
    assert annotation.objects[0].box.dtype == np.float64
    assert not any(obj.difficult for obj in annotation.objects)  # this copy has no <difficult>
    np.testing.assert_array_equal(annotation.boxes_of("dog"), [[47, 239, 195, 371]])
    np.testing.assert_array_equal(annotation.boxes_of(12), [[47, 239, 195, 371]])
    assert annotation.boxes_of("aeroplane").shape == (0, 4)
    assert annotation.difficult_of("person").tolist() == [False]


def _count_labels(path: Path, label: str) -> int:
    return sum(1 for line in path.read_text().splitlines() if line.split() and line.split()[1] == label)


def test_read_class_image_set_real(voc2007_test):
    class_file = voc2007_test / "ImageSets" / "Main" / "aeroplane_test.txt"
    image_ids = read_class_image_set(voc2007_test, "aeroplane", "test")
    assert len(image_ids) == _count_labels(class_file, "1") == 204
    assert image_ids == sorted(image_ids)  # file order
    assert len(read_class_image_set(voc2007_test, 1, "test", labels=(0,))) == _count_labels(class_file, "0")
    assert len(read_class_image_set(voc2007_test, "aeroplane", "test", labels=(1, 0, -1))) == 4952
    assert len(read_image_set(voc2007_test, "test")) == 4952


def test_every_real_aeroplane_image_has_an_aeroplane_box(voc2007_test):
    for record in load_records(voc2007_test, "aeroplane", "test"):
        boxes = record.annotation.boxes_of("aeroplane")
        assert len(boxes) >= 1
        assert np.all(boxes[:, 2] > boxes[:, 0]) and np.all(boxes[:, 3] > boxes[:, 1])
        assert np.all(boxes[:, 2] <= record.annotation.width) and np.all(boxes[:, 3] <= record.annotation.height)


def test_load_records_two_roots_concatenate(tmp_path, voc2007_test):
    copy = tmp_path / "VOC2007_copy"
    shutil.copytree(voc2007_test / "ImageSets", copy / "ImageSets")
    image_ids = read_class_image_set(voc2007_test, "aeroplane", "test")
    (copy / "Annotations").mkdir()
    for image_id in image_ids:
        shutil.copy(annotation_path(voc2007_test, image_id), copy / "Annotations")

    records = load_records([voc2007_test, copy], "aeroplane", "test")
    assert len(records) == 2 * len(image_ids)
    assert [record.image_id for record in records] == image_ids + image_ids
    assert records[0].path_voc == voc2007_test and records[-1].path_voc == copy
    assert isinstance(records[0].annotation, Annotation)

    truncated = load_records([str(voc2007_test), copy], 1, "test", max_images=len(image_ids) + 3)
    assert len(truncated) == len(image_ids) + 3
    assert truncated[len(image_ids)].path_voc == copy
    assert len(load_records(voc2007_test, "aeroplane", "test", max_images=5)) == 5


# ---------------------------------------------------------------- files made here

def _xml(objects: str, size: str = "<size><width>100</width><height>80</height><depth>3</depth></size>") -> str:
    return f"<annotation><filename>x.jpg</filename>{size}{objects}</annotation>"


def _object(name="aeroplane", box=("11", "21", "40", "60"), difficult=None, extra="") -> str:
    coordinates = "".join(f"<{tag}>{value}</{tag}>" for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box))
    difficult_tag = "" if difficult is None else f"<difficult>{difficult}</difficult>"
    return f"<object><name>{name}</name>{difficult_tag}<bndbox>{coordinates}</bndbox>{extra}</object>"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_parse_boxes_difficult_and_clipping(tmp_path):
    path = _write(tmp_path, "000042.xml", _xml(
        _object(difficult=1) + _object(" Dog ", ("1", "1", "100", "80"), difficult=0)
        + _object("aeroplane", ("-5", "0", "130.5", "95"))
        + _object("drone", ("5", "5", "9", "9"))))
    annotation = parse_annotation(path)
    assert annotation.image_id == "000042"
    assert [obj.name for obj in annotation.objects] == ["aeroplane", "dog", "aeroplane", "drone"]
    assert [obj.difficult for obj in annotation.objects] == [True, False, False, False]
    np.testing.assert_array_equal(annotation.objects[0].box, [10, 20, 40, 60])
    np.testing.assert_array_equal(annotation.objects[1].box, [0, 0, 100, 80])  # the whole image
    np.testing.assert_array_equal(annotation.objects[2].box, [0, 0, 100, 80])  # clipped
    np.testing.assert_array_equal(annotation.boxes_of("aeroplane"), [[10, 20, 40, 60], [0, 0, 100, 80]])
    np.testing.assert_array_equal(annotation.boxes_of("aeroplane", include_difficult=False), [[0, 0, 100, 80]])
    assert annotation.difficult_of("aeroplane").tolist() == [True, False]
    assert annotation.boxes_of("drone").shape == (1, 4)  # custom names are kept
    assert annotation.boxes_of("cat").shape == (0, 4) and annotation.difficult_of("cat").shape == (0,)


@pytest.mark.parametrize("broken, problem", [
    ("<object><name>aeroplane</name></object>", "no <bndbox>"),
    (_object(box=("11", "a", "40", "60")), "non-numeric"),
    (_object(box=("11", "21", "40", "")), "non-numeric"),
    (_object(box=("11", "21", "nan", "60")), "non-numeric"),
    ("<object><name>aeroplane</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax></bndbox></object>",
     "non-numeric"),
    (_object(box=("50", "21", "40", "60")), "reversed"),
    (_object(box=("11", "70", "40", "60")), "reversed"),
    (_object(box=("150", "21", "160", "60")), "zero area"),
    (_object(box=("11", "81", "40", "90")), "zero area"),
    ("<object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>", "no <name>"),
])
def test_broken_object_is_skipped_with_warning(tmp_path, broken, problem):
    path = _write(tmp_path, "000007.xml", _xml(_object("dog") + broken + _object("cat")))
    with pytest.warns(UserWarning, match=problem) as caught:
        annotation = parse_annotation(path)
    assert "000007.xml" in str(caught[0].message) and "object 1" in str(caught[0].message)
    assert [obj.name for obj in annotation.objects] == ["dog", "cat"]


def test_one_pixel_box_is_kept(tmp_path):
    annotation = parse_annotation(_write(tmp_path, "a.xml", _xml(_object(box=("5", "5", "5", "5")))))
    np.testing.assert_array_equal(annotation.objects[0].box, [4, 4, 5, 5])


@pytest.mark.parametrize("text", [
    "<annotation><size><width>10</width>",                        # truncated XML
    "not xml at all",
    "",
    _xml(_object(), size=""),                                      # no <size>
    _xml(_object(), size="<size><width>ten</width><height>80</height></size>"),
    _xml(_object(), size="<size><width>100</width></size>"),
    _xml(_object(), size="<size><width>0</width><height>80</height></size>"),
])
def test_unusable_annotation_file_raises(tmp_path, text):
    path = _write(tmp_path, "broken_file.xml", text)
    with pytest.raises(UserError, match="broken_file.xml"):
        parse_annotation(path)


def test_missing_annotation_file_raises(tmp_path):
    with pytest.raises(UserError, match="nothing.xml"):
        parse_annotation(tmp_path / "nothing.xml")


def _make_voc(tmp_path: Path, class_lines: list[str], set_lines=("000001", "000002")) -> Path:
    main = tmp_path / "voc" / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "aeroplane_trainval.txt").write_text("\n".join(class_lines) + "\n")
    (main / "trainval.txt").write_text("\n".join(set_lines) + "\n")
    return tmp_path / "voc"


def test_read_image_sets(tmp_path):
    root = _make_voc(tmp_path, ["000001 -1", "000002  1", "000003  0", "", "000004  1"])
    assert read_image_set(root, "trainval") == ["000001", "000002"]
    assert read_class_image_set(root, "aeroplane", "trainval") == ["000002", "000004"]
    assert read_class_image_set(root, "1", "trainval", labels=(1, 0)) == ["000002", "000003", "000004"]
    assert annotation_path(root, "000002") == root / "Annotations" / "000002.xml"


def test_missing_dataset_or_image_set_raises(tmp_path):
    root = _make_voc(tmp_path, ["000001  1"])
    with pytest.raises(UserError, match="dataset folder not found"):
        read_image_set(tmp_path / "nowhere", "trainval")
    with pytest.raises(UserError, match="test.txt"):
        read_image_set(root, "test")
    with pytest.raises(UserError, match="bird_trainval.txt"):
        read_class_image_set(root, "bird", "trainval")
    with pytest.raises(UserError, match="nowhere"):
        load_records([root, tmp_path / "nowhere"], "aeroplane", "trainval")


def test_empty_or_malformed_class_set_raises(tmp_path):
    root = _make_voc(tmp_path, ["000001 -1", "000002  0"])
    with pytest.raises(UserError, match="no images with label 1.*aeroplane_trainval.txt"):
        read_class_image_set(root, "aeroplane", "trainval")
    (root / "ImageSets" / "Main" / "aeroplane_trainval.txt").write_text("000001 -1\n000002\n")
    with pytest.raises(UserError, match="line 2"):
        read_class_image_set(root, "aeroplane", "trainval")
    (root / "ImageSets" / "Main" / "trainval.txt").write_text("\n")
    with pytest.raises(UserError, match="trainval.txt"):
        read_image_set(root, "trainval")


def test_load_records_parses_annotations_and_checks_arguments(tmp_path):
    root = _make_voc(tmp_path, ["000001  1", "000002 -1", "000003  1"])
    (root / "Annotations").mkdir()
    for image_id in ("000001", "000003"):
        (root / "Annotations" / f"{image_id}.xml").write_text(_xml(_object()))
    records = load_records(root, "aeroplane", "trainval")
    assert [record.image_id for record in records] == ["000001", "000003"]
    np.testing.assert_array_equal(records[1].annotation.boxes_of("aeroplane"), [[10, 20, 40, 60]])
    for bad in (0, -2, 1.5, True):
        with pytest.raises(UserError, match="max_images"):
            load_records(root, "aeroplane", "trainval", max_images=bad)
    with pytest.raises(UserError, match="path_voc"):
        load_records([], "aeroplane", "trainval")
    (root / "Annotations" / "000003.xml").unlink()
    with pytest.raises(UserError, match="000003.xml"):
        load_records(root, "aeroplane", "trainval")


def test_the_carried_voc2007_test_annotations_are_complete(voc2007_test):
    """The compact copy unpacks to every VOC 2007 test image and object, with VOC's 1/0/-1 labels per class."""
    image_ids = read_image_set(voc2007_test, "test")
    objects = [obj for image_id in image_ids for obj in parse_annotation(annotation_path(voc2007_test, image_id)).objects]
    assert len(image_ids) == 4952 and len(objects) == 14976
    assert sum(obj.name == "aeroplane" for obj in objects) == 311
    # an image labelled 0 (difficult only) holds objects of the class, all of them difficult
    for image_id in read_class_image_set(voc2007_test, "cat", "test", labels=(0,)):
        cats = [obj for obj in parse_annotation(annotation_path(voc2007_test, image_id)).objects if obj.name == "cat"]
        assert cats and all(obj.difficult for obj in cats)


def test_compact_annotations_round_trip(tmp_path, voc2007_test):
    """write → unpack gives the same boxes, sizes, difficult flags and image-set files as the source folder."""
    compact = tmp_path / "set.tsv.gz"
    assert write_compact_annotations(voc2007_test, "test", compact) == 14976
    again = unpack_compact_annotations(compact, tmp_path / "again", "test")
    for name in ("test.txt", "aeroplane_test.txt", "person_test.txt"):
        assert (again / "ImageSets" / "Main" / name).read_text() == \
            (voc2007_test / "ImageSets" / "Main" / name).read_text()
    for image_id in read_image_set(voc2007_test, "test")[::97]:
        first, second = (parse_annotation(annotation_path(root, image_id)) for root in (voc2007_test, again))
        assert (first.width, first.height) == (second.width, second.height)
        assert [(o.name, o.difficult, o.box.tolist()) for o in first.objects] == \
            [(o.name, o.difficult, o.box.tolist()) for o in second.objects]


def test_a_broken_compact_file_is_a_user_error(tmp_path):
    broken = tmp_path / "broken.tsv.gz"
    broken.write_bytes(b"not gzip")
    with pytest.raises(UserError, match="broken.tsv.gz"):
        unpack_compact_annotations(broken, tmp_path / "out")
    assert not (tmp_path / "out").exists()
