"""Tests of synthetic_dataset: VOC layout, determinism, consistency of boxes and class files."""

import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from any folder

from runs.errors import UserError  # noqa: E402
from image_helper import image_path, load_image  # noqa: E402
from parse_xml_annotations import (  # noqa: E402
    VOC_CLASSES, annotation_path, load_records, parse_annotation, read_class_image_set,
)
from experiments.compact_annotations import read_image_set  # noqa: E402
from synthetic_dataset import draw_scene, ensure_synthetic_voc, generate_synthetic_voc, main  # noqa: E402


def _files(root: Path) -> dict[str, bytes]:
    return {str(path.relative_to(root)): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


@pytest.fixture(scope="module")
def tiny_voc(tmp_path_factory) -> Path:
    return generate_synthetic_voc(tmp_path_factory.mktemp("tiny") / "voc", num_trainval=6, num_test=4, seed=5)


def test_same_seed_gives_identical_files(tiny_voc, tmp_path):
    again = generate_synthetic_voc(tmp_path / "again", num_trainval=6, num_test=4, seed=5)
    assert _files(again) == _files(tiny_voc)
    other = generate_synthetic_voc(tmp_path / "other", num_trainval=6, num_test=4, seed=6)
    assert _files(other) != _files(tiny_voc)


def test_layout(tiny_voc):
    main_folder = tiny_voc / "ImageSets" / "Main"
    assert (main_folder / "trainval.txt").read_text() == "".join(f"{n:06d}\n" for n in range(1, 7))
    assert (main_folder / "test.txt").read_text() == "".join(f"{n:06d}\n" for n in range(7, 11))
    assert len(list((tiny_voc / "JPEGImages").glob("*.jpg"))) == 10
    assert len(list((tiny_voc / "Annotations").glob("*.xml"))) == 10
    for name in VOC_CLASSES:
        for split, ids in (("trainval", range(1, 7)), ("test", range(7, 11))):
            lines = (main_folder / f"{name}_{split}.txt").read_text().splitlines()
            assert [line.split()[0] for line in lines] == [f"{n:06d}" for n in ids]
            for line in lines:  # VOC spacing: "000005 -1", "000005  1", "000005  0"
                assert line[6:] in (" -1", "  1", "  0"), line
    assert not list(tiny_voc.rglob("*.tmp"))


def test_annotations_match_images_and_class_files(tiny_voc):
    for split in ("trainval", "test"):
        for image_id in read_image_set(tiny_voc, split):
            annotation = parse_annotation(annotation_path(tiny_voc, image_id))
            with Image.open(image_path(tiny_voc, image_id)) as image:
                assert image.format == "JPEG" and image.mode == "RGB"
                assert image.size == (annotation.width, annotation.height)
            assert 160 <= annotation.width <= 320 and 160 <= annotation.height <= 320
            for obj in annotation.objects:
                assert obj.name in ("aeroplane", "bird", "car", "boat")
                x0, y0, x1, y1 = obj.box
                assert 0 <= x0 < x1 <= annotation.width and 0 <= y0 < y1 <= annotation.height
                np.testing.assert_array_equal(obj.box, np.round(obj.box))  # whole pixels
        for name in VOC_CLASSES:
            for label in (1, 0, -1):
                try:
                    listed = set(read_class_image_set(tiny_voc, name, split, labels=(label,)))
                except UserError:  # no image with this label
                    listed = set()
                for image_id in read_image_set(tiny_voc, split):
                    annotation = parse_annotation(annotation_path(tiny_voc, image_id))
                    flags = annotation.difficult_of(name)
                    expected = -1 if len(flags) == 0 else (0 if flags.all() else 1)
                    assert (image_id in listed) == (expected == label), (name, image_id)


def test_images_load_and_records_read_back(tiny_voc):
    image_ids = read_image_set(tiny_voc, "trainval") + read_image_set(tiny_voc, "test")
    image = load_image(image_path(tiny_voc, image_ids[0]))
    assert image.dtype == np.float32 and image.ndim == 3 and image.std() > 1  # not a blank image
    records = load_records(tiny_voc, "aeroplane", "trainval")  # seed 5 puts aeroplanes in trainval
    assert records
    assert all(len(record.annotation.boxes_of("aeroplane")) >= 1 for record in records)


def test_scene_objects_are_visible_and_tight():
    for seed in range(40):
        rng = np.random.default_rng(seed)
        width, height = 200 + seed, 260 - seed
        pixels, objects = draw_scene(rng, width, height)
        assert pixels.shape == (height, width, 3) and pixels.dtype == np.uint8
        for obj in objects:
            x0, y0, x1, y1 = obj.box
            assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
            assert 0 < obj.pixel_count <= (x1 - x0) * (y1 - y0)
            limit = 0.7 if obj.name == "aeroplane" else 0.5
            assert obj.visible_fraction >= limit - 1e-9, (seed, obj)
            if obj.difficult:  # only tiny aeroplanes
                assert obj.name == "aeroplane" and max(x1 - x0, y1 - y0) <= 19


def test_content_statistics(tmp_path):
    root = generate_synthetic_voc(tmp_path / "voc", num_trainval=100, num_test=1, seed=0)
    positives = read_class_image_set(root, "aeroplane", "trainval")
    assert 55 <= len(positives) <= 85  # about 70% of images have an aeroplane
    for distractor in ("bird", "car", "boat"):
        assert len(read_class_image_set(root, distractor, "trainval")) >= 10
    relative_sizes, planes_per_image = [], []
    for image_id in read_image_set(root, "trainval"):
        annotation = parse_annotation(annotation_path(root, image_id))
        boxes = annotation.boxes_of("aeroplane", include_difficult=False)
        planes_per_image.append(len(boxes))
        shorter = min(annotation.width, annotation.height)
        relative_sizes += list(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) / shorter)
    assert max(planes_per_image) <= 3 and min(relative_sizes) < 0.25 and max(relative_sizes) > 0.75
    assert 0.25 < np.median(relative_sizes) < 0.6  # spread, not all small or all large


def test_ensure_generates_once(tmp_path, capsys):
    root = tmp_path / "voc"
    assert ensure_synthetic_voc(root, num_trainval=2, num_test=1, seed=1) == root
    assert "Generating" in capsys.readouterr().out
    before = _files(root)
    assert ensure_synthetic_voc(root, num_trainval=5, num_test=5) == root  # kept as it is
    assert capsys.readouterr().out == ""
    assert _files(root) == before


@pytest.mark.parametrize("arguments", [
    dict(num_trainval=0), dict(num_test=0), dict(min_size=10), dict(min_size=200, max_size=100),
    dict(num_trainval=2.5),
])
def test_bad_arguments_raise(tmp_path, arguments):
    with pytest.raises(UserError):
        generate_synthetic_voc(tmp_path / "voc", **arguments)


def test_command_line(tmp_path, capsys):
    assert main(["--root", str(tmp_path / "cli"), "--num_trainval", "3", "--num_test", "2", "--seed", "4"]) == 0
    assert "3 trainval + 2 test" in capsys.readouterr().out
    assert len(read_image_set(tmp_path / "cli", "test")) == 2
    assert main(["--root", str(tmp_path / "bad"), "--num_trainval", "0"]) == 2
    assert "num_trainval" in capsys.readouterr().err
