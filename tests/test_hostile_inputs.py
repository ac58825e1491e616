"""Hostile inputs (issue 40, items 2, 4 and 5), each on a file the test makes: images whose header declares more
pixels than the limit, or a decompression bomb, skipped with one warning before a pixel is decoded; image ids
that would lead outside their folder refused with one line; results files with NaN, wrong shapes or deep nesting
refused with one line naming the file and the field, and merged results written as valid JSON.

Shared folders and hostile inputs: the ``max_pixels`` setting in training, testing and ``--image``;
output folders that cannot be created or written refused in one line before the first search or epoch; a damaged
``features_model<k>.json`` a warning naming the field, a damaged resume state one line naming the file and the
field, with nothing written.

The lock on ``path_model`` is tested in test_lock.py.
"""
import contextlib
import errno
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from PIL import Image

from runs import class_results
import compare_results
import image_zooms_testing
import image_zooms_training
from runs import runtime
import settings as settings_module
import testing_settings
import training_settings
from test_robustness import tiny, tiny_features  # noqa: F401 (a fixture)
from runs.dataset import SkipReport, load_record_image
from detection import as_rgb_image
from runs.errors import UserError
from image_helper import MAX_PIXELS, image_path, load_image
from parse_xml_annotations import (ImageRecord, annotation_path, class_ids, load_records, parse_annotation,
                                   read_class_image_set)
from experiments.compact_annotations import read_image_set
from runs.run_folder import check_trained_features, read_log
from runs.runtime import main_guard
from settings import check_output_folder

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


def test_a_folder_given_as_an_image_is_named_as_a_folder(tmp_path):
    with pytest.raises(UserError, match=f"image {re.escape(str(tmp_path))}: a folder, not an image file"):
        load_image(tmp_path)
    with pytest.raises(UserError, match="image file not found"):
        load_image(tmp_path / "absent.png")


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


def test_an_image_id_longer_than_a_file_name_allows_is_one_line_and_a_byte_order_mark_is_read_as_utf8(tmp_path):
    main_folder = tmp_path / "ImageSets" / "Main"
    main_folder.mkdir(parents=True)
    (main_folder / "test.txt").write_text(f"000001\n{'a' * 300}\n")
    with pytest.raises(UserError, match=r"test.txt, line 2: image id 'a+'... is 300 bytes long, more than the 200"):
        read_image_set(tmp_path, "test")
    (main_folder / "aeroplane_test.txt").write_bytes("\ufeff000001  1\r\n000002 -1\r\n".encode("utf-8"))
    assert read_class_image_set(tmp_path, "aeroplane", "test") == ["000001"]   # Windows Notepad's UTF-8


def test_a_path_setting_that_is_not_a_path_or_has_a_name_too_long_is_one_line(tmp_path):
    values = dict(settings_module.script_settings(vars(image_zooms_testing)))
    long_name = "b" * 256
    for name, value in (("path_testing_folder", str(tmp_path / long_name / "out")), ("image", ["x.png", long_name])):
        with pytest.raises(UserError, match=f"{name}: the name 'b+'... in it is 256 bytes long, more than a file"):
            settings_module.check_settings(SimpleNamespace(**{**values, name: value}))
    with pytest.raises(UserError, match="cannot read image file .*: File name too long"):
        load_image(tmp_path / f"{long_name}.png")       # detect() reads paths through it, without the settings

    training = dict(settings_module.script_settings(vars(image_zooms_training)))
    for name, value in (("path_voc", 5), ("path_model", None), ("path_vgg", ""), ("path_voc2", None)):
        both = {**training, "two_databases": 1, name: value}    # a path edited at the top of a script
        with pytest.raises(UserError, match=f"{name} must be a path \\(a text naming a file or folder\\), got "):
            settings_module.check_settings(SimpleNamespace(**both))
    settings_module.check_settings(SimpleNamespace(**{**training, "path_voc2": None}))   # not used: may be None


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
    ("huge_integer", json.dumps(results()).replace('"num_images": 10', '"num_images": ' + "9" * 5000),
     r"not a valid JSON file \(Exceeds the limit \(4300 digits\)"),
    ("long_label", json.dumps(results(model=[[["x" * 10_000]]])),     # the value is cut at 60 characters
     r"'model' must be a text, found \[\[\['x{56}$"),
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


