"""Hostile inputs (issue 40, items 2, 4 and 5), each on a file the test makes: images whose header declares more
pixels than the limit, or a decompression bomb, skipped with one warning before a pixel is decoded; image ids
that would lead outside their folder refused with one line; results files with NaN, wrong shapes or deep nesting
refused with one line naming the file and the field, and merged results written as valid JSON.

The lock on ``path_model`` is tested in test_lock.py.
"""
import io
import json
import re
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import class_results
import compare_results
import image_zooms_testing
from dataset import SkipReport, load_record_image
from detection import as_rgb_image
from errors import UserError
from image_helper import MAX_PIXELS, load_image
from parse_xml_annotations import (ImageRecord, annotation_path, class_ids, parse_annotation, read_class_image_set,
                                   read_image_set)
from runtime import main_guard

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------------------------------------------------------
# images bounded before they are decoded

def png_declaring(width, height):
    """A valid 8×8 PNG (a few hundred bytes) whose IHDR then declares ``width`` × ``height`` pixels, CRC fixed."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def jpeg_declaring(width, height):
    """A valid 8×8 JPEG whose start-of-frame then declares ``width`` × ``height`` pixels."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    frame = data.index(b"\xff\xc0")         # SOF0: marker, length (2), precision (1), height (2), width (2)
    data[frame + 5:frame + 9] = struct.pack(">HH", height, width)
    return bytes(data)


@pytest.mark.parametrize("make, width, height, problem", [
    (png_declaring, 30000, 30000, "decompression bomb"),           # over twice Pillow's limit: its error
    (jpeg_declaring, 30000, 30000, "decompression bomb"),
    (png_declaring, 10000, 10000, "decompression bomb"),           # over Pillow's limit: its warning, an error here
    (png_declaring, 9000, 9000, r"is 9000 x 9000 pixels \(81 megapixels\), more than the limit of 50 megapixels"),
    (jpeg_declaring, 8000, 7000, "is 8000 x 7000 pixels"),
])
def test_an_image_declaring_too_many_pixels_is_refused_before_decoding(tmp_path, make, width, height, problem):
    path = tmp_path / "bomb.jpg"        # the name's suffix does not matter: Pillow reads the content
    path.write_bytes(make(width, height))
    assert path.stat().st_size < 2000 and width * height > MAX_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no raw Pillow warning either
        with pytest.raises(UserError, match=problem) as caught:
            load_image(path)
        with pytest.raises(UserError, match=problem):
            as_rgb_image(str(path))     # detect() and --image read paths through it
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_the_pixel_limit_is_a_parameter(tmp_path):
    path = tmp_path / "small.png"
    Image.fromarray(np.full((8, 8, 3), 7, dtype=np.uint8)).save(path)
    with pytest.raises(UserError, match="is 8 x 8 pixels"):
        load_image(path, max_pixels=63)
    assert load_image(path, max_pixels=64).shape == (8, 8, 3)
    with pytest.raises(UserError, match="more than the limit"):
        as_rgb_image(path, max_pixels=10)


def write_annotation(root, image_id, width, height):
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    annotation_path(root, image_id).write_text(
        f"<annotation><size><width>{width}</width><height>{height}</height><depth>3</depth></size><object>"
        f"<name>aeroplane</name><bndbox><xmin>2</xmin><ymin>2</ymin><xmax>6</xmax><ymax>6</ymax></bndbox></object>"
        f"</annotation>")


def test_a_bomb_in_a_dataset_is_skipped_with_one_warning_and_counted(tmp_path):
    (tmp_path / "JPEGImages").mkdir()
    (tmp_path / "JPEGImages" / "bomb.jpg").write_bytes(png_declaring(30000, 30000))
    write_annotation(tmp_path, "bomb", 30000, 30000)
    record = ImageRecord(tmp_path, "bomb", parse_annotation(annotation_path(tmp_path, "bomb")))
    report = SkipReport()
    with pytest.warns(UserWarning, match="bomb.jpg: a decompression bomb .*; skipped") as caught:
        assert load_record_image(record, report) is None
        assert load_record_image(record, report) is None       # training meets it every epoch: warned once
    assert len(caught) == 1
    assert report.as_json()["skipped_images"] == 1 and "skipped 1 image" in report.summary()