@pytest.mark.parametrize("name", ["nan_regions", "classes_not_rows", "deep", "huge_integer"])
def test_merging_a_damaged_results_file_is_one_line_and_writes_nothing(tmp_path, capsys, name):
    content = dict((case[0], case[1]) for case in DAMAGED)[name]
    path = tmp_path / f"{name}.json"
    path.write_text(content)
    good = tmp_path / "good.json"
    good.write_text(json.dumps(results(class_object="bird")))
    assert compare_results.main([str(good), str(path), "--merge", str(tmp_path / "merged.json")]) == 2
    error = capsys.readouterr().err
    assert len(error.strip().splitlines()) == 1 and error.startswith(f"error: {path}: ")
    assert not (tmp_path / "merged.json").exists()


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
    runtime.write_json(tmp_path / "any.json", {"a": [float("nan"), 1.0, float("-inf")], "b": (float("inf"),)})
    assert json.loads((tmp_path / "any.json").read_text(), parse_constant=refuse) == \
        {"a": [None, 1.0, None], "b": [None]}                                  # every JSON the project writes
    paths[0].write_text(json.dumps(results(class_object="../bird")))
    with pytest.raises(UserError, match=r"bird.json: class_object '../bird' is not a VOC class"):
        class_results.merge(paths, tmp_path / "again.json")


# ---------------------------------------------------------------------------------------------------------------
# the max_pixels setting, in training and testing

# pixels: between the synthetic dataset's image sizes (64-96 px a side), so that each split has images over it
LIMIT = 5700
TINY_TRAINING = ["--path_vgg", "random", "--buffer_experience_replay", "12", "--batch_size", "4",
                 "--number_of_steps", "3", "--learning_rate", "1e-4", "--refine", "1"]




def over_limit(dataset, split):
    """The ids of the split's aeroplane images above LIMIT pixels, by their annotations' sizes, and all ids in order."""
    records = load_records([dataset], "aeroplane", split, skipped=[])
    return ({record.image_id for record in records if record.annotation.width * record.annotation.height > LIMIT},
            [record.image_id for record in records])


@pytest.fixture(scope="module")
def trained(dataset, small_q_network, tmp_path_factory):
    """One epoch of a tiny training (refine 1) with max_pixels LIMIT: its path_model, its
    warnings and its output."""
    models = tmp_path_factory.mktemp("trained") / "models"
    output = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings(record=True) as caught, \
            contextlib.redirect_stdout(output):
        patch.setattr(image_zooms_training, "make_features", tiny_features)
        warnings.simplefilter("always")
        image_zooms_training.main(["--path_voc", str(dataset), "--path_model", str(models), *TINY_TRAINING,
                                   "--max_pixels", str(LIMIT), "--epochs", "1"])
    return models, [str(warning.message) for warning in caught if issubclass(warning.category, UserWarning)], \
        output.getvalue()