def test_testing_goes_on_without_a_bomb_listed_in_the_test_set(dataset, tmp_path, capsys):
    test_ids = [line.split()[0] for line in
                (dataset / "ImageSets" / "Main" / "aeroplane_test.txt").read_text().splitlines()
                if line.split()[1] == "1"]
    bomb = dataset / "JPEGImages" / f"{test_ids[0]}.jpg"
    original = bomb.read_bytes()
    bomb.write_bytes(png_declaring(30000, 30000))
    try:
        with pytest.warns(UserWarning, match=f"{test_ids[0]}.jpg: a decompression bomb") as caught:
            image_zooms_testing.main(["--path_voc_test", str(dataset), "--agent", "random", "--bool_draw", "1",
                                      "--number_of_steps", "2", "--path_testing_folder", str(tmp_path / "out")])
    finally:            # the dataset is shared by the module's tests
        bomb.write_bytes(original)
    assert sum("decompression bomb" in str(warning.message) for warning in caught) == 1
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["skipped_images"] == 1 and results["num_images"] == len(test_ids) - 1
    assert test_ids[0] not in results["trajectories"]


# ---------------------------------------------------------------------------------------------------------------
# image ids and class names that would leave their folder

@pytest.mark.parametrize("image_id", ["../../escape/e1", "/tmp/absolute", "sub/dir", "back\\slash", "..", "C:drive"])
def test_an_image_id_that_leaves_its_folder_is_one_line_naming_the_file_and_line(tmp_path, image_id):
    main_folder = tmp_path / "ImageSets" / "Main"
    main_folder.mkdir(parents=True)
    (main_folder / "aeroplane_test.txt").write_text(f"000001  1\n\n{image_id}  1\n")
    (main_folder / "test.txt").write_text(f"000001\n{image_id}\n")
    with pytest.raises(UserError, match=r"aeroplane_test.txt, line 3: image id .* is not a file name") as caught:
        read_class_image_set(tmp_path, "aeroplane", "test")
    assert repr(image_id) in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(UserError, match=r"test.txt, line 2: image id"):
        read_image_set(tmp_path, "test")


@pytest.mark.parametrize("name", ["../aeroplane", "/etc", "aeroplane/..", "a\\b"])
def test_a_class_name_that_is_a_path_is_refused(name):
    with pytest.raises(UserError, match="is not a VOC class"):
        class_ids(name)


def test_testing_refuses_an_escaping_image_id_before_writing_anything(dataset, tmp_path, capsys):
    listing = dataset / "ImageSets" / "Main" / "aeroplane_test.txt"
    original = listing.read_text()
    listing.write_text(original + "../../escape/e1  1\n")
    try:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            main_guard(lambda: image_zooms_testing.main(
                ["--path_voc_test", str(dataset), "--agent", "random", "--bool_draw", "1",
                 "--path_testing_folder", str(tmp_path / "out" / "deep")]))
    finally:
        listing.write_text(original)
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in error
    assert len(error.strip().splitlines()) == 1 and "aeroplane_test.txt, line" in error and "escape/e1" in error
    assert not (tmp_path / "escape").exists() and not (tmp_path / "out" / "deep" / "searches").exists()


# ---------------------------------------------------------------------------------------------------------------
# results files: checked where read, written as valid JSON

def results(**overrides):
    values = {"model": "image_zooms", "agent": "trained", "class_object": "aeroplane", "scale_subregion": 0.75,
              "epoch": 3, "num_images": 10, "num_objects": 12, "precision": [1.0, 0.5], "recall": [0.25, 0.5],
              "ap": 0.41, "ap_voc07": 0.45, "max_recall": 0.5, "regions_per_found_object": [1, 3]}
    values.update(overrides)
    return values


def combined(**overrides):
    row = {"class_object": "aeroplane", "ap": 0.4, "ap_voc07": 0.4, "max_recall": 0.5,
           "mean_regions_per_found_object": 2.0, "num_images": 3, "num_objects": 4}
    values = {"model": "image_zooms", "agent": "trained", "scale_subregion": 0.75, "classes": [row],
              "absent_classes": [], "map": 0.4, "mean_ap_voc07": 0.4, "mean_max_recall": 0.5}
    values.update(overrides)
    return values