def run_guarded(main, argv, capsys):
    """A script's main as the command line runs it (main_guard): (exit code, stderr lines, stdout)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main_guard(lambda: main(argv))
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return exit_info.value.code, captured.err.strip().splitlines(), captured.out


def test_a_full_disk_is_one_line_naming_the_file_and_other_os_errors_are_not_hidden(tmp_path, capsys):
    target = tmp_path / "results.json"

    def write(temporary):
        temporary.write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")
    code, error, _ = run_guarded(lambda argv: runtime.write_atomically(target, write), [], capsys)
    assert code == 2 and error == [f"error: could not write {target}: No space left on device; the files written "
                                   f"before are kept. Free space (or choose another folder) and run again"]
    assert not list(tmp_path.iterdir())         # no half-written file left
    with pytest.raises(OSError, match="Input/output error"):
        main_guard(lambda: runtime.write_atomically(target, lambda temporary: (_ for _ in ()).throw(
            OSError(errno.EIO, "Input/output error"))))


def test_max_pixels_is_a_setting_of_the_scripts_with_the_library_default(tmp_path, capsys):
    assert training_settings.max_pixels == testing_settings.max_pixels == MAX_PIXELS
    code, error, _ = run_guarded(image_zooms_testing.main, ["--max_pixels", "0", "--path_testing_folder",
                                                            str(tmp_path / "out")], capsys)
    assert code == 2 and error == ["error: max_pixels must be a whole number ≥ 1, got 0"]
    assert not (tmp_path / "out").exists()


def test_training_skips_images_over_max_pixels_with_one_warning_each(trained, dataset):
    models, messages, output = trained
    over, ids = over_limit(dataset, "trainval")
    assert over & set(ids) and set(ids) - over          # the case tested: some images over the limit, some under
    skipped = [message for message in messages if "(max_pixels)" in message]
    assert len(skipped) == len(over) and all(any(f"{image_id}.jpg is " in message for message in skipped)
                                             for image_id in over)
    assert all(f"more than the limit of {LIMIT / 1e6:g} megapixels (max_pixels); skipped" in message
               for message in skipped)
    assert f"skipped {len(over)} image" in output
    log = read_log(models / "training_log_model0.csv")
    assert log[0]["images"] == len(set(ids) - over)


def test_testing_skips_dataset_images_over_max_pixels_and_counts_them(dataset, tmp_path):
    over, ids = over_limit(dataset, "test")
    assert over and len(over) < len(ids)
    with pytest.warns(UserWarning, match=r"\(max_pixels\); skipped") as caught:
        image_zooms_testing.main(["--path_voc_test", str(dataset), "--agent", "random", "--bool_draw", "1",
                                  "--number_of_steps", "2", "--max_pixels", str(LIMIT), "--path_testing_folder",
                                  str(tmp_path / "out")])
    assert sum("(max_pixels)" in str(warning.message) for warning in caught) == len(over)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["skipped_images"] == len(over) and results["num_images"] == len(ids) - len(over)
    assert set(results["trajectories"]) == set(ids) - over


def test_own_images_over_max_pixels_are_skipped_and_counted(trained, dataset, tmp_path, tiny):
    models = trained[0]
    over, ids = over_limit(dataset, "test")
    big = image_path(dataset, sorted(over)[0])
    small = image_path(dataset, sorted(set(ids) - over)[0])
    with pytest.warns(UserWarning, match=rf"{big.name} is .*\(max_pixels\); skipped") as caught:
        image_zooms_testing.main(["--path_model", str(models), "--path_vgg", "random", "--number_of_steps", "2",
                                  "--max_pixels", str(LIMIT), "--path_testing_folder", str(tmp_path / "own"),
                                  "--image", str(big), "--image", str(small)])
    assert sum("(max_pixels)" in str(warning.message) for warning in caught) == 1
    found = json.loads((tmp_path / "own" / "detections.json").read_text())
    assert found["skipped_images"] == 1 and [entry["image"] for entry in found["images"]] == [str(small)]


# ---------------------------------------------------------------------------------------------------------------
# output folders checked before the work

def test_testing_into_a_folder_it_cannot_create_stops_before_the_first_search(trained, dataset, tmp_path, tiny,
                                                                               capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("kept")
    image = image_path(dataset, over_limit(dataset, "test")[1][0])
    common = ["--path_voc_test", str(dataset), "--path_model", str(trained[0]), "--path_vgg", "random"]
    for folder, extra in [(blocker, []), (blocker / "deeper" / "still", ["--agent", "random", "--bool_draw", "1"]),
                          (blocker, ["--image", str(image)]), (blocker, ["--epoch", "all"])]:
        code, error, output = run_guarded(image_zooms_testing.main,
                                          [*common, "--path_testing_folder", str(folder), *extra], capsys)
        assert code == 2 and error == [f"error: path_testing_folder {folder}: cannot create the folder ({blocker} is "
                                       f"a file)"], extra
        assert "testing:" not in output and "searches" not in output        # no search was started
    assert blocker.read_text() == "kept" and sorted(tmp_path.iterdir()) == [blocker]


def test_training_into_folders_it_cannot_create_stops_before_the_first_epoch(dataset, tmp_path, tiny, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("kept")
    training = ["--path_voc", str(dataset), *TINY_TRAINING, "--epochs", "1"]
    code, error, output = run_guarded(image_zooms_training.main, [*training, "--path_model", str(blocker / "models")],
                                      capsys)
    assert code == 2 and error == [f"error: path_model {blocker / 'models'}: cannot create the folder ({blocker} is a "
                                   f"file)"]
    code, error, output = run_guarded(image_zooms_training.main, [
        *training, "--path_model", str(tmp_path / "models"), "--bool_draw", "1", "--path_testing_folder", str(blocker)],
        capsys)
    assert code == 2 and error == [f"error: path_testing_folder {blocker / 'training'}: cannot create the folder "
                                   f"({blocker} is a file)"]
    assert "epoch" not in output and not (tmp_path / "models").exists()     # not even the lock was taken
    assert blocker.read_text() == "kept"


def test_a_folder_where_a_run_writes_a_file_stops_it_before_the_work(trained, dataset, tmp_path, tiny, capsys):
    common = ["--path_voc_test", str(dataset), "--path_model", str(trained[0]), "--path_vgg", "random"]
    for name, extra in [("results.json", ["--agent", "random"]), ("regions_per_object.png", []),
                        ("detections.json", ["--image", str(image_path(dataset, over_limit(dataset, "test")[1][0]))])]:
        folder = tmp_path / name.split(".")[0]
        (folder / name).mkdir(parents=True)
        code, error, output = run_guarded(image_zooms_testing.main,
                                          [*common, "--path_testing_folder", str(folder), *extra], capsys)
        assert code == 2 and error == [f"error: path_testing_folder {folder}: {folder / name} is a folder, and the run "
                                       f"writes its {name} there; move it away"], name
        assert "searches" not in output and [path.name for path in folder.iterdir()] == [name]
    models = tmp_path / "models"
    (models / "refiner_model0_epoch_1.npz").mkdir(parents=True)
    training = ["--path_voc", str(dataset), *TINY_TRAINING, "--epochs", "2", "--refine", "1"]
    code, error, output = run_guarded(image_zooms_training.main, [*training, "--path_model", str(models)], capsys)
    assert code == 2 and error == [f"error: path_model {models}: {models / 'refiner_model0_epoch_1.npz'} is a folder, "
                                   f"and the run writes its refiner_model0_epoch_1.npz there; move it away"]
    assert "epoch" not in output and [path.name for path in models.iterdir()] == ["refiner_model0_epoch_1.npz"]


def test_a_file_where_the_drawings_go_stops_the_run_before_the_work(trained, dataset, tmp_path, tiny, capsys):
    common = ["--path_voc_test", str(dataset), "--path_model", str(trained[0]), "--path_vgg", "random"]
    image = str(image_path(dataset, over_limit(dataset, "test")[1][0]))
    for drawings, extra in [("searches", ["--agent", "random", "--bool_draw", "1"]), ("images", ["--image", image])]:
        folder = tmp_path / drawings
        folder.mkdir()
        (folder / drawings).write_text("kept")
        code, error, output = run_guarded(image_zooms_testing.main,
                                          [*common, "--path_testing_folder", str(folder), *extra], capsys)
        assert code == 2 and error == [f"error: path_testing_folder {folder / drawings}: cannot create the folder "
                                       f"({folder / drawings} is a file)"]
        assert "searches" not in output and [path.name for path in folder.iterdir()] == [drawings]


def test_a_save_with_a_folder_in_the_way_changes_none_of_the_files(tmp_path):
    from runs.run_folder import write_together
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text("before")
    second.mkdir()
    with pytest.raises(IsADirectoryError, match="second.txt"):
        write_together([(first, lambda path: Path(path).write_text("after")),
                        (second, lambda path: Path(path).write_text("after"))])
    assert first.read_text() == "before" and sorted(tmp_path.iterdir()) == [first, second]


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root writes in any folder")
def test_a_folder_that_cannot_be_written_is_one_line_naming_it(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    try:
        with pytest.raises(UserError, match=rf"path_testing_folder {locked}: cannot write in it \(Permission denied"):
            check_output_folder(locked, "path_testing_folder")
        with pytest.raises(UserError, match=rf"path_testing_folder {locked / 'new'}: cannot write in {locked}, "
                                            rf"where it would be created"):
            check_output_folder(locked / "new", "path_testing_folder")
    finally:
        locked.chmod(0o700)
    assert list(locked.iterdir()) == []


def test_the_output_check_leaves_nothing_behind(tmp_path):
    check_output_folder(tmp_path / "new" / "deeper", "path_testing_folder")
    check_output_folder(tmp_path, "path_testing_folder")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------------------------------
# what is read from a run folder: the describing settings and the resume state

FEATURES = {"path_vgg": "random", "vgg_precision": "float32", "scale_subregion": 0.75}
DAMAGED_FEATURES = [
    ("scale_text", json.dumps({**FEATURES, "scale_subregion": "abc"}), r"scale_subregion is 'abc', not a value"),
    ("scale_nan", json.dumps({**FEATURES, "scale_subregion": float("nan")}), r"scale_subregion is nan, not a value"),
    ("scale_list", json.dumps({**FEATURES, "scale_subregion": [0.5]}), r"scale_subregion is \[0.5\], not a value"),
    ("path_list", json.dumps({**FEATURES, "path_vgg": ["random"]}), r"path_vgg is \['random'\], not a value"),
    ("precision_null", json.dumps({**FEATURES, "vgg_precision": None}), r"vgg_precision is None, not a value"),
    ("not_an_object", json.dumps([FEATURES]), r"a JSON list, not an object"),
    ("deep", "[" * 100_000 + "]" * 100_000, r"unreadable \(RecursionError"),
    ("huge_integer", json.dumps(FEATURES).replace("0.75", "9" * 5000), r"unreadable \(ValueError: Exceeds the limit"),
]


@pytest.mark.parametrize("name, content, problem", DAMAGED_FEATURES, ids=[case[0] for case in DAMAGED_FEATURES])
def test_a_damaged_features_file_is_one_warning_naming_the_file_and_the_field(tmp_path, name, content, problem):
    """The file only serves a check: its damage is a warning and the damaged value goes unchecked."""
    (tmp_path / "features_model0.json").write_text(content)
    with pytest.warns(UserWarning) as caught:
        check_trained_features(tmp_path, 0, "random", 0.75)
    assert len(caught) == 1 and str(caught[0].message).startswith(f"{tmp_path / 'features_model0.json'}: ")
    assert re.search(problem, str(caught[0].message)) and "\n" not in str(caught[0].message)


def test_a_damaged_field_leaves_the_other_fields_checked(tmp_path):
    (tmp_path / "features_model0.json").write_text(json.dumps({**FEATURES, "path_vgg": "hed", "scale_subregion": "x"}))
    with pytest.warns(UserWarning, match="scale_subregion is 'x'"), \
            pytest.raises(UserError, match=r"was trained on path_vgg 'hed' \(features_model0.json\)"):
        check_trained_features(tmp_path, 0, "random", 0.75)


def test_testing_goes_on_with_a_damaged_features_file(trained, dataset, tmp_path, tiny, capsys):
    models = Path(shutil.copytree(trained[0], tmp_path / "models"))
    (models / "features_model0.json").write_text(json.dumps({**FEATURES, "scale_subregion": [0.5]}))
    capsys.readouterr()
    main_guard(lambda: image_zooms_testing.main(["--path_voc_test", str(dataset), "--path_model", str(models),
                                                 "--path_vgg", "random", "--number_of_steps", "2",
                                                 "--path_testing_folder", str(tmp_path / "out")]))
    assert capsys.readouterr().err.splitlines() == [
        f"warning: {models / 'features_model0.json'}: scale_subregion is [0.5], not a value training writes; it is "
        f"not checked"]
    assert (tmp_path / "out" / "results.json").is_file()


def set_attribute(name, value):
    def damage(handle):
        del handle.attrs[name]
        handle.attrs[name] = value
    return damage


def set_array(group, name, value):
    def damage(handle):
        del handle[group][name]
        handle[group][name] = value
    return damage


def change_numpy_rng(**changes):
    """A damage: the saved random generator's state with ``changes``."""
    def damage(handle):
        set_attribute("numpy_rng", json.dumps({**json.loads(handle.attrs["numpy_rng"]), **changes}))(handle)
    return damage


DAMAGED_RESUME_STATES = [
    ("rng_list", set_attribute("numpy_rng", "[1, 2]"),
     r"attribute numpy_rng \(the random generator's state\) is damaged \(TypeError: state must be a dict\)"),
    ("rng_other_generator", change_numpy_rng(bit_generator="MT19937"),
     r"attribute numpy_rng .* is damaged \(ValueError: state must be for a PCG64 RNG\)"),
    ("rng_nan", change_numpy_rng(state={"state": float("nan"), "inc": 1}),
     r"attribute numpy_rng .* is damaged \(ValueError"),
    ("rng_deep", set_attribute("numpy_rng", "[" * 100_000 + "]" * 100_000),
     r"attribute numpy_rng .* is damaged \(RecursionError"),
    ("settings_list", set_attribute("settings", "[1, 2]"),
     r"attribute settings \(the run's settings\) is damaged \(ValueError: a JSON list, not an object"),
    ("settings_text", set_attribute("settings", "{broken"), r"attribute settings .* is damaged \(JSONDecodeError"),
    ("epoch_text", set_attribute("epoch", "zero"), r"attribute epoch is damaged \(ValueError"),
    ("epsilon_nan", set_attribute("epsilon", float("nan")), r"attribute epsilon is damaged \(ValueError: nan is not"),
    ("optimiser_text", set_array("optimizer", "0", np.bytes_("ab")), r"damaged \(optimiser array 0 holds \|S2"),
    ("replay_position", set_array("replay_memory", "pos", np.array(10 ** 9)),
     r"damaged \(replay memory position 1000000000 outside 0..11\)"),
    ("replay_actions", set_array("replay_memory", "actions", np.full(12, 99, np.int32)),
     r"damaged \(replay memory actions outside 0..5\)"),
    ("replay_rewards_nan", set_array("replay_memory", "rewards", np.full(12, np.nan, np.float32)),
     r"damaged \(replay memory array rewards holds a value that is not finite\)"),
    ("window_sample_rng", set_array("refine_sample", "rng", np.frombuffer(b"{garbage", np.uint8)),
     r"damaged \(its window sample: SyntaxError"),
]


@pytest.mark.parametrize("name, damage, problem", DAMAGED_RESUME_STATES,
                         ids=[case[0] for case in DAMAGED_RESUME_STATES])
def test_a_damaged_resume_state_is_one_line_naming_the_file_and_the_field(trained, dataset, tmp_path, tiny, capsys,
                                                                           name, damage, problem):
    models = Path(shutil.copytree(trained[0], tmp_path / "models"))
    state = models / "resume_model0_epoch_0.h5"
    with h5py.File(state, "a") as handle:
        damage(handle)
    before = {path.name: path.read_bytes() for path in models.iterdir()}
    code, error, output = run_guarded(image_zooms_training.main, [
        "--path_voc", str(dataset), "--path_model", str(models), *TINY_TRAINING, "--max_pixels", str(LIMIT),
        "--epochs", "2", "-n", "1"], capsys)
    assert code == 2 and len(error) == 1 and error[0].startswith(f"error: {state}: "), error
    assert re.search(problem, error[0]), error[0]
    assert f"delete {state.name} and run -n 1 again" in error[0]          # the way on
    assert "epoch   1" not in output and "resuming at epoch" not in output
    assert {path.name: path.read_bytes() for path in models.iterdir()} == before     # nothing written