DAMAGED = [
    ("nan_regions", json.dumps(results(regions_per_found_object=[1, float("nan")])),
     r"'regions_per_found_object' must be a list of whole numbers in 0..100000, item 1: found nan"),
    ("huge_regions", json.dumps(results(regions_per_found_object=[10 ** 30])),
     r"'regions_per_found_object' .*item 0: found 1000000000000000000000000000000, outside 0..100000"),
    ("fractional_regions", json.dumps(results(regions_per_found_object=[1.5])), r"item 0: found 1.5, not a whole"),
    ("nan_ap", json.dumps(results(ap=float("nan"))), r"'ap' must be a number in 0.0..1.0, found nan"),
    ("infinite_recall", json.dumps(results(recall=[0.1, float("inf")])),
     r"'recall' must be a list of numbers in 0.0..1.0, item 1: found inf"),
    ("precision_rows", json.dumps(results(precision=[[1.0], [0.5]])), r"'precision' .*item 0: found a list"),
    ("model_list", json.dumps(results(model=["image_zooms"])), r"'model' must be a text"),
    ("classes_not_rows", json.dumps(combined(classes=[1, 2])), r"'classes' must be a list of rows"),
    ("classes_not_a_list", json.dumps(combined(classes="aeroplane")), r"'classes' must be a list of rows"),
    ("class_nan_ap", json.dumps(combined(classes=[{**combined()["classes"][0], "ap": float("nan")}])),
     r"'classes\[0\].ap' must be a number in 0.0..1.0, found nan"),
    ("class_no_count", json.dumps(combined(classes=[{**combined()["classes"][0], "num_images": None}])),
     r"'classes\[0\].num_images' must be a whole number in 0.., found None"),
    ("class_unknown", json.dumps(combined(classes=[{**combined()["classes"][0], "class_object": "../x"}])),
     r"classes\[0\].class_object must be a VOC class name"),
    ("combined_partial", json.dumps({"classes": []}), r"not a combined results file .*missing key"),
    ("deep", "[" * 100_000 + "]" * 100_000, r"JSON nested too deeply"),
    ("deep_field", json.dumps(results()).replace('"ap": 0.41', '"ap": ' + "[" * 100_000 + "]" * 100_000),
     r"JSON nested too deeply"),
]


@pytest.mark.parametrize("name, content, problem", DAMAGED, ids=[case[0] for case in DAMAGED])
def test_a_damaged_results_file_is_one_line_naming_the_file_and_the_field(tmp_path, capsys, name, content, problem):
    path = tmp_path / f"{name}.json"
    path.write_text(content)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(results()))
    assert compare_results.main([str(path), str(good), "--output", str(tmp_path / "cmp.png")]) == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1 and error.startswith(f"error: {path}: ")
    assert re.search(problem, error), error
    assert not (tmp_path / "cmp.png").exists()


def test_the_command_line_exits_2_with_one_line_on_nan(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(results(regions_per_found_object=[float("nan")])))
    completed = subprocess.run([sys.executable, str(ROOT / "compare_results.py"), str(path), "--output",
                                str(tmp_path / "cmp.png")], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2 and "Traceback" not in completed.stderr
    assert completed.stderr.strip().splitlines() == [
        f"error: {path}: 'regions_per_found_object' must be a list of whole numbers in 0..100000, item 0: found nan"]


def test_merged_results_are_valid_json(tmp_path):
    paths = []
    for name in ("bird", "aeroplane"):
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(results(class_object=name, regions_per_found_object=[])))
    merged = class_results.merge(paths, tmp_path / "merged.json")
    assert [row["class_object"] for row in merged["classes"]] == ["aeroplane", "bird"]

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")
    written = json.loads((tmp_path / "merged.json").read_text(), parse_constant=refuse)
    assert written["classes"][0]["mean_regions_per_found_object"] is None
    assert class_results.load_combined(tmp_path / "merged.json") == written     # and it reads back, checked
    assert class_results.json_ready({"a": [float("nan"), 1.0, float("-inf")], "b": (float("inf"),)}) == \
        {"a": [None, 1.0, None], "b": [None]}
    paths[0].write_text(json.dumps(results(class_object="../bird")))
    with pytest.raises(UserError, match=r"bird.json: class_object '../bird' is not a VOC class"):
        class_results.merge(paths, tmp_path / "again.json")
